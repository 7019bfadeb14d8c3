//! A conformance kit that any task driver author runs against their driver.
//!
//! This crate is being built.
//!
//! ```
//! use nomad_driver_conformance as _;
//! ```
