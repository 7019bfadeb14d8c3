//! The client side of the agent: fingerprint, register, heartbeat, watch the node's
//! allocations with blocking queries, run them with nomad-client's allocation runners, and
//! push their status back to the server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use nomad_api::QueryOptions;
use nomad_client::{AllocHandle, ClientBuilder, NodeSettings, RawExecConfig, RawExecDriver};
use nomad_core::structs::{AllocDeploymentStatus, Allocation, Node};
use tokio::sync::watch;
use tokio::time::Instant;

use super::catalog::NativeCatalog;

/// What the client agent needs.
pub(crate) struct ClientAgentConfig {
    /// The server API the client talks to.
    pub(crate) api: nomad_api::Client,
    /// The agent's data directory; the client keeps `client/` and `alloc/` in it.
    pub(crate) data_dir: PathBuf,
    /// Node name, datacenter, class, pool and meta.
    pub(crate) settings: NodeSettings,
    /// Whether `raw_exec` may run tasks.
    pub(crate) raw_exec: bool,
    /// The agent's HTTP address, recorded in the node.
    pub(crate) http_addr: String,
    /// Kill every allocation when the agent stops (a `-dev` agent on a temporary
    /// directory); otherwise tasks keep running for the next agent to recover.
    pub(crate) stop_allocs_on_shutdown: bool,
}

/// Allocations the agent runs, with the last `AllocModifyIndex` handed to their runner.
type Known = Arc<Mutex<BTreeMap<String, u64>>>;

/// A running client agent.
pub(crate) struct ClientAgent {
    client: Arc<nomad_client::Client>,
    known: Known,
    stop_allocs: bool,
}

/// Free space of the file system holding `dir`, in MiB (what allocations' ephemeral disks
/// are placed against).
fn free_disk_mb(dir: &Path) -> u64 {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => s.blocks_available().saturating_mul(s.fragment_size()) >> 20,
        Err(_) => 0,
    }
}

/// Where allocation directories live under `data_dir`.
pub(crate) fn alloc_root(data_dir: &Path) -> PathBuf {
    data_dir.join("alloc")
}

/// The node's ID: kept in `client/node-id` so a restarted agent is the same node.
fn node_id(data_dir: &Path) -> anyhow::Result<String> {
    let dir = data_dir.join("client");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("node-id");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim().to_string();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    let id = nomad_server::new_id();
    std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

impl ClientAgent {
    /// Builds the client (fingerprinting the node), restores the allocations of a previous
    /// agent, and spawns registration, heartbeats and the allocation watch.
    pub(crate) async fn start(
        cfg: ClientAgentConfig,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<(ClientAgent, Node)> {
        let mut settings = cfg.settings.clone();
        settings.id = node_id(&cfg.data_dir)?;
        let catalog = NativeCatalog::start(cfg.api.clone(), stop.clone());
        let client = ClientBuilder::new(alloc_root(&cfg.data_dir))
            .state_dir(cfg.data_dir.join("client"))
            .node_settings(settings)
            .driver(Arc::new(RawExecDriver::new(RawExecConfig {
                enabled: cfg.raw_exec,
            })))
            .service_provider(catalog)
            .build()
            .await
            .context("starting the client")?;
        let client = Arc::new(client);
        let mut node = client.node().clone();
        node.http_addr.clone_from(&cfg.http_addr);
        node.status = nomad_core::structs::status::NODE_READY.into();
        if let Some(r) = node.node_resources.as_mut() {
            if r.disk.disk_mb == 0 {
                r.disk.disk_mb = free_disk_mb(&cfg.data_dir);
            }
        }

        let restored = client.restore().await.context("restoring allocations")?;
        let known: Known = Arc::new(Mutex::new(BTreeMap::new()));
        let agent = ClientAgent {
            client: Arc::clone(&client),
            known: Arc::clone(&known),
            stop_allocs: cfg.stop_allocs_on_shutdown,
        };
        let runner = Runner {
            api: cfg.api,
            client,
            node: node.clone(),
            known,
        };
        tokio::spawn(runner.run(restored, stop));
        Ok((agent, node))
    }

    /// Stops the runners: every allocation is killed when the agent ran on a temporary
    /// directory, otherwise the tasks are left running for the next agent.
    pub(crate) async fn shutdown(&self) {
        if !self.stop_allocs {
            self.client.shutdown().await;
            return;
        }
        let ids: Vec<String> = lock(&self.known).keys().cloned().collect();
        let handles: Vec<AllocHandle> = ids.iter().filter_map(|id| self.client.alloc(id)).collect();
        for h in &handles {
            h.kill();
        }
        for h in handles {
            let _ = tokio::time::timeout(Duration::from_secs(10), h.wait()).await;
        }
    }
}

fn lock(known: &Known) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
    known.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Runner {
    api: nomad_api::Client,
    client: Arc<nomad_client::Client>,
    node: Node,
    known: Known,
}

impl Runner {
    async fn run(self, restored: Vec<AllocHandle>, mut stop: watch::Receiver<bool>) {
        for h in restored {
            lock(&self.known).insert(h.alloc_id().to_string(), 0);
            tokio::spawn(push_status(self.api.clone(), h, None));
        }
        let ttl = loop {
            match self.register().await {
                Ok(ttl) => break ttl,
                Err(e) => {
                    tracing::error!(error = %e, "client: registering the node failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
        };
        tracing::info!(node_id = %self.node.id, "client: node registration complete");
        tokio::spawn(heartbeat(
            self.api.clone(),
            self.node.clone(),
            ttl,
            stop.clone(),
        ));
        let mut index = 0;
        loop {
            let q = QueryOptions::blocking(index, Duration::from_secs(60));
            let answer = tokio::select! {
                a = self.api.node_allocations(&self.node.id, &q) => a,
                _ = stop.changed() => return,
            };
            match answer {
                Ok((allocs, meta)) => {
                    index = meta.last_index;
                    self.reconcile(allocs);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "client: watching allocations failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Registers the node, keeping the eligibility and drain the server already has for
    /// it (an agent restart must not undo `node eligibility` or `node drain`).
    async fn register(&self) -> anyhow::Result<Duration> {
        let mut node = self.node.clone();
        if let Ok((old, _)) = self.api.node(&node.id, &QueryOptions::default()).await {
            node.scheduling_eligibility = old.scheduling_eligibility;
            node.drain = old.drain;
            node.drain_strategy = old.drain_strategy;
        }
        let r = self.api.register_node(&node).await?;
        Ok(Duration::from_nanos(r.heartbeat_ttl))
    }

    /// Starts new allocations, hands changed ones to their runner, stops the ones the
    /// server wants stopped or no longer knows.
    fn reconcile(&self, allocs: Vec<Allocation>) {
        let mut known = lock(&self.known);
        let mut seen = std::collections::BTreeSet::new();
        for alloc in allocs {
            seen.insert(alloc.id.clone());
            let handle = self.client.alloc(&alloc.id);
            if alloc.server_terminal() {
                if let Some(h) = handle {
                    if known.get(alloc.id.as_str()) != Some(&u64::MAX) {
                        tracing::info!(alloc_id = %alloc.id, "client: stopping allocation");
                        h.kill();
                        known.insert(alloc.id.to_string(), u64::MAX);
                    }
                }
                continue;
            }
            match handle {
                Some(h) => match known.get(alloc.id.as_str()).copied() {
                    Some(0) | None => {
                        known.insert(alloc.id.to_string(), alloc.alloc_modify_index);
                    }
                    Some(i) if i != alloc.alloc_modify_index && i != u64::MAX => {
                        known.insert(alloc.id.to_string(), alloc.alloc_modify_index);
                        h.update(alloc);
                    }
                    Some(_) => {}
                },
                None if alloc.client_terminal() => {}
                None => {
                    let id = alloc.id.clone();
                    let index = alloc.alloc_modify_index;
                    let snapshot = Arc::new(alloc.clone());
                    match self.client.run_alloc(alloc) {
                        Ok(h) => {
                            tracing::info!(alloc_id = %id, "client: started allocation");
                            known.insert(id.to_string(), index);
                            tokio::spawn(push_status(self.api.clone(), h, Some(snapshot)));
                        }
                        Err(e) => tracing::warn!(alloc_id = %id, error = %e, "client: run"),
                    }
                }
            }
        }
        let gone: Vec<String> = known
            .keys()
            .filter(|id| !seen.contains(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            if let Some(h) = self.client.alloc(&id) {
                h.kill();
            }
            known.remove(&id);
        }
    }
}

async fn heartbeat(
    api: nomad_api::Client,
    node: Node,
    mut ttl: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let wait = (ttl / 2).clamp(Duration::from_millis(500), Duration::from_secs(5));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        match api.heartbeat(&node.id, Some("ready")).await {
            Ok(r) if r.heartbeat_ttl > 0 => ttl = Duration::from_nanos(r.heartbeat_ttl),
            Ok(_) => {}
            Err(e) if e.status() == Some(404) => {
                tracing::warn!("client: the server forgot this node; registering again");
                if let Err(e) = api.register_node(&node).await {
                    tracing::error!(error = %e, "client: registering the node failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "client: heartbeat failed"),
        }
    }
}

/// How long an allocation must run before it counts as healthy in its deployment, and how
/// long it has to get there before it counts as unhealthy (`min_healthy_time`, 10s, and
/// `healthy_deadline`, 5m, by default).
fn health_times(alloc: &Allocation) -> (Duration, Duration) {
    let group = alloc.group().and_then(|g| g.update.as_ref());
    let job = alloc.job.as_ref().and_then(|j| j.update.as_ref());
    let pick = |f: fn(&nomad_core::job::UpdateStrategy) -> Option<nomad_core::job::Duration>,
                default: Duration| {
        group
            .and_then(f)
            .or_else(|| job.and_then(f))
            .map_or(default, |d| d.to_std())
    };
    (
        pick(|u| u.min_healthy_time, Duration::from_secs(10)),
        pick(|u| u.healthy_deadline, Duration::from_secs(300)),
    )
}

/// True when the allocation's update block leaves its health to an operator
/// (`health_check = "manual"`).
fn manual_health(alloc: &Allocation) -> bool {
    let group = alloc.group().and_then(|g| g.update.as_ref());
    let job = alloc.job.as_ref().and_then(|j| j.update.as_ref());
    group
        .and_then(|u| u.health_check.as_deref())
        .or_else(|| job.and_then(|u| u.health_check.as_deref()))
        == Some("manual")
}

/// Pushes an allocation's status to the server on every change of its tasks' states, and
/// its deployment health once it ran for the group's `min_healthy_time`.
async fn push_status(api: nomad_api::Client, handle: AllocHandle, alloc: Option<Arc<Allocation>>) {
    let id = handle.alloc_id().to_string();
    let alloc = match alloc {
        Some(a) => a,
        None => match api.allocation(&id, &QueryOptions::default()).await {
            Ok((a, _)) => Arc::new(a),
            Err(_) => Arc::new(Allocation {
                id: id.as_str().into(),
                ..Allocation::default()
            }),
        },
    };
    // With `health_check = "manual"` an operator sets health through the deployment API.
    let tracks_health = !alloc.deployment_id.is_empty() && !manual_health(&alloc);
    let (min_healthy, healthy_deadline) = health_times(&alloc);
    let health_deadline = Instant::now() + healthy_deadline;
    let mut healthy = alloc.deployment_status.as_ref().and_then(|d| d.healthy);
    let mut running_since: Option<Instant> = None;
    let mut states = handle.watch_states();
    let mut last: Option<Allocation> = None;
    let mut finished = false;
    loop {
        let current = states.borrow_and_update().clone();
        let (status, description) = nomad_client::client_status(&current);
        if tracks_health && healthy.is_none() {
            if status == "failed" || Instant::now() >= health_deadline {
                healthy = Some(false);
            } else if status == "running" {
                let since = *running_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= min_healthy {
                    healthy = Some(true);
                }
            } else {
                running_since = None;
            }
        }
        let update = Allocation {
            id: id.as_str().into(),
            client_status: status.to_string().into(),
            client_description: description.to_string(),
            task_states: current,
            deployment_status: healthy.map(|h| AllocDeploymentStatus {
                healthy: Some(h),
                timestamp: Some(now_rfc3339()),
                ..AllocDeploymentStatus::default()
            }),
            ..Allocation::default()
        };
        let changed = last.as_ref().is_none_or(|l| {
            l.client_status != update.client_status
                || l.task_states != update.task_states
                || l.deployment_status.as_ref().and_then(|d| d.healthy) != healthy
        });
        if changed && !update.task_states.is_empty() {
            for attempt in 0..5u32 {
                match api.update_allocations(std::slice::from_ref(&update)).await {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(alloc_id = %id, error = %e, "client: pushing allocation status");
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt + 1)))
                            .await;
                    }
                }
            }
            last = Some(update);
        }
        if finished {
            return;
        }
        let health_due = match (tracks_health && healthy.is_none(), running_since) {
            (true, Some(since)) => Some((since + min_healthy).min(health_deadline)),
            (true, None) => Some(health_deadline),
            _ => None,
        };
        tokio::select! {
            r = states.changed() => {
                if r.is_err() {
                    finished = true;
                }
            }
            _ = handle.wait() => finished = true,
            _ = async {
                match health_due {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    }
}

/// Now, as RFC 3339 text (UTC).
pub(crate) fn now_rfc3339() -> String {
    crate::format::rfc3339(nomad_server::now_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomad_core::job::{Duration as JobDuration, Job, TaskGroup, UpdateStrategy};

    fn alloc(
        group_update: Option<UpdateStrategy>,
        job_update: Option<UpdateStrategy>,
    ) -> Allocation {
        let job = Job {
            id: "web".into(),
            update: job_update,
            task_groups: vec![TaskGroup {
                name: "app".into(),
                update: group_update,
                ..TaskGroup::default()
            }],
            ..Job::default()
        };
        Allocation {
            task_group: "app".into(),
            job: Some(Arc::new(job)),
            ..Allocation::default()
        }
    }

    #[test]
    fn health_times_come_from_the_group_then_the_job_then_nomads_defaults() {
        assert_eq!(
            health_times(&alloc(None, None)),
            (Duration::from_secs(10), Duration::from_secs(300))
        );
        let job = UpdateStrategy {
            min_healthy_time: Some(JobDuration::from_secs(2)),
            healthy_deadline: Some(JobDuration::from_secs(20)),
            ..UpdateStrategy::default()
        };
        let group = UpdateStrategy {
            healthy_deadline: Some(JobDuration::from_secs(7)),
            ..UpdateStrategy::default()
        };
        assert_eq!(
            health_times(&alloc(Some(group), Some(job))),
            (Duration::from_secs(2), Duration::from_secs(7))
        );
    }

    #[test]
    fn manual_health_checks_are_left_to_the_operator() {
        let manual = UpdateStrategy {
            health_check: Some("manual".into()),
            ..UpdateStrategy::default()
        };
        assert!(manual_health(&alloc(Some(manual.clone()), None)));
        assert!(manual_health(&alloc(None, Some(manual))));
        assert!(!manual_health(&alloc(None, None)));
    }
}
