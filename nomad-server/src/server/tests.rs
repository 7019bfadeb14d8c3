use std::time::Duration;

use nomad_core::structs::{
    status, AllocatedCpu, AllocatedMemory, AllocatedResources, AllocatedTaskResources, Allocation,
    Evaluation, Plan,
};

use super::*;
use crate::sim::{sim_job, sim_node};

fn config(dir: &std::path::Path) -> ServerConfig {
    let mut c = ServerConfig::dev(dir);
    c.http_addr = None;
    c.num_schedulers = 2;
    c
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_is_placed_through_broker_workers_and_applier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path())).await.expect("start");
    server.register_sim_nodes(3).await.expect("nodes");
    let reg = server
        .register_job(sim_job("web", 5))
        .await
        .expect("register");
    assert!(!reg.eval_id.is_empty());
    assert_eq!(server.wait_for_allocs("default", "web", 5, WAIT).await, 5);
    assert!(server.wait_idle(WAIT).await);
    let snap = server.snapshot();
    let eval = snap.eval(&reg.eval_id).expect("eval");
    assert_eq!(eval.status, status::EVAL_COMPLETE);
    assert_eq!(
        snap.job("default", "web").map(|j| j.status.clone()),
        Some("running".into())
    );
    // Stop the job: every allocation is stopped.
    server
        .deregister_job("default", "web", false)
        .await
        .expect("stop");
    assert!(server.wait_idle(WAIT).await);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let live = server
            .snapshot()
            .job_allocs("default", "web")
            .iter()
            .filter(|a| !a.terminal())
            .count();
        if live == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "allocations not stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown();
}

fn sized(id: &str, node: &str, cpu: u64) -> Allocation {
    let mut tasks = std::collections::BTreeMap::new();
    tasks.insert(
        "t".to_string(),
        AllocatedTaskResources {
            cpu: AllocatedCpu {
                cpu_shares: cpu,
                ..AllocatedCpu::default()
            },
            memory: AllocatedMemory {
                memory_mb: 10,
                memory_max_mb: 10,
            },
            ..AllocatedTaskResources::default()
        },
    );
    Allocation {
        id: id.into(),
        namespace: "default".into(),
        node_id: node.into(),
        job_id: "manual".into(),
        task_group: "app".into(),
        desired_status: status::ALLOC_DESIRED_RUN.into(),
        client_status: status::ALLOC_CLIENT_PENDING.into(),
        allocated_resources: Some(AllocatedResources {
            tasks: tasks.into_iter().collect(),
            ..AllocatedResources::default()
        }),
        ..Allocation::default()
    }
}

async fn outstanding_eval(server: &Server, id: &str) -> String {
    server.broker().enqueue(Evaluation {
        id: id.into(),
        job_id: format!("job-{id}"),
        eval_type: "manual".into(),
        status: "pending".into(),
        ..Evaluation::default()
    });
    let (_, token) = server
        .broker()
        .dequeue(&["manual"], Duration::from_secs(1))
        .await
        .expect("enabled")
        .expect("eval");
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_applier_commits_what_fits_and_all_at_once_commits_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path())).await.expect("start");
    server.register_sim_nodes(2).await.expect("nodes");

    let token = outstanding_eval(&server, "e1").await;
    let mut plan = Plan {
        eval_id: "e1".into(),
        eval_token: token,
        ..Plan::default()
    };
    plan.node_allocation
        .insert("node-0".into(), vec![sized("fits", "node-0", 1000).into()]);
    plan.node_allocation.insert(
        "node-1".into(),
        vec![sized("too-big", "node-1", 5000).into()],
    );
    let result = server.apply_plan(plan.clone()).await.expect("apply");
    assert!(result.refresh_index > 0, "a refusal asks for a refresh");
    assert_eq!(result.node_allocation.len(), 1);
    assert!(result.node_allocation.contains_key("node-0"));
    let snap = server.snapshot();
    assert!(snap.alloc("fits").is_some());
    assert!(snap.alloc("too-big").is_none());

    // A stale token is refused outright.
    let mut stale = plan.clone();
    stale.eval_token = "old".into();
    assert!(matches!(
        server.apply_plan(stale).await,
        Err(ServerError::TokenMismatch(_))
    ));

    let token = outstanding_eval(&server, "e2").await;
    let mut plan = Plan {
        eval_id: "e2".into(),
        eval_token: token,
        all_at_once: true,
        ..Plan::default()
    };
    plan.node_allocation.insert(
        "node-0".into(),
        vec![sized("fits-2", "node-0", 1000).into()],
    );
    plan.node_allocation.insert(
        "node-1".into(),
        vec![sized("too-big-2", "node-1", 5000).into()],
    );
    let result = server.apply_plan(plan).await.expect("apply");
    assert!(result.refresh_index > 0);
    assert!(result.node_allocation.is_empty());
    assert!(server.snapshot().alloc("fits-2").is_none());
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_plans_are_checked_against_the_plans_ahead_of_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path())).await.expect("start");
    server.register_sim_nodes(2).await.expect("nodes");
    // Each of the first two plans fits node-0 (4,000 MHz) alone, not both together; they
    // are queued at once, so the second is checked while the first may still be
    // committing, and must be refused either way.
    let mut replies = Vec::new();
    for (eval, alloc, node, cpu) in [
        ("q1", "first", "node-0", 3000),
        ("q2", "second", "node-0", 3000),
        ("q3", "elsewhere", "node-1", 1000),
    ] {
        let token = outstanding_eval(&server, eval).await;
        let mut plan = Plan {
            eval_id: eval.into(),
            eval_token: token,
            ..Plan::default()
        };
        plan.node_allocation
            .insert(node.into(), vec![sized(alloc, node, cpu).into()]);
        let (reply, rx) = oneshot::channel();
        server
            .inner
            .plan_tx
            .send(PlanRequest { plan, reply })
            .await
            .expect("queue");
        replies.push(rx);
    }
    let mut results = Vec::new();
    for rx in replies {
        results.push(rx.await.expect("answer").expect("plan result"));
    }
    assert!(results[0].node_allocation.contains_key("node-0"));
    assert_eq!(results[0].refresh_index, 0);
    assert!(results[1].node_allocation.is_empty(), "node-0 is full");
    assert!(
        results[1].refresh_index >= results[0].alloc_index,
        "the refused plan refreshes past the plan it collided with"
    );
    assert!(results[2].node_allocation.contains_key("node-1"));
    let snap = server
        .state()
        .snapshot_min_index(results[2].alloc_index, WAIT)
        .await
        .expect("state");
    assert!(snap.alloc("first").is_some());
    assert!(snap.alloc("second").is_none());
    assert!(snap.alloc("elsewhere").is_some());
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_check_counts_the_placements_still_being_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path())).await.expect("start");
    server.register_sim_nodes(1).await.expect("nodes");
    let snap = server.snapshot();
    let plan = |alloc: &str| {
        let mut p = Plan {
            eval_id: "e".into(),
            ..Plan::default()
        };
        p.node_allocation
            .insert("node-0".into(), vec![sized(alloc, "node-0", 3000).into()]);
        p
    };
    // Against the state alone the plan fits.
    let alone = check_plan(&snap, plan("second"), &[]);
    assert_eq!(alone.refused_nodes, 0);
    assert!(alone.command.is_some());
    // With a plan of 3,000 MHz on the same node in flight, it no longer does.
    let mut in_flight = BTreeMap::new();
    in_flight.insert(
        "node-0".into(),
        PendingNode::of(&[Arc::new(sized("first", "node-0", 3000))], &snap),
    );
    assert!(alone.pending.contains_key("node-0"));
    let behind = check_plan(&snap, plan("second"), &[&in_flight]);
    assert_eq!(behind.refused_nodes, 1);
    assert!(behind.command.is_none());
    assert!(behind.pending.is_empty());
    // A placement in flight that the state already holds is not counted twice.
    let committed = check_plan(&snap, plan("first"), &[]);
    let cmd = committed.command.expect("command");
    server.apply(cmd).await.expect("commit");
    let snap = server.snapshot();
    // An in-place update carries the stored allocation's create index, as the scheduler
    // copies it from the state.
    let stored = snap.alloc("first").expect("stored");
    assert_ne!(stored.create_index, 0);
    let mut update = plan("first");
    update
        .node_allocation
        .insert("node-0".into(), vec![Arc::new((*stored).clone())]);
    let again = check_plan(&snap, update, &[&in_flight]);
    assert_eq!(
        again.refused_nodes, 0,
        "an in-place update of the same allocation fits"
    );
    // A placement with a zero create index is taken as new without a lookup: reusing a
    // stored ID that way counts it twice, so it is refused rather than over-committed.
    let reused = check_plan(&snap, plan("first"), &[&in_flight]);
    assert_eq!(reused.refused_nodes, 1);
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_heartbeats_mark_node_down_and_allocs_are_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.heartbeat_ttl = Duration::from_millis(300);
    c.heartbeat_grace = Duration::from_millis(200);
    c.maintenance_interval = Duration::from_millis(50);
    let server = Server::start(c).await.expect("start");
    server.register_sim_nodes(2).await.expect("nodes");
    server
        .register_job(sim_job("web", 4))
        .await
        .expect("register");
    assert_eq!(server.wait_for_allocs("default", "web", 4, WAIT).await, 4);
    // Only node-1 keeps heartbeating.
    let hb = server.clone();
    let beat = tokio::spawn(async move {
        loop {
            let _ = hb.heartbeat("node-1", None).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let snap = server.snapshot();
        let down = snap
            .node("node-0")
            .is_some_and(|n| n.status == status::NODE_DOWN);
        let live: Vec<_> = snap
            .job_allocs("default", "web")
            .iter()
            .filter(|a| !a.terminal())
            .cloned()
            .collect();
        if down && live.len() == 4 && live.iter().all(|a| a.node_id == "node-1") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "allocations were not replaced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    beat.abort();
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_eval_is_unblocked_when_a_node_joins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path())).await.expect("start");
    server.register_node(sim_node(0)).await.expect("node");
    // 50 x 100 MHz does not fit on one 4000 MHz node.
    server
        .register_job(sim_job("big", 50))
        .await
        .expect("register");
    assert!(server.wait_idle(WAIT).await);
    let placed = server
        .wait_for_allocs("default", "big", 50, Duration::from_millis(300))
        .await;
    assert!(placed < 50);
    assert_eq!(server.blocked().len(), 1);
    server.register_node(sim_node(1)).await.expect("node");
    assert_eq!(server.wait_for_allocs("default", "big", 50, WAIT).await, 50);
    server.shutdown();
}

#[test]
fn restart_after_kill_keeps_jobs_allocs_and_evals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("rt");
        let snap = rt.block_on(async {
            let mut c = config(dir.path());
            c.snapshot_threshold = 7; // exercise snapshot + replay
            let server = Server::start(c).await.expect("start");
            server.register_sim_nodes(2).await.expect("nodes");
            server
                .register_job(sim_job("web", 3))
                .await
                .expect("register");
            server
                .register_job(sim_job("api", 2))
                .await
                .expect("register");
            assert_eq!(server.wait_for_allocs("default", "web", 3, WAIT).await, 3);
            assert_eq!(server.wait_for_allocs("default", "api", 2, WAIT).await, 2);
            assert!(server.wait_idle(WAIT).await);
            server.snapshot()
        });
        // No shutdown: the runtime and every task are dropped as a kill would.
        drop(rt);
        snap
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let server = Server::start(config(dir.path())).await.expect("restart");
        let after = server.snapshot();
        assert!(after.index() >= before.index());
        for id in ["web", "api"] {
            let (b, a) = (
                before.job("default", id).expect("job"),
                after.job("default", id).expect("job"),
            );
            assert_eq!(b.version, a.version);
            let mut ba: Vec<_> = before
                .job_allocs("default", id)
                .iter()
                .map(|x| x.id.clone())
                .collect();
            let mut aa: Vec<_> = after
                .job_allocs("default", id)
                .iter()
                .map(|x| x.id.clone())
                .collect();
            ba.sort();
            aa.sort();
            assert_eq!(ba, aa);
        }
        let mut be: Vec<_> = before
            .evals()
            .map(|e| (e.id.clone(), e.status.clone()))
            .collect();
        let mut ae: Vec<_> = after
            .evals()
            .map(|e| (e.id.clone(), e.status.clone()))
            .collect();
        be.sort();
        ae.sort();
        assert_eq!(be, ae);
        assert_eq!(after.node_list().len(), 2);
        assert!(after
            .alloc_with_job(&before.job_allocs("default", "web")[0].id)
            .and_then(|a| a.job)
            .is_some());
        server.shutdown();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_check_counts_the_ports_of_placements_still_being_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path())).await.expect("start");
    server.register_sim_nodes(1).await.expect("nodes");
    let snap = server.snapshot();
    let with_port = |id: &str, port: u16| {
        let mut a = sized(id, "node-0", 10);
        if let Some(r) = a.allocated_resources.as_mut() {
            r.shared
                .ports
                .push(nomad_core::structs::AllocatedPortMapping {
                    label: "http".into(),
                    value: port,
                    to: 0,
                    host_ip: String::new().into(),
                });
        }
        Arc::new(a)
    };
    let plan = |a: Arc<Allocation>| {
        let mut p = Plan {
            eval_id: "e".into(),
            ..Plan::default()
        };
        p.node_allocation.insert("node-0".into(), vec![a]);
        p
    };
    let mut in_flight = BTreeMap::new();
    in_flight.insert(
        "node-0".into(),
        PendingNode::of(&[with_port("first", 25000)], &snap),
    );
    // The same port as a placement in flight collides; another port does not.
    let same = check_plan(&snap, plan(with_port("second", 25000)), &[&in_flight]);
    assert_eq!(same.refused_nodes, 1);
    let other = check_plan(&snap, plan(with_port("third", 25001)), &[&in_flight]);
    assert_eq!(other.refused_nodes, 0);
    // The committed answer lists the placements as the state stored them.
    let first = check_plan(&snap, plan(with_port("first", 25000)), &[]);
    let pending = first.pending;
    let mut result = first.result;
    server
        .apply(first.command.expect("command"))
        .await
        .expect("commit");
    placed_from_state(&mut result, &pending, &server.snapshot());
    let placed = result.node_allocation.get("node-0").expect("node plan");
    assert_eq!(placed.len(), 1);
    assert!(placed[0].create_index > 0);
    assert!(pending
        .get("node-0")
        .is_some_and(|p| p.committed(&server.snapshot())));
    server.shutdown();
}
