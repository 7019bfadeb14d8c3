//! The placement engine: for one evaluation, what the plan has changed on each node so far,
//! feasibility with per-class caching, ranking, the limit over a shuffled node order, port
//! and device assignment, and placement metrics.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use nomad_core::job::{Job, NetworkResource, RequestedDevice, TaskGroup};
use nomad_core::structs::{AllocMetric, AllocatedDevice, Allocation, LiteMap, Node, NodeScoreMeta};
use nomad_net::{AssignedPort, PlannedPort, PortIndex};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use smallvec::SmallVec;

use crate::feasible::{
    device_group_matches, escapes_class, glob_match, network_mode_supported, CompiledConstraint,
    RegexCache, TargetRef,
};
use crate::hash::{FastMap, FastSet};
use crate::state::{NodeIdx, NodeUsage, SchedState};

/// Nomad skips options scoring at or below this while it still has skips left.
const SKIP_SCORE_THRESHOLD: f64 = 0.0;
/// ... and skips at most this many.
const MAX_SKIP: usize = 3;
/// Nodes whose records the walk reads together before looking at them one by one.
const READ_AHEAD: usize = 4;
/// ... on clusters at least this large. The in-memory records of smaller ones (32 bytes a
/// node) stay in the cache, where the extra reads cost more than they save (c1m, 10,000
/// nodes: about 3% slower with them; 100,000 nodes: about 11% faster).
const READ_AHEAD_MIN_NODES: usize = 32_768;
/// Nomad's bin-packing fitness is in [0, 18].
const BINPACK_MAX_FIT: f64 = 18.0;

/// Tunables of the placement engine.
#[derive(Debug, Clone)]
pub struct SelectOptions {
    /// Nodes ranked per placement when the group has affinities or spreads. Nomad ranks
    /// every feasible node then; a bounded sample keeps placements cheap on large clusters
    /// and loses little, since spread targets are values many nodes share. `usize::MAX`
    /// restores Nomad's behaviour.
    pub affinity_spread_limit: usize,
    /// How many of the best nodes a placement's metrics keep scores for (Nomad keeps five;
    /// each costs a few small heap allocations per placement, so the default keeps the
    /// chosen node's).
    pub score_meta_top_k: usize,
    /// Record the full breakdown (nodes filtered per constraint and class, exhausted per
    /// dimension and class) for successful placements too. Failed placements always get
    /// it: that is what explains a blocked evaluation. Off by default: the breakdown costs
    /// several heap allocations per placement.
    pub detailed_metrics: bool,
}

impl Default for SelectOptions {
    fn default() -> Self {
        SelectOptions {
            affinity_spread_limit: 32,
            score_meta_top_k: 1,
            detailed_metrics: false,
        }
    }
}

/// Resources of one task, as asked.
#[derive(Debug, Clone)]
pub(crate) struct TaskAsk {
    pub(crate) name: String,
    pub(crate) cpu: u64,
    pub(crate) memory_mb: u64,
    pub(crate) memory_max_mb: u64,
    pub(crate) devices: Vec<RequestedDevice>,
}

/// A check whose result depends only on the node's computed class.
#[derive(Debug, Clone)]
enum ClassCheck {
    Driver(String),
    Network(String),
    Constraint(CompiledConstraint),
}

impl ClassCheck {
    fn label(&self) -> String {
        match self {
            ClassCheck::Driver(d) => format!("missing drivers: {d}"),
            ClassCheck::Network(m) => format!("missing network mode: {m}"),
            ClassCheck::Constraint(c) => c.label.clone(),
        }
    }
}

/// One spread block, compiled.
#[derive(Debug, Clone)]
struct SpreadSpec {
    prop: usize,
    weight: f64,
    /// Desired counts by value id (targets are interned first, so their ids come first).
    desired: Vec<f64>,
    /// The implicit remainder for values without a target, when targets leave one.
    remainder: Option<f64>,
    /// No targets: spread evenly.
    even: bool,
}

/// A set of allocations counted by the value of a node property. Values are interned to
/// small ids; when the property only depends on the node's class (attributes, metadata,
/// datacenter, class, pool) its value is cached per class, so ranking a node needs no
/// string work.
#[derive(Debug, Clone)]
struct PropSet {
    target: TargetRef,
    /// Counts only allocations of this group; `None` counts the whole job.
    group: Option<String>,
    class_level: bool,
    ids: HashMap<String, u32>,
    counts: Vec<u32>,
    /// Per class: 0 unknown, 1 not set on the node, n >= 2 value id n - 2.
    by_class: Vec<u32>,
    /// Smallest and largest non-zero count, recomputed after a change.
    minmax: Option<(u32, u32)>,
}

impl PropSet {
    fn new(target: TargetRef, group: Option<String>, classes: usize) -> Self {
        let class_level = match &target {
            TargetRef::Attr(k) | TargetRef::Meta(k) => !k.starts_with("unique."),
            TargetRef::Datacenter | TargetRef::Class | TargetRef::Pool | TargetRef::Lit(_) => true,
            TargetRef::NodeId | TargetRef::NodeName | TargetRef::Unknown => false,
        };
        PropSet {
            target,
            group,
            class_level,
            ids: HashMap::new(),
            counts: Vec::new(),
            by_class: vec![0; classes],
            minmax: None,
        }
    }

    fn intern(&mut self, v: &str) -> u32 {
        if let Some(&id) = self.ids.get(v) {
            return id;
        }
        let id = self.counts.len() as u32;
        self.ids.insert(v.to_string(), id);
        self.counts.push(0);
        id
    }

    /// The value id of a node of class `class`; `node` is only asked for when needed.
    fn value<'n>(&mut self, class: u32, node: impl FnOnce() -> Option<&'n Node>) -> Option<u32> {
        let c = class as usize;
        if self.class_level {
            match self.by_class.get(c).copied() {
                Some(1) => return None,
                Some(n) if n >= 2 => return Some(n - 2),
                _ => {}
            }
        }
        let text = node().and_then(|n| self.target.get(n).map(str::to_owned));
        let id = text.map(|t| self.intern(&t));
        if self.class_level {
            if let Some(slot) = self.by_class.get_mut(c) {
                *slot = id.map_or(1, |i| i + 2);
            }
        }
        id
    }

    fn count(&self, v: u32) -> u32 {
        self.counts.get(v as usize).copied().unwrap_or(0)
    }

    fn bump(&mut self, v: u32, delta: i32) {
        if let Some(c) = self.counts.get_mut(v as usize) {
            *c = if delta > 0 {
                c.saturating_add(delta as u32)
            } else {
                c.saturating_sub(delta.unsigned_abs())
            };
            self.minmax = None;
        }
    }

    /// Nomad's even-spread boost for a node whose value is `v`.
    fn even_boost(&mut self, v: u32) -> f64 {
        let (min, max) = match self.minmax {
            Some(m) => m,
            None => {
                let used = self.counts.iter().copied().filter(|&c| c > 0);
                let m = used.fold((0u32, 0u32), |(lo, hi), c| {
                    (if lo == 0 { c } else { lo.min(c) }, hi.max(c))
                });
                self.minmax = Some(m);
                m
            }
        };
        even_spread_boost(self.count(v), min, max)
    }
}

/// A task group compiled for placement.
pub(crate) struct GroupSpec {
    pub(crate) name: String,
    pub(crate) count: u32,
    pub(crate) ask: NodeUsage,
    pub(crate) tasks: Vec<TaskAsk>,
    pub(crate) network: Option<NetworkResource>,
    host_volumes: Vec<(String, bool)>,
    class_checks: Vec<ClassCheck>,
    escaped: Vec<CompiledConstraint>,
    /// `Some(true)`: distinct across the job; `Some(false)`: across the group.
    distinct_hosts: Option<bool>,
    /// (property set, allowed per value).
    distinct_props: Vec<(usize, u32)>,
    spreads: Vec<SpreadSpec>,
    sum_spread_weight: f64,
    affinities: Vec<(CompiledConstraint, f64)>,
    sum_affinity_weight: f64,
    /// Per class id: 0 unknown, 1 eligible, n >= 2 filtered by reason n - 2.
    class_cache: Vec<u16>,
    reasons: Vec<String>,
    has_devices: bool,
    /// Some node-level check reads the node (escaped constraints, distinct_property, host
    /// volumes, devices).
    needs_node: bool,
    /// The group asks only for dynamic ports on the default network: how many.
    dynamic_only: Option<u32>,
}

/// What a plan has changed on one node so far.
#[derive(Default, Debug)]
struct NodeDelta {
    add: NodeUsage,
    freed: NodeUsage,
    /// Kept inline up to four: a plan touches a node for one or two placements on a
    /// large cluster, and each list on the heap costs an allocation and, when the plan is
    /// dropped, a free whose memory has long left the cache.
    ports: SmallVec<[PlannedPort; 4]>,
    /// How many of `ports` are on the default network.
    default_net_ports: u32,
    devices: Vec<String>,
    freed_devices: Vec<String>,
}

/// A set of node positions as one bit each, grown on demand: the walk asks about every
/// node it visits, and most are in none of the per-evaluation maps, so a bit test spares
/// a hash lookup.
#[derive(Default, Clone)]
struct NodeBits(Vec<u64>);

impl NodeBits {
    fn contains(&self, idx: NodeIdx) -> bool {
        let i = idx as usize;
        self.0
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    fn insert(&mut self, idx: NodeIdx) {
        let i = idx as usize;
        if self.0.len() <= i / 64 {
            self.0.resize(i / 64 + 1, 0);
        }
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1u64 << (i % 64);
        }
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// What the plan changed, per node it touched: entries in a list, found through a map of
/// small slot numbers (growing the map moves 8-byte entries, not node deltas).
#[derive(Default)]
struct Deltas {
    /// The nodes that have an entry.
    touched: NodeBits,
    slots: FastMap<NodeIdx, u32>,
    list: Vec<NodeDelta>,
    /// Every planned port of the plan as one number (node, network, port): bin-packing puts
    /// many placements of one plan on a node, and port assignment asks about each
    /// candidate port.
    ports: FastSet<u64>,
}

impl Deltas {
    fn get(&self, idx: NodeIdx) -> Option<&NodeDelta> {
        if !self.touched.contains(idx) {
            return None;
        }
        let slot = *self.slots.get(&idx)?;
        self.list.get(slot as usize)
    }

    fn entry(&mut self, idx: NodeIdx) -> &mut NodeDelta {
        self.touched.insert(idx);
        let next = self.list.len() as u32;
        let slot = *self.slots.entry(idx).or_insert(next) as usize;
        if slot == self.list.len() {
            self.list.push(NodeDelta::default());
        }
        let last = self.list.len() - 1;
        &mut self.list[slot.min(last)]
    }

    fn port_planned(&self, idx: NodeIdx, network: usize, port: u16) -> bool {
        self.ports.contains(&planned_port_key(idx, network, port))
    }
}

/// A ranked option.
#[derive(Clone, Debug)]
struct Ranked {
    idx: NodeIdx,
    score: f64,
    binpack: f64,
    anti_affinity: f64,
    penalty: f64,
    affinity: f64,
    spread: f64,
}

/// A ranked node and the devices it would give.
type Offer = (Ranked, Vec<Vec<AllocatedDevice>>);

/// The node chosen for a placement and what it was given there.
#[derive(Debug)]
pub(crate) struct Chosen {
    pub(crate) idx: NodeIdx,
    pub(crate) ports: Vec<AssignedPort>,
    /// Per task (by position in the group's asks), the devices assigned.
    pub(crate) devices: Vec<Vec<AllocatedDevice>>,
    /// Allocations to evict to make room (preemption).
    pub(crate) preempt: Vec<Arc<Allocation>>,
}

/// Why one placement went where it went, or nowhere.
#[derive(Default)]
struct SelectStats {
    evaluated: u32,
    filtered: u32,
    /// Per class: count and one node of the class (for naming it).
    class_filtered: FastMap<u32, (u32, NodeIdx)>,
    constraint_filtered: FastMap<usize, u32>,
    exhausted: u32,
    class_exhausted: FastMap<u32, (u32, NodeIdx)>,
    /// Exhausted dimensions and their counts (a handful at most).
    dims: Vec<(&'static str, u32)>,
    top: Vec<Ranked>,
}

impl SelectStats {
    /// Empties the figures, keeping the buffers (the engine reuses one value across
    /// placements so that most placements allocate nothing here).
    fn reset(&mut self) {
        self.evaluated = 0;
        self.filtered = 0;
        self.exhausted = 0;
        self.class_filtered.clear();
        self.constraint_filtered.clear();
        self.class_exhausted.clear();
        self.dims.clear();
        self.top.clear();
    }

    fn exhaust(&mut self, dim: &'static str) {
        self.exhausted += 1;
        match self.dims.iter_mut().find(|(d, _)| *d == dim) {
            Some((_, n)) => *n += 1,
            None => self.dims.push((dim, 1)),
        }
    }
}

/// The per-evaluation engine.
pub(crate) struct EvalCtx<'s, S: SchedState + ?Sized> {
    pub(crate) state: &'s S,
    pub(crate) job: Arc<Job>,
    pub(crate) groups: Vec<GroupSpec>,
    pub(crate) rng: SmallRng,
    opts: SelectOptions,
    spread_algorithm: bool,
    regexes: RegexCache,
    datacenters: Vec<String>,
    dc_class_ok: Vec<u8>,
    deltas: Deltas,
    port_overrides: FastMap<NodeIdx, PortIndex>,
    job_counts: FastMap<NodeIdx, u32>,
    group_counts: Vec<FastMap<NodeIdx, u32>>,
    /// The nodes with an entry in `job_counts` (and so perhaps in `group_counts`).
    counted: NodeBits,
    props: Vec<PropSet>,
    source: &'s [NodeIdx],
    /// `source[i] == i` for every position (every node of the snapshot is ready, in
    /// order): the walk then uses positions directly instead of reading the list, one
    /// memory access less per visited node on a large cluster.
    source_is_identity: bool,
    cursor: usize,
    stride: usize,
    pub(crate) limit: usize,
    pub(crate) penalty_nodes: Vec<NodeIdx>,
    class_names: FastMap<u32, String>,
    /// Per group, a bit per node found infeasible or full during this evaluation.
    known_bad: Vec<NodeBits>,
    /// The figures of the last placement, kept to reuse their buffers.
    stats_scratch: SelectStats,
    /// Buffers of the walk kept between placements: full nodes seen, low-scoring options
    /// set aside.
    exhausted_scratch: Vec<NodeIdx>,
    skipped_scratch: Vec<Offer>,
}

impl<'s, S: SchedState + ?Sized> EvalCtx<'s, S> {
    /// Prepares placement for `job` over the ready nodes of its pool. `batch` selects
    /// Nomad's limit of 2 instead of log2 of the node count.
    pub(crate) fn new(
        state: &'s S,
        job: Arc<Job>,
        seed: u64,
        batch: bool,
        opts: SelectOptions,
    ) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let pool = job
            .node_pool
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("default");
        let source: &'s [NodeIdx] = state.ready_nodes(pool);
        let n = source.len();
        let mut limit = 2usize;
        if !batch && n > 1 {
            let log = (n as f64).log2().ceil() as usize;
            limit = limit.max(log);
        }
        let (cursor, stride) = shuffle_params(&mut rng, n);
        let classes = state.class_count() as usize;
        let datacenters = if job.datacenters.is_empty() {
            vec!["*".to_string()]
        } else {
            job.datacenters.clone()
        };
        let mut ctx = EvalCtx {
            state,
            job: Arc::clone(&job),
            groups: Vec::new(),
            rng,
            opts,
            spread_algorithm: state.scheduler_config().spread_algorithm(),
            regexes: RegexCache::default(),
            datacenters,
            dc_class_ok: vec![0; classes],
            deltas: Deltas::default(),
            port_overrides: FastMap::default(),
            job_counts: FastMap::default(),
            group_counts: Vec::new(),
            counted: NodeBits::default(),
            props: Vec::new(),
            source,
            source_is_identity: state.ready_nodes_in_place(pool),
            cursor,
            stride,
            limit,
            penalty_nodes: Vec::new(),
            class_names: FastMap::default(),
            known_bad: Vec::new(),
            stats_scratch: SelectStats::default(),
            exhausted_scratch: Vec::new(),
            skipped_scratch: Vec::new(),
        };
        for tg in &job.task_groups {
            let mut spec = ctx.compile_group(&job, tg, classes);
            spec.dynamic_only = spec.network.as_ref().and_then(|n| {
                let default_net = |p: &nomad_core::job::Port| {
                    p.host_network.is_empty() || p.host_network == nomad_net::DEFAULT_HOST_NETWORK
                };
                (n.reserved_ports.is_empty() && n.dynamic_ports.iter().all(default_net))
                    .then_some(n.dynamic_ports.len() as u32)
            });
            spec.needs_node = !spec.escaped.is_empty()
                || !spec.distinct_props.is_empty()
                || !spec.host_volumes.is_empty()
                || spec.has_devices
                || spec.distinct_hosts.is_some();
            ctx.groups.push(spec);
            ctx.group_counts.push(FastMap::default());
            ctx.known_bad.push(NodeBits::default());
        }
        ctx.count_existing();
        ctx
    }

    /// The position of group `name`.
    pub(crate) fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }

    fn compile_group(&mut self, job: &Job, tg: &TaskGroup, classes: usize) -> GroupSpec {
        let mut ask = NodeUsage::default();
        let mut tasks = Vec::new();
        let mut class_checks = Vec::new();
        let mut escaped = Vec::new();
        let mut distinct_hosts = None;
        let mut distinct_props = Vec::new();
        let mut drivers: Vec<&str> = Vec::new();
        let mut network = tg.networks.first().cloned();
        for t in &tg.tasks {
            let r = t.resources.clone().unwrap_or_default();
            let cpu = u64::from(r.cpu.unwrap_or(100));
            let mem = u64::from(r.memory_mb.unwrap_or(300));
            let max = u64::from(r.memory_max_mb.unwrap_or(0)).max(mem);
            ask.cpu += cpu;
            ask.memory_mb += mem;
            ask.memory_max_mb += max;
            if network.is_none() {
                network = r.networks.first().cloned();
            }
            tasks.push(TaskAsk {
                name: t.name.clone(),
                cpu,
                memory_mb: mem,
                memory_max_mb: max,
                devices: r.devices.clone(),
            });
            if !t.driver.is_empty() && !drivers.contains(&t.driver.as_str()) {
                drivers.push(&t.driver);
            }
        }
        ask.disk_mb = tg
            .ephemeral_disk
            .as_ref()
            .and_then(|d| d.size_mb)
            .map_or(300, u64::from);
        for d in drivers {
            class_checks.push(ClassCheck::Driver(d.to_string()));
        }
        if let Some(n) = &network {
            let mode = n.mode_or_default();
            if mode != "host" {
                class_checks.push(ClassCheck::Network(mode.to_string()));
            }
        }
        let job_level = job.constraints.iter().map(|c| (c, true));
        let group_level = tg
            .constraints
            .iter()
            .chain(tg.tasks.iter().flat_map(|t| t.constraints.iter()))
            .map(|c| (c, false));
        for (c, at_job) in job_level.chain(group_level) {
            match c.operand.as_str() {
                "distinct_hosts" => {
                    let v = c.r_target.trim();
                    if v.is_empty() || v == "true" {
                        distinct_hosts = Some(distinct_hosts.unwrap_or(false) || at_job);
                    }
                }
                "distinct_property" => {
                    let allowed = c.r_target.trim().parse::<u32>().unwrap_or(1).max(1);
                    let prop = self.props.len();
                    self.props.push(PropSet::new(
                        TargetRef::parse(&c.l_target),
                        if at_job { None } else { Some(tg.name.clone()) },
                        classes,
                    ));
                    distinct_props.push((prop, allowed));
                }
                _ if escapes_class(c) => escaped.push(CompiledConstraint::new(c)),
                _ => class_checks.push(ClassCheck::Constraint(CompiledConstraint::new(c))),
            }
        }
        let mut spreads = Vec::new();
        let mut sum_spread_weight = 0.0;
        for s in tg.spreads.iter().chain(job.spreads.iter()) {
            let prop = self.props.len();
            let mut set = PropSet::new(
                TargetRef::parse(&s.attribute),
                Some(tg.name.clone()),
                classes,
            );
            let weight = f64::from(s.weight.unwrap_or(50));
            let total = f64::from(tg.count_or_default());
            let mut desired = Vec::new();
            let mut sum = 0.0;
            for t in &s.spread_target {
                let d = f64::from(t.percent) / 100.0 * total;
                let id = set.intern(&t.value) as usize;
                if desired.len() <= id {
                    desired.resize(id + 1, 0.0);
                }
                desired[id] = d;
                sum += d;
            }
            let remainder = (sum > 0.0 && sum < total).then_some(total - sum);
            self.props.push(set);
            sum_spread_weight += weight;
            spreads.push(SpreadSpec {
                prop,
                weight,
                even: s.spread_target.is_empty(),
                desired,
                remainder,
            });
        }
        let mut affinities = Vec::new();
        let mut sum_affinity_weight = 0.0;
        let task_affs = tg.tasks.iter().flat_map(|t| t.affinities.iter());
        for a in job.affinities.iter().chain(&tg.affinities).chain(task_affs) {
            let w = f64::from(a.weight.unwrap_or(50));
            sum_affinity_weight += w.abs();
            let c = nomad_core::job::Constraint::new(&a.l_target, &a.operand, &a.r_target);
            affinities.push((CompiledConstraint::new(&c), w));
        }
        let host_volumes = tg
            .volumes
            .values()
            .filter(|v| v.volume_type.is_empty() || v.volume_type == "host")
            .map(|v| (v.source.clone(), v.read_only))
            .collect();
        let has_devices = tasks.iter().any(|t| !t.devices.is_empty());
        let mut reasons: Vec<String> = class_checks.iter().map(ClassCheck::label).collect();
        reasons.extend(escaped.iter().map(|c| c.label.clone()));
        reasons.push("distinct_hosts".to_string());
        reasons.push("distinct_property".to_string());
        reasons.push("missing compatible host volumes".to_string());
        reasons.push("missing devices".to_string());
        GroupSpec {
            name: tg.name.clone(),
            count: tg.count_or_default(),
            ask,
            tasks,
            network,
            host_volumes,
            class_checks,
            escaped,
            distinct_hosts,
            distinct_props,
            spreads,
            sum_spread_weight,
            affinities,
            sum_affinity_weight,
            class_cache: vec![0; classes],
            reasons,
            has_devices,
            needs_node: false,
            dynamic_only: None,
        }
    }

    /// Counts the job's running allocations per node and per property value.
    fn count_existing(&mut self) {
        let ns = self.job.namespace_or_default().to_string();
        let allocs = self.state.allocs_by_job(&ns, &self.job.id);
        for a in allocs.iter().filter(|a| !a.terminal()) {
            if let Some(idx) = self.state.node_idx(&a.node_id) {
                self.count_alloc(idx, &a.task_group, 1);
            }
        }
    }

    fn count_alloc(&mut self, idx: NodeIdx, group: &str, delta: i32) {
        let bump = |v: &mut u32| {
            *v = if delta > 0 {
                v.saturating_add(delta as u32)
            } else {
                v.saturating_sub(delta.unsigned_abs())
            }
        };
        self.counted.insert(idx);
        bump(self.job_counts.entry(idx).or_insert(0));
        if let Some(g) = self.groups.iter().position(|g| g.name == group) {
            bump(self.group_counts[g].entry(idx).or_insert(0));
        }
        if self.props.is_empty() {
            return;
        }
        let state = self.state;
        let class = state.node_class_id(idx);
        for p in &mut self.props {
            if p.group.as_deref().is_some_and(|g| g != group) {
                continue;
            }
            let node = || state.nodes().get(idx as usize).map(|n| n.as_ref());
            if let Some(v) = p.value(class, node) {
                p.bump(v, delta);
            }
        }
    }

    /// [`EvalCtx::count_alloc`] for a placement of group `g`, without looking the group up
    /// by name.
    fn count_placed(&mut self, idx: NodeIdx, g: usize) {
        self.counted.insert(idx);
        *self.job_counts.entry(idx).or_insert(0) += 1;
        if let Some(counts) = self.group_counts.get_mut(g) {
            *counts.entry(idx).or_insert(0) += 1;
        }
        if self.props.is_empty() {
            return;
        }
        let state = self.state;
        let class = state.node_class_id(idx);
        let group = self.groups.get(g).map_or("", |s| s.name.as_str());
        for p in &mut self.props {
            if p.group.as_deref().is_some_and(|pg| pg != group) {
                continue;
            }
            let node = || state.nodes().get(idx as usize).map(|n| n.as_ref());
            if let Some(v) = p.value(class, node) {
                p.bump(v, 1);
            }
        }
    }

    /// Records that the plan stops `alloc`: its resources, ports and devices are free again.
    pub(crate) fn stop(&mut self, alloc: &Allocation) {
        if alloc.terminal() {
            return;
        }
        // Room was made: what was full may fit again.
        for bits in &mut self.known_bad {
            bits.clear();
        }
        let Some(idx) = self.state.node_idx(&alloc.node_id) else {
            return;
        };
        self.count_alloc(idx, &alloc.task_group, -1);
        let d = self.deltas.entry(idx);
        d.freed.add(&NodeUsage::of_alloc(alloc));
        d.freed_devices.extend(alloc_devices(alloc));
        let mut index = self.port_index_owned(idx);
        index.remove_alloc(alloc);
        self.port_overrides.insert(idx, index);
    }

    /// Records a placement on `idx` (made by [`EvalCtx::select`] or an in-place update).
    pub(crate) fn place(&mut self, group: usize, chosen: &Chosen) {
        let idx = chosen.idx;
        for p in &chosen.preempt {
            self.stop(p);
        }
        self.count_placed(idx, group);
        let ask = self.groups[group].ask;
        for p in &chosen.ports {
            self.deltas
                .ports
                .insert(planned_port_key(idx, p.network, p.value));
        }
        let d = self.deltas.entry(idx);
        d.add.add(&ask);
        for p in &chosen.ports {
            d.ports.push((p.network, p.value));
            if p.network == 0 {
                d.default_net_ports += 1;
            }
        }
        for t in &chosen.devices {
            for dev in t {
                d.devices.extend(dev.device_ids.iter().cloned());
            }
        }
    }

    fn port_index_owned(&self, idx: NodeIdx) -> PortIndex {
        if let Some(p) = self.port_overrides.get(&idx) {
            return p.clone();
        }
        if let Some(p) = self.state.port_index(idx) {
            return p.clone();
        }
        let Some(node) = self.state.nodes().get(idx as usize) else {
            return PortIndex::new(20000, 32000);
        };
        let allocs = self.state.allocs_by_node(idx);
        PortIndex::for_node_with_allocs(node, allocs.iter().map(|a| a.as_ref()))
            .or_else(|_| PortIndex::for_node(node))
            .unwrap_or_else(|_| PortIndex::new(20000, 32000))
    }

    /// The proposed usage of a node: what runs there plus what the plan adds, less what it
    /// stops.
    fn proposed(&self, idx: NodeIdx) -> NodeUsage {
        let mut u = self.state.node_usage(idx);
        if let Some(d) = self.deltas.get(idx) {
            u.add(&d.add);
            u.sub(&d.freed);
        }
        u
    }

    fn dc_ok(&mut self, idx: NodeIdx) -> bool {
        let class = self.state.node_class_id(idx) as usize;
        match self.dc_class_ok.get(class).copied() {
            Some(1) => true,
            Some(2) => false,
            _ => {
                let state = self.state;
                let Some(node) = state.nodes().get(idx as usize) else {
                    return false;
                };
                let ok = self
                    .datacenters
                    .iter()
                    .any(|p| glob_match(p, &node.datacenter));
                if let Some(slot) = self.dc_class_ok.get_mut(class) {
                    *slot = if ok { 1 } else { 2 };
                }
                ok
            }
        }
    }

    /// Class-level and node-level feasibility of group `g` on node `idx`. `Err` carries the
    /// reason index and whether the result came from the class.
    fn feasible(&mut self, g: usize, idx: NodeIdx) -> Result<(), (usize, bool)> {
        let class = self.state.node_class_id(idx) as usize;
        let cached = self.groups[g].class_cache.get(class).copied().unwrap_or(0);
        let state = self.state;
        // The node itself is only read when the class result is unknown or a check needs
        // more than the class: on the hot path it stays out of the cache.
        let node = || state.nodes().get(idx as usize).map(|n| n.as_ref());
        match cached {
            1 => {}
            0 => {
                let Some(node) = node() else {
                    return Err((0, false));
                };
                let spec = &self.groups[g];
                let mut verdict = 1u16;
                for (i, c) in spec.class_checks.iter().enumerate() {
                    let ok = match c {
                        ClassCheck::Driver(d) => node.driver_healthy(d),
                        ClassCheck::Network(m) => network_mode_supported(node, m),
                        ClassCheck::Constraint(c) => c.check(node, &mut self.regexes),
                    };
                    if !ok {
                        verdict = i as u16 + 2;
                        break;
                    }
                }
                if let Some(slot) = self.groups[g].class_cache.get_mut(class) {
                    *slot = verdict;
                }
                if verdict != 1 {
                    return Err((usize::from(verdict - 2), true));
                }
            }
            n => return Err((usize::from(n - 2), true)),
        }
        let spec = &self.groups[g];
        let base = spec.class_checks.len();
        if !spec.needs_node {
            return Ok(());
        }
        let Some(node) = node() else {
            return Err((0, false));
        };
        for (i, c) in spec.escaped.iter().enumerate() {
            if !c.check(node, &mut self.regexes) {
                return Err((base + i, false));
            }
        }
        let base = base + spec.escaped.len();
        if let Some(job_wide) = spec.distinct_hosts {
            let n = if job_wide {
                self.job_counts.get(&idx).copied().unwrap_or(0)
            } else {
                self.group_counts[g].get(&idx).copied().unwrap_or(0)
            };
            if n > 0 {
                return Err((base, false));
            }
        }
        let class = class as u32;
        for i in 0..self.groups[g].distinct_props.len() {
            let (p, allowed) = self.groups[g].distinct_props[i];
            let prop = &mut self.props[p];
            let used = match prop.value(class, || Some(node)) {
                Some(v) => prop.count(v),
                None => return Err((base + 1, false)),
            };
            if used >= allowed {
                return Err((base + 1, false));
            }
        }
        let spec = &self.groups[g];
        for (source, read_only) in &spec.host_volumes {
            match node.host_volumes.get(source) {
                Some(v) if !v.read_only || *read_only => {}
                _ => return Err((base + 2, false)),
            }
        }
        if spec.has_devices {
            let free = self.free_devices(idx, node, g);
            if free.is_none() {
                return Err((base + 3, false));
            }
        }
        Ok(())
    }

    /// Assigns device instances for every task of group `g`, or `None` when the node lacks
    /// enough free healthy instances.
    fn free_devices(
        &mut self,
        idx: NodeIdx,
        node: &Node,
        g: usize,
    ) -> Option<Vec<Vec<AllocatedDevice>>> {
        let groups = node
            .node_resources
            .as_ref()
            .map(|r| r.devices.as_slice())
            .unwrap_or(&[]);
        let mut used: Vec<String> = self
            .state
            .allocs_by_node(idx)
            .iter()
            .filter(|a| !a.terminal())
            .flat_map(|a| alloc_devices(a))
            .collect();
        if let Some(d) = self.deltas.get(idx) {
            used.retain(|u| !d.freed_devices.contains(u));
            used.extend(d.devices.iter().cloned());
        }
        let mut out = Vec::new();
        for t in &self.groups[g].tasks {
            let mut assigned = Vec::new();
            for ask in &t.devices {
                let want = ask.count.unwrap_or(1) as usize;
                let mut done = false;
                for group in groups {
                    if !device_group_matches(group, ask, &mut self.regexes) {
                        continue;
                    }
                    let ids: Vec<String> = group
                        .instances
                        .iter()
                        .filter(|i| i.healthy && !used.contains(&i.id))
                        .take(want)
                        .map(|i| i.id.clone())
                        .collect();
                    if ids.len() == want {
                        used.extend(ids.iter().cloned());
                        assigned.push(AllocatedDevice {
                            vendor: group.vendor.clone(),
                            device_type: group.device_type.clone(),
                            name: group.name.clone(),
                            device_ids: ids,
                        });
                        done = true;
                        break;
                    }
                }
                if !done {
                    return None;
                }
            }
            out.push(assigned);
        }
        Some(out)
    }

    fn reason_label(&self, g: usize, r: usize) -> String {
        self.groups[g].reasons.get(r).cloned().unwrap_or_default()
    }

    fn class_name(&mut self, class: u32, node: &Node) -> String {
        self.class_names
            .entry(class)
            .or_insert_with(|| {
                if node.node_class.is_empty() {
                    node.computed_class.clone()
                } else {
                    node.node_class.clone()
                }
            })
            .clone()
    }

    /// Ports for group `g` on node `idx`, given what the plan already took there.
    fn assign_ports(&mut self, g: usize, idx: NodeIdx) -> Result<Vec<AssignedPort>, &'static str> {
        let Some(ask) = &self.groups[g].network else {
            return Ok(Vec::new());
        };
        if ask.reserved_ports.is_empty() && ask.dynamic_ports.is_empty() {
            return Ok(Vec::new());
        }
        let deltas = &self.deltas;
        let in_plan = |net: usize, port: u16| deltas.port_planned(idx, net, port);
        let rng = &mut self.rng;
        let mut next = || rng.gen::<u32>();
        let result = match self.port_overrides.get(&idx) {
            Some(p) => p.assign_avoiding(ask, &in_plan, &mut next),
            None => match self.state.port_index(idx) {
                Some(p) => p.assign_avoiding(ask, &in_plan, &mut next),
                None => {
                    let node = self
                        .state
                        .nodes()
                        .get(idx as usize)
                        .ok_or("node missing from the snapshot")?;
                    let allocs = self.state.allocs_by_node(idx);
                    let built =
                        PortIndex::for_node_with_allocs(node, allocs.iter().map(|a| a.as_ref()))
                            .map_err(|e| e.dimension())?;
                    let r = built.assign_avoiding(ask, &in_plan, &mut next);
                    self.port_overrides.insert(idx, built);
                    r
                }
            },
        };
        result.map_err(|e| e.dimension())
    }

    /// Whether group `g`'s ports can be assigned on node `idx` (no allocation).
    fn check_ports(
        &mut self,
        g: usize,
        idx: NodeIdx,
        cap: &NodeUsage,
        used: &NodeUsage,
    ) -> Result<(), &'static str> {
        let Some(ask) = &self.groups[g].network else {
            return Ok(());
        };
        if ask.reserved_ports.is_empty() && ask.dynamic_ports.is_empty() {
            return Ok(());
        }
        let delta = self.deltas.get(idx);
        let planned: &[PlannedPort] = delta.map_or(&[], |d| d.ports.as_slice());
        // Only dynamic ports on the default network and a store that counts them: the
        // node's record answers without touching its port index.
        if let Some(wanted) = self.groups[g].dynamic_only {
            let overridden =
                !self.port_overrides.is_empty() && self.port_overrides.contains_key(&idx);
            if cap.dynamic_ports > 0 && !overridden {
                let in_plan = delta.map_or(0, |d| d.default_net_ports);
                let free = cap
                    .dynamic_ports
                    .saturating_sub(used.dynamic_ports + in_plan);
                if free >= wanted {
                    return Ok(());
                }
            }
        }
        let r = match self.port_overrides.get(&idx) {
            Some(p) => p.check(ask, planned),
            None => match self.state.port_index(idx) {
                Some(p) => p.check(ask, planned),
                None => {
                    let node = self
                        .state
                        .nodes()
                        .get(idx as usize)
                        .ok_or("node missing from the snapshot")?;
                    let allocs = self.state.allocs_by_node(idx);
                    let built =
                        PortIndex::for_node_with_allocs(node, allocs.iter().map(|a| a.as_ref()))
                            .map_err(|e| e.dimension())?;
                    let r = built.check(ask, planned);
                    self.port_overrides.insert(idx, built);
                    r
                }
            },
        };
        r.map_err(|e| e.dimension())
    }

    /// Scores node `idx` for group `g`, whose ask fits there.
    fn score(&self, g: usize, idx: NodeIdx, used_after: &NodeUsage, spread: f64) -> Ranked {
        let spec = &self.groups[g];
        let cap = self.state.node_capacity(idx);
        let free = |u: u64, c: u64| {
            if c == 0 {
                0.0
            } else {
                1.0 - u as f64 / c as f64
            }
        };
        // 10^x as e^(x ln 10): the same value, one exponential instead of a general power.
        let pow10 = |x: f64| (x * std::f64::consts::LN_10).exp();
        let total =
            pow10(free(used_after.cpu, cap.cpu)) + pow10(free(used_after.memory_mb, cap.memory_mb));
        let fit = if self.spread_algorithm {
            total - 2.0
        } else {
            20.0 - total
        };
        let binpack = fit.clamp(0.0, BINPACK_MAX_FIT) / BINPACK_MAX_FIT;
        let mut sum = binpack;
        let mut n = 1.0;

        let collisions = if self.counted.contains(idx) {
            self.group_counts[g].get(&idx).copied().unwrap_or(0)
        } else {
            0
        };
        let mut anti_affinity = 0.0;
        if collisions > 0 && spec.count > 0 {
            anti_affinity = -f64::from(collisions + 1) / f64::from(spec.count);
            sum += anti_affinity;
            n += 1.0;
        }
        let mut penalty = 0.0;
        if self.penalty_nodes.contains(&idx) {
            penalty = -1.0;
            sum += penalty;
            n += 1.0;
        }
        let state = self.state;
        let node = || state.nodes().get(idx as usize).map(|n| n.as_ref());
        let mut affinity = 0.0;
        let wants_affinity = !spec.affinities.is_empty() && spec.sum_affinity_weight > 0.0;
        if let Some(node) = if wants_affinity { node() } else { None } {
            let mut matched = 0.0;
            let mut regexes = RegexCache::default();
            for (c, w) in &spec.affinities {
                if c.check(node, &mut regexes) {
                    matched += w;
                }
            }
            affinity = matched / spec.sum_affinity_weight;
            if affinity != 0.0 {
                sum += affinity;
                n += 1.0;
            }
        }
        if spread != 0.0 {
            sum += spread;
            n += 1.0;
        }
        Ranked {
            idx,
            score: sum / n,
            binpack,
            anti_affinity,
            penalty,
            affinity,
            spread,
        }
    }

    /// The summed spread boost of group `g` on node `idx` (Nomad's spread iterator).
    fn spread_score(&mut self, g: usize, idx: NodeIdx) -> f64 {
        if self.groups[g].spreads.is_empty() {
            return 0.0;
        }
        let state = self.state;
        let class = state.node_class_id(idx);
        let sum_weight = self.groups[g].sum_spread_weight;
        let mut total = 0.0;
        for i in 0..self.groups[g].spreads.len() {
            let s = &self.groups[g].spreads[i];
            let prop = &mut self.props[s.prop];
            let node = || state.nodes().get(idx as usize).map(|n| n.as_ref());
            let Some(v) = prop.value(class, node) else {
                total -= 1.0;
                continue;
            };
            if s.even {
                total += prop.even_boost(v);
                continue;
            }
            let used = f64::from(prop.count(v)) + 1.0;
            let desired = match s.desired.get(v as usize).copied().or(s.remainder) {
                Some(d) => d,
                None => {
                    total -= 1.0;
                    continue;
                }
            };
            if desired == 0.0 {
                total -= 1.0;
                continue;
            }
            let weight = if sum_weight > 0.0 {
                s.weight / sum_weight
            } else {
                0.0
            };
            total += (desired - used) / desired * weight;
        }
        total
    }

    /// Checks group `g` against one node and, when it is feasible and fits, ranks it.
    /// Updates `stats`; `exhausted` collects feasible nodes without room.
    fn consider(
        &mut self,
        g: usize,
        idx: NodeIdx,
        stats: &mut SelectStats,
        exhausted: &mut Vec<NodeIdx>,
    ) -> Option<(Ranked, Vec<Vec<AllocatedDevice>>)> {
        let state = self.state;
        if !self.dc_ok(idx) {
            return None;
        }
        stats.evaluated += 1;
        if let Err((reason, by_class)) = self.feasible(g, idx) {
            stats.filtered += 1;
            *stats.constraint_filtered.entry(reason).or_insert(0) += 1;
            if by_class {
                stats
                    .class_filtered
                    .entry(state.node_class_id(idx))
                    .or_insert((0, idx))
                    .0 += 1;
            }
            return None;
        }
        let mut used = self.proposed(idx);
        used.add(&self.groups[g].ask);
        let cap = state.node_capacity(idx);
        let verdict = cap
            .covers(&used)
            .and_then(|()| self.check_ports(g, idx, &cap, &used));
        match verdict {
            Ok(()) => {}
            Err(dim) => {
                stats.exhaust(dim);
                stats
                    .class_exhausted
                    .entry(state.node_class_id(idx))
                    .or_insert((0, idx))
                    .0 += 1;
                if exhausted.len() < 64 {
                    exhausted.push(idx);
                }
                return None;
            }
        };
        let devices = if self.groups[g].has_devices {
            let node = state.nodes().get(idx as usize)?;
            match self.free_devices(idx, node, g) {
                Some(d) => d,
                None => {
                    stats.exhaust("devices");
                    return None;
                }
            }
        } else {
            Vec::new()
        };
        let spread = self.spread_score(g, idx);
        let ranked = self.score(g, idx, &used, spread);
        Some((ranked, devices))
    }

    /// Picks a node for one allocation of group `g`: walks the shuffled node order from
    /// where the previous placement stopped, keeps the first `limit` options that are
    /// feasible and fit (skipping up to three that score at or below zero while more
    /// remain), and returns the best. The metrics say what was looked at and why nodes were
    /// left out.
    ///
    /// Within an evaluation a node that was infeasible or full for a group stays so (the
    /// plan only adds to nodes once its stops are recorded), so later placements of the
    /// group step over it with a bit test. When that leaves nothing, the walk is repeated
    /// over every node so that the failure's metrics are complete.
    pub(crate) fn select(&mut self, g: usize, preemption: bool) -> (Option<Chosen>, AllocMetric) {
        let (mut best, mut stats, mut exhausted, stepped_over) = self.walk(g, true);
        if best.is_none() && stepped_over {
            (best, stats, exhausted, _) = self.walk(g, false);
        }
        let mut chosen = None;
        if let Some((r, devices)) = best {
            // The allocation and its metrics copy the node's ID and name next. Reading them
            // now starts those cache misses while port assignment waits for its own.
            if let Some((id, name)) = self.state.node_id_name(r.idx) {
                std::hint::black_box((id.as_bytes().first(), name.as_bytes().first()));
            }
            // The check during ranking guarantees the assignment succeeds.
            if let Ok(ports) = self.assign_ports(g, r.idx) {
                chosen = Some(Chosen {
                    idx: r.idx,
                    ports,
                    devices,
                    preempt: Vec::new(),
                });
            }
        }
        if chosen.is_none() && preemption {
            chosen = self.preempt(g, &exhausted);
        }
        self.exhausted_scratch = exhausted;
        let detailed = chosen.is_none() || self.opts.detailed_metrics;
        let metric = self.metric(g, stats, detailed);
        (chosen, metric)
    }

    fn is_known_bad(&self, g: usize, idx: NodeIdx) -> bool {
        self.known_bad[g].contains(idx)
    }

    fn mark_bad(&mut self, g: usize, idx: NodeIdx) {
        self.known_bad[g].insert(idx);
    }

    /// Reads the records of the next [`READ_AHEAD`] nodes of the walk, one right after the
    /// other: on a cluster whose records do not fit in the cache their misses then overlap,
    /// where the walk would otherwise wait for them one at a time. The walk itself does not
    /// move.
    fn read_ahead(&self, n: usize) {
        let mut pos = self.cursor;
        for _ in 0..READ_AHEAD.min(n) {
            let idx = if self.source_is_identity {
                pos as NodeIdx
            } else {
                self.source.get(pos).copied().unwrap_or(0)
            };
            std::hint::black_box(self.state.node_class_id(idx));
            pos += self.stride;
            if pos >= n {
                pos -= n;
            }
        }
    }

    /// One walk of the node order for group `g` (see [`EvalCtx::select`]).
    fn walk(
        &mut self,
        g: usize,
        use_known_bad: bool,
    ) -> (Option<Offer>, SelectStats, Vec<NodeIdx>, bool) {
        let n = self.source.len();
        let spec = &self.groups[g];
        let mut limit = self.limit;
        if !spec.affinities.is_empty() || !spec.spreads.is_empty() {
            limit = limit.max(self.opts.affinity_spread_limit);
        }
        let top_k = self.opts.score_meta_top_k;
        let mut stats = std::mem::take(&mut self.stats_scratch);
        stats.reset();
        let mut exhausted = std::mem::take(&mut self.exhausted_scratch);
        exhausted.clear();
        let mut best: Option<Offer> = None;
        let mut skipped = std::mem::take(&mut self.skipped_scratch);
        skipped.clear();
        let mut taken = 0usize;
        let mut stepped_over = false;
        let offer = |opt: Offer, stats: &mut SelectStats, best: &mut Option<Offer>| {
            if top_k > 0 {
                let pos = stats
                    .top
                    .iter()
                    .position(|r| r.score < opt.0.score)
                    .unwrap_or(stats.top.len());
                if pos < top_k {
                    stats.top.insert(pos, opt.0.clone());
                    stats.top.truncate(top_k);
                }
            }
            if best.as_ref().is_none_or(|b| opt.0.score > b.0.score) {
                *best = Some(opt);
            }
        };
        let read_ahead = n >= READ_AHEAD_MIN_NODES;
        for i in 0..n {
            if read_ahead && i % READ_AHEAD == 0 {
                self.read_ahead(n);
            }
            let idx = if self.source_is_identity {
                self.cursor as NodeIdx
            } else {
                self.source[self.cursor]
            };
            // `stride < n`: one subtraction instead of a division per visited node.
            self.cursor += self.stride;
            if self.cursor >= n {
                self.cursor -= n;
            }
            if use_known_bad && self.is_known_bad(g, idx) {
                stepped_over = true;
                continue;
            }
            let Some(opt) = self.consider(g, idx, &mut stats, &mut exhausted) else {
                self.mark_bad(g, idx);
                continue;
            };
            if opt.0.score <= SKIP_SCORE_THRESHOLD && skipped.len() < MAX_SKIP {
                skipped.push(opt);
                continue;
            }
            offer(opt, &mut stats, &mut best);
            taken += 1;
            if taken >= limit {
                break;
            }
        }
        for opt in skipped.drain(..) {
            if taken >= limit {
                break;
            }
            offer(opt, &mut stats, &mut best);
            taken += 1;
        }
        self.skipped_scratch = skipped;
        (best, stats, exhausted, stepped_over)
    }

    /// Checks group `g` on one given node (system jobs): feasible, fits, ports and devices.
    pub(crate) fn select_on(
        &mut self,
        g: usize,
        idx: NodeIdx,
        preemption: bool,
    ) -> (Option<Chosen>, AllocMetric) {
        let mut stats = SelectStats::default();
        let mut exhausted = Vec::new();
        let opt = self.consider(g, idx, &mut stats, &mut exhausted);
        let mut chosen = None;
        if let Some((r, devices)) = opt {
            stats.top.push(r.clone());
            if let Ok(ports) = self.assign_ports(g, r.idx) {
                chosen = Some(Chosen {
                    idx: r.idx,
                    ports,
                    devices,
                    preempt: Vec::new(),
                });
            }
        }
        if chosen.is_none() && preemption && !exhausted.is_empty() {
            chosen = self.preempt(g, &exhausted);
        }
        let detailed = chosen.is_none() || self.opts.detailed_metrics;
        (chosen, self.metric(g, stats, detailed))
    }

    /// True when group `g` passes every feasibility check on node `idx` (resources aside).
    pub(crate) fn feasible_on(&mut self, g: usize, idx: NodeIdx) -> bool {
        if self.state.nodes().get(idx as usize).is_none() {
            return false;
        }
        self.dc_ok(idx) && self.feasible(g, idx).is_ok()
    }

    /// Finds, among feasible nodes without room, the one where evicting the fewest
    /// allocations of jobs at least 10 priority levels lower makes room.
    fn preempt(&mut self, g: usize, candidates: &[NodeIdx]) -> Option<Chosen> {
        let priority = self.job.priority_or_default();
        let ask = self.groups[g].ask;
        let mut best: Option<(usize, NodeIdx, Vec<Arc<Allocation>>)> = None;
        for &idx in candidates {
            let cap = self.state.node_capacity(idx);
            let mut used = self.proposed(idx);
            used.add(&ask);
            let mut victims: Vec<(i32, Arc<Allocation>)> = self
                .state
                .allocs_by_node(idx)
                .iter()
                .filter(|a| !a.terminal() && a.job_id != self.job.id)
                .filter_map(|a| {
                    let p = self
                        .state
                        .alloc_job(a)
                        .map_or(50, |j| j.priority_or_default());
                    (p + 10 <= priority).then(|| (p, Arc::clone(a)))
                })
                .collect();
            victims.sort_by(|a, b| {
                a.0.cmp(&b.0).then_with(|| {
                    let ua = NodeUsage::of_alloc(&a.1);
                    let ub = NodeUsage::of_alloc(&b.1);
                    (ub.cpu + ub.memory_mb).cmp(&(ua.cpu + ua.memory_mb))
                })
            });
            let mut chosen = Vec::new();
            for (_, v) in victims {
                if cap.covers(&used).is_ok() {
                    break;
                }
                used.sub(&NodeUsage::of_alloc(&v));
                chosen.push(v);
            }
            if cap.covers(&used).is_ok()
                && !chosen.is_empty()
                && best.as_ref().is_none_or(|b| chosen.len() < b.0)
            {
                best = Some((chosen.len(), idx, chosen));
            }
        }
        let (_, idx, victims) = best?;
        // The victims' ports still count as taken here: conservative, never a collision.
        let ports = self.assign_ports(g, idx).ok()?;
        let state = self.state;
        let node = state.nodes().get(idx as usize)?;
        let devices = if self.groups[g].has_devices {
            self.free_devices(idx, node, g)?
        } else {
            Vec::new()
        };
        Some(Chosen {
            idx,
            ports,
            devices,
            preempt: victims,
        })
    }

    /// The placement metric; `detailed` adds the breakdown by constraint, class and
    /// dimension.
    fn metric(&mut self, g: usize, mut stats: SelectStats, detailed: bool) -> AllocMetric {
        let mut m = AllocMetric {
            nodes_evaluated: stats.evaluated,
            nodes_filtered: stats.filtered,
            nodes_exhausted: stats.exhausted,
            ..AllocMetric::default()
        };
        let state = self.state;
        let nodes = state.nodes();
        if !detailed {
            self.push_scores(&mut m, &stats.top);
            self.stats_scratch = stats;
            return m;
        }
        for (reason, count) in stats.constraint_filtered.drain() {
            let label = self.reason_label(g, reason);
            *m.constraint_filtered.entry(label).or_insert(0) += count;
        }
        for (class, (count, example)) in stats.class_filtered.drain() {
            if let Some(node) = nodes.get(example as usize) {
                let name = self.class_name(class, node);
                *m.class_filtered.entry(name).or_insert(0) += count;
            }
        }
        for (class, (count, example)) in stats.class_exhausted.drain() {
            if let Some(node) = nodes.get(example as usize) {
                let name = self.class_name(class, node);
                *m.class_exhausted.entry(name).or_insert(0) += count;
            }
        }
        for (dim, count) in stats.dims.drain(..) {
            m.dimension_exhausted.insert(dim.to_string(), count);
        }
        self.push_scores(&mut m, &stats.top);
        self.stats_scratch = stats;
        m
    }

    fn push_scores(&self, m: &mut AllocMetric, top: &[Ranked]) {
        m.score_meta_data.reserve_exact(top.len());
        for r in top {
            let Some((node_id, _)) = self.state.node_id_name(r.idx) else {
                continue;
            };
            let extra = [r.anti_affinity, r.penalty, r.affinity, r.spread]
                .iter()
                .filter(|v| **v != 0.0)
                .count();
            let mut scores = LiteMap::with_capacity(1 + extra);
            scores.insert(arcstr::literal!("binpack"), r.binpack);
            if r.anti_affinity != 0.0 {
                scores.insert(arcstr::literal!("job-anti-affinity"), r.anti_affinity);
            }
            if r.penalty != 0.0 {
                scores.insert(arcstr::literal!("node-reschedule-penalty"), r.penalty);
            }
            if r.affinity != 0.0 {
                scores.insert(arcstr::literal!("node-affinity"), r.affinity);
            }
            if r.spread != 0.0 {
                scores.insert(arcstr::literal!("allocation-spread"), r.spread);
            }
            m.score_meta_data.push(NodeScoreMeta {
                node_id: node_id.clone(),
                scores,
                norm_score: r.score,
            });
        }
    }

    fn class_example<'n>(&self, class: u32, nodes: &'n [Arc<Node>]) -> Option<&'n Node> {
        self.source
            .iter()
            .find(|&&i| self.state.node_class_id(i) == class)
            .and_then(|&i| nodes.get(i as usize))
            .map(|n| n.as_ref())
    }

    /// Ready nodes per datacenter of the job's pool, for metrics of failed placements.
    pub(crate) fn nodes_available(&self) -> LiteMap<String, u32> {
        let mut out = LiteMap::new();
        let nodes = self.state.nodes();
        for &i in self.source {
            if let Some(n) = nodes.get(i as usize) {
                if self
                    .datacenters
                    .iter()
                    .any(|p| glob_match(p, &n.datacenter))
                {
                    *out.entry(n.datacenter.clone()).or_insert(0) += 1;
                }
            }
        }
        out
    }

    /// Number of ready nodes considered.
    pub(crate) fn source_len(&self) -> usize {
        self.source.len()
    }

    /// The ready nodes considered, in stable order.
    pub(crate) fn source(&self) -> &[NodeIdx] {
        self.source
    }

    /// Per computed class, whether the group was found eligible (for blocked evaluations).
    pub(crate) fn class_eligibility(&mut self) -> BTreeMap<String, bool> {
        let mut out = BTreeMap::new();
        let state = self.state;
        let nodes = state.nodes();
        for g in 0..self.groups.len() {
            for class in 0..self.groups[g].class_cache.len() {
                let v = self.groups[g].class_cache[class];
                if v == 0 {
                    continue;
                }
                if let Some(node) = self.class_example(class as u32, nodes) {
                    let e = out.entry(node.computed_class.clone()).or_insert(true);
                    *e = *e && v == 1;
                }
            }
        }
        out
    }

    /// True when some group has constraints that escape the computed class.
    pub(crate) fn escaped_class(&self) -> bool {
        self.groups.iter().any(|g| {
            !g.escaped.is_empty()
                || g.distinct_hosts.is_some()
                || !g.distinct_props.is_empty()
                || !g.host_volumes.is_empty()
                || g.has_devices
        })
    }
}

/// Nomad's even-spread boost for a node whose value has `current` allocations, given the
/// smallest and largest non-zero counts (both 0 when nothing is placed yet).
fn even_spread_boost(current: u32, min: u32, max: u32) -> f64 {
    if max == 0 {
        return 0.0;
    }
    if current != min {
        if min == 0 {
            return -1.0;
        }
        return (f64::from(min) - f64::from(current)) / f64::from(min);
    }
    if min == max {
        return -1.0;
    }
    f64::from(max - min) / f64::from(min)
}

/// A random start and a stride coprime to `n`: visiting `start + i * stride (mod n)` walks
/// every node once in a shuffled order, at no setup cost.
fn shuffle_params(rng: &mut SmallRng, n: usize) -> (usize, usize) {
    if n <= 1 {
        return (0, 1);
    }
    let start = rng.gen_range(0..n);
    loop {
        let stride = rng.gen_range(1..n.max(2));
        if gcd(stride, n) == 1 {
            return (start, stride);
        }
    }
}

/// A planned port as one number for [`Deltas::ports`].
fn planned_port_key(idx: NodeIdx, network: usize, port: u16) -> u64 {
    let network = u64::try_from(network).unwrap_or(u64::from(u16::MAX)) & 0xffff;
    (u64::from(idx) << 32) | (network << 16) | u64::from(port)
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// Device instance IDs an allocation holds.
pub(crate) fn alloc_devices(alloc: &Allocation) -> Vec<String> {
    alloc
        .allocated_resources
        .iter()
        .flat_map(|ar| ar.tasks.values())
        .flat_map(|t| t.devices.iter())
        .flat_map(|d| d.device_ids.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stride_walk_visits_every_node_once() {
        let mut rng = SmallRng::seed_from_u64(3);
        for n in [1usize, 2, 7, 10, 64, 1000] {
            let (start, stride) = shuffle_params(&mut rng, n);
            let mut seen = vec![false; n];
            let mut pos = start;
            for _ in 0..n {
                assert!(!seen[pos]);
                seen[pos] = true;
                pos = (pos + stride) % n;
            }
            assert!(seen.iter().all(|s| *s));
        }
    }

    #[test]
    fn even_spread_prefers_the_least_used_value() {
        assert_eq!(even_spread_boost(0, 0, 0), 0.0);
        // r1 has 2, r2 has 1.
        assert!(even_spread_boost(1, 1, 2) > even_spread_boost(2, 1, 2));
        // Even: every value at the minimum gets the largest penalty.
        assert_eq!(even_spread_boost(2, 2, 2), -1.0);
        // A value not used yet while others are.
        assert_eq!(even_spread_boost(0, 1, 2), 1.0);
    }
}
