//! The state store: every table the servers replicate, kept as copy-on-write structures so
//! that a snapshot is a handful of pointer copies, readers never block the writer, and a
//! scheduler reads one consistent view for as long as it likes.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use nomad_core::job::Job;
use nomad_core::structs::{
    status, Allocation, ArcStr, Deployment, DeploymentStatusUpdate, Evaluation, Node,
    SchedulerConfiguration, ServiceRegistration,
};
use nomad_net::PortIndex;
use nomad_sched::{NodeIdx, NodeUsage, SchedState};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

mod command;
mod deploy;
mod node_allocs;
mod placed_codec;
mod sharded;

pub use command::{Command, CommitCallback, CommitSignal};
use node_allocs::NodeAllocs;
use sharded::{Chunked, Keyed, KeyedShards, ShardedMap};

/// How many versions of a job are kept (Nomad keeps six).
pub const JOB_TRACKED_VERSIONS: usize = 6;

/// The tables of the state store; each has its own modify index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// Jobs and their versions.
    Jobs,
    /// Nodes.
    Nodes,
    /// Allocations.
    Allocs,
    /// Evaluations.
    Evals,
    /// Deployments.
    Deployments,
    /// Native service registrations.
    Services,
    /// The scheduler configuration.
    SchedulerConfig,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 7] = [
        Table::Jobs,
        Table::Nodes,
        Table::Allocs,
        Table::Evals,
        Table::Deployments,
        Table::Services,
        Table::SchedulerConfig,
    ];

    fn pos(self) -> usize {
        self as usize
    }

    /// The table's name as metrics and errors spell it.
    pub fn name(self) -> &'static str {
        match self {
            Table::Jobs => "jobs",
            Table::Nodes => "nodes",
            Table::Allocs => "allocs",
            Table::Evals => "evals",
            Table::Deployments => "deployments",
            Table::Services => "services",
            Table::SchedulerConfig => "scheduler_config",
        }
    }
}

type Key = (String, String);

fn key(ns: &str, id: &str) -> Key {
    (ns_or_default(ns).to_string(), id.to_string())
}

/// The namespace, with the empty one read as `default`.
pub fn ns_or_default(ns: &str) -> &str {
    if ns.is_empty() {
        "default"
    } else {
        ns
    }
}

/// The whole replicated state at one index. Cloning it is cheap and the clone never changes.
#[derive(Clone, Default)]
pub struct StateData {
    index: u64,
    table_index: [u64; 7],
    jobs: Arc<HashMap<Key, Arc<Job>>>,
    job_versions: Arc<HashMap<Key, Arc<Vec<Arc<Job>>>>>,
    nodes: Arc<Vec<Arc<Node>>>,
    node_ids: Arc<HashMap<ArcStr, NodeIdx>>,
    class_of: Arc<Vec<u32>>,
    class_ids: Arc<HashMap<String, u32>>,
    ready: Arc<HashMap<String, Vec<NodeIdx>>>,
    ready_all: Arc<Vec<NodeIdx>>,
    /// Allocations by ID, each with the job version it runs.
    allocs: ShardedMap<AllocRecord>,
    by_node: Chunked<Arc<NodeAllocs>>,
    /// What each node's non-terminal allocations use, kept as allocations change.
    usage: Chunked<NodeUsage>,
    /// What each node offers, worked out once per node version: the scheduler reads it
    /// for every node it visits.
    capacity: Chunked<NodeUsage>,
    /// Each node's port index with its non-terminal allocations' ports taken.
    ports: Chunked<Arc<PortIndex>>,
    by_job: KeyedShards<Key, Vec<Arc<Allocation>>>,
    evals: ShardedMap<Arc<Evaluation>>,
    evals_by_job: Arc<HashMap<Key, Arc<Vec<String>>>>,
    deployments: Arc<HashMap<String, Arc<Deployment>>>,
    latest_deployment: Arc<HashMap<Key, Arc<Deployment>>>,
    services: Arc<HashMap<String, Arc<ServiceRegistration>>>,
    sched_config: Arc<SchedulerConfiguration>,
}

/// An allocation as stored: without its job, and the job version it runs (shared by every
/// allocation of that version).
#[derive(Clone, Debug)]
struct AllocRecord {
    alloc: Arc<Allocation>,
    job: Option<Arc<Job>>,
}

impl Keyed for AllocRecord {
    fn key(&self) -> &str {
        &self.alloc.id
    }
}

impl Keyed for Arc<Evaluation> {
    fn key(&self) -> &str {
        &self.id
    }
}

/// What these allocations use together (terminal ones use nothing).
fn usage_of(allocs: &[Arc<Allocation>]) -> NodeUsage {
    let mut u = NodeUsage::default();
    for a in allocs {
        u.add(&NodeUsage::of_alloc(a));
    }
    u
}

/// What `node` offers, and its port index with the ports of `allocs` (terminal ones
/// skipped) taken; a collision is left to the plan applier's fit check, as in the
/// scheduler's own store. The capacity counts the dynamic ports of the default network,
/// so that the scheduler answers "are there enough dynamic ports" from the capacity and
/// usage tables instead of reading the node's port index.
fn capacity_and_ports(node: &Node, allocs: &[Arc<Allocation>]) -> (NodeUsage, Arc<PortIndex>) {
    let mut idx = PortIndex::for_node(node).unwrap_or_else(|_| PortIndex::new(20000, 32000));
    let mut capacity = NodeUsage::capacity_of(node);
    capacity.dynamic_ports = idx.dynamic_free(0);
    for a in allocs.iter().filter(|a| !a.terminal()) {
        let _ = idx.add_alloc(a);
    }
    (capacity, Arc::new(idx))
}

/// The dynamic ports of the default network taken on a node offering `capacity`, whose
/// port index is `ports`.
fn dynamic_taken(capacity: &NodeUsage, ports: &PortIndex) -> u32 {
    capacity.dynamic_ports.saturating_sub(ports.dynamic_free(0))
}

/// What applying a command changed, for the server to act on (enqueue evaluations, unblock).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ApplyEffects {
    /// Evaluations written by the command, as stored.
    pub evals: Vec<Evaluation>,
    /// Node classes whose capacity grew (a node came up, an allocation stopped).
    pub freed_classes: Vec<String>,
    /// The command freed capacity on some node.
    pub capacity_changed: bool,
    /// For a [`Command::Batch`], each command's own effects, in order (the fields above
    /// stay empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch: Vec<ApplyEffects>,
}

/// What [`StateData::put_plan`] commits besides the placements.
struct PlanCommit<'a> {
    job: Option<&'a Arc<Job>>,
    stops: &'a [Arc<Allocation>],
    deployment: Option<Deployment>,
    deployment_updates: &'a [DeploymentStatusUpdate],
    time: i64,
}

impl StateData {
    /// The index of the last applied command.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The modify index of one table.
    pub fn table_index(&self, t: Table) -> u64 {
        self.table_index[t.pos()]
    }

    /// The largest modify index of several tables.
    pub fn tables_index(&self, ts: &[Table]) -> u64 {
        ts.iter().map(|t| self.table_index(*t)).max().unwrap_or(0)
    }

    fn touch(&mut self, t: Table, index: u64) {
        self.table_index[t.pos()] = index;
    }

    // ---- reads ----

    /// A job's current version.
    pub fn job(&self, ns: &str, id: &str) -> Option<Arc<Job>> {
        self.jobs.get(&key(ns, id)).cloned()
    }

    /// Every current job, in no particular order.
    pub fn jobs(&self) -> impl Iterator<Item = &Arc<Job>> {
        self.jobs.values()
    }

    /// The kept versions of a job, newest first.
    pub fn job_versions(&self, ns: &str, id: &str) -> Vec<Arc<Job>> {
        self.job_versions
            .get(&key(ns, id))
            .map(|v| v.as_ref().clone())
            .unwrap_or_default()
    }

    /// A node by ID.
    pub fn node(&self, id: &str) -> Option<Arc<Node>> {
        let i = *self.node_ids.get(id)?;
        self.nodes.get(i as usize).cloned()
    }

    /// Every node.
    pub fn node_list(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// An allocation by ID, without its job.
    pub fn alloc(&self, id: &str) -> Option<Arc<Allocation>> {
        self.allocs.get(id).map(|r| Arc::clone(&r.alloc))
    }

    /// An allocation by ID with the job version it runs filled in, as the API returns it.
    pub fn alloc_with_job(&self, id: &str) -> Option<Allocation> {
        let r = self.allocs.get(id)?;
        let mut a = r.alloc.as_ref().clone();
        a.job.clone_from(&r.job);
        Some(a)
    }

    /// The job version an allocation runs.
    pub fn job_of_alloc(&self, id: &str) -> Option<Arc<Job>> {
        self.allocs.get(id).and_then(|r| r.job.clone())
    }

    /// Every allocation.
    pub fn allocs(&self) -> impl Iterator<Item = &Arc<Allocation>> {
        self.allocs.values().map(|r| &r.alloc)
    }

    /// How many allocations there are.
    pub fn alloc_count(&self) -> usize {
        self.allocs.len()
    }

    /// The allocations of a job.
    pub fn job_allocs(&self, ns: &str, id: &str) -> &[Arc<Allocation>] {
        self.by_job.get(&key(ns, id)).map_or(&[], |v| v.as_slice())
    }

    /// The allocations on a node.
    pub fn node_allocs(&self, node_id: &str) -> &[Arc<Allocation>] {
        match self.node_ids.get(node_id) {
            Some(&i) => self.by_node.get(i as usize).map_or(&[], |v| v.as_slice()),
            None => &[],
        }
    }

    /// An evaluation by ID.
    pub fn eval(&self, id: &str) -> Option<Arc<Evaluation>> {
        self.evals.get(id).cloned()
    }

    /// Every evaluation.
    pub fn evals(&self) -> impl Iterator<Item = &Arc<Evaluation>> {
        self.evals.values()
    }

    /// The evaluations of a job.
    pub fn job_evals(&self, ns: &str, id: &str) -> Vec<Arc<Evaluation>> {
        self.evals_by_job
            .get(&key(ns, id))
            .map(|ids| {
                ids.iter()
                    .filter_map(|e| self.evals.get(e).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A deployment by ID.
    pub fn deployment(&self, id: &str) -> Option<Arc<Deployment>> {
        self.deployments.get(id).cloned()
    }

    /// Every deployment.
    pub fn deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.deployments.values()
    }

    /// Every native service registration.
    pub fn services(&self) -> impl Iterator<Item = &Arc<ServiceRegistration>> {
        self.services.values()
    }

    /// The instances of a service, optionally only those carrying `tag`.
    pub fn service_instances(
        &self,
        ns: &str,
        name: &str,
        tag: Option<&str>,
    ) -> Vec<Arc<ServiceRegistration>> {
        let ns = ns_or_default(ns);
        let mut v: Vec<_> = self
            .services
            .values()
            .filter(|s| ns_or_default(&s.namespace) == ns && s.service_name == name)
            .filter(|s| tag.is_none_or(|t| s.tags.iter().any(|x| x == t)))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The scheduler configuration.
    pub fn scheduler_configuration(&self) -> &SchedulerConfiguration {
        &self.sched_config
    }

    // ---- writes ----

    /// Applies one command at log `index`, returning what the server must act on.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> ApplyEffects {
        if let Command::Batch { commands } = cmd {
            return ApplyEffects {
                batch: commands.iter().map(|c| self.apply(index, c)).collect(),
                ..ApplyEffects::default()
            };
        }
        let mut fx = ApplyEffects::default();
        self.index = self.index.max(index);
        let mut touched_jobs: Vec<Key> = Vec::new();
        match cmd {
            Command::UpsertJob {
                job,
                eval,
                submit_time,
            } => {
                let mut job = job.as_ref().clone();
                job.submit_time = Some(*submit_time);
                let k = self.upsert_job(index, job);
                if let Some(e) = eval {
                    let mut e = e.clone();
                    e.job_modify_index = self
                        .jobs
                        .get(&k)
                        .and_then(|j| j.job_modify_index)
                        .unwrap_or(index);
                    fx.evals.push(self.put_eval(index, e));
                }
                touched_jobs.push(k);
            }
            Command::DeregisterJob {
                namespace,
                job_id,
                purge,
                eval,
                submit_time,
            } => {
                let k = key(namespace, job_id);
                if *purge {
                    Arc::make_mut(&mut self.jobs).remove(&k);
                    Arc::make_mut(&mut self.job_versions).remove(&k);
                    self.touch(Table::Jobs, index);
                } else if let Some(cur) = self.jobs.get(&k).cloned() {
                    let mut j = cur.as_ref().clone();
                    j.stop = Some(true);
                    j.submit_time = Some(*submit_time);
                    self.upsert_job(index, j);
                }
                if let Some(e) = eval {
                    fx.evals.push(self.put_eval(index, e.clone()));
                }
                touched_jobs.push(k);
            }
            Command::UpsertNode { node } => {
                let mut n = node.as_ref().clone();
                if let Some(prev) = self.node(&n.id) {
                    n.create_index = prev.create_index;
                    // The server owns drain and eligibility.
                    n.drain = prev.drain;
                    n.drain_strategy.clone_from(&prev.drain_strategy);
                    if !prev.scheduling_eligibility.is_empty() {
                        n.scheduling_eligibility
                            .clone_from(&prev.scheduling_eligibility);
                    }
                } else {
                    n.create_index = index;
                }
                if n.scheduling_eligibility.is_empty() {
                    n.scheduling_eligibility = status::NODE_ELIGIBLE.to_string();
                }
                if n.status.is_empty() {
                    n.status = status::NODE_INITIALIZING.to_string();
                }
                n.modify_index = index;
                if n.ready_for_placement() {
                    fx.capacity_changed = true;
                }
                self.put_node(n, &mut fx);
                self.touch(Table::Nodes, index);
            }
            Command::UpdateNodeStatus {
                node_id,
                status: st,
                updated_at,
                evals,
            } => {
                if let Some(prev) = self.node(node_id) {
                    let mut n = prev.as_ref().clone();
                    n.status.clone_from(st);
                    n.status_updated_at = *updated_at;
                    n.modify_index = index;
                    self.put_node(n, &mut fx);
                    self.touch(Table::Nodes, index);
                }
                for e in evals {
                    fx.evals.push(self.put_eval(index, e.clone()));
                }
            }
            Command::UpdateNodeDrain {
                node_id,
                strategy,
                mark_eligible,
                updated_at,
                evals,
            } => {
                if let Some(prev) = self.node(node_id) {
                    let mut n = prev.as_ref().clone();
                    n.drain_strategy.clone_from(strategy);
                    n.drain = strategy.is_some();
                    if strategy.is_some() {
                        n.scheduling_eligibility = status::NODE_INELIGIBLE.to_string();
                    } else if *mark_eligible {
                        n.scheduling_eligibility = status::NODE_ELIGIBLE.to_string();
                    }
                    n.status_updated_at = *updated_at;
                    n.modify_index = index;
                    if let Some(s) = strategy {
                        let allocs: Vec<Arc<Allocation>> = self.node_allocs(node_id).to_vec();
                        for a in allocs.iter().filter(|a| !a.terminal()) {
                            if s.ignore_system_jobs && self.alloc_is_system(a) {
                                continue;
                            }
                            let mut a2 = a.as_ref().clone();
                            a2.desired_transition.migrate = Some(true);
                            a2.modify_index = index;
                            touched_jobs.push(key(&a2.namespace, &a2.job_id));
                            self.put_alloc(Arc::new(a2));
                        }
                        self.touch(Table::Allocs, index);
                    }
                    self.put_node(n, &mut fx);
                    self.touch(Table::Nodes, index);
                }
                for e in evals {
                    fx.evals.push(self.put_eval(index, e.clone()));
                }
            }
            Command::UpdateNodeEligibility {
                node_id,
                eligibility,
                updated_at,
                evals,
            } => {
                if let Some(prev) = self.node(node_id) {
                    let mut n = prev.as_ref().clone();
                    n.scheduling_eligibility.clone_from(eligibility);
                    n.status_updated_at = *updated_at;
                    n.modify_index = index;
                    if n.ready_for_placement() {
                        fx.capacity_changed = true;
                    }
                    self.put_node(n, &mut fx);
                    self.touch(Table::Nodes, index);
                }
                for e in evals {
                    fx.evals.push(self.put_eval(index, e.clone()));
                }
            }
            Command::DeleteNode { node_id } => {
                if self.node_ids.contains_key(node_id.as_str()) {
                    let keep: Vec<Arc<Node>> = self
                        .nodes
                        .iter()
                        .filter(|n| &n.id != node_id)
                        .cloned()
                        .collect();
                    self.rebuild_nodes(keep);
                    self.touch(Table::Nodes, index);
                }
            }
            Command::UpsertEvals { evals } => {
                for e in evals {
                    touched_jobs.push(key(&e.namespace, &e.job_id));
                    fx.evals.push(self.put_eval(index, e.clone()));
                }
            }
            Command::ApplyPlan {
                eval_id: _,
                job,
                stops,
                placed,
                deployment,
                deployment_updates,
                time,
                committed: _,
            } => {
                let plan = PlanCommit {
                    job: job.as_ref(),
                    stops,
                    deployment: deployment.clone(),
                    deployment_updates,
                    time: *time,
                };
                self.put_plan(
                    index,
                    plan,
                    placed.iter().cloned(),
                    &mut fx,
                    &mut touched_jobs,
                );
            }
            Command::ClientUpdateAllocs {
                allocs,
                evals,
                time,
            } => {
                for u in allocs {
                    let Some(old) = self.alloc(&u.id) else {
                        continue;
                    };
                    let mut a = old.as_ref().clone();
                    a.client_status.clone_from(&u.client_status);
                    a.client_description.clone_from(&u.client_description);
                    a.task_states.clone_from(&u.task_states);
                    a.deployment_status = deploy::merge_client_health(
                        old.deployment_status.as_ref(),
                        u.deployment_status.as_ref(),
                        index,
                    );
                    a.modify_index = index;
                    a.modify_time = *time;
                    self.note_freed(&old, &a, &mut fx);
                    touched_jobs.push(key(&a.namespace, &a.job_id));
                    self.put_alloc(Arc::new(a));
                }
                if !allocs.is_empty() {
                    self.touch(Table::Allocs, index);
                }
                for e in evals {
                    fx.evals.push(self.put_eval(index, e.clone()));
                }
            }
            Command::UpsertServices { services } => {
                let m = Arc::make_mut(&mut self.services);
                for s in services {
                    let mut s = s.clone();
                    match m.get(&s.id) {
                        Some(old) => s.create_index = old.create_index,
                        None => s.create_index = index,
                    }
                    s.modify_index = index;
                    if s.namespace.is_empty() {
                        s.namespace = "default".to_string();
                    }
                    m.insert(s.id.clone(), Arc::new(s));
                }
                self.touch(Table::Services, index);
            }
            Command::DeleteServices { namespace, ids } => {
                let m = Arc::make_mut(&mut self.services);
                for id in ids {
                    if m.get(id)
                        .is_some_and(|s| ns_or_default(&s.namespace) == ns_or_default(namespace))
                    {
                        m.remove(id);
                    }
                }
                self.touch(Table::Services, index);
            }
            Command::DeleteServicesByAlloc { alloc_ids } => {
                let m = Arc::make_mut(&mut self.services);
                m.retain(|_, s| !alloc_ids.contains(&s.alloc_id));
                self.touch(Table::Services, index);
            }
            Command::SetSchedulerConfig { config } => {
                let mut c = config.clone();
                c.create_index = if self.sched_config.create_index == 0 {
                    index
                } else {
                    self.sched_config.create_index
                };
                c.modify_index = index;
                self.sched_config = Arc::new(c);
                self.touch(Table::SchedulerConfig, index);
            }
            Command::UpdateDeploymentStatus { .. }
            | Command::PromoteDeployment { .. }
            | Command::SetDeploymentAllocHealth { .. } => {
                self.apply_deployment(index, cmd, &mut fx, &mut touched_jobs);
            }
            Command::Noop | Command::Batch { .. } => {}
        }
        self.refresh_touched(index, touched_jobs);
        fx
    }

    /// Like [`StateData::apply`], taking the command by value: a plan's allocations move
    /// into the tables instead of being copied.
    pub fn apply_owned(&mut self, index: u64, cmd: Command) -> ApplyEffects {
        match cmd {
            Command::Batch { commands } => ApplyEffects {
                batch: commands
                    .into_iter()
                    .map(|c| self.apply_owned(index, c))
                    .collect(),
                ..ApplyEffects::default()
            },
            Command::ApplyPlan {
                eval_id: _,
                job,
                stops,
                placed,
                deployment,
                deployment_updates,
                time,
                committed: _,
            } => {
                let mut fx = ApplyEffects::default();
                self.index = self.index.max(index);
                let mut touched_jobs = Vec::new();
                let plan = PlanCommit {
                    job: job.as_ref(),
                    stops: &stops,
                    deployment,
                    deployment_updates: &deployment_updates,
                    time,
                };
                self.put_plan(index, plan, placed, &mut fx, &mut touched_jobs);
                self.refresh_touched(index, touched_jobs);
                fx
            }
            other => self.apply(index, &other),
        }
    }

    /// Refreshes the status (and deployment counts) of the jobs a command touched.
    fn refresh_touched(&mut self, index: u64, mut touched_jobs: Vec<Key>) {
        touched_jobs.sort();
        touched_jobs.dedup();
        for k in touched_jobs {
            self.refresh_deployment_counts(index, &k);
            self.refresh_job_status(index, &k);
        }
    }

    /// Commits the accepted part of a plan: stops, placements (each allocation stored
    /// once, without its job, which the allocation-to-job table holds as one shared
    /// version), and deployment changes.
    fn put_plan(
        &mut self,
        index: u64,
        plan: PlanCommit<'_>,
        placed: impl IntoIterator<Item = Arc<Allocation>>,
        fx: &mut ApplyEffects,
        touched_jobs: &mut Vec<Key>,
    ) {
        let PlanCommit {
            job,
            stops,
            deployment,
            deployment_updates,
            time,
        } = plan;
        let time = &time;
        let job_arc: Option<Arc<Job>> = job.map(|j| {
            let k = key(j.namespace_or_default(), &j.id);
            match self.jobs.get(&k) {
                Some(cur)
                    if cur.version == j.version && cur.job_modify_index == j.job_modify_index =>
                {
                    Arc::clone(cur)
                }
                _ => Arc::clone(j),
            }
        });
        let mut any = !stops.is_empty();
        for s in stops {
            let Some(old) = self.alloc(&s.id) else {
                continue;
            };
            let mut a = old.as_ref().clone();
            a.desired_status.clone_from(&s.desired_status);
            a.desired_description.clone_from(&s.desired_description);
            if !s.client_status.is_empty() {
                a.client_status.clone_from(&s.client_status);
            }
            if !s.followup_eval_id.is_empty() {
                a.followup_eval_id.clone_from(&s.followup_eval_id);
            }
            if !s.preempted_by_allocation.is_empty() {
                a.preempted_by_allocation
                    .clone_from(&s.preempted_by_allocation);
            }
            a.desired_transition = s.desired_transition.clone();
            a.modify_index = index;
            a.alloc_modify_index = index;
            a.modify_time = *time;
            self.note_freed(&old, &a, fx);
            touched_jobs.push(key(&a.namespace, &a.job_id));
            self.put_alloc(Arc::new(a));
        }
        let mut last_job: Option<Key> = None;
        for mut shared in placed {
            any = true;
            // Copied only when someone else still holds the plan's allocation.
            let a = Arc::make_mut(&mut shared);
            let own_job = a.job.take();
            match self.allocs.get(&a.id).map(|r| &r.alloc) {
                Some(old) => {
                    a.create_index = old.create_index;
                    a.create_time = old.create_time;
                    a.client_status.clone_from(&old.client_status);
                    a.client_description.clone_from(&old.client_description);
                    a.task_states.clone_from(&old.task_states);
                }
                None => {
                    a.create_index = index;
                    if a.create_time == 0 {
                        a.create_time = *time;
                    }
                    if a.client_status.is_empty() {
                        a.client_status = status::shared::ALLOC_CLIENT_PENDING;
                    }
                }
            }
            if a.desired_status.is_empty() {
                a.desired_status = status::shared::ALLOC_DESIRED_RUN;
            }
            a.modify_index = index;
            a.alloc_modify_index = index;
            a.modify_time = *time;
            let job = job_arc.as_ref().or(own_job.as_ref()).cloned();
            // Placements of one plan belong to one job: push its key once.
            if last_job
                .as_ref()
                .is_none_or(|k| k.1 != a.job_id || k.0 != ns_or_default(&a.namespace))
            {
                let k = key(&a.namespace, &a.job_id);
                touched_jobs.push(k.clone());
                last_job = Some(k);
            }
            self.put_alloc_with_job(shared, job);
        }
        if any {
            self.touch(Table::Allocs, index);
        }
        if let Some(d) = deployment {
            self.put_deployment(index, d);
        }
        for u in deployment_updates {
            if let Some(d) = self.deployments.get(&u.deployment_id).cloned() {
                let mut d = d.as_ref().clone();
                d.status.clone_from(&u.status);
                d.status_description.clone_from(&u.status_description);
                self.put_deployment(index, d);
            }
        }
    }

    fn alloc_is_system(&self, a: &Allocation) -> bool {
        self.job_of_alloc(&a.id)
            .and_then(|j| j.job_type.clone())
            .is_some_and(|t| t == "system" || t == "sysbatch")
    }

    fn upsert_job(&mut self, index: u64, mut job: Job) -> Key {
        let k = key(job.namespace_or_default(), &job.id);
        if job.namespace.is_none() {
            job.namespace = Some("default".to_string());
        }
        let prev = self.jobs.get(&k).cloned();
        let changed = match &prev {
            Some(p) => {
                job.create_index = p.create_index;
                let mut a = p.as_ref().clone();
                a.version = job.version;
                a.modify_index = job.modify_index;
                a.job_modify_index = job.job_modify_index;
                a.create_index = job.create_index;
                a.submit_time = job.submit_time;
                a.stable = job.stable;
                a.status.clone_from(&job.status);
                a.status_description.clone_from(&job.status_description);
                let changed = a != job;
                if changed {
                    job.version = Some(p.version.unwrap_or(0) + 1);
                    job.job_modify_index = Some(index);
                    job.stable = Some(false);
                } else {
                    job.version = p.version;
                    job.job_modify_index = p.job_modify_index;
                    job.submit_time = p.submit_time;
                    job.stable = p.stable;
                }
                job.status.clone_from(&p.status);
                changed
            }
            None => {
                job.create_index = Some(index);
                job.version = Some(0);
                job.job_modify_index = Some(index);
                job.stable = Some(false);
                job.status = "pending".to_string();
                true
            }
        };
        job.modify_index = Some(index);
        let job = Arc::new(job);
        Arc::make_mut(&mut self.jobs).insert(k.clone(), Arc::clone(&job));
        let versions = Arc::make_mut(&mut self.job_versions)
            .entry(k.clone())
            .or_default();
        let v = Arc::make_mut(versions);
        if changed || v.is_empty() {
            v.insert(0, job);
            v.truncate(JOB_TRACKED_VERSIONS);
        } else if let Some(head) = v.first_mut() {
            *head = job;
        }
        self.touch(Table::Jobs, index);
        k
    }

    fn refresh_job_status(&mut self, index: u64, k: &Key) {
        let Some(job) = self.jobs.get(k).cloned() else {
            return;
        };
        let allocs = self.by_job.get(k).cloned().unwrap_or_default();
        let evals = self.evals_by_job.get(k).cloned().unwrap_or_default();
        let new_status = if job.periodic.is_some() || job.parameterized_job.is_some() {
            if job.stop == Some(true) {
                "dead"
            } else {
                "running"
            }
        } else if allocs.iter().any(|a| !a.terminal()) {
            "running"
        } else if evals.iter().any(|id| {
            self.evals.get(id).is_some_and(|e| {
                e.status == status::EVAL_PENDING || e.status == status::EVAL_BLOCKED
            })
        }) {
            "pending"
        } else if job.stop == Some(true) || !allocs.is_empty() || !evals.is_empty() {
            "dead"
        } else {
            "pending"
        };
        if job.status != new_status {
            let mut j = job.as_ref().clone();
            j.status = new_status.to_string();
            j.modify_index = Some(index);
            let j = Arc::new(j);
            Arc::make_mut(&mut self.jobs).insert(k.clone(), Arc::clone(&j));
            if let Some(vs) = Arc::make_mut(&mut self.job_versions).get_mut(k) {
                let vs = Arc::make_mut(vs);
                if let Some(head) = vs.first_mut() {
                    if head.version == j.version {
                        *head = j;
                    }
                }
            }
            self.touch(Table::Jobs, index);
        }
    }

    fn put_eval(&mut self, index: u64, mut e: Evaluation) -> Evaluation {
        if e.namespace.is_empty() {
            e.namespace = "default".to_string();
        }
        match self.evals.get(&e.id) {
            Some(old) => e.create_index = old.create_index,
            None => {
                e.create_index = index;
                let k = key(&e.namespace, &e.job_id);
                let ids = Arc::make_mut(&mut self.evals_by_job).entry(k).or_default();
                Arc::make_mut(ids).push(e.id.clone());
            }
        }
        if e.status.is_empty() {
            e.status = status::EVAL_PENDING.to_string();
        }
        e.modify_index = index;
        self.evals.insert(Arc::new(e.clone()));
        self.touch(Table::Evals, index);
        e
    }

    fn put_deployment(&mut self, index: u64, mut d: Deployment) {
        if d.namespace.is_empty() {
            d.namespace = "default".to_string();
        }
        match self.deployments.get(&d.id) {
            Some(old) => d.create_index = old.create_index,
            None => d.create_index = index,
        }
        d.modify_index = index;
        let d = Arc::new(d);
        Arc::make_mut(&mut self.deployments).insert(d.id.clone(), Arc::clone(&d));
        let k = key(&d.namespace, &d.job_id);
        let latest = Arc::make_mut(&mut self.latest_deployment);
        let newer = latest
            .get(&k)
            .is_none_or(|cur| cur.id == d.id || cur.create_index <= d.create_index);
        if newer {
            latest.insert(k, d);
        }
        self.touch(Table::Deployments, index);
    }

    /// Stores an allocation, keeping the job version its earlier version ran.
    /// Records in `fx` that `old` became terminal as `new`: its node has room again, and
    /// the evaluations blocked on the node's class may now place.
    fn note_freed(&self, old: &Allocation, new: &Allocation, fx: &mut ApplyEffects) {
        if !old.terminal() && new.terminal() {
            fx.capacity_changed = true;
            if let Some(n) = self.node(&new.node_id) {
                fx.freed_classes.push(n.computed_class.clone());
            }
        }
    }

    fn put_alloc(&mut self, a: Arc<Allocation>) {
        self.put_alloc_with_job(a, None);
    }

    /// Stores an allocation running `job` (`None`: the job version its earlier version
    /// ran, if any).
    fn put_alloc_with_job(&mut self, a: Arc<Allocation>, job: Option<Arc<Job>>) {
        let k = key(&a.namespace, &a.job_id);
        let job = job.or_else(|| self.allocs.get(&a.id).and_then(|r| r.job.clone()));
        let prev = self
            .allocs
            .insert(AllocRecord {
                alloc: Arc::clone(&a),
                job,
            })
            .map(|r| r.alloc);
        // by job (a new allocation is in no list yet: no search)
        if let Some(v) = self.by_job.get_or_default_mut(k) {
            match prev
                .as_ref()
                .and_then(|_| v.iter().position(|x| x.id == a.id))
            {
                Some(p) => v[p] = Arc::clone(&a),
                None => v.push(Arc::clone(&a)),
            }
        }
        // by node, with the node's running usage (an allocation never changes node, but
        // be safe)
        if let Some(prev) = &prev {
            if let Some(&i) = self.node_ids.get(&prev.node_id) {
                if let Some(u) = self.usage.get_mut(i as usize) {
                    u.sub(&NodeUsage::of_alloc(prev));
                }
                if !prev.terminal() {
                    if let Some(p) = self.ports.get_mut(i as usize) {
                        Arc::make_mut(p).remove_alloc(prev);
                    }
                    self.sync_dynamic_ports(i);
                }
                if prev.node_id != a.node_id {
                    if let Some(list) = self.by_node.get_mut(i as usize) {
                        NodeAllocs::remove(list, &a.id);
                    }
                }
            }
        }
        if let Some(&i) = self.node_ids.get(&a.node_id) {
            if let Some(u) = self.usage.get_mut(i as usize) {
                u.add(&NodeUsage::of_alloc(&a));
            }
            if !a.terminal() {
                if let Some(p) = self.ports.get_mut(i as usize) {
                    let _ = Arc::make_mut(p).add_alloc(&a);
                }
                self.sync_dynamic_ports(i);
            }
            if let Some(list) = self.by_node.get_mut(i as usize) {
                let replaces = prev.as_ref().is_some_and(|p| p.node_id == a.node_id);
                NodeAllocs::push(list, a, replaces);
            }
        }
    }

    /// Recounts the taken dynamic ports in the usage of the node at `i` after its port
    /// index changed.
    fn sync_dynamic_ports(&mut self, i: NodeIdx) {
        let (Some(c), Some(p)) = (self.capacity.get(i as usize), self.ports.get(i as usize)) else {
            return;
        };
        let taken = dynamic_taken(c, p);
        if let Some(u) = self.usage.get_mut(i as usize) {
            u.dynamic_ports = taken;
        }
    }

    fn put_node(&mut self, mut n: Node, fx: &mut ApplyEffects) {
        if n.node_pool.is_empty() {
            n.node_pool = "default".to_string();
        }
        n.compute_class();
        if n.ready_for_placement() {
            fx.freed_classes.push(n.computed_class.clone());
        }
        // Incremental: a registration or status change costs O(1) amortised (plus one
        // copy of the shared vectors per published state), not a rebuild of every view.
        let n = Arc::new(n);
        match self.node_ids.get(&n.id).copied() {
            Some(i) => {
                let Some(old) = self.nodes.get(i as usize).cloned() else {
                    return;
                };
                if let Some(slot) = Arc::make_mut(&mut self.nodes).get_mut(i as usize) {
                    *slot = Arc::clone(&n);
                }
                let (capacity, ports) = capacity_and_ports(
                    &n,
                    self.by_node.get(i as usize).map_or(&[], |l| l.as_slice()),
                );
                if let Some(u) = self.usage.get_mut(i as usize) {
                    u.dynamic_ports = dynamic_taken(&capacity, &ports);
                }
                if let Some(p) = self.ports.get_mut(i as usize) {
                    *p = ports;
                }
                if let Some(c) = self.capacity.get_mut(i as usize) {
                    *c = capacity;
                }
                self.update_node_view(i, Some(&old), &n);
            }
            None => {
                let i = self.nodes.len() as NodeIdx;
                let mut allocs: Vec<Arc<Allocation>> = Vec::new();
                if !self.allocs.is_empty() {
                    // Allocations of a node removed earlier and registered again.
                    allocs.extend(self.allocs().filter(|a| a.node_id == n.id).cloned());
                }
                Arc::make_mut(&mut self.nodes).push(Arc::clone(&n));
                Arc::make_mut(&mut self.node_ids).insert(n.id.clone(), i);
                let (capacity, ports) = capacity_and_ports(&n, &allocs);
                let mut usage = usage_of(&allocs);
                usage.dynamic_ports = dynamic_taken(&capacity, &ports);
                self.usage.push(usage);
                self.capacity.push(capacity);
                self.ports.push(ports);
                self.by_node.push(NodeAllocs::from_vec(allocs));
                self.update_node_view(i, None, &n);
            }
        }
    }

    /// Updates the class number and ready lists of the node at `i` (`old` is what it
    /// replaced, `None` for a node appended at `i`); the result equals what
    /// [`StateData::rebuild_node_views`] computes, up to class numbering.
    fn update_node_view(&mut self, i: NodeIdx, old: Option<&Node>, new: &Node) {
        let class = match self.class_ids.get(&new.computed_class) {
            Some(&c) => c,
            None => {
                let next = self.class_ids.len() as u32;
                Arc::make_mut(&mut self.class_ids).insert(new.computed_class.clone(), next);
                next
            }
        };
        let class_of = Arc::make_mut(&mut self.class_of);
        match class_of.get_mut(i as usize) {
            Some(c) => *c = class,
            None => class_of.push(class),
        }
        let was = old.filter(|o| o.ready_for_placement());
        let is = new.ready_for_placement();
        if let Some(o) = was {
            if !is || o.node_pool != new.node_pool {
                if let Some(list) = Arc::make_mut(&mut self.ready).get_mut(&o.node_pool) {
                    if let Ok(pos) = list.binary_search(&i) {
                        list.remove(pos);
                    }
                }
            }
            if !is {
                let all = Arc::make_mut(&mut self.ready_all);
                if let Ok(pos) = all.binary_search(&i) {
                    all.remove(pos);
                }
            }
        }
        if is {
            if was.is_none_or(|o| o.node_pool != new.node_pool) {
                let list = Arc::make_mut(&mut self.ready)
                    .entry(new.node_pool.clone())
                    .or_default();
                if let Err(pos) = list.binary_search(&i) {
                    list.insert(pos, i);
                }
            }
            if was.is_none() {
                let all = Arc::make_mut(&mut self.ready_all);
                if let Err(pos) = all.binary_search(&i) {
                    all.insert(pos, i);
                }
            }
        }
    }

    /// Replaces the node list and rebuilds everything indexed by node position.
    fn rebuild_nodes(&mut self, nodes: Vec<Arc<Node>>) {
        let ids: HashMap<ArcStr, NodeIdx> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i as NodeIdx))
            .collect();
        let mut by_node: Vec<Vec<Arc<Allocation>>> = vec![Vec::new(); nodes.len()];
        for a in self.allocs() {
            if let Some(&i) = ids.get(&a.node_id) {
                if let Some(list) = by_node.get_mut(i as usize) {
                    list.push(Arc::clone(a));
                }
            }
        }
        let (capacity, ports): (Vec<NodeUsage>, Vec<Arc<PortIndex>>) = nodes
            .iter()
            .zip(&by_node)
            .map(|(n, l)| capacity_and_ports(n, l))
            .unzip();
        self.usage = Chunked::from_vec(
            by_node
                .iter()
                .zip(capacity.iter().zip(&ports))
                .map(|(l, (c, p))| NodeUsage {
                    dynamic_ports: dynamic_taken(c, p),
                    ..usage_of(l)
                })
                .collect(),
        );
        self.capacity = Chunked::from_vec(capacity);
        self.ports = Chunked::from_vec(ports);
        self.by_node = Chunked::from_vec(by_node.into_iter().map(NodeAllocs::from_vec).collect());
        self.nodes = Arc::new(nodes);
        self.node_ids = Arc::new(ids);
        self.rebuild_node_views();
    }

    /// Rebuilds class numbers and ready lists from the node list.
    fn rebuild_node_views(&mut self) {
        let mut class_ids: HashMap<String, u32> = HashMap::new();
        let mut class_of = Vec::with_capacity(self.nodes.len());
        let mut ready: HashMap<String, Vec<NodeIdx>> = HashMap::new();
        let mut ready_all = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let next = class_ids.len() as u32;
            let c = *class_ids.entry(n.computed_class.clone()).or_insert(next);
            class_of.push(c);
            if n.ready_for_placement() {
                ready
                    .entry(n.node_pool.clone())
                    .or_default()
                    .push(i as NodeIdx);
                ready_all.push(i as NodeIdx);
            }
        }
        self.class_ids = Arc::new(class_ids);
        self.class_of = Arc::new(class_of);
        self.ready = Arc::new(ready);
        self.ready_all = Arc::new(ready_all);
    }

    // ---- persistence ----

    /// The state in a serializable form, for log snapshots.
    pub fn to_persisted(&self) -> PersistedState {
        let mut job_table: Vec<Job> = Vec::new();
        let mut seen: HashMap<*const Job, usize> = HashMap::new();
        let mut job_pos = |j: &Arc<Job>, table: &mut Vec<Job>| -> usize {
            *seen.entry(Arc::as_ptr(j)).or_insert_with(|| {
                table.push(j.as_ref().clone());
                table.len() - 1
            })
        };
        let mut jobs = Vec::new();
        for (k, versions) in self.job_versions.iter() {
            let cur = self.jobs.get(k).map(|j| job_pos(j, &mut job_table));
            let vs = versions
                .iter()
                .map(|j| job_pos(j, &mut job_table))
                .collect();
            jobs.push(PersistedJob {
                current: cur,
                versions: vs,
            });
        }
        let mut allocs = Vec::new();
        for r in self.allocs.values() {
            let job = r.job.as_ref().map(|j| job_pos(j, &mut job_table));
            allocs.push(PersistedAlloc {
                alloc: r.alloc.as_ref().clone(),
                job,
            });
        }
        PersistedState {
            index: self.index,
            table_index: self.table_index.to_vec(),
            job_table,
            jobs,
            nodes: self.nodes.iter().map(|n| n.as_ref().clone()).collect(),
            allocs,
            evals: self.evals.values().map(|e| e.as_ref().clone()).collect(),
            deployments: self
                .deployments
                .values()
                .map(|d| d.as_ref().clone())
                .collect(),
            services: self.services.values().map(|s| s.as_ref().clone()).collect(),
            sched_config: self.sched_config.as_ref().clone(),
        }
    }

    /// Rebuilds the state from its serialized form.
    pub fn from_persisted(p: PersistedState) -> StateData {
        let mut s = StateData {
            index: p.index,
            ..StateData::default()
        };
        for (i, v) in p.table_index.iter().take(7).enumerate() {
            s.table_index[i] = *v;
        }
        let table: Vec<Arc<Job>> = p.job_table.into_iter().map(Arc::new).collect();
        {
            let jobs = Arc::make_mut(&mut s.jobs);
            let versions = Arc::make_mut(&mut s.job_versions);
            for pj in p.jobs {
                let vs: Vec<Arc<Job>> = pj
                    .versions
                    .iter()
                    .filter_map(|i| table.get(*i).cloned())
                    .collect();
                let Some(any) = pj
                    .current
                    .and_then(|i| table.get(i).cloned())
                    .or_else(|| vs.first().cloned())
                else {
                    continue;
                };
                let k = key(any.namespace_or_default(), &any.id);
                if let Some(cur) = pj.current.and_then(|i| table.get(i).cloned()) {
                    jobs.insert(k.clone(), cur);
                }
                versions.insert(k, Arc::new(vs));
            }
        }
        s.rebuild_nodes(p.nodes.into_iter().map(Arc::new).collect());
        for pa in p.allocs {
            let job = pa.job.and_then(|i| table.get(i).cloned());
            s.put_alloc_with_job(Arc::new(pa.alloc), job);
        }
        let mut evals = p.evals;
        evals.sort_by_key(|e| e.create_index);
        for e in evals {
            let k = key(&e.namespace, &e.job_id);
            let ids = Arc::make_mut(&mut s.evals_by_job).entry(k).or_default();
            Arc::make_mut(ids).push(e.id.clone());
            s.evals.insert(Arc::new(e));
        }
        let mut deps = p.deployments;
        deps.sort_by_key(|d| d.create_index);
        for d in deps {
            let d = Arc::new(d);
            Arc::make_mut(&mut s.deployments).insert(d.id.clone(), Arc::clone(&d));
            Arc::make_mut(&mut s.latest_deployment).insert(key(&d.namespace, &d.job_id), d);
        }
        for sv in p.services {
            Arc::make_mut(&mut s.services).insert(sv.id.clone(), Arc::new(sv));
        }
        s.sched_config = Arc::new(p.sched_config);
        s
    }
}

/// The serialized form of the state, written into log snapshots. Job versions shared by
/// many allocations are written once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PersistedState {
    index: u64,
    table_index: Vec<u64>,
    job_table: Vec<Job>,
    jobs: Vec<PersistedJob>,
    nodes: Vec<Node>,
    allocs: Vec<PersistedAlloc>,
    evals: Vec<Evaluation>,
    deployments: Vec<Deployment>,
    services: Vec<ServiceRegistration>,
    sched_config: SchedulerConfiguration,
}

impl PersistedState {
    /// The index the state was taken at.
    pub fn index(&self) -> u64 {
        self.index
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PersistedJob {
    current: Option<usize>,
    versions: Vec<usize>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PersistedAlloc {
    alloc: Allocation,
    job: Option<usize>,
}

/// A consistent, immutable view of the state at one index; what schedulers and API reads
/// work from. Implements the scheduler's [`SchedState`].
#[derive(Clone)]
pub struct StateSnapshot(Arc<StateData>);

impl std::ops::Deref for StateSnapshot {
    type Target = StateData;
    fn deref(&self) -> &StateData {
        &self.0
    }
}

impl SchedState for StateSnapshot {
    fn index(&self) -> u64 {
        self.0.index
    }
    fn nodes(&self) -> &[Arc<Node>] {
        &self.0.nodes
    }
    fn node_idx(&self, id: &str) -> Option<NodeIdx> {
        self.0.node_ids.get(id).copied()
    }
    fn ready_nodes(&self, pool: &str) -> &[NodeIdx] {
        if pool == "all" {
            return &self.0.ready_all;
        }
        self.0.ready.get(pool).map_or(&[], Vec::as_slice)
    }
    fn node_class_id(&self, idx: NodeIdx) -> u32 {
        self.0.class_of.get(idx as usize).copied().unwrap_or(0)
    }
    fn class_count(&self) -> u32 {
        self.0.class_ids.len() as u32
    }
    fn node_usage(&self, idx: NodeIdx) -> NodeUsage {
        self.0.usage.get(idx as usize).copied().unwrap_or_default()
    }
    fn node_capacity(&self, idx: NodeIdx) -> NodeUsage {
        self.0
            .capacity
            .get(idx as usize)
            .copied()
            .unwrap_or_default()
    }
    fn port_index(&self, idx: NodeIdx) -> Option<&PortIndex> {
        self.0.ports.get(idx as usize).map(|p| p.as_ref())
    }
    fn allocs_by_node(&self, idx: NodeIdx) -> &[Arc<Allocation>] {
        self.0
            .by_node
            .get(idx as usize)
            .map_or(&[], |v| v.as_slice())
    }
    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> &[Arc<Allocation>] {
        self.0.job_allocs(namespace, job_id)
    }
    fn alloc_job(&self, alloc: &Allocation) -> Option<Arc<Job>> {
        self.0.job_of_alloc(&alloc.id).or_else(|| alloc.job.clone())
    }
    fn job(&self, namespace: &str, job_id: &str) -> Option<Arc<Job>> {
        self.0.job(namespace, job_id)
    }
    fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<&Deployment> {
        self.0
            .latest_deployment
            .get(&key(namespace, job_id))
            .map(|d| d.as_ref())
    }
    fn scheduler_config(&self) -> &SchedulerConfiguration {
        &self.0.sched_config
    }
}

/// The state store: the current [`StateData`] and watches that wake blocking queries.
///
/// Writes come only from the replicated log (one writer); reads take a snapshot, which
/// costs a pointer copy and never waits for a write to finish.
pub struct StateStore {
    current: RwLock<Arc<StateData>>,
    changes: watch::Sender<[u64; 7]>,
    /// Where replaced versions go to be freed, started on first use.
    reaper: OnceLock<Reaper>,
}

/// Frees retired state versions on a thread of its own. The last holder of an old
/// version frees every table piece later versions replaced (on a busy server, tens of
/// thousands of allocations' lists, maps and port indexes per second); handing it here
/// keeps that work off the paths that wait for it (a scheduler refreshing its snapshot
/// after a plan, the log applying entries). The thread ends when the store is dropped.
struct Reaper {
    tx: std::sync::mpsc::SyncSender<Arc<StateData>>,
}

/// Versions waiting to be freed; beyond this, the caller frees its own.
const REAPER_QUEUE: usize = 64;

impl Reaper {
    fn start() -> Option<Reaper> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<StateData>>(REAPER_QUEUE);
        std::thread::Builder::new()
            .name("state-reaper".into())
            .spawn(move || {
                for version in rx {
                    drop(version);
                }
            })
            .ok()?;
        Some(Reaper { tx })
    }
}

impl Default for StateStore {
    fn default() -> Self {
        StateStore::new()
    }
}

impl StateStore {
    /// An empty store.
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel([0u64; 7]);
        StateStore {
            current: RwLock::new(Arc::new(StateData::default())),
            changes: tx,
            reaper: OnceLock::new(),
        }
    }

    /// Lets go of a snapshot, leaving the freeing of what only it still holds to a
    /// thread of the store's own (or doing it here when that thread is behind or could
    /// not be started).
    pub fn retire(&self, snap: StateSnapshot) {
        self.retire_version(snap.0);
    }

    fn retire_version(&self, version: Arc<StateData>) {
        if Arc::strong_count(&version) > 1 {
            // Someone else frees it (or retires it) later.
            return;
        }
        let reaper = match self.reaper.get() {
            Some(r) => r,
            None => match Reaper::start() {
                Some(r) => self.reaper.get_or_init(|| r),
                None => return,
            },
        };
        // Full or gone: freed here.
        drop(reaper.tx.try_send(version));
    }

    /// A consistent view of the state as of now.
    pub fn snapshot(&self) -> StateSnapshot {
        let cur = match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        };
        StateSnapshot(cur)
    }

    /// The index of the last applied command.
    pub fn index(&self) -> u64 {
        self.snapshot().index()
    }

    fn publish(&self, data: StateData) {
        let tables = data.table_index;
        let data = Arc::new(data);
        let old = match self.current.write() {
            Ok(mut g) => std::mem::replace(&mut *g, data),
            Err(p) => std::mem::replace(&mut *p.into_inner(), data),
        };
        self.retire_version(old);
        self.changes.send_replace(tables);
        // Wake index waiters even when no table changed (a no-op entry).
        self.changes.send_modify(|_| {});
    }

    /// Applies a batch of commands (already durable in the log) and publishes the result
    /// at once; returns each command's effects.
    pub fn apply_batch(&self, entries: Vec<(u64, Command)>) -> Vec<ApplyEffects> {
        let mut data = self.snapshot().0.as_ref().clone();
        let fx = entries
            .into_iter()
            .map(|(i, c)| data.apply_owned(i, c))
            .collect();
        self.publish(data);
        fx
    }

    /// Replaces the whole state (restoring a snapshot).
    pub fn restore(&self, data: StateData) {
        self.publish(data);
    }

    /// Waits until the state has applied `index` (or the timeout passes); returns the
    /// snapshot then.
    pub async fn snapshot_min_index(
        &self,
        index: u64,
        timeout: std::time::Duration,
    ) -> Option<StateSnapshot> {
        let mut rx = self.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let snap = self.snapshot();
            if snap.index() >= index {
                return Some(snap);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }

    /// Blocks until one of `tables` has a modify index above `min_index` or `deadline`
    /// passes, then returns a snapshot (the blocking query of the API).
    pub async fn watch_tables(
        &self,
        tables: &[Table],
        min_index: u64,
        deadline: tokio::time::Instant,
    ) -> StateSnapshot {
        let mut rx = self.changes.subscribe();
        loop {
            let snap = self.snapshot();
            if min_index == 0 || snap.tables_index(tables) > min_index {
                return snap;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return self.snapshot(),
            }
        }
    }
}

#[cfg(test)]
mod tests;
