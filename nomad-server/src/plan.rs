//! `job plan`: runs the scheduler against a snapshot with a candidate job and reports what
//! it would do, committing nothing.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use nomad_core::job::Job;
use nomad_core::structs::{
    AllocMetric, Allocation, Deployment, Evaluation, Node, Plan, PlanResult, SchedulerConfiguration,
};
use nomad_sched::{NodeIdx, Planner, SchedError, SchedState, Scheduler, SchedulerOptions};

use crate::state::StateSnapshot;
use crate::{new_id, now_nanos};

/// What would change in one task group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupUpdates {
    /// New allocations.
    pub place: u64,
    /// Allocations stopped.
    pub stop: u64,
    /// Allocations updated in place.
    pub in_place_update: u64,
    /// Allocations replaced.
    pub destructive_update: u64,
    /// Allocations left alone.
    pub ignore: u64,
    /// Allocations migrated.
    pub migrate: u64,
    /// Canaries placed.
    pub canary: u64,
    /// Allocations preempted.
    pub preemptions: u64,
}

/// The outcome of a dry run.
#[derive(Debug, Clone, Default)]
pub struct DryRun {
    /// Per group, what would change.
    pub annotations: BTreeMap<String, GroupUpdates>,
    /// Groups that could not place everything, with the reasons.
    pub failed_tg_allocs: BTreeMap<String, AllocMetric>,
    /// Evaluations the scheduler would create (blocked, follow-ups).
    pub created_evals: Vec<Evaluation>,
    /// The current job's modify index (0 for a new job), for `-check-index`.
    pub job_modify_index: u64,
    /// The state index planned against.
    pub index: u64,
    /// `Added`, `Edited` or `None`.
    pub diff_type: String,
    /// Admission warnings.
    pub warnings: Vec<String>,
    /// The plans the scheduler submitted.
    pub plans: Vec<Plan>,
}

struct DryRunBackend {
    snap: StateSnapshot,
    job: Arc<Job>,
    out: DryRun,
}

impl SchedState for DryRunBackend {
    fn index(&self) -> u64 {
        SchedState::index(&self.snap)
    }
    fn nodes(&self) -> &[Arc<Node>] {
        self.snap.nodes()
    }
    fn node_idx(&self, id: &str) -> Option<NodeIdx> {
        self.snap.node_idx(id)
    }
    fn ready_nodes(&self, pool: &str) -> &[NodeIdx] {
        self.snap.ready_nodes(pool)
    }
    fn node_class_id(&self, idx: NodeIdx) -> u32 {
        self.snap.node_class_id(idx)
    }
    fn class_count(&self) -> u32 {
        self.snap.class_count()
    }
    fn node_usage(&self, idx: nomad_sched::NodeIdx) -> nomad_sched::NodeUsage {
        self.snap.node_usage(idx)
    }
    fn port_index(&self, idx: nomad_sched::NodeIdx) -> Option<&nomad_net::PortIndex> {
        self.snap.port_index(idx)
    }
    fn allocs_by_node(&self, idx: NodeIdx) -> &[Arc<Allocation>] {
        self.snap.allocs_by_node(idx)
    }
    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> &[Arc<Allocation>] {
        self.snap.allocs_by_job(namespace, job_id)
    }
    fn alloc_job(&self, alloc: &Allocation) -> Option<Arc<Job>> {
        self.snap.alloc_job(alloc)
    }
    fn job(&self, namespace: &str, job_id: &str) -> Option<Arc<Job>> {
        if self.job.namespace_or_default() == namespace && self.job.id == job_id {
            Some(Arc::clone(&self.job))
        } else {
            SchedState::job(&self.snap, namespace, job_id)
        }
    }
    fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<&Deployment> {
        self.snap.latest_deployment(namespace, job_id)
    }
    fn scheduler_config(&self) -> &SchedulerConfiguration {
        self.snap.scheduler_config()
    }
}

impl Planner for DryRunBackend {
    fn submit_plan(&mut self, plan: Plan) -> Result<PlanResult, SchedError> {
        let result = PlanResult {
            node_update: plan.node_update.clone(),
            node_allocation: plan.node_allocation.clone(),
            node_preemptions: plan.node_preemptions.clone(),
            deployment: plan.deployment.clone(),
            deployment_updates: plan.deployment_updates.clone(),
            refresh_index: 0,
            alloc_index: SchedState::index(&self.snap),
        };
        self.out.plans.push(plan);
        Ok(result)
    }
    fn update_eval(&mut self, eval: Evaluation) -> Result<(), SchedError> {
        self.out.failed_tg_allocs = eval.failed_tg_allocs;
        Ok(())
    }
    fn create_eval(&mut self, eval: Evaluation) -> Result<(), SchedError> {
        self.out.created_evals.push(eval);
        Ok(())
    }
}

fn same_spec(a: &Job, b: &Job) -> bool {
    let mut x = a.clone();
    x.version = b.version;
    x.modify_index = b.modify_index;
    x.job_modify_index = b.job_modify_index;
    x.create_index = b.create_index;
    x.submit_time = b.submit_time;
    x.stable = b.stable;
    x.status.clone_from(&b.status);
    x.status_description.clone_from(&b.status_description);
    x == *b
}

/// Plans `job` (already admitted) against `snap`.
pub(crate) fn dry_run(snap: StateSnapshot, mut job: Job, warnings: Vec<String>) -> DryRun {
    let ns = job.namespace_or_default().to_string();
    if job.namespace.is_none() {
        job.namespace = Some(ns.clone());
    }
    let current = snap.job(&ns, &job.id);
    let index = SchedState::index(&snap);
    let diff_type = match &current {
        None => "Added",
        Some(c) if same_spec(c, &job) => "None",
        Some(_) => "Edited",
    };
    match &current {
        Some(c) => {
            job.create_index = c.create_index;
            if diff_type == "None" {
                job.version = c.version;
                job.job_modify_index = c.job_modify_index;
            } else {
                job.version = Some(c.version.unwrap_or(0) + 1);
                job.job_modify_index = Some(index + 1);
            }
        }
        None => {
            job.version = Some(0);
            job.create_index = Some(index + 1);
            job.job_modify_index = Some(index + 1);
        }
    }
    job.modify_index = Some(index + 1);
    let now = now_nanos();
    let eval = Evaluation {
        id: new_id(),
        namespace: ns.clone(),
        priority: job.priority_or_default(),
        eval_type: job.job_type.clone().unwrap_or_else(|| "service".into()),
        triggered_by: "job-register".into(),
        job_id: job.id.clone(),
        status: "pending".into(),
        create_time: now,
        modify_time: now,
        ..Evaluation::default()
    };
    let mut backend = DryRunBackend {
        snap: snap.clone(),
        job: Arc::new(job.clone()),
        out: DryRun {
            job_modify_index: current
                .as_ref()
                .and_then(|c| c.job_modify_index)
                .unwrap_or(0),
            index,
            diff_type: diff_type.to_string(),
            warnings,
            ..DryRun::default()
        },
    };
    let sched = Scheduler::new(SchedulerOptions {
        now: Some(now),
        ..SchedulerOptions::default()
    });
    if let Err(e) = sched.process(&eval, &mut backend) {
        backend.out.warnings.push(format!("scheduler: {e}"));
    }
    let mut out = backend.out;
    // Annotate per group.
    let existing: Vec<Arc<Allocation>> = snap.job_allocs(&ns, &job.id).to_vec();
    let existing_ids: HashSet<&str> = existing.iter().map(|a| a.id.as_str()).collect();
    let mut ann: BTreeMap<String, GroupUpdates> = job
        .task_groups
        .iter()
        .map(|g| (g.name.clone(), GroupUpdates::default()))
        .collect();
    let mut touched: HashSet<String> = HashSet::new();
    let mut replaced: HashSet<String> = HashSet::new();
    for plan in &out.plans {
        for a in plan.node_allocation.values().flatten() {
            let g = ann.entry(a.task_group.to_string()).or_default();
            touched.insert(a.id.to_string());
            if existing_ids.contains(a.id.as_str()) {
                g.in_place_update += 1;
            } else if !a.previous_allocation.is_empty() {
                replaced.insert(a.previous_allocation.clone());
                touched.insert(a.previous_allocation.clone());
                if a.desired_transition.migrate == Some(true) {
                    g.migrate += 1;
                } else {
                    g.destructive_update += 1;
                }
            } else if a.deployment_status.as_ref().is_some_and(|d| d.canary) {
                g.canary += 1;
            } else {
                g.place += 1;
            }
        }
        for a in plan.node_update.values().flatten() {
            touched.insert(a.id.to_string());
            if !replaced.contains(a.id.as_str()) {
                let group = existing
                    .iter()
                    .find(|x| x.id == a.id)
                    .map(|x| x.task_group.clone())
                    .unwrap_or_else(|| a.task_group.clone());
                ann.entry(group.to_string()).or_default().stop += 1;
            }
        }
        for a in plan.node_preemptions.values().flatten() {
            ann.entry(a.task_group.to_string()).or_default().preemptions += 1;
        }
    }
    for a in existing
        .iter()
        .filter(|a| !a.terminal() && !touched.contains(a.id.as_str()))
    {
        ann.entry(a.task_group.to_string()).or_default().ignore += 1;
    }
    out.annotations = ann;
    out
}
