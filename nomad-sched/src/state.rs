//! The two seams of the scheduler: reading a consistent snapshot of cluster state
//! ([`SchedState`]) and submitting what it decided ([`Planner`]).

use std::sync::Arc;

use nomad_core::job::Job;
use nomad_core::structs::{
    Allocation, ArcStr, Deployment, Evaluation, Node, Plan, PlanResult, SchedulerConfiguration,
};
use nomad_net::PortIndex;

use crate::SchedError;

/// The position of a node in a snapshot's node list ([`SchedState::nodes`]).
pub type NodeIdx = u32;

/// CPU, memory and disk, added up or offered. Plain numbers so that the hot path of the
/// scheduler copies them instead of allocating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeUsage {
    /// CPU in MHz.
    pub cpu: u64,
    /// Memory in MB.
    pub memory_mb: u64,
    /// Memory the allocations may burst to, in MB.
    pub memory_max_mb: u64,
    /// Disk in MB.
    pub disk_mb: u64,
    /// Dynamic ports on the node's default network: in a capacity, how many the range
    /// offers (0: not known, the scheduler asks the port index); in a usage, how many are
    /// taken. A shortcut for the scheduler only; fit checks use the port index.
    pub dynamic_ports: u32,
}

impl NodeUsage {
    /// What a node offers for allocations: its resources less what it reserves.
    pub fn capacity_of(node: &Node) -> NodeUsage {
        let mut c = NodeUsage::default();
        if let Some(r) = &node.node_resources {
            c.cpu = r.cpu.cpu_shares;
            c.memory_mb = r.memory.memory_mb;
            c.disk_mb = r.disk.disk_mb;
        }
        if let Some(r) = &node.reserved_resources {
            c.cpu = c.cpu.saturating_sub(r.cpu.cpu_shares);
            c.memory_mb = c.memory_mb.saturating_sub(r.memory.memory_mb);
            c.disk_mb = c.disk_mb.saturating_sub(r.disk.disk_mb);
        }
        c.memory_max_mb = c.memory_mb;
        c
    }

    /// What an allocation uses (zero for a terminal one).
    pub fn of_alloc(alloc: &Allocation) -> NodeUsage {
        let mut u = NodeUsage::default();
        if alloc.terminal() {
            return u;
        }
        if let Some(ar) = &alloc.allocated_resources {
            for t in ar.tasks.values() {
                u.cpu = u.cpu.saturating_add(t.cpu.cpu_shares);
                u.memory_mb = u.memory_mb.saturating_add(t.memory.memory_mb);
                let max = t.memory.memory_max_mb.max(t.memory.memory_mb);
                u.memory_max_mb = u.memory_max_mb.saturating_add(max);
            }
            u.disk_mb = ar.shared.disk_mb;
        }
        u
    }

    /// Adds `o`.
    pub fn add(&mut self, o: &NodeUsage) {
        self.cpu = self.cpu.saturating_add(o.cpu);
        self.memory_mb = self.memory_mb.saturating_add(o.memory_mb);
        self.memory_max_mb = self.memory_max_mb.saturating_add(o.memory_max_mb);
        self.disk_mb = self.disk_mb.saturating_add(o.disk_mb);
    }

    /// Subtracts `o`, never below zero.
    pub fn sub(&mut self, o: &NodeUsage) {
        self.cpu = self.cpu.saturating_sub(o.cpu);
        self.memory_mb = self.memory_mb.saturating_sub(o.memory_mb);
        self.memory_max_mb = self.memory_max_mb.saturating_sub(o.memory_max_mb);
        self.disk_mb = self.disk_mb.saturating_sub(o.disk_mb);
    }

    /// `Ok` when `self` (capacity) covers `used`, else the exhausted dimension as placement
    /// metrics name it.
    pub fn covers(&self, used: &NodeUsage) -> Result<(), &'static str> {
        if used.cpu > self.cpu {
            Err("cpu")
        } else if used.memory_mb > self.memory_mb {
            Err("memory")
        } else if used.disk_mb > self.disk_mb {
            Err("disk")
        } else {
            Ok(())
        }
    }
}

/// A consistent, read-only snapshot of the cluster as the scheduler sees it.
///
/// Every method reads the same snapshot: an implementation must not change between calls
/// made while one evaluation is being processed, except through [`Planner::submit_plan`]
/// (after which the scheduler reads again). Node positions ([`NodeIdx`]) are dense and stable
/// within a snapshot. Nothing here may fail: a missing object is `None` or empty.
pub trait SchedState {
    /// The state index the snapshot was taken at.
    fn index(&self) -> u64;

    /// Every node, at its position.
    fn nodes(&self) -> &[Arc<Node>];

    /// The position of the node with `id`.
    fn node_idx(&self, id: &str) -> Option<NodeIdx>;

    /// The ID and name of the node at `idx`, which every placement on it copies. A state
    /// may keep them apart from the node records, so that on a large cluster reading them
    /// costs one small read instead of a miss on the whole record.
    fn node_id_name(&self, idx: NodeIdx) -> Option<(&ArcStr, &ArcStr)> {
        self.nodes().get(idx as usize).map(|n| (&n.id, &n.name))
    }

    /// Positions of the nodes of `pool` (every pool for `all`) that are ready, eligible and
    /// not draining, in a stable order.
    fn ready_nodes(&self, pool: &str) -> &[NodeIdx];

    /// True when [`SchedState::ready_nodes`] of `pool` holds node `i` at position `i` for
    /// every position (the ready nodes are the snapshot's first nodes, in order): the
    /// scheduler then walks positions without reading the list. The default reads the
    /// list, once per evaluation; a store that keeps the answer current says so at once.
    fn ready_nodes_in_place(&self, pool: &str) -> bool {
        in_place(self.ready_nodes(pool))
    }

    /// A small dense number per distinct computed class (`Node::computed_class`): two nodes
    /// have the same number exactly when their computed classes are equal.
    fn node_class_id(&self, idx: NodeIdx) -> u32;

    /// How many class numbers [`SchedState::node_class_id`] hands out (one more than the
    /// largest).
    fn class_count(&self) -> u32;

    /// What the node offers for allocations (resources less reserved).
    fn node_capacity(&self, idx: NodeIdx) -> NodeUsage {
        self.nodes()
            .get(idx as usize)
            .map(|n| NodeUsage::capacity_of(n))
            .unwrap_or_default()
    }

    /// What the node's non-terminal allocations use. The default adds up
    /// [`SchedState::allocs_by_node`]; stores that keep running totals should override it.
    fn node_usage(&self, idx: NodeIdx) -> NodeUsage {
        let mut u = NodeUsage::default();
        for a in self.allocs_by_node(idx) {
            u.add(&NodeUsage::of_alloc(a));
        }
        u
    }

    /// The node's port index with the ports of its non-terminal allocations taken, when the
    /// store keeps one; `None` makes the scheduler build it from the node and its allocations.
    fn port_index(&self, idx: NodeIdx) -> Option<&PortIndex> {
        let _ = idx;
        None
    }

    /// Every allocation on the node, terminal ones included.
    fn allocs_by_node(&self, idx: NodeIdx) -> &[Arc<Allocation>];

    /// Every allocation of the job, terminal ones included.
    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> &[Arc<Allocation>];

    /// The job version an allocation runs. The default uses the copy carried in the
    /// allocation; stores that keep one shared copy per version override it.
    fn alloc_job(&self, alloc: &Allocation) -> Option<Arc<Job>> {
        alloc.job.clone()
    }

    /// The job's current version, `None` once it has been purged.
    fn job(&self, namespace: &str, job_id: &str) -> Option<Arc<Job>>;

    /// The job's most recent deployment.
    fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<&Deployment>;

    /// The cluster's scheduler configuration.
    fn scheduler_config(&self) -> &SchedulerConfiguration;
}

/// Where the scheduler sends its decisions.
///
/// After [`Planner::submit_plan`] returns, the implementation's [`SchedState`] (the same
/// object: schedulers take `&mut (impl SchedState + Planner)`) must show at least everything
/// the plan committed; when part of it was refused, `refresh_index` in the result is non-zero
/// and the state must have been refreshed to at least that index.
pub trait Planner {
    /// Submits a plan. Errors are failures to submit at all (the plan queue is gone), not
    /// refusals, which come back as a partial [`PlanResult`].
    fn submit_plan(&mut self, plan: Plan) -> Result<PlanResult, SchedError>;

    /// Records the evaluation's final status (complete, failed, blocked eval created...).
    fn update_eval(&mut self, eval: Evaluation) -> Result<(), SchedError>;

    /// Creates a follow-up evaluation: a blocked one waiting for capacity, or a delayed one
    /// for a reschedule.
    fn create_eval(&mut self, eval: Evaluation) -> Result<(), SchedError>;
}

/// True when `list[i] == i` for every position.
pub(crate) fn in_place(list: &[NodeIdx]) -> bool {
    list.iter().enumerate().all(|(i, &idx)| idx as usize == i)
}
