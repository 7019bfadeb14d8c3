//! Runnable examples of the orchestrator's crates. Each example is a file beside this one and
//! runs with `cargo run --example NAME`.
