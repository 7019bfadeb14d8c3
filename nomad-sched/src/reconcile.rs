//! The reconciler of service and batch jobs: compares the job's groups with their
//! allocations and decides what to place, stop, update in place or replace, migrate,
//! reschedule, and which deployment drives a rolling update.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use nomad_core::job::{Job, ReschedulePolicy, Task, TaskGroup};
use nomad_core::structs::{
    status, Allocation, ArcStr, Deployment, DeploymentState, DeploymentStatusUpdate, Node,
    RescheduleEvent, RescheduleTracker,
};

/// Reschedules due within this window of now happen now (Nomad uses one second).
const RESCHEDULE_WINDOW_NS: i64 = 1_000_000_000;

/// An allocation with what the reconciler needs to know about it.
#[derive(Clone)]
pub(crate) struct AllocView {
    pub(crate) alloc: Arc<Allocation>,
    /// The job version it runs.
    pub(crate) job: Option<Arc<Job>>,
    /// Its node, `None` when the node is gone.
    pub(crate) node: Option<Arc<Node>>,
}

/// A new allocation to place.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    pub(crate) group: ArcStr,
    pub(crate) name: String,
    /// The allocation it replaces (reschedule, migration, lost node, destructive update).
    pub(crate) previous: Option<Arc<Allocation>>,
    /// Why: metrics and the reschedule tracker differ.
    pub(crate) reschedule: bool,
    pub(crate) canary: bool,
    /// Placed under the job's deployment.
    pub(crate) deployment: bool,
}

/// An allocation to stop.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    pub(crate) alloc: Arc<Allocation>,
    pub(crate) desc: &'static str,
    pub(crate) client_status: Option<&'static str>,
}

/// Descriptions Nomad gives stopped allocations.
pub(crate) mod desc {
    pub(crate) const NOT_NEEDED: &str = "alloc not needed due to job update";
    pub(crate) const JOB_STOPPED: &str = "alloc not needed as job is stopped";
    pub(crate) const LOST: &str = "alloc is lost since its node is down";
    pub(crate) const MIGRATING: &str = "alloc is being migrated";
    pub(crate) const UPDATING: &str = "alloc is being updated due to job update";
    pub(crate) const RESCHEDULED: &str = "alloc was rescheduled because it failed";
    pub(crate) const PREEMPTED: &str = "Preempted by alloc ID";
    pub(crate) const NODE_INELIGIBLE: &str = "alloc not needed as node is no longer eligible";
}

/// A delayed reschedule: a follow-up evaluation at `wait_until` for these allocations.
#[derive(Debug, Clone)]
pub(crate) struct Followup {
    pub(crate) wait_until: i64,
    pub(crate) allocs: Vec<Arc<Allocation>>,
}

/// What the reconciler decided.
#[derive(Default)]
pub(crate) struct Reconciled {
    pub(crate) place: Vec<Place>,
    pub(crate) stop: Vec<Stop>,
    pub(crate) inplace: Vec<Arc<Allocation>>,
    pub(crate) followups: Vec<Followup>,
    pub(crate) deployment: Option<Deployment>,
    pub(crate) deployment_updates: Vec<DeploymentStatusUpdate>,
}

/// Inputs besides the allocations.
pub(crate) struct ReconcileInput<'a> {
    pub(crate) job: Option<&'a Job>,
    pub(crate) job_id: &'a str,
    pub(crate) batch: bool,
    pub(crate) deployment: Option<&'a Deployment>,
    pub(crate) now: i64,
    pub(crate) new_id: &'a mut dyn FnMut() -> String,
}

/// True when moving from `a` to `b` needs new allocations rather than an in-place update:
/// any change to what the tasks run (driver, config, env, resources, artifacts, templates,
/// meta, user, vault, volumes, lifecycle...), the group network, disk or volumes. Services,
/// checks, counts, policies, constraints, timeouts and logging update in place.
pub(crate) fn tasks_updated(a: &TaskGroup, b: &TaskGroup) -> bool {
    if a.tasks.len() != b.tasks.len()
        || a.networks != b.networks
        || a.ephemeral_disk != b.ephemeral_disk
        || a.volumes != b.volumes
    {
        return true;
    }
    let strip = |t: &Task| {
        let mut t = t.clone();
        t.services.clear();
        t.constraints.clear();
        t.affinities.clear();
        t.kill_timeout = None;
        t.shutdown_delay = Default::default();
        t.log_config = None;
        t.restart_policy = None;
        t.scaling_policies.clear();
        t
    };
    a.tasks
        .iter()
        .zip(&b.tasks)
        .any(|(x, y)| x.name != y.name || strip(x) != strip(y))
}

/// The delay before rescheduling an allocation with the given history.
pub(crate) fn reschedule_delay(
    policy: &ReschedulePolicy,
    tracker: Option<&RescheduleTracker>,
) -> i64 {
    let base = policy.delay.map_or(0, |d| d.as_nanos() as i64);
    let max = policy.max_delay.map_or(0, |d| d.as_nanos() as i64);
    let events = tracker.map_or(&[][..], |t| t.events.as_slice());
    let last = |i: usize| {
        events
            .len()
            .checked_sub(i)
            .and_then(|k| events.get(k))
            .map(|e| e.delay.as_nanos() as i64)
    };
    let d = match policy.delay_function.as_deref() {
        Some("exponential") => last(1).map_or(base, |p| p.saturating_mul(2).max(base)),
        Some("fibonacci") => match (last(1), last(2)) {
            (Some(a), Some(b)) => a.saturating_add(b),
            (Some(a), None) => a.max(base),
            _ => base,
        },
        _ => base,
    };
    if max > 0 {
        d.min(max)
    } else {
        d
    }
}

/// True when the policy allows another reschedule at `now`.
pub(crate) fn reschedule_allowed(
    policy: &ReschedulePolicy,
    tracker: Option<&RescheduleTracker>,
    now: i64,
) -> bool {
    if policy.unlimited == Some(true) {
        return true;
    }
    let attempts = policy.attempts.unwrap_or(0);
    if attempts <= 0 {
        return false;
    }
    let interval = policy.interval.map_or(0, |d| d.as_nanos() as i64);
    let recent = tracker.map_or(0, |t| {
        t.events
            .iter()
            .filter(|e| interval == 0 || now.saturating_sub(e.reschedule_time) < interval)
            .count()
    });
    (recent as i64) < i64::from(attempts)
}

/// The tracker a replacement of `prev` carries: its history plus this reschedule.
pub(crate) fn next_tracker(
    prev: &Allocation,
    policy: Option<&ReschedulePolicy>,
    now: i64,
) -> RescheduleTracker {
    let mut t = prev.reschedule_tracker.clone().unwrap_or_default();
    let delay = policy.map_or(0, |p| reschedule_delay(p, prev.reschedule_tracker.as_ref()));
    t.events.push(RescheduleEvent {
        reschedule_time: now,
        prev_alloc_id: prev.id.to_string(),
        prev_node_id: prev.node_id.to_string(),
        delay: nomad_core::job::Duration::from_nanos(delay.max(0) as u64),
    });
    t
}

enum Class {
    Untainted,
    Migrate,
    Lost,
    RescheduleNow,
    RescheduleLater(i64),
    /// Terminal for placement purposes but keeps its name (finished batch work).
    Done,
    Ignore,
}

fn classify(v: &AllocView, policy: Option<&ReschedulePolicy>, batch: bool, now: i64) -> Class {
    let a = &v.alloc;
    if a.server_terminal() {
        return Class::Ignore;
    }
    match a.client_status.as_str() {
        status::ALLOC_CLIENT_COMPLETE => {
            return if batch { Class::Done } else { Class::Ignore };
        }
        status::ALLOC_CLIENT_LOST => return Class::Ignore,
        _ => {}
    }
    let node_down = match &v.node {
        None => true,
        Some(n) => n.status == status::NODE_DOWN,
    };
    if node_down {
        return Class::Lost;
    }
    if a.client_status == status::ALLOC_CLIENT_FAILED {
        if !a.next_allocation.is_empty() {
            return Class::Ignore;
        }
        let forced = a.desired_transition.force_reschedule == Some(true);
        let Some(p) = policy else {
            return Class::Untainted;
        };
        if !forced && !reschedule_allowed(p, a.reschedule_tracker.as_ref(), now) {
            return Class::Untainted;
        }
        let delay = if forced {
            0
        } else {
            reschedule_delay(p, a.reschedule_tracker.as_ref())
        };
        let at = a.modify_time.saturating_add(delay);
        if forced || at <= now.saturating_add(RESCHEDULE_WINDOW_NS) {
            return Class::RescheduleNow;
        }
        return Class::RescheduleLater(at);
    }
    let draining = v
        .node
        .as_ref()
        .is_some_and(|n| n.drain_strategy.is_some() || n.drain);
    if draining || a.desired_transition.migrate == Some(true) {
        return Class::Migrate;
    }
    Class::Untainted
}

/// The update block of a group when it drives deployments (`max_parallel > 0`).
fn deploying(tg: &TaskGroup, batch: bool) -> Option<&nomad_core::job::UpdateStrategy> {
    if batch {
        return None;
    }
    tg.update
        .as_ref()
        .filter(|u| u.max_parallel.unwrap_or(1) > 0)
}

/// Reconciles the job's groups against its allocations.
/// The stable name of an allocation, `<job>.<group>[<index>]`, in a string of exactly
/// its length (every placement keeps one).
pub(crate) fn alloc_name(job_id: &str, group: &str, index: u32) -> String {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut n = index;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = &digits[at..];
    let mut s = String::with_capacity(job_id.len() + group.len() + digits.len() + 3);
    s.push_str(job_id);
    s.push('.');
    s.push_str(group);
    s.push('[');
    for &d in digits {
        s.push(char::from(d));
    }
    s.push(']');
    s
}

pub(crate) fn reconcile(input: ReconcileInput<'_>, allocs: &[AllocView]) -> Reconciled {
    let mut out = Reconciled::default();
    let stopped = input.job.is_none_or(|j| j.stop == Some(true));
    let mut by_group: BTreeMap<&str, Vec<&AllocView>> = BTreeMap::new();
    for v in allocs {
        by_group
            .entry(v.alloc.task_group.as_str())
            .or_default()
            .push(v);
    }
    let job = match input.job {
        Some(j) if !stopped => j,
        _ => {
            for v in allocs.iter().filter(|v| !v.alloc.terminal()) {
                out.stop.push(Stop {
                    alloc: Arc::clone(&v.alloc),
                    desc: desc::JOB_STOPPED,
                    client_status: None,
                });
            }
            if let Some(d) = input.deployment.filter(|d| d.active()) {
                out.deployment_updates.push(DeploymentStatusUpdate {
                    deployment_id: d.id.clone(),
                    status: status::DEPLOYMENT_CANCELLED.to_string(),
                    status_description: "Cancelled because job is stopped".to_string(),
                });
            }
            return out;
        }
    };
    // Groups that no longer exist.
    for (group, views) in &by_group {
        if job.group(group).is_none() {
            for v in views.iter().filter(|v| !v.alloc.terminal()) {
                out.stop.push(Stop {
                    alloc: Arc::clone(&v.alloc),
                    desc: desc::NOT_NEEDED,
                    client_status: None,
                });
            }
        }
    }
    let version = job.version.unwrap_or(0);
    let current_deployment = input
        .deployment
        .filter(|d| d.job_version == version && d.job_id == input.job_id);
    if let Some(d) = input
        .deployment
        .filter(|d| d.active() && d.job_version != version)
    {
        out.deployment_updates.push(DeploymentStatusUpdate {
            deployment_id: d.id.clone(),
            status: status::DEPLOYMENT_CANCELLED.to_string(),
            status_description: "Cancelled due to newer version of job".to_string(),
        });
    }
    let mut new_deployment: Option<Deployment> = None;
    let deployment_blocked = current_deployment
        .is_some_and(|d| matches!(d.status.as_str(), "failed" | "paused" | "cancelled"));

    for tg in &job.task_groups {
        // One shared copy of the group name for every placement of the group.
        let group_name = ArcStr::from(tg.name.as_str());
        let views = by_group.get(tg.name.as_str()).cloned().unwrap_or_default();
        let policy = tg.reschedule_policy.as_ref();
        let count = tg.count_or_default() as usize;
        let mut keep: Vec<&AllocView> = Vec::new();
        let mut migrate: Vec<&AllocView> = Vec::new();
        let mut names: BTreeSet<u32> = BTreeSet::new();
        let mut replacements: Vec<Place> = Vec::new();
        let mut later: BTreeMap<i64, Vec<Arc<Allocation>>> = BTreeMap::new();
        let update = deploying(tg, input.batch);

        for v in views {
            let class = classify(v, policy, input.batch, input.now);
            match class {
                Class::Ignore => {}
                Class::Done => {
                    if let Some(i) = v.alloc.index() {
                        names.insert(i);
                    }
                }
                Class::Lost => {
                    out.stop.push(Stop {
                        alloc: Arc::clone(&v.alloc),
                        desc: desc::LOST,
                        client_status: Some(status::ALLOC_CLIENT_LOST),
                    });
                    replacements.push(Place {
                        group: group_name.clone(),
                        name: v.alloc.name.clone(),
                        previous: Some(Arc::clone(&v.alloc)),
                        reschedule: false,
                        canary: false,
                        deployment: false,
                    });
                }
                Class::RescheduleNow => {
                    out.stop.push(Stop {
                        alloc: Arc::clone(&v.alloc),
                        desc: desc::RESCHEDULED,
                        client_status: None,
                    });
                    replacements.push(Place {
                        group: group_name.clone(),
                        name: v.alloc.name.clone(),
                        previous: Some(Arc::clone(&v.alloc)),
                        reschedule: true,
                        canary: false,
                        deployment: false,
                    });
                }
                Class::RescheduleLater(at) => {
                    if v.alloc.followup_eval_id.is_empty() {
                        later.entry(at).or_default().push(Arc::clone(&v.alloc));
                    }
                    if let Some(i) = v.alloc.index() {
                        names.insert(i);
                    }
                }
                Class::Migrate => migrate.push(v),
                Class::Untainted => keep.push(v),
            }
        }
        for (wait_until, allocs) in later {
            out.followups.push(Followup { wait_until, allocs });
        }

        // Canaries of the current deployment do not count until promoted; once promoted,
        // each takes the place of the old allocation with its name.
        let dstate = current_deployment.and_then(|d| d.task_groups.get(&tg.name));
        let promoted = dstate.is_some_and(|s| s.promoted);
        let is_canary = |v: &AllocView| {
            v.alloc.deployment_status.as_ref().is_some_and(|s| s.canary)
                && current_deployment.is_some_and(|d| d.id == v.alloc.deployment_id)
        };
        let (canaries, rest): (Vec<&AllocView>, Vec<&AllocView>) =
            keep.into_iter().partition(|v| is_canary(v));
        keep = rest;
        if promoted {
            for c in &canaries {
                let old = keep.iter().position(|v| {
                    v.alloc.name == c.alloc.name
                        && v.job
                            .as_ref()
                            .is_some_and(|j| j.version.unwrap_or(0) != version)
                });
                if let Some(pos) = old {
                    let v = keep.remove(pos);
                    out.stop.push(Stop {
                        alloc: Arc::clone(&v.alloc),
                        desc: desc::NOT_NEEDED,
                        client_status: None,
                    });
                }
            }
            keep.extend(canaries.iter().copied());
        }

        // Too many: stop the highest names first, migrating ones before healthy ones.
        let live = keep.len() + migrate.len() + names.len() + replacements.len();
        if live > count {
            let mut excess = live - count;
            let order = |set: &mut Vec<&AllocView>, excess: &mut usize, out: &mut Reconciled| {
                set.sort_by_key(|v| v.alloc.index().unwrap_or(u32::MAX));
                while *excess > 0 {
                    let Some(v) = set.pop() else { break };
                    out.stop.push(Stop {
                        alloc: Arc::clone(&v.alloc),
                        desc: desc::NOT_NEEDED,
                        client_status: None,
                    });
                    *excess -= 1;
                }
            };
            // Replacements of lost or failed allocations are not placed when over count.
            while excess > 0 && replacements.pop().is_some() {
                excess -= 1;
            }
            order(&mut migrate, &mut excess, &mut out);
            order(&mut keep, &mut excess, &mut out);
        }
        for v in keep.iter().chain(migrate.iter()) {
            if let Some(i) = v.alloc.index() {
                names.insert(i);
            }
        }
        for r in &replacements {
            if let Some(i) = r.previous.as_ref().and_then(|p| p.index()) {
                names.insert(i);
            }
        }

        // Migrations off draining nodes, max_parallel at a time.
        let max_migrate = tg
            .migrate
            .as_ref()
            .and_then(|m| m.max_parallel)
            .unwrap_or(1)
            .max(1) as usize;
        for v in migrate.iter().take(max_migrate) {
            out.stop.push(Stop {
                alloc: Arc::clone(&v.alloc),
                desc: desc::MIGRATING,
                client_status: None,
            });
            replacements.push(Place {
                group: group_name.clone(),
                name: v.alloc.name.clone(),
                previous: Some(Arc::clone(&v.alloc)),
                reschedule: false,
                canary: false,
                deployment: false,
            });
        }

        // Job version changes: in place or destructive.
        let inplace_before = out.inplace.len();
        let mut destructive: Vec<&AllocView> = Vec::new();
        for v in &keep {
            let Some(old) = &v.job else { continue };
            if old.version.unwrap_or(0) == version && old.job_modify_index == job.job_modify_index {
                continue;
            }
            match old.group(&tg.name) {
                Some(old_tg) if !tasks_updated(old_tg, tg) => {
                    out.inplace.push(Arc::clone(&v.alloc))
                }
                _ => destructive.push(v),
            }
        }

        // Canaries and max_parallel when the group is deployed.
        let canaries_wanted = update.and_then(|u| u.canary).unwrap_or(0).max(0) as usize;
        let mut canary_places = 0;
        let mut destructive_limit = destructive.len();
        if let Some(u) = update {
            if deployment_blocked {
                destructive_limit = 0;
            } else if canaries_wanted > 0 && !destructive.is_empty() && !promoted {
                let placed = dstate.map_or(0, |s| s.placed_canaries.len());
                canary_places = canaries_wanted.saturating_sub(placed);
                destructive_limit = 0;
            } else {
                let max_parallel = u.max_parallel.unwrap_or(1).max(1) as usize;
                let in_flight = keep
                    .iter()
                    .filter(|v| {
                        v.job
                            .as_ref()
                            .is_some_and(|j| j.version.unwrap_or(0) == version)
                            && !v.alloc.deployment_id.is_empty()
                            && v.alloc.deployment_status.as_ref().and_then(|s| s.healthy)
                                != Some(true)
                    })
                    .count();
                destructive_limit = max_parallel.saturating_sub(in_flight);
            }
        }
        destructive.sort_by_key(|v| v.alloc.index().unwrap_or(u32::MAX));
        for v in destructive.iter().take(destructive_limit) {
            out.stop.push(Stop {
                alloc: Arc::clone(&v.alloc),
                desc: desc::UPDATING,
                client_status: None,
            });
            replacements.push(Place {
                group: group_name.clone(),
                name: v.alloc.name.clone(),
                previous: Some(Arc::clone(&v.alloc)),
                reschedule: false,
                canary: false,
                deployment: update.is_some(),
            });
        }
        let mut placements: Vec<Place> = Vec::new();
        for i in 0..canary_places {
            placements.push(Place {
                group: group_name.clone(),
                name: alloc_name(input.job_id, &tg.name, u32::try_from(i).unwrap_or(u32::MAX)),
                previous: None,
                reschedule: false,
                canary: true,
                deployment: true,
            });
        }

        // Fill the count with the lowest free names: walk up from 0, stepping over the
        // names in use (in order).
        let mut wanted = count.saturating_sub(names.len());
        let mut in_use = names.iter().copied().peekable();
        let mut next = 0u32;
        while wanted > 0 {
            while in_use.next_if(|&n| n < next).is_some() {}
            if in_use.next_if_eq(&next).is_none() {
                placements.push(Place {
                    group: group_name.clone(),
                    name: alloc_name(input.job_id, &tg.name, next),
                    previous: None,
                    reschedule: false,
                    canary: false,
                    deployment: update.is_some(),
                });
                wanted -= 1;
            }
            next += 1;
        }
        placements.extend(replacements);
        // A version that only updates in place is deployed too (its allocations count
        // for the deployment as they stay healthy), so that it is marked stable.
        let deployed = placements.iter().any(|p| p.deployment)
            || (update.is_some() && out.inplace.len() > inplace_before);
        // Canaries only come with an update that replaces allocations, never with a new job.
        let canary_count = if destructive.is_empty() {
            0
        } else {
            canaries_wanted
        };
        if let (Some(u), true) = (update, deployed) {
            if current_deployment.is_none_or(|d| !d.active()) || new_deployment.is_some() {
                let d = new_deployment.get_or_insert_with(|| Deployment {
                    id: (input.new_id)(),
                    namespace: job.namespace_or_default().to_string(),
                    job_id: job.id.clone(),
                    job_version: version,
                    job_modify_index: job.job_modify_index.unwrap_or(0),
                    job_create_index: job.create_index.unwrap_or(0),
                    status: status::DEPLOYMENT_RUNNING.to_string(),
                    status_description: if canary_count > 0 && u.auto_promote == Some(true) {
                        "Deployment is running pending automatic promotion".to_string()
                    } else if canary_count > 0 {
                        "Deployment is running but requires manual promotion".to_string()
                    } else {
                        "Deployment is running".to_string()
                    },
                    ..Deployment::default()
                });
                let progress = u.progress_deadline.map_or(0, |p| p.as_nanos() as i64);
                d.task_groups.insert(
                    tg.name.clone(),
                    DeploymentState {
                        auto_revert: u.auto_revert.unwrap_or(false),
                        auto_promote: u.auto_promote.unwrap_or(false),
                        progress_deadline: u.progress_deadline.unwrap_or_default(),
                        require_progress_by: if progress > 0 {
                            input.now + progress
                        } else {
                            0
                        },
                        desired_canaries: canary_count as u32,
                        desired_total: count as u32,
                        ..DeploymentState::default()
                    },
                );
            }
        }
        out.place.extend(placements);
    }
    out.deployment = new_deployment;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_names_are_exact() {
        for (i, want) in [(0, "web.app[0]"), (7, "web.app[7]"), (10, "web.app[10]")] {
            let name = alloc_name("web", "app", i);
            assert_eq!(name, want);
            assert_eq!(name.capacity(), want.len());
        }
        assert_eq!(alloc_name("j", "g", u32::MAX), format!("j.g[{}]", u32::MAX));
    }
    use nomad_core::job::Duration;

    fn policy(f: &str) -> ReschedulePolicy {
        ReschedulePolicy {
            attempts: Some(3),
            interval: Some(Duration::from_mins(10)),
            delay: Some(Duration::from_secs(5)),
            delay_function: Some(f.to_string()),
            max_delay: Some(Duration::from_secs(60)),
            unlimited: Some(false),
        }
    }

    fn tracker(delays: &[u64]) -> RescheduleTracker {
        RescheduleTracker {
            events: delays
                .iter()
                .map(|d| RescheduleEvent {
                    reschedule_time: 0,
                    delay: Duration::from_secs(*d),
                    ..RescheduleEvent::default()
                })
                .collect(),
        }
    }

    #[test]
    fn delay_functions() {
        let s = 1_000_000_000i64;
        assert_eq!(
            reschedule_delay(&policy("constant"), Some(&tracker(&[5, 5]))),
            5 * s
        );
        assert_eq!(reschedule_delay(&policy("exponential"), None), 5 * s);
        assert_eq!(
            reschedule_delay(&policy("exponential"), Some(&tracker(&[5, 10]))),
            20 * s
        );
        assert_eq!(
            reschedule_delay(&policy("exponential"), Some(&tracker(&[40]))),
            60 * s,
            "capped"
        );
        assert_eq!(
            reschedule_delay(&policy("fibonacci"), Some(&tracker(&[5, 5]))),
            10 * s
        );
        assert_eq!(
            reschedule_delay(&policy("fibonacci"), Some(&tracker(&[5, 10]))),
            15 * s
        );
    }

    #[test]
    fn attempts_within_interval() {
        let p = policy("constant");
        let now = 3_600_000_000_000i64;
        let mut t = tracker(&[5, 5, 5]);
        for e in &mut t.events {
            e.reschedule_time = now - 60_000_000_000;
        }
        assert!(!reschedule_allowed(&p, Some(&t), now));
        for e in &mut t.events {
            e.reschedule_time = now - 20 * 60_000_000_000;
        }
        assert!(
            reschedule_allowed(&p, Some(&t), now),
            "old attempts fall out of the interval"
        );
        let mut unlimited = p.clone();
        unlimited.unlimited = Some(true);
        assert!(reschedule_allowed(
            &unlimited,
            Some(&tracker(&[1; 10])),
            now
        ));
    }

    #[test]
    fn what_changed_decides_in_place_or_destructive() {
        let base = TaskGroup {
            name: "app".into(),
            tasks: vec![Task {
                name: "t".into(),
                driver: "docker".into(),
                ..Task::default()
            }],
            ..TaskGroup::default()
        };
        let mut g = base.clone();
        g.count = Some(5);
        g.tasks[0].services.push(Default::default());
        g.tasks[0].kill_timeout = Some(Duration::from_secs(9));
        g.constraints
            .push(nomad_core::job::Constraint::new("${attr.a}", "=", "b"));
        assert!(
            !tasks_updated(&base, &g),
            "count, services, timeouts, constraints: in place"
        );
        let mut g = base.clone();
        g.tasks[0].env.insert("A".into(), "1".into());
        assert!(tasks_updated(&base, &g), "env: destructive");
        let mut g = base.clone();
        g.tasks[0].driver = "exec".into();
        assert!(tasks_updated(&base, &g), "driver: destructive");
        let mut g = base.clone();
        g.networks.push(Default::default());
        assert!(tasks_updated(&base, &g), "group network: destructive");
        let mut g = base.clone();
        g.tasks[0].meta.insert("k".into(), "v".into());
        assert!(
            tasks_updated(&base, &g),
            "task meta reaches the environment: destructive"
        );
    }
}
