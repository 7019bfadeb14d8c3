//! Client state persisted in `redb`: allocations, task states, driver handles, hook state.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use nomad_core::driver::TaskHandle;
use nomad_core::structs::{Allocation, TaskState};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::hooks::HookState;

const ALLOCS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("allocs");
const TASKS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("tasks");

/// What the client keeps about one task across agent restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LocalTaskState {
    /// The task's state as reported to the server.
    pub state: TaskState,
    /// The driver's handle of the running task, for [`recover`](nomad_core::driver::TaskDriver::recover).
    pub handle: Option<TaskHandle>,
    /// Each prestart hook's persisted state, by hook name.
    pub hooks: BTreeMap<String, HookState>,
}

/// Why the state store failed.
#[derive(Debug, thiserror::Error)]
#[error("client state {what}: {reason}")]
pub struct StateError {
    what: String,
    reason: String,
}

impl StateError {
    fn new(what: &str, reason: impl ToString) -> Self {
        Self {
            what: what.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// The client's state database (one `redb` file).
#[derive(Clone)]
pub struct StateStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateStore")
    }
}

fn task_key(alloc_id: &str, task: &str) -> String {
    format!("{alloc_id}/{task}")
}

impl StateStore {
    /// Opens (or creates) the database at `path`.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or is not a state database.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let db = Database::create(path).map_err(|e| StateError::new("open", e))?;
        let txn = db.begin_write().map_err(|e| StateError::new("open", e))?;
        txn.open_table(ALLOCS)
            .map_err(|e| StateError::new("open", e))?;
        txn.open_table(TASKS)
            .map_err(|e| StateError::new("open", e))?;
        txn.commit().map_err(|e| StateError::new("open", e))?;
        Ok(Self { db: Arc::new(db) })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StateError::new("task", e))?
    }

    fn put(
        db: &Database,
        table: TableDefinition<'_, &str, &[u8]>,
        key: &str,
        value: &[u8],
    ) -> Result<(), StateError> {
        let txn = db.begin_write().map_err(|e| StateError::new("write", e))?;
        {
            let mut t = txn
                .open_table(table)
                .map_err(|e| StateError::new("write", e))?;
            t.insert(key, value)
                .map_err(|e| StateError::new("write", e))?;
        }
        txn.commit().map_err(|e| StateError::new("write", e))
    }

    /// Stores an allocation.
    ///
    /// # Errors
    ///
    /// When the database cannot be written.
    pub async fn put_alloc(&self, alloc: &Allocation) -> Result<(), StateError> {
        let id = alloc.id.clone();
        let bytes = serde_json::to_vec(alloc).map_err(|e| StateError::new("encode", e))?;
        self.blocking(move |db| Self::put(db, ALLOCS, &id, &bytes))
            .await
    }

    /// Stores a task's state.
    ///
    /// # Errors
    ///
    /// When the database cannot be written.
    pub async fn put_task(
        &self,
        alloc_id: &str,
        task: &str,
        state: &LocalTaskState,
    ) -> Result<(), StateError> {
        let key = task_key(alloc_id, task);
        let bytes = serde_json::to_vec(state).map_err(|e| StateError::new("encode", e))?;
        self.blocking(move |db| Self::put(db, TASKS, &key, &bytes))
            .await
    }

    /// Every stored allocation.
    ///
    /// # Errors
    ///
    /// When the database cannot be read; undecodable entries are skipped with a warning.
    pub async fn allocs(&self) -> Result<Vec<Allocation>, StateError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(|e| StateError::new("read", e))?;
            let t = txn.open_table(ALLOCS).map_err(|e| StateError::new("read", e))?;
            let mut out = Vec::new();
            for entry in t.iter().map_err(|e| StateError::new("read", e))? {
                let (k, v) = entry.map_err(|e| StateError::new("read", e))?;
                match serde_json::from_slice(v.value()) {
                    Ok(a) => out.push(a),
                    Err(e) => tracing::warn!(alloc = k.value(), error = %e, "skipping undecodable allocation"),
                }
            }
            Ok(out)
        })
        .await
    }

    /// The stored states of an allocation's tasks, by task name.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn tasks(
        &self,
        alloc_id: &str,
    ) -> Result<BTreeMap<String, LocalTaskState>, StateError> {
        let prefix = format!("{alloc_id}/");
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| StateError::new("read", e))?;
            let t = txn
                .open_table(TASKS)
                .map_err(|e| StateError::new("read", e))?;
            let mut out = BTreeMap::new();
            for entry in t
                .range(prefix.as_str()..)
                .map_err(|e| StateError::new("read", e))?
            {
                let (k, v) = entry.map_err(|e| StateError::new("read", e))?;
                let Some(task) = k.value().strip_prefix(&prefix).map(str::to_owned) else {
                    break;
                };
                match serde_json::from_slice(v.value()) {
                    Ok(s) => {
                        out.insert(task, s);
                    }
                    Err(e) => tracing::warn!(task, error = %e, "skipping undecodable task state"),
                }
            }
            Ok(out)
        })
        .await
    }

    /// Removes an allocation and its tasks' states.
    ///
    /// # Errors
    ///
    /// When the database cannot be written.
    pub async fn delete_alloc(&self, alloc_id: &str) -> Result<(), StateError> {
        let id = alloc_id.to_owned();
        self.blocking(move |db| {
            let prefix = format!("{id}/");
            let txn = db.begin_write().map_err(|e| StateError::new("write", e))?;
            {
                let mut t = txn
                    .open_table(ALLOCS)
                    .map_err(|e| StateError::new("write", e))?;
                t.remove(id.as_str())
                    .map_err(|e| StateError::new("write", e))?;
                let mut tasks = txn
                    .open_table(TASKS)
                    .map_err(|e| StateError::new("write", e))?;
                tasks
                    .retain(|k, _| !k.starts_with(&prefix))
                    .map_err(|e| StateError::new("write", e))?;
            }
            txn.commit().map_err(|e| StateError::new("write", e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trips_allocs_and_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let s = StateStore::open(&path).unwrap();
            s.put_alloc(&Allocation {
                id: "a1".into(),
                ..Allocation::default()
            })
            .await
            .unwrap();
            let mut t = LocalTaskState::default();
            t.state.state = "running".into();
            t.hooks.insert(
                "task_dir".into(),
                HookState {
                    done: true,
                    ..HookState::default()
                },
            );
            s.put_task("a1", "web", &t).await.unwrap();
            s.put_task("a10", "web", &LocalTaskState::default())
                .await
                .unwrap();
        }
        let s = StateStore::open(&path).unwrap();
        assert_eq!(s.allocs().await.unwrap()[0].id, "a1");
        let tasks = s.tasks("a1").await.unwrap();
        assert_eq!(tasks.len(), 1);
        assert!(tasks["web"].hooks["task_dir"].done);
        s.delete_alloc("a1").await.unwrap();
        assert!(s.allocs().await.unwrap().is_empty());
        assert!(s.tasks("a1").await.unwrap().is_empty());
        assert_eq!(s.tasks("a10").await.unwrap().len(), 1);
    }
}
