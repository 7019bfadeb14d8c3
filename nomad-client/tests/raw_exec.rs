//! raw_exec behaviour beyond the conformance kit: real processes, signals, files.

use std::path::Path;
use std::time::Duration;

use nomad_client::{RawExecConfig, RawExecDriver};
use nomad_core::driver::{DriverError, HealthState, LogConfig, TaskConfig, TaskDirs, TaskDriver};
use serde_json::json;

fn task(dir: &Path, name: &str, script: &str) -> TaskConfig {
    let dirs = TaskDirs::new(dir.join(format!("alloc-{name}")), name);
    for d in dirs.all() {
        std::fs::create_dir_all(d).expect("test setup");
    }
    TaskConfig {
        id: format!("alloc-{name}/{name}/0"),
        alloc_id: format!("alloc-{name}"),
        task_name: name.into(),
        driver_config: json!({ "command": "/bin/sh", "args": ["-c", script] }),
        env: [
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
            (
                "NOMAD_TASK_DIR".to_owned(),
                dirs.local_dir.display().to_string(),
            ),
        ]
        .into(),
        stdout_path: dirs.log_dir.join(format!("{name}.stdout")),
        stderr_path: dirs.log_dir.join(format!("{name}.stderr")),
        dirs,
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

async fn until_printed(config: &TaskConfig, text: &str) {
    for _ in 0..500 {
        if stdout(config).contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the task never printed {text:?}; stdout: {:?}",
        stdout(config)
    );
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn a_disabled_driver_is_undetected_and_refuses_every_task() {
    let dir = tempfile::tempdir().unwrap();
    let driver = RawExecDriver::new(RawExecConfig::default());
    let print = driver.fingerprint().await;
    assert_eq!(print.health, HealthState::Undetected);
    assert!(!print.attributes.contains_key("driver.raw_exec"));
    let config = task(dir.path(), "t", "touch \"$NOMAD_TASK_DIR/ran\"");
    let err = driver.start(&config).await.unwrap_err();
    assert!(matches!(err, DriverError::DriverDisabled { .. }), "{err:?}");
    assert!(err
        .to_string()
        .contains("a disabled driver cannot be used by any job"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!config.dirs.local_dir.join("ran").exists());

    let enabled = RawExecDriver::enabled();
    assert_eq!(
        enabled.fingerprint().await.attributes["driver.raw_exec"],
        "1"
    );
}

#[tokio::test]
async fn output_is_rotated_by_the_task_log_limits() {
    let dir = tempfile::tempdir().unwrap();
    let driver = RawExecDriver::enabled();
    // 2.5 MiB of output into files of 1 MiB, keeping two.
    let mut config = task(
        dir.path(),
        "chatty",
        "head -c 2621440 /dev/zero; echo done >&2",
    );
    config.logs = LogConfig {
        max_files: 2,
        max_file_size_mb: 1,
    };
    driver.start(&config).await.unwrap();
    assert!(driver.wait(&config.id).await.unwrap().successful());
    let size = |n: u32| {
        std::fs::metadata(config.dirs.log_dir.join(format!("chatty.stdout.{n}")))
            .map(|m| m.len())
            .ok()
    };
    assert_eq!(size(0), None, "the oldest file is removed");
    assert_eq!(size(1), Some(1024 * 1024));
    assert_eq!(size(2), Some(512 * 1024));
    let stderr = std::fs::read_to_string(config.dirs.log_dir.join("chatty.stderr.0")).unwrap();
    assert_eq!(stderr, "done\n");
}

#[tokio::test]
async fn the_task_gets_only_its_environment_and_runs_in_its_task_dir() {
    let dir = tempfile::tempdir().unwrap();
    let driver = RawExecDriver::enabled();
    let config = task(dir.path(), "env", "pwd; env");
    driver.start(&config).await.unwrap();
    driver.wait(&config.id).await.unwrap();
    let out = stdout(&config);
    let mut lines = out.lines();
    assert_eq!(
        Path::new(lines.next().unwrap()).canonicalize().unwrap(),
        config.dirs.task_dir.canonicalize().unwrap()
    );
    let vars: Vec<&str> = lines
        .filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL=") && !l.starts_with("_="))
        .collect();
    assert!(vars.contains(&"PATH=/usr/bin:/bin"), "{vars:?}");
    // The test process's own variables (cargo sets CARGO_PKG_NAME) do not leak in.
    assert!(!out.contains("CARGO_PKG_NAME"), "{out}");
    assert_eq!(vars.len(), 2, "{vars:?}");
}

#[tokio::test]
async fn stop_kills_what_the_task_started_in_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let driver = RawExecDriver::enabled();
    let config = task(
        dir.path(),
        "parent",
        "sleep 600 & echo \"child $!\"; echo ready; wait",
    );
    driver.start(&config).await.unwrap();
    until_printed(&config, "ready").await;
    let child: i32 = stdout(&config)
        .lines()
        .find_map(|l| l.strip_prefix("child "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(alive(child));
    let usage = driver.stats(&config.id).await.unwrap();
    assert_eq!(usage.pids, Some(2), "the shell and its sleep");
    driver
        .stop(&config.id, Duration::from_secs(5), "SIGTERM")
        .await
        .unwrap();
    let exit = driver.wait(&config.id).await.unwrap();
    assert_eq!(exit.signal, Some(15));
    for _ in 0..100 {
        if !alive(child) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(child), "the task's child {child} survived the stop");
    driver.destroy(&config.id, false).await.unwrap();
}

#[tokio::test]
async fn signals_reach_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let driver = RawExecDriver::enabled();
    let config = task(
        dir.path(),
        "hup",
        "trap 'echo got-hup' HUP; echo ready; while :; do sleep 0.05; done",
    );
    driver.start(&config).await.unwrap();
    until_printed(&config, "ready").await;
    driver.signal(&config.id, "SIGHUP").await.unwrap();
    until_printed(&config, "got-hup").await;
    assert!(matches!(
        driver.signal(&config.id, "SIGBOGUS").await,
        Err(DriverError::InvalidSignal { .. })
    ));
    let exec = driver
        .exec(
            &config.id,
            &[
                "/bin/sh".into(),
                "-c".into(),
                "echo in $NOMAD_TASK_DIR".into(),
            ],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&exec.stdout),
        format!("in {}\n", config.dirs.local_dir.display())
    );
    driver.destroy(&config.id, true).await.unwrap();
}

#[tokio::test]
async fn a_recovered_task_keeps_logging_and_its_exit_is_reported_as_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let config = task(
        dir.path(),
        "survivor",
        "echo before; read -r _ < \"$NOMAD_TASK_DIR/go\"; echo after; exit 7",
    );
    nix::unistd::mkfifo(
        &config.dirs.local_dir.join("go"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .unwrap();
    let first = RawExecDriver::enabled();
    let handle = first.start(&config).await.unwrap().handle;
    until_printed(&config, "before").await;
    drop(first);

    let second = RawExecDriver::enabled();
    second.recover(&handle).await.unwrap();
    // Let the task go on: it prints again through the pipe the new driver reads.
    std::fs::write(config.dirs.local_dir.join("go"), "go\n").unwrap();
    let exit = second.wait(&config.id).await.unwrap();
    assert_eq!(exit.exit_code, -1);
    assert!(
        exit.error
            .as_deref()
            .unwrap_or("")
            .contains("exit status unknown"),
        "{exit:?}"
    );
    assert!(!exit.successful());
    assert_eq!(stdout(&config), "before\nafter\n");
    second.destroy(&config.id, false).await.unwrap();
}

#[tokio::test]
async fn a_missing_command_fails_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let driver = RawExecDriver::enabled();
    let mut config = task(dir.path(), "missing", "");
    config.driver_config = json!({ "command": "no-such-program-here" });
    let err = driver.start(&config).await.unwrap_err();
    assert!(matches!(err, DriverError::StartFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-program-here"));
    config.driver_config = json!({ "command": "/bin/true", "args": "not a list" });
    let err = driver.start(&config).await.unwrap_err();
    assert!(
        matches!(err, DriverError::InvalidConfig { ref field, .. } if field == "args"),
        "{err:?}"
    );
}
