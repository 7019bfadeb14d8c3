//! The control plane: state store, replicated log, eval broker, scheduler workers, plan applier, node liveness, native service catalog and the HTTP API.
//!
//! This crate is being built; see the crate map in the repository README.
//!
//! ```
//! // The crate links and its name resolves.
//! use nomad_server as _;
//! ```
