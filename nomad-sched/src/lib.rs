//! The scheduler: reconciliation, feasibility, ranking, port assignment, preemption and plan building for service, batch, system and sysbatch jobs.
//!
//! This crate is being built; see the crate map in the repository README.
//!
//! ```
//! // The crate links and its name resolves.
//! use nomad_sched as _;
//! ```
