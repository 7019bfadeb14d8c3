//! Allocations: a task group placed on a node.

use std::collections::BTreeMap;
use std::sync::Arc;

use arcstr::ArcStr;
use litemap::LiteMap;
use serde::{Deserialize, Serialize};

use crate::job::{Duration, Job, NetworkResource, TaskGroup, TaskLifecycle};

/// Writes a [`LiteMap`] as a JSON object even when empty (its own serialisation writes an
/// empty map as an array, which clients reading a map reject).
fn as_map<K, V, S>(map: &LiteMap<K, V>, ser: S) -> Result<S::Ok, S::Error>
where
    K: Serialize + Ord,
    V: Serialize,
    S: serde::Serializer,
{
    ser.collect_map(map.iter())
}

/// A task group placed on a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Allocation {
    /// Unique ID.
    #[serde(rename = "ID")]
    pub id: ArcStr,
    /// Namespace of the job.
    pub namespace: ArcStr,
    /// The evaluation that placed it.
    #[serde(rename = "EvalID")]
    pub eval_id: ArcStr,
    /// Stable name: `<job>.<group>[<index>]`.
    pub name: String,
    /// The node it runs on.
    #[serde(rename = "NodeID")]
    pub node_id: ArcStr,
    /// That node's name.
    pub node_name: ArcStr,
    /// The job.
    #[serde(rename = "JobID")]
    pub job_id: ArcStr,
    /// The job version it runs, carried whole as in Nomad and shared between
    /// the allocations of one version.
    pub job: Option<Arc<Job>>,
    /// The group.
    pub task_group: ArcStr,
    /// What the scheduler gave it.
    pub allocated_resources: Option<AllocatedResources>,
    /// Placement metrics.
    pub metrics: Option<AllocMetric>,
    /// `run`, `stop` or `evict`.
    pub desired_status: ArcStr,
    /// Why.
    pub desired_description: String,
    /// Migration and rescheduling requests.
    pub desired_transition: DesiredTransition,
    /// `pending`, `running`, `complete`, `failed`, `lost` or `unknown`.
    pub client_status: ArcStr,
    /// Why.
    pub client_description: String,
    /// State of each task.
    pub task_states: BTreeMap<String, TaskState>,
    /// The deployment that placed it.
    #[serde(rename = "DeploymentID")]
    pub deployment_id: ArcStr,
    /// Its health in that deployment.
    pub deployment_status: Option<AllocDeploymentStatus>,
    /// The follow-up evaluation for a delayed reschedule.
    #[serde(rename = "FollowupEvalID")]
    pub followup_eval_id: String,
    /// The allocation this one replaces.
    pub previous_allocation: String,
    /// The allocation that replaced this one.
    pub next_allocation: String,
    /// Past reschedules of this allocation's lineage.
    pub reschedule_tracker: Option<RescheduleTracker>,
    /// Allocations preempted for this one.
    pub preempted_allocations: Vec<ArcStr>,
    /// The allocation that preempted this one.
    pub preempted_by_allocation: String,
    /// Raft index at creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
    /// Raft index of the last change by the server.
    pub alloc_modify_index: u64,
    /// Creation time (Unix nanoseconds).
    pub create_time: i64,
    /// Modification time (Unix nanoseconds).
    pub modify_time: i64,
}

impl Allocation {
    /// The index in the stable name `job.group[N]`.
    pub fn index(&self) -> Option<u32> {
        let open = self.name.rfind('[')?;
        let close = self.name.rfind(']')?;
        self.name.get(open + 1..close)?.parse().ok()
    }

    /// The task group of the allocation's job.
    pub fn group(&self) -> Option<&TaskGroup> {
        self.job.as_ref()?.group(&self.task_group)
    }

    /// True when the server wants it stopped.
    pub fn server_terminal(&self) -> bool {
        matches!(self.desired_status.as_str(), "stop" | "evict")
    }

    /// True when it has finished on the client.
    pub fn client_terminal(&self) -> bool {
        matches!(self.client_status.as_str(), "complete" | "failed" | "lost")
    }

    /// True when it no longer uses resources on its node.
    pub fn terminal(&self) -> bool {
        self.server_terminal() || self.client_terminal()
    }
}

/// What the scheduler gave an allocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedResources {
    /// Per task, in task name order. A sorted vector rather than a tree: a group has a
    /// handful of tasks and every placement carries a copy.
    #[serde(serialize_with = "as_map")]
    pub tasks: LiteMap<String, AllocatedTaskResources>,
    /// Lifecycle of each task (for resource accounting across phases).
    #[serde(serialize_with = "as_map")]
    pub task_lifecycles: LiteMap<String, Option<TaskLifecycle>>,
    /// Shared by the group.
    pub shared: AllocatedSharedResources,
}

/// A task's allocated resources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedTaskResources {
    /// CPU.
    pub cpu: AllocatedCpu,
    /// Memory.
    pub memory: AllocatedMemory,
    /// Task-level networks (deprecated form).
    pub networks: Vec<NetworkResource>,
    /// Devices assigned.
    pub devices: Vec<AllocatedDevice>,
}

/// Allocated CPU.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedCpu {
    /// MHz.
    pub cpu_shares: u64,
    /// Core IDs.
    pub reserved_cores: Vec<u16>,
}

/// Allocated memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedMemory {
    /// MB.
    #[serde(rename = "MemoryMB")]
    pub memory_mb: u64,
    /// Burst limit, MB.
    #[serde(rename = "MemoryMaxMB")]
    pub memory_max_mb: u64,
}

/// Device instances assigned to a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedDevice {
    /// Vendor.
    pub vendor: String,
    /// Type.
    #[serde(rename = "Type")]
    pub device_type: String,
    /// Model.
    pub name: String,
    /// Instance IDs.
    #[serde(rename = "DeviceIDs")]
    pub device_ids: Vec<String>,
}

/// Resources shared by the group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedSharedResources {
    /// The group network with assigned ports.
    pub networks: Vec<NetworkResource>,
    /// Ephemeral disk, MB.
    #[serde(rename = "DiskMB")]
    pub disk_mb: u64,
    /// Every assigned port, flat.
    pub ports: Vec<AllocatedPortMapping>,
}

/// A port assigned to an allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedPortMapping {
    /// Label.
    pub label: ArcStr,
    /// Host port.
    pub value: u16,
    /// Port inside the allocation's network.
    pub to: i32,
    /// Host address.
    #[serde(rename = "HostIP")]
    pub host_ip: ArcStr,
}

/// Requests to move or reschedule an allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DesiredTransition {
    /// Migrate off a draining node.
    pub migrate: Option<bool>,
    /// Reschedule now.
    pub reschedule: Option<bool>,
    /// Reschedule even when the policy says no.
    pub force_reschedule: Option<bool>,
    /// Skip the shutdown delay.
    pub no_shutdown_delay: Option<bool>,
}

/// The state of one task of an allocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskState {
    /// `pending`, `running` or `dead`.
    pub state: String,
    /// The task failed.
    pub failed: bool,
    /// Restarts so far.
    pub restarts: u64,
    /// Last restart (RFC 3339).
    pub last_restart: Option<String>,
    /// First start (RFC 3339).
    pub started_at: Option<String>,
    /// Finish (RFC 3339).
    pub finished_at: Option<String>,
    /// Events, oldest first (the last 10 are kept).
    pub events: Vec<TaskEvent>,
}

/// Something that happened to a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskEvent {
    /// `Received`, `Task Setup`, `Started`, `Terminated`, `Restarting`, `Killing`, ...
    #[serde(rename = "Type")]
    pub event_type: String,
    /// When (Unix nanoseconds).
    pub time: i64,
    /// Message.
    pub message: String,
    /// Human-readable message.
    pub display_message: String,
    /// Details.
    pub details: BTreeMap<String, String>,
    /// The event fails the task.
    pub fails_task: bool,
    /// Exit code, for `Terminated`.
    pub exit_code: i32,
    /// Signal, for `Terminated` and `Signaling`.
    pub signal: i32,
    /// Why the task restarts.
    pub restart_reason: String,
    /// Why it was killed.
    pub kill_reason: String,
    /// Its kill timeout.
    pub kill_timeout: Duration,
    /// The driver's error.
    pub driver_error: String,
    /// The restart delay (nanoseconds).
    pub start_delay: i64,
}

/// Health of an allocation within a deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocDeploymentStatus {
    /// Healthy (Some(true)), unhealthy (Some(false)) or not yet known.
    pub healthy: Option<bool>,
    /// When the health was set (RFC 3339).
    pub timestamp: Option<String>,
    /// The allocation is a canary.
    pub canary: bool,
    /// Raft index of the last change.
    pub modify_index: u64,
}

/// Past reschedules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RescheduleTracker {
    /// Events, oldest first.
    pub events: Vec<RescheduleEvent>,
}

/// One reschedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RescheduleEvent {
    /// When (Unix nanoseconds).
    pub reschedule_time: i64,
    /// The allocation replaced.
    #[serde(rename = "PrevAllocID")]
    pub prev_alloc_id: String,
    /// Its node.
    #[serde(rename = "PrevNodeID")]
    pub prev_node_id: String,
    /// The delay applied.
    pub delay: Duration,
}

/// Why an allocation was placed where it was, or why it was not placed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocMetric {
    /// Nodes looked at.
    pub nodes_evaluated: u32,
    /// Nodes filtered out.
    pub nodes_filtered: u32,
    /// Nodes in the job's pool.
    pub nodes_in_pool: u32,
    /// Ready nodes per datacenter.
    #[serde(serialize_with = "as_map")]
    pub nodes_available: LiteMap<String, u32>,
    /// Nodes filtered per node class.
    #[serde(serialize_with = "as_map")]
    pub class_filtered: LiteMap<String, u32>,
    /// Nodes filtered per constraint.
    #[serde(serialize_with = "as_map")]
    pub constraint_filtered: LiteMap<String, u32>,
    /// Nodes that did not have room.
    pub nodes_exhausted: u32,
    /// Exhausted nodes per class.
    #[serde(serialize_with = "as_map")]
    pub class_exhausted: LiteMap<String, u32>,
    /// Exhausted nodes per dimension (`cpu`, `memory`, `network: port collision`...).
    #[serde(serialize_with = "as_map")]
    pub dimension_exhausted: LiteMap<String, u32>,
    /// Quotas exhausted.
    pub quota_exhausted: Vec<String>,
    /// The best nodes and their scores.
    pub score_meta_data: Vec<NodeScoreMeta>,
    /// Time spent placing (nanoseconds).
    pub allocation_time: i64,
    /// Further identical failures folded into this one.
    pub coalesced_failures: u32,
}

/// A node's scores for one placement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeScoreMeta {
    /// The node.
    #[serde(rename = "NodeID")]
    pub node_id: ArcStr,
    /// Score per scorer (`binpack`, `job-anti-affinity`, ...).
    #[serde(serialize_with = "as_map")]
    pub scores: LiteMap<ArcStr, f64>,
    /// The final normalised score.
    pub norm_score: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_maps_read_any_key_order_and_write_sorted_objects() {
        let input = r#"{"Tasks":{"web":{"Cpu":{"CpuShares":100}},"db":{"Memory":{"MemoryMB":64}}},
            "TaskLifecycles":{"web":null,"db":{"Hook":"prestart","Sidecar":false}}}"#;
        let ar: AllocatedResources = serde_json::from_str(input).expect("parses");
        let names: Vec<&str> = ar.tasks.keys().map(String::as_str).collect();
        assert_eq!(names, ["db", "web"]);
        assert_eq!(ar.tasks.get("web").map(|t| t.cpu.cpu_shares), Some(100));
        assert_eq!(ar.tasks.get("db").map(|t| t.memory.memory_mb), Some(64));

        let json = serde_json::to_value(&ar).expect("serialises");
        assert!(
            json["Tasks"].is_object(),
            "tasks stay a JSON object: {json}"
        );
        let text = serde_json::to_string(&ar.tasks).expect("text");
        assert!(text.find("\"db\"") < text.find("\"web\""), "{text}");
        let back: AllocatedResources = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, ar);

        let m: AllocMetric = serde_json::from_str(
            r#"{"DimensionExhausted":{"memory":2,"cpu":1},"ScoreMetaData":[{"NodeID":"n1","Scores":{"job-anti-affinity":-0.5,"binpack":0.9},"NormScore":0.2}]}"#,
        )
        .expect("metric parses");
        assert_eq!(m.dimension_exhausted.get("cpu"), Some(&1));
        assert_eq!(m.score_meta_data[0].scores.get("binpack"), Some(&0.9));
        let out = serde_json::to_string(&m.score_meta_data[0].scores).expect("scores");
        assert_eq!(out, r#"{"binpack":0.9,"job-anti-affinity":-0.5}"#);
    }

    #[test]
    fn empty_small_maps_are_written_as_objects() {
        let ar = AllocatedResources::default();
        let json = serde_json::to_value(&ar).expect("serialises");
        assert!(json["Tasks"].is_object(), "{json}");
        assert!(json["TaskLifecycles"].is_object(), "{json}");
        let m = AllocMetric {
            score_meta_data: vec![NodeScoreMeta::default()],
            ..AllocMetric::default()
        };
        let json = serde_json::to_value(&m).expect("serialises");
        for key in [
            "NodesAvailable",
            "ClassFiltered",
            "ConstraintFiltered",
            "ClassExhausted",
            "DimensionExhausted",
        ] {
            assert!(json[key].is_object(), "{key}: {json}");
        }
        assert!(json["ScoreMetaData"][0]["Scores"].is_object(), "{json}");
        let back: AllocMetric = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, m);
    }
}
