//! The replicated log: every write to the state store is a [`Command`] appended to the log,
//! committed, then applied to the state store in log order.
//!
//! [`ReplicatedLog`] is the seam: the server only appends commands and asks who leads.
//! [`RaftLog`](crate::RaftLog) implements it on `openraft` with `redb` storage.

use serde::{Deserialize, Serialize};

use crate::state::{ApplyEffects, Command};
use crate::ServerError;

/// An entry once it is committed and applied.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    /// Its log index (the state index after it).
    pub index: u64,
    /// What applying it changed.
    pub effects: ApplyEffects,
}

/// A boxed future of the log.
pub type LogFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The seam between the server and its consensus layer.
pub trait ReplicatedLog: Send + Sync {
    /// Appends a command, waits until it is committed and applied to the local state
    /// store, and returns its index. Fails when this server is not the leader or the log
    /// cannot be written. Commands given by successive calls from one task reach the log
    /// in the order of the calls, even when their futures are awaited later (the future
    /// owns what it needs, so it may be awaited on another task).
    fn apply(&self, cmd: Command) -> LogFuture<'static, Result<Applied, ServerError>>;

    /// True when this server leads (and so may accept writes).
    fn is_leader(&self) -> bool;

    /// The leader's RPC address, if one is known.
    fn leader(&self) -> Option<String>;

    /// Every voter's RPC address.
    fn peers(&self) -> Vec<String>;

    /// Milliseconds since the leader was last heard from (0 on the leader).
    fn last_contact_ms(&self) -> u64;

    /// The index of the last entry applied.
    fn applied_index(&self) -> u64;

    /// The index of the latest state snapshot (entries up to it may be compacted away).
    fn snapshot_index(&self) -> u64;

    /// Stops the log and releases its storage; writes fail afterwards. The default does
    /// nothing.
    fn shutdown(&self) -> LogFuture<'_, ()> {
        Box::pin(async {})
    }
}
