//! The Raft log over `redb`: entries keyed by index, and the vote, the committed log id and
//! the last purged log id in a metadata table of the same file.
//!
//! Every write is one `redb` write transaction done on the blocking pool; appends, votes and
//! purges are durable when they return, the committed log id is written without forcing a
//! sync (it is an optimisation for replay on restart and may lag after a crash).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

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

/// First byte of an entry stored compressed: an LZ4 block of the entry's JSON follows,
/// after its length (four bytes, little-endian). Entries written uncompressed are JSON
/// objects and start with `{`, so both read back.
const LZ4_TAG: u8 = 0x01;

/// The largest decompressed entry accepted: a corrupt length must not make a reader
/// allocate without bound.
const MAX_ENTRY_BYTES: usize = 1 << 30;

/// An entry as stored: its JSON, LZ4-compressed. Plans repeat the same field names and
/// values for every allocation, so the file receives a fraction of the bytes.
fn encode_entry(e: &Entry) -> Result<Vec<u8>, AnyError> {
    let fail = |err: &dyn std::fmt::Display| {
        any(format!("encoding raft log entry {}: {err}", e.log_id.index))
    };
    let json = serde_json::to_vec(e).map_err(|err| fail(&err))?;
    let len = u32::try_from(json.len()).map_err(|err| fail(&err))?;
    // Compressed straight into the stored form, after the tag and the length.
    let mut out = vec![0u8; 5 + lz4_flex::block::get_maximum_output_size(json.len())];
    out[0] = LZ4_TAG;
    out[1..5].copy_from_slice(&len.to_le_bytes());
    let packed = lz4_flex::block::compress_into(&json, &mut out[5..]).map_err(|err| fail(&err))?;
    out.truncate(5 + packed);
    Ok(out)
}

fn decode_entry(index: u64, bytes: &[u8]) -> Result<Entry, AnyError> {
    let corrupt =
        |e: &dyn std::fmt::Display| any(format!("raft log entry {index} is corrupt: {e}"));
    match bytes.split_first() {
        Some((&LZ4_TAG, packed)) => {
            let (len, block) = packed
                .split_first_chunk::<4>()
                .ok_or_else(|| corrupt(&"truncated length"))?;
            let declared = u32::from_le_bytes(*len) as usize;
            if declared > MAX_ENTRY_BYTES {
                return Err(corrupt(&format!("declared length {declared} is too large")));
            }
            let json = lz4_flex::block::decompress(block, declared).map_err(|e| corrupt(&e))?;
            serde_json::from_slice(&json).map_err(|e| corrupt(&e))
        }
        _ => serde_json::from_slice(bytes).map_err(|e| corrupt(&e)),
    }
}

/// Entries appended and not yet applied, kept decoded so that the state machine applies
/// them without reading them back from `redb`. The file stays the record: an entry
/// missing here (evicted, or never cached after a restart) is read from it.
#[derive(Default)]
struct RecentEntries {
    entries: BTreeMap<u64, Entry>,
}

/// The most entries [`RecentEntries`] holds; beyond it the oldest are dropped (and read
/// from the file when needed). Entries leave it when applied, so it normally holds the
/// few in flight; the bound caps what a node that appends without applying keeps.
const RECENT_MAX: usize = 1024;

impl RecentEntries {
    fn insert(&mut self, e: Entry) {
        self.entries.insert(e.log_id.index, e);
        while self.entries.len() > RECENT_MAX {
            self.entries.pop_first();
        }
    }
}

/// The Raft log store. Cloning it is cheap; a clone is also the log reader replication uses.
///
/// The store itself is what the Raft core reads entries to apply from: those reads take
/// the entries out of the recent-entry cache (each is applied once), while the readers
/// handed to replication copy them and leave them for the state machine.
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<Database>,
    recent: Arc<Mutex<RecentEntries>>,
    /// Reads take entries out of the cache (the core's reads for the state machine).
    takes: bool,
}

impl LogStore {
    pub(super) fn new(db: Arc<Database>) -> LogStore {
        LogStore {
            db,
            recent: Arc::new(Mutex::new(RecentEntries::default())),
            takes: true,
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, RecentEntries> {
        match self.recent.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The entries of `range` the cache holds, taken or copied; `None` unless it holds
    /// every one of them.
    fn cached(&self, range: (Bound<u64>, Bound<u64>)) -> Option<Vec<Entry>> {
        let mut recent = self.recent();
        let start = match range.0 {
            Bound::Included(s) => s,
            Bound::Excluded(s) => s.checked_add(1)?,
            Bound::Unbounded => return None,
        };
        let end = match range.1 {
            Bound::Included(e) => e.checked_add(1)?,
            Bound::Excluded(e) => e,
            Bound::Unbounded => return None,
        };
        if end <= start {
            return Some(Vec::new());
        }
        let held = recent.entries.range(start..end).count() as u64;
        if held != end - start {
            return None;
        }
        if self.takes {
            let mut out = Vec::with_capacity(held as usize);
            for i in start..end {
                out.extend(recent.entries.remove(&i));
            }
            Some(out)
        } else {
            Some(
                recent
                    .entries
                    .range(start..end)
                    .map(|(_, e)| e.clone())
                    .collect(),
            )
        }
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
        let bounds = owned_bounds(&range);
        if let Some(entries) = self.cached(bounds) {
            return Ok(entries);
        }
        let db = Arc::clone(&self.db);
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
        LogStore {
            takes: false,
            ..self.clone()
        }
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
        let entries: Vec<Entry> = entries.into_iter().collect();
        let db = Arc::clone(&self.db);
        // Encoding and writing happen on the blocking pool, off the Raft core's task.
        let written = blocking(
            move || {
                let mut encoded = Vec::with_capacity(entries.len());
                for e in &entries {
                    encoded.push((e.log_id.index, encode_entry(e)?));
                }
                let w = db.begin_write().map_err(any)?;
                {
                    let mut log = w.open_table(LOG).map_err(any)?;
                    for (i, bytes) in &encoded {
                        log.insert(*i, bytes.as_slice()).map_err(any)?;
                    }
                }
                w.commit().map_err(any)?;
                Ok(entries)
            },
            StorageIOError::write_logs,
        )
        .await;
        match written {
            Ok(entries) => {
                {
                    let mut recent = self.recent();
                    for e in entries {
                        recent.insert(e);
                    }
                }
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
        drop(self.recent().entries.split_off(&log_id.index));
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
        {
            let mut recent = self.recent();
            let kept = log_id
                .index
                .checked_add(1)
                .map(|next| recent.entries.split_off(&next))
                .unwrap_or_default();
            recent.entries = kept;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Command;
    use nomad_core::structs::{status, Allocation};
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64, cmd: Command) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(cmd),
        }
    }

    fn plan(allocs: usize) -> Command {
        let placed = (0..allocs)
            .map(|i| {
                Arc::new(Allocation {
                    id: format!("alloc-{i:05}").into(),
                    name: format!("web.app[{i}]"),
                    node_id: format!("node-{}", i % 7).into(),
                    job_id: "web".into(),
                    task_group: "app".into(),
                    desired_status: status::shared::ALLOC_DESIRED_RUN,
                    client_status: status::shared::ALLOC_CLIENT_PENDING,
                    ..Allocation::default()
                })
            })
            .collect();
        Command::ApplyPlan {
            eval_id: "eval-1".into(),
            job: None,
            stops: Vec::new(),
            placed,
            deployment: None,
            deployment_updates: Vec::new(),
            time: 0,
            committed: Default::default(),
        }
    }

    fn json_of(e: &Entry) -> Vec<u8> {
        serde_json::to_vec(e).expect("json")
    }

    #[test]
    fn entries_are_stored_compressed_and_read_back_whole() {
        let e = entry(7, plan(500));
        let stored = encode_entry(&e).expect("encodes");
        assert_eq!(stored.first(), Some(&LZ4_TAG));
        let json = json_of(&e);
        // A plan repeats the same fields for every allocation.
        assert!(
            stored.len() * 4 < json.len(),
            "{} bytes stored for {} bytes of JSON",
            stored.len(),
            json.len()
        );
        let back = decode_entry(7, &stored).expect("decodes");
        assert_eq!(json_of(&back), json);
        // The stored form is the tag, then LZ4's own length-prefixed block.
        let mut framed = vec![LZ4_TAG];
        framed.extend_from_slice(&lz4_flex::compress_prepend_size(&json));
        assert_eq!(stored, framed);
    }

    #[test]
    fn entries_written_as_plain_json_still_read() {
        let e = entry(3, plan(2));
        let back = decode_entry(3, &json_of(&e)).expect("plain JSON decodes");
        assert_eq!(json_of(&back), json_of(&e));
    }

    #[test]
    fn a_corrupt_entry_is_an_error_naming_its_index() {
        let stored = encode_entry(&entry(9, plan(3))).expect("encodes");
        let truncated = &stored[..stored.len() / 2];
        let err = decode_entry(9, truncated).expect_err("truncated");
        assert!(
            err.to_string().contains("raft log entry 9 is corrupt"),
            "{err}"
        );
        // A length far beyond any real entry is refused before anything is allocated.
        let mut huge = vec![LZ4_TAG];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0u8; 16]);
        let err = decode_entry(9, &huge).expect_err("huge length");
        assert!(err.to_string().contains("too large"), "{err}");
        assert!(decode_entry(9, &[LZ4_TAG, 1]).is_err());
    }
}
