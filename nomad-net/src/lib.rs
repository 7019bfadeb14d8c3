//! Network models: host, static and dynamic ports (the per-node port index), bridge networking and CNI networks.
//!
//! This crate is being built; see the crate map in the repository README.
//!
//! ```
//! // The crate links and its name resolves.
//! use nomad_net as _;
//! ```
