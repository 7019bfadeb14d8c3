//! The task driver contract.
