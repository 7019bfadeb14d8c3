//! The client: drivers, hooks, state and the allocation runners, put together.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use nomad_core::driver::TaskDriver;
use nomad_core::structs::{Allocation, Node};
use nomad_discovery::{InMemoryProvider, ServiceProvider};

use crate::alloc_runner::{
    AllocHandle, AllocHookFactory, AllocRunner, RunnerShared, TaskHookFactory,
};
use crate::driver_set::DriverSet;
use crate::fingerprint::{fingerprint_node, NodeSettings};
use crate::hooks::{AllocHook, TaskHook};
use crate::state::{StateError, StateStore};

/// Why the client could not be built or could not run an allocation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A directory could not be created.
    #[error("creating {path}: {reason}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        reason: String,
    },
    /// An allocation with this id already runs.
    #[error("allocation {0:?} already runs on this client")]
    AllocExists(String),
}

/// Builds a [`Client`]: its drivers, service provider, state directory and extra hooks.
///
/// ```
/// use std::sync::Arc;
/// use nomad_client::{ClientBuilder, MockDriver};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), nomad_client::ClientError> {
/// let dir = tempfile::tempdir().map_err(|e| nomad_client::ClientError::Io { path: "tmp".into(), reason: e.to_string() })?;
/// let client = ClientBuilder::new(dir.path().join("alloc"))
///     .driver(Arc::new(MockDriver::new()))
///     .build()
///     .await?;
/// assert!(client.node().drivers["mock"].healthy);
/// # Ok(())
/// # }
/// ```
pub struct ClientBuilder {
    alloc_root: PathBuf,
    state_dir: Option<PathBuf>,
    settings: NodeSettings,
    drivers: Vec<Arc<dyn TaskDriver>>,
    provider: Option<Arc<dyn ServiceProvider>>,
    alloc_hooks: Vec<AllocHookFactory>,
    task_hooks: Vec<TaskHookFactory>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("alloc_root", &self.alloc_root)
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

impl ClientBuilder {
    /// A client whose allocation directories live under `alloc_root`.
    pub fn new(alloc_root: impl Into<PathBuf>) -> Self {
        Self {
            alloc_root: alloc_root.into(),
            state_dir: None,
            settings: NodeSettings::default(),
            drivers: Vec::new(),
            provider: None,
            alloc_hooks: Vec::new(),
            task_hooks: Vec::new(),
        }
    }

    /// Persists the client's state in `dir` (a `redb` file), so a restarted client recovers
    /// its tasks with [`Client::restore`].
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// The node's id, name, datacenter, class, pool and meta.
    pub fn node_settings(mut self, settings: NodeSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Offers a driver. Drivers that fingerprint as undetected (disabled) are refused to
    /// every task.
    pub fn driver(mut self, driver: Arc<dyn TaskDriver>) -> Self {
        self.drivers.push(driver);
        self
    }

    /// The service provider services are registered with and templates query; an
    /// [`InMemoryProvider`] by default.
    pub fn service_provider(mut self, provider: Arc<dyn ServiceProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Adds an alloc hook, run after the built-in ones.
    pub fn alloc_hook(
        mut self,
        factory: impl Fn(&Allocation) -> Option<Arc<dyn AllocHook>> + Send + Sync + 'static,
    ) -> Self {
        self.alloc_hooks.push(Arc::new(factory));
        self
    }

    /// Adds a task hook, run after the built-in ones.
    pub fn task_hook(
        mut self,
        factory: impl Fn(&Allocation, &nomad_core::job::Task) -> Option<Arc<dyn TaskHook>>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.task_hooks.push(Arc::new(factory));
        self
    }

    /// Fingerprints the node and drivers and opens the state.
    ///
    /// # Errors
    ///
    /// When the directories cannot be created or the state database cannot be opened.
    pub async fn build(self) -> Result<Client, ClientError> {
        let mkdir = |path: &PathBuf| {
            std::fs::create_dir_all(path).map_err(|e| ClientError::Io {
                path: path.clone(),
                reason: e.to_string(),
            })
        };
        mkdir(&self.alloc_root)?;
        let store = match &self.state_dir {
            Some(dir) => {
                mkdir(dir)?;
                Some(StateStore::open(&dir.join("client.db"))?)
            }
            None => None,
        };
        let mut settings = self.settings;
        if let (true, Some(dir)) = (settings.id.is_empty(), &self.state_dir) {
            settings.id = client_id(dir).await?;
        }
        let drivers = Arc::new(DriverSet::fingerprint(self.drivers).await);
        let node = Arc::new(fingerprint_node(&settings, &drivers).await);
        let shared = RunnerShared {
            node,
            drivers,
            provider: self
                .provider
                .unwrap_or_else(|| Arc::new(InMemoryProvider::new())),
            store,
            alloc_root: self.alloc_root,
            alloc_hooks: self.alloc_hooks,
            task_hooks: self.task_hooks,
        };
        Ok(Client {
            shared,
            runners: Mutex::new(BTreeMap::new()),
        })
    }
}

/// The node id kept in `<state dir>/client-id`, made on first use, so a restarted agent is
/// the same node.
async fn client_id(dir: &std::path::Path) -> Result<String, ClientError> {
    let path = dir.join("client-id");
    let io = |e: std::io::Error| ClientError::Io {
        path: path.clone(),
        reason: e.to_string(),
    };
    match tokio::fs::read_to_string(&path).await {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let id = tokio::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .await
        .map_err(io)?
        .trim()
        .to_owned();
    tokio::fs::write(&path, &id).await.map_err(io)?;
    Ok(id)
}

/// The client agent, without a server: hand it allocations, watch their tasks.
pub struct Client {
    shared: RunnerShared,
    runners: Mutex<BTreeMap<String, AllocHandle>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("node", &self.shared.node.id)
            .finish()
    }
}

impl Client {
    /// The fingerprinted node.
    pub fn node(&self) -> &Node {
        &self.shared.node
    }

    /// The service provider.
    pub fn service_provider(&self) -> Arc<dyn ServiceProvider> {
        self.shared.provider.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, AllocHandle>> {
        self.runners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs an allocation; its node id is set to this node's.
    ///
    /// # Errors
    ///
    /// [`ClientError::AllocExists`] when an allocation with this id already runs.
    pub fn run_alloc(&self, mut alloc: Allocation) -> Result<AllocHandle, ClientError> {
        let mut runners = self.lock();
        if runners.contains_key(alloc.id.as_str()) {
            return Err(ClientError::AllocExists(alloc.id.to_string()));
        }
        if alloc.node_id.is_empty() {
            alloc.node_id = self.shared.node.id.clone();
        }
        let id = alloc.id.clone();
        let handle = AllocRunner::new(alloc, self.shared.clone(), BTreeMap::new()).start();
        runners.insert(id.to_string(), handle.clone());
        Ok(handle)
    }

    /// Restores the allocations of the state directory: running tasks are re-attached
    /// through their driver's `recover`, dead tasks stay dead, finished hooks are not run
    /// again.
    ///
    /// # Errors
    ///
    /// When the state cannot be read.
    pub async fn restore(&self) -> Result<Vec<AllocHandle>, ClientError> {
        let Some(store) = &self.shared.store else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for alloc in store.allocs().await? {
            let tasks = store.tasks(&alloc.id).await?;
            let mut runners = self.lock();
            if runners.contains_key(alloc.id.as_str()) {
                continue;
            }
            let id = alloc.id.clone();
            let handle = AllocRunner::new(alloc, self.shared.clone(), tasks).start();
            runners.insert(id.to_string(), handle.clone());
            out.push(handle);
        }
        Ok(out)
    }

    /// The runner of allocation `id`.
    pub fn alloc(&self, id: &str) -> Option<AllocHandle> {
        self.lock().get(id).cloned()
    }

    /// Destroys allocation `id`: kills it if it runs, runs its destroy hooks (its
    /// directory is removed) and forgets its persisted state.
    pub async fn remove_alloc(&self, id: &str) {
        let handle = self.lock().remove(id);
        if let Some(handle) = handle {
            handle.destroy().await;
        }
    }

    /// Stops every runner and leaves the tasks running, for a later client to restore.
    pub async fn shutdown(&self) {
        let runners: Vec<AllocHandle> = self.lock().values().cloned().collect();
        for r in &runners {
            r.shutdown();
        }
        for r in &runners {
            r.wait().await;
        }
    }
}
