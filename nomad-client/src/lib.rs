//! The node agent: fingerprinting, allocation and task runners with their hook pipelines, lifecycle, restart policy, built-in drivers and persisted client state.
//!
//! This crate is being built; see the crate map in the repository README.
//!
//! ```
//! // The crate links and its name resolves.
//! use nomad_client as _;
//! ```
