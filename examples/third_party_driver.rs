//! A task driver written outside the client crate, against nomad-core's `TaskDriver` alone,
//! and checked with the conformance kit.
//!
//! The `script` driver runs a shell script given in the task's config:
//!
//! ```hcl
//! task "hello" {
//!   driver = "script"
//!   config {
//!     script = "echo hello from $NOMAD_TASK_NAME"
//!     shell  = "/bin/sh"   # optional
//!   }
//! }
//! ```
//!
//! The script runs in its own process group, in the task dir, with the task's environment;
//! its output goes to `<stdout_path>.0` and `<stderr_path>.0` (no rotation: a real driver would
//! rotate, as the built-in ones do). Its handle stores the pid and the process's start time
//! from `/proc`, so a restarted agent can recover it; the exit code of a recovered script is
//! not knowable (it is no longer our child) and is reported as -1 with an error.
//!
//! Run it with `cargo run -p nomad-examples --example third_party_driver`; its tests (the
//! conformance kit) run with `cargo test -p nomad-examples --example third_party_driver`.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use nomad_core::driver::{
    Capabilities, ConfigSchema, DriverError, ExitResult, FieldKind, Fingerprint, MemoryUsage,
    StartedTask, TaskConfig, TaskDirs, TaskDriver, TaskHandle, TaskResourceUsage, TaskState,
    TaskStatus,
};
use serde_json::json;
use tokio::sync::watch;

/// The `script` driver.
#[derive(Default)]
pub struct ScriptDriver {
    tasks: Mutex<HashMap<String, Arc<Script>>>,
}

struct Script {
    config: TaskConfig,
    pid: i32,
    start_ticks: u64,
    started_at: SystemTime,
    exit: watch::Receiver<Option<ExitResult>>,
    watcher: tokio::task::AbortHandle,
}

/// Field 22 (start time) and the state of `/proc/<pid>/stat`.
fn proc_start(pid: i32) -> Option<(u64, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    Some((rest.get(19)?.parse().ok()?, rest.first()?.chars().next()?))
}

fn alive(pid: i32, start_ticks: u64) -> bool {
    matches!(proc_start(pid), Some((ticks, state)) if ticks == start_ticks && state != 'Z')
}

fn signal_of(name: &str) -> Result<Signal, DriverError> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&full).map_err(|_| DriverError::InvalidSignal {
        signal: name.to_owned(),
    })
}

fn log_file(base: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut name = base.as_os_str().to_owned();
    name.push(".0");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(name)
}

impl ScriptDriver {
    fn task(&self, task_id: &str) -> Result<Arc<Script>, DriverError> {
        let tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks
            .get(task_id)
            .cloned()
            .ok_or_else(|| DriverError::not_found(task_id))
    }

    fn insert(&self, script: Script) -> Result<(), DriverError> {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if tasks.contains_key(&script.config.id) {
            script.watcher.abort();
            return Err(DriverError::TaskAlreadyExists {
                task_id: script.config.id.clone(),
            });
        }
        tasks.insert(script.config.id.clone(), Arc::new(script));
        Ok(())
    }

    async fn wait_exit(script: &Script, limit: Duration) -> bool {
        let mut exit = script.exit.clone();
        let done = tokio::time::timeout(limit, exit.wait_for(Option::is_some))
            .await
            .is_ok();
        done
    }
}

impl Drop for ScriptDriver {
    fn drop(&mut self) {
        // The agent goes away; the scripts go on running.
        let tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        for script in tasks.values() {
            script.watcher.abort();
        }
    }
}

#[async_trait]
impl TaskDriver for ScriptDriver {
    fn name(&self) -> &str {
        "script"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            send_signals: true,
            ..Capabilities::default()
        }
    }

    async fn fingerprint(&self) -> Fingerprint {
        if std::path::Path::new("/bin/sh").exists() {
            Fingerprint::healthy().with_attribute("driver.script", "1")
        } else {
            Fingerprint::undetected("no /bin/sh")
        }
    }

    fn config_schema(&self) -> ConfigSchema {
        ConfigSchema::new()
            .required("script", FieldKind::String)
            .optional("shell", FieldKind::String)
    }

    async fn start(&self, config: &TaskConfig) -> Result<StartedTask, DriverError> {
        self.validate_config(&config.driver_config)?;
        if self.task(&config.id).is_ok() {
            return Err(DriverError::TaskAlreadyExists {
                task_id: config.id.clone(),
            });
        }
        let script = config.driver_config["script"].as_str().unwrap_or_default();
        let shell = config.driver_config["shell"].as_str().unwrap_or("/bin/sh");
        let failed = |err: std::io::Error| DriverError::start_failed(&config.id, err.to_string());
        let stdout = log_file(&config.stdout_path).map_err(failed)?;
        let stderr = log_file(&config.stderr_path).map_err(failed)?;
        let mut child = tokio::process::Command::new(shell)
            .arg("-c")
            .arg(script)
            .env_clear()
            .envs(&config.env)
            .current_dir(&config.dirs.task_dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(failed)?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        let start_ticks = proc_start(pid).map_or(0, |(ticks, _)| ticks);
        let (sender, exit) = watch::channel(None);
        let watcher = tokio::spawn(async move {
            let result = match child.wait().await {
                Ok(status) => match (status.code(), status.signal()) {
                    (Some(code), _) => ExitResult::code(code),
                    (None, Some(signal)) => ExitResult::signaled(signal),
                    (None, None) => ExitResult::code(-1),
                },
                Err(err) => ExitResult {
                    exit_code: -1,
                    error: Some(err.to_string()),
                    ..Default::default()
                },
            };
            sender.send_replace(Some(result));
        })
        .abort_handle();
        self.insert(Script {
            config: config.clone(),
            pid,
            start_ticks,
            started_at: SystemTime::now(),
            exit,
            watcher,
        })?;
        let state = json!({ "pid": pid, "start_ticks": start_ticks });
        Ok(StartedTask {
            handle: TaskHandle::new("script", config.clone(), state),
            network: None,
        })
    }

    async fn wait(&self, task_id: &str) -> Result<ExitResult, DriverError> {
        let mut exit = self.task(task_id)?.exit.clone();
        let result = exit
            .wait_for(Option::is_some)
            .await
            .map(|done| done.clone().unwrap_or_default())
            .map_err(|_| DriverError::not_found(task_id));
        result
    }

    async fn stop(
        &self,
        task_id: &str,
        timeout: Duration,
        signal: &str,
    ) -> Result<(), DriverError> {
        let script = self.task(task_id)?;
        let signal = signal_of(if signal.is_empty() { "SIGTERM" } else { signal })?;
        if script.exit.borrow().is_some() {
            return Ok(());
        }
        if alive(script.pid, script.start_ticks) {
            let _ = kill(Pid::from_raw(script.pid), signal);
        }
        if !Self::wait_exit(&script, timeout).await {
            let _ = killpg(Pid::from_raw(script.pid), Signal::SIGKILL);
            if !Self::wait_exit(&script, Duration::from_secs(10)).await {
                return Err(DriverError::Timeout {
                    task_id: task_id.into(),
                    operation: "stop".into(),
                });
            }
        }
        let _ = killpg(Pid::from_raw(script.pid), Signal::SIGKILL);
        Ok(())
    }

    async fn destroy(&self, task_id: &str, force: bool) -> Result<(), DriverError> {
        let Ok(script) = self.task(task_id) else {
            return Ok(());
        };
        if script.exit.borrow().is_none() {
            if !force {
                return Err(DriverError::TaskRunning {
                    task_id: task_id.into(),
                });
            }
            self.stop(task_id, Duration::ZERO, "SIGKILL").await?;
        }
        script.watcher.abort();
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(task_id);
        Ok(())
    }

    async fn inspect(&self, task_id: &str) -> Result<TaskStatus, DriverError> {
        let script = self.task(task_id)?;
        let exit = script.exit.borrow().clone();
        Ok(TaskStatus {
            id: script.config.id.clone(),
            name: script.config.task_name.clone(),
            state: if exit.is_some() {
                TaskState::Exited
            } else {
                TaskState::Running
            },
            started_at: Some(script.started_at),
            completed_at: None,
            exit_result: exit,
            driver_attributes: [("pid".to_owned(), script.pid.to_string())].into(),
        })
    }

    async fn recover(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        if handle.driver != "script" {
            return Err(DriverError::InvalidHandle {
                reason: format!("made by {:?}", handle.driver),
            });
        }
        let number = |key: &str| {
            handle
                .driver_state
                .get(key)
                .and_then(serde_json::Value::as_u64)
        };
        let (Some(pid), Some(start_ticks)) = (number("pid"), number("start_ticks")) else {
            return Err(DriverError::InvalidHandle {
                reason: "no pid or start time".into(),
            });
        };
        let pid = i32::try_from(pid).map_err(|_| DriverError::InvalidHandle {
            reason: "bad pid".into(),
        })?;
        if self.task(&handle.config.id).is_ok() {
            return Ok(());
        }
        if !alive(pid, start_ticks) {
            return Err(DriverError::TaskGone {
                task_id: handle.config.id.clone(),
                reason: format!("process {pid} no longer runs"),
            });
        }
        let (sender, exit) = watch::channel(None);
        let watcher = tokio::spawn(async move {
            // Not our child: watch /proc until the process is gone.
            while alive(pid, start_ticks) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            sender.send_replace(Some(ExitResult {
                exit_code: -1,
                error: Some("exit status of a recovered script is unknown".into()),
                ..Default::default()
            }));
        })
        .abort_handle();
        self.insert(Script {
            config: handle.config.clone(),
            pid,
            start_ticks,
            started_at: SystemTime::now(),
            exit,
            watcher,
        })
    }

    async fn stats(&self, task_id: &str) -> Result<TaskResourceUsage, DriverError> {
        let script = self.task(task_id)?;
        if script.exit.borrow().is_some() {
            return Err(DriverError::TaskGone {
                task_id: task_id.into(),
                reason: "exited".into(),
            });
        }
        // The shell's resident pages, from /proc/<pid>/statm (second field).
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", script.pid))
            .map_err(|err| DriverError::other("reading statm", err))?;
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let rss = pages * 4096;
        Ok(TaskResourceUsage {
            timestamp: SystemTime::now(),
            cpu: Default::default(),
            memory: MemoryUsage {
                rss_bytes: rss,
                usage_bytes: rss,
                ..Default::default()
            },
            pids: None,
        })
    }

    async fn signal(&self, task_id: &str, signal: &str) -> Result<(), DriverError> {
        let script = self.task(task_id)?;
        let signal = signal_of(signal)?;
        kill(Pid::from_raw(script.pid), signal).map_err(|err| {
            DriverError::other(format!("sending {signal}"), std::io::Error::from(err))
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let alloc_dir = tempfile::tempdir()?;
    let dirs = TaskDirs::new(alloc_dir.path(), "hello");
    for dir in dirs.all() {
        std::fs::create_dir_all(dir)?;
    }
    let config = TaskConfig {
        id: "example/hello/0".into(),
        task_name: "hello".into(),
        driver_config: json!({ "script": "echo hello from $NOMAD_TASK_NAME" }),
        env: [("NOMAD_TASK_NAME".to_owned(), "hello".to_owned())].into(),
        stdout_path: dirs.log_dir.join("hello.stdout"),
        stderr_path: dirs.log_dir.join("hello.stderr"),
        dirs,
        ..TaskConfig::default()
    };
    let driver: Arc<dyn TaskDriver> = Arc::new(ScriptDriver::default());
    driver.start(&config).await?;
    let exit = driver.wait(&config.id).await?;
    let output = std::fs::read_to_string(config.dirs.log_dir.join("hello.stdout.0"))?;
    print!("{output}");
    println!("exit: {exit:?}");
    driver.destroy(&config.id, false).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomad_driver_conformance::{Conformance, TaskRecipes};
    use serde_json::Value;

    struct Scripts;

    impl TaskRecipes for Scripts {
        fn runs_until_stopped(&self) -> Value {
            json!({ "script": "echo ready; exec sleep 600" })
        }
        fn ignores_stop_signal(&self) -> Value {
            json!({ "script": "trap '' TERM INT; echo ready; while :; do sleep 0.1; done" })
        }
        fn exits_with(&self, code: i32) -> Value {
            json!({ "script": format!("exit {code}") })
        }
        fn prints(&self, text: &str) -> Value {
            // Passed through the environment-free way: single quotes, with quotes escaped.
            json!({ "script": format!("printf %s '{}'", text.replace('\'', "'\\''")) })
        }
        fn prints_env(&self, name: &str) -> Value {
            json!({ "script": format!("printf '%s\\n' \"${name}\"") })
        }
        fn writes_file(&self, dir_env: &str, file: &str, content: &str) -> Value {
            let content = content.replace('\'', "'\\''");
            json!({ "script": format!("printf %s '{content}' > \"${dir_env}/{file}\"") })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_script_driver_passes_the_conformance_kit() {
        let report = Conformance::new(
            || Arc::new(ScriptDriver::default()) as Arc<dyn TaskDriver>,
            Scripts,
        )
        .run()
        .await;
        println!("{report}");
        assert!(report.passed(), "{report}");
    }
}
