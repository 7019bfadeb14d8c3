//! Benchmarks of the orchestrator. Each benchmark is a file beside this one and runs with
//! `cargo bench -p nomad-benches`.
