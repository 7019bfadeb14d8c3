//! The deployment watcher through a whole server with simulated nodes: allocation health is
//! set through the deployment API (no client agent runs here), everything else is the
//! server's own work (scheduler, plan applier, watcher, replicated log).

use std::sync::Arc;
use std::time::Duration;

use nomad_core::job::{Duration as JobDuration, Job, UpdateStrategy};
use nomad_core::structs::{status, Deployment};

use crate::sim::sim_job;
use crate::{Server, ServerConfig, ServerError, StateSnapshot, Table};

const WAIT: Duration = Duration::from_secs(30);

fn config(dir: &std::path::Path) -> ServerConfig {
    let mut c = ServerConfig::dev(dir);
    c.http_addr = None;
    c.num_schedulers = 2;
    c
}

/// A count-3 job whose group rolls one allocation at a time; `env` makes versions differ.
fn rolling_job(env: &str, canary: i32, auto_revert: bool, auto_promote: bool) -> Job {
    let mut job = sim_job("web", 3);
    job.task_groups[0].update = Some(UpdateStrategy {
        max_parallel: Some(1),
        min_healthy_time: Some(JobDuration::from_millis(100)),
        healthy_deadline: Some(JobDuration::from_secs(60)),
        progress_deadline: Some(JobDuration::from_secs(120)),
        canary: Some(canary),
        auto_revert: Some(auto_revert),
        auto_promote: Some(auto_promote),
        ..UpdateStrategy::default()
    });
    job.task_groups[0].tasks[0]
        .env
        .insert("VERSION".into(), env.into());
    job
}

/// Polls the state until `ok` holds, failing the test with `what` after [`WAIT`].
async fn wait_for(server: &Server, what: &str, ok: impl Fn(&StateSnapshot) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let snap = server.snapshot();
        if ok(&snap) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        let _ = server
            .state()
            .watch_tables(
                &[Table::Allocs, Table::Deployments, Table::Jobs],
                snap.index().max(1),
                tokio::time::Instant::now() + Duration::from_millis(100),
            )
            .await;
    }
}

fn latest(snap: &StateSnapshot) -> Option<Arc<Deployment>> {
    snap.deployments()
        .filter(|d| d.job_id == "web")
        .max_by_key(|d| d.create_index)
        .cloned()
}

fn deployment_of_version(snap: &StateSnapshot, version: u64) -> Option<Arc<Deployment>> {
    latest(snap).filter(|d| d.job_version == version)
}

/// Allocations of deployment `d` still waiting for their health, not stopped.
fn waiting(snap: &StateSnapshot, d: &Deployment) -> Vec<String> {
    snap.job_allocs("default", "web")
        .iter()
        .filter(|a| a.deployment_id == d.id && !a.terminal())
        .filter(|a| {
            a.deployment_status
                .as_ref()
                .and_then(|s| s.healthy)
                .is_none()
        })
        .map(|a| a.id.to_string())
        .collect()
}

/// Runs version `version` of the job to a successful deployment, one batch at a time,
/// asserting that no more than one allocation is ever waiting for its health.
async fn roll_out(server: &Server, version: u64) -> Arc<Deployment> {
    wait_for(server, "deployment created", |s| {
        deployment_of_version(s, version).is_some()
    })
    .await;
    loop {
        let snap = server.snapshot();
        let d = deployment_of_version(&snap, version).expect("deployment");
        if d.status == status::DEPLOYMENT_SUCCESSFUL {
            return d;
        }
        assert_eq!(d.status, status::DEPLOYMENT_RUNNING, "{d:?}");
        let ids = waiting(&snap, &d);
        if ids.is_empty() {
            wait_for(server, "next batch or success", |s| {
                deployment_of_version(s, version).is_some_and(|d| {
                    d.status == status::DEPLOYMENT_SUCCESSFUL || !waiting(s, &d).is_empty()
                })
            })
            .await;
            continue;
        }
        if version > 0 {
            assert_eq!(ids.len(), 1, "max_parallel = 1 but {ids:?} in flight");
        }
        server
            .set_deployment_alloc_health(&d.id, ids, Vec::new())
            .await
            .expect("healthy");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_places_one_batch_per_health_change_and_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path())).await.expect("start");
    server.register_sim_nodes(3).await.expect("nodes");
    server
        .register_job(rolling_job("1", 0, false, false))
        .await
        .expect("register");
    let d0 = roll_out(&server, 0).await;
    assert_eq!(d0.status_description, "Deployment completed successfully");
    assert_eq!(d0.task_groups["app"].healthy_allocs, 3);
    assert_eq!(d0.task_groups["app"].placed_allocs, 3);
    let snap = server.snapshot();
    assert_eq!(
        snap.job("default", "web").and_then(|j| j.stable),
        Some(true)
    );

    server
        .register_job(rolling_job("2", 0, false, false))
        .await
        .expect("register v1");
    let d1 = roll_out(&server, 1).await;
    assert_ne!(d1.id, d0.id);
    assert_eq!(d1.task_groups["app"].healthy_allocs, 3);
    let snap = server.snapshot();
    let job = snap.job("default", "web").expect("job");
    assert_eq!((job.version, job.stable), (Some(1), Some(true)));
    let live: Vec<_> = snap
        .job_allocs("default", "web")
        .iter()
        .filter(|a| !a.terminal())
        .map(|a| snap.job_of_alloc(&a.id).and_then(|j| j.version))
        .collect();
    assert_eq!(live, vec![Some(1); 3]);
    // The evaluations placing the later batches came from the watcher.
    assert!(snap
        .job_evals("default", "web")
        .iter()
        .any(|e| e.triggered_by == "deployment-watcher" && e.deployment_id == d1.id));
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_allocation_fails_the_deployment_and_reverts_to_the_stable_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path())).await.expect("start");
    server.register_sim_nodes(3).await.expect("nodes");
    let v0 = rolling_job("1", 0, true, false);
    server.register_job(v0).await.expect("register");
    roll_out(&server, 0).await;
    server
        .register_job(rolling_job("broken", 0, true, false))
        .await
        .expect("register v1");
    wait_for(&server, "a v1 allocation waiting", |s| {
        deployment_of_version(s, 1).is_some_and(|d| !waiting(s, &d).is_empty())
    })
    .await;
    let snap = server.snapshot();
    let d1 = deployment_of_version(&snap, 1).expect("deployment");
    let ids = waiting(&snap, &d1);
    server
        .set_deployment_alloc_health(&d1.id, Vec::new(), ids)
        .await
        .expect("unhealthy");
    wait_for(&server, "failed and reverted", |s| {
        s.deployment(&d1.id)
            .is_some_and(|d| d.status == status::DEPLOYMENT_FAILED)
            && s.job("default", "web").and_then(|j| j.version) == Some(2)
    })
    .await;
    let snap = server.snapshot();
    let d1 = snap.deployment(&d1.id).expect("deployment");
    assert_eq!(
        d1.status_description,
        "Failed due to unhealthy allocations - rolling back to job version 0"
    );
    let versions = snap.job_versions("default", "web");
    let (v2, v0) = (&versions[0], &versions[2]);
    assert_eq!(v2.version, Some(2));
    assert_eq!(v0.version, Some(0));
    assert!(crate::deploy::same_spec(v2, v0), "v2 is not v0's spec");
    // The revert replaces the broken allocation; the others are updated in place.
    wait_for(&server, "every allocation on version 2", |s| {
        let live: Vec<_> = s
            .job_allocs("default", "web")
            .iter()
            .filter(|a| !a.terminal())
            .map(|a| s.job_of_alloc(&a.id).and_then(|j| j.version))
            .collect();
        live == vec![Some(2); 3]
    })
    .await;
    // The revert's own deployment counts the allocations updated in place and succeeds
    // once the replacement is healthy.
    let d2 = roll_out(&server, 2).await;
    assert_eq!(d2.task_groups["app"].healthy_allocs, 3);
    let snap = server.snapshot();
    let job = snap.job("default", "web").expect("job");
    assert_eq!((job.version, job.stable), (Some(2), Some(true)));
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_wait_for_promotion_then_the_rest_rolls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path())).await.expect("start");
    server.register_sim_nodes(3).await.expect("nodes");
    server
        .register_job(rolling_job("1", 1, false, false))
        .await
        .expect("register");
    roll_out(&server, 0).await;
    server
        .register_job(rolling_job("2", 1, false, false))
        .await
        .expect("register v1");
    wait_for(&server, "a canary placed", |s| {
        deployment_of_version(s, 1).is_some_and(|d| d.task_groups["app"].placed_canaries.len() == 1)
    })
    .await;
    let d1 = deployment_of_version(&server.snapshot(), 1).expect("deployment");
    assert_eq!(
        d1.status_description,
        "Deployment is running but requires manual promotion"
    );
    // Not healthy yet: promotion is refused, naming the group.
    match server.promote_deployment(&d1.id, true, &[]).await {
        Err(ServerError::BadRequest(m)) => {
            assert_eq!(m, "Task group \"app\" has 0/1 healthy allocations")
        }
        other => panic!("promotion of an unhealthy canary: {other:?}"),
    }
    match server
        .promote_deployment(&d1.id, false, &["nope".to_string()])
        .await
    {
        Err(ServerError::BadRequest(m)) => assert!(m.contains("no task group \"nope\""), "{m}"),
        other => panic!("promotion of an unknown group: {other:?}"),
    }
    let canary = d1.task_groups["app"].placed_canaries.clone();
    server
        .set_deployment_alloc_health(&d1.id, canary.clone(), Vec::new())
        .await
        .expect("healthy");
    // Healthy but not promoted: nothing else is placed and the deployment waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let snap = server.snapshot();
    let d = snap.deployment(&d1.id).expect("deployment");
    assert_eq!(d.status, status::DEPLOYMENT_RUNNING);
    assert!(!d.task_groups["app"].promoted);
    assert_eq!(d.task_groups["app"].placed_allocs, 1);
    server
        .promote_deployment(&d1.id, false, &["app".to_string()])
        .await
        .expect("promote");
    let d = roll_out(&server, 1).await;
    assert!(d.task_groups["app"].promoted);
    let snap = server.snapshot();
    assert!(snap
        .alloc(&canary[0])
        .is_some_and(|a| !a.terminal() && a.deployment_status.as_ref().is_some_and(|s| s.canary)));
    server.shutdown();
}

#[test]
fn the_watcher_resumes_a_deployment_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("rt")
    };
    let first = rt();
    first.block_on(async {
        let server = Server::start(config(dir.path())).await.expect("start");
        server.register_sim_nodes(3).await.expect("nodes");
        server
            .register_job(rolling_job("1", 0, false, false))
            .await
            .expect("register");
        roll_out(&server, 0).await;
        server
            .register_job(rolling_job("2", 0, false, false))
            .await
            .expect("register v1");
        wait_for(&server, "first batch of v1", |s| {
            deployment_of_version(s, 1).is_some_and(|d| !waiting(s, &d).is_empty())
        })
        .await;
    });
    // No shutdown: everything is dropped as a kill would.
    drop(first);
    rt().block_on(async {
        let server = Server::start(config(dir.path())).await.expect("restart");
        let snap = server.snapshot();
        let d0 = deployment_of_version(&snap, 0);
        assert!(d0.is_none(), "the latest deployment is v1's");
        assert!(snap
            .deployments()
            .any(|d| d.job_version == 0 && d.status == status::DEPLOYMENT_SUCCESSFUL));
        let d = roll_out(&server, 1).await;
        assert_eq!(d.task_groups["app"].healthy_allocs, 3);
        server.shutdown();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_updated_in_place_is_deployed_at_once_and_marked_stable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path())).await.expect("start");
    server.register_sim_nodes(3).await.expect("nodes");
    // v0 has no update block: no deployment; its allocations run.
    let mut v0 = rolling_job("1", 0, false, false);
    v0.task_groups[0].update = None;
    server.register_job(v0).await.expect("register");
    assert_eq!(server.wait_for_allocs("default", "web", 3, WAIT).await, 3);
    assert!(server.wait_idle(WAIT).await);
    let snap = server.snapshot();
    assert!(latest(&snap).is_none());
    let running: Vec<nomad_core::structs::Allocation> = snap
        .job_allocs("default", "web")
        .iter()
        .map(|a| nomad_core::structs::Allocation {
            id: a.id.clone(),
            client_status: status::ALLOC_CLIENT_RUNNING.into(),
            ..nomad_core::structs::Allocation::default()
        })
        .collect();
    let ids: Vec<String> = running.iter().map(|a| a.id.to_string()).collect();
    server
        .update_allocs_from_client(running)
        .await
        .expect("running");

    // v1 adds the update block and changes only the job's meta: every allocation is
    // updated in place, and the deployment counts them.
    let mut v1 = rolling_job("1", 0, false, false);
    v1.meta.insert("owner".into(), "ops".into());
    server.register_job(v1).await.expect("register v1");
    wait_for(&server, "v1 deployed", |s| {
        deployment_of_version(s, 1).is_some_and(|d| d.status == status::DEPLOYMENT_SUCCESSFUL)
    })
    .await;
    let snap = server.snapshot();
    let job = snap.job("default", "web").expect("job");
    assert_eq!((job.version, job.stable), (Some(1), Some(true)));
    let mut live: Vec<String> = snap
        .job_allocs("default", "web")
        .iter()
        .filter(|a| !a.terminal())
        .map(|a| a.id.to_string())
        .collect();
    live.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(
        live, ids,
        "the allocations were replaced, not updated in place"
    );
    server.shutdown();
}
