//! The job model in the JSON shape of the HTTP API.
//!
//! Field names serialise in PascalCase as Nomad's API uses them, durations as nanoseconds.
//! Fields whose default depends on context (the job type, the enclosing block) are `Option`s
//! until [`Job::canonicalize`] fills them; enumerations are kept as the text the user wrote so
//! that [`Job::validate`] can say, in the job's own words, what is wrong with them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod canonicalize;
mod constraint;
mod duration;
mod group;
mod network;
mod service;
mod task;
mod validate;

pub use constraint::{Affinity, Constraint, Spread, SpreadTarget, CONSTRAINT_OPERATORS};
pub use duration::Duration;
pub use group::{
    ConsulBlock, CsiMountOptions, DisconnectStrategy, EphemeralDisk, ScalingPolicy, TaskGroup,
    VolumeRequest,
};
pub use network::{CniConfig, DnsConfig, NetworkResource, Port};
pub use service::{
    CheckRestart, ConsulConnect, ConsulExposeConfig, ConsulExposePath, ConsulGateway,
    ConsulMeshGateway, ConsulProxy, ConsulSidecarService, ConsulUpstream, Service, ServiceCheck,
    ServiceWeights, SidecarTask,
};
pub use task::{
    Action, ChangeScript, DispatchPayloadConfig, LogConfig, RequestedDevice, Resources, Task,
    TaskArtifact, TaskLifecycle, Template, Vault, VolumeMount, WaitConfig, WorkloadIdentity,
};

/// Free-form configuration (a driver's `config`, a proxy's `config`), kept as JSON values.
pub type FreeForm = BTreeMap<String, serde_json::Value>;

/// The kinds of job and the scheduler that places them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    /// Long-running services.
    Service,
    /// Work that runs to completion.
    Batch,
    /// One allocation on every eligible node.
    System,
    /// Work that runs to completion on every eligible node.
    Sysbatch,
}

impl JobType {
    /// The type as written in a job file.
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Service => "service",
            JobType::Batch => "batch",
            JobType::System => "system",
            JobType::Sysbatch => "sysbatch",
        }
    }

    /// Parses a job file's `type`.
    pub fn parse(s: &str) -> Option<JobType> {
        match s {
            "service" => Some(JobType::Service),
            "batch" => Some(JobType::Batch),
            "system" => Some(JobType::System),
            "sysbatch" => Some(JobType::Sysbatch),
            _ => None,
        }
    }
}

/// A job: the whole specification of a workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Job {
    /// The region to run in (default `global`).
    pub region: Option<String>,
    /// The namespace (default `default`).
    pub namespace: Option<String>,
    /// The job's unique ID (the label of the `job` block).
    #[serde(rename = "ID")]
    pub id: String,
    /// Display name (defaults to the ID).
    pub name: String,
    /// `service` (default), `batch`, `system` or `sysbatch`.
    #[serde(rename = "Type")]
    pub job_type: Option<String>,
    /// Scheduling priority, 1 to 100 (default 50).
    pub priority: Option<i32>,
    /// Place all allocations or none.
    pub all_at_once: Option<bool>,
    /// Datacenters the job may run in; globs allowed (default `["*"]`).
    pub datacenters: Vec<String>,
    /// Node pool (default `default`).
    pub node_pool: Option<String>,
    /// Constraints for every group.
    pub constraints: Vec<Constraint>,
    /// Preferences for every group.
    pub affinities: Vec<Affinity>,
    /// The task groups.
    pub task_groups: Vec<TaskGroup>,
    /// Default rolling update settings of the groups.
    pub update: Option<UpdateStrategy>,
    /// Multi-region deployment settings.
    pub multiregion: Option<Multiregion>,
    /// Spread rules for every group.
    pub spreads: Vec<Spread>,
    /// Run on a schedule.
    pub periodic: Option<PeriodicConfig>,
    /// The job is a template dispatched with a payload.
    pub parameterized_job: Option<ParameterizedJobConfig>,
    /// The job was dispatched from a parameterized job.
    pub dispatched: bool,
    /// Idempotency token of a dispatch.
    pub dispatch_idempotency_token: String,
    /// Dispatch payload (base64 in JSON).
    pub payload: Option<String>,
    /// Default rescheduling of the groups.
    pub reschedule: Option<ReschedulePolicy>,
    /// Default migration settings of the groups.
    pub migrate: Option<MigrateStrategy>,
    /// Metadata.
    pub meta: BTreeMap<String, String>,
    /// Consul token used to submit (never returned).
    pub consul_token: String,
    /// Consul namespace.
    pub consul_namespace: String,
    /// Vault token used to submit (never returned).
    pub vault_token: String,
    /// Vault namespace.
    pub vault_namespace: String,
    /// ID of the token that submitted the job.
    #[serde(rename = "NomadTokenID")]
    pub nomad_token_id: String,
    /// Marked for stopping.
    pub stop: Option<bool>,
    /// The parent of a periodic or dispatched child.
    #[serde(rename = "ParentID")]
    pub parent_id: String,
    /// `pending`, `running` or `dead`, set by the server.
    pub status: String,
    /// Why the status is what it is.
    pub status_description: String,
    /// The version is known good.
    pub stable: Option<bool>,
    /// The job version, set by the server.
    pub version: Option<u64>,
    /// When this version was submitted (Unix nanoseconds).
    pub submit_time: Option<i64>,
    /// Raft index at creation.
    pub create_index: Option<u64>,
    /// Raft index of the last change.
    pub modify_index: Option<u64>,
    /// Raft index of the last change to the specification.
    pub job_modify_index: Option<u64>,
    /// Presentation settings (`ui` block).
    #[serde(rename = "UI")]
    pub ui: Option<FreeForm>,
}

impl Job {
    /// The job type, `service` when unset; `None` when it is not a known type.
    pub fn kind(&self) -> Option<JobType> {
        match self.job_type.as_deref() {
            None | Some("") => Some(JobType::Service),
            Some(t) => JobType::parse(t),
        }
    }

    /// The group named `name`.
    pub fn group(&self, name: &str) -> Option<&TaskGroup> {
        self.task_groups.iter().find(|g| g.name == name)
    }

    /// The namespace, `default` when unset.
    pub fn namespace_or_default(&self) -> &str {
        self.namespace
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
    }

    /// The priority, 50 when unset.
    pub fn priority_or_default(&self) -> i32 {
        self.priority.unwrap_or(50)
    }

    /// True for a periodic or parameterized job that only launches children.
    pub fn is_parent(&self) -> bool {
        self.periodic
            .as_ref()
            .is_some_and(|p| p.enabled != Some(false))
            || (self.parameterized_job.is_some() && !self.dispatched)
    }
}

/// Rolling update settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateStrategy {
    /// Deprecated delay between updates.
    pub stagger: Option<Duration>,
    /// Allocations updated at once (default 1; 0 disables deployments).
    pub max_parallel: Option<i32>,
    /// `checks` (default), `task_states` or `manual`.
    pub health_check: Option<String>,
    /// How long an allocation must be healthy (default 10s).
    pub min_healthy_time: Option<Duration>,
    /// How long an allocation has to become healthy (default 5m).
    pub healthy_deadline: Option<Duration>,
    /// How long the deployment may go without progress (default 10m).
    pub progress_deadline: Option<Duration>,
    /// Canaries placed before the rest.
    pub canary: Option<i32>,
    /// Revert to the last stable version on failure.
    pub auto_revert: Option<bool>,
    /// Promote canaries once healthy.
    pub auto_promote: Option<bool>,
}

/// How allocations move off draining nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MigrateStrategy {
    /// Allocations migrated at once (default 1).
    pub max_parallel: Option<i32>,
    /// `checks` (default) or `task_states`.
    pub health_check: Option<String>,
    /// How long a replacement must be healthy (default 10s).
    pub min_healthy_time: Option<Duration>,
    /// How long a replacement has to become healthy (default 5m).
    pub healthy_deadline: Option<Duration>,
}

/// Rescheduling of failed allocations onto other nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReschedulePolicy {
    /// Attempts within `interval`.
    pub attempts: Option<i32>,
    /// The window attempts are counted in.
    pub interval: Option<Duration>,
    /// Delay before the first reschedule.
    pub delay: Option<Duration>,
    /// `constant`, `exponential` or `fibonacci`.
    pub delay_function: Option<String>,
    /// The largest delay.
    pub max_delay: Option<Duration>,
    /// Reschedule without limit.
    pub unlimited: Option<bool>,
}

/// Restarting failed tasks in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// Restarts allowed within `interval`.
    pub attempts: Option<i32>,
    /// The window restarts are counted in.
    pub interval: Option<Duration>,
    /// Delay before a restart.
    pub delay: Option<Duration>,
    /// `fail` or `delay` once attempts are used up.
    pub mode: Option<String>,
    /// Re-render templates on restart.
    pub render_templates: Option<bool>,
}

/// Periodic launch settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PeriodicConfig {
    /// Launch children (default true).
    pub enabled: Option<bool>,
    /// One cron expression.
    pub spec: Option<String>,
    /// Several cron expressions.
    pub specs: Vec<String>,
    /// `cron`.
    pub spec_type: Option<String>,
    /// Skip a launch while a child still runs.
    pub prohibit_overlap: Option<bool>,
    /// The time zone of the expressions (default UTC).
    pub time_zone: Option<String>,
}

/// The job is dispatched with a payload and metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ParameterizedJobConfig {
    /// `optional` (default), `required` or `forbidden`.
    pub payload: String,
    /// Metadata keys a dispatch must give.
    pub meta_required: Vec<String>,
    /// Metadata keys a dispatch may give.
    pub meta_optional: Vec<String>,
}

/// Multi-region deployment settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Multiregion {
    /// How regions are rolled out.
    pub strategy: Option<MultiregionStrategy>,
    /// The regions, in order.
    pub regions: Vec<MultiregionRegion>,
}

/// Roll-out across regions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MultiregionStrategy {
    /// Regions updated at once.
    pub max_parallel: i32,
    /// `fail_all`, `fail_local` or empty.
    pub on_failure: String,
}

/// One region of a multi-region job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MultiregionRegion {
    /// Region name.
    pub name: String,
    /// Count for every group in the region.
    pub count: Option<i32>,
    /// Datacenters in the region.
    pub datacenters: Vec<String>,
    /// Node pool in the region.
    pub node_pool: String,
    /// Metadata for the region.
    pub meta: BTreeMap<String, String>,
}
