//! The task environment.
