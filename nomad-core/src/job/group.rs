//! Task groups: the unit of placement.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    Affinity, Constraint, Duration, FreeForm, MigrateStrategy, NetworkResource, ReschedulePolicy,
    RestartPolicy, Service, Spread, Task, UpdateStrategy,
};

/// A set of tasks placed together on one node, `count` times.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskGroup {
    /// The group name, unique in the job.
    pub name: String,
    /// How many allocations (default 1).
    pub count: Option<u32>,
    /// Constraints on the node.
    pub constraints: Vec<Constraint>,
    /// Node preferences.
    pub affinities: Vec<Affinity>,
    /// The tasks.
    pub tasks: Vec<Task>,
    /// Spread rules.
    pub spreads: Vec<Spread>,
    /// Volumes requested by name.
    pub volumes: BTreeMap<String, VolumeRequest>,
    /// Restart policy of the tasks.
    pub restart_policy: Option<RestartPolicy>,
    /// Behaviour when the client disconnects.
    pub disconnect: Option<DisconnectStrategy>,
    /// Rescheduling of failed allocations.
    pub reschedule_policy: Option<ReschedulePolicy>,
    /// Ephemeral disk.
    pub ephemeral_disk: Option<EphemeralDisk>,
    /// Rolling update settings; merged with the job's.
    pub update: Option<UpdateStrategy>,
    /// Migration settings for drains; merged with the job's.
    pub migrate: Option<MigrateStrategy>,
    /// The group network (at most one).
    pub networks: Vec<NetworkResource>,
    /// Metadata.
    pub meta: BTreeMap<String, String>,
    /// Group services.
    pub services: Vec<Service>,
    /// Delay between deregistering services and stopping tasks.
    pub shutdown_delay: Option<Duration>,
    /// Stop the allocation after the client has been disconnected this long (deprecated).
    pub stop_after_client_disconnect: Option<Duration>,
    /// Keep allocations of a disconnected client this long (deprecated).
    pub max_client_disconnect: Option<Duration>,
    /// Do not replace allocations on lost nodes (deprecated).
    pub prevent_reschedule_on_lost: Option<bool>,
    /// Horizontal scaling policy.
    pub scaling: Option<ScalingPolicy>,
    /// Consul settings of the group.
    pub consul: Option<ConsulBlock>,
}

impl TaskGroup {
    /// The count, 1 when unset.
    pub fn count_or_default(&self) -> u32 {
        self.count.unwrap_or(1)
    }

    /// The task named `name`.
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.name == name)
    }
}

/// A volume request: host volume or CSI volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeRequest {
    /// The request name (the block label).
    pub name: String,
    /// `host` or `csi`.
    #[serde(rename = "Type")]
    pub volume_type: String,
    /// The volume's source name.
    pub source: String,
    /// Mount read-only.
    pub read_only: bool,
    /// CSI access mode.
    pub access_mode: String,
    /// CSI attachment mode.
    pub attachment_mode: String,
    /// CSI mount options.
    pub mount_options: Option<CsiMountOptions>,
    /// Append the allocation index to the source.
    pub per_alloc: bool,
    /// Keep the same volume for replacements.
    pub sticky: bool,
}

/// CSI mount options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CsiMountOptions {
    /// Filesystem type.
    #[serde(rename = "FSType")]
    pub fs_type: String,
    /// Mount flags.
    pub mount_flags: Vec<String>,
}

/// The allocation's shared scratch disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EphemeralDisk {
    /// Keep the data for a replacement on the same node.
    pub sticky: Option<bool>,
    /// Move the data to a replacement on another node.
    pub migrate: Option<bool>,
    /// Size in MB (default 300).
    #[serde(rename = "SizeMB")]
    pub size_mb: Option<u32>,
}

/// What happens to allocations when their client disconnects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DisconnectStrategy {
    /// How long before a disconnected allocation is considered lost.
    pub lost_after: Option<Duration>,
    /// Place a replacement while disconnected (default true).
    pub replace: Option<bool>,
    /// `best_score` (default), `keep_original`, `keep_replacement` or `longest_running`.
    pub reconcile: String,
    /// Stop the allocation on the client after this long disconnected.
    pub stop_on_client_after: Option<Duration>,
}

/// A scaling policy: horizontal for groups, vertical (`cpu` / `mem`) for tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScalingPolicy {
    /// `horizontal`, `vertical_cpu` or `vertical_mem`.
    #[serde(rename = "Type")]
    pub policy_type: String,
    /// Minimum count (or resource value).
    pub min: Option<i64>,
    /// Maximum count (or resource value); required.
    pub max: Option<i64>,
    /// The autoscaler's policy, free-form.
    pub policy: FreeForm,
    /// Whether the policy is active (default true).
    pub enabled: Option<bool>,
}

/// Consul settings of a group or task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConsulBlock {
    /// Consul namespace.
    pub namespace: String,
    /// Consul cluster (default `default`).
    pub cluster: String,
    /// Consul admin partition.
    pub partition: String,
}
