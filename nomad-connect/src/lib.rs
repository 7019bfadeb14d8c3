//! The Connect service mesh: sidecar injection, sidecar hooks, the built-in mTLS proxy, the certificate authority and intentions.
//!
//! This crate is being built; see the crate map in the repository README.
//!
//! ```
//! // The crate links and its name resolves.
//! use nomad_connect as _;
//! ```
