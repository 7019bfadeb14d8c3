//! The cluster-wide scheduler configuration (`/v1/operator/scheduler/configuration`).

use serde::{Deserialize, Serialize};

/// How schedulers place work, set by operators for the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SchedulerConfiguration {
    /// `binpack` (default) or `spread`.
    pub scheduler_algorithm: String,
    /// Which schedulers may preempt lower-priority allocations.
    pub preemption_config: PreemptionConfig,
    /// Allow tasks to use `memory_max` above their reservation.
    pub memory_oversubscription_enabled: bool,
    /// Refuse job registrations (for maintenance).
    pub reject_job_registration: bool,
    /// Stop handing evaluations to schedulers.
    pub pause_eval_broker: bool,
    /// Raft index at creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
}

impl Default for SchedulerConfiguration {
    fn default() -> Self {
        SchedulerConfiguration {
            scheduler_algorithm: SCHEDULER_ALGORITHM_BINPACK.to_string(),
            preemption_config: PreemptionConfig::default(),
            memory_oversubscription_enabled: false,
            reject_job_registration: false,
            pause_eval_broker: false,
            create_index: 0,
            modify_index: 0,
        }
    }
}

/// Pack allocations onto the fullest nodes that fit.
pub const SCHEDULER_ALGORITHM_BINPACK: &str = "binpack";
/// Place allocations on the emptiest nodes.
pub const SCHEDULER_ALGORITHM_SPREAD: &str = "spread";

impl SchedulerConfiguration {
    /// True when the `spread` algorithm is selected.
    pub fn spread_algorithm(&self) -> bool {
        self.scheduler_algorithm == SCHEDULER_ALGORITHM_SPREAD
    }
}

/// Preemption switches per scheduler type. Nomad enables it for system jobs only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PreemptionConfig {
    /// System jobs may preempt (default true).
    pub system_scheduler_enabled: bool,
    /// Sysbatch jobs may preempt (default true).
    pub sys_batch_scheduler_enabled: bool,
    /// Batch jobs may preempt (default false).
    pub batch_scheduler_enabled: bool,
    /// Service jobs may preempt (default false).
    pub service_scheduler_enabled: bool,
}

impl Default for PreemptionConfig {
    fn default() -> Self {
        PreemptionConfig {
            system_scheduler_enabled: true,
            sys_batch_scheduler_enabled: true,
            batch_scheduler_enabled: false,
            service_scheduler_enabled: false,
        }
    }
}
