//! Response and request shapes of the API that are not cluster objects of `nomad-core`.

use std::collections::BTreeMap;

use nomad_core::structs::{AllocDeploymentStatus, AllocMetric, Evaluation, TaskState};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a read returned besides its body (from the `X-Nomad-*` headers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryMeta {
    /// `X-Nomad-Index`: pass it as the next blocking query's index.
    pub last_index: u64,
    /// `X-Nomad-KnownLeader`.
    pub known_leader: bool,
    /// `X-Nomad-LastContact`, milliseconds.
    pub last_contact_ms: u64,
}

/// A job in `GET /v1/jobs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobListStub {
    /// Job ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Parent job, for dispatched and periodic children.
    #[serde(rename = "ParentID")]
    pub parent_id: String,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Datacenters.
    pub datacenters: Vec<String>,
    /// `service`, `batch`, `system` or `sysbatch`.
    #[serde(rename = "Type")]
    pub job_type: Option<String>,
    /// Priority.
    pub priority: i32,
    /// Periodic parent.
    pub periodic: bool,
    /// Parameterized parent.
    pub parameterized_job: bool,
    /// Stopped.
    pub stop: bool,
    /// `pending`, `running` or `dead`.
    pub status: String,
    /// Why.
    pub status_description: String,
    /// Allocation counts per group.
    pub job_summary: Option<JobSummary>,
    /// Raft index at creation.
    pub create_index: Option<u64>,
    /// Raft index of the last change.
    pub modify_index: Option<u64>,
    /// Raft index of the last specification change.
    pub job_modify_index: Option<u64>,
    /// Submission time (Unix nanoseconds).
    pub submit_time: Option<i64>,
}

/// Allocation counts of a job, per group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobSummary {
    /// Job ID.
    #[serde(rename = "JobID")]
    pub job_id: String,
    /// Namespace.
    pub namespace: String,
    /// Per group.
    pub summary: BTreeMap<String, TaskGroupSummary>,
    /// Raft index at creation.
    pub create_index: Option<u64>,
    /// Raft index of the last change.
    pub modify_index: Option<u64>,
}

/// Allocation counts of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskGroupSummary {
    /// Waiting for placement.
    pub queued: u64,
    /// Finished successfully.
    pub complete: u64,
    /// Failed.
    pub failed: u64,
    /// Running.
    pub running: u64,
    /// Placed, not yet running.
    pub starting: u64,
    /// On a lost node.
    pub lost: u64,
    /// On a disconnected node.
    pub unknown: u64,
}

/// An allocation in list endpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocListStub {
    /// Allocation ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// The evaluation that placed it.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// `<job>.<group>[<index>]`.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Node.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Node name.
    pub node_name: String,
    /// Job.
    #[serde(rename = "JobID")]
    pub job_id: String,
    /// Job type.
    pub job_type: Option<String>,
    /// Job version.
    pub job_version: Option<u64>,
    /// Group.
    pub task_group: String,
    /// `run`, `stop` or `evict`.
    pub desired_status: String,
    /// Why.
    pub desired_description: String,
    /// `pending`, `running`, `complete`, `failed`, `lost` or `unknown`.
    pub client_status: String,
    /// Why.
    pub client_description: String,
    /// Per task.
    pub task_states: BTreeMap<String, TaskState>,
    /// Deployment health.
    pub deployment_status: Option<AllocDeploymentStatus>,
    /// Follow-up evaluation.
    #[serde(rename = "FollowupEvalID")]
    pub followup_eval_id: String,
    /// Raft index at creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
    /// Creation time (Unix nanoseconds).
    pub create_time: i64,
    /// Modification time (Unix nanoseconds).
    pub modify_time: i64,
}

/// A node in `GET /v1/nodes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeListStub {
    /// Address.
    pub address: String,
    /// Node ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Datacenter.
    pub datacenter: String,
    /// Name.
    pub name: String,
    /// Class.
    pub node_class: String,
    /// Pool.
    pub node_pool: String,
    /// Agent version.
    pub version: String,
    /// Draining.
    pub drain: bool,
    /// `eligible` or `ineligible`.
    pub scheduling_eligibility: String,
    /// `initializing`, `ready`, `down` or `disconnected`.
    pub status: String,
    /// Why.
    pub status_description: String,
    /// Raft index at creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
}

/// What registering, stopping or evaluating a job returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobRegisterResponse {
    /// The evaluation created.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// Its create index.
    pub eval_create_index: u64,
    /// The job's modify index.
    pub job_modify_index: u64,
    /// Admission warnings.
    pub warnings: String,
    /// The write's index.
    pub index: u64,
}

/// What `POST /v1/validate/job` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobValidateResponse {
    /// Driver configurations were checked.
    pub driver_config_validated: bool,
    /// Every problem found.
    pub validation_errors: Vec<String>,
    /// The problems in one string.
    pub error: String,
    /// Warnings.
    pub warnings: String,
}

/// What `POST /v1/job/:id/plan` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobPlanResponse {
    /// The state index planned against.
    pub index: u64,
    /// The current job's modify index, for `-check-index`.
    pub job_modify_index: u64,
    /// What would change.
    pub annotations: PlanAnnotations,
    /// Groups that would not place everything.
    #[serde(rename = "FailedTGAllocs")]
    pub failed_tg_allocs: Option<BTreeMap<String, AllocMetric>>,
    /// Evaluations that would be created.
    pub created_evals: Option<Vec<Evaluation>>,
    /// The job diff, when asked for.
    pub diff: Option<Value>,
    /// Warnings.
    pub warnings: String,
}

/// The annotations of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PlanAnnotations {
    /// Per group, what would change.
    #[serde(rename = "DesiredTGUpdates")]
    pub desired_tg_updates: BTreeMap<String, DesiredUpdates>,
}

/// What would change in one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DesiredUpdates {
    /// Left alone.
    pub ignore: u64,
    /// Placed.
    pub place: u64,
    /// Migrated.
    pub migrate: u64,
    /// Stopped.
    pub stop: u64,
    /// Updated in place.
    pub in_place_update: u64,
    /// Replaced.
    pub destructive_update: u64,
    /// Canaries.
    pub canary: u64,
    /// Preempted.
    pub preemptions: u64,
}

/// What node writes return.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeUpdateResponse {
    /// The node write's index.
    pub node_modify_index: u64,
    /// Evaluations created.
    #[serde(rename = "EvalIDs")]
    pub eval_ids: Vec<String>,
    /// Their create index.
    pub eval_create_index: u64,
    /// When the next heartbeat is due (nanoseconds), for client routes.
    #[serde(rename = "HeartbeatTTL")]
    pub heartbeat_ttl: u64,
    /// The write's index.
    pub index: u64,
}

/// The drain to apply to a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DrainSpec {
    /// How long allocations get to migrate (nanoseconds); 0 waits forever, -1 forces.
    pub deadline: i64,
    /// Leave system jobs' allocations.
    pub ignore_system_jobs: bool,
}

/// A namespace's services in `GET /v1/services`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceNamespaceList {
    /// Namespace.
    pub namespace: String,
    /// Services.
    pub services: Vec<ServiceStub>,
}

/// A service name with the union of its instances' tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceStub {
    /// Name.
    pub service_name: String,
    /// Tags.
    pub tags: Vec<String>,
}

/// `GET /v1/agent/members`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AgentMembers {
    /// The answering server's name.
    pub server_name: String,
    /// Its region.
    pub server_region: String,
    /// Its datacenter.
    #[serde(rename = "ServerDC")]
    pub server_dc: String,
    /// Every server.
    pub members: Vec<AgentMember>,
}

/// One server of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AgentMember {
    /// `<name>.<region>`.
    pub name: String,
    /// Address.
    pub addr: String,
    /// Gossip port.
    pub port: u16,
    /// Tags (`role`, `region`, `dc`, ...).
    pub tags: BTreeMap<String, String>,
    /// `alive`, `left`, `failed`.
    pub status: String,
}

/// What a plain write returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WriteResponse {
    /// The write's index.
    pub index: u64,
}

/// What a deployment write (promote, fail, pause, allocation health) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeploymentUpdateResponse {
    /// The evaluation created, if any.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// The index the evaluation was created at.
    pub eval_create_index: u64,
    /// The deployment's modify index after the write.
    pub deployment_modify_index: u64,
    /// The job version a revert registered, if any.
    pub reverted_job_version: Option<u64>,
    /// The write's index.
    pub index: u64,
}
