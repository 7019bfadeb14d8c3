//! The scheduler: turns an evaluation into a plan.
//!
//! `nomad-sched` is embeddable on its own. It reads a consistent snapshot of the cluster
//! through [`SchedState`] (nodes, allocations by job and by node, the job, its deployment,
//! the scheduler configuration) and submits what it decided through [`Planner`]. It does no
//! I/O and, for a given [`SchedulerOptions::seed`], always makes the same decisions.
//!
//! Service and batch jobs go through the generic pipeline: the reconciler decides what to
//! place, stop, update in place or replace (count changes, job stop, migrations off
//! draining nodes, lost nodes, rescheduling per policy, rolling updates and canaries with
//! deployments); each placement then walks a shuffled node order checking feasibility
//! (cached per computed node class where only class-level data matters), ranks up to a
//! limit of nodes that fit (bin-pack or spread fitness, job anti-affinity, reschedule
//! penalty, affinities, spread blocks), assigns ports through [`nomad_net::PortIndex`] and
//! devices, and records placement metrics. System and sysbatch jobs get one allocation per
//! eligible node, preempting lower-priority work when the configuration allows.
//!
//! [`MemState`] implements both traits in memory; the server implements them over its
//! state store and plan queue, and calls [`evaluate_node_plan`] from its plan applier.
//!
//! # Example
//!
//! ```
//! use nomad_core::job::{Job, Resources, Task, TaskGroup};
//! use nomad_core::structs::{Evaluation, Node, NodeResources};
//! use nomad_sched::{MemState, Scheduler, SchedState};
//!
//! let mut state = MemState::new();
//! for i in 0..3 {
//!     let mut node = Node {
//!         id: format!("node-{i}").into(),
//!         datacenter: "dc1".into(),
//!         status: "ready".into(),
//!         node_resources: Some(NodeResources::default()),
//!         ..Node::default()
//!     };
//!     if let Some(r) = &mut node.node_resources {
//!         r.cpu.cpu_shares = 4000;
//!         r.memory.memory_mb = 8192;
//!         r.disk.disk_mb = 100_000;
//!     }
//!     node.attributes.insert("driver.exec".into(), "1".into());
//!     state.upsert_node(node);
//! }
//! let mut job = Job {
//!     id: "web".into(),
//!     task_groups: vec![TaskGroup {
//!         name: "app".into(),
//!         count: Some(4),
//!         tasks: vec![Task {
//!             name: "server".into(),
//!             driver: "exec".into(),
//!             resources: Some(Resources { cpu: Some(500), memory_mb: Some(256), ..Resources::default() }),
//!             ..Task::default()
//!         }],
//!         ..TaskGroup::default()
//!     }],
//!     ..Job::default()
//! };
//! job.canonicalize();
//! state.upsert_job(job);
//!
//! let eval = Evaluation { id: "eval-1".into(), job_id: "web".into(), eval_type: "service".into(), ..Evaluation::default() };
//! let outcome = Scheduler::default().process(&eval, &mut state)?;
//! assert_eq!(outcome.placed, 4);
//! assert_eq!(state.allocs_by_job("default", "web").len(), 4);
//! # Ok::<(), nomad_sched::SchedError>(())
//! ```

#![forbid(unsafe_code)]

mod error;
mod feasible;
mod fit;
mod hash;
mod mem;
mod reconcile;
pub mod scenario;
mod scheduler;
mod select;
mod state;

pub use error::SchedError;
pub use fit::{
    evaluate_node_plan, evaluate_node_plan_leaving, evaluate_node_plan_with, NodeFitError,
};
pub use mem::MemState;
pub use scheduler::{EvalOutcome, Scheduler, SchedulerOptions};
pub use select::SelectOptions;
pub use state::{NodeIdx, NodeUsage, Planner, SchedState};
