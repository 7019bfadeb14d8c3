//! Cluster objects shared by the server, scheduler and client, in the JSON shape of the API.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::job::{Duration, Job, NetworkResource};

mod alloc;
mod node;
mod resources;
mod sched_config;
pub mod version;

pub use alloc::{
    AllocDeploymentStatus, AllocMetric, AllocatedPortMapping, AllocatedResources,
    AllocatedSharedResources, AllocatedTaskResources, Allocation, DesiredTransition, NodeScoreMeta,
    RescheduleEvent, RescheduleTracker, TaskEvent, TaskState,
};
pub use alloc::{AllocatedCpu, AllocatedDevice, AllocatedMemory};
/// A shared, immutable string: clones are a reference count, literals never allocate.
pub use arcstr::ArcStr;
/// The sorted-vector map used for small per-allocation maps (task resources, placement
/// metrics and scores); it serialises as a JSON object like `BTreeMap`.
pub use litemap::LiteMap;
pub use node::{
    DrainStrategy, DriverInfo, HostNetwork, HostVolume, Node, NodeCpuResources, NodeDevice,
    NodeDeviceResource, NodeReservedResources, NodeResources,
};
pub use resources::ComparableResources;
pub use sched_config::{
    PreemptionConfig, SchedulerConfiguration, SCHEDULER_ALGORITHM_BINPACK,
    SCHEDULER_ALGORITHM_SPREAD,
};

/// Status values of objects, as the API spells them.
pub mod status {
    /// Node: registered, not yet ready.
    pub const NODE_INITIALIZING: &str = "initializing";
    /// Node: heartbeating and usable.
    pub const NODE_READY: &str = "ready";
    /// Node: missed its heartbeats.
    pub const NODE_DOWN: &str = "down";
    /// Node: disconnected but allowed to reconnect.
    pub const NODE_DISCONNECTED: &str = "disconnected";
    /// Node eligibility: may receive new allocations.
    pub const NODE_ELIGIBLE: &str = "eligible";
    /// Node eligibility: receives no new allocations.
    pub const NODE_INELIGIBLE: &str = "ineligible";

    /// Allocation desired status: keep running.
    pub const ALLOC_DESIRED_RUN: &str = "run";
    /// Allocation desired status: stop.
    pub const ALLOC_DESIRED_STOP: &str = "stop";
    /// Allocation desired status: evicted by preemption.
    pub const ALLOC_DESIRED_EVICT: &str = "evict";
    /// Allocation client status: not yet running.
    pub const ALLOC_CLIENT_PENDING: &str = "pending";
    /// Allocation client status: running.
    pub const ALLOC_CLIENT_RUNNING: &str = "running";
    /// Allocation client status: finished successfully.
    pub const ALLOC_CLIENT_COMPLETE: &str = "complete";
    /// Allocation client status: failed.
    pub const ALLOC_CLIENT_FAILED: &str = "failed";
    /// Allocation client status: its node was lost.
    pub const ALLOC_CLIENT_LOST: &str = "lost";
    /// Allocation client status: its node is disconnected.
    pub const ALLOC_CLIENT_UNKNOWN: &str = "unknown";

    /// Evaluation: waiting for a scheduler.
    pub const EVAL_PENDING: &str = "pending";
    /// Evaluation: waiting for capacity.
    pub const EVAL_BLOCKED: &str = "blocked";
    /// Evaluation: processed.
    pub const EVAL_COMPLETE: &str = "complete";
    /// Evaluation: could not be processed.
    pub const EVAL_FAILED: &str = "failed";
    /// Evaluation: superseded.
    pub const EVAL_CANCELED: &str = "canceled";

    /// Deployment: in progress.
    pub const DEPLOYMENT_RUNNING: &str = "running";
    /// Deployment: paused.
    pub const DEPLOYMENT_PAUSED: &str = "paused";
    /// Deployment: failed.
    pub const DEPLOYMENT_FAILED: &str = "failed";
    /// Deployment: done.
    pub const DEPLOYMENT_SUCCESSFUL: &str = "successful";
    /// Deployment: replaced by a newer one.
    pub const DEPLOYMENT_CANCELLED: &str = "cancelled";

    /// Task state: not started.
    pub const TASK_PENDING: &str = "pending";
    /// Task state: running.
    pub const TASK_RUNNING: &str = "running";
    /// Task state: exited and will not run again.
    pub const TASK_DEAD: &str = "dead";

    /// The allocation statuses above as shared strings, for the fields of
    /// [`Allocation`](super::Allocation): setting one never allocates.
    pub mod shared {
        use arcstr::ArcStr;

        /// [`ALLOC_DESIRED_RUN`](super::ALLOC_DESIRED_RUN).
        pub const ALLOC_DESIRED_RUN: ArcStr = arcstr::literal!("run");
        /// [`ALLOC_DESIRED_STOP`](super::ALLOC_DESIRED_STOP).
        pub const ALLOC_DESIRED_STOP: ArcStr = arcstr::literal!("stop");
        /// [`ALLOC_DESIRED_EVICT`](super::ALLOC_DESIRED_EVICT).
        pub const ALLOC_DESIRED_EVICT: ArcStr = arcstr::literal!("evict");
        /// [`ALLOC_CLIENT_PENDING`](super::ALLOC_CLIENT_PENDING).
        pub const ALLOC_CLIENT_PENDING: ArcStr = arcstr::literal!("pending");
        /// [`ALLOC_CLIENT_RUNNING`](super::ALLOC_CLIENT_RUNNING).
        pub const ALLOC_CLIENT_RUNNING: ArcStr = arcstr::literal!("running");
        /// [`ALLOC_CLIENT_COMPLETE`](super::ALLOC_CLIENT_COMPLETE).
        pub const ALLOC_CLIENT_COMPLETE: ArcStr = arcstr::literal!("complete");
        /// [`ALLOC_CLIENT_FAILED`](super::ALLOC_CLIENT_FAILED).
        pub const ALLOC_CLIENT_FAILED: ArcStr = arcstr::literal!("failed");
        /// [`ALLOC_CLIENT_LOST`](super::ALLOC_CLIENT_LOST).
        pub const ALLOC_CLIENT_LOST: ArcStr = arcstr::literal!("lost");
        /// [`ALLOC_CLIENT_UNKNOWN`](super::ALLOC_CLIENT_UNKNOWN).
        pub const ALLOC_CLIENT_UNKNOWN: ArcStr = arcstr::literal!("unknown");

        /// The shared form of an allocation status: a literal for the statuses above
        /// (no allocation), a new string otherwise.
        pub fn alloc_status(s: &str) -> ArcStr {
            match s {
                super::ALLOC_DESIRED_RUN => ALLOC_DESIRED_RUN,
                super::ALLOC_DESIRED_STOP => ALLOC_DESIRED_STOP,
                super::ALLOC_DESIRED_EVICT => ALLOC_DESIRED_EVICT,
                super::ALLOC_CLIENT_PENDING => ALLOC_CLIENT_PENDING,
                super::ALLOC_CLIENT_RUNNING => ALLOC_CLIENT_RUNNING,
                super::ALLOC_CLIENT_COMPLETE => ALLOC_CLIENT_COMPLETE,
                super::ALLOC_CLIENT_FAILED => ALLOC_CLIENT_FAILED,
                super::ALLOC_CLIENT_LOST => ALLOC_CLIENT_LOST,
                super::ALLOC_CLIENT_UNKNOWN => ALLOC_CLIENT_UNKNOWN,
                other => ArcStr::from(other),
            }
        }
    }
}

/// An evaluation: a request to reconcile a job's desired and actual state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Evaluation {
    /// Unique ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Namespace of the job.
    pub namespace: String,
    /// Priority, from the job.
    pub priority: i32,
    /// Scheduler type (the job type, or `_core`).
    #[serde(rename = "Type")]
    pub eval_type: String,
    /// What caused it: `job-register`, `node-update`, `alloc-failure`, ...
    pub triggered_by: String,
    /// The job.
    #[serde(rename = "JobID")]
    pub job_id: String,
    /// The job modify index that triggered it.
    pub job_modify_index: u64,
    /// The node, for node-triggered evaluations.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// The node modify index that triggered it.
    pub node_modify_index: u64,
    /// The deployment, for deployment-triggered evaluations.
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    /// `pending`, `blocked`, `complete`, `failed` or `canceled`.
    pub status: String,
    /// Why the status is what it is.
    pub status_description: String,
    /// Delay before processing.
    pub wait: Duration,
    /// Process no earlier than this (Unix nanoseconds).
    pub wait_until: i64,
    /// The follow-up evaluation.
    pub next_eval: String,
    /// The evaluation this one follows.
    pub previous_eval: String,
    /// The blocked evaluation created when placements failed.
    pub blocked_eval: String,
    /// Why groups failed to place, by group.
    #[serde(rename = "FailedTGAllocs")]
    pub failed_tg_allocs: BTreeMap<String, AllocMetric>,
    /// Node classes found eligible (true) or not, for unblocking.
    pub class_eligibility: BTreeMap<String, bool>,
    /// The job has constraints that escape computed classes.
    pub escaped_computed_class: bool,
    /// Allocations still queued per group.
    pub queued_allocations: BTreeMap<String, u32>,
    /// The state index the scheduler worked from.
    pub snapshot_index: u64,
    /// Raft index at creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
    /// Creation time (Unix nanoseconds).
    pub create_time: i64,
    /// Modification time (Unix nanoseconds).
    pub modify_time: i64,
}

/// What a scheduler wants done: allocations to stop and to place, per node.
///
/// Allocations are shared (`Arc`): the scheduler builds each once and the plan applier,
/// the state store and the plan result hold that same allocation instead of copies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Plan {
    /// The evaluation being processed.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// The broker's token for that evaluation.
    pub eval_token: String,
    /// Priority, from the job.
    pub priority: i32,
    /// Commit all of the plan or none of it.
    pub all_at_once: bool,
    /// The job the placements run.
    pub job: Option<Arc<Job>>,
    /// Allocations to stop or evict, by node ID.
    pub node_update: BTreeMap<ArcStr, Vec<Arc<Allocation>>>,
    /// Allocations to place or update in place, by node ID.
    pub node_allocation: BTreeMap<ArcStr, Vec<Arc<Allocation>>>,
    /// Allocations preempted to make room, by node ID.
    pub node_preemptions: BTreeMap<ArcStr, Vec<Arc<Allocation>>>,
    /// A deployment to create or update.
    pub deployment: Option<Deployment>,
    /// Status changes of other deployments.
    pub deployment_updates: Vec<DeploymentStatusUpdate>,
    /// The state index the plan was computed at.
    pub snapshot_index: u64,
}

impl Plan {
    /// True when the plan changes nothing.
    pub fn is_no_op(&self) -> bool {
        self.node_update.values().all(Vec::is_empty)
            && self.node_allocation.values().all(Vec::is_empty)
            && self.node_preemptions.values().all(Vec::is_empty)
            && self.deployment.is_none()
            && self.deployment_updates.is_empty()
    }
}

/// What the plan applier committed of a plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PlanResult {
    /// Stops committed, by node.
    pub node_update: BTreeMap<ArcStr, Vec<Arc<Allocation>>>,
    /// Placements committed, by node.
    pub node_allocation: BTreeMap<ArcStr, Vec<Arc<Allocation>>>,
    /// Preemptions committed, by node.
    pub node_preemptions: BTreeMap<ArcStr, Vec<Arc<Allocation>>>,
    /// The deployment committed.
    pub deployment: Option<Deployment>,
    /// Deployment updates committed.
    pub deployment_updates: Vec<DeploymentStatusUpdate>,
    /// Non-zero when part of the plan was refused: the index to refresh state to.
    pub refresh_index: u64,
    /// The index the committed allocations were written at.
    pub alloc_index: u64,
}

impl PlanResult {
    /// True when every placement and stop of `plan` was committed.
    pub fn fully_committed(&self, plan: &Plan) -> bool {
        let count =
            |m: &BTreeMap<ArcStr, Vec<Arc<Allocation>>>| m.values().map(Vec::len).sum::<usize>();
        count(&self.node_allocation) == count(&plan.node_allocation)
            && count(&self.node_update) == count(&plan.node_update)
            && count(&self.node_preemptions) == count(&plan.node_preemptions)
    }
}

/// A change of a deployment's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeploymentStatusUpdate {
    /// The deployment.
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    /// Its new status.
    pub status: String,
    /// Why.
    pub status_description: String,
}

/// A rolling update of a job version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Deployment {
    /// Unique ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// The job.
    #[serde(rename = "JobID")]
    pub job_id: String,
    /// The job version being deployed.
    pub job_version: u64,
    /// The job's modify index.
    pub job_modify_index: u64,
    /// The job's spec modify index.
    pub job_spec_modify_index: u64,
    /// The job's create index.
    pub job_create_index: u64,
    /// Part of a multi-region deployment.
    pub is_multiregion: bool,
    /// Progress per group.
    pub task_groups: BTreeMap<String, DeploymentState>,
    /// `running`, `paused`, `failed`, `successful`, `cancelled`, ...
    pub status: String,
    /// Why.
    pub status_description: String,
    /// Raft index at creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
}

impl Deployment {
    /// True while the deployment can still make progress.
    pub fn active(&self) -> bool {
        matches!(
            self.status.as_str(),
            "running" | "paused" | "pending" | "blocked" | "unblocking"
        )
    }
}

/// A group's progress in a deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeploymentState {
    /// Revert on failure.
    pub auto_revert: bool,
    /// Promote canaries automatically.
    pub auto_promote: bool,
    /// Allowed time without progress.
    pub progress_deadline: Duration,
    /// Fail unless progress is made by this time (Unix nanoseconds).
    pub require_progress_by: i64,
    /// Canaries promoted.
    pub promoted: bool,
    /// IDs of placed canaries.
    pub placed_canaries: Vec<String>,
    /// Canaries wanted.
    pub desired_canaries: u32,
    /// Allocations wanted.
    pub desired_total: u32,
    /// Allocations placed.
    pub placed_allocs: u32,
    /// Allocations healthy.
    pub healthy_allocs: u32,
    /// Allocations unhealthy.
    pub unhealthy_allocs: u32,
}

/// A service instance registered in the native catalog (`provider = "nomad"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceRegistration {
    /// Unique ID: `_nomad-task-<alloc>-<task or group>-<service>-<port>`.
    #[serde(rename = "ID")]
    pub id: String,
    /// The service name.
    pub service_name: String,
    /// Namespace.
    pub namespace: String,
    /// The node it runs on.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// The node's datacenter.
    pub datacenter: String,
    /// The job.
    #[serde(rename = "JobID")]
    pub job_id: String,
    /// The allocation.
    #[serde(rename = "AllocID")]
    pub alloc_id: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Address to connect to.
    pub address: String,
    /// Port to connect to.
    pub port: u16,
    /// Raft index at creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
}

/// A network as allocated on a node, with assigned ports (used in allocated resources).
pub type AllocatedNetwork = NetworkResource;
