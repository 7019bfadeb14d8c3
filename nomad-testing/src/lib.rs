//! Test support: scripted drivers, simulated clusters and API doubles.
//!
//! This crate is being built; see the crate map in the repository README.
//!
//! ```
//! // The crate links and its name resolves.
//! use nomad_testing as _;
//! ```
