//! The replicated log on `openraft`: [`RaftLog`] implements [`ReplicatedLog`] over a Raft
//! node whose log, vote, committed index and state snapshots live in one `redb` file, and
//! whose state machine is the server's [`StateStore`].
//!
//! A single server is a one-voter cluster: on first start [`RaftLog::bootstrap`] initialises
//! the cluster with this node as its only voter; on restart the node recovers its vote, log
//! and latest snapshot from the file (replaying the committed entries after the snapshot)
//! and leads again without being initialised twice. Snapshots are taken every
//! [`LogOptions::snapshot_threshold`] entries and the log before them is purged, keeping
//! [`LogOptions::logs_to_keep`] entries for followers that lag. RPCs go through any
//! [`openraft::RaftNetworkFactory`]; [`InProcessNetwork`] connects the nodes of one process.
//!
//! Writes are group-committed: while entries are in flight (up to two: one written to the
//! file while the one before it is applied), the commands submitted meanwhile queue, and
//! go into the next entry together as one [`Command::Batch`] whose apply returns each
//! writer its own effects. A lone writer is never delayed. Commands reach the log in the
//! order of the calls to [`ReplicatedLog::apply`].

mod batcher;
mod machine;
mod network;
mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{
    BasicNode, Config, Raft, RaftMetrics, RaftNetworkFactory, ServerState, SnapshotPolicy,
};
use redb::Database;
use tokio::sync::watch;

pub use network::{InProcessClient, InProcessFactory, InProcessNetwork};

use crate::log::{Applied, LogFuture, ReplicatedLog};
use crate::state::{ApplyEffects, Command, StateStore};
use crate::ServerError;

/// A server's ID in the Raft cluster.
pub type NodeId = u64;

/// What Raft knows of a server: its RPC address.
pub type Node = BasicNode;

openraft::declare_raft_types!(
    /// The Raft types of the server: [`Command`]s in, [`ApplyEffects`] out, `u64` node IDs
    /// with a [`BasicNode`] address, snapshots as bytes.
    pub TypeConfig:
        D = Command,
        R = ApplyEffects,
        NodeId = NodeId,
        Node = Node,
        SnapshotData = Cursor<Vec<u8>>,
);

/// One entry of the Raft log.
pub type Entry = openraft::Entry<TypeConfig>;

/// Settings of [`RaftLog`].
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// This server's ID in the cluster.
    pub node_id: NodeId,
    /// This server's advertised RPC address (what `status/leader` shows).
    pub advertise: String,
    /// Entries applied between two snapshots.
    pub snapshot_threshold: u64,
    /// Entries kept in the log before the latest snapshot, for followers that lag.
    pub logs_to_keep: u64,
    /// How often the leader sends heartbeats.
    pub heartbeat_interval: Duration,
    /// The shortest election timeout (the longest is twice this).
    pub election_timeout: Duration,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            node_id: 1,
            advertise: "127.0.0.1:4647".to_string(),
            snapshot_threshold: 8192,
            logs_to_keep: 1024,
            heartbeat_interval: Duration::from_millis(250),
            election_timeout: Duration::from_millis(1000),
        }
    }
}

impl LogOptions {
    fn raft_config(&self) -> Result<Config, ServerError> {
        let hb = (self.heartbeat_interval.as_millis() as u64).max(1);
        let min = (self.election_timeout.as_millis() as u64).max(hb + 1);
        Config {
            cluster_name: "nomad".into(),
            heartbeat_interval: hb,
            election_timeout_min: min,
            election_timeout_max: min * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_threshold.max(1)),
            max_in_snapshot_log_to_keep: self.logs_to_keep,
            // The purge point only moves when a snapshot is taken: purge all of it at once.
            purge_batch_size: 1,
            ..Config::default()
        }
        .validate()
        .map_err(|e| ServerError::BadRequest(format!("raft configuration: {e}")))
    }
}

fn storage(e: impl std::fmt::Display) -> ServerError {
    ServerError::Storage(e.to_string())
}

/// A Raft node over `openraft`, the server's [`ReplicatedLog`]. Cloning it is cheap; every
/// clone is the same node.
#[derive(Clone)]
pub struct RaftLog {
    id: NodeId,
    advertise: String,
    raft: Raft<TypeConfig>,
    /// Group commit: writes queued while an entry is in flight share the next entry.
    writes: batcher::WriteBatcher,
    metrics: watch::Receiver<RaftMetrics<NodeId, Node>>,
    /// Milliseconds after `epoch` when a leader last reached this node (0: never).
    last_contact: Arc<AtomicU64>,
    /// The last applied index, set by the state machine as it applies.
    applied: Arc<AtomicU64>,
    epoch: std::time::Instant,
}

impl RaftLog {
    /// Opens (or creates) the Raft node's file at `path` and starts the node: the latest
    /// snapshot is restored into `state` and the committed entries after it are replayed.
    /// A new file holds an uninitialised node: call [`RaftLog::bootstrap`] (one server) or
    /// [`RaftLog::initialize`] (several).
    pub async fn open<N>(
        path: &Path,
        state: Arc<StateStore>,
        opts: LogOptions,
        network: N,
    ) -> Result<RaftLog, ServerError>
    where
        N: RaftNetworkFactory<TypeConfig>,
    {
        let config = Arc::new(opts.raft_config()?);
        let path = path.to_path_buf();
        let db = tokio::task::spawn_blocking(move || -> Result<Database, ServerError> {
            let db = Database::create(&path)
                .map_err(|e| ServerError::Storage(format!("{}: {e}", path.display())))?;
            store::create_tables(&db).map_err(storage)?;
            Ok(db)
        })
        .await
        .map_err(storage)??;
        let db = Arc::new(db);
        let log_store = store::LogStore::new(Arc::clone(&db));
        let applied = Arc::new(AtomicU64::new(0));
        let machine = machine::StateMachine::open(db, state, Arc::clone(&applied))
            .await
            .map_err(storage)?;
        let raft = Raft::new(opts.node_id, config, network, log_store, machine)
            .await
            .map_err(storage)?;
        Ok(RaftLog {
            id: opts.node_id,
            advertise: opts.advertise,
            metrics: raft.metrics(),
            writes: batcher::WriteBatcher::spawn(raft.clone()),
            raft,
            last_contact: Arc::new(AtomicU64::new(0)),
            applied,
            epoch: std::time::Instant::now(),
        })
    }

    /// This node's ID.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// The underlying `openraft` node (membership changes, metrics, triggers).
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// True when the node has a log or a vote, i.e. was initialised (or joined a cluster)
    /// before.
    pub async fn is_initialized(&self) -> Result<bool, ServerError> {
        self.raft.is_initialized().await.map_err(storage)
    }

    /// Initialises a new cluster with these voters. Only for a node that was never
    /// initialised; every initial voter may be given the same set.
    pub async fn initialize(&self, voters: BTreeMap<NodeId, Node>) -> Result<(), ServerError> {
        self.raft
            .initialize(voters)
            .await
            .map_err(|e| ServerError::Storage(format!("initialising the raft cluster: {e}")))
    }

    /// Single-server start: on first start, initialises a one-voter cluster of this node;
    /// on restart, keeps the recovered membership. Then waits until a leader is known.
    pub async fn bootstrap(&self, timeout: Duration) -> Result<(), ServerError> {
        if !self.is_initialized().await? {
            let mut voters = BTreeMap::new();
            voters.insert(self.id, BasicNode::new(self.advertise.clone()));
            self.initialize(voters).await?;
            tracing::info!(node = self.id, "initialised a one-voter raft cluster");
        }
        self.wait_for_leader(timeout).await.map(|_| ())
    }

    /// Waits until some node leads (and this node knows it); returns its ID.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, ServerError> {
        let mut rx = self.raft.metrics();
        let wait = async {
            loop {
                if let Some(l) = rx.borrow_and_update().current_leader {
                    return Ok(l);
                }
                if rx.changed().await.is_err() {
                    return Err(ServerError::ShuttingDown);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ServerError::NoLeader)?
    }

    /// Stops the node and releases its file.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft node did not stop cleanly");
        }
    }

    /// Takes a snapshot now (normally taken every `snapshot_threshold` entries).
    pub async fn trigger_snapshot(&self) -> Result<(), ServerError> {
        self.raft.trigger().snapshot().await.map_err(storage)
    }

    fn stamp_contact(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_contact.store(ms.max(1), Ordering::Release);
    }

    /// Inbound `AppendEntries` from the leader (what a transport calls on receipt).
    pub async fn handle_append_entries(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        let r = self.raft.append_entries(rpc).await;
        if r.is_ok() {
            self.stamp_contact();
        }
        r
    }

    /// Inbound `Vote` from a candidate.
    pub async fn handle_vote(
        &self,
        rpc: VoteRequest<NodeId>,
    ) -> Result<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.raft.vote(rpc).await
    }

    /// Inbound snapshot chunk from the leader.
    pub async fn handle_install_snapshot(
        &self,
        rpc: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        let r = self.raft.install_snapshot(rpc).await;
        if r.is_ok() {
            self.stamp_contact();
        }
        r
    }

    fn node_addr(&self, m: &RaftMetrics<NodeId, Node>, id: NodeId) -> Option<String> {
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }
}

impl ReplicatedLog for RaftLog {
    fn apply(&self, cmd: Command) -> LogFuture<'static, Result<Applied, ServerError>> {
        Box::pin(self.writes.submit(cmd))
    }

    fn is_leader(&self) -> bool {
        let m = self.metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    fn leader(&self) -> Option<String> {
        let m = self.metrics.borrow();
        let id = m.current_leader?;
        self.node_addr(&m, id)
    }

    fn peers(&self) -> Vec<String> {
        let m = self.metrics.borrow();
        m.membership_config
            .voter_ids()
            .filter_map(|id| self.node_addr(&m, id))
            .collect()
    }

    fn last_contact_ms(&self) -> u64 {
        if self.is_leader() {
            return 0;
        }
        match self.last_contact.load(Ordering::Acquire) {
            // Never reached by a leader: as long as this node has run.
            0 => self.epoch.elapsed().as_millis() as u64,
            at => (self.epoch.elapsed().as_millis() as u64).saturating_sub(at),
        }
    }

    fn applied_index(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    fn snapshot_index(&self) -> u64 {
        self.metrics.borrow().snapshot.map_or(0, |l| l.index)
    }

    fn shutdown(&self) -> LogFuture<'_, ()> {
        Box::pin(RaftLog::shutdown(self))
    }
}
