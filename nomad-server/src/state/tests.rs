use std::sync::Arc;
use std::time::Duration;

use nomad_core::structs::{status, Allocation, Evaluation};
use nomad_sched::SchedState;

use super::*;
use crate::sim::{sim_job, sim_node};

fn alloc(id: &str, node: &str, job: &str) -> Allocation {
    Allocation {
        id: id.into(),
        namespace: "default".into(),
        node_id: node.into(),
        job_id: job.into(),
        task_group: "app".into(),
        desired_status: status::ALLOC_DESIRED_RUN.into(),
        client_status: status::ALLOC_CLIENT_PENDING.into(),
        ..Allocation::default()
    }
}

fn place(store: &StateStore, index: u64, allocs: Vec<Allocation>) {
    store.apply_batch(vec![(
        index,
        Command::ApplyPlan {
            eval_id: "e".into(),
            job: None,
            stops: vec![],
            placed: allocs.into_iter().map(Arc::new).collect(),
            deployment: None,
            deployment_updates: vec![],
            time: 1,
            committed: Default::default(),
        },
    )]);
}

/// Commits a plan that only stops `allocs` (each marked to stop here).
fn stop(store: &StateStore, index: u64, allocs: Vec<Allocation>) {
    store.apply_batch(vec![(
        index,
        Command::ApplyPlan {
            eval_id: "e".into(),
            job: None,
            stops: allocs
                .into_iter()
                .map(|mut a| {
                    a.desired_status = status::ALLOC_DESIRED_STOP.into();
                    Arc::new(a)
                })
                .collect(),
            placed: vec![],
            deployment: None,
            deployment_updates: vec![],
            time: 1,
            committed: Default::default(),
        },
    )]);
}

#[test]
fn snapshots_are_isolated_from_later_writes() {
    let store = StateStore::new();
    store.apply_batch(vec![(
        1,
        Command::UpsertNode {
            node: Box::new(sim_node(0)),
        },
    )]);
    place(&store, 2, vec![alloc("a1", "node-0", "web")]);
    let snap = store.snapshot();
    place(&store, 3, vec![alloc("a2", "node-0", "web")]);
    store.apply_batch(vec![(
        4,
        Command::UpsertNode {
            node: Box::new(sim_node(1)),
        },
    )]);
    assert_eq!(snap.index(), 2);
    assert_eq!(snap.allocs_by_job("default", "web").len(), 1);
    assert_eq!(snap.allocs_by_node(0).len(), 1);
    assert_eq!(SchedState::nodes(&snap).len(), 1);
    let now = store.snapshot();
    assert_eq!(now.allocs_by_job("default", "web").len(), 2);
    assert_eq!(now.allocs_by_node(0).len(), 2);
    assert_eq!(SchedState::nodes(&now).len(), 2);
    assert_eq!(now.ready_nodes("default").len(), 2);
    assert_eq!(now.table_index(Table::Allocs), 3);
    assert_eq!(now.table_index(Table::Nodes), 4);
}

#[test]
fn job_versions_bump_only_on_change() {
    let store = StateStore::new();
    let job = sim_job("web", 2);
    let up = |i, j: &nomad_core::job::Job| {
        store.apply_batch(vec![(
            i,
            Command::UpsertJob {
                job: Box::new(j.clone()),
                eval: None,
                submit_time: 5,
            },
        )]);
    };
    up(1, &job);
    up(2, &job);
    let mut j2 = job.clone();
    j2.task_groups[0].count = Some(3);
    up(3, &j2);
    let snap = store.snapshot();
    let cur = snap.job("default", "web").expect("job");
    assert_eq!(cur.version, Some(1));
    assert_eq!(cur.create_index, Some(1));
    assert_eq!(cur.job_modify_index, Some(3));
    let versions = snap.job_versions("default", "web");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].version, Some(1));
    assert_eq!(versions[1].version, Some(0));
}

#[tokio::test]
async fn blocking_watch_wakes_on_change_of_its_table() {
    let store = Arc::new(StateStore::new());
    store.apply_batch(vec![(
        1,
        Command::UpsertNode {
            node: Box::new(sim_node(0)),
        },
    )]);
    let s2 = Arc::clone(&store);
    let waiter = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        s2.watch_tables(&[Table::Evals], 1, deadline).await.index()
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    // A write to another table does not count.
    store.apply_batch(vec![(
        2,
        Command::UpsertNode {
            node: Box::new(sim_node(1)),
        },
    )]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiter.is_finished());
    store.apply_batch(vec![(
        3,
        Command::UpsertEvals {
            evals: vec![Evaluation {
                id: "e1".into(),
                job_id: "web".into(),
                ..Evaluation::default()
            }],
        },
    )]);
    assert_eq!(waiter.await.expect("join"), 3);
}

#[tokio::test(start_paused = true)]
async fn blocking_watch_returns_at_deadline() {
    let store = StateStore::new();
    store.apply_batch(vec![(1, Command::Noop)]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let snap = store.watch_tables(&[Table::Jobs], 7, deadline).await;
    assert_eq!(snap.index(), 1);
}

#[test]
fn persisted_state_round_trips() {
    let store = StateStore::new();
    let job = sim_job("web", 1);
    store.apply_batch(vec![
        (
            1,
            Command::UpsertNode {
                node: Box::new(sim_node(0)),
            },
        ),
        (
            2,
            Command::UpsertJob {
                job: Box::new(job.clone()),
                eval: None,
                submit_time: 1,
            },
        ),
    ]);
    store.apply_batch(vec![(
        3,
        Command::ApplyPlan {
            eval_id: "e".into(),
            job: Some(Arc::new(
                (*store.snapshot().job("default", "web").expect("job")).clone(),
            )),
            stops: vec![],
            placed: vec![alloc("a1", "node-0", "web").into()],
            deployment: None,
            deployment_updates: vec![],
            time: 1,
            committed: Default::default(),
        },
    )]);
    let p = store.snapshot().to_persisted();
    let text = serde_json::to_string(&p).expect("serialize");
    let back: PersistedState = serde_json::from_str(&text).expect("parse");
    let data = StateData::from_persisted(back);
    assert_eq!(data.index(), 3);
    assert!(data.job("default", "web").is_some());
    assert_eq!(data.node_allocs("node-0").len(), 1);
    let a = data.alloc_with_job("a1").expect("alloc");
    assert_eq!(a.job.map(|j| j.id.clone()), Some("web".to_string()));
    assert_eq!(
        data.job("default", "web").map(|j| j.status.clone()),
        Some("running".into())
    );
}

#[test]
fn stops_keep_the_job_version_and_retired_snapshots_stay_readable() {
    let store = StateStore::new();
    store.apply_batch(vec![(
        1,
        Command::UpsertNode {
            node: Box::new(sim_node(0)),
        },
    )]);
    let job = Arc::new(sim_job("web", 2));
    store.apply_batch(vec![(
        2,
        Command::ApplyPlan {
            eval_id: "e".into(),
            job: Some(Arc::clone(&job)),
            stops: vec![],
            placed: vec![
                Arc::new(alloc("a1", "node-0", "web")),
                Arc::new(alloc("a2", "node-0", "web")),
            ],
            deployment: None,
            deployment_updates: vec![],
            time: 1,
            committed: Default::default(),
        },
    )]);
    let before = store.snapshot();
    stop(&store, 3, vec![alloc("a1", "node-0", "web")]);
    let now = store.snapshot();
    // The stopped allocation still runs the job version it was placed with.
    assert_eq!(
        now.job_of_alloc("a1").map(|j| j.id.clone()),
        Some(job.id.clone())
    );
    assert_eq!(
        now.alloc("a1").map(|a| a.desired_status.clone()),
        Some(status::shared::ALLOC_DESIRED_STOP)
    );
    assert_eq!(
        now.alloc_with_job("a2")
            .and_then(|a| a.job)
            .map(|j| j.id.clone()),
        Some(job.id.clone())
    );
    assert_eq!(now.node_allocs("node-0").len(), 2);
    assert_eq!(now.alloc_count(), 2);
    // A retired snapshot is freed elsewhere; clones of it still read the same state.
    let kept = before.clone();
    store.retire(before);
    assert_eq!(
        kept.alloc("a1").map(|a| a.desired_status.clone()),
        Some(status::shared::ALLOC_DESIRED_RUN)
    );
    store.retire(kept);
    store.retire(now);
    assert_eq!(store.snapshot().alloc_count(), 2);
}

/// An allocation on `node` holding the given host ports on the default network.
fn alloc_with_ports(id: &str, node: &str, ports: &[u16]) -> Allocation {
    use nomad_core::structs::{AllocatedPortMapping, AllocatedResources};
    let mut a = alloc(id, node, "web");
    let mut ar = AllocatedResources::default();
    ar.shared.ports = ports
        .iter()
        .map(|&value| AllocatedPortMapping {
            label: "http".into(),
            value,
            ..AllocatedPortMapping::default()
        })
        .collect();
    a.allocated_resources = Some(ar);
    a
}

#[test]
fn usage_counts_taken_dynamic_ports_through_placements_stops_and_restores() {
    let store = StateStore::new();
    let node = sim_node(0);
    let offered = nomad_net::PortIndex::for_node(&node)
        .expect("port index")
        .dynamic_free(0);
    assert!(offered > 0);
    store.apply_batch(vec![(
        1,
        Command::UpsertNode {
            node: Box::new(node),
        },
    )]);
    let snap = store.snapshot();
    assert_eq!(snap.node_capacity(0).dynamic_ports, offered);
    assert_eq!(snap.node_usage(0).dynamic_ports, 0);

    // Two dynamic ports and one below the dynamic range, which is not counted.
    place(
        &store,
        2,
        vec![
            alloc_with_ports("a1", "node-0", &[20_001, 20_002]),
            alloc_with_ports("a2", "node-0", &[8080]),
        ],
    );
    let snap = store.snapshot();
    assert_eq!(snap.node_usage(0).dynamic_ports, 2);
    let data = StateData::from_persisted(
        serde_json::from_str(&serde_json::to_string(&snap.to_persisted()).expect("serialize"))
            .expect("parse"),
    );
    assert_eq!(
        SchedState::node_usage(&StateSnapshot(Arc::new(data)), 0).dynamic_ports,
        2
    );

    stop(
        &store,
        3,
        vec![alloc_with_ports("a1", "node-0", &[20_001, 20_002])],
    );
    assert_eq!(store.snapshot().node_usage(0).dynamic_ports, 0);
}

#[test]
fn a_commit_signal_fires_once_across_clones_and_is_not_written() {
    let (tx, rx) = std::sync::mpsc::channel();
    let signal = CommitSignal::new(move |i| {
        let _ = tx.send(i);
    });
    let copy = signal.clone();
    copy.fire(7);
    signal.fire(8);
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![7]);
    let cmd = Command::ApplyPlan {
        eval_id: "e".into(),
        job: None,
        stops: vec![],
        placed: vec![],
        deployment: None,
        deployment_updates: vec![],
        time: 1,
        committed: signal,
    };
    let text = serde_json::to_string(&cmd).expect("serialize");
    assert!(!text.contains("ommitted"), "{text}");
    let back: Command = serde_json::from_str(&text).expect("parse");
    assert_eq!(back, cmd);
}
