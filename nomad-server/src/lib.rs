//! The control plane: state store, replicated log, eval broker, scheduler workers, plan
//! applier, node liveness, native service catalog and the HTTP API.
//!
//! A [`Server`] keeps its state in a [`StateStore`] of copy-on-write tables (a snapshot is
//! a few pointer copies and never blocks the writer; watches wake blocking queries), writes
//! every change as a [`Command`] through a [`ReplicatedLog`] ([`RaftLog`], an `openraft`
//! node whose log, vote and snapshots live in one `redb` file, so everything survives a
//! restart; a single server is a one-voter cluster), hands evaluations to scheduler workers
//! through the [`EvalBroker`], runs `nomad-sched` against a snapshot, and commits plans
//! through the plan applier, which re-checks every node with the scheduler's node-fit check.
//!
//! # Example: a dev server with one simulated node
//!
//! ```
//! use nomad_server::{sim, Server, ServerConfig};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir()?;
//! let server = Server::start(ServerConfig::dev(dir.path())).await?;
//! server.register_node(sim::sim_node(0)).await?;
//! server.register_job(sim::sim_job("web", 2)).await?;
//! let placed = server.wait_for_allocs("default", "web", 2, std::time::Duration::from_secs(30)).await;
//! assert_eq!(placed, 2);
//! println!("API on http://{}", server.http_addr().unwrap());
//! server.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

#![forbid(unsafe_code)]

mod blocked;
mod broker;
mod deploy;
mod error;
mod harness;
mod http;
mod log;
mod plan;
mod raft;
mod server;
pub mod sim;
mod state;

pub use blocked::BlockedEvals;
pub use broker::{BrokerConfig, BrokerStats, EvalBroker};
pub use deploy::{desc as deployment_desc, DeploymentUpdate, TRIGGER_DEPLOYMENT_WATCHER};
pub use error::ServerError;
pub use http::RequestBody;
pub use log::{Applied, LogFuture, ReplicatedLog};
pub use plan::{DryRun, GroupUpdates};
pub use raft::{
    Entry, InProcessClient, InProcessFactory, InProcessNetwork, LogOptions, Node, NodeId, RaftLog,
    TypeConfig,
};
pub use server::{
    JobMutator, JobRegistration, JobValidator, NodeUpdate, Server, ServerConfig, ServerMetrics,
    SCHEDULERS,
};
pub use state::{
    ns_or_default, ApplyEffects, Command, CommitCallback, CommitSignal, PersistedState, StateData,
    StateSnapshot, StateStore, Table, JOB_TRACKED_VERSIONS,
};

/// A new random ID in the UUID text form Nomad uses.
pub fn new_id() -> String {
    let v: u128 = rand::random();
    let b = v.to_be_bytes();
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

/// Now, in Unix nanoseconds.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
