//! An in-memory cluster that is both a [`SchedState`] and a [`Planner`]: for tests, the
//! throughput harness and embedders that keep their own state.

use std::collections::HashMap;
use std::sync::Arc;

use nomad_core::job::Job;
use nomad_core::structs::{
    status, Allocation, ArcStr, Deployment, Evaluation, Node, Plan, PlanResult,
    SchedulerConfiguration,
};
use nomad_net::PortIndex;

use crate::fit::evaluate_node_plan_leaving;
use crate::hash::FastMap;
use crate::state::{NodeIdx, NodeUsage, Planner, SchedState};
use crate::SchedError;

/// A node's class, capacity and usage: the authoritative copy.
#[derive(Default, Clone, Copy)]
struct NodeTotals {
    class: u32,
    capacity: NodeUsage,
    usage: NodeUsage,
}

/// The same in 32-bit fields (16-bit class, port counts and burst), 32 bytes per node so
/// that two share a cache line: what the scheduler reads for every node it visits, usage
/// included, without touching [`NodeTotals`]. CPU, memory and disk beyond 32 bits saturate;
/// a class number or memory burst that does not fit in 16 bits is marked [`HotRecord::WIDE`]
/// and read from [`NodeTotals`].
#[derive(Default, Clone, Copy)]
#[repr(C, align(32))]
struct HotRecord {
    class: u16,
    /// Memory the allocations may burst to beyond what they reserve, in MB.
    burst: u16,
    /// Dynamic ports: offered, taken.
    ports: [u16; 2],
    /// cpu, memory, disk.
    cap: [u32; 3],
    /// cpu, memory, disk.
    used: [u32; 3],
}

fn narrow(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn narrow16(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

/// `v` when it fits below [`HotRecord::WIDE`], else that marker.
fn narrow_or_wide(v: u64) -> u16 {
    u16::try_from(v)
        .ok()
        .filter(|&n| n < HotRecord::WIDE)
        .unwrap_or(HotRecord::WIDE)
}

impl HotRecord {
    /// A class or burst too large for 16 bits: read the authoritative copy.
    const WIDE: u16 = u16::MAX;

    fn of(t: &NodeTotals) -> Self {
        let (c, u) = (&t.capacity, &t.usage);
        HotRecord {
            class: narrow_or_wide(u64::from(t.class)),
            burst: match u.memory_max_mb.checked_sub(u.memory_mb) {
                Some(b) if u.memory_mb <= u64::from(u32::MAX) => narrow_or_wide(b),
                _ => Self::WIDE,
            },
            ports: [narrow16(c.dynamic_ports), narrow16(u.dynamic_ports)],
            cap: [narrow(c.cpu), narrow(c.memory_mb), narrow(c.disk_mb)],
            used: [narrow(u.cpu), narrow(u.memory_mb), narrow(u.disk_mb)],
        }
    }

    fn capacity(&self) -> NodeUsage {
        NodeUsage {
            cpu: u64::from(self.cap[0]),
            memory_mb: u64::from(self.cap[1]),
            memory_max_mb: u64::from(self.cap[1]),
            disk_mb: u64::from(self.cap[2]),
            dynamic_ports: u32::from(self.ports[0]),
        }
    }

    /// The usage; `cold` gives the memory burst total when it did not fit.
    fn usage(&self, cold: impl FnOnce() -> u64) -> NodeUsage {
        let memory_mb = u64::from(self.used[1]);
        let memory_max_mb = if self.burst == Self::WIDE {
            cold()
        } else {
            memory_mb + u64::from(self.burst)
        };
        NodeUsage {
            cpu: u64::from(self.used[0]),
            memory_mb,
            memory_max_mb,
            disk_mb: u64::from(self.used[2]),
            dynamic_ports: u32::from(self.ports[1]),
        }
    }
}

/// The ready nodes of a pool, and whether some node is not at its own position in the
/// list (kept as the list changes, so the scheduler need not read it to know).
#[derive(Default)]
struct ReadyList {
    nodes: Vec<NodeIdx>,
    out_of_place: bool,
}

impl ReadyList {
    fn push(&mut self, idx: NodeIdx) {
        self.out_of_place |= idx as usize != self.nodes.len();
        self.nodes.push(idx);
    }

    fn remove(&mut self, idx: NodeIdx) {
        self.nodes.retain(|&n| n != idx);
        self.out_of_place = !crate::state::in_place(&self.nodes);
    }
}

type ByName<V, K = String> = HashMap<String, HashMap<K, V>>;

fn get2<'a, V, K>(m: &'a ByName<V, K>, ns: &str, id: &str) -> Option<&'a V>
where
    K: std::borrow::Borrow<str> + std::hash::Hash + Eq,
{
    m.get(ns)?.get(id)
}

/// A cluster held in memory, with running per-node totals and port indexes so that both
/// scheduling and plan application cost time in the size of the work, not of the cluster.
///
/// Plans are applied the way the server's plan applier does: stops always commit, each
/// node's placements commit when [`crate::evaluate_node_plan_with`] accepts them (through
/// [`crate::evaluate_node_plan_leaving`] and the state's index by ID), and an
/// `all_at_once` plan commits whole or not at all. The placements of a [`PlanResult`] list
/// the committed allocations by ID, name and indexes only; read them back from the state.
#[derive(Default)]
pub struct MemState {
    index: u64,
    nodes: Vec<Arc<Node>>,
    /// Each node's ID and name, side by side for [`SchedState::node_id_name`].
    names: Vec<(ArcStr, ArcStr)>,
    node_ids: FastMap<ArcStr, NodeIdx>,
    /// Class, capacity and usage of each node.
    cold: Vec<NodeTotals>,
    /// The compact mirror of `cold` the scheduler reads: half a cache line per node.
    hot: Vec<HotRecord>,
    class_ids: HashMap<String, u32>,
    ports: Vec<PortIndex>,
    ready_by_pool: HashMap<String, ReadyList>,
    ready_all: ReadyList,
    by_node: Vec<Vec<Arc<Allocation>>>,
    by_job: ByName<Vec<Arc<Allocation>>, ArcStr>,
    alloc_node: FastMap<ArcStr, NodeIdx>,
    alloc_jobs: FastMap<ArcStr, Arc<Job>>,
    jobs: ByName<Arc<Job>>,
    deployments: ByName<Deployment>,
    config: SchedulerConfiguration,
    evals: Vec<Evaluation>,
    /// Position in `evals` of the first evaluation with each ID, so that recording an
    /// evaluation's status does not scan every evaluation before it.
    eval_pos: HashMap<String, usize>,
    plans_refused: u64,
}

impl MemState {
    /// An empty cluster with the default scheduler configuration.
    pub fn new() -> Self {
        MemState::default()
    }

    /// Bumps and returns the state index.
    fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    /// Adds or replaces a node. Its computed class is filled in when empty.
    pub fn upsert_node(&mut self, mut node: Node) -> NodeIdx {
        if node.computed_class.is_empty() {
            node.compute_class();
        }
        if node.node_pool.is_empty() {
            node.node_pool = "default".to_string();
        }
        let index = self.bump();
        if node.create_index == 0 {
            node.create_index = index;
        }
        node.modify_index = index;
        let next = self.class_ids.len() as u32;
        let class = *self
            .class_ids
            .entry(node.computed_class.clone())
            .or_insert(next);
        let mut ports = PortIndex::for_node(&node).unwrap_or_else(|_| PortIndex::new(20000, 32000));
        let mut capacity = NodeUsage::capacity_of(&node);
        capacity.dynamic_ports = ports.dynamic_free(0);
        let idx = match self.node_ids.get(&node.id) {
            Some(&i) => i,
            None => {
                let i = self.nodes.len() as NodeIdx;
                self.node_ids.insert(node.id.clone(), i);
                self.nodes.push(Arc::new(Node::default()));
                self.names.push((ArcStr::new(), ArcStr::new()));
                self.cold.push(NodeTotals::default());
                self.hot.push(HotRecord::default());
                self.ports.push(PortIndex::new(20000, 32000));
                self.by_node.push(Vec::new());
                i
            }
        };
        let i = idx as usize;
        for a in &self.by_node[i] {
            if !a.terminal() {
                let _ = ports.add_alloc(a);
            }
        }
        let was_ready = self.nodes[i].ready_for_placement() && !self.nodes[i].id.is_empty();
        let old_pool = self.nodes[i].node_pool.clone();
        let now_ready = node.ready_for_placement();
        let pool = node.node_pool.clone();
        self.names[i] = (node.id.clone(), node.name.clone());
        self.nodes[i] = Arc::new(node);
        self.cold[i].class = class;
        self.cold[i].usage.dynamic_ports =
            capacity.dynamic_ports.saturating_sub(ports.dynamic_free(0));
        self.cold[i].capacity = capacity;
        self.hot[i] = HotRecord::of(&self.cold[i]);
        self.ports[i] = ports;
        if was_ready {
            if let Some(v) = self.ready_by_pool.get_mut(&old_pool) {
                v.remove(idx);
            }
            self.ready_all.remove(idx);
        }
        if now_ready {
            self.ready_by_pool.entry(pool).or_default().push(idx);
            self.ready_all.push(idx);
        }
        idx
    }

    /// Registers a job version. A changed specification gets the next version number; the
    /// job's indexes are set. Returns the shared copy.
    pub fn upsert_job(&mut self, mut job: Job) -> Arc<Job> {
        let index = self.bump();
        let ns = job.namespace_or_default().to_string();
        let prev = get2(&self.jobs, &ns, &job.id).cloned();
        match &prev {
            Some(p) => {
                job.create_index = p.create_index;
                let changed = {
                    let mut a = (**p).clone();
                    a.version = job.version;
                    a.modify_index = job.modify_index;
                    a.job_modify_index = job.job_modify_index;
                    a.create_index = job.create_index;
                    a.submit_time = job.submit_time;
                    a.stable = job.stable;
                    a.status.clone_from(&job.status);
                    a != job
                };
                if changed {
                    job.version = Some(p.version.unwrap_or(0) + 1);
                    job.job_modify_index = Some(index);
                } else {
                    job.version = p.version;
                    job.job_modify_index = p.job_modify_index;
                }
            }
            None => {
                job.create_index = Some(index);
                job.version = Some(job.version.unwrap_or(0));
                job.job_modify_index = Some(index);
            }
        }
        job.modify_index = Some(index);
        let job = Arc::new(job);
        self.jobs
            .entry(ns)
            .or_default()
            .insert(job.id.clone(), Arc::clone(&job));
        job
    }

    /// Removes a job (allocations stay until stopped).
    pub fn delete_job(&mut self, namespace: &str, job_id: &str) {
        self.bump();
        if let Some(m) = self.jobs.get_mut(namespace) {
            m.remove(job_id);
        }
    }

    /// Adds or replaces an allocation. `job` is the version it runs; `None` keeps the copy
    /// the allocation carries, or the version recorded before.
    pub fn upsert_alloc(&mut self, mut alloc: Allocation, job: Option<Arc<Job>>) {
        let index = self.bump();
        if alloc.create_index == 0 {
            alloc.create_index = index;
        }
        alloc.modify_index = index;
        let job = job.or_else(|| alloc.job.take());
        if let Some(j) = job {
            self.alloc_jobs.insert(alloc.id.clone(), j);
        }
        self.put_alloc(Arc::new(alloc));
    }

    /// Changes an allocation's client status (as a client update would).
    pub fn set_client_status(&mut self, alloc_id: &str, client_status: &str) -> bool {
        let Some(old) = self.find_alloc(alloc_id) else {
            return false;
        };
        let mut a = (*old).clone();
        a.client_status = status::shared::alloc_status(client_status);
        a.modify_index = self.bump();
        self.put_alloc(Arc::new(a));
        true
    }

    /// Adds or replaces a deployment (the latest per job is kept).
    pub fn upsert_deployment(&mut self, mut d: Deployment) {
        let index = self.bump();
        if d.create_index == 0 {
            d.create_index = index;
        }
        d.modify_index = index;
        let ns = if d.namespace.is_empty() {
            "default".to_string()
        } else {
            d.namespace.clone()
        };
        self.deployments
            .entry(ns)
            .or_default()
            .insert(d.job_id.clone(), d);
    }

    /// Replaces the scheduler configuration.
    pub fn set_scheduler_config(&mut self, c: SchedulerConfiguration) {
        self.config = c;
    }

    /// An allocation by ID.
    pub fn find_alloc(&self, id: &str) -> Option<Arc<Allocation>> {
        let n = *self.alloc_node.get(id)?;
        self.by_node
            .get(n as usize)?
            .iter()
            .find(|a| a.id == id)
            .cloned()
    }

    /// Every evaluation created or updated through [`Planner`], oldest first.
    pub fn evals(&self) -> &[Evaluation] {
        &self.evals
    }

    /// How many node plans were refused so far.
    pub fn refused_node_plans(&self) -> u64 {
        self.plans_refused
    }

    /// Every allocation, terminal ones included.
    pub fn allocs(&self) -> impl Iterator<Item = &Arc<Allocation>> {
        self.by_node.iter().flatten()
    }

    /// Total capacity and usage over all nodes.
    pub fn totals(&self) -> (NodeUsage, NodeUsage) {
        let mut cap = NodeUsage::default();
        let mut used = NodeUsage::default();
        for h in &self.cold {
            cap.add(&h.capacity);
            used.add(&h.usage);
        }
        (cap, used)
    }

    /// Per-node capacity and usage, by node position.
    pub fn node_totals(&self) -> impl Iterator<Item = (&NodeUsage, &NodeUsage)> {
        self.cold.iter().map(|h| (&h.capacity, &h.usage))
    }

    fn put_alloc(&mut self, alloc: Arc<Allocation>) {
        let Some(&node) = self.node_ids.get(&alloc.node_id) else {
            return;
        };
        let n = node as usize;
        let ns = if alloc.namespace.is_empty() {
            "default"
        } else {
            alloc.namespace.as_str()
        };
        // Remove the previous version.
        if let Some(prev_node) = self.alloc_node.insert(alloc.id.clone(), node) {
            let p = prev_node as usize;
            if let Some(pos) = self.by_node[p].iter().position(|a| a.id == alloc.id) {
                let old = self.by_node[p].swap_remove(pos);
                if !old.terminal() {
                    self.cold[p].usage.sub(&NodeUsage::of_alloc(&old));
                    self.ports[p].remove_alloc(&old);
                    self.sync_dynamic_ports(p);
                }
            }
            if let Some(v) = self
                .by_job
                .get_mut(ns)
                .and_then(|m| m.get_mut(&alloc.job_id))
            {
                if let Some(pos) = v.iter().position(|a| a.id == alloc.id) {
                    v.swap_remove(pos);
                }
            }
        }
        if !alloc.terminal() {
            self.cold[n].usage.add(&NodeUsage::of_alloc(&alloc));
            let _ = self.ports[n].add_alloc(&alloc);
        }
        let jobs = match self.by_job.get_mut(ns) {
            Some(m) => m,
            None => self.by_job.entry(ns.to_string()).or_default(),
        };
        match jobs.get_mut(&alloc.job_id) {
            Some(v) => v.push(Arc::clone(&alloc)),
            None => {
                jobs.insert(alloc.job_id.clone(), vec![Arc::clone(&alloc)]);
            }
        }
        self.by_node[n].push(alloc);
        self.sync_dynamic_ports(n);
    }

    fn sync_dynamic_ports(&mut self, n: usize) {
        let free = self.ports[n].dynamic_free(0);
        let h = &mut self.cold[n];
        h.usage.dynamic_ports = h.capacity.dynamic_ports.saturating_sub(free);
        self.hot[n] = HotRecord::of(h);
    }

    fn stop_alloc(&mut self, stop: &Allocation, index: u64) {
        let Some(old) = self.find_alloc(&stop.id) else {
            return;
        };
        let mut a = (*old).clone();
        a.desired_status.clone_from(&stop.desired_status);
        a.desired_description.clone_from(&stop.desired_description);
        if !stop.client_status.is_empty() {
            a.client_status.clone_from(&stop.client_status);
        }
        if !stop.followup_eval_id.is_empty() {
            a.followup_eval_id.clone_from(&stop.followup_eval_id);
        }
        if !stop.preempted_by_allocation.is_empty() {
            a.preempted_by_allocation
                .clone_from(&stop.preempted_by_allocation);
        }
        a.desired_transition = stop.desired_transition.clone();
        a.modify_index = index;
        a.alloc_modify_index = index;
        self.put_alloc(Arc::new(a));
    }
}

impl SchedState for MemState {
    fn index(&self) -> u64 {
        self.index
    }
    fn nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }
    fn node_id_name(&self, idx: NodeIdx) -> Option<(&ArcStr, &ArcStr)> {
        self.names.get(idx as usize).map(|(id, name)| (id, name))
    }
    fn node_idx(&self, id: &str) -> Option<NodeIdx> {
        self.node_ids.get(id).copied()
    }
    fn ready_nodes(&self, pool: &str) -> &[NodeIdx] {
        if pool == "all" {
            return &self.ready_all.nodes;
        }
        self.ready_by_pool
            .get(pool)
            .map_or(&[], |l| l.nodes.as_slice())
    }
    fn ready_nodes_in_place(&self, pool: &str) -> bool {
        if pool == "all" {
            return !self.ready_all.out_of_place;
        }
        self.ready_by_pool.get(pool).is_none_or(|l| !l.out_of_place)
    }
    fn node_class_id(&self, idx: NodeIdx) -> u32 {
        let i = idx as usize;
        match self.hot.get(i) {
            Some(h) if h.class != HotRecord::WIDE => u32::from(h.class),
            _ => self.cold.get(i).map_or(0, |c| c.class),
        }
    }
    fn class_count(&self) -> u32 {
        self.class_ids.len() as u32
    }
    fn node_capacity(&self, idx: NodeIdx) -> NodeUsage {
        self.hot
            .get(idx as usize)
            .map_or_else(NodeUsage::default, HotRecord::capacity)
    }
    fn node_usage(&self, idx: NodeIdx) -> NodeUsage {
        let i = idx as usize;
        let cold = || self.cold.get(i).map_or(0, |c| c.usage.memory_max_mb);
        self.hot
            .get(i)
            .map_or_else(NodeUsage::default, |h| h.usage(cold))
    }
    fn port_index(&self, idx: NodeIdx) -> Option<&PortIndex> {
        self.ports.get(idx as usize)
    }
    fn allocs_by_node(&self, idx: NodeIdx) -> &[Arc<Allocation>] {
        self.by_node.get(idx as usize).map_or(&[], Vec::as_slice)
    }
    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> &[Arc<Allocation>] {
        get2(&self.by_job, namespace, job_id).map_or(&[], Vec::as_slice)
    }
    fn alloc_job(&self, alloc: &Allocation) -> Option<Arc<Job>> {
        match self.alloc_jobs.get(&alloc.id) {
            Some(j) => Some(Arc::clone(j)),
            None => alloc.job.clone(),
        }
    }
    fn job(&self, namespace: &str, job_id: &str) -> Option<Arc<Job>> {
        get2(&self.jobs, namespace, job_id).cloned()
    }
    fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<&Deployment> {
        get2(&self.deployments, namespace, job_id)
    }
    fn scheduler_config(&self) -> &SchedulerConfiguration {
        &self.config
    }
}

impl Planner for MemState {
    fn submit_plan(&mut self, mut plan: Plan) -> Result<PlanResult, SchedError> {
        let index = self.bump();
        let mut result = PlanResult {
            alloc_index: index,
            ..PlanResult::default()
        };
        // Decide which nodes' placements fit before changing anything.
        let mut accepted: Vec<ArcStr> = Vec::new();
        let mut refused = false;
        for (node_id, placed) in &plan.node_allocation {
            let Some(&idx) = self.node_ids.get(node_id) else {
                refused = true;
                continue;
            };
            let i = idx as usize;
            let removed: Vec<&str> = plan
                .node_update
                .get(node_id)
                .into_iter()
                .chain(plan.node_preemptions.get(node_id))
                .flatten()
                .map(|a| a.id.as_str())
                .collect();
            // The allocations that leave the node, found through the ID index: new
            // placements are in no index yet, so most nodes need no search at all.
            let mut leaving: Vec<&Allocation> = Vec::new();
            for id in removed
                .iter()
                .copied()
                .chain(placed.iter().map(|a| a.id.as_str()))
            {
                if self.alloc_node.get(id) != Some(&idx) {
                    continue;
                }
                let found = self.by_node[i].iter().find(|a| a.id == id);
                if let Some(a) = found.filter(|a| !a.terminal()) {
                    if !leaving.iter().any(|l| std::ptr::eq(*l, a.as_ref())) {
                        leaving.push(a);
                    }
                }
            }
            let fits = evaluate_node_plan_leaving(
                &self.nodes[i],
                &self.cold[i].capacity,
                &self.cold[i].usage,
                Some(&self.ports[i]),
                &self.by_node[i],
                &removed,
                placed,
                &leaving,
            );
            match fits {
                Ok(()) => accepted.push(node_id.clone()),
                Err(_) => {
                    refused = true;
                    self.plans_refused += 1;
                }
            }
        }
        if refused {
            result.refresh_index = index;
            if plan.all_at_once {
                accepted.clear();
                return Ok(result);
            }
        }
        for (node_id, stops) in std::mem::take(&mut plan.node_update) {
            for s in &stops {
                self.stop_alloc(s, index);
            }
            result.node_update.insert(node_id, stops);
        }
        for (node_id, stops) in std::mem::take(&mut plan.node_preemptions) {
            for s in &stops {
                self.stop_alloc(s, index);
            }
            result.node_preemptions.insert(node_id, stops);
        }
        let job = plan.job.take().map(Arc::new);
        for node_id in accepted {
            let Some(placed) = plan.node_allocation.remove(&node_id) else {
                continue;
            };
            let mut committed = Vec::with_capacity(placed.len());
            for mut shared in placed {
                // The scheduler hands over the only reference: no copy is made here.
                let a = Arc::make_mut(&mut shared);
                if a.create_index == 0 {
                    a.create_index = index;
                }
                a.modify_index = index;
                a.alloc_modify_index = index;
                a.job = None;
                if let Some(j) = &job {
                    self.alloc_jobs.insert(a.id.clone(), Arc::clone(j));
                }
                committed.push(Arc::clone(&shared));
                self.put_alloc(shared);
            }
            result.node_allocation.insert(node_id, committed);
        }
        if let Some(d) = plan.deployment.take() {
            self.upsert_deployment(d.clone());
            result.deployment = Some(d);
        }
        for u in std::mem::take(&mut plan.deployment_updates) {
            for m in self.deployments.values_mut() {
                for d in m.values_mut() {
                    if d.id == u.deployment_id {
                        d.status.clone_from(&u.status);
                        d.status_description.clone_from(&u.status_description);
                        d.modify_index = index;
                    }
                }
            }
            result.deployment_updates.push(u);
        }
        Ok(result)
    }

    fn update_eval(&mut self, eval: Evaluation) -> Result<(), SchedError> {
        self.bump();
        match self.eval_pos.get(&eval.id).copied() {
            Some(i) if i < self.evals.len() => self.evals[i] = eval,
            _ => self.push_eval(eval),
        }
        Ok(())
    }

    fn create_eval(&mut self, mut eval: Evaluation) -> Result<(), SchedError> {
        let index = self.bump();
        eval.create_index = index;
        eval.modify_index = index;
        if eval.status.is_empty() {
            eval.status = status::EVAL_PENDING.to_string();
        }
        self.push_eval(eval);
        Ok(())
    }
}

impl MemState {
    fn push_eval(&mut self, eval: Evaluation) {
        if !self.eval_pos.contains_key(&eval.id) {
            self.eval_pos.insert(eval.id.clone(), self.evals.len());
        }
        self.evals.push(eval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(class: u32, memory_mb: u64, memory_max_mb: u64) -> NodeTotals {
        NodeTotals {
            class,
            capacity: NodeUsage {
                cpu: 4000,
                memory_mb: 8192,
                memory_max_mb: 8192,
                disk_mb: 1000,
                dynamic_ports: 12001,
            },
            usage: NodeUsage {
                cpu: 500,
                memory_mb,
                memory_max_mb,
                disk_mb: 300,
                dynamic_ports: 2,
            },
        }
    }

    fn ready_node(id: &str, status: &str) -> Node {
        Node {
            id: id.into(),
            name: id.into(),
            node_pool: "default".into(),
            status: status.into(),
            ..Node::default()
        }
    }

    #[test]
    fn the_ready_list_knows_whether_its_nodes_are_in_place() {
        let ready = nomad_core::structs::status::NODE_READY;
        let mut state = MemState::new();
        for id in ["a", "b", "c"] {
            state.upsert_node(ready_node(id, ready));
        }
        let agrees = |state: &MemState, pool: &str| {
            state.ready_nodes_in_place(pool) == crate::state::in_place(state.ready_nodes(pool))
        };
        assert!(state.ready_nodes_in_place("default"));
        assert!(state.ready_nodes_in_place("all"));
        // The last node leaving and coming back keeps the order.
        state.upsert_node(ready_node("c", "down"));
        assert_eq!(state.ready_nodes("default"), &[0, 1]);
        assert!(state.ready_nodes_in_place("default"));
        state.upsert_node(ready_node("c", ready));
        assert!(state.ready_nodes_in_place("default"));
        // A node in the middle coming back goes to the end: out of place.
        state.upsert_node(ready_node("a", "down"));
        assert!(!state.ready_nodes_in_place("default"));
        state.upsert_node(ready_node("a", ready));
        assert_eq!(state.ready_nodes("default"), &[1, 2, 0]);
        assert!(!state.ready_nodes_in_place("default"));
        assert!(!state.ready_nodes_in_place("all"));
        for pool in ["default", "all", "other"] {
            assert!(agrees(&state, pool), "pool {pool}");
        }
    }

    #[test]
    fn hot_record_gives_the_usage_of_the_authoritative_copy() {
        let cases = [
            totals(3, 512, 512),
            totals(3, 512, 1024),
            // A burst too large for 16 bits and a class number too large for 16 bits.
            totals(70_000, 512, 512 + 100_000),
            // Totals that went below the reserved memory (never from real allocations).
            totals(1, 512, 100),
            totals(1, u64::from(u32::MAX) + 5, u64::from(u32::MAX) + 9),
        ];
        for t in cases {
            let h = HotRecord::of(&t);
            let cold = || t.usage.memory_max_mb;
            let u = h.usage(cold);
            assert_eq!(u.memory_max_mb, t.usage.memory_max_mb);
            assert_eq!(u.cpu, t.usage.cpu);
            assert_eq!(u.dynamic_ports, t.usage.dynamic_ports);
            let class = if h.class == HotRecord::WIDE {
                t.class
            } else {
                u32::from(h.class)
            };
            assert_eq!(class, t.class);
        }
    }

    #[test]
    fn evaluation_updates_replace_the_first_with_the_same_id() {
        let mut state = MemState::new();
        let eval = |id: &str, status: &str| Evaluation {
            id: id.into(),
            status: status.into(),
            ..Evaluation::default()
        };
        state.create_eval(eval("a", "")).expect("recorded");
        state.create_eval(eval("b", "blocked")).expect("recorded");
        state.create_eval(eval("a", "blocked")).expect("recorded");
        state.update_eval(eval("a", "complete")).expect("recorded");
        state.update_eval(eval("c", "complete")).expect("recorded");
        state.update_eval(eval("c", "failed")).expect("recorded");
        let seen: Vec<(&str, &str)> = state
            .evals()
            .iter()
            .map(|e| (e.id.as_str(), e.status.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("a", "complete"),
                ("b", "blocked"),
                ("a", "blocked"),
                ("c", "failed")
            ]
        );
    }

    #[test]
    fn state_reads_wide_classes_and_bursts_back() {
        let mut state = MemState::new();
        for i in 0..3 {
            let mut node = Node {
                id: format!("n{i}").into(),
                status: status::NODE_READY.into(),
                ..Node::default()
            };
            node.node_class = format!("c{i}");
            state.upsert_node(node);
        }
        let (i, t) = (1usize, totals(70_000, 512, 512 + 100_000));
        state.cold[i] = t;
        state.hot[i] = HotRecord::of(&t);
        assert_eq!(state.node_class_id(1), 70_000);
        assert_eq!(state.node_usage(1).memory_max_mb, 100_512);
        assert_eq!(state.node_usage(0).memory_max_mb, 0);
    }
}
