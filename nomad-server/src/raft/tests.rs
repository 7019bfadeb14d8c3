use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::sim::sim_node;

const WAIT: Duration = Duration::from_secs(60);

fn fast(node_id: NodeId) -> LogOptions {
    LogOptions {
        node_id,
        advertise: format!("127.0.0.1:{}", 4646 + node_id),
        heartbeat_interval: Duration::from_millis(50),
        election_timeout: Duration::from_millis(200),
        ..LogOptions::default()
    }
}

/// Opens the node at `path`, retrying while a stopped node of the same file still holds it.
async fn open(path: &Path, state: Arc<StateStore>, opts: LogOptions) -> RaftLog {
    let network = InProcessNetwork::new();
    let mut last = None;
    for _ in 0..200 {
        match RaftLog::open(
            path,
            Arc::clone(&state),
            opts.clone(),
            network.factory(opts.node_id),
        )
        .await
        {
            Ok(log) => {
                network.register(&log);
                return log;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("raft log could not be reopened: {last:?}");
}

fn upsert(i: usize) -> Command {
    Command::UpsertNode {
        node: Box::new(sim_node(i)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_recovers_from_redb_without_reinitialising() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("raft.db");
    let (membership_at, vote, last_index) = {
        let state = Arc::new(StateStore::new());
        let log = open(&path, Arc::clone(&state), fast(1)).await;
        assert!(!log.is_initialized().await.expect("initialized"));
        log.bootstrap(WAIT).await.expect("bootstrap");
        assert!(log.is_leader());
        assert_eq!(log.peers(), vec!["127.0.0.1:4647".to_string()]);
        assert_eq!(log.leader().as_deref(), Some("127.0.0.1:4647"));
        let mut last = 0;
        for i in 0..10 {
            let a = log.apply(upsert(i)).await.expect("apply");
            assert!(a.index > last, "indexes grow");
            last = a.index;
        }
        assert_eq!(state.index(), last, "the state index is the log index");
        assert_eq!(log.applied_index(), last);
        let m = log.raft().metrics().borrow().clone();
        log.shutdown().await;
        (*m.membership_config.log_id(), m.vote, last)
    };

    let state = Arc::new(StateStore::new());
    let log = open(&path, Arc::clone(&state), fast(1)).await;
    assert!(
        log.is_initialized().await.expect("initialized"),
        "the vote and log are recovered from the file"
    );
    // Committed entries are replayed when the node opens.
    log.bootstrap(WAIT).await.expect("bootstrap");
    let a = log.apply(Command::Noop).await.expect("apply after restart");
    assert!(a.index > last_index);
    assert_eq!(state.snapshot().node_list().len(), 10);
    let m = log.raft().metrics().borrow().clone();
    assert_eq!(
        *m.membership_config.log_id(),
        membership_at,
        "no second initialisation"
    );
    assert_eq!(m.vote.leader_id, vote.leader_id, "same term and leader");
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_purge_then_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("raft.db");
    let opts = LogOptions {
        snapshot_threshold: 5,
        logs_to_keep: 0,
        ..fast(1)
    };
    let last = {
        let state = Arc::new(StateStore::new());
        let log = open(&path, Arc::clone(&state), opts.clone()).await;
        log.bootstrap(WAIT).await.expect("bootstrap");
        let mut last = 0;
        for i in 0..30 {
            last = log.apply(upsert(i)).await.expect("apply").index;
        }
        // A trigger that arrives while a periodic snapshot (every 5 entries) is still
        // being built is dropped: trigger again until the snapshot covers the last entry.
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            log.trigger_snapshot().await.expect("snapshot");
            let done = log
                .raft()
                .wait(Some(Duration::from_secs(2)))
                .metrics(
                    |m| {
                        m.snapshot.map(|s| s.index) == Some(last)
                            && m.purged.map(|p| p.index) == Some(last)
                    },
                    "snapshot at the last entry and the log purged up to it",
                )
                .await;
            if done.is_ok() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no snapshot at the last entry: {done:?}"
            );
        }
        assert_eq!(log.snapshot_index(), last);
        log.shutdown().await;
        last
    };

    let state = Arc::new(StateStore::new());
    let log = open(&path, Arc::clone(&state), opts).await;
    // Before any new write, the state is the snapshot's.
    assert_eq!(state.index(), last);
    assert_eq!(state.snapshot().node_list().len(), 30);
    assert_eq!(log.applied_index(), last);
    log.raft()
        .wait(Some(WAIT))
        .metrics(
            |m| {
                m.purged.map(|p| p.index) == Some(last) && m.snapshot.map(|s| s.index) == Some(last)
            },
            "the purge point and snapshot recovered",
        )
        .await
        .expect("recovered");
    log.bootstrap(WAIT).await.expect("bootstrap");
    let a = log.apply(upsert(30)).await.expect("apply after restart");
    assert!(a.index > last);
    assert_eq!(state.snapshot().node_list().len(), 31);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_in_process_elect_replicate_and_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let network = InProcessNetwork::new();
    let mut nodes = Vec::new();
    let mut voters = BTreeMap::new();
    for id in 1..=3u64 {
        let state = Arc::new(StateStore::new());
        let opts = LogOptions {
            snapshot_threshold: 10,
            logs_to_keep: 2,
            ..fast(id)
        };
        voters.insert(id, BasicNode::new(opts.advertise.clone()));
        let log = RaftLog::open(
            &dir.path().join(format!("raft-{id}.db")),
            Arc::clone(&state),
            opts,
            network.factory(id),
        )
        .await
        .expect("open");
        network.register(&log);
        nodes.push((log, state));
    }
    nodes[0].0.initialize(voters).await.expect("initialize");
    let mut leader = 0;
    for (log, _) in &nodes {
        leader = log.wait_for_leader(WAIT).await.expect("leader");
    }
    let lead = &nodes[(leader - 1) as usize].0;
    assert!(lead.is_leader());
    assert_eq!(lead.peers().len(), 3);
    let follower = nodes
        .iter()
        .find(|(l, _)| l.node_id() != leader)
        .map(|(l, _)| l)
        .expect("a follower");
    assert!(!follower.is_leader());
    assert_eq!(follower.leader(), lead.leader());
    assert!(matches!(
        follower.apply(Command::Noop).await,
        Err(ServerError::NoLeader)
    ));

    let mut last = 0;
    for i in 0..25 {
        last = lead.apply(upsert(i)).await.expect("apply").index;
    }
    for (log, state) in &nodes {
        log.raft()
            .wait(Some(WAIT))
            .applied_index_at_least(Some(last), "replicated")
            .await
            .expect("applied");
        assert_eq!(state.index(), last);
    }
    let ids = |s: &StateStore| {
        let mut v: Vec<String> = s
            .snapshot()
            .node_list()
            .iter()
            .map(|n| n.id.to_string())
            .collect();
        v.sort();
        v
    };
    let first = ids(&nodes[0].1);
    assert_eq!(first.len(), 25);
    for (_, state) in &nodes[1..] {
        assert_eq!(ids(state), first, "every state store agrees");
    }
    assert!(follower.last_contact_ms() < 5_000);

    // Cut the leader off: the other two elect a new one and keep accepting writes.
    network.set_isolated(leader, true);
    let survivors: Vec<_> = nodes
        .iter()
        .filter(|(l, _)| l.node_id() != leader)
        .collect();
    let new_leader = survivors[0]
        .0
        .raft()
        .wait(Some(WAIT))
        .metrics(
            |m| m.current_leader.is_some_and(|l| l != leader),
            "a new leader",
        )
        .await
        .expect("re-election")
        .current_leader
        .expect("leader");
    let lead2 = &nodes[(new_leader - 1) as usize].0;
    let a = lead2.apply(upsert(99)).await.expect("apply via new leader");
    for (log, state) in &survivors {
        log.raft()
            .wait(Some(WAIT))
            .applied_index_at_least(Some(a.index), "replicated")
            .await
            .expect("applied");
        assert!(state.snapshot().node("node-99").is_some());
    }
    // Healed, the old leader catches up (from a snapshot or the log).
    network.set_isolated(leader, false);
    let old = &nodes[(leader - 1) as usize];
    old.0
        .raft()
        .wait(Some(WAIT))
        .applied_index_at_least(Some(a.index), "caught up")
        .await
        .expect("caught up");
    assert_eq!(ids(&old.1), ids(&survivors[0].1));
    for (log, _) in &nodes {
        log.shutdown().await;
    }
}

#[tokio::test]
async fn a_file_of_the_earlier_log_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("raft.db");
    {
        let db = redb::Database::create(&path).expect("create");
        let w = db.begin_write().expect("write");
        w.open_table(redb::TableDefinition::<u64, &[u8]>::new("log"))
            .expect("table");
        w.commit().expect("commit");
    }
    let err = RaftLog::open(
        &path,
        Arc::new(StateStore::new()),
        fast(1),
        InProcessNetwork::new().factory(1),
    )
    .await
    .err()
    .expect("refused");
    assert!(
        err.to_string().contains("earlier single-voter log"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_entries_and_each_gets_its_own_effects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("raft.db");
    let state = Arc::new(StateStore::new());
    let log = open(&path, Arc::clone(&state), fast(1)).await;
    log.bootstrap(WAIT).await.expect("bootstrap");
    let before = log.applied_index();

    // A lone write is an entry of its own.
    let one = log.apply(upsert(0)).await.expect("apply");
    assert!(one.index > before);
    assert!(one.effects.batch.is_empty());

    let writers = 200;
    let mut tasks = Vec::new();
    for i in 1..=writers {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let node = sim_node(i);
            let eval = nomad_core::structs::Evaluation {
                id: format!("eval-{i}"),
                status: "pending".into(),
                ..Default::default()
            };
            let fx = log
                .apply(Command::UpsertEvals { evals: vec![eval] })
                .await
                .expect("apply eval");
            let nx = log
                .apply(Command::UpsertNode {
                    node: Box::new(node),
                })
                .await
                .expect("apply node");
            (i, fx, nx)
        }));
    }
    let mut indexes = std::collections::BTreeSet::new();
    for t in tasks {
        let (i, fx, nx) = t.await.expect("writer");
        assert_eq!(
            fx.effects.evals.len(),
            1,
            "each writer sees its own effects"
        );
        assert_eq!(fx.effects.evals[0].id, format!("eval-{i}"));
        assert!(nx.effects.evals.is_empty() && nx.effects.batch.is_empty());
        assert!(nx.index > fx.index, "a writer's second write comes later");
        indexes.insert(fx.index);
        indexes.insert(nx.index);
    }
    let entries = log.applied_index() - one.index;
    assert!(
        entries < 2 * writers as u64,
        "{entries} entries for {} writes: concurrent writes were batched",
        2 * writers
    );
    let snap = state.snapshot();
    assert_eq!(snap.node_list().len(), writers + 1);
    assert_eq!(snap.evals().count(), writers);
    assert!(indexes.len() as u64 <= entries);

    // Batched entries replay in order after a restart.
    log.shutdown().await;
    let again = Arc::new(StateStore::new());
    let log = open(&path, Arc::clone(&again), fast(1)).await;
    log.wait_for_leader(WAIT).await.expect("leader");
    let snap = again.snapshot();
    assert_eq!(snap.node_list().len(), writers + 1);
    assert_eq!(snap.evals().count(), writers);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_the_log_in_call_order_when_awaited_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = Arc::new(StateStore::new());
    let log = open(&dir.path().join("raft.db"), Arc::clone(&state), fast(1)).await;
    log.bootstrap(WAIT).await.expect("bootstrap");
    // Futures made in order, awaited newest first: the entries still follow the calls.
    let pending: Vec<_> = (0..40)
        .map(|i| ReplicatedLog::apply(&log, upsert(i)))
        .collect();
    let mut indexes = Vec::new();
    for f in pending.into_iter().rev() {
        indexes.push(f.await.expect("applied").index);
    }
    indexes.reverse();
    assert!(indexes.windows(2).all(|w| w[0] <= w[1]), "{indexes:?}");
    // Node positions are given in registration order: the order of the calls.
    let snap = state.snapshot();
    for i in 0..40 {
        let n = sim_node(i);
        assert_eq!(
            nomad_sched::SchedState::node_idx(&snap, &n.id),
            Some(i as nomad_sched::NodeIdx)
        );
    }
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_entry_signals_its_index_once_committed_before_it_is_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = Arc::new(StateStore::new());
    let log = open(&dir.path().join("raft.db"), Arc::clone(&state), fast(1)).await;
    log.bootstrap(WAIT).await.expect("bootstrap");
    ReplicatedLog::apply(&log, upsert(0)).await.expect("node");
    let (tx, rx) = std::sync::mpsc::channel();
    let seen = Arc::clone(&state);
    let plan = Command::ApplyPlan {
        eval_id: "e".into(),
        job: None,
        stops: Vec::new(),
        placed: vec![Arc::new(nomad_core::structs::Allocation {
            id: "a1".into(),
            namespace: "default".into(),
            node_id: sim_node(0).id,
            job_id: "web".into(),
            task_group: "app".into(),
            ..nomad_core::structs::Allocation::default()
        })],
        deployment: None,
        deployment_updates: Vec::new(),
        time: 1,
        // Records the index it is told and how far the state had got at that moment.
        committed: crate::CommitSignal::new(move |index| {
            let _ = tx.send((index, seen.index(), seen.snapshot().alloc("a1").is_some()));
        }),
    };
    // In a batch with another command, as the applier writes several plans.
    let applied = ReplicatedLog::apply(
        &log,
        Command::Batch {
            commands: vec![upsert(1), plan],
        },
    )
    .await
    .expect("applied");
    let (index, state_then, alloc_then) = rx.try_recv().expect("signalled");
    assert_eq!(index, applied.index);
    assert!(
        state_then < index,
        "state at {state_then} already held entry {index}"
    );
    assert!(!alloc_then, "the allocation was applied before the signal");
    assert!(rx.try_recv().is_err(), "signalled twice");
    assert!(state.snapshot().alloc("a1").is_some());
    log.shutdown().await;
}
