//! The exec driver with real containers: the conformance kit, memory limits and OOM kills,
//! the private PID namespace, the shared alloc dir, cgroup cleanup.
//!
//! Isolation needs root. Run as another user, every test but the fingerprint one says it is
//! skipped and returns.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nomad_client::{ExecConfig, ExecDriver};
use nomad_core::driver::{
    DriverError, HealthState, TaskConfig, TaskDirs, TaskDriver, TaskResources,
};
use nomad_driver_conformance::{Conformance, TaskRecipes};
use serde_json::{json, Value};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether the test can run; prints why not when it cannot.
fn runnable(test: &str) -> bool {
    if is_root() {
        return true;
    }
    println!("SKIPPED {test}: the exec driver's isolation needs root");
    false
}

fn driver(state: &Path) -> ExecDriver {
    ExecDriver::new(ExecConfig {
        state_dir: state.to_path_buf(),
        ..ExecConfig::default()
    })
}

fn sh(script: &str, args: &[&str]) -> Value {
    let mut all = vec!["-c", script, "sh"];
    all.extend_from_slice(args);
    json!({ "command": "/bin/sh", "args": all })
}

/// Tasks for exec: `/bin/sh` scripts, run inside the task root.
struct ExecTasks;

impl TaskRecipes for ExecTasks {
    fn runs_until_stopped(&self) -> Value {
        sh("echo ready; exec sleep 600", &[])
    }
    fn ignores_stop_signal(&self) -> Value {
        sh(
            "trap '' TERM INT; echo ready; while :; do sleep 0.1; done",
            &[],
        )
    }
    fn exits_with(&self, code: i32) -> Value {
        sh(&format!("exit {code}"), &[])
    }
    fn prints(&self, text: &str) -> Value {
        sh("printf %s \"$1\"", &[text])
    }
    fn prints_env(&self, name: &str) -> Value {
        json!({ "command": "printenv", "args": [name] })
    }
    fn writes_file(&self, dir_env: &str, file: &str, content: &str) -> Value {
        sh(
            "eval \"d=\\$$1\"; printf %s \"$3\" > \"$d/$2\"",
            &[dir_env, file, content],
        )
    }
}

/// A task of allocation `alloc` (a directory under `root`) running `script`.
fn task(root: &Path, alloc: &str, name: &str, script: &str) -> TaskConfig {
    let dirs = TaskDirs::new(root.join(alloc), name);
    for dir in dirs.all() {
        std::fs::create_dir_all(dir).expect("test setup");
    }
    TaskConfig {
        id: format!("{alloc}/{name}/0"),
        alloc_id: alloc.into(),
        task_name: name.into(),
        driver_config: sh(script, &[]),
        env: [("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned())].into(),
        resources: TaskResources {
            cpu_shares: 100,
            memory_mb: 64,
            ..TaskResources::default()
        },
        stdout_path: dirs.log_dir.join(format!("{name}.stdout")),
        stderr_path: dirs.log_dir.join(format!("{name}.stderr")),
        dirs,
        kill_timeout: Duration::from_secs(5),
        ..TaskConfig::default()
    }
}

fn stdout(config: &TaskConfig) -> String {
    std::fs::read_to_string(
        config
            .dirs
            .log_dir
            .join(format!("{}.stdout.0", config.task_name)),
    )
    .unwrap_or_default()
}

/// The task's cgroup directories in every hierarchy that has them.
fn cgroup_dirs(container_id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/sys/fs/cgroup")
        .expect("reading /sys/fs/cgroup")
        .flatten()
    {
        let dir = entry.path().join("nomad").join(container_id);
        if dir.exists() {
            found.push(dir);
        }
    }
    let v2 = Path::new("/sys/fs/cgroup/nomad").join(container_id);
    if v2.exists() {
        found.push(v2);
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_passes_the_conformance_kit() {
    if !runnable("exec_passes_the_conformance_kit") {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_path_buf();
    let report = Conformance::new(
        move || Arc::new(driver(&state_dir)) as Arc<dyn TaskDriver>,
        ExecTasks,
    )
    .run()
    .await;
    println!("{report}");
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_past_its_memory_limit_is_oom_killed_and_reported_so() {
    if !runnable("a_task_past_its_memory_limit_is_oom_killed_and_reported_so") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir.path().join("state"));
    // The string doubles until it no longer fits in 32 MB.
    let mut config = task(
        dir.path(),
        "oom",
        "hog",
        "echo started; s=xxxxxxxx; while :; do s=\"$s$s\"; done",
    );
    config.resources.memory_mb = 32;
    driver.start(&config).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(30), driver.wait(&config.id))
        .await
        .expect("the task was not killed within 30 s")
        .unwrap();
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!(exit.signal, Some(9), "{exit:?}");
    assert!(!exit.successful());
    assert!(stdout(&config).contains("started"));
    driver.destroy(&config.id, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_sees_no_host_processes() {
    if !runnable("the_task_sees_no_host_processes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir.path().join("state"));
    let config = task(
        dir.path(),
        "pids",
        "ps",
        "echo \"self $$\"; ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '; echo; ps -e -o pid= | wc -l",
    );
    driver.start(&config).await.unwrap();
    let exit = driver.wait(&config.id).await.unwrap();
    assert!(exit.successful(), "{exit:?}");
    let out = stdout(&config);
    let mut lines = out.lines();
    // Process 1 is the driver's own first process; the shell is the task.
    assert_eq!(lines.next(), Some("self 2"), "{out}");
    let pids: Vec<u32> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(|pid| pid.parse().unwrap())
        .collect();
    assert!(pids.iter().all(|pid| *pid < 10), "{out}");
    assert!(pids.contains(&1) && pids.contains(&2), "{out}");
    // ps lists process 1, the shell, ps itself and the pipeline's wc: no host process.
    let listed: u32 = lines.next().unwrap_or_default().trim().parse().unwrap();
    assert!(listed <= 5, "{out}");
    let host = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().parse::<u32>().is_ok())
        .count();
    assert!(
        host > 10,
        "the host should have many processes, found {host}"
    );
    driver.destroy(&config.id, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alloc_dir_is_shared_by_the_tasks_of_an_alloc_and_host_dirs_are_read_only() {
    if !runnable("the_alloc_dir_is_shared_by_the_tasks_of_an_alloc_and_host_dirs_are_read_only") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir.path().join("state"));
    let writer = task(
        dir.path(),
        "shared",
        "writer",
        "echo hello from the writer > /alloc/x; touch /usr/escape 2>/dev/null && echo wrote-usr; \
         echo local > /local/mine",
    );
    driver.start(&writer).await.unwrap();
    assert!(driver.wait(&writer.id).await.unwrap().successful());
    assert!(
        !stdout(&writer).contains("wrote-usr"),
        "{}",
        stdout(&writer)
    );
    assert!(!Path::new("/usr/escape").exists());
    assert_eq!(
        std::fs::read_to_string(writer.dirs.local_dir.join("mine")).unwrap(),
        "local\n"
    );

    let reader = task(dir.path(), "shared", "reader", "cat /alloc/x; ls /local");
    driver.start(&reader).await.unwrap();
    assert!(driver.wait(&reader.id).await.unwrap().successful());
    // The reader sees the writer's /alloc/x, but its own, empty, /local.
    assert_eq!(stdout(&reader), "hello from the writer\n");
    driver.destroy(&writer.id, false).await.unwrap();
    driver.destroy(&reader.id, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroups_enforce_the_task_resources_and_are_gone_after_destroy() {
    if !runnable("cgroups_enforce_the_task_resources_and_are_gone_after_destroy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir.path().join("state"));
    let mut config = task(dir.path(), "cg", "limits", "echo ready; exec sleep 600");
    config.resources = TaskResources {
        cpu_shares: 250,
        memory_mb: 48,
        memory_max_mb: 96,
        reserved_cores: vec![0],
    };
    driver.start(&config).await.unwrap();
    for _ in 0..500 {
        if stdout(&config).contains("ready") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = driver.inspect(&config.id).await.unwrap();
    let id = status.driver_attributes["container_id"].clone();
    let dirs = cgroup_dirs(&id);
    assert!(!dirs.is_empty(), "no cgroup for {id}");
    let read = |controller: &str, file: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{controller}/nomad/{id}/{file}"))
            .map(|text| text.trim().to_owned())
    };
    if Path::new("/sys/fs/cgroup/memory").is_dir() {
        assert_eq!(
            read("memory", "memory.limit_in_bytes").unwrap(),
            (96u64 << 20).to_string()
        );
        assert_eq!(
            read("memory", "memory.soft_limit_in_bytes").unwrap(),
            (48u64 << 20).to_string()
        );
        assert_eq!(read("cpu", "cpu.shares").unwrap(), "250");
        assert_eq!(read("cpuset", "cpuset.cpus").unwrap(), "0");
    } else {
        assert_eq!(read("", "memory.max").unwrap(), (96u64 << 20).to_string());
    }
    let usage = driver.stats(&config.id).await.unwrap();
    assert!(
        usage.memory.usage_bytes > 0 && usage.pids >= Some(2),
        "{usage:?}"
    );

    driver.destroy(&config.id, true).await.unwrap();
    assert_eq!(cgroup_dirs(&id), Vec::<PathBuf>::new());
    assert!(matches!(
        driver.inspect(&config.id).await,
        Err(DriverError::TaskNotFound { .. })
    ));
    // Nothing is left in the state dir either.
    let state_entries: Vec<_> = ["containers", "bundles"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(dir.path().join("state").join(sub)).into_iter())
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    assert!(state_entries.is_empty(), "{state_entries:?}");
}

#[tokio::test]
async fn fingerprint_reports_whether_the_driver_can_isolate_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let print = driver(dir.path()).fingerprint().await;
    if is_root() {
        assert_eq!(print.health, HealthState::Healthy, "{}", print.description);
        assert_eq!(print.attributes["driver.exec"], "1");
        let disabled = ExecDriver::new(ExecConfig {
            enabled: false,
            state_dir: dir.path().to_path_buf(),
            ..ExecConfig::default()
        });
        assert_eq!(disabled.fingerprint().await.health, HealthState::Undetected);
        let config = task(dir.path(), "off", "t", "touch /local/ran");
        let err = disabled.start(&config).await.unwrap_err();
        assert!(matches!(err, DriverError::DriverDisabled { .. }), "{err:?}");
        assert!(!config.dirs.local_dir.join("ran").exists());
    } else {
        assert_eq!(print.health, HealthState::Undetected);
        assert!(print.description.contains("root"), "{}", print.description);
        let config = task(dir.path(), "nonroot", "t", "true");
        let err = driver(dir.path()).start(&config).await.unwrap_err();
        assert!(
            matches!(err, DriverError::DriverUnhealthy { .. }),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn an_unknown_config_field_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(dir.path());
    let err = driver
        .validate_config(&json!({ "command": "/bin/true", "chroot_env": {} }))
        .unwrap_err();
    assert!(
        matches!(&err, DriverError::InvalidConfig { field, .. } if field == "chroot_env"),
        "{err:?}"
    );
    assert!(driver
        .validate_config(&json!({ "command": "/bin/true", "args": ["-x"] }))
        .is_ok());
}
