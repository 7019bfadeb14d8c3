//! The deployment watcher: follows every running deployment on the leader, and decides from
//! its groups' counts (kept by the state store from allocation health) whether it succeeded,
//! failed (reverting to the latest stable job version when asked), needs its canaries
//! promoted, or needs an evaluation to place its next `max_parallel` batch. Every decision
//! is a command through the replicated log, so a restarted or new leader picks up where the
//! last one stopped. The operator verbs of the deployment API (promote, fail, pause, manual
//! allocation health) live here too.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use nomad_core::job::Job;
use nomad_core::structs::{status, Deployment, DeploymentStatusUpdate, Evaluation};

use crate::state::{Command, StateSnapshot, Table};
use crate::{new_id, now_nanos, Server, ServerError};

/// What triggers the evaluations the watcher creates.
pub const TRIGGER_DEPLOYMENT_WATCHER: &str = "deployment-watcher";

/// Status descriptions, as Nomad words them.
pub mod desc {
    /// A running deployment.
    pub const RUNNING: &str = "Deployment is running";
    /// Canaries wait for an operator's promotion.
    pub const NEEDS_PROMOTION: &str = "Deployment is running but requires manual promotion";
    /// Canaries will be promoted once healthy.
    pub const AUTO_PROMOTION: &str = "Deployment is running pending automatic promotion";
    /// Paused by an operator.
    pub const PAUSED: &str = "Deployment is paused";
    /// Every group reached its count of healthy allocations.
    pub const SUCCESSFUL: &str = "Deployment completed successfully";
    /// The job was stopped.
    pub const STOPPED_JOB: &str = "Cancelled because job is stopped";
    /// A newer job version replaced the one deployed.
    pub const NEWER_JOB: &str = "Cancelled due to newer version of job";
    /// An allocation became unhealthy.
    pub const FAILED_ALLOCATIONS: &str = "Failed due to unhealthy allocations";
    /// No allocation became healthy within a group's `progress_deadline`.
    pub const PROGRESS_DEADLINE: &str = "Failed due to progress deadline";
    /// An operator failed it.
    pub const FAILED_BY_USER: &str = "Deployment marked as failed";
}

/// What the watcher does about one running deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Nothing yet: allocations are still becoming healthy.
    Wait,
    /// Cancel it, with this description.
    Cancel(&'static str),
    /// Fail it, with this description (before any revert is added).
    Fail(&'static str),
    /// Promote the canaries of every group.
    Promote,
    /// Mark it successful.
    Succeed,
}

/// True when a group has all the healthy allocations it wants and its canaries (if any)
/// are promoted.
fn group_done(g: &nomad_core::structs::DeploymentState) -> bool {
    g.healthy_allocs >= g.desired_total && (g.desired_canaries == 0 || g.promoted)
}

/// The watcher's decision for a running deployment of `job` (its current version), given
/// how many canaries of each group are healthy and the time now (Unix nanoseconds).
pub(crate) fn decide(
    d: &Deployment,
    job: Option<&Job>,
    healthy_canaries: &BTreeMap<String, u32>,
    now: i64,
) -> Decision {
    let Some(job) = job.filter(|j| j.stop != Some(true)) else {
        return Decision::Cancel(desc::STOPPED_JOB);
    };
    if job.version.unwrap_or(0) > d.job_version {
        return Decision::Cancel(desc::NEWER_JOB);
    }
    if d.task_groups.values().any(|g| g.unhealthy_allocs > 0) {
        return Decision::Fail(desc::FAILED_ALLOCATIONS);
    }
    let canaries_ready = |name: &str, g: &nomad_core::structs::DeploymentState| {
        healthy_canaries.get(name).copied().unwrap_or(0) >= g.desired_canaries
    };
    for (name, g) in &d.task_groups {
        let waiting_promotion = g.desired_canaries > 0 && !g.promoted && canaries_ready(name, g);
        if g.require_progress_by > 0
            && now > g.require_progress_by
            && !group_done(g)
            && !waiting_promotion
        {
            return Decision::Fail(desc::PROGRESS_DEADLINE);
        }
    }
    let unpromoted: Vec<(&String, _)> = d
        .task_groups
        .iter()
        .filter(|(_, g)| g.desired_canaries > 0 && !g.promoted)
        .collect();
    if !unpromoted.is_empty() {
        let all_auto = unpromoted.iter().all(|(_, g)| g.auto_promote);
        let all_ready = unpromoted.iter().all(|(n, g)| canaries_ready(n, g));
        return if all_auto && all_ready {
            Decision::Promote
        } else {
            Decision::Wait
        };
    }
    if !d.task_groups.is_empty() && d.task_groups.values().all(group_done) {
        return Decision::Succeed;
    }
    Decision::Wait
}

/// True when two versions of a job have the same specification (everything the server
/// sets on registration aside).
pub(crate) fn same_spec(a: &Job, b: &Job) -> bool {
    let strip = |j: &Job| {
        let mut j = j.clone();
        j.version = None;
        j.modify_index = None;
        j.job_modify_index = None;
        j.create_index = None;
        j.submit_time = None;
        j.stable = None;
        j.stop = None;
        j.status = String::new();
        j.status_description = String::new();
        j
    };
    strip(a) == strip(b)
}

/// The full description of a failed deployment and the job version to register, if the
/// deployment reverts: the latest stable version older than the deployed one, unless the
/// current job already has its specification. `versions` are newest first.
pub(crate) fn revert_plan(
    d: &Deployment,
    base: &str,
    current: Option<&Job>,
    versions: &[Arc<Job>],
) -> (String, Option<Job>) {
    if !d.task_groups.values().any(|g| g.auto_revert) {
        return (base.to_string(), None);
    }
    let target = versions
        .iter()
        .find(|v| v.stable == Some(true) && v.version.unwrap_or(0) < d.job_version);
    match target {
        None => (
            format!("{base} - no stable job version to auto revert to"),
            None,
        ),
        Some(t) if current.is_some_and(|c| same_spec(c, t)) => (
            format!(
                "{base} - not rolling back to stable job version {} as current job has same specification",
                t.version.unwrap_or(0)
            ),
            None,
        ),
        Some(t) => (
            format!(
                "{base} - rolling back to job version {}",
                t.version.unwrap_or(0)
            ),
            Some(t.as_ref().clone()),
        ),
    }
}

/// Healthy canaries of a deployment, by group.
fn healthy_canaries(snap: &StateSnapshot, d: &Deployment) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for (name, g) in &d.task_groups {
        let n = g
            .placed_canaries
            .iter()
            .filter_map(|id| snap.alloc(id))
            .filter(|a| a.deployment_status.as_ref().and_then(|s| s.healthy) == Some(true))
            .count();
        out.insert(name.clone(), n as u32);
    }
    out
}

/// An evaluation of `job` for deployment `deployment_id`.
fn deployment_eval(job: &Job, deployment_id: &str) -> Evaluation {
    let now = now_nanos();
    Evaluation {
        id: new_id(),
        namespace: job.namespace_or_default().to_string(),
        priority: job.priority_or_default(),
        eval_type: job.job_type.clone().unwrap_or_else(|| "service".into()),
        triggered_by: TRIGGER_DEPLOYMENT_WATCHER.into(),
        job_id: job.id.clone(),
        deployment_id: deployment_id.to_string(),
        status: status::EVAL_PENDING.into(),
        create_time: now,
        modify_time: now,
        ..Evaluation::default()
    }
}

/// Unix nanoseconds as RFC 3339 in UTC, seconds precision.
pub(crate) fn rfc3339(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// What a deployment API write returns (Nomad's `DeploymentUpdateResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentUpdate {
    /// The evaluation created, if any.
    pub eval_id: String,
    /// The index the evaluation was created at (0 without one).
    pub eval_create_index: u64,
    /// The deployment's modify index after the write.
    pub deployment_modify_index: u64,
    /// The job version registered by a revert, if any.
    pub reverted_job_version: Option<u64>,
    /// The index of the write.
    pub index: u64,
}

impl Server {
    /// Follows running deployments until the server shuts down; acts only while leading.
    pub(crate) async fn run_deployment_watcher(self) {
        let mut stop = self.shutdown_signal();
        let tick = self
            .inner
            .config
            .maintenance_interval
            .clamp(Duration::from_millis(100), Duration::from_secs(1));
        let tables = [Table::Deployments, Table::Jobs];
        // Healthy allocations of each running deployment when last looked at: a change
        // means the scheduler may place the next batch.
        let mut seen: HashMap<String, u32> = HashMap::new();
        let mut min_index = 0;
        loop {
            let deadline = tokio::time::Instant::now() + tick;
            let snap = tokio::select! {
                s = self.inner.state.watch_tables(&tables, min_index, deadline) => s,
                _ = stop.changed() => return,
            };
            if *stop.borrow() {
                return;
            }
            min_index = snap.tables_index(&tables).max(1);
            if !self.inner.log.is_leader() {
                seen.clear();
                continue;
            }
            self.watch_deployments(&snap, &mut seen).await;
        }
    }

    /// One pass of the watcher over the running deployments of `snap`.
    async fn watch_deployments(&self, snap: &StateSnapshot, seen: &mut HashMap<String, u32>) {
        let mut running: Vec<Arc<Deployment>> =
            snap.deployments().filter(|d| d.active()).cloned().collect();
        running.sort_by_key(|d| d.create_index);
        seen.retain(|id, _| running.iter().any(|d| &d.id == id));
        let now = now_nanos();
        for d in running
            .iter()
            .filter(|d| d.status == status::DEPLOYMENT_RUNNING)
        {
            let job = snap.job(&d.namespace, &d.job_id);
            let decision = decide(d, job.as_deref(), &healthy_canaries(snap, d), now);
            let result = match decision {
                Decision::Wait => {
                    let healthy: u32 = d.task_groups.values().map(|g| g.healthy_allocs).sum();
                    let changed = match seen.insert(d.id.clone(), healthy) {
                        Some(prev) => prev != healthy,
                        None => healthy > 0,
                    };
                    // Only a group with allocations still to replace needs the scheduler.
                    let to_place = d
                        .task_groups
                        .values()
                        .any(|g| g.placed_allocs < g.desired_total);
                    match job.filter(|_| changed && to_place) {
                        Some(job) => {
                            let eval = deployment_eval(&job, &d.id);
                            self.apply(Command::UpsertEvals { evals: vec![eval] })
                                .await
                                .map(|_| ())
                        }
                        None => Ok(()),
                    }
                }
                Decision::Cancel(why) => self
                    .set_deployment_status(d, status::DEPLOYMENT_CANCELLED, why, None, None)
                    .await
                    .map(|_| ()),
                Decision::Succeed => self
                    .set_deployment_status(
                        d,
                        status::DEPLOYMENT_SUCCESSFUL,
                        desc::SUCCESSFUL,
                        None,
                        None,
                    )
                    .await
                    .map(|_| ()),
                Decision::Fail(base) => self.fail_with_revert(snap, d, base).await.map(|_| ()),
                Decision::Promote => match job {
                    Some(job) => self
                        .apply(Command::PromoteDeployment {
                            deployment_id: d.id.clone(),
                            all: true,
                            groups: Vec::new(),
                            eval: Some(deployment_eval(&job, &d.id)),
                            time: now,
                        })
                        .await
                        .map(|_| ()),
                    None => Ok(()),
                },
            };
            if let Err(e) = result {
                tracing::warn!(deployment = %d.id, error = %e, "deployment watcher: write failed");
            }
        }
    }

    /// Writes a deployment's new status, with a job to register and an evaluation.
    async fn set_deployment_status(
        &self,
        d: &Deployment,
        st: &str,
        why: &str,
        job: Option<Job>,
        eval: Option<Evaluation>,
    ) -> Result<DeploymentUpdate, ServerError> {
        let eval_id = eval.as_ref().map(|e| e.id.clone()).unwrap_or_default();
        let reverted_job_version = job.as_ref().and_then(|j| j.version);
        let applied = self
            .apply(Command::UpdateDeploymentStatus {
                update: DeploymentStatusUpdate {
                    deployment_id: d.id.clone(),
                    status: st.to_string(),
                    status_description: why.to_string(),
                },
                job: job.map(Box::new),
                eval,
                time: now_nanos(),
            })
            .await?;
        if st != status::DEPLOYMENT_RUNNING {
            tracing::info!(deployment = %d.id, job = %d.job_id, status = st, "{why}");
        }
        Ok(DeploymentUpdate {
            eval_create_index: if eval_id.is_empty() { 0 } else { applied.index },
            eval_id,
            deployment_modify_index: applied.index,
            reverted_job_version,
            index: applied.index,
        })
    }

    /// Fails a deployment, reverting its job to the latest stable version when a group asks
    /// for `auto_revert`.
    async fn fail_with_revert(
        &self,
        snap: &StateSnapshot,
        d: &Deployment,
        base: &str,
    ) -> Result<DeploymentUpdate, ServerError> {
        let current = snap.job(&d.namespace, &d.job_id);
        let versions = snap.job_versions(&d.namespace, &d.job_id);
        let (why, revert) = revert_plan(d, base, current.as_deref(), &versions);
        let eval = match (&revert, &current) {
            (Some(_), Some(c)) => Some(deployment_eval(c, &d.id)),
            _ => None,
        };
        self.set_deployment_status(d, status::DEPLOYMENT_FAILED, &why, revert, eval)
            .await
    }

    /// The deployment `id` while it is active, or the error the API returns.
    fn active_deployment(&self, id: &str, verb: &str) -> Result<Arc<Deployment>, ServerError> {
        let d = self
            .snapshot()
            .deployment(id)
            .ok_or_else(|| ServerError::NotFound(format!("deployment {id:?}")))?;
        if !d.active() {
            return Err(ServerError::BadRequest(format!(
                "can't {verb} terminal deployment {id:?} (status {:?})",
                d.status
            )));
        }
        Ok(d)
    }

    /// Promotes the canaries of `groups` (or of every group with `all`) of a deployment;
    /// refused unless each group has all its canaries healthy.
    pub async fn promote_deployment(
        &self,
        id: &str,
        all: bool,
        groups: &[String],
    ) -> Result<DeploymentUpdate, ServerError> {
        let d = self.active_deployment(id, "promote")?;
        if !all && groups.is_empty() {
            return Err(ServerError::BadRequest(
                "promotion needs All or at least one group in Groups".into(),
            ));
        }
        if d.status == status::DEPLOYMENT_PAUSED {
            return Err(ServerError::BadRequest(format!(
                "deployment {id:?} is paused: resume it before promoting"
            )));
        }
        for g in groups {
            if !d.task_groups.contains_key(g) {
                return Err(ServerError::BadRequest(format!(
                    "deployment {id:?} has no task group {g:?}"
                )));
            }
        }
        let snap = self.snapshot();
        let healthy = healthy_canaries(&snap, &d);
        let chosen: Vec<(&String, _)> = d
            .task_groups
            .iter()
            .filter(|(n, g)| g.desired_canaries > 0 && (all || groups.contains(n)))
            .collect();
        if chosen.is_empty() {
            return Err(ServerError::BadRequest(format!(
                "deployment {id:?} has no canaries to promote"
            )));
        }
        for (name, g) in &chosen {
            let h = healthy.get(*name).copied().unwrap_or(0);
            if h < g.desired_canaries {
                return Err(ServerError::BadRequest(format!(
                    "Task group {name:?} has {h}/{} healthy allocations",
                    g.desired_canaries
                )));
            }
        }
        let job = snap
            .job(&d.namespace, &d.job_id)
            .ok_or_else(|| ServerError::NotFound(format!("job {:?}", d.job_id)))?;
        let eval = deployment_eval(&job, &d.id);
        let eval_id = eval.id.clone();
        let applied = self
            .apply(Command::PromoteDeployment {
                deployment_id: d.id.clone(),
                all,
                groups: groups.to_vec(),
                eval: Some(eval),
                time: now_nanos(),
            })
            .await?;
        Ok(DeploymentUpdate {
            eval_id,
            eval_create_index: applied.index,
            deployment_modify_index: applied.index,
            reverted_job_version: None,
            index: applied.index,
        })
    }

    /// Fails a deployment by hand, reverting when a group asks for `auto_revert`.
    pub async fn fail_deployment(&self, id: &str) -> Result<DeploymentUpdate, ServerError> {
        let d = self.active_deployment(id, "fail")?;
        let snap = self.snapshot();
        self.fail_with_revert(&snap, &d, desc::FAILED_BY_USER).await
    }

    /// Pauses a deployment (no further batches are placed) or resumes it.
    pub async fn pause_deployment(
        &self,
        id: &str,
        pause: bool,
    ) -> Result<DeploymentUpdate, ServerError> {
        let d = self.active_deployment(id, if pause { "pause" } else { "resume" })?;
        if pause {
            return self
                .set_deployment_status(&d, status::DEPLOYMENT_PAUSED, desc::PAUSED, None, None)
                .await;
        }
        let waiting: Vec<_> = d
            .task_groups
            .values()
            .filter(|g| g.desired_canaries > 0 && !g.promoted)
            .collect();
        let why = if waiting.is_empty() {
            desc::RUNNING
        } else if waiting.iter().all(|g| g.auto_promote) {
            desc::AUTO_PROMOTION
        } else {
            desc::NEEDS_PROMOTION
        };
        let eval = self
            .snapshot()
            .job(&d.namespace, &d.job_id)
            .map(|j| deployment_eval(&j, &d.id));
        self.set_deployment_status(&d, status::DEPLOYMENT_RUNNING, why, None, eval)
            .await
    }

    /// Sets the health of a deployment's allocations by hand; the watcher then acts on it
    /// as on health a client reported.
    pub async fn set_deployment_alloc_health(
        &self,
        id: &str,
        healthy: Vec<String>,
        unhealthy: Vec<String>,
    ) -> Result<DeploymentUpdate, ServerError> {
        let d = self.active_deployment(id, "set allocation health in")?;
        if healthy.is_empty() && unhealthy.is_empty() {
            return Err(ServerError::BadRequest(
                "must specify at least one healthy or unhealthy allocation ID".into(),
            ));
        }
        let snap = self.snapshot();
        for a in healthy.iter().chain(&unhealthy) {
            if snap.alloc(a).is_none_or(|x| x.deployment_id != d.id) {
                return Err(ServerError::BadRequest(format!(
                    "allocation {a:?} is not part of deployment {id:?}"
                )));
            }
        }
        let applied = self
            .apply(Command::SetDeploymentAllocHealth {
                deployment_id: d.id.clone(),
                healthy,
                unhealthy,
                time: now_nanos(),
            })
            .await?;
        Ok(DeploymentUpdate {
            deployment_modify_index: applied.index,
            index: applied.index,
            ..DeploymentUpdate::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomad_core::structs::DeploymentState;

    fn dep(groups: &[(&str, DeploymentState)]) -> Deployment {
        Deployment {
            id: "d1".into(),
            job_id: "web".into(),
            job_version: 1,
            status: status::DEPLOYMENT_RUNNING.into(),
            task_groups: groups
                .iter()
                .map(|(n, g)| (n.to_string(), g.clone()))
                .collect(),
            ..Deployment::default()
        }
    }

    fn job(version: u64) -> Job {
        let mut j = crate::sim::sim_job("web", 3);
        j.version = Some(version);
        j
    }

    fn state(total: u32, healthy: u32) -> DeploymentState {
        DeploymentState {
            desired_total: total,
            placed_allocs: total,
            healthy_allocs: healthy,
            ..DeploymentState::default()
        }
    }

    #[test]
    fn waits_until_every_group_is_healthy_then_succeeds() {
        let none = BTreeMap::new();
        let d = dep(&[("a", state(3, 3)), ("b", state(2, 1))]);
        assert_eq!(decide(&d, Some(&job(1)), &none, 0), Decision::Wait);
        let d = dep(&[("a", state(3, 3)), ("b", state(2, 2))]);
        assert_eq!(decide(&d, Some(&job(1)), &none, 0), Decision::Succeed);
    }

    #[test]
    fn an_unhealthy_allocation_fails_the_deployment() {
        let mut g = state(3, 2);
        g.unhealthy_allocs = 1;
        let d = dep(&[("a", g)]);
        assert_eq!(
            decide(&d, Some(&job(1)), &BTreeMap::new(), 0),
            Decision::Fail(desc::FAILED_ALLOCATIONS)
        );
    }

    #[test]
    fn a_newer_or_stopped_job_cancels() {
        let d = dep(&[("a", state(3, 0))]);
        let none = BTreeMap::new();
        assert_eq!(
            decide(&d, Some(&job(2)), &none, 0),
            Decision::Cancel(desc::NEWER_JOB)
        );
        let mut stopped = job(1);
        stopped.stop = Some(true);
        assert_eq!(
            decide(&d, Some(&stopped), &none, 0),
            Decision::Cancel(desc::STOPPED_JOB)
        );
        assert_eq!(
            decide(&d, None, &none, 0),
            Decision::Cancel(desc::STOPPED_JOB)
        );
    }

    #[test]
    fn the_progress_deadline_fails_only_unfinished_groups() {
        let mut g = state(3, 1);
        g.require_progress_by = 100;
        let d = dep(&[("a", g.clone())]);
        let none = BTreeMap::new();
        assert_eq!(decide(&d, Some(&job(1)), &none, 100), Decision::Wait);
        assert_eq!(
            decide(&d, Some(&job(1)), &none, 101),
            Decision::Fail(desc::PROGRESS_DEADLINE)
        );
        g.healthy_allocs = 3;
        let d = dep(&[("a", g)]);
        assert_eq!(decide(&d, Some(&job(1)), &none, 101), Decision::Succeed);
    }

    #[test]
    fn canaries_are_promoted_automatically_only_when_all_are_healthy_and_auto() {
        let mut g = state(3, 1);
        g.desired_canaries = 2;
        g.auto_promote = true;
        let d = dep(&[("a", g.clone())]);
        let one = BTreeMap::from([("a".to_string(), 1)]);
        let two = BTreeMap::from([("a".to_string(), 2)]);
        assert_eq!(decide(&d, Some(&job(1)), &one, 0), Decision::Wait);
        assert_eq!(decide(&d, Some(&job(1)), &two, 0), Decision::Promote);
        g.auto_promote = false;
        let d = dep(&[("a", g.clone())]);
        assert_eq!(decide(&d, Some(&job(1)), &two, 0), Decision::Wait);
        // A manual promotion waits past the progress deadline.
        g.require_progress_by = 5;
        let d = dep(&[("a", g.clone())]);
        assert_eq!(decide(&d, Some(&job(1)), &two, 10), Decision::Wait);
        // Promoted and healthy: done.
        g.promoted = true;
        g.healthy_allocs = 3;
        let d = dep(&[("a", g)]);
        assert_eq!(decide(&d, Some(&job(1)), &two, 10), Decision::Succeed);
    }

    #[test]
    fn revert_goes_to_the_latest_older_stable_version() {
        let mut g = state(3, 0);
        g.auto_revert = true;
        let d = dep(&[("a", g)]);
        let mut v0 = job(0);
        v0.stable = Some(true);
        v0.meta.insert("v".into(), "0".into());
        let mut v1 = job(1);
        v1.meta.insert("v".into(), "1".into());
        let versions = vec![Arc::new(v1.clone()), Arc::new(v0.clone())];
        let (why, target) = revert_plan(&d, desc::FAILED_ALLOCATIONS, Some(&v1), &versions);
        assert_eq!(
            why,
            "Failed due to unhealthy allocations - rolling back to job version 0"
        );
        assert_eq!(target.map(|t| t.meta), Some(v0.meta.clone()));

        // The current job already has the stable specification: no revert.
        let mut same = v0.clone();
        same.version = Some(1);
        same.stable = Some(false);
        let (why, target) = revert_plan(&d, desc::FAILED_ALLOCATIONS, Some(&same), &versions);
        assert!(
            why.contains("not rolling back to stable job version 0"),
            "{why}"
        );
        assert!(target.is_none());

        // No stable version at all.
        let versions = vec![Arc::new(v1.clone())];
        let (why, target) = revert_plan(&d, desc::FAILED_ALLOCATIONS, Some(&v1), &versions);
        assert!(
            why.ends_with("no stable job version to auto revert to"),
            "{why}"
        );
        assert!(target.is_none());
    }

    #[test]
    fn no_revert_without_auto_revert() {
        let d = dep(&[("a", state(3, 0))]);
        let mut v0 = job(0);
        v0.stable = Some(true);
        let (why, target) = revert_plan(&d, desc::FAILED_BY_USER, Some(&job(1)), &[Arc::new(v0)]);
        assert_eq!(why, desc::FAILED_BY_USER);
        assert!(target.is_none());
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_000_000_000), "2023-11-14T22:13:20Z");
    }
}

#[cfg(test)]
#[path = "deploy_tests.rs"]
mod server_tests;
