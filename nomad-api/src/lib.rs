//! The typed HTTP client for the orchestrator API.
//!
//! This crate is being built; see the crate map in the repository README.
//!
//! ```
//! // The crate links and its name resolves.
//! use nomad_api as _;
//! ```
