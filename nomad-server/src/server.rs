//! The server: composes the state store, the replicated log, the eval broker, blocked
//! evaluations, scheduler workers, the plan applier and node liveness, and offers the
//! operations the HTTP API (and embedders) call.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nomad_core::job::{Job, JobType};
use nomad_core::structs::{
    status, Allocation, ArcStr, DrainStrategy, Evaluation, Node, Plan, PlanResult,
    SchedulerConfiguration, ServiceRegistration,
};
use nomad_sched::{
    evaluate_node_plan_with, NodeUsage, Planner, SchedError, SchedState, Scheduler,
    SchedulerOptions,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::blocked::BlockedEvals;
use crate::broker::{BrokerConfig, EvalBroker};
use crate::log::{Applied, LogFuture, ReplicatedLog};
use crate::raft::{InProcessNetwork, LogOptions, RaftLog};
use crate::state::{ns_or_default, Command, StateSnapshot, StateStore};
use crate::{new_id, now_nanos, ServerError};

/// The scheduler types workers take evaluations for.
pub const SCHEDULERS: [&str; 4] = ["service", "batch", "system", "sysbatch"];

/// Changes a job at registration (Connect's sidecar injection is one). Returns warnings.
pub trait JobMutator: Send + Sync {
    /// The mutator's name, for errors.
    fn name(&self) -> &str;
    /// Changes the job; an error refuses the registration.
    fn mutate(&self, job: &mut Job) -> Result<Vec<String>, String>;
}

/// Checks a job at registration, after the mutators. Returns warnings.
pub trait JobValidator: Send + Sync {
    /// The validator's name, for errors.
    fn name(&self) -> &str;
    /// Checks the job; an error refuses the registration.
    fn validate(&self, job: &Job) -> Result<Vec<String>, String>;
}

/// Settings of a [`Server`].
#[derive(Clone)]
pub struct ServerConfig {
    /// Where the log and its snapshots live.
    pub data_dir: PathBuf,
    /// Where the HTTP API listens; `None` starts no listener. Port 0 picks a free port.
    pub http_addr: Option<SocketAddr>,
    /// The region (`global`).
    pub region: String,
    /// The datacenter (`dc1`).
    pub datacenter: String,
    /// This server's name.
    pub node_name: String,
    /// Scheduler workers; `0` uses one per core.
    pub num_schedulers: usize,
    /// How often clients must heartbeat.
    pub heartbeat_ttl: Duration,
    /// Extra time past the TTL before a node is marked down.
    pub heartbeat_grace: Duration,
    /// How often liveness, failed evaluations and drains are checked.
    pub maintenance_interval: Duration,
    /// Eval broker settings.
    pub broker: BrokerConfig,
    /// Log entries between state snapshots.
    pub snapshot_threshold: u64,
    /// Log entries kept before the latest snapshot (for followers that lag).
    pub raft_logs_to_keep: u64,
    /// This server's ID in the Raft cluster.
    pub raft_node_id: u64,
    /// Largest request body the HTTP API reads.
    pub max_body_bytes: usize,
    /// The RPC address advertised as this server's (what `status/leader` shows).
    pub advertise_rpc: String,
    /// Admission mutators, in order.
    pub mutators: Vec<Arc<dyn JobMutator>>,
    /// Admission validators, in order.
    pub validators: Vec<Arc<dyn JobValidator>>,
}

impl ServerConfig {
    /// Defaults with the data kept in `data_dir` and the API on `127.0.0.1:4646`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            http_addr: Some(SocketAddr::from(([127, 0, 0, 1], 4646))),
            region: "global".into(),
            datacenter: "dc1".into(),
            node_name: "server-1".into(),
            num_schedulers: 0,
            heartbeat_ttl: Duration::from_secs(10),
            heartbeat_grace: Duration::from_secs(10),
            maintenance_interval: Duration::from_millis(200),
            broker: BrokerConfig::default(),
            snapshot_threshold: 8192,
            raft_logs_to_keep: 1024,
            raft_node_id: 1,
            max_body_bytes: 16 << 20,
            advertise_rpc: "127.0.0.1:4647".into(),
            mutators: Vec::new(),
            validators: Vec::new(),
        }
    }

    /// Same, with the API on a free port of 127.0.0.1 (for tests and embedding).
    pub fn dev(data_dir: impl Into<PathBuf>) -> Self {
        let mut c = ServerConfig::new(data_dir);
        c.http_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        c
    }
}

/// Counters the server keeps for `/v1/metrics`.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    /// HTTP requests served.
    pub http_requests: AtomicU64,
    /// Plans submitted to the applier.
    pub plans_submitted: AtomicU64,
    /// Node plans refused by the applier.
    pub node_plans_refused: AtomicU64,
    /// Allocations committed by the applier.
    pub allocs_placed: AtomicU64,
    /// Evaluations processed by workers.
    pub evals_processed: AtomicU64,
    /// Nodes marked down after missed heartbeats.
    pub nodes_down: AtomicU64,
}

pub(crate) struct PlanRequest {
    plan: Plan,
    reply: oneshot::Sender<Result<PlanResult, ServerError>>,
}

pub(crate) struct Inner {
    pub(crate) config: ServerConfig,
    pub(crate) state: Arc<StateStore>,
    pub(crate) log: Arc<dyn ReplicatedLog>,
    pub(crate) broker: Arc<EvalBroker>,
    pub(crate) blocked: Arc<BlockedEvals>,
    plan_tx: mpsc::Sender<PlanRequest>,
    heartbeats: Mutex<HashMap<String, Instant>>,
    pub(crate) metrics: ServerMetrics,
    shutdown: watch::Sender<bool>,
    pub(crate) http_addr: Mutex<Option<SocketAddr>>,
    pub(crate) started: std::time::Instant,
}

/// A running server. Cloning it is cheap; every clone is the same server.
#[derive(Clone)]
pub struct Server {
    pub(crate) inner: Arc<Inner>,
}

/// What registering a job returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobRegistration {
    /// The evaluation created (empty for periodic and parameterized jobs).
    pub eval_id: String,
    /// The index the evaluation was created at.
    pub eval_create_index: u64,
    /// The job's modify index.
    pub job_modify_index: u64,
    /// The index of the write.
    pub index: u64,
    /// Warnings from admission.
    pub warnings: Vec<String>,
}

/// What a node write returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeUpdate {
    /// The index of the node write.
    pub node_modify_index: u64,
    /// Evaluations created.
    pub eval_ids: Vec<String>,
    /// The index the evaluations were created at.
    pub eval_create_index: u64,
    /// How long until the next heartbeat is due.
    pub heartbeat_ttl: Duration,
}

fn new_eval(job: &Job, triggered_by: &str) -> Evaluation {
    let now = now_nanos();
    Evaluation {
        id: new_id(),
        namespace: job.namespace_or_default().to_string(),
        priority: job.priority_or_default(),
        eval_type: job.job_type.clone().unwrap_or_else(|| "service".into()),
        triggered_by: triggered_by.into(),
        job_id: job.id.clone(),
        status: status::EVAL_PENDING.into(),
        create_time: now,
        modify_time: now,
        ..Evaluation::default()
    }
}

impl Server {
    /// Opens the data directory, restores the state (every job, allocation, evaluation
    /// and node survives a restart), becomes the leader of its one-voter cluster, and starts
    /// the workers, the plan applier, node liveness and (when configured) the HTTP API.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| ServerError::Storage(format!("{}: {e}", config.data_dir.display())))?;
        let state = Arc::new(StateStore::new());
        let opts = LogOptions {
            node_id: config.raft_node_id,
            advertise: config.advertise_rpc.clone(),
            snapshot_threshold: config.snapshot_threshold,
            logs_to_keep: config.raft_logs_to_keep,
            ..LogOptions::default()
        };
        let network = InProcessNetwork::new();
        let log = RaftLog::open(
            &config.data_dir.join("raft.db"),
            Arc::clone(&state),
            opts,
            network.factory(config.raft_node_id),
        )
        .await?;
        network.register(&log);
        if let Err(e) = log.bootstrap(Duration::from_secs(30)).await {
            log.shutdown().await;
            return Err(e);
        }
        Server::start_with_log(config, state, Arc::new(log)).await
    }

    /// Like [`Server::start`] over any [`ReplicatedLog`] already restored into `state`.
    pub async fn start_with_log(
        config: ServerConfig,
        state: Arc<StateStore>,
        log: Arc<dyn ReplicatedLog>,
    ) -> Result<Server, ServerError> {
        let (plan_tx, plan_rx) = mpsc::channel(1024);
        let (shutdown, _) = watch::channel(false);
        let broker = Arc::new(EvalBroker::new(config.broker.clone()));
        let server = Server {
            inner: Arc::new(Inner {
                config,
                state,
                log,
                broker,
                blocked: Arc::new(BlockedEvals::new()),
                plan_tx,
                heartbeats: Mutex::new(HashMap::new()),
                metrics: ServerMetrics::default(),
                shutdown,
                http_addr: Mutex::new(None),
                started: std::time::Instant::now(),
            }),
        };
        server.establish_leadership().await?;
        tokio::spawn(server.clone().run_applier(plan_rx));
        let workers = match server.inner.config.num_schedulers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        for _ in 0..workers {
            tokio::spawn(server.clone().run_worker());
        }
        tokio::spawn(server.clone().run_maintenance());
        tokio::spawn(server.clone().run_deployment_watcher());
        if let Some(addr) = server.inner.config.http_addr {
            let bound = crate::http::serve(server.clone(), addr).await?;
            if let Ok(mut g) = server.inner.http_addr.lock() {
                *g = Some(bound);
            }
        }
        Ok(server)
    }

    /// What a new leader does: writes a no-op so its state is current, refills the broker
    /// with pending evaluations and the blocked set with blocked ones, and gives every live
    /// node a fresh heartbeat deadline.
    async fn establish_leadership(&self) -> Result<(), ServerError> {
        self.inner.log.apply(Command::Noop).await?;
        self.inner.broker.set_enabled(true);
        let snap = self.snapshot();
        let mut evals: Vec<Evaluation> = snap.evals().map(|e| e.as_ref().clone()).collect();
        evals.sort_by_key(|e| e.create_index);
        for e in evals {
            match e.status.as_str() {
                status::EVAL_PENDING => self.inner.broker.enqueue(e),
                status::EVAL_BLOCKED => {
                    self.inner.blocked.block(e);
                }
                _ => {}
            }
        }
        let deadline =
            Instant::now() + self.inner.config.heartbeat_ttl + self.inner.config.heartbeat_grace;
        if let Ok(mut hb) = self.inner.heartbeats.lock() {
            for n in snap.node_list() {
                if n.status == status::NODE_READY || n.status == status::NODE_INITIALIZING {
                    hb.insert(n.id.to_string(), deadline);
                }
            }
        }
        Ok(())
    }

    /// Stops the workers, the applier, liveness checks and the HTTP listener, then the
    /// replicated log (which releases its file).
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        self.inner.broker.set_enabled(false);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let log = Arc::clone(&self.inner.log);
            rt.spawn(async move { log.shutdown().await });
        }
    }

    /// The address the HTTP API listens on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.inner.http_addr.lock().ok().and_then(|g| *g)
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The state store.
    pub fn state(&self) -> &Arc<StateStore> {
        &self.inner.state
    }

    /// A consistent snapshot of the state.
    pub fn snapshot(&self) -> StateSnapshot {
        self.inner.state.snapshot()
    }

    /// The replicated log.
    pub fn log(&self) -> &Arc<dyn ReplicatedLog> {
        &self.inner.log
    }

    /// The eval broker.
    pub fn broker(&self) -> &Arc<EvalBroker> {
        &self.inner.broker
    }

    /// The blocked evaluations.
    pub fn blocked(&self) -> &Arc<BlockedEvals> {
        &self.inner.blocked
    }

    /// How long the server has been running.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// The server's counters.
    pub fn metrics(&self) -> &ServerMetrics {
        &self.inner.metrics
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Writes a command through the log and acts on what it changed: pending evaluations
    /// go to the broker, blocked ones to the blocked set, freed capacity unblocks.
    pub async fn apply(&self, cmd: Command) -> Result<Applied, ServerError> {
        self.submit(cmd).await
    }

    /// Like [`Server::apply`], but queues the command on the log when called (so commands
    /// reach the log in the order of the calls) and returns a future that owns what it
    /// needs, to be awaited later or on another task.
    fn submit(&self, cmd: Command) -> LogFuture<'static, Result<Applied, ServerError>> {
        if !self.inner.log.is_leader() {
            return Box::pin(std::future::ready(Err(ServerError::NoLeader)));
        }
        let applied = self.inner.log.apply(cmd);
        let server = self.clone();
        Box::pin(async move {
            let applied = applied.await?;
            server.route_effects(&applied);
            Ok(applied)
        })
    }

    fn route_effects(&self, applied: &Applied) {
        let fx = &applied.effects;
        let mut cancel = Vec::new();
        for e in &fx.evals {
            match e.status.as_str() {
                status::EVAL_PENDING => self.inner.broker.enqueue(e.clone()),
                status::EVAL_BLOCKED => {
                    if let Some(old) = self.inner.blocked.block(e.clone()) {
                        cancel.push(old);
                    }
                }
                _ => {}
            }
        }
        if fx.capacity_changed || !fx.freed_classes.is_empty() {
            let classes = if fx.capacity_changed && fx.freed_classes.is_empty() {
                Vec::new()
            } else {
                fx.freed_classes.clone()
            };
            for e in self.inner.blocked.unblock(&classes) {
                self.inner.broker.enqueue(e);
            }
        }
        if !cancel.is_empty() {
            let me = self.clone();
            tokio::spawn(async move {
                me.mark_evals(
                    cancel,
                    status::EVAL_CANCELED,
                    "superseded by a newer blocked evaluation",
                )
                .await;
            });
        }
    }

    async fn mark_evals(&self, evals: Vec<Evaluation>, st: &str, why: &str) {
        let now = now_nanos();
        let evals: Vec<Evaluation> = evals
            .into_iter()
            .map(|mut e| {
                e.status = st.to_string();
                e.status_description = why.to_string();
                e.modify_time = now;
                e
            })
            .collect();
        if let Err(e) = self.apply(Command::UpsertEvals { evals }).await {
            tracing::warn!(error = %e, "marking evaluations {st} failed");
        }
    }

    // ---- jobs ----

    /// Canonicalizes, admits and validates a job without registering it.
    pub fn admit_job(&self, mut job: Job) -> Result<(Job, Vec<String>), ServerError> {
        job.canonicalize();
        let mut warnings = Vec::new();
        for m in &self.inner.config.mutators {
            let w = m.mutate(&mut job).map_err(|e| {
                ServerError::BadRequest(format!("admission mutator {}: {e}", m.name()))
            })?;
            warnings.extend(w);
        }
        job.validate().map_err(|e| {
            ServerError::BadRequest(format!(
                "job validation failed: {}",
                e.0.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        for v in &self.inner.config.validators {
            let w = v.validate(&job).map_err(|e| {
                ServerError::BadRequest(format!("admission validator {}: {e}", v.name()))
            })?;
            warnings.extend(w);
        }
        Ok((job, warnings))
    }

    /// Registers a job (a new version when it changed) and creates its evaluation.
    pub async fn register_job(&self, job: Job) -> Result<JobRegistration, ServerError> {
        if self
            .snapshot()
            .scheduler_configuration()
            .reject_job_registration
        {
            return Err(ServerError::BadRequest(
                "job registration is disabled by the scheduler configuration".into(),
            ));
        }
        let (job, warnings) = self.admit_job(job)?;
        let eval = if job.is_parent() {
            None
        } else {
            Some(new_eval(&job, "job-register"))
        };
        let eval_id = eval.as_ref().map(|e| e.id.clone()).unwrap_or_default();
        let (ns, id) = (job.namespace_or_default().to_string(), job.id.clone());
        let applied = self
            .apply(Command::UpsertJob {
                job: Box::new(job),
                eval,
                submit_time: now_nanos(),
            })
            .await?;
        let job_modify_index = self
            .snapshot()
            .job(&ns, &id)
            .and_then(|j| j.job_modify_index)
            .unwrap_or(applied.index);
        Ok(JobRegistration {
            eval_create_index: if eval_id.is_empty() { 0 } else { applied.index },
            eval_id,
            job_modify_index,
            index: applied.index,
            warnings,
        })
    }

    /// Stops a job (or removes it with `purge`) and creates the evaluation that stops its
    /// allocations.
    pub async fn deregister_job(
        &self,
        namespace: &str,
        job_id: &str,
        purge: bool,
    ) -> Result<JobRegistration, ServerError> {
        let Some(job) = self.snapshot().job(namespace, job_id) else {
            return Err(ServerError::NotFound("job".into()));
        };
        let eval = new_eval(&job, "job-deregister");
        let eval_id = eval.id.clone();
        self.inner.blocked.untrack(namespace, job_id);
        let applied = self
            .apply(Command::DeregisterJob {
                namespace: ns_or_default(namespace).to_string(),
                job_id: job_id.to_string(),
                purge,
                eval: Some(eval),
                submit_time: now_nanos(),
            })
            .await?;
        Ok(JobRegistration {
            eval_id,
            eval_create_index: applied.index,
            job_modify_index: applied.index,
            index: applied.index,
            warnings: Vec::new(),
        })
    }

    /// Creates a new evaluation of a job (`job eval`).
    pub async fn evaluate_job(
        &self,
        namespace: &str,
        job_id: &str,
    ) -> Result<JobRegistration, ServerError> {
        let Some(job) = self.snapshot().job(namespace, job_id) else {
            return Err(ServerError::NotFound("job".into()));
        };
        if job.is_parent() {
            return Err(ServerError::BadRequest(
                "can't evaluate a periodic or parameterized job".into(),
            ));
        }
        let mut eval = new_eval(&job, "job-register");
        eval.job_modify_index = job.job_modify_index.unwrap_or(0);
        let eval_id = eval.id.clone();
        let applied = self
            .apply(Command::UpsertEvals { evals: vec![eval] })
            .await?;
        Ok(JobRegistration {
            eval_id,
            eval_create_index: applied.index,
            job_modify_index: job.job_modify_index.unwrap_or(0),
            index: applied.index,
            warnings: Vec::new(),
        })
    }

    /// Runs the scheduler against the current state with `job` as if registered, without
    /// committing anything.
    pub fn plan_job(&self, job: Job) -> Result<crate::plan::DryRun, ServerError> {
        let (job, warnings) = self.admit_job(job)?;
        Ok(crate::plan::dry_run(self.snapshot(), job, warnings))
    }

    // ---- nodes ----

    fn evals_for_node(
        &self,
        snap: &StateSnapshot,
        node: &Node,
        trigger: &str,
        with_system: bool,
    ) -> Vec<Evaluation> {
        let mut seen: BTreeMap<(String, String), Evaluation> = BTreeMap::new();
        for a in snap.node_allocs(&node.id).iter().filter(|a| !a.terminal()) {
            let k = (
                ns_or_default(&a.namespace).to_string(),
                a.job_id.to_string(),
            );
            if seen.contains_key(&k) {
                continue;
            }
            if let Some(job) = snap.job(&k.0, &k.1) {
                let mut e = new_eval(&job, trigger);
                e.node_id = node.id.to_string();
                e.node_modify_index = node.modify_index;
                seen.insert(k, e);
            }
        }
        if with_system {
            for job in snap.jobs() {
                let sys = matches!(job.kind(), Some(JobType::System | JobType::Sysbatch));
                let k = (job.namespace_or_default().to_string(), job.id.clone());
                if sys && job.stop != Some(true) && !seen.contains_key(&k) {
                    let mut e = new_eval(job, trigger);
                    e.node_id = node.id.to_string();
                    e.node_modify_index = node.modify_index;
                    seen.insert(k, e);
                }
            }
        }
        seen.into_values().collect()
    }

    fn reset_heartbeat(&self, node_id: &str) -> Duration {
        let ttl = self.inner.config.heartbeat_ttl;
        if let Ok(mut hb) = self.inner.heartbeats.lock() {
            hb.insert(
                node_id.to_string(),
                Instant::now() + ttl + self.inner.config.heartbeat_grace,
            );
        }
        ttl
    }

    /// Registers (or re-registers) a node; a ready node gets evaluations for the system
    /// jobs and a heartbeat deadline.
    pub async fn register_node(&self, mut node: Node) -> Result<NodeUpdate, ServerError> {
        if node.id.is_empty() {
            return Err(ServerError::BadRequest(
                "missing node ID for client registration".into(),
            ));
        }
        if node.datacenter.is_empty() {
            return Err(ServerError::BadRequest(
                "missing datacenter for client registration".into(),
            ));
        }
        if node.status.is_empty() {
            node.status = status::NODE_READY.into();
        }
        if !matches!(
            node.status.as_str(),
            "initializing" | "ready" | "down" | "disconnected"
        ) {
            return Err(ServerError::BadRequest(format!(
                "invalid status {:?} for node",
                node.status
            )));
        }
        node.status_updated_at = now_nanos() / 1_000_000_000;
        let ready = node.status == status::NODE_READY;
        let id = node.id.clone();
        let applied = self
            .apply(Command::UpsertNode {
                node: Box::new(node),
            })
            .await?;
        let ttl = self.reset_heartbeat(&id);
        let mut out = NodeUpdate {
            node_modify_index: applied.index,
            heartbeat_ttl: ttl,
            ..NodeUpdate::default()
        };
        if ready {
            let snap = self.snapshot();
            if let Some(n) = snap.node(&id) {
                let evals = self.evals_for_node(&snap, &n, "node-update", true);
                if !evals.is_empty() {
                    out.eval_ids = evals.iter().map(|e| e.id.clone()).collect();
                    out.eval_create_index = self.apply(Command::UpsertEvals { evals }).await?.index;
                }
            }
        }
        Ok(out)
    }

    /// Records a heartbeat (and a status change when the node was not `status`).
    pub async fn heartbeat(
        &self,
        node_id: &str,
        new_status: Option<&str>,
    ) -> Result<NodeUpdate, ServerError> {
        let snap = self.snapshot();
        let Some(node) = snap.node(node_id) else {
            return Err(ServerError::NotFound("node".into()));
        };
        let want = new_status.unwrap_or(status::NODE_READY);
        if !matches!(want, "initializing" | "ready" | "down" | "disconnected") {
            return Err(ServerError::BadRequest(format!(
                "invalid status {want:?} for node"
            )));
        }
        let ttl = self.reset_heartbeat(node_id);
        let mut out = NodeUpdate {
            node_modify_index: node.modify_index,
            heartbeat_ttl: ttl,
            ..NodeUpdate::default()
        };
        if node.status != want {
            let evals = if want == status::NODE_READY {
                self.evals_for_node(&snap, &node, "node-update", true)
            } else {
                Vec::new()
            };
            out.eval_ids = evals.iter().map(|e| e.id.clone()).collect();
            let applied = self
                .apply(Command::UpdateNodeStatus {
                    node_id: node_id.to_string(),
                    status: want.to_string(),
                    updated_at: now_nanos() / 1_000_000_000,
                    evals,
                })
                .await?;
            out.node_modify_index = applied.index;
            out.eval_create_index = applied.index;
        }
        Ok(out)
    }

    /// Marks a node down and creates evaluations that replace its allocations.
    pub async fn mark_node_down(&self, node_id: &str) -> Result<NodeUpdate, ServerError> {
        let snap = self.snapshot();
        let Some(node) = snap.node(node_id) else {
            return Err(ServerError::NotFound("node".into()));
        };
        if let Ok(mut hb) = self.inner.heartbeats.lock() {
            hb.remove(node_id);
        }
        let evals = self.evals_for_node(&snap, &node, "node-update", false);
        let ids = evals.iter().map(|e| e.id.clone()).collect();
        let applied = self
            .apply(Command::UpdateNodeStatus {
                node_id: node_id.to_string(),
                status: status::NODE_DOWN.to_string(),
                updated_at: now_nanos() / 1_000_000_000,
                evals,
            })
            .await?;
        Ok(NodeUpdate {
            node_modify_index: applied.index,
            eval_ids: ids,
            eval_create_index: applied.index,
            heartbeat_ttl: Duration::ZERO,
        })
    }

    /// Starts (`Some`) or stops (`None`) draining a node.
    pub async fn drain_node(
        &self,
        node_id: &str,
        strategy: Option<DrainStrategy>,
        mark_eligible: bool,
    ) -> Result<NodeUpdate, ServerError> {
        let snap = self.snapshot();
        let Some(node) = snap.node(node_id) else {
            return Err(ServerError::NotFound("node".into()));
        };
        let mut strategy = strategy;
        if let Some(s) = &mut strategy {
            s.started_at = now_nanos();
            if s.deadline > 0 {
                s.force_deadline = s.started_at.saturating_add(s.deadline);
            }
        }
        let evals = if strategy.is_some() {
            self.evals_for_node(&snap, &node, "node-drain", false)
        } else {
            Vec::new()
        };
        let ids = evals.iter().map(|e| e.id.clone()).collect();
        let applied = self
            .apply(Command::UpdateNodeDrain {
                node_id: node_id.to_string(),
                strategy,
                mark_eligible,
                updated_at: now_nanos() / 1_000_000_000,
                evals,
            })
            .await?;
        Ok(NodeUpdate {
            node_modify_index: applied.index,
            eval_ids: ids,
            eval_create_index: applied.index,
            heartbeat_ttl: Duration::ZERO,
        })
    }

    /// Sets a node's scheduling eligibility (`eligible` or `ineligible`).
    pub async fn set_node_eligibility(
        &self,
        node_id: &str,
        eligibility: &str,
    ) -> Result<NodeUpdate, ServerError> {
        if eligibility != status::NODE_ELIGIBLE && eligibility != status::NODE_INELIGIBLE {
            return Err(ServerError::BadRequest(format!(
                "invalid scheduling eligibility {eligibility:?}: must be \"eligible\" or \"ineligible\""
            )));
        }
        let snap = self.snapshot();
        let Some(node) = snap.node(node_id) else {
            return Err(ServerError::NotFound("node".into()));
        };
        if node.drain_strategy.is_some() && eligibility == status::NODE_ELIGIBLE {
            return Err(ServerError::BadRequest(
                "can not set node's scheduling eligibility to eligible while it is draining".into(),
            ));
        }
        let evals = if eligibility == status::NODE_ELIGIBLE {
            self.evals_for_node(&snap, &node, "node-update", true)
        } else {
            Vec::new()
        };
        let ids = evals.iter().map(|e| e.id.clone()).collect();
        let applied = self
            .apply(Command::UpdateNodeEligibility {
                node_id: node_id.to_string(),
                eligibility: eligibility.to_string(),
                updated_at: now_nanos() / 1_000_000_000,
                evals,
            })
            .await?;
        Ok(NodeUpdate {
            node_modify_index: applied.index,
            eval_ids: ids,
            eval_create_index: applied.index,
            heartbeat_ttl: Duration::ZERO,
        })
    }

    /// Applies allocation status pushed by a client; failed allocations get an evaluation
    /// so that they are rescheduled per policy, and terminal ones lose their services.
    pub async fn update_allocs_from_client(
        &self,
        allocs: Vec<nomad_core::structs::Allocation>,
    ) -> Result<u64, ServerError> {
        let snap = self.snapshot();
        let mut evals: BTreeMap<(String, String), Evaluation> = BTreeMap::new();
        let mut terminal = Vec::new();
        for a in &allocs {
            let Some(old) = snap.alloc(&a.id) else {
                continue;
            };
            if !matches!(
                a.client_status.as_str(),
                "pending" | "running" | "complete" | "failed" | "lost" | "unknown"
            ) {
                return Err(ServerError::BadRequest(format!(
                    "allocation {}: invalid client status {:?}",
                    a.id, a.client_status
                )));
            }
            if a.client_status == status::ALLOC_CLIENT_FAILED
                && old.client_status != status::ALLOC_CLIENT_FAILED
            {
                if let Some(job) = snap.job(&old.namespace, &old.job_id) {
                    if job.stop != Some(true) {
                        let k = (job.namespace_or_default().to_string(), job.id.clone());
                        evals
                            .entry(k)
                            .or_insert_with(|| new_eval(&job, "alloc-failure"));
                    }
                }
            }
            if matches!(a.client_status.as_str(), "complete" | "failed" | "lost") {
                terminal.push(a.id.to_string());
            }
        }
        let applied = self
            .apply(Command::ClientUpdateAllocs {
                allocs,
                evals: evals.into_values().collect(),
                time: now_nanos(),
            })
            .await?;
        let has_services = self
            .snapshot()
            .services()
            .any(|s| terminal.contains(&s.alloc_id));
        if has_services {
            self.apply(Command::DeleteServicesByAlloc {
                alloc_ids: terminal,
            })
            .await?;
        }
        Ok(applied.index)
    }

    // ---- services ----

    /// Registers native service instances.
    pub async fn upsert_services(
        &self,
        services: Vec<ServiceRegistration>,
    ) -> Result<u64, ServerError> {
        for s in &services {
            if s.id.is_empty() || s.service_name.is_empty() || s.alloc_id.is_empty() {
                return Err(ServerError::BadRequest(
                    "service registration needs ID, ServiceName and AllocID".into(),
                ));
            }
        }
        Ok(self
            .apply(Command::UpsertServices { services })
            .await?
            .index)
    }

    /// Removes one service instance.
    pub async fn delete_service(
        &self,
        namespace: &str,
        name: &str,
        id: &str,
    ) -> Result<u64, ServerError> {
        let snap = self.snapshot();
        let found = snap
            .service_instances(namespace, name, None)
            .iter()
            .any(|s| s.id == id);
        if !found {
            return Err(ServerError::NotFound("service registration".into()));
        }
        Ok(self
            .apply(Command::DeleteServices {
                namespace: ns_or_default(namespace).to_string(),
                ids: vec![id.to_string()],
            })
            .await?
            .index)
    }

    /// Removes every service instance of some allocations.
    pub async fn delete_services_of_allocs(
        &self,
        alloc_ids: Vec<String>,
    ) -> Result<u64, ServerError> {
        Ok(self
            .apply(Command::DeleteServicesByAlloc { alloc_ids })
            .await?
            .index)
    }

    /// Replaces the scheduler configuration.
    pub async fn set_scheduler_config(
        &self,
        config: SchedulerConfiguration,
    ) -> Result<u64, ServerError> {
        if !matches!(
            config.scheduler_algorithm.as_str(),
            "" | "binpack" | "spread"
        ) {
            return Err(ServerError::BadRequest(format!(
                "invalid scheduler algorithm {:?}: must be \"binpack\" or \"spread\"",
                config.scheduler_algorithm
            )));
        }
        Ok(self
            .apply(Command::SetSchedulerConfig { config })
            .await?
            .index)
    }

    // ---- background tasks ----

    async fn run_worker(self) {
        let mut stop = self.shutdown_signal();
        loop {
            if *stop.borrow() {
                return;
            }
            let got = tokio::select! {
                r = self.inner.broker.dequeue(&SCHEDULERS, Duration::from_millis(500)) => r,
                _ = stop.changed() => return,
            };
            let (eval, token) = match got {
                Ok(Some(x)) => x,
                Ok(None) => continue,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(snap) = self
                .inner
                .state
                .snapshot_min_index(eval.modify_index, Duration::from_secs(5))
                .await
            else {
                let _ = self.inner.broker.nack(&eval.id, &token);
                continue;
            };
            let me = self.clone();
            let handle = tokio::runtime::Handle::current();
            let (id, tok) = (eval.id.clone(), token.clone());
            let seed: u64 = rand::random();
            let result = tokio::task::spawn_blocking(move || {
                let mut planner = ServerPlanner {
                    server: me,
                    snap,
                    handle,
                    token,
                    writes: Vec::new(),
                };
                let sched = Scheduler::new(SchedulerOptions {
                    seed,
                    now: Some(now_nanos()),
                    ..SchedulerOptions::default()
                });
                let outcome = sched.process(&eval, &mut planner);
                let ServerPlanner {
                    server,
                    snap,
                    writes,
                    ..
                } = planner;
                server.inner.state.retire(snap);
                (outcome, writes)
            })
            .await;
            self.inner
                .metrics
                .evals_processed
                .fetch_add(1, Ordering::Relaxed);
            let (outcome, writes) = match result {
                Ok((outcome, writes)) => (outcome.map(|_| ()), writes),
                Err(e) => {
                    tracing::error!(eval = %id, error = %e, "scheduler task died; nacking");
                    let _ = self.inner.broker.nack(&id, &tok);
                    continue;
                }
            };
            // The evaluation is acknowledged once what it wrote is applied (so the next
            // evaluation of its job sees it); meanwhile this worker takes the next one.
            let me = self.clone();
            tokio::spawn(async move {
                let mut written = Ok(());
                for w in writes {
                    if let Err(e) = w.await {
                        written = Err(e);
                    }
                }
                match (outcome, written) {
                    (Ok(()), Ok(())) => {
                        let _ = me.inner.broker.ack(&id, &tok);
                    }
                    (Err(e), _) => {
                        tracing::warn!(eval = %id, error = %e, "evaluation failed; nacking");
                        let _ = me.inner.broker.nack(&id, &tok);
                    }
                    (Ok(()), Err(e)) => {
                        tracing::warn!(eval = %id, error = %e, "evaluation status not written; nacking");
                        let _ = me.inner.broker.nack(&id, &tok);
                    }
                }
            });
        }
    }

    /// The plan applier's loop. Plans are checked one at a time, in arrival order. While
    /// commits are in flight, the plans checked meanwhile wait (their placements count
    /// as taken when the next plans are checked, as in Nomad's applier) and then go to
    /// the log together as one entry, so checking overlaps writing and a busy applier
    /// writes one entry for several plans. Up to [`MAX_COMMITS_IN_FLIGHT`] entries of
    /// plans are in flight at once, written to the log in the order they were checked, so
    /// that one is written to the file while the one before it is applied.
    async fn run_applier(self, mut rx: mpsc::Receiver<PlanRequest>) {
        let mut stop = self.shutdown_signal();
        let log = Arc::clone(&self.inner.log);
        let mut waiting: Vec<PlanInFlight> = Vec::new();
        let mut commits: VecDeque<PlanCommit<'_>> = VecDeque::new();
        loop {
            let held = waiting.len() + commits.iter().map(|c| c.plans.len()).sum::<usize>();
            let room = held < MAX_PLANS_IN_FLIGHT;
            let done = async {
                match commits.front_mut() {
                    Some(c) => (&mut c.write).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                result = done => {
                    if let Some(c) = commits.pop_front() {
                        let index = self.plans_committed(result, c.commands);
                        for p in c.plans {
                            p.finish(&self, index.clone());
                        }
                    }
                }
                r = rx.recv(), if room => {
                    let Some(req) = r else { return };
                    let busy = !commits.is_empty();
                    let committing: Vec<&PlanInFlight> =
                        commits.iter().flat_map(|c| &c.plans).collect();
                    if let Some(p) = self.check_queued_plan(req, &waiting, &committing, busy) {
                        waiting.push(p);
                    }
                }
            }
            if commits.len() < MAX_COMMITS_IN_FLIGHT && !waiting.is_empty() {
                let mut plans = std::mem::take(&mut waiting);
                let mut commands: Vec<Command> =
                    plans.iter_mut().filter_map(|p| p.command.take()).collect();
                let n = commands.len();
                let write = match (n, commands.pop()) {
                    (_, None) => {
                        // Refused plans with nothing to write: answered with the plans they
                        // were checked against, or at once when those are done.
                        match commits.back_mut() {
                            Some(last) => last.plans.extend(plans),
                            None => {
                                let index = self.inner.state.index();
                                for p in plans {
                                    p.finish(&self, Ok(index));
                                }
                            }
                        }
                        continue;
                    }
                    _ if !log.is_leader() => {
                        Box::pin(std::future::ready(Err(ServerError::NoLeader))) as LogFuture<'_, _>
                    }
                    (1, Some(cmd)) => log.apply(cmd),
                    (_, Some(cmd)) => {
                        commands.push(cmd);
                        log.apply(Command::Batch { commands })
                    }
                };
                commits.push_back(PlanCommit {
                    write,
                    commands: n,
                    plans,
                });
            }
        }
    }

    /// Acts on the effects of an entry of `commands` plans (one command, or a batch of
    /// them); returns the entry's index.
    fn plans_committed(
        &self,
        result: Result<Applied, ServerError>,
        commands: usize,
    ) -> Result<u64, ServerError> {
        let applied = result?;
        if commands <= 1 {
            self.route_effects(&applied);
            return Ok(applied.index);
        }
        if applied.effects.batch.len() != commands {
            return Err(ServerError::Storage(format!(
                "entry {} applied {} of {commands} plans",
                applied.index,
                applied.effects.batch.len()
            )));
        }
        for effects in &applied.effects.batch {
            self.route_effects(&Applied {
                index: applied.index,
                effects: effects.clone(),
            });
        }
        Ok(applied.index)
    }

    /// Counts a submitted plan and accepts it only from the worker that holds its
    /// evaluation (the broker's outstanding token).
    fn admit_plan(&self, plan: &Plan) -> Result<(), ServerError> {
        self.inner
            .metrics
            .plans_submitted
            .fetch_add(1, Ordering::Relaxed);
        match self.inner.broker.outstanding(&plan.eval_id) {
            Some(t) if t == plan.eval_token => Ok(()),
            Some(_) => Err(ServerError::TokenMismatch(plan.eval_id.clone())),
            None => Err(ServerError::NotOutstanding(plan.eval_id.clone())),
        }
    }

    /// Checks one queued plan against the latest state and the plans waiting or being
    /// committed; `None` when it was answered at once.
    fn check_queued_plan(
        &self,
        req: PlanRequest,
        waiting: &[PlanInFlight],
        committing: &[&PlanInFlight],
        busy: bool,
    ) -> Option<PlanInFlight> {
        let PlanRequest { plan, reply } = req;
        if let Err(e) = self.admit_plan(&plan) {
            let _ = reply.send(Err(e));
            return None;
        }
        let snap = self.snapshot();
        let overlay: Vec<&BTreeMap<ArcStr, PendingNode>> = committing
            .iter()
            .copied()
            .chain(waiting)
            .map(|p| &p.pending)
            .collect();
        let checked = check_plan(&snap, plan, &overlay);
        let snap_index = snap.index();
        self.inner.state.retire(snap);
        if checked.refused_nodes > 0 {
            self.inner
                .metrics
                .node_plans_refused
                .fetch_add(checked.refused_nodes, Ordering::Relaxed);
        }
        let refused = checked.refused_nodes > 0;
        let ahead = busy || !waiting.is_empty();
        if checked.command.is_none() && (!refused || !ahead) {
            let mut result = checked.result;
            result.alloc_index = snap_index;
            result.refresh_index = if refused { snap_index } else { 0 };
            let _ = reply.send(Ok(result));
            return None;
        }
        // A refused plan refreshes past the plans it was checked against: its answer
        // waits for their commit even when it commits nothing itself. A plan accepted
        // whole is answered as soon as its entry is committed, before the state applies
        // it: its worker needs no fresher state, and while the entry is applied the
        // worker goes on (the plans checked after it still count it as pending). That
        // answer lists the placements as the applier's summaries of them (ID, node,
        // statuses, ports), not as stored: the scheduler reads only which nodes committed.
        let reply: ReplySlot = Arc::new(std::sync::Mutex::new(Some(reply)));
        let mut command = checked.command;
        if let Some(Command::ApplyPlan { committed, .. }) = command.as_mut().filter(|_| !refused) {
            let mut early = checked.result.clone();
            early.node_allocation = checked
                .pending
                .iter()
                .map(|(node, p)| {
                    (
                        node.clone(),
                        p.allocs.iter().map(|(_, a)| Arc::clone(a)).collect(),
                    )
                })
                .collect();
            let slot = Arc::clone(&reply);
            *committed = crate::CommitSignal::new(move |index| {
                if let Some(tx) = take_reply(&slot) {
                    early.alloc_index = index;
                    let _ = tx.send(Ok(early));
                }
            });
        }
        Some(PlanInFlight {
            result: checked.result,
            pending: checked.pending,
            command,
            placed: checked.placed,
            refused,
            reply,
        })
    }

    /// One plan through the applier's check and commit on its own, without the queue
    /// (what tests drive): re-checks every node of the plan against the latest state with
    /// the scheduler's node-fit check, commits what still fits (nothing, for an
    /// `all_at_once` plan with any refusal), and says which index to refresh to.
    #[cfg(test)]
    pub(crate) async fn apply_plan(&self, plan: Plan) -> Result<PlanResult, ServerError> {
        self.admit_plan(&plan)?;
        let snap = self.snapshot();
        let checked = check_plan(&snap, plan, &[]);
        if checked.refused_nodes > 0 {
            self.inner
                .metrics
                .node_plans_refused
                .fetch_add(checked.refused_nodes, Ordering::Relaxed);
        }
        let CheckedPlan {
            mut result,
            pending,
            command,
            refused_nodes,
            placed: n_placed,
        } = checked;
        let refused = refused_nodes > 0;
        let Some(command) = command else {
            result.alloc_index = snap.index();
            result.refresh_index = if refused { snap.index() } else { 0 };
            return Ok(result);
        };
        let applied = self.apply(command).await?;
        self.inner
            .metrics
            .allocs_placed
            .fetch_add(n_placed, Ordering::Relaxed);
        placed_from_state(&mut result, &pending, &self.snapshot());
        result.alloc_index = applied.index;
        if refused {
            result.refresh_index = applied.index;
        }
        Ok(result)
    }

    async fn run_maintenance(self) {
        let mut stop = self.shutdown_signal();
        let mut tick = tokio::time::interval(self.inner.config.maintenance_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let now = Instant::now();
            let expired: Vec<String> = match self.inner.heartbeats.lock() {
                Ok(mut hb) => {
                    let ids: Vec<String> = hb
                        .iter()
                        .filter(|(_, d)| **d <= now)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for id in &ids {
                        hb.remove(id);
                    }
                    ids
                }
                Err(_) => Vec::new(),
            };
            for id in expired {
                tracing::info!(node = %id, "node missed its heartbeats; marking it down");
                self.inner
                    .metrics
                    .nodes_down
                    .fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.mark_node_down(&id).await {
                    tracing::warn!(node = %id, error = %e, "marking node down failed");
                }
            }
            let failed = self.inner.broker.take_failed();
            if !failed.is_empty() {
                let why = format!(
                    "evaluation reached delivery limit ({})",
                    self.inner.config.broker.delivery_limit
                );
                self.mark_evals(failed, status::EVAL_FAILED, &why).await;
            }
            let canceled = self.inner.broker.take_cancelable();
            if !canceled.is_empty() {
                self.mark_evals(
                    canceled,
                    status::EVAL_CANCELED,
                    "superseded by a newer evaluation of the job",
                )
                .await;
            }
            self.finish_drains().await;
        }
    }

    /// Clears the drain of nodes whose allocations have all left.
    async fn finish_drains(&self) {
        let snap = self.snapshot();
        for n in snap
            .node_list()
            .iter()
            .filter(|n| n.drain_strategy.is_some())
        {
            let ignore_system = n
                .drain_strategy
                .as_ref()
                .is_some_and(|s| s.ignore_system_jobs);
            let is_system = |id: &str| {
                snap.job_of_alloc(id)
                    .is_some_and(|j| matches!(j.kind(), Some(JobType::System | JobType::Sysbatch)))
            };
            let busy = snap
                .node_allocs(&n.id)
                .iter()
                .any(|a| !a.terminal() && (!ignore_system || !is_system(&a.id)));
            if !busy {
                let _ = self
                    .apply(Command::UpdateNodeDrain {
                        node_id: n.id.to_string(),
                        strategy: None,
                        mark_eligible: false,
                        updated_at: now_nanos() / 1_000_000_000,
                        evals: Vec::new(),
                    })
                    .await;
            }
        }
    }
}

/// The most plans the applier keeps between check and commit.
const MAX_PLANS_IN_FLIGHT: usize = 8;

/// The most log entries of plans the applier has in flight at once.
const MAX_COMMITS_IN_FLIGHT: usize = 2;

/// One log entry of checked plans, in flight.
struct PlanCommit<'a> {
    /// The write of the entry.
    write: LogFuture<'a, Result<Applied, ServerError>>,
    /// Commands the entry carries (a batch when more than one).
    commands: usize,
    /// The plans answered when it is applied (some may have written nothing).
    plans: Vec<PlanInFlight>,
}

/// A checked plan waiting for its commit or being committed.
struct PlanInFlight {
    /// The answer, without its indexes and placements (filled in from the state once
    /// the commit is done).
    result: PlanResult,
    /// The placements by node, as the next plans are checked against them until the
    /// commit is done.
    pending: BTreeMap<ArcStr, PendingNode>,
    /// What to write, taken when the commit starts.
    command: Option<Command>,
    /// Allocations placed or updated by the commit.
    placed: u64,
    /// Some node's part of the plan was refused.
    refused: bool,
    /// Where the answer goes: taken by whichever answers first, the entry's commit
    /// signal or [`PlanInFlight::finish`].
    reply: ReplySlot,
}

/// The worker's answer channel of a plan in flight, shared between the commit signal of
/// its log entry and the applier.
type ReplySlot = Arc<std::sync::Mutex<Option<oneshot::Sender<Result<PlanResult, ServerError>>>>>;

/// Takes the answer channel out of `slot`, if no one has answered yet.
fn take_reply(slot: &ReplySlot) -> Option<oneshot::Sender<Result<PlanResult, ServerError>>> {
    match slot.lock() {
        Ok(mut g) => g.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    }
}

impl PlanInFlight {
    /// Answers the worker once the commit is done, unless the entry's commit signal did.
    fn finish(self, server: &Server, index: Result<u64, ServerError>) {
        if index.is_ok() {
            server
                .inner
                .metrics
                .allocs_placed
                .fetch_add(self.placed, Ordering::Relaxed);
        }
        // Answered already when its entry was committed.
        let Some(reply) = take_reply(&self.reply) else {
            return;
        };
        let answer = index.map(|index| {
            let mut result = self.result;
            placed_from_state(&mut result, &self.pending, &server.snapshot());
            result.alloc_index = index;
            if self.refused {
                result.refresh_index = index;
            }
            result
        });
        let _ = reply.send(answer);
    }
}

/// A plan after the applier's check: what to write to the log and what to answer.
struct CheckedPlan {
    /// What was accepted, for the worker (indexes and placements filled in after the
    /// commit).
    result: PlanResult,
    /// The accepted placements by node, for checking later plans until the commit.
    pending: BTreeMap<ArcStr, PendingNode>,
    /// The command committing the accepted part, `None` when nothing is to be written.
    command: Option<Command>,
    /// Node plans refused.
    refused_nodes: u64,
    /// Allocations placed or updated by the command.
    placed: u64,
}

/// Re-checks every node of `plan` against `snap` with the scheduler's node-fit check,
/// using the state's running usage totals and port indexes (so a node's check costs time
/// in the size of its plan, not in its allocations), and builds the command committing
/// what still fits: nothing of an `all_at_once` plan with any refusal. The accepted
/// allocations go into the command without their job, which the command carries once.
///
/// `in_flight` holds the placements, by node, of the plans accepted before this one whose
/// commits are still under way: a node's check counts those not yet in `snap` as placed.
fn check_plan(
    snap: &StateSnapshot,
    mut plan: Plan,
    in_flight: &[&BTreeMap<ArcStr, PendingNode>],
) -> CheckedPlan {
    let mut node_ids: Vec<ArcStr> = plan
        .node_allocation
        .keys()
        .chain(plan.node_update.keys())
        .chain(plan.node_preemptions.keys())
        .cloned()
        .collect();
    node_ids.sort_unstable();
    node_ids.dedup();
    let mut accepted: Vec<ArcStr> = Vec::with_capacity(node_ids.len());
    let mut refused_nodes = 0u64;
    for node_id in node_ids {
        let placed = plan
            .node_allocation
            .get(&node_id)
            .map_or(&[][..], Vec::as_slice);
        if placed.is_empty() {
            accepted.push(node_id.clone());
            continue;
        }
        let found = snap
            .node_idx(&node_id)
            .and_then(|idx| Some((snap.node_list().get(idx as usize)?, idx)));
        let fits = match found {
            Some((node, idx)) => {
                let removed: Vec<&str> = plan
                    .node_update
                    .get(&node_id)
                    .into_iter()
                    .chain(plan.node_preemptions.get(&node_id))
                    .flatten()
                    .map(|a| a.id.as_str())
                    .collect();
                let capacity = NodeUsage::capacity_of(node);
                let pending: Vec<&PendingNode> = in_flight
                    .iter()
                    .filter_map(|m| m.get(&node_id))
                    .filter(|p| !p.committed(snap))
                    .collect();
                let existing = existing_for_check(snap, &node_id, idx, &removed, placed);
                if pending.is_empty() {
                    evaluate_node_plan_with(
                        node,
                        &capacity,
                        &snap.node_usage(idx),
                        snap.port_index(idx),
                        &existing,
                        &removed,
                        placed,
                    )
                } else {
                    // The node as it will be once the plans in flight are committed.
                    let mut usage = snap.node_usage(idx);
                    let mut ports = snap.port_index(idx).cloned();
                    let mut existing = existing.into_owned();
                    for p in pending {
                        usage.add(&p.usage);
                        for a in p.allocs.iter().filter(|(new, _)| *new).map(|(_, a)| a) {
                            if let Some(ports) = ports.as_mut().filter(|_| !a.terminal()) {
                                let _ = ports.add_alloc(a);
                            }
                            existing.push(Arc::clone(a));
                        }
                    }
                    evaluate_node_plan_with(
                        node,
                        &capacity,
                        &usage,
                        ports.as_ref(),
                        &existing,
                        &removed,
                        placed,
                    )
                }
                .map_err(|e| e.to_string())
            }
            _ => Err("node not found".to_string()),
        };
        match fits {
            Ok(()) => accepted.push(node_id.clone()),
            Err(reason) => {
                tracing::debug!(node = %node_id, eval = %plan.eval_id, %reason, "node plan refused");
                refused_nodes += 1;
            }
        }
    }
    if refused_nodes > 0 && plan.all_at_once {
        accepted.clear();
    }
    let mut result = PlanResult::default();
    let mut pending = BTreeMap::new();
    let mut stops = Vec::new();
    let mut placed = Vec::new();
    for node_id in accepted {
        if let Some(v) = plan.node_update.remove(&node_id) {
            stops.extend(v.iter().cloned());
            result.node_update.insert(node_id.clone(), v);
        }
        if let Some(v) = plan.node_preemptions.remove(&node_id) {
            stops.extend(v.iter().cloned());
            result.node_preemptions.insert(node_id.clone(), v);
        }
        if let Some(v) = plan.node_allocation.remove(&node_id) {
            pending.insert(node_id, PendingNode::of(&v, snap));
            placed.reserve(v.len());
            for a in v {
                // The command carries the plan's job once; an allocation keeps its own
                // only when the plan has none. The command holds the only reference, so
                // the state stores the allocation without copying it.
                if plan.job.is_some() && a.job.is_some() {
                    let mut own = Arc::unwrap_or_clone(a);
                    own.job = None;
                    placed.push(Arc::new(own));
                } else {
                    placed.push(a);
                }
            }
        }
    }
    let commit_deployment = !(refused_nodes > 0 && plan.all_at_once);
    let (deployment, deployment_updates) = if commit_deployment {
        (
            plan.deployment.take(),
            std::mem::take(&mut plan.deployment_updates),
        )
    } else {
        (None, Vec::new())
    };
    let n_placed = placed.len() as u64;
    let command = if stops.is_empty()
        && placed.is_empty()
        && deployment.is_none()
        && deployment_updates.is_empty()
    {
        None
    } else {
        result.deployment.clone_from(&deployment);
        result.deployment_updates.clone_from(&deployment_updates);
        Some(Command::ApplyPlan {
            eval_id: plan.eval_id,
            job: plan.job,
            stops,
            placed,
            deployment,
            deployment_updates,
            time: now_nanos(),
            committed: Default::default(),
        })
    };
    CheckedPlan {
        result,
        pending,
        command,
        refused_nodes,
        placed: n_placed,
    }
}

/// What a later plan's check must know of one node's placements in a plan being
/// committed: what they use, and each one's ports (and devices) in a small copy, so that
/// the allocations themselves stay with the command alone and the state stores them
/// without copying them.
#[derive(Debug)]
struct PendingNode {
    /// What the new placements (those not in the state when checked) use together.
    usage: NodeUsage,
    /// Per placement, whether it is new, and its ID, status and the resources the port
    /// and device checks read (the allocation itself when it holds devices, a copy of
    /// those fields otherwise).
    allocs: Vec<(bool, Arc<Allocation>)>,
}

impl PendingNode {
    fn of(placed: &[Arc<Allocation>], snap: &StateSnapshot) -> PendingNode {
        let mut usage = NodeUsage::default();
        let allocs = placed
            .iter()
            .map(|a| {
                // Zero create index: new, without a lookup (see `existing_for_check`).
                let new = a.create_index == 0 || snap.alloc(&a.id).is_none();
                if new {
                    usage.add(&NodeUsage::of_alloc(a));
                }
                let devices = a.allocated_resources.iter().any(|r| {
                    r.tasks
                        .values()
                        .any(|t| t.devices.iter().any(|d| !d.device_ids.is_empty()))
                });
                if devices {
                    return (new, Arc::clone(a));
                }
                let resources = a.allocated_resources.as_ref().map(|r| {
                    // Ports come from the shared ports, or from the networks when there
                    // are none: only what they are read from is copied.
                    let flat = !r.shared.ports.is_empty();
                    nomad_core::structs::AllocatedResources {
                        tasks: if flat {
                            Default::default()
                        } else {
                            r.tasks.clone()
                        },
                        task_lifecycles: Default::default(),
                        shared: nomad_core::structs::AllocatedSharedResources {
                            networks: if flat {
                                Vec::new()
                            } else {
                                r.shared.networks.clone()
                            },
                            disk_mb: r.shared.disk_mb,
                            ports: r.shared.ports.clone(),
                        },
                    }
                });
                let copy = Allocation {
                    id: a.id.clone(),
                    node_id: a.node_id.clone(),
                    desired_status: a.desired_status.clone(),
                    client_status: a.client_status.clone(),
                    allocated_resources: resources,
                    ..Allocation::default()
                };
                (new, Arc::new(copy))
            })
            .collect();
        PendingNode { usage, allocs }
    }

    /// The new placements are in `snap` (their entry is applied: all of them or none).
    fn committed(&self, snap: &StateSnapshot) -> bool {
        self.allocs
            .iter()
            .find(|(new, _)| *new)
            .is_none_or(|(_, a)| snap.alloc(&a.id).is_some())
    }
}

/// Fills the placements of a committed plan's answer from the state it was committed to.
fn placed_from_state(
    result: &mut PlanResult,
    pending: &BTreeMap<ArcStr, PendingNode>,
    snap: &StateSnapshot,
) {
    for (node_id, p) in pending {
        let committed = p
            .allocs
            .iter()
            .filter_map(|(_, a)| snap.alloc(&a.id))
            .collect();
        result.node_allocation.insert(node_id.clone(), committed);
    }
}

/// The allocations of node `node_id` (at `idx`) that the fit check of a node plan has to
/// see. The check reads the node's allocations only to find those the plan stops or
/// replaces, to rebuild a missing port index and to count devices in use: when the state
/// has the node's port index and the plan asks for no device, the allocations the plan
/// names are enough (looked up by ID), instead of every allocation of the node.
fn existing_for_check<'a>(
    snap: &'a StateSnapshot,
    node_id: &str,
    idx: nomad_sched::NodeIdx,
    removed: &[&str],
    placed: &[Arc<Allocation>],
) -> std::borrow::Cow<'a, [Arc<Allocation>]> {
    let asks_devices = placed.iter().any(|a| {
        a.allocated_resources
            .iter()
            .flat_map(|r| r.tasks.values())
            .any(|t| t.devices.iter().any(|d| !d.device_ids.is_empty()))
    });
    if asks_devices || snap.port_index(idx).is_none() {
        return std::borrow::Cow::Borrowed(snap.allocs_by_node(idx));
    }
    let mut named: Vec<Arc<Allocation>> = Vec::new();
    // A placement with a zero create index is new: every stored allocation carries the
    // index of the commit that stored it, so there is nothing to look up.
    for id in removed.iter().copied().chain(
        placed
            .iter()
            .filter(|a| a.create_index != 0)
            .map(|a| a.id.as_str()),
    ) {
        if let Some(a) = snap.alloc(id) {
            if a.node_id == node_id && !named.iter().any(|x| x.id == a.id) {
                named.push(a);
            }
        }
    }
    std::borrow::Cow::Owned(named)
}

/// The scheduler's view of the server while processing one evaluation: reads a snapshot,
/// submits plans to the plan queue, writes evaluations through the log.
struct ServerPlanner {
    server: Server,
    snap: StateSnapshot,
    handle: tokio::runtime::Handle,
    token: String,
    /// Evaluation writes queued on the log and not yet awaited: the worker acknowledges
    /// the evaluation once they are applied, while it already takes the next one.
    writes: Vec<LogFuture<'static, Result<Applied, ServerError>>>,
}

impl SchedState for ServerPlanner {
    fn index(&self) -> u64 {
        SchedState::index(&self.snap)
    }
    fn nodes(&self) -> &[Arc<Node>] {
        self.snap.nodes()
    }
    fn node_idx(&self, id: &str) -> Option<nomad_sched::NodeIdx> {
        self.snap.node_idx(id)
    }
    fn ready_nodes(&self, pool: &str) -> &[nomad_sched::NodeIdx] {
        self.snap.ready_nodes(pool)
    }
    fn node_class_id(&self, idx: nomad_sched::NodeIdx) -> u32 {
        self.snap.node_class_id(idx)
    }
    fn class_count(&self) -> u32 {
        self.snap.class_count()
    }
    fn node_usage(&self, idx: nomad_sched::NodeIdx) -> nomad_sched::NodeUsage {
        self.snap.node_usage(idx)
    }
    fn node_capacity(&self, idx: nomad_sched::NodeIdx) -> nomad_sched::NodeUsage {
        self.snap.node_capacity(idx)
    }
    fn port_index(&self, idx: nomad_sched::NodeIdx) -> Option<&nomad_net::PortIndex> {
        self.snap.port_index(idx)
    }
    fn allocs_by_node(&self, idx: nomad_sched::NodeIdx) -> &[Arc<nomad_core::structs::Allocation>] {
        self.snap.allocs_by_node(idx)
    }
    fn allocs_by_job(
        &self,
        namespace: &str,
        job_id: &str,
    ) -> &[Arc<nomad_core::structs::Allocation>] {
        self.snap.allocs_by_job(namespace, job_id)
    }
    fn alloc_job(&self, alloc: &nomad_core::structs::Allocation) -> Option<Arc<Job>> {
        self.snap.alloc_job(alloc)
    }
    fn job(&self, namespace: &str, job_id: &str) -> Option<Arc<Job>> {
        SchedState::job(&self.snap, namespace, job_id)
    }
    fn latest_deployment(
        &self,
        namespace: &str,
        job_id: &str,
    ) -> Option<&nomad_core::structs::Deployment> {
        self.snap.latest_deployment(namespace, job_id)
    }
    fn scheduler_config(&self) -> &SchedulerConfiguration {
        self.snap.scheduler_config()
    }
}

fn planner_err(e: impl std::fmt::Display) -> SchedError {
    SchedError::Planner(e.to_string())
}

impl Planner for ServerPlanner {
    fn submit_plan(&mut self, mut plan: Plan) -> Result<PlanResult, SchedError> {
        plan.eval_token.clone_from(&self.token);
        let (tx, rx) = oneshot::channel();
        self.server
            .inner
            .plan_tx
            .blocking_send(PlanRequest { plan, reply: tx })
            .map_err(|_| planner_err("plan queue closed"))?;
        let result = rx
            .blocking_recv()
            .map_err(|_| planner_err("plan applier went away"))?
            .map_err(planner_err)?;
        // As in Nomad, the state is refreshed only when part of the plan was refused: a
        // plan committed whole ends the evaluation's placements, and its answer may come
        // before the state has applied it.
        if result.refresh_index == 0 {
            return Ok(result);
        }
        let want = result.alloc_index.max(result.refresh_index);
        let fresh = self.handle.block_on(
            self.server
                .state()
                .snapshot_min_index(want, Duration::from_secs(30)),
        );
        match fresh {
            Some(s) => {
                let old = std::mem::replace(&mut self.snap, s);
                self.server.inner.state.retire(old);
            }
            None => return Err(planner_err("state did not reach the plan's index")),
        }
        Ok(result)
    }

    fn update_eval(&mut self, mut eval: Evaluation) -> Result<(), SchedError> {
        eval.modify_time = now_nanos();
        // Queued now, so it lands after the plans already submitted.
        let write = self
            .server
            .submit(Command::UpsertEvals { evals: vec![eval] });
        self.writes.push(write);
        Ok(())
    }

    fn create_eval(&mut self, mut eval: Evaluation) -> Result<(), SchedError> {
        let now = now_nanos();
        if eval.create_time == 0 {
            eval.create_time = now;
        }
        eval.modify_time = now;
        // Queued now, so it lands after the plans already submitted.
        let write = self
            .server
            .submit(Command::UpsertEvals { evals: vec![eval] });
        self.writes.push(write);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
