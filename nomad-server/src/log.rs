//! The replicated log: every write to the state store is a [`Command`] appended to the log,
//! made durable, then applied to the state store in log order.
//!
//! [`ReplicatedLog`] is the seam: the server only appends commands and asks who leads.
//! [`RedbLog`] is the single-voter implementation: a one-server cluster that is always its
//! own leader, with the log, its metadata and state snapshots in one `redb` file. Appends
//! are group-committed (every command waiting when a write transaction starts goes into
//! it), and after `snapshot_threshold` entries the state is snapshotted into the same file
//! and the log before it is compacted away. A multi-server implementation replicates the
//! same entries and applies them through the same [`StateStore::apply_batch`].

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::state::{ApplyEffects, Command, PersistedState, StateData, StateStore};
use crate::ServerError;

const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const SNAPSHOT_KEY: &str = "snapshot";
const SNAPSHOT_INDEX_KEY: &str = "snapshot_index";

/// An entry once it is durable and applied.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Its log index (the state index after it).
    pub index: u64,
    /// What applying it changed.
    pub effects: ApplyEffects,
}

/// The seam between the server and its consensus layer.
pub trait ReplicatedLog: Send + Sync {
    /// Appends a command, waits until it is committed and applied to the local state
    /// store, and returns its index. Fails when this server is not the leader or the log
    /// cannot be written.
    fn apply(
        &self,
        cmd: Command,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Applied, ServerError>> + Send + '_>,
    >;

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

    /// The index of the latest state snapshot (entries up to it are compacted away).
    fn snapshot_index(&self) -> u64;
}

/// Settings of [`RedbLog`].
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Entries applied between two snapshots.
    pub snapshot_threshold: u64,
    /// This server's advertised RPC address (what `status/leader` shows).
    pub advertise: String,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            snapshot_threshold: 8192,
            advertise: "127.0.0.1:4647".to_string(),
        }
    }
}

type Request = (Command, oneshot::Sender<Result<Applied, ServerError>>);

/// A single-voter replicated log over one `redb` file.
pub struct RedbLog {
    tx: mpsc::Sender<Request>,
    applied: Arc<AtomicU64>,
    snapshot_at: Arc<AtomicU64>,
    advertise: String,
}

fn storage(e: impl std::fmt::Display) -> ServerError {
    ServerError::Storage(e.to_string())
}

impl RedbLog {
    /// Opens (or creates) the log at `path`, restores `state` from the latest snapshot and
    /// the entries after it, and starts the writer task.
    pub async fn open(
        path: &Path,
        state: Arc<StateStore>,
        opts: LogOptions,
    ) -> Result<RedbLog, ServerError> {
        let path = path.to_path_buf();
        let (db, data, last) = tokio::task::spawn_blocking(move || recover(&path))
            .await
            .map_err(storage)??;
        let snap_index = data.index();
        state.restore(data);
        let db = Arc::new(db);
        // Replay the entries after the snapshot.
        let replay = {
            let db = Arc::clone(&db);
            tokio::task::spawn_blocking(move || read_entries(&db, snap_index))
                .await
                .map_err(storage)??
        };
        for chunk in replay.chunks(1024) {
            state.apply_batch(chunk);
        }
        let applied = Arc::new(AtomicU64::new(last.max(snap_index)));
        let snapshot_at = Arc::new(AtomicU64::new(snap_index));
        let (tx, rx) = mpsc::channel(4096);
        let writer = Writer {
            db,
            state,
            next: last.max(snap_index) + 1,
            applied: Arc::clone(&applied),
            snapshot_at: Arc::clone(&snapshot_at),
            threshold: opts.snapshot_threshold.max(1),
        };
        tokio::spawn(writer.run(rx));
        Ok(RedbLog {
            tx,
            applied,
            snapshot_at,
            advertise: opts.advertise,
        })
    }
}

impl ReplicatedLog for RedbLog {
    fn apply(
        &self,
        cmd: Command,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Applied, ServerError>> + Send + '_>,
    > {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.tx
                .send((cmd, tx))
                .await
                .map_err(|_| ServerError::ShuttingDown)?;
            rx.await.map_err(|_| ServerError::ShuttingDown)?
        })
    }
    fn is_leader(&self) -> bool {
        true
    }
    fn leader(&self) -> Option<String> {
        Some(self.advertise.clone())
    }
    fn peers(&self) -> Vec<String> {
        vec![self.advertise.clone()]
    }
    fn last_contact_ms(&self) -> u64 {
        0
    }
    fn applied_index(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }
    fn snapshot_index(&self) -> u64 {
        self.snapshot_at.load(Ordering::Acquire)
    }
}

fn recover(path: &Path) -> Result<(Database, StateData, u64), ServerError> {
    let db = Database::create(path).map_err(storage)?;
    {
        let w = db.begin_write().map_err(storage)?;
        w.open_table(LOG).map_err(storage)?;
        w.open_table(META).map_err(storage)?;
        w.commit().map_err(storage)?;
    }
    let r = db.begin_read().map_err(storage)?;
    let meta = r.open_table(META).map_err(storage)?;
    let data = match meta.get(SNAPSHOT_KEY).map_err(storage)? {
        Some(bytes) => {
            let p: PersistedState = serde_json::from_slice(bytes.value())
                .map_err(|e| ServerError::Storage(format!("snapshot is corrupt: {e}")))?;
            StateData::from_persisted(p)
        }
        None => StateData::default(),
    };
    let log = r.open_table(LOG).map_err(storage)?;
    let last = match log.last().map_err(storage)? {
        Some((k, _)) => k.value(),
        None => data.index(),
    };
    drop(log);
    drop(meta);
    drop(r);
    Ok((db, data, last))
}

fn read_entries(db: &Database, after: u64) -> Result<Vec<(u64, Command)>, ServerError> {
    let r = db.begin_read().map_err(storage)?;
    let log = r.open_table(LOG).map_err(storage)?;
    let mut out = Vec::new();
    for item in log.range(after + 1..).map_err(storage)? {
        let (k, v) = item.map_err(storage)?;
        let cmd: Command = serde_json::from_slice(v.value()).map_err(|e| {
            ServerError::Storage(format!("log entry {} is corrupt: {e}", k.value()))
        })?;
        out.push((k.value(), cmd));
    }
    Ok(out)
}

struct Writer {
    db: Arc<Database>,
    state: Arc<StateStore>,
    next: u64,
    applied: Arc<AtomicU64>,
    snapshot_at: Arc<AtomicU64>,
    threshold: u64,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut batch: Vec<Request> = Vec::new();
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < 512 {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.commit(std::mem::take(&mut batch)).await;
            if self.applied.load(Ordering::Acquire)
                >= self.snapshot_at.load(Ordering::Acquire) + self.threshold
            {
                if let Err(e) = self.snapshot().await {
                    tracing::warn!(error = %e, "log snapshot failed");
                }
            }
        }
    }

    async fn commit(&mut self, batch: Vec<Request>) {
        let mut entries = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut encoded = Vec::with_capacity(batch.len());
        let mut index = self.next;
        for (cmd, reply) in batch {
            match serde_json::to_vec(&cmd) {
                Ok(bytes) => {
                    encoded.push((index, bytes));
                    entries.push((index, cmd));
                    replies.push(reply);
                    index += 1;
                }
                Err(e) => {
                    let _ = reply.send(Err(ServerError::Storage(format!(
                        "encoding a {} entry: {e}",
                        cmd.kind()
                    ))));
                }
            }
        }
        if entries.is_empty() {
            return;
        }
        let db = Arc::clone(&self.db);
        let written = tokio::task::spawn_blocking(move || -> Result<(), ServerError> {
            let w = db.begin_write().map_err(storage)?;
            {
                let mut log = w.open_table(LOG).map_err(storage)?;
                for (i, bytes) in &encoded {
                    log.insert(*i, bytes.as_slice()).map_err(storage)?;
                }
            }
            w.commit().map_err(storage)
        })
        .await
        .map_err(storage)
        .and_then(|r| r);
        if let Err(e) = written {
            for r in replies {
                let _ = r.send(Err(e.clone()));
            }
            return;
        }
        self.next = index;
        let effects = self.state.apply_batch(&entries);
        if let Some((last, _)) = entries.last() {
            self.applied.store(*last, Ordering::Release);
        }
        for ((i, _), (fx, r)) in entries.iter().zip(effects.into_iter().zip(replies)) {
            let _ = r.send(Ok(Applied {
                index: *i,
                effects: fx,
            }));
        }
    }

    async fn snapshot(&mut self) -> Result<(), ServerError> {
        let snap = self.state.snapshot();
        let index = snap.index();
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || -> Result<(), ServerError> {
            let bytes = serde_json::to_vec(&snap.to_persisted()).map_err(storage)?;
            let w = db.begin_write().map_err(storage)?;
            {
                let mut meta = w.open_table(META).map_err(storage)?;
                meta.insert(SNAPSHOT_KEY, bytes.as_slice())
                    .map_err(storage)?;
                let idx = index.to_be_bytes();
                meta.insert(SNAPSHOT_INDEX_KEY, idx.as_slice())
                    .map_err(storage)?;
                let mut log = w.open_table(LOG).map_err(storage)?;
                // Keep the last entry so that the next index is known after a restart.
                log.retain_in(..index, |_, _| false).map_err(storage)?;
            }
            w.commit().map_err(storage)
        })
        .await
        .map_err(storage)??;
        self.snapshot_at.store(index, Ordering::Release);
        tracing::debug!(index, "state snapshot written, log compacted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::sim_node;

    #[tokio::test]
    async fn entries_survive_reopen_and_compaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("raft.db");
        let opts = LogOptions {
            snapshot_threshold: 5,
            ..LogOptions::default()
        };
        {
            let state = Arc::new(StateStore::new());
            let log = RedbLog::open(&path, Arc::clone(&state), opts.clone())
                .await
                .expect("open");
            for i in 0..12 {
                let a = log
                    .apply(Command::UpsertNode {
                        node: Box::new(sim_node(i)),
                    })
                    .await
                    .expect("apply");
                assert_eq!(a.index, i as u64 + 1);
            }
            assert!(log.snapshot_index() >= 5);
            assert_eq!(state.snapshot().node_list().len(), 12);
        }
        // Give the dropped writer a moment to release the file.
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            let state = Arc::new(StateStore::new());
            if let Ok(log) = RedbLog::open(&path, Arc::clone(&state), opts.clone()).await {
                assert_eq!(state.snapshot().node_list().len(), 12);
                assert_eq!(state.index(), 12);
                let a = log.apply(Command::Noop).await.expect("apply");
                assert_eq!(a.index, 13);
                return;
            }
        }
        panic!("log could not be reopened");
    }
}
