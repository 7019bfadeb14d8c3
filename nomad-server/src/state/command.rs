//! The commands of the replicated log: every change to the state store is one of these,
//! applied in log order by every server. Applying is deterministic: anything that varies
//! (times, IDs) is decided by the leader and carried in the command.

use std::sync::Arc;

use nomad_core::job::Job;
use nomad_core::structs::{
    Allocation, Deployment, DeploymentStatusUpdate, DrainStrategy, Evaluation, Node,
    SchedulerConfiguration, ServiceRegistration,
};
use serde::{Deserialize, Serialize};

/// One entry of the replicated log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "Type")]
pub enum Command {
    /// Registers a job version and the evaluation it triggers.
    UpsertJob {
        /// The job, canonicalized and validated.
        job: Box<Job>,
        /// The evaluation to create, if any (none for periodic or parameterized parents).
        eval: Option<Evaluation>,
        /// Submission time (Unix nanoseconds).
        submit_time: i64,
    },
    /// Stops (or, with `purge`, removes) a job.
    DeregisterJob {
        /// Namespace.
        namespace: String,
        /// Job ID.
        job_id: String,
        /// Remove the job and its versions instead of marking it stopped.
        purge: bool,
        /// The evaluation that stops its allocations.
        eval: Option<Evaluation>,
        /// Time of the change (Unix nanoseconds).
        submit_time: i64,
    },
    /// Registers or re-registers a node.
    UpsertNode {
        /// The node as its client describes it.
        node: Box<Node>,
    },
    /// Changes a node's status (heartbeat missed, back up).
    UpdateNodeStatus {
        /// Node ID.
        node_id: String,
        /// New status.
        status: String,
        /// Time of the change (Unix nanoseconds).
        updated_at: i64,
        /// Evaluations for the jobs affected.
        evals: Vec<Evaluation>,
    },
    /// Starts or stops draining a node.
    UpdateNodeDrain {
        /// Node ID.
        node_id: String,
        /// The drain, or `None` to stop draining.
        strategy: Option<DrainStrategy>,
        /// Make the node eligible again when the drain stops.
        mark_eligible: bool,
        /// Time of the change (Unix nanoseconds).
        updated_at: i64,
        /// Evaluations for the jobs whose allocations migrate.
        evals: Vec<Evaluation>,
    },
    /// Changes a node's scheduling eligibility.
    UpdateNodeEligibility {
        /// Node ID.
        node_id: String,
        /// `eligible` or `ineligible`.
        eligibility: String,
        /// Time of the change (Unix nanoseconds).
        updated_at: i64,
        /// Evaluations created by the change.
        evals: Vec<Evaluation>,
    },
    /// Removes a node.
    DeleteNode {
        /// Node ID.
        node_id: String,
    },
    /// Creates or updates evaluations.
    UpsertEvals {
        /// The evaluations.
        evals: Vec<Evaluation>,
    },
    /// Commits what the plan applier accepted of a plan.
    ApplyPlan {
        /// The evaluation the plan came from.
        eval_id: String,
        /// The job version placements run.
        job: Option<Arc<Job>>,
        /// Allocations stopped, evicted or preempted.
        stops: Vec<Arc<Allocation>>,
        /// Allocations placed or updated in place, shared with the plan they came from
        /// (written to the log in a compact form, see `placed_codec`).
        #[serde(with = "super::placed_codec")]
        placed: Vec<Arc<Allocation>>,
        /// A deployment created or updated.
        deployment: Option<Deployment>,
        /// Status changes of deployments.
        deployment_updates: Vec<DeploymentStatusUpdate>,
        /// Commit time (Unix nanoseconds).
        time: i64,
        /// Told the entry's index once the entry is committed, before it is applied (not
        /// written to the log: an entry read back from the file has none).
        #[serde(skip)]
        committed: CommitSignal,
    },
    /// Allocation status pushed by a client.
    ClientUpdateAllocs {
        /// The allocations with their client-side fields.
        allocs: Vec<Allocation>,
        /// Evaluations created because allocations failed.
        evals: Vec<Evaluation>,
        /// Time of the update (Unix nanoseconds).
        time: i64,
    },
    /// Registers native service instances.
    UpsertServices {
        /// The registrations.
        services: Vec<ServiceRegistration>,
    },
    /// Removes native service instances by ID.
    DeleteServices {
        /// Namespace.
        namespace: String,
        /// Registration IDs.
        ids: Vec<String>,
    },
    /// Removes every native service instance of these allocations.
    DeleteServicesByAlloc {
        /// Allocation IDs.
        alloc_ids: Vec<String>,
    },
    /// Replaces the scheduler configuration.
    SetSchedulerConfig {
        /// The configuration.
        config: SchedulerConfiguration,
    },
    /// Does nothing: written by a new leader so that it knows its state is current.
    Noop,
    /// Several commands written together as one log entry (writes that queued while an
    /// entry was in flight), applied in order at the entry's index; each one's effects
    /// come back in [`ApplyEffects::batch`](crate::ApplyEffects::batch).
    Batch {
        /// The commands, in the order they were submitted.
        commands: Vec<Command>,
    },
    /// Changes a deployment's status (a decision of the deployment watcher or of an
    /// operator); a `successful` status marks the deployed job version stable.
    UpdateDeploymentStatus {
        /// The deployment, its new status and why.
        update: DeploymentStatusUpdate,
        /// A job version to register (an automatic revert), if any.
        job: Option<Box<Job>>,
        /// The evaluation to create, if any.
        eval: Option<Evaluation>,
        /// Time of the change (Unix nanoseconds).
        time: i64,
    },
    /// Promotes a deployment's canaries.
    PromoteDeployment {
        /// The deployment.
        deployment_id: String,
        /// Promote every group.
        all: bool,
        /// The groups to promote when not `all`.
        groups: Vec<String>,
        /// The evaluation that places the rest of the update.
        eval: Option<Evaluation>,
        /// Time of the change (Unix nanoseconds).
        time: i64,
    },
    /// Sets the deployment health of allocations by hand (`allocation-health`).
    SetDeploymentAllocHealth {
        /// The deployment the allocations belong to.
        deployment_id: String,
        /// Allocations to mark healthy.
        healthy: Vec<String>,
        /// Allocations to mark unhealthy.
        unhealthy: Vec<String>,
        /// Time of the change (Unix nanoseconds).
        time: i64,
    },
}

/// A one-time callback told the log index of the entry carrying its command once that
/// entry is committed, before the state applies it. It travels with the command in memory
/// only: it is not serialised, compares equal to any other, and a clone fires the same
/// callback (at most once in all).
#[derive(Clone, Default)]
pub struct CommitSignal(Option<Arc<std::sync::Mutex<Option<CommitCallback>>>>);

/// What a [`CommitSignal`] calls with the entry's index.
pub type CommitCallback = Box<dyn FnOnce(u64) + Send>;

impl CommitSignal {
    /// A signal calling `f` with the index.
    pub fn new(f: impl FnOnce(u64) + Send + 'static) -> Self {
        CommitSignal(Some(Arc::new(std::sync::Mutex::new(Some(Box::new(f))))))
    }

    /// Calls the callback with `index`, if it has not been called yet.
    pub fn fire(&self, index: u64) {
        let Some(slot) = &self.0 else { return };
        let f = match slot.lock() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(f) = f {
            f(index);
        }
    }
}

impl std::fmt::Debug for CommitSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "CommitSignal"
        } else {
            "None"
        })
    }
}

impl PartialEq for CommitSignal {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Command {
    /// Fires the [`CommitSignal`]s the command carries (a batch's included) with `index`,
    /// the index of its committed entry.
    pub fn signal_committed(&self, index: u64) {
        match self {
            Command::ApplyPlan { committed, .. } => committed.fire(index),
            Command::Batch { commands } => {
                for c in commands {
                    c.signal_committed(index);
                }
            }
            _ => {}
        }
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::UpsertJob { .. } => "upsert_job",
            Command::DeregisterJob { .. } => "deregister_job",
            Command::UpsertNode { .. } => "upsert_node",
            Command::UpdateNodeStatus { .. } => "update_node_status",
            Command::UpdateNodeDrain { .. } => "update_node_drain",
            Command::UpdateNodeEligibility { .. } => "update_node_eligibility",
            Command::DeleteNode { .. } => "delete_node",
            Command::UpsertEvals { .. } => "upsert_evals",
            Command::ApplyPlan { .. } => "apply_plan",
            Command::ClientUpdateAllocs { .. } => "client_update_allocs",
            Command::UpsertServices { .. } => "upsert_services",
            Command::DeleteServices { .. } => "delete_services",
            Command::DeleteServicesByAlloc { .. } => "delete_services_by_alloc",
            Command::SetSchedulerConfig { .. } => "set_scheduler_config",
            Command::Noop => "noop",
            Command::Batch { .. } => "batch",
            Command::UpdateDeploymentStatus { .. } => "update_deployment_status",
            Command::PromoteDeployment { .. } => "promote_deployment",
            Command::SetDeploymentAllocHealth { .. } => "set_deployment_alloc_health",
        }
    }
}
