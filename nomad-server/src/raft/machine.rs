//! The Raft state machine: committed entries are applied in order to the [`StateStore`];
//! snapshots are the state store's own serialisation ([`PersistedState`]) kept in the same
//! `redb` file as the log, so a restart restores the latest snapshot and replays the
//! committed entries after it.
//!
//! Every entry advances the state index, blank and membership entries included (they apply
//! as [`Command::Noop`]), so the state index is always the last applied log index.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageIOError,
    StoredMembership,
};
use redb::{Database, TableDefinition};

use super::store::{blocking, read_meta, StoreResult, META};
use super::{Entry, Node, NodeId, TypeConfig};
use crate::state::{ApplyEffects, Command, PersistedState, StateData, StateSnapshot, StateStore};

const SNAPSHOT_META_KEY: &str = "snapshot_meta";
const SNAPSHOT_DATA: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("raft_snapshot");
const SNAPSHOT_DATA_KEY: &str = "data";

type Meta = SnapshotMeta<NodeId, Node>;

fn any(e: impl std::fmt::Display) -> AnyError {
    AnyError::error(e.to_string())
}

fn decode_state(bytes: &[u8]) -> Result<StateData, AnyError> {
    let p: PersistedState =
        serde_json::from_slice(bytes).map_err(|e| any(format!("snapshot is corrupt: {e}")))?;
    Ok(StateData::from_persisted(p))
}

/// Writes a snapshot's metadata and data in one durable transaction, replacing the last.
fn save_snapshot(db: &Database, meta: &Meta, data: &[u8]) -> Result<(), AnyError> {
    let meta_bytes = serde_json::to_vec(meta).map_err(any)?;
    let w = db.begin_write().map_err(any)?;
    {
        let mut m = w.open_table(META).map_err(any)?;
        m.insert(SNAPSHOT_META_KEY, meta_bytes.as_slice())
            .map_err(any)?;
        let mut d = w.open_table(SNAPSHOT_DATA).map_err(any)?;
        d.insert(SNAPSHOT_DATA_KEY, data).map_err(any)?;
    }
    w.commit().map_err(any)
}

/// Reads the latest snapshot, if any.
fn load_snapshot(db: &Database) -> Result<Option<(Meta, Vec<u8>)>, AnyError> {
    let Some(meta) = read_meta::<Meta>(db, SNAPSHOT_META_KEY)? else {
        return Ok(None);
    };
    let r = db.begin_read().map_err(any)?;
    let d = match r.open_table(SNAPSHOT_DATA) {
        Ok(d) => d,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(any(e)),
    };
    let data = d.get(SNAPSHOT_DATA_KEY).map_err(any)?;
    Ok(data.map(|v| (meta, v.value().to_vec())))
}

/// The state machine: the server's [`StateStore`] plus what Raft needs to know about it.
pub(crate) struct StateMachine {
    state: Arc<StateStore>,
    db: Arc<Database>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    snapshots_built: u64,
    /// The last applied index, for readers outside Raft.
    applied: Arc<AtomicU64>,
}

impl StateMachine {
    /// Restores `state` from the latest snapshot in `db`, if there is one. `applied`
    /// follows the last applied index.
    pub(super) async fn open(
        db: Arc<Database>,
        state: Arc<StateStore>,
        applied: Arc<AtomicU64>,
    ) -> StoreResult<StateMachine> {
        let read = Arc::clone(&db);
        let restored = blocking(
            move || match load_snapshot(&read)? {
                Some((meta, bytes)) => Ok(Some((meta, decode_state(&bytes)?))),
                None => Ok(None),
            },
            |e| StorageIOError::read_snapshot(None, e),
        )
        .await?;
        let mut sm = StateMachine {
            state,
            db,
            last_applied: None,
            membership: StoredMembership::default(),
            snapshots_built: 0,
            applied,
        };
        if let Some((meta, data)) = restored {
            sm.state.restore(data);
            sm.set_applied(meta.last_log_id);
            sm.membership = meta.last_membership;
        }
        Ok(sm)
    }

    fn set_applied(&mut self, log_id: Option<LogId<NodeId>>) {
        self.last_applied = log_id;
        self.applied
            .store(log_id.map_or(0, |l| l.index), Ordering::Release);
    }
}

/// Builds a snapshot of the state as it was when the builder was made.
pub(crate) struct SnapshotBuilder {
    db: Arc<Database>,
    snap: StateSnapshot,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    seq: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, self.seq),
            None => format!("0-0-{}", self.seq),
        };
        let meta = Meta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let db = Arc::clone(&self.db);
        let snap = self.snap.clone();
        let saved = meta.clone();
        let data = blocking(
            move || {
                let data = serde_json::to_vec(&snap.to_persisted()).map_err(any)?;
                save_snapshot(&db, &saved, &data)?;
                Ok(data)
            },
            |e| StorageIOError::write_snapshot(None, e),
        )
        .await?;
        tracing::debug!(index = ?meta.last_log_id.map(|l| l.index), bytes = data.len(), "state snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<ApplyEffects>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut batch = Vec::new();
        let mut last = None;
        for e in entries {
            last = Some(e.log_id);
            let cmd = match e.payload {
                EntryPayload::Normal(cmd) => cmd,
                EntryPayload::Blank => Command::Noop,
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(e.log_id), m);
                    Command::Noop
                }
            };
            cmd.signal_committed(e.log_id.index);
            batch.push((e.log_id.index, cmd));
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let effects = self.state.apply_batch(batch);
        self.set_applied(last);
        Ok(effects)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        self.snapshots_built += 1;
        SnapshotBuilder {
            db: Arc::clone(&self.db),
            snap: self.state.snapshot(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            seq: self.snapshots_built,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        let bytes = snapshot.into_inner();
        let db = Arc::clone(&self.db);
        let saved = meta.clone();
        let signature = meta.signature();
        let data = blocking(
            move || {
                let data = decode_state(&bytes)?;
                save_snapshot(&db, &saved, &bytes)?;
                Ok(data)
            },
            move |e| StorageIOError::write_snapshot(Some(signature), e),
        )
        .await?;
        self.state.restore(data);
        self.set_applied(meta.last_log_id);
        self.membership = meta.last_membership.clone();
        tracing::info!(index = ?meta.last_log_id.map(|l| l.index), "installed a state snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        let db = Arc::clone(&self.db);
        let loaded = blocking(
            move || load_snapshot(&db),
            |e| StorageIOError::read_snapshot(None, e),
        )
        .await?;
        Ok(loaded.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
