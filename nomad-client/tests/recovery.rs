//! Recovery: an agent with a redb state dir runs 20 raw_exec tasks, is killed with SIGKILL
//! and started again; the new agent re-attaches to the same processes and starts nothing
//! twice.
//!
//! The agent is this test binary run again with `NOMAD_TEST_AGENT_DIR` set (see
//! [`agent_process`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nomad_client::{ClientBuilder, RawExecDriver};
use nomad_core::job::{Duration as JobDuration, Job, RestartPolicy, Task, TaskGroup};
use nomad_core::structs::Allocation;
use serde_json::json;

const TASKS: usize = 20;
const AGENT_DIR: &str = "NOMAD_TEST_AGENT_DIR";
const AGENT_GEN: &str = "NOMAD_TEST_AGENT_GEN";
const AGENT_MARK: &str = "NOMAD_TEST_AGENT_MARK";

fn allocation(mark: &str) -> Allocation {
    let tasks = (0..TASKS)
        .map(|i| Task {
            name: format!("t{i:02}"),
            driver: "raw_exec".into(),
            config: BTreeMap::from([
                ("command".to_owned(), json!("/usr/bin/sleep")),
                ("args".to_owned(), json!([mark])),
            ]),
            kill_timeout: Some(JobDuration::from_secs(1)),
            ..Task::default()
        })
        .collect();
    let job = Job {
        id: "recover".into(),
        name: "recover".into(),
        job_type: Some("service".into()),
        task_groups: vec![TaskGroup {
            name: "g".into(),
            tasks,
            restart_policy: Some(RestartPolicy {
                attempts: Some(0),
                mode: Some("fail".into()),
                ..RestartPolicy::default()
            }),
            ..TaskGroup::default()
        }],
        ..Job::default()
    };
    Allocation {
        id: "recover-alloc".into(),
        name: "recover.g[0]".into(),
        namespace: "default".into(),
        job_id: "recover".into(),
        task_group: "g".into(),
        job: Some(std::sync::Arc::new(job)),
        desired_status: "run".into(),
        ..Allocation::default()
    }
}

/// The agent: restores its state or runs the allocation, then reports the tasks' pids,
/// states and `Started` counts once all run, and lives until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_process() {
    let Ok(dir) = std::env::var(AGENT_DIR) else {
        return; // Only meaningful as the child of `recovery_reattaches_to_the_same_processes`.
    };
    let dir = PathBuf::from(dir);
    let generation = std::env::var(AGENT_GEN).unwrap();
    let mark = std::env::var(AGENT_MARK).unwrap();
    let client = ClientBuilder::new(dir.join("alloc"))
        .state_dir(dir.join("state"))
        .driver(Arc::new(RawExecDriver::enabled()))
        .build()
        .await
        .unwrap();
    let mut restored = client.restore().await.unwrap();
    let handle = match restored.pop() {
        Some(h) => h,
        None => client.run_alloc(allocation(&mark)).unwrap(),
    };
    let mut states = handle.watch_states();
    states
        .wait_for(|s| s.len() == TASKS && s.values().all(|t| t.state == "running"))
        .await
        .unwrap();
    let handles = handle.task_handles();
    let states = handle.task_states();
    let report: BTreeMap<String, serde_json::Value> = states
        .iter()
        .map(|(name, s)| {
            let started = s
                .events
                .iter()
                .filter(|e| e.event_type == "Started")
                .count();
            let pid = handles.get(name).map(|h| h.driver_state["pid"].clone());
            (
                name.clone(),
                json!({ "pid": pid, "state": s.state, "started": started, "restarts": s.restarts }),
            )
        })
        .collect();
    let path = dir.join(format!("report-{generation}.json"));
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&report).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    std::future::pending::<()>().await;
}

fn spawn_agent(dir: &Path, generation: u32, mark: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "agent_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(AGENT_DIR, dir)
        .env(AGENT_GEN, generation.to_string())
        .env(AGENT_MARK, mark)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("agent spawns")
}

fn wait_report(
    dir: &Path,
    generation: u32,
    agent: &mut Child,
) -> BTreeMap<String, serde_json::Value> {
    let path = dir.join(format!("report-{generation}.json"));
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Ok(bytes) = std::fs::read(&path) {
            return serde_json::from_slice(&bytes).expect("report");
        }
        if let Ok(Some(status)) = agent.try_wait() {
            panic!("agent {generation} exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "agent {generation} never reported"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Processes whose command line is `sleep <mark>`.
fn processes_with(mark: &str) -> Vec<i32> {
    let want = format!("/usr/bin/sleep\0{mark}\0");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if cmdline == want.as_bytes() {
                pids.push(pid);
            }
        }
    }
    pids.sort_unstable();
    pids
}

fn pids(report: &BTreeMap<String, serde_json::Value>) -> Vec<i32> {
    let mut pids: Vec<i32> = report
        .values()
        .map(|t| t["pid"].as_i64().expect("pid") as i32)
        .collect();
    pids.sort_unstable();
    pids
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in processes_with(&self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[test]
fn recovery_reattaches_to_the_same_processes() {
    if std::env::var(AGENT_DIR).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A sleep length no other process uses: it marks this test's tasks.
    let mark = format!(
        "{}.{}",
        5000 + std::process::id() % 1000,
        std::process::id()
    );
    let _cleanup = Cleanup(mark.clone());

    let mut first = spawn_agent(dir.path(), 1, &mark);
    let before = wait_report(dir.path(), 1, &mut first);
    assert_eq!(before.len(), TASKS);
    assert_eq!(processes_with(&mark), pids(&before));

    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    // The tasks outlive the agent.
    assert_eq!(processes_with(&mark).len(), TASKS);

    let mut second = spawn_agent(dir.path(), 2, &mark);
    let after = wait_report(dir.path(), 2, &mut second);
    second.kill().unwrap();
    second.wait().unwrap();

    assert_eq!(pids(&after), pids(&before), "the same processes");
    assert_eq!(
        processes_with(&mark),
        pids(&before),
        "nothing started twice"
    );
    for (name, task) in &after {
        assert_eq!(task["state"], "running", "{name}");
        assert_eq!(task["started"], 1, "{name} started once");
        assert_eq!(task["restarts"], 0, "{name}");
    }
}
