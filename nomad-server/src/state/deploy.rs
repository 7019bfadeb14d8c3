//! Deployments in the state store: the commands of the deployment watcher and of the
//! deployment API, the per-group counts kept from allocation health, and job stability.

use std::sync::Arc;

use nomad_core::structs::{status, AllocDeploymentStatus, Deployment, DeploymentState};

use super::{key, ApplyEffects, Command, Key, StateData, Table};

/// Merges a client's health report into an allocation's deployment status: the client owns
/// `Healthy` and `Timestamp`, the server owns the rest (the canary flag).
pub(super) fn merge_client_health(
    old: Option<&AllocDeploymentStatus>,
    new: Option<&AllocDeploymentStatus>,
    index: u64,
) -> Option<AllocDeploymentStatus> {
    let Some(new) = new else {
        return old.cloned();
    };
    let mut merged = old.cloned().unwrap_or_default();
    if merged.healthy != new.healthy || merged.timestamp != new.timestamp {
        merged.modify_index = index;
    }
    merged.healthy = new.healthy;
    merged.timestamp.clone_from(&new.timestamp);
    Some(merged)
}

/// The per-group counts of a deployment recomputed from the allocations it placed:
/// placed, healthy and unhealthy allocations and the IDs of its canaries (in placement
/// order). Allocations that run the deployed job version (`deployed_version` says which:
/// they were updated in place, their tasks untouched) count as placed and healthy too when
/// they were healthy in an earlier deployment or run outside any deployment. Returns the groups changed, or `None` when nothing changed.
pub(crate) fn recount<'a>(
    d: &Deployment,
    allocs: impl Iterator<Item = &'a nomad_core::structs::Allocation>,
    deployed_version: impl Fn(&nomad_core::structs::Allocation) -> bool,
) -> Option<std::collections::BTreeMap<String, DeploymentState>> {
    let mut groups = d.task_groups.clone();
    for g in groups.values_mut() {
        g.placed_allocs = 0;
        g.healthy_allocs = 0;
        g.unhealthy_allocs = 0;
    }
    let mut canaries: Vec<(u64, String, String)> = Vec::new();
    for a in allocs {
        let ds = a.deployment_status.as_ref();
        let ours = a.deployment_id == d.id;
        // Updated in place: healthy in an earlier deployment, or running outside any.
        let was_healthy = ds.and_then(|s| s.healthy) == Some(true)
            || (a.deployment_id.is_empty() && a.client_status == status::ALLOC_CLIENT_RUNNING);
        let carried = !ours && !a.terminal() && was_healthy && deployed_version(a);
        if !ours && !carried {
            continue;
        }
        let Some(g) = groups.get_mut(a.task_group.as_str()) else {
            continue;
        };
        g.placed_allocs += 1;
        let healthy = if carried {
            Some(true)
        } else {
            ds.and_then(|s| s.healthy)
        };
        match healthy {
            Some(true) => g.healthy_allocs += 1,
            Some(false) => g.unhealthy_allocs += 1,
            None => {}
        }
        if ours && ds.is_some_and(|s| s.canary) {
            canaries.push((a.create_index, a.id.to_string(), a.task_group.to_string()));
        }
    }
    canaries.sort();
    for (_, id, group) in canaries {
        if let Some(g) = groups.get_mut(&group) {
            if !g.placed_canaries.contains(&id) {
                g.placed_canaries.push(id);
            }
        }
    }
    (groups != d.task_groups).then_some(groups)
}

impl StateData {
    /// Applies the deployment commands.
    pub(super) fn apply_deployment(
        &mut self,
        index: u64,
        cmd: &Command,
        fx: &mut ApplyEffects,
        touched_jobs: &mut Vec<Key>,
    ) {
        match cmd {
            Command::UpdateDeploymentStatus {
                update,
                job,
                eval,
                time,
            } => {
                // A decision taken on an older view loses to one already applied: a
                // terminal deployment stays as it is (and nothing is reverted twice).
                let Some(d) = self
                    .deployments
                    .get(&update.deployment_id)
                    .filter(|d| d.active())
                    .cloned()
                else {
                    return;
                };
                let mut d = d.as_ref().clone();
                d.status.clone_from(&update.status);
                d.status_description.clone_from(&update.status_description);
                if d.status == status::DEPLOYMENT_SUCCESSFUL {
                    self.set_job_stable(index, &key(&d.namespace, &d.job_id), d.job_version);
                }
                self.put_deployment(index, d.clone());
                if let Some(j) = job {
                    let mut j = j.as_ref().clone();
                    j.submit_time = Some(*time);
                    j.stop = None;
                    let k = self.upsert_job(index, j);
                    touched_jobs.push(k);
                }
                if let Some(e) = eval {
                    let mut e = e.clone();
                    let k = key(&e.namespace, &e.job_id);
                    e.job_modify_index = self
                        .jobs
                        .get(&k)
                        .and_then(|j| j.job_modify_index)
                        .unwrap_or(index);
                    fx.evals.push(self.put_eval(index, e));
                    touched_jobs.push(k);
                }
            }
            Command::PromoteDeployment {
                deployment_id,
                all,
                groups,
                eval,
                time: _,
            } => {
                let Some(d) = self
                    .deployments
                    .get(deployment_id)
                    .filter(|d| d.active())
                    .cloned()
                else {
                    return;
                };
                let mut d = d.as_ref().clone();
                for (name, g) in d.task_groups.iter_mut() {
                    if g.desired_canaries > 0 && (*all || groups.contains(name)) {
                        g.promoted = true;
                    }
                }
                let waiting = d
                    .task_groups
                    .values()
                    .any(|g| g.desired_canaries > 0 && !g.promoted);
                if d.status == status::DEPLOYMENT_RUNNING && !waiting {
                    d.status_description = crate::deploy::desc::RUNNING.to_string();
                }
                self.put_deployment(index, d);
                if let Some(e) = eval {
                    touched_jobs.push(key(&e.namespace, &e.job_id));
                    fx.evals.push(self.put_eval(index, e.clone()));
                }
            }
            Command::SetDeploymentAllocHealth {
                deployment_id,
                healthy,
                unhealthy,
                time,
            } => {
                let stamp = crate::deploy::rfc3339(*time);
                let marks = healthy
                    .iter()
                    .map(|id| (id, true))
                    .chain(unhealthy.iter().map(|id| (id, false)));
                let mut any = false;
                for (id, h) in marks {
                    let Some(old) = self.alloc(id) else {
                        continue;
                    };
                    if &old.deployment_id != deployment_id {
                        continue;
                    }
                    let mut a = old.as_ref().clone();
                    let mut ds = a.deployment_status.clone().unwrap_or_default();
                    ds.healthy = Some(h);
                    ds.timestamp = Some(stamp.clone());
                    ds.modify_index = index;
                    a.deployment_status = Some(ds);
                    a.modify_index = index;
                    a.modify_time = *time;
                    touched_jobs.push(key(&a.namespace, &a.job_id));
                    self.put_alloc(Arc::new(a));
                    any = true;
                }
                if any {
                    self.touch(Table::Allocs, index);
                }
            }
            _ => {}
        }
    }

    /// Recomputes the counts of the job's latest deployment while it is active, and moves
    /// its progress deadline when an allocation became healthy at this index.
    pub(super) fn refresh_deployment_counts(&mut self, index: u64, k: &Key) {
        let Some(d) = self.latest_deployment.get(k).cloned() else {
            return;
        };
        if !d.active() {
            return;
        }
        let allocs = self.by_job.get(k).cloned().unwrap_or_default();
        let deployed_version = |a: &nomad_core::structs::Allocation| {
            self.job_of_alloc(&a.id)
                .is_some_and(|j| j.version == Some(d.job_version))
        };
        let Some(mut groups) = recount(&d, allocs.iter().map(|a| a.as_ref()), deployed_version)
        else {
            return;
        };
        for (name, g) in groups.iter_mut() {
            let before = d.task_groups.get(name).map_or(0, |o| o.healthy_allocs);
            if g.healthy_allocs <= before || g.progress_deadline.is_zero() {
                continue;
            }
            let became_healthy = allocs
                .iter()
                .filter(|a| {
                    a.deployment_id == d.id
                        && &a.task_group == name
                        && a.modify_index == index
                        && a.deployment_status.as_ref().and_then(|s| s.healthy) == Some(true)
                })
                .map(|a| a.modify_time)
                .max();
            if let Some(t) = became_healthy {
                g.require_progress_by = t + g.progress_deadline.as_nanos() as i64;
            }
        }
        let mut d = d.as_ref().clone();
        d.task_groups = groups;
        self.put_deployment(index, d);
    }

    /// Marks one version of a job stable (in its version history and, when it is the
    /// current version, in the job itself).
    fn set_job_stable(&mut self, index: u64, k: &Key, version: u64) {
        if let Some(vs) = Arc::make_mut(&mut self.job_versions).get_mut(k) {
            let vs = Arc::make_mut(vs);
            for v in vs.iter_mut() {
                if v.version == Some(version) && v.stable != Some(true) {
                    let mut j = v.as_ref().clone();
                    j.stable = Some(true);
                    *v = Arc::new(j);
                }
            }
        }
        if let Some(cur) = self.jobs.get(k).cloned() {
            if cur.version == Some(version) && cur.stable != Some(true) {
                let mut j = cur.as_ref().clone();
                j.stable = Some(true);
                j.modify_index = Some(index);
                Arc::make_mut(&mut self.jobs).insert(k.clone(), Arc::new(j));
            }
        }
        self.touch(Table::Jobs, index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomad_core::structs::Allocation;

    fn alloc(id: &str, dep: &str, healthy: Option<bool>, canary: bool) -> Allocation {
        Allocation {
            id: id.into(),
            task_group: "web".into(),
            deployment_id: dep.into(),
            deployment_status: Some(AllocDeploymentStatus {
                healthy,
                canary,
                ..AllocDeploymentStatus::default()
            }),
            ..Allocation::default()
        }
    }

    fn deployment() -> Deployment {
        let mut d = Deployment {
            id: "d1".into(),
            ..Deployment::default()
        };
        d.task_groups.insert(
            "web".into(),
            DeploymentState {
                desired_total: 3,
                ..DeploymentState::default()
            },
        );
        d
    }

    #[test]
    fn recount_counts_only_the_deployments_allocations() {
        let d = deployment();
        let allocs = [
            alloc("a", "d1", Some(true), false),
            alloc("b", "d1", Some(false), false),
            alloc("c", "d1", None, true),
            alloc("x", "other", Some(true), false),
        ];
        let groups = recount(&d, allocs.iter(), |_| false).expect("counts changed");
        let g = &groups["web"];
        assert_eq!(
            (g.placed_allocs, g.healthy_allocs, g.unhealthy_allocs),
            (3, 1, 1)
        );
        assert_eq!(g.placed_canaries, vec!["c".to_string()]);
    }

    #[test]
    fn healthy_allocations_updated_in_place_count_for_the_new_deployment() {
        let d = deployment();
        let allocs = [
            alloc("new", "d1", Some(true), false),
            alloc("kept", "d0", Some(true), false),
            alloc("kept-unhealthy", "d0", Some(false), false),
            alloc("old-version", "d0", Some(true), false),
            Allocation {
                client_status: status::ALLOC_CLIENT_RUNNING.into(),
                ..alloc("kept-undeployed", "", None, false)
            },
            Allocation {
                client_status: status::ALLOC_CLIENT_PENDING.into(),
                ..alloc("kept-pending", "", None, false)
            },
        ];
        let in_place = |a: &Allocation| a.id.starts_with("kept");
        let groups = recount(&d, allocs.iter(), in_place).expect("counts changed");
        let g = &groups["web"];
        assert_eq!(
            (g.placed_allocs, g.healthy_allocs, g.unhealthy_allocs),
            (3, 3, 0)
        );
    }

    #[test]
    fn recount_reports_no_change() {
        let mut d = deployment();
        let allocs = [alloc("a", "d1", Some(true), false)];
        d.task_groups = recount(&d, allocs.iter(), |_| false).expect("first count");
        assert!(recount(&d, allocs.iter(), |_| false).is_none());
    }

    #[test]
    fn commands_keep_counts_progress_deadline_and_stability() {
        use nomad_core::job::Duration as JobDuration;
        use nomad_core::structs::DeploymentStatusUpdate;
        let mut s = StateData::default();
        s.apply(
            1,
            &Command::UpsertNode {
                node: Box::new(crate::sim::sim_node(0)),
            },
        );
        let job = crate::sim::sim_job("web", 2);
        s.apply(
            2,
            &Command::UpsertJob {
                job: Box::new(job.clone()),
                eval: None,
                submit_time: 1,
            },
        );
        let mut d = Deployment {
            id: "d1".into(),
            job_id: "web".into(),
            status: status::DEPLOYMENT_RUNNING.into(),
            ..Deployment::default()
        };
        d.task_groups.insert(
            "app".into(),
            DeploymentState {
                desired_total: 2,
                progress_deadline: JobDuration::from_secs(60),
                require_progress_by: 100,
                ..DeploymentState::default()
            },
        );
        let a = |id: &str| Allocation {
            id: id.into(),
            namespace: "default".into(),
            job_id: "web".into(),
            task_group: "app".into(),
            node_id: "node-0".into(),
            deployment_id: "d1".into(),
            deployment_status: Some(AllocDeploymentStatus {
                canary: id == "a1",
                ..AllocDeploymentStatus::default()
            }),
            ..Allocation::default()
        };
        s.apply(
            3,
            &Command::ApplyPlan {
                eval_id: "e".into(),
                job: Some(Arc::new(job)),
                stops: vec![],
                placed: vec![a("a1").into(), a("a2").into()],
                deployment: Some(d),
                deployment_updates: vec![],
                time: 10,
                committed: Default::default(),
            },
        );
        let g = s.deployment("d1").expect("deployment").task_groups["app"].clone();
        assert_eq!((g.placed_allocs, g.healthy_allocs), (2, 0));
        assert_eq!(g.placed_canaries, vec!["a1".to_string()]);
        assert_eq!(g.require_progress_by, 100);

        // The client reports a1 healthy: counted, the deadline moves, the canary flag stays.
        let mut report = a("a1");
        report.client_status = status::ALLOC_CLIENT_RUNNING.into();
        report.deployment_status = Some(AllocDeploymentStatus {
            healthy: Some(true),
            ..AllocDeploymentStatus::default()
        });
        s.apply(
            4,
            &Command::ClientUpdateAllocs {
                allocs: vec![report],
                evals: vec![],
                time: 5_000,
            },
        );
        let g = s.deployment("d1").expect("deployment").task_groups["app"].clone();
        assert_eq!(g.healthy_allocs, 1);
        assert_eq!(g.require_progress_by, 5_000 + 60_000_000_000);
        let a1 = s.alloc("a1").expect("a1");
        assert!(a1.deployment_status.as_ref().is_some_and(|d| d.canary));

        // Marked unhealthy by hand.
        s.apply(
            5,
            &Command::SetDeploymentAllocHealth {
                deployment_id: "d1".into(),
                healthy: vec![],
                unhealthy: vec!["a2".into()],
                time: 6_000,
            },
        );
        let g = s.deployment("d1").expect("deployment").task_groups["app"].clone();
        assert_eq!((g.healthy_allocs, g.unhealthy_allocs), (1, 1));

        // Success marks the deployed version stable, in the job and its history.
        s.apply(
            6,
            &Command::UpdateDeploymentStatus {
                update: DeploymentStatusUpdate {
                    deployment_id: "d1".into(),
                    status: status::DEPLOYMENT_SUCCESSFUL.into(),
                    status_description: "Deployment completed successfully".into(),
                },
                job: None,
                eval: None,
                time: 7_000,
            },
        );
        assert_eq!(
            s.deployment("d1").map(|d| d.status.clone()).as_deref(),
            Some("successful")
        );
        assert_eq!(s.job("default", "web").and_then(|j| j.stable), Some(true));
        assert_eq!(s.job_versions("default", "web")[0].stable, Some(true));

        // A terminal deployment stays as it is: a late failure (with a revert) is ignored.
        let version_before = s.job("default", "web").and_then(|j| j.version);
        let mut revert = crate::sim::sim_job("web", 5);
        revert.meta.insert("reverted".into(), "yes".into());
        s.apply(
            7,
            &Command::UpdateDeploymentStatus {
                update: DeploymentStatusUpdate {
                    deployment_id: "d1".into(),
                    status: status::DEPLOYMENT_FAILED.into(),
                    status_description: "late".into(),
                },
                job: Some(Box::new(revert)),
                eval: None,
                time: 7_500,
            },
        );
        assert_eq!(
            s.deployment("d1").map(|d| d.status.clone()).as_deref(),
            Some("successful")
        );
        assert_eq!(
            s.job("default", "web").and_then(|j| j.version),
            version_before
        );

        // Promotion sets the flag of groups with canaries only.
        let mut d2 = s.deployment("d1").expect("deployment").as_ref().clone();
        d2.status = status::DEPLOYMENT_RUNNING.into();
        d2.task_groups.get_mut("app").expect("app").desired_canaries = 1;
        s.put_deployment(8, d2);
        s.apply(
            9,
            &Command::PromoteDeployment {
                deployment_id: "d1".into(),
                all: true,
                groups: vec![],
                eval: None,
                time: 8_000,
            },
        );
        assert!(s.deployment("d1").expect("deployment").task_groups["app"].promoted);
    }

    #[test]
    fn client_health_keeps_the_canary_flag() {
        let old = AllocDeploymentStatus {
            canary: true,
            ..AllocDeploymentStatus::default()
        };
        let new = AllocDeploymentStatus {
            healthy: Some(true),
            timestamp: Some("t".into()),
            ..AllocDeploymentStatus::default()
        };
        let m = merge_client_health(Some(&old), Some(&new), 7).expect("merged");
        assert!(m.canary);
        assert_eq!(m.healthy, Some(true));
        assert_eq!(m.modify_index, 7);
        assert_eq!(merge_client_health(Some(&old), None, 8), Some(old));
    }
}
