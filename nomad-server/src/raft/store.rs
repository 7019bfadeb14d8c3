//! The Raft log over `redb`: entries keyed by index, and the vote, the committed log id and
//! the last purged log id in a metadata table of the same file.
//!
//! Every write is one `redb` write transaction done on the blocking pool; appends, votes and
//! purges are durable when they return, the committed log id is written without forcing a
//! sync (it is an optimisation for replay on restart and may lag after a crash).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};
use redb::{Database, Durability, ReadableTable, TableDefinition, TableHandle};

use super::{Entry, NodeId, TypeConfig};

pub(super) const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("raft_log");
pub(super) const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("raft_meta");

const VOTE_KEY: &str = "vote";
const COMMITTED_KEY: &str = "committed";
const PURGED_KEY: &str = "last_purged";

pub(super) type StoreResult<T> = Result<T, StorageError<NodeId>>;

fn any(e: impl std::fmt::Display) -> AnyError {
    AnyError::error(e.to_string())
}

/// Runs a blocking closure on the blocking pool, mapping a join failure to `err`.
pub(super) async fn blocking<T, F, E>(f: F, err: E) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, AnyError> + Send + 'static,
    E: FnOnce(AnyError) -> StorageIOError<NodeId>,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(err(e).into()),
        Err(e) => Err(err(any(e)).into()),
    }
}

/// Creates the tables if the file is new. Refuses a file written by the earlier
/// single-voter log (tables `log` and `meta`), whose state this store cannot read.
pub(super) fn create_tables(db: &Database) -> Result<(), AnyError> {
    {
        let r = db.begin_read().map_err(any)?;
        let names: Vec<String> = r
            .list_tables()
            .map_err(any)?
            .map(|t| t.name().to_string())
            .collect();
        if names.iter().any(|n| n == "log") && !names.iter().any(|n| n == "raft_log") {
            return Err(any(
                "the file was written by the earlier single-voter log format, which this \
                 server no longer reads; start with an empty data directory",
            ));
        }
    }
    let w = db.begin_write().map_err(any)?;
    w.open_table(LOG).map_err(any)?;
    w.open_table(META).map_err(any)?;
    w.commit().map_err(any)
}

/// Reads and decodes one metadata value.
pub(super) fn read_meta<T: serde::de::DeserializeOwned>(
    db: &Database,
    key: &str,
) -> Result<Option<T>, AnyError> {
    let r = db.begin_read().map_err(any)?;
    let meta = r.open_table(META).map_err(any)?;
    match meta.get(key).map_err(any)? {
        Some(v) => serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|e| any(format!("raft metadata {key:?} is corrupt: {e}"))),
        None => Ok(None),
    }
}

fn write_meta<T: serde::Serialize>(
    db: &Database,
    key: &str,
    value: &T,
    durability: Durability,
) -> Result<(), AnyError> {
    let bytes = serde_json::to_vec(value).map_err(any)?;
    let mut w = db.begin_write().map_err(any)?;
    w.set_durability(durability);
    {
        let mut meta = w.open_table(META).map_err(any)?;
        meta.insert(key, bytes.as_slice()).map_err(any)?;
    }
    w.commit().map_err(any)
}

fn decode_entry(index: u64, bytes: &[u8]) -> Result<Entry, AnyError> {
    serde_json::from_slice(bytes)
        .map_err(|e| any(format!("raft log entry {index} is corrupt: {e}")))
}

/// The Raft log store. Cloning it is cheap; a clone is also the log reader replication uses.
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    pub(super) fn new(db: Arc<Database>) -> LogStore {
        LogStore { db }
    }
}

fn owned_bounds<RB: RangeBounds<u64>>(range: &RB) -> (Bound<u64>, Bound<u64>) {
    (range.start_bound().cloned(), range.end_bound().cloned())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry>> {
        let db = Arc::clone(&self.db);
        let bounds = owned_bounds(&range);
        blocking(
            move || {
                let r = db.begin_read().map_err(any)?;
                let log = r.open_table(LOG).map_err(any)?;
                let mut out = Vec::new();
                for item in log.range::<u64>(bounds).map_err(any)? {
                    let (k, v) = item.map_err(any)?;
                    out.push(decode_entry(k.value(), v.value())?);
                }
                Ok(out)
            },
            StorageIOError::read_logs,
        )
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let db = Arc::clone(&self.db);
        blocking(
            move || {
                let purged: Option<LogId<NodeId>> = read_meta(&db, PURGED_KEY)?;
                let r = db.begin_read().map_err(any)?;
                let log = r.open_table(LOG).map_err(any)?;
                let last = match log.last().map_err(any)? {
                    Some((k, v)) => Some(decode_entry(k.value(), v.value())?.log_id),
                    None => purged,
                };
                Ok(LogState {
                    last_purged_log_id: purged,
                    last_log_id: last,
                })
            },
            StorageIOError::read_logs,
        )
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        let db = Arc::clone(&self.db);
        let vote = *vote;
        blocking(
            move || write_meta(&db, VOTE_KEY, &vote, Durability::Immediate),
            StorageIOError::write_vote,
        )
        .await
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        let db = Arc::clone(&self.db);
        blocking(move || read_meta(&db, VOTE_KEY), StorageIOError::read_vote).await
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StoreResult<()> {
        let db = Arc::clone(&self.db);
        // Not synced on its own: the next durable append or vote carries it to disk.
        blocking(
            move || write_meta(&db, COMMITTED_KEY, &committed, Durability::None),
            StorageIOError::write,
        )
        .await
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<NodeId>>> {
        let db = Arc::clone(&self.db);
        blocking(
            move || Ok(read_meta::<Option<LogId<NodeId>>>(&db, COMMITTED_KEY)?.flatten()),
            StorageIOError::read,
        )
        .await
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut encoded = Vec::new();
        for e in entries {
            let bytes = serde_json::to_vec(&e)
                .map_err(|err| StorageIOError::write_log_entry(e.log_id, any(err)))?;
            encoded.push((e.log_id.index, bytes));
        }
        let db = Arc::clone(&self.db);
        let written = blocking(
            move || {
                let w = db.begin_write().map_err(any)?;
                {
                    let mut log = w.open_table(LOG).map_err(any)?;
                    for (i, bytes) in &encoded {
                        log.insert(*i, bytes.as_slice()).map_err(any)?;
                    }
                }
                w.commit().map_err(any)
            },
            StorageIOError::write_logs,
        )
        .await;
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let db = Arc::clone(&self.db);
        blocking(
            move || {
                let w = db.begin_write().map_err(any)?;
                {
                    let mut log = w.open_table(LOG).map_err(any)?;
                    log.retain_in(log_id.index.., |_, _| false).map_err(any)?;
                }
                w.commit().map_err(any)
            },
            StorageIOError::write_logs,
        )
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let db = Arc::clone(&self.db);
        blocking(
            move || {
                let bytes = serde_json::to_vec(&log_id).map_err(any)?;
                let w = db.begin_write().map_err(any)?;
                {
                    let mut meta = w.open_table(META).map_err(any)?;
                    meta.insert(PURGED_KEY, bytes.as_slice()).map_err(any)?;
                    let mut log = w.open_table(LOG).map_err(any)?;
                    log.retain_in(..=log_id.index, |_, _| false).map_err(any)?;
                }
                w.commit().map_err(any)
            },
            StorageIOError::write_logs,
        )
        .await
    }
}
