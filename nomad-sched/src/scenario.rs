//! Synthetic clusters and jobs for the throughput harness (`examples/sched-bench.rs`) and the
//! criterion benches: heterogeneous node sizes, three datacenters, racks in `meta.rack`,
//! a few architectures and node classes; jobs with constraints, a dynamic port, optional
//! spread on `${meta.rack}`, service or batch.

use std::time::{Duration, Instant};

use nomad_core::job::{Constraint, Job, NetworkResource, Port, Resources, Spread, Task, TaskGroup};
use nomad_core::structs::{
    Allocation, ArcStr, Evaluation, Node, NodeResources, Plan, PlanResult, SchedulerConfiguration,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::state::{NodeIdx, NodeUsage, Planner, SchedState};
use crate::{MemState, SchedError, Scheduler};

/// Node shapes: (MHz, MB), all with the same CPU-to-memory ratio of common cloud types.
const NODE_SHAPES: [(u64, u64); 3] = [(16_000, 32_768), (32_000, 65_536), (64_000, 131_072)];
/// Racks per datacenter.
const RACKS_PER_DC: usize = 20;

/// Builds a cluster of `nodes` ready nodes, deterministic for `seed`.
pub fn cluster(nodes: usize, seed: u64) -> MemState {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut state = MemState::new();
    state.set_scheduler_config(SchedulerConfiguration::default());
    for i in 0..nodes {
        let (cpu, mem) = NODE_SHAPES[rng.gen_range(0..NODE_SHAPES.len())];
        let dc = i % 3 + 1;
        let rack = rng.gen_range(0..RACKS_PER_DC);
        let mut node = Node {
            id: format!("{:08x}-{:04x}-4000-8000-{:012x}", seed as u32, i >> 16, i).into(),
            name: format!("node-{i}").into(),
            datacenter: format!("dc{dc}"),
            status: "ready".to_string(),
            scheduling_eligibility: "eligible".to_string(),
            node_pool: "default".to_string(),
            node_class: ["general", "compute", "storage"][i % 3].to_string(),
            node_resources: Some(NodeResources::default()),
            ..Node::default()
        };
        if let Some(r) = &mut node.node_resources {
            r.cpu.cpu_shares = cpu;
            r.memory.memory_mb = mem;
            r.disk.disk_mb = 500_000;
        }
        let arch = if rng.gen_range(0..10) == 0 {
            "arm64"
        } else {
            "amd64"
        };
        for (k, v) in [
            ("kernel.name", "linux"),
            ("cpu.arch", arch),
            ("os.name", "ubuntu"),
            ("os.version", "22.04"),
            ("nomad.version", "1.7.3"),
            ("driver.docker", "1"),
            ("driver.exec", "1"),
        ] {
            node.attributes.insert(k.to_string(), v.to_string());
        }
        node.attributes
            .insert("unique.hostname".to_string(), node.name.to_string());
        node.meta
            .insert("rack".to_string(), format!("dc{dc}-r{rack:02}"));
        state.upsert_node(node);
    }
    state
}

/// The shape of a synthetic job.
#[derive(Debug, Clone, Copy)]
pub struct JobShape {
    /// Allocations of its one group.
    pub count: u32,
    /// Spread across `${meta.rack}`.
    pub spread: bool,
    /// A batch job (limit 2) instead of a service job (limit log2 N).
    pub batch: bool,
    /// Keep off `arm64` nodes (a tenth of the cluster) with a `${attr.cpu.arch}`
    /// constraint.
    pub amd64_only: bool,
}

/// A synthetic job: one group of `shape.count`, one task with 100-500 MHz and 128-1024 MB,
/// a dynamic port, a constraint on the kernel and (optionally) the architecture.
pub fn job(id: &str, shape: JobShape, rng: &mut SmallRng) -> Job {
    let cpu = [100, 200, 250, 300, 500][rng.gen_range(0..5)];
    let mem = [128, 256, 512, 768, 1024][rng.gen_range(0..5)];
    let mut group = TaskGroup {
        name: "app".to_string(),
        count: Some(shape.count),
        constraints: if shape.amd64_only {
            vec![Constraint::new("${attr.cpu.arch}", "=", "amd64")]
        } else {
            Vec::new()
        },
        networks: vec![NetworkResource {
            dynamic_ports: vec![Port {
                label: "http".into(),
                ..Port::default()
            }],
            ..NetworkResource::default()
        }],
        tasks: vec![Task {
            name: "server".to_string(),
            driver: "docker".to_string(),
            resources: Some(Resources {
                cpu: Some(cpu),
                memory_mb: Some(mem),
                ..Resources::default()
            }),
            ..Task::default()
        }],
        ..TaskGroup::default()
    };
    if shape.spread {
        group.spreads.push(Spread {
            attribute: "${meta.rack}".to_string(),
            weight: Some(50),
            spread_target: Vec::new(),
        });
    }
    let mut job = Job {
        id: id.to_string(),
        job_type: Some(if shape.batch { "batch" } else { "service" }.to_string()),
        datacenters: vec!["dc*".to_string()],
        constraints: vec![Constraint::new("${attr.kernel.name}", "=", "linux")],
        task_groups: vec![group],
        ..Job::default()
    };
    job.canonicalize();
    // Placement throughput is measured, not rolling updates: no deployments.
    for g in &mut job.task_groups {
        g.update = None;
    }
    job
}

/// CPU time this thread has run, from the thread CPU clock (Linux); `None` elsewhere. On
/// a shared machine it measures the scheduler's own cost, where wall time also counts the
/// time other processes held the CPU. The clock is read to the nanosecond: the total in
/// `/proc/thread-self/schedstat` moves only at scheduler ticks (4 ms at 250 Hz), which
/// made a run of a few tens of milliseconds read up to a tick short or long.
#[cfg(target_os = "linux")]
pub fn thread_cpu_time() -> Option<Duration> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).ok()?;
    Some(Duration::from(t))
}

/// CPU time this thread has run: not known on this platform.
#[cfg(not(target_os = "linux"))]
pub fn thread_cpu_time() -> Option<Duration> {
    None
}

/// Wall and CPU time since a start.
#[derive(Clone, Copy)]
struct Stopwatch {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Stopwatch {
    fn start() -> Self {
        Stopwatch {
            wall: Instant::now(),
            cpu: thread_cpu_time(),
        }
    }
    fn elapsed(&self) -> (Duration, Option<Duration>) {
        let cpu = match (self.cpu, thread_cpu_time()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        (self.wall.elapsed(), cpu)
    }
}

/// Wraps a [`MemState`] to time plan application apart from scheduling.
pub struct TimedState<'a> {
    inner: &'a mut MemState,
    /// Wall time spent applying plans.
    pub plan_time: Duration,
    /// CPU time spent applying plans, when the platform reports it.
    pub plan_cpu: Option<Duration>,
}

impl<'a> TimedState<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a mut MemState) -> Self {
        TimedState {
            inner,
            plan_time: Duration::ZERO,
            plan_cpu: Some(Duration::ZERO),
        }
    }
}

impl SchedState for TimedState<'_> {
    fn index(&self) -> u64 {
        self.inner.index()
    }
    fn nodes(&self) -> &[std::sync::Arc<Node>] {
        self.inner.nodes()
    }
    fn node_id_name(&self, idx: NodeIdx) -> Option<(&ArcStr, &ArcStr)> {
        self.inner.node_id_name(idx)
    }
    fn node_idx(&self, id: &str) -> Option<NodeIdx> {
        self.inner.node_idx(id)
    }
    fn ready_nodes(&self, pool: &str) -> &[NodeIdx] {
        self.inner.ready_nodes(pool)
    }
    fn ready_nodes_in_place(&self, pool: &str) -> bool {
        self.inner.ready_nodes_in_place(pool)
    }
    fn node_class_id(&self, idx: NodeIdx) -> u32 {
        self.inner.node_class_id(idx)
    }
    fn class_count(&self) -> u32 {
        self.inner.class_count()
    }
    fn node_capacity(&self, idx: NodeIdx) -> NodeUsage {
        self.inner.node_capacity(idx)
    }
    fn node_usage(&self, idx: NodeIdx) -> NodeUsage {
        self.inner.node_usage(idx)
    }
    fn port_index(&self, idx: NodeIdx) -> Option<&nomad_net::PortIndex> {
        self.inner.port_index(idx)
    }
    fn allocs_by_node(&self, idx: NodeIdx) -> &[std::sync::Arc<Allocation>] {
        self.inner.allocs_by_node(idx)
    }
    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> &[std::sync::Arc<Allocation>] {
        self.inner.allocs_by_job(namespace, job_id)
    }
    fn alloc_job(&self, alloc: &Allocation) -> Option<std::sync::Arc<Job>> {
        self.inner.alloc_job(alloc)
    }
    fn job(&self, namespace: &str, job_id: &str) -> Option<std::sync::Arc<Job>> {
        self.inner.job(namespace, job_id)
    }
    fn latest_deployment(
        &self,
        namespace: &str,
        job_id: &str,
    ) -> Option<&nomad_core::structs::Deployment> {
        self.inner.latest_deployment(namespace, job_id)
    }
    fn scheduler_config(&self) -> &SchedulerConfiguration {
        self.inner.scheduler_config()
    }
}

impl Planner for TimedState<'_> {
    fn submit_plan(&mut self, plan: Plan) -> Result<PlanResult, SchedError> {
        let t = Stopwatch::start();
        let r = self.inner.submit_plan(plan);
        let (wall, cpu) = t.elapsed();
        self.plan_time += wall;
        self.plan_cpu = match (self.plan_cpu, cpu) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        r
    }
    fn update_eval(&mut self, eval: Evaluation) -> Result<(), SchedError> {
        self.inner.update_eval(eval)
    }
    fn create_eval(&mut self, eval: Evaluation) -> Result<(), SchedError> {
        self.inner.create_eval(eval)
    }
}

/// What running a batch of evaluations measured.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Allocations placed.
    pub placements: u64,
    /// Allocations that found no node.
    pub failed: u64,
    /// Evaluations processed.
    pub evals: u64,
    /// Scheduler wall time (reconcile, select, build the plan), without plan application.
    pub sched_time: Duration,
    /// Wall time the in-memory plan applier took.
    pub plan_time: Duration,
    /// Scheduler CPU time, when the platform reports it.
    pub sched_cpu: Option<Duration>,
    /// Plan applier CPU time, when the platform reports it.
    pub plan_cpu: Option<Duration>,
    /// Scheduler wall time of each evaluation (the thread CPU clock read from `/proc`
    /// advances in scheduler ticks, too coarse for one evaluation).
    pub eval_times: Vec<Duration>,
    /// Nodes looked at over all placements.
    pub nodes_evaluated: u64,
}

impl RunStats {
    fn rate(&self, d: Duration) -> f64 {
        let s = d.as_secs_f64();
        if s > 0.0 {
            self.placements as f64 / s
        } else {
            0.0
        }
    }

    /// Placements per second of scheduler CPU time (wall time where CPU time is unknown).
    pub fn placements_per_sec(&self) -> f64 {
        self.rate(self.sched_cpu.unwrap_or(self.sched_time))
    }

    /// Placements per second of scheduler wall time.
    pub fn placements_per_sec_wall(&self) -> f64 {
        self.rate(self.sched_time)
    }

    /// Placements per second including plan application (CPU time where known).
    pub fn end_to_end_per_sec(&self) -> f64 {
        match (self.sched_cpu, self.plan_cpu) {
            (Some(a), Some(b)) => self.rate(a + b),
            _ => self.rate(self.sched_time + self.plan_time),
        }
    }

    /// The `q` quantile (0..=1) of evaluation times, in milliseconds.
    pub fn eval_quantile_ms(&self, q: f64) -> f64 {
        if self.eval_times.is_empty() {
            return 0.0;
        }
        let mut v = self.eval_times.clone();
        v.sort();
        let i = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        v[i].as_secs_f64() * 1000.0
    }

    /// Adds another run's figures.
    pub fn merge(&mut self, o: &RunStats) {
        let first = self.evals == 0;
        self.placements += o.placements;
        self.failed += o.failed;
        self.evals += o.evals;
        if first {
            self.sched_cpu = o.sched_cpu;
            self.plan_cpu = o.plan_cpu;
        } else {
            self.sched_cpu = self.sched_cpu.zip(o.sched_cpu).map(|(a, b)| a + b);
            self.plan_cpu = self.plan_cpu.zip(o.plan_cpu).map(|(a, b)| a + b);
        }
        self.sched_time += o.sched_time;
        self.plan_time += o.plan_time;
        self.eval_times.extend_from_slice(&o.eval_times);
        self.nodes_evaluated += o.nodes_evaluated;
    }
}

/// Registers `job` and processes its registration evaluation.
pub fn run_job(
    state: &mut MemState,
    scheduler: &Scheduler,
    job: Job,
    eval_seq: u64,
) -> Result<RunStats, SchedError> {
    let job = state.upsert_job(job);
    let eval = Evaluation {
        id: format!("eval-{eval_seq:012}"),
        namespace: job.namespace_or_default().to_string(),
        priority: job.priority_or_default(),
        eval_type: job.job_type.clone().unwrap_or_default(),
        triggered_by: "job-register".to_string(),
        job_id: job.id.clone(),
        status: "pending".to_string(),
        ..Evaluation::default()
    };
    let mut timed = TimedState::new(state);
    let start = Stopwatch::start();
    let outcome = scheduler.process(&eval, &mut timed)?;
    let (total, total_cpu) = start.elapsed();
    let sched = total.saturating_sub(timed.plan_time);
    let sched_cpu = total_cpu
        .zip(timed.plan_cpu)
        .map(|(t, p)| t.saturating_sub(p));
    Ok(RunStats {
        placements: outcome.placed as u64,
        failed: outcome.failed.values().map(|v| u64::from(*v)).sum(),
        evals: 1,
        sched_time: sched,
        plan_time: timed.plan_time,
        sched_cpu,
        plan_cpu: timed.plan_cpu,
        eval_times: vec![sched],
        nodes_evaluated: outcome.nodes_evaluated,
    })
}

/// Share of the cluster in use, as the mean over nodes of the larger of CPU and memory
/// utilisation (the node's binding dimension), plus CPU and memory shares of the whole
/// cluster.
pub fn utilisation(state: &MemState) -> (f64, f64, f64) {
    let mut dominant = 0.0;
    let mut n = 0usize;
    for (cap, used) in state.node_totals() {
        if cap.cpu == 0 || cap.memory_mb == 0 {
            continue;
        }
        let c = used.cpu as f64 / cap.cpu as f64;
        let m = used.memory_mb as f64 / cap.memory_mb as f64;
        dominant += c.max(m);
        n += 1;
    }
    let (cap, used) = state.totals();
    let share = |u: u64, c: u64| if c == 0 { 0.0 } else { u as f64 / c as f64 };
    (
        if n == 0 { 0.0 } else { dominant / n as f64 },
        share(used.cpu, cap.cpu),
        share(used.memory_mb, cap.memory_mb),
    )
}

/// Keeps registering jobs of `count` allocations with random sizes until a placement
/// fails; returns the utilisation at that moment (see [`utilisation`]) and the placements
/// made while filling.
pub fn fill_until_failure(
    state: &mut MemState,
    scheduler: &Scheduler,
    count: u32,
    seed: u64,
) -> Result<((f64, f64, f64), u64), SchedError> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut placed = 0u64;
    for i in 0..1_000_000u64 {
        // Fill jobs may use every node, so that the figure measures packing, not the
        // constraints of the scenario's jobs.
        let shape = JobShape {
            count,
            spread: false,
            batch: false,
            amd64_only: false,
        };
        let j = job(&format!("fill-{i}"), shape, &mut rng);
        let stats = run_job(state, scheduler, j, 10_000_000 + i)?;
        placed += stats.placements;
        if stats.failed > 0 {
            break;
        }
    }
    Ok((utilisation(state), placed))
}
