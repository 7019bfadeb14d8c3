//! The schedulers: service and batch (the generic pipeline), system and sysbatch (one
//! allocation per eligible node), and the evaluation loop around them (plan, submit, retry
//! on refusal, follow-up and blocked evaluations).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use nomad_core::job::{Job, JobType};
use nomad_core::structs::{
    status, AllocDeploymentStatus, AllocMetric, AllocatedCpu, AllocatedMemory, AllocatedResources,
    AllocatedTaskResources, Allocation, ArcStr, Evaluation, Plan, PlanResult,
};
use rand::Rng;

use crate::hash::FastMap;
use crate::reconcile::{self, desc, AllocView, Place, ReconcileInput, Reconciled};
use crate::select::{Chosen, EvalCtx, SelectOptions};
use crate::state::{NodeIdx, Planner, SchedState};
use crate::SchedError;
use nomad_net::AssignedPort;

/// Settings of a [`Scheduler`].
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Seed of every random choice (node order, dynamic ports, IDs). The same seed, state
    /// and evaluation give the same plan.
    pub seed: u64,
    /// The time decisions are made at (Unix nanoseconds): reschedule delays and deployment
    /// deadlines are measured from it. `None` uses the evaluation's modify time.
    pub now: Option<i64>,
    /// Plans submitted per evaluation before giving up when they keep being refused
    /// (Nomad: 5 for service, 2 for batch; `None` uses those).
    pub max_plan_attempts: Option<u32>,
    /// Tunables of node selection.
    pub select: SelectOptions,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            seed: 0x6e6f_6d61_6421,
            now: None,
            max_plan_attempts: None,
            select: SelectOptions::default(),
        }
    }
}

/// What processing one evaluation did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalOutcome {
    /// Allocations placed (committed).
    pub placed: usize,
    /// Allocations updated in place.
    pub updated_in_place: usize,
    /// Allocations stopped or evicted.
    pub stopped: usize,
    /// Allocations that found no node, by group.
    pub failed: BTreeMap<String, u32>,
    /// Plans submitted.
    pub plans: u32,
    /// Nodes looked at, summed over every placement attempt (feasibility and ranking).
    pub nodes_evaluated: u64,
    /// The blocked evaluation created, if any.
    pub blocked_eval: Option<String>,
    /// Follow-up evaluations created for delayed reschedules.
    pub followup_evals: Vec<String>,
    /// The evaluation as finally recorded.
    pub eval: Evaluation,
}

/// The scheduler: turns an evaluation into plans against a state.
///
/// One value can process any number of evaluations; it holds only its options.
#[derive(Debug, Clone, Default)]
pub struct Scheduler {
    opts: SchedulerOptions,
}

/// The plan computed for one attempt and what goes with it.
struct Attempt {
    plan: Plan,
    failed: BTreeMap<String, AllocMetric>,
    queued: BTreeMap<String, u32>,
    followups: Vec<Evaluation>,
    class_eligibility: BTreeMap<String, bool>,
    escaped: bool,
    stopped: usize,
    in_place: usize,
    nodes_evaluated: u64,
}

impl Scheduler {
    /// A scheduler with the given options.
    pub fn new(opts: SchedulerOptions) -> Self {
        Scheduler { opts }
    }

    /// The options.
    pub fn options(&self) -> &SchedulerOptions {
        &self.opts
    }

    /// Processes one evaluation: reads the job and its allocations from `backend`,
    /// reconciles, places, submits the plan (again, against refreshed state, when part of it
    /// is refused), creates follow-up and blocked evaluations, and records the evaluation's
    /// final status.
    pub fn process<B>(&self, eval: &Evaluation, backend: &mut B) -> Result<EvalOutcome, SchedError>
    where
        B: SchedState + Planner + ?Sized,
    {
        let kind = match eval.eval_type.as_str() {
            "" => None,
            t => Some(JobType::parse(t).ok_or_else(|| SchedError::UnknownType {
                eval: eval.id.clone(),
                kind: t.to_string(),
            })?),
        };
        let ns = if eval.namespace.is_empty() {
            "default"
        } else {
            eval.namespace.as_str()
        };
        let job = backend.job(ns, &eval.job_id);
        let kind = kind
            .or_else(|| job.as_ref().and_then(|j| j.kind()))
            .unwrap_or(JobType::Service);
        let batch = matches!(kind, JobType::Batch | JobType::Sysbatch);
        let max_attempts = self
            .opts
            .max_plan_attempts
            .unwrap_or(if batch { 2 } else { 5 })
            .max(1);
        let now = self
            .opts
            .now
            .unwrap_or(eval.modify_time.max(eval.create_time));
        let mut outcome = EvalOutcome::default();
        let mut last: Option<Attempt> = None;
        for attempt in 0..max_attempts {
            let computed = {
                let state: &B = backend;
                let seed = self.opts.seed
                    ^ fnv(&eval.id)
                    ^ u64::from(attempt).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                match kind {
                    JobType::Service | JobType::Batch => {
                        self.compute_generic(state, eval, ns, batch, now, seed)
                    }
                    JobType::System | JobType::Sysbatch => {
                        self.compute_system(state, eval, ns, kind == JobType::Sysbatch, now, seed)
                    }
                }
            };
            let mut computed = computed;
            if computed.plan.is_no_op() {
                last = Some(computed);
                break;
            }
            let plan = std::mem::take(&mut computed.plan);
            outcome.plans += 1;
            let new_per_node = NewPerNode::of(&plan);
            let result = backend.submit_plan(plan)?;
            outcome.placed += new_per_node.committed(&result);
            outcome.stopped += result.node_update.values().map(Vec::len).sum::<usize>()
                + result
                    .node_preemptions
                    .values()
                    .map(Vec::len)
                    .sum::<usize>();
            let refused = result.refresh_index != 0;
            last = Some(computed);
            if !refused {
                break;
            }
            if attempt + 1 == max_attempts {
                let mut e = eval.clone();
                e.status = status::EVAL_FAILED.to_string();
                e.status_description = format!("plan refused {max_attempts} times");
                backend.update_eval(e)?;
                return Err(SchedError::TooManyAttempts {
                    eval: eval.id.clone(),
                    attempts: max_attempts,
                });
            }
        }
        let Some(done) = last else {
            return Ok(outcome);
        };
        outcome.updated_in_place = done.in_place;
        outcome.nodes_evaluated = done.nodes_evaluated;
        let _ = done.stopped;
        for f in done.followups {
            outcome.followup_evals.push(f.id.clone());
            backend.create_eval(f)?;
        }
        let mut e = eval.clone();
        e.status = status::EVAL_COMPLETE.to_string();
        e.snapshot_index = backend.index();
        e.queued_allocations = done.queued;
        if !done.failed.is_empty() {
            outcome.failed = done
                .failed
                .iter()
                .map(|(k, m)| (k.clone(), m.coalesced_failures + 1))
                .collect();
            e.failed_tg_allocs = done.failed;
            if !matches!(kind, JobType::System | JobType::Sysbatch) {
                let id = uuid(&mut rand::rngs::SmallRng::seed_from(
                    self.opts.seed ^ fnv(&eval.id) ^ 0xb10c,
                ));
                let blocked = Evaluation {
                    id: id.clone(),
                    namespace: ns.to_string(),
                    priority: eval.priority,
                    eval_type: kind.as_str().to_string(),
                    triggered_by: "queued-allocs".to_string(),
                    job_id: eval.job_id.clone(),
                    job_modify_index: eval.job_modify_index,
                    status: status::EVAL_BLOCKED.to_string(),
                    status_description: "created to place remaining allocations".to_string(),
                    previous_eval: eval.id.clone(),
                    class_eligibility: done.class_eligibility,
                    escaped_computed_class: done.escaped,
                    snapshot_index: backend.index(),
                    ..Evaluation::default()
                };
                backend.create_eval(blocked)?;
                e.blocked_eval = id.clone();
                outcome.blocked_eval = Some(id);
            }
        }
        backend.update_eval(e.clone())?;
        outcome.eval = e;
        Ok(outcome)
    }

    fn views<S: SchedState + ?Sized>(state: &S, ns: &str, job_id: &str) -> Vec<AllocView> {
        let nodes = state.nodes();
        state
            .allocs_by_job(ns, job_id)
            .iter()
            .filter(|a| !a.server_terminal())
            .map(|a| AllocView {
                alloc: Arc::clone(a),
                job: state.alloc_job(a),
                node: state
                    .node_idx(&a.node_id)
                    .and_then(|i| nodes.get(i as usize))
                    .cloned(),
            })
            .collect()
    }

    fn compute_generic<S: SchedState + ?Sized>(
        &self,
        state: &S,
        eval: &Evaluation,
        ns: &str,
        batch: bool,
        now: i64,
        seed: u64,
    ) -> Attempt {
        let job = state.job(ns, &eval.job_id);
        let views = Self::views(state, ns, &eval.job_id);
        let mut id_rng = rand::rngs::SmallRng::seed_from(seed ^ 0x1d);
        let mut new_id = || uuid(&mut id_rng);
        let deployment = state.latest_deployment(ns, &eval.job_id);
        let rec = reconcile::reconcile(
            ReconcileInput {
                job: job.as_deref(),
                job_id: &eval.job_id,
                batch,
                deployment,
                now,
                new_id: &mut new_id,
            },
            &views,
        );
        let mut plan = new_plan(eval, job.as_ref());
        let mut att = Attempt {
            plan: Plan::default(),
            failed: BTreeMap::new(),
            queued: BTreeMap::new(),
            followups: Vec::new(),
            class_eligibility: BTreeMap::new(),
            escaped: false,
            stopped: rec.stop.len(),
            in_place: rec.inplace.len(),
            nodes_evaluated: 0,
        };
        let Some(job) = job.filter(|j| j.stop != Some(true)) else {
            append_stops(&mut plan, &rec, now);
            plan.deployment_updates = rec.deployment_updates;
            att.plan = plan;
            return att;
        };
        let mut ctx = EvalCtx::new(
            state,
            Arc::clone(&job),
            seed,
            batch,
            self.opts.select.clone(),
        );
        for s in &rec.stop {
            ctx.stop(&s.alloc);
        }
        append_stops(&mut plan, &rec, now);
        let eval_id = ArcStr::from(eval.id.as_str());
        for a in &rec.inplace {
            let mut u = (**a).clone();
            u.eval_id = eval_id.clone();
            u.modify_time = now;
            plan.node_allocation
                .entry(u.node_id.clone())
                .or_default()
                .push(Arc::new(u));
        }
        for f in &rec.followups {
            let id = uuid(&mut ctx.rng);
            att.followups.push(Evaluation {
                id: id.clone(),
                namespace: ns.to_string(),
                priority: eval.priority,
                eval_type: eval.eval_type.clone(),
                triggered_by: "alloc-failure".to_string(),
                job_id: eval.job_id.clone(),
                status: status::EVAL_PENDING.to_string(),
                status_description: "created for delayed rescheduling".to_string(),
                wait_until: f.wait_until,
                previous_eval: eval.id.clone(),
                create_time: now,
                modify_time: now,
                ..Evaluation::default()
            });
            for a in &f.allocs {
                let mut u = (**a).clone();
                u.followup_eval_id.clone_from(&id);
                plan.node_allocation
                    .entry(u.node_id.clone())
                    .or_default()
                    .push(Arc::new(u));
            }
        }
        let preemption = {
            let c = &state.scheduler_config().preemption_config;
            if batch {
                c.batch_scheduler_enabled
            } else {
                c.service_scheduler_enabled
            }
        };
        let mut deployment = rec.deployment.clone();
        let deployment_id = deployment.as_ref().map(|d| d.id.clone()).or_else(|| {
            state
                .latest_deployment(ns, &job.id)
                .filter(|d| d.active() && d.job_version == job.version.unwrap_or(0))
                .map(|d| d.id.clone())
        });
        let templates: Vec<AllocatedResources> =
            ctx.groups.iter().map(resources_template).collect();
        let ids = EvalIds::new(eval_id, &job, deployment_id.as_deref());
        // Placements are gathered per node and moved into the plan's node map at the end:
        // no search of that map (keyed by node ID) per placement.
        let mut placed = Placed::new();
        let mut last_group: Option<(ArcStr, usize)> = None;
        for p in rec.place {
            let g = match &last_group {
                Some((name, g)) if *name == p.group => *g,
                _ => {
                    let Some(g) = ctx.group_index(&p.group) else {
                        continue;
                    };
                    last_group = Some((p.group.clone(), g));
                    g
                }
            };
            if let Some(m) = att.failed.get_mut(p.group.as_str()) {
                m.coalesced_failures += 1;
                *att.queued.entry(p.group.to_string()).or_insert(0) += 1;
                continue;
            }
            ctx.penalty_nodes.clear();
            if let (true, Some(prev)) = (p.reschedule, &p.previous) {
                if let Some(i) = state.node_idx(&prev.node_id) {
                    ctx.penalty_nodes.push(i);
                }
            }
            let (chosen, mut metric) = ctx.select(g, preemption);
            att.nodes_evaluated += u64::from(metric.nodes_evaluated);
            let Some(mut chosen) = chosen else {
                metric.nodes_available = ctx.nodes_available();
                metric.nodes_in_pool = ctx.source_len() as u32;
                att.failed.insert(p.group.to_string(), metric);
                *att.queued.entry(p.group.to_string()).or_insert(0) += 1;
                continue;
            };
            ctx.place(g, &chosen);
            let alloc = build_alloc(
                &mut ctx,
                &ids,
                &job,
                g,
                &templates[g],
                p,
                &mut chosen,
                metric,
                now,
                &mut deployment,
            );
            push_preemptions(&mut plan, state, &chosen, &alloc.id, now);
            placed.push(chosen.idx, alloc);
        }
        placed.append_to(&mut plan);
        if !att.failed.is_empty() {
            att.class_eligibility = ctx.class_eligibility();
            att.escaped = ctx.escaped_class();
        }
        plan.deployment = deployment;
        plan.deployment_updates = rec.deployment_updates;
        att.plan = plan;
        att
    }

    fn compute_system<S: SchedState + ?Sized>(
        &self,
        state: &S,
        eval: &Evaluation,
        ns: &str,
        sysbatch: bool,
        now: i64,
        seed: u64,
    ) -> Attempt {
        let job = state.job(ns, &eval.job_id);
        let views = Self::views(state, ns, &eval.job_id);
        let mut plan = new_plan(eval, job.as_ref());
        let mut att = Attempt {
            plan: Plan::default(),
            failed: BTreeMap::new(),
            queued: BTreeMap::new(),
            followups: Vec::new(),
            class_eligibility: BTreeMap::new(),
            escaped: false,
            stopped: 0,
            in_place: 0,
            nodes_evaluated: 0,
        };
        let mut rec = Reconciled::default();
        let Some(job) = job.filter(|j| j.stop != Some(true)) else {
            for v in views.iter().filter(|v| !v.alloc.terminal()) {
                rec.stop.push(reconcile::Stop {
                    alloc: Arc::clone(&v.alloc),
                    desc: desc::JOB_STOPPED,
                    client_status: None,
                });
            }
            att.stopped = rec.stop.len();
            append_stops(&mut plan, &rec, now);
            att.plan = plan;
            return att;
        };
        let mut ctx = EvalCtx::new(
            state,
            Arc::clone(&job),
            seed,
            false,
            self.opts.select.clone(),
        );
        let version = job.version.unwrap_or(0);
        // Existing allocations per (group, node).
        let mut present: HashSet<(String, NodeIdx)> = HashSet::new();
        let mut destructive: Vec<&AllocView> = Vec::new();
        for v in &views {
            let a = &v.alloc;
            if a.server_terminal() {
                continue;
            }
            let idx = state.node_idx(&a.node_id);
            let node = v.node.as_deref();
            let lost = node.is_none_or(|n| n.status == status::NODE_DOWN);
            let group_gone = job.group(&a.task_group).is_none();
            let draining = node.is_some_and(|n| {
                n.drain_strategy
                    .as_ref()
                    .is_some_and(|d| !d.ignore_system_jobs)
            });
            if lost && !a.client_terminal() {
                rec.stop.push(reconcile::Stop {
                    alloc: Arc::clone(a),
                    desc: desc::LOST,
                    client_status: Some(status::ALLOC_CLIENT_LOST),
                });
                continue;
            }
            if group_gone || draining {
                rec.stop.push(reconcile::Stop {
                    alloc: Arc::clone(a),
                    desc: if draining {
                        desc::MIGRATING
                    } else {
                        desc::NOT_NEEDED
                    },
                    client_status: None,
                });
                continue;
            }
            let Some(idx) = idx else { continue };
            let terminal_done = a.client_status == status::ALLOC_CLIENT_COMPLETE
                || (a.client_status == status::ALLOC_CLIENT_FAILED && sysbatch);
            if a.client_terminal() && !terminal_done {
                // Failed or lost: let a new one be placed on the node.
                continue;
            }
            if !sysbatch || !a.client_terminal() {
                let g = ctx.group_index(&a.task_group);
                if let Some(g) = g {
                    if !ctx.feasible_on(g, idx) && !a.client_terminal() {
                        rec.stop.push(reconcile::Stop {
                            alloc: Arc::clone(a),
                            desc: desc::NODE_INELIGIBLE,
                            client_status: None,
                        });
                        continue;
                    }
                }
            }
            present.insert((a.task_group.to_string(), idx));
            if a.client_terminal() {
                continue;
            }
            if let Some(old) = &v.job {
                if old.version.unwrap_or(0) != version
                    || old.job_modify_index != job.job_modify_index
                {
                    match (old.group(&a.task_group), job.group(&a.task_group)) {
                        (Some(o), Some(n)) if !reconcile::tasks_updated(o, n) => {
                            rec.inplace.push(Arc::clone(a))
                        }
                        _ => destructive.push(v),
                    }
                }
            }
        }
        let max_parallel = job
            .task_groups
            .first()
            .and_then(|g| g.update.as_ref())
            .and_then(|u| u.max_parallel)
            .filter(|m| *m > 0)
            .map_or(usize::MAX, |m| m as usize);
        let mut replace: Vec<(String, NodeIdx, Arc<nomad_core::structs::Allocation>)> = Vec::new();
        for v in destructive.iter().take(max_parallel) {
            rec.stop.push(reconcile::Stop {
                alloc: Arc::clone(&v.alloc),
                desc: desc::UPDATING,
                client_status: None,
            });
            if let Some(idx) = state.node_idx(&v.alloc.node_id) {
                replace.push((v.alloc.task_group.to_string(), idx, Arc::clone(&v.alloc)));
            }
        }
        for s in &rec.stop {
            ctx.stop(&s.alloc);
        }
        att.stopped = rec.stop.len();
        att.in_place = rec.inplace.len();
        append_stops(&mut plan, &rec, now);
        let eval_id = ArcStr::from(eval.id.as_str());
        for a in &rec.inplace {
            let mut u = (**a).clone();
            u.eval_id = eval_id.clone();
            plan.node_allocation
                .entry(u.node_id.clone())
                .or_default()
                .push(Arc::new(u));
        }
        let preemption = {
            let c = &state.scheduler_config().preemption_config;
            if sysbatch {
                c.sys_batch_scheduler_enabled
            } else {
                c.system_scheduler_enabled
            }
        };
        let templates: Vec<AllocatedResources> =
            ctx.groups.iter().map(resources_template).collect();
        let ids = EvalIds::new(eval_id, &job, None);
        let mut targets: Vec<(usize, NodeIdx, Option<Arc<nomad_core::structs::Allocation>>)> =
            Vec::new();
        let source: Vec<NodeIdx> = ctx.source().to_vec();
        for g in 0..ctx.groups.len() {
            let name = ctx.groups[g].name.clone();
            for &idx in &source {
                if let Some(pos) = replace
                    .iter()
                    .position(|(tg, i, _)| *tg == name && *i == idx)
                {
                    let (_, _, prev) = replace.swap_remove(pos);
                    targets.push((g, idx, Some(prev)));
                    continue;
                }
                if present.contains(&(name.clone(), idx)) {
                    continue;
                }
                if ctx.feasible_on(g, idx) {
                    targets.push((g, idx, None));
                }
            }
        }
        let mut deployment = None;
        for (g, idx, prev) in targets {
            let name = ctx.groups[g].name.clone();
            let (chosen, mut metric) = ctx.select_on(g, idx, preemption);
            att.nodes_evaluated += u64::from(metric.nodes_evaluated);
            let Some(mut chosen) = chosen else {
                match att.failed.get_mut(&name) {
                    Some(m) => m.coalesced_failures += 1,
                    None => {
                        metric.nodes_in_pool = ctx.source_len() as u32;
                        att.failed.insert(name.clone(), metric);
                    }
                }
                *att.queued.entry(name).or_insert(0) += 1;
                continue;
            };
            ctx.place(g, &chosen);
            let place = Place {
                group: ArcStr::from(name.as_str()),
                name: reconcile::alloc_name(&job.id, &name, 0),
                previous: prev,
                reschedule: false,
                canary: false,
                deployment: false,
            };
            let alloc = build_alloc(
                &mut ctx,
                &ids,
                &job,
                g,
                &templates[g],
                place,
                &mut chosen,
                metric,
                now,
                &mut deployment,
            );
            push_preemptions(&mut plan, state, &chosen, &alloc.id, now);
            plan.node_allocation
                .entry(alloc.node_id.clone())
                .or_default()
                .push(Arc::new(alloc));
        }
        att.plan = plan;
        att
    }
}

/// New allocations of one evaluation, gathered per node in placement order.
struct Placed {
    slot_of: FastMap<NodeIdx, u32>,
    lists: Vec<Vec<Arc<Allocation>>>,
}

impl Placed {
    fn new() -> Self {
        Placed {
            slot_of: FastMap::default(),
            lists: Vec::new(),
        }
    }

    fn push(&mut self, idx: NodeIdx, alloc: Allocation) {
        let next = self.lists.len() as u32;
        let slot = *self.slot_of.entry(idx).or_insert(next);
        match self.lists.get_mut(slot as usize) {
            Some(list) => list.push(Arc::new(alloc)),
            None => {
                // Most nodes get one allocation per plan: room for one, not four, up front.
                self.lists.push(vec![Arc::new(alloc)]);
            }
        }
    }

    /// Moves the allocations into the plan's per-node lists, after what the plan already
    /// holds there.
    fn append_to(self, plan: &mut Plan) {
        let keyed = self.lists.into_iter().filter_map(|list| {
            let key = list.first()?.node_id.clone();
            Some((key, list))
        });
        if plan.node_allocation.is_empty() {
            plan.node_allocation = keyed.collect();
            return;
        }
        for (key, list) in keyed {
            plan.node_allocation.entry(key).or_default().extend(list);
        }
    }
}

/// How many new allocations a plan places on each node, to count those the plan applier
/// committed. The node IDs are the plan's own shared keys: holding them copies no string.
struct NewPerNode {
    total: usize,
    /// (node ID, new allocations), in the plan's node order.
    per_node: Vec<(ArcStr, usize)>,
}

impl NewPerNode {
    fn of(plan: &Plan) -> Self {
        let per_node: Vec<(ArcStr, usize)> = plan
            .node_allocation
            .iter()
            .map(|(n, v)| {
                let new = v
                    .iter()
                    .filter(|a| a.create_index == 0 && !a.terminal())
                    .count();
                (n.clone(), new)
            })
            .collect();
        NewPerNode {
            total: per_node.iter().map(|(_, c)| c).sum(),
            per_node,
        }
    }

    /// New allocations on the nodes whose placements `result` committed.
    fn committed(&self, result: &PlanResult) -> usize {
        if result.refresh_index == 0 {
            // Nothing was refused.
            return self.total;
        }
        self.per_node
            .iter()
            .filter(|(n, _)| result.node_allocation.contains_key(n))
            .map(|(_, c)| c)
            .sum()
    }
}

fn new_plan(eval: &Evaluation, job: Option<&Arc<Job>>) -> Plan {
    Plan {
        eval_id: eval.id.clone(),
        priority: job.map_or(eval.priority, |j| j.priority_or_default()),
        all_at_once: job.and_then(|j| j.all_at_once).unwrap_or(false),
        job: job.cloned(),
        ..Plan::default()
    }
}

fn append_stops(plan: &mut Plan, rec: &Reconciled, now: i64) {
    for s in &rec.stop {
        let mut a = (*s.alloc).clone();
        a.desired_status = status::shared::ALLOC_DESIRED_STOP;
        a.desired_description = s.desc.to_string();
        if let Some(c) = s.client_status {
            a.client_status = status::shared::alloc_status(c);
        }
        a.modify_time = now;
        plan.node_update
            .entry(a.node_id.clone())
            .or_default()
            .push(Arc::new(a));
    }
}

fn push_preemptions<S: SchedState + ?Sized>(
    plan: &mut Plan,
    state: &S,
    chosen: &Chosen,
    by: &str,
    now: i64,
) {
    if chosen.preempt.is_empty() {
        return;
    }
    let node_id = state
        .nodes()
        .get(chosen.idx as usize)
        .map(|n| n.id.clone())
        .unwrap_or_default();
    for v in &chosen.preempt {
        let mut a = (**v).clone();
        a.desired_status = status::shared::ALLOC_DESIRED_EVICT;
        a.desired_description = format!("{} {by}", desc::PREEMPTED);
        a.preempted_by_allocation = by.to_string();
        a.modify_time = now;
        plan.node_preemptions
            .entry(node_id.clone())
            .or_default()
            .push(Arc::new(a));
    }
}

/// The strings every allocation an evaluation places repeats, shared once per evaluation.
struct EvalIds {
    eval_id: ArcStr,
    namespace: ArcStr,
    job_id: ArcStr,
    /// The deployment placements made under it join.
    deployment_id: Option<ArcStr>,
}

impl EvalIds {
    fn new(eval_id: ArcStr, job: &Job, deployment_id: Option<&str>) -> Self {
        EvalIds {
            eval_id,
            namespace: ArcStr::from(job.namespace_or_default()),
            job_id: ArcStr::from(job.id.as_str()),
            deployment_id: deployment_id.map(ArcStr::from),
        }
    }
}

/// The allocated resources every allocation of a group starts from.
fn resources_template(g: &crate::select::GroupSpec) -> AllocatedResources {
    let mut ar = AllocatedResources::default();
    for t in &g.tasks {
        ar.tasks.insert(
            t.name.clone(),
            AllocatedTaskResources {
                cpu: AllocatedCpu {
                    cpu_shares: t.cpu,
                    reserved_cores: Vec::new(),
                },
                memory: AllocatedMemory {
                    memory_mb: t.memory_mb,
                    memory_max_mb: if t.memory_max_mb > t.memory_mb {
                        t.memory_max_mb
                    } else {
                        0
                    },
                },
                networks: Vec::new(),
                devices: Vec::new(),
            },
        );
    }
    ar.shared.disk_mb = g.ask.disk_mb;
    ar
}

#[allow(clippy::too_many_arguments)]
fn build_alloc<S: SchedState + ?Sized>(
    ctx: &mut EvalCtx<'_, S>,
    ids: &EvalIds,
    job: &Job,
    g: usize,
    template: &AllocatedResources,
    p: Place,
    chosen: &mut Chosen,
    metric: AllocMetric,
    now: i64,
    deployment: &mut Option<nomad_core::structs::Deployment>,
) -> Allocation {
    let state = ctx.state;
    let (node_id, node_name) = state
        .node_id_name(chosen.idx)
        .map(|(id, name)| (id.clone(), name.clone()))
        .unwrap_or_default();
    let mut ar = template.clone();
    if let Some(net) = &ctx.groups[g].network {
        let mut n = net.clone();
        for port in n
            .reserved_ports
            .iter_mut()
            .chain(n.dynamic_ports.iter_mut())
        {
            if let Some(a) = chosen.ports.iter().find(|a| a.label == port.label) {
                port.value = a.value;
                if port.to == 0 && n.mode == "bridge" {
                    port.to = i32::from(a.value);
                }
            }
        }
        if let Some(a) = chosen.ports.first() {
            n.ip = a.host_ip.clone();
        }
        ar.shared.networks = vec![n];
        // The chosen ports are not needed after this: their strings move.
        let ports = std::mem::take(&mut chosen.ports);
        ar.shared.ports = ports.into_iter().map(AssignedPort::into_mapping).collect();
    }
    for (t, devs) in ctx.groups[g].tasks.iter().zip(&chosen.devices) {
        if let Some(tr) = ar.tasks.get_mut(&t.name) {
            tr.devices.clone_from(devs);
        }
    }
    let mut alloc = Allocation {
        id: uuid_shared(&mut ctx.rng),
        namespace: ids.namespace.clone(),
        eval_id: ids.eval_id.clone(),
        name: p.name,
        node_id,
        node_name,
        job_id: ids.job_id.clone(),
        job: None,
        task_group: p.group,
        allocated_resources: Some(ar),
        metrics: Some(metric),
        desired_status: status::shared::ALLOC_DESIRED_RUN,
        client_status: status::shared::ALLOC_CLIENT_PENDING,
        create_time: now,
        modify_time: now,
        preempted_allocations: chosen.preempt.iter().map(|a| a.id.clone()).collect(),
        ..Allocation::default()
    };
    if let Some(prev) = &p.previous {
        alloc.previous_allocation = prev.id.to_string();
        if p.reschedule {
            let policy = job
                .group(&alloc.task_group)
                .and_then(|g| g.reschedule_policy.as_ref());
            alloc.reschedule_tracker = Some(reconcile::next_tracker(prev, policy, now));
        }
    }
    if p.deployment {
        if let Some(d) = &ids.deployment_id {
            alloc.deployment_id = d.clone();
            alloc.deployment_status = Some(AllocDeploymentStatus {
                canary: p.canary,
                ..AllocDeploymentStatus::default()
            });
            if let Some(dep) = deployment.as_mut() {
                if let Some(s) = dep.task_groups.get_mut(alloc.task_group.as_str()) {
                    s.placed_allocs += 1;
                    if p.canary {
                        s.placed_canaries.push(alloc.id.to_string());
                    }
                }
            }
        }
    }
    alloc
}

/// A random (version 4) UUID from the seeded generator.
pub(crate) fn uuid(rng: &mut impl Rng) -> String {
    let text = uuid_text(rng);
    // Hex digits and dashes only: always valid UTF-8.
    std::str::from_utf8(&text).map_or_else(|_| String::new(), str::to_owned)
}

/// [`uuid`] as a shared string, built straight from the text (one allocation).
fn uuid_shared(rng: &mut impl Rng) -> ArcStr {
    let text = uuid_text(rng);
    std::str::from_utf8(&text).map_or_else(|_| ArcStr::new(), ArcStr::from)
}

/// The 36 characters of a random (version 4) UUID.
fn uuid_text(rng: &mut impl Rng) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b: [u8; 16] = rng.gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut text = [b'-'; 36];
    let mut at = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        text[at] = HEX[usize::from(byte >> 4)];
        text[at + 1] = HEX[usize::from(byte & 0xf)];
        at += 2;
    }
    text
}

/// FNV-1a of a string, to derive per-evaluation seeds.
fn fnv(s: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

trait SeedFrom {
    fn seed_from(seed: u64) -> Self;
}

impl SeedFrom for rand::rngs::SmallRng {
    fn seed_from(seed: u64) -> Self {
        <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(id: &str, create_index: u64) -> Arc<Allocation> {
        Arc::new(Allocation {
            id: id.into(),
            desired_status: status::ALLOC_DESIRED_RUN.into(),
            client_status: status::ALLOC_CLIENT_PENDING.into(),
            create_index,
            ..Allocation::default()
        })
    }

    fn plan() -> Plan {
        let mut plan = Plan::default();
        plan.node_allocation
            .insert("n1".into(), vec![alloc("a", 0), alloc("b", 0)]);
        // An in-place update is not a new placement.
        plan.node_allocation
            .insert("n2".into(), vec![alloc("c", 7), alloc("d", 0)]);
        plan.node_allocation
            .insert("n3".into(), vec![alloc("e", 0)]);
        plan
    }

    fn committed_on(nodes: &[&str], refresh_index: u64) -> PlanResult {
        let mut r = PlanResult {
            refresh_index,
            ..PlanResult::default()
        };
        for n in nodes {
            r.node_allocation.insert(n.to_string().into(), Vec::new());
        }
        r
    }

    #[test]
    fn uuids_are_version_4_and_depend_only_on_the_generator() {
        // The layout written out the long way, as a reference.
        fn reference(rng: &mut impl Rng) -> String {
            let mut b: [u8; 16] = rng.gen();
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            let mut s = String::new();
            for (i, byte) in b.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    s.push('-');
                }
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        for seed in 0..50 {
            let id = uuid(&mut rand::rngs::SmallRng::seed_from(seed));
            assert_eq!(id, reference(&mut rand::rngs::SmallRng::seed_from(seed)));
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "4");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        }
    }

    #[test]
    fn new_placements_are_counted_on_committed_nodes_only() {
        let counts = NewPerNode::of(&plan());
        assert_eq!(counts.total, 4);
        assert_eq!(counts.committed(&committed_on(&["n1", "n2", "n3"], 0)), 4);
        assert_eq!(counts.committed(&committed_on(&["n1", "n3"], 9)), 3);
        assert_eq!(counts.committed(&committed_on(&["n2"], 9)), 1);
        assert_eq!(counts.committed(&committed_on(&[], 9)), 0);
    }
}
