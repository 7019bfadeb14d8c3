//! Service providers behind one trait: the native catalog and Consul, with health checks.
//!
//! This crate is being built; see the crate map in the repository README.
//!
//! ```
//! // The crate links and its name resolves.
//! use nomad_discovery as _;
//! ```
