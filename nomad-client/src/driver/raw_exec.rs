//! The `raw_exec` driver: a command run unisolated on the host, in its own process group.

use super::exit::{stop_signal_name, ExitWatch, Exited};
use super::table::{CpuRate, TaskTable, TrackedTask};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use nix::sys::signal::Signal;
use nomad_core::driver::{
    Capabilities, ConfigSchema, DriverError, DriverEvent, EventFanout, EventSink, ExecResult,
    ExitResult, FieldKind, Fingerprint, FsIsolation, MountConfigSupport, NetIsolationMode,
    StartedTask, TaskConfig, TaskDriver, TaskHandle, TaskResourceUsage, TaskStatus,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::output::TaskOutput;
use super::process;

const NAME: &str = "raw_exec";
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long a killed task may take to die before stop reports a timeout.
const KILL_GRACE: Duration = Duration::from_secs(10);
/// How often a recovered task, which is not our child, is looked for in `/proc`.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// What a recovered task's exit reports when the driver cannot know its exit status.
const UNKNOWN_EXIT: &str =
    "exit status unknown: the task was recovered after an agent restart and is not a child of this agent";

/// The client configuration of the `raw_exec` driver (its `plugin "raw_exec"` block).
///
/// The driver runs tasks unisolated, as the agent's user, so it is disabled unless enabled
/// here; a disabled driver fingerprints as undetected and refuses every task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RawExecConfig {
    /// Whether jobs may use the driver.
    pub enabled: bool,
}

/// The `raw_exec` task driver.
///
/// A task's `config` block has `command` (a program in the task's `PATH`, or a path relative
/// to the task dir) and `args`. The command runs in its own process group with exactly the
/// task's environment and the task dir as working directory; its standard output and error go
/// to the task's rotated log files through named pipes in the log dir, which the task keeps
/// open, so the task survives an agent restart and a recovering driver picks its output up.
///
/// Stopping sends the task's signal to the command, then, after the timeout (or as soon as
/// the command exited), SIGKILL to its whole process group. Stats sum every process of the
/// group from `/proc`.
///
/// A handle stores the command's pid and its start time, so that recovery never mistakes a
/// new process that reused the pid for the task. A recovered task is not a child of the new
/// agent, so its exit status cannot be read: its [`ExitResult`] then has `exit_code` -1 and
/// an `error` saying so, or `signal` 9 when the driver itself killed it.
#[derive(Debug)]
pub struct RawExecDriver {
    config: RawExecConfig,
    tasks: TaskTable<RawTask>,
    events: EventFanout,
}

/// What a raw_exec handle stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RawExecState {
    pid: i32,
    start_ticks: u64,
    stdout_fifo: Option<PathBuf>,
    stderr_fifo: Option<PathBuf>,
}

/// A task's `config` block.
#[derive(Debug, Deserialize)]
struct RawExecTaskConfig {
    command: String,
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Debug)]
struct RawTask {
    config: TaskConfig,
    state: RawExecState,
    started_at: SystemTime,
    exit: watch::Receiver<Option<Exited>>,
    background: Vec<AbortHandle>,
    killed: Arc<AtomicBool>,
    cpu_rate: CpuRate,
}

impl ExitWatch for RawTask {
    fn exit_rx(&self) -> &watch::Receiver<Option<Exited>> {
        &self.exit
    }
}

impl TrackedTask for RawTask {
    fn config(&self) -> &TaskConfig {
        &self.config
    }
    fn started_at(&self) -> SystemTime {
        self.started_at
    }
    fn background(&self) -> &[AbortHandle] {
        &self.background
    }
    fn driver_attributes(&self) -> BTreeMap<String, String> {
        [("pid".to_owned(), self.state.pid.to_string())].into()
    }
}

impl RawExecDriver {
    /// A driver with the given client configuration.
    pub fn new(config: RawExecConfig) -> Self {
        Self {
            config,
            tasks: TaskTable::default(),
            events: EventFanout::new(),
        }
    }

    /// A driver that is enabled.
    pub fn enabled() -> Self {
        Self::new(RawExecConfig { enabled: true })
    }

    fn check_enabled(&self) -> Result<(), DriverError> {
        if self.config.enabled {
            Ok(())
        } else {
            Err(DriverError::DriverDisabled {
                driver: NAME.into(),
            })
        }
    }

    /// Kills the whole group and waits for the command to be gone.
    async fn kill(&self, task: &RawTask) -> Result<(), DriverError> {
        task.killed.store(true, Ordering::SeqCst);
        process::signal_group(task.state.pid, Signal::SIGKILL)?;
        if task.wait_exit(KILL_GRACE).await {
            Ok(())
        } else {
            Err(DriverError::Timeout {
                task_id: task.config.id.clone(),
                operation: "kill".into(),
            })
        }
    }
}

impl Drop for RawExecDriver {
    /// Stops watching the tasks, as an agent that exits does; the tasks themselves go on
    /// running so that another driver instance can recover them.
    fn drop(&mut self) {
        self.tasks.stop_following_all();
    }
}

pub(crate) fn exit_from_status(status: ExitStatus) -> ExitResult {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitResult::code(code),
        (None, Some(signal)) => ExitResult::signaled(signal),
        (None, None) => ExitResult {
            exit_code: -1,
            error: Some(format!("unrecognised exit status {status}")),
            ..ExitResult::default()
        },
    }
}

/// The named pipe a stream's log is fed through: `<log dir>/.<task>.stdout.fifo`.
pub(crate) fn fifo_path(log_base: &Path) -> Option<PathBuf> {
    let name = log_base.file_name()?.to_string_lossy().into_owned();
    Some(log_base.with_file_name(format!(".{name}.fifo")))
}

/// Everything `start` prepares on disk before spawning, done off the async threads.
struct Prepared {
    program: PathBuf,
    stdout: TaskOutput,
    stderr: TaskOutput,
}

fn prepare(config: &TaskConfig, command: &str) -> Result<Prepared, DriverError> {
    let path_var = config
        .env
        .get("PATH")
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_else(|| DEFAULT_PATH.to_owned());
    let program = process::resolve_command(command, &config.dirs.task_dir, &path_var)
        .map_err(|reason| DriverError::start_failed(&config.id, reason))?;
    let stdout = TaskOutput::create(fifo_path(&config.stdout_path))
        .map_err(|err| DriverError::start_failed(&config.id, format!("stdout pipe: {err}")))?;
    let stderr = TaskOutput::create(fifo_path(&config.stderr_path))
        .map_err(|err| DriverError::start_failed(&config.id, format!("stderr pipe: {err}")))?;
    Ok(Prepared {
        program,
        stdout,
        stderr,
    })
}

pub(crate) fn join_error(err: tokio::task::JoinError) -> DriverError {
    DriverError::other("running a blocking step", err)
}

#[async_trait]
impl TaskDriver for RawExecDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            send_signals: true,
            exec: true,
            fs_isolation: FsIsolation::None,
            network_isolation_modes: vec![NetIsolationMode::Host],
            must_init_network: false,
            mount_configs: MountConfigSupport::None,
        }
    }

    async fn fingerprint(&self) -> Fingerprint {
        if self.config.enabled {
            Fingerprint::healthy().with_attribute("driver.raw_exec", "1")
        } else {
            Fingerprint::undetected("disabled")
        }
    }

    fn config_schema(&self) -> ConfigSchema {
        ConfigSchema::new()
            .required("command", FieldKind::String)
            .optional("args", FieldKind::list(FieldKind::String))
    }

    async fn start(&self, config: &TaskConfig) -> Result<StartedTask, DriverError> {
        self.check_enabled()?;
        self.validate_config(&config.driver_config)?;
        let task_config: RawExecTaskConfig =
            serde_json::from_value(config.driver_config.clone())
                .map_err(|err| DriverError::invalid_config("", err.to_string()))?;
        if self.tasks.contains(&config.id) {
            return Err(DriverError::TaskAlreadyExists {
                task_id: config.id.clone(),
            });
        }

        let owned = config.clone();
        let command = task_config.command.clone();
        let prepared = tokio::task::spawn_blocking(move || prepare(&owned, &command))
            .await
            .map_err(join_error)??;

        let mut command = tokio::process::Command::new(&prepared.program);
        command
            .args(&task_config.args)
            .env_clear()
            .envs(&config.env)
            .current_dir(&config.dirs.task_dir)
            .stdin(Stdio::null())
            .stdout(prepared.stdout.child_stdio()?)
            .stderr(prepared.stderr.child_stdio()?)
            .process_group(0)
            .kill_on_drop(false);
        if let Some(user) = config.user.as_deref().filter(|u| !u.is_empty()) {
            let found = nix::unistd::User::from_name(user)
                .map_err(|err| {
                    DriverError::start_failed(&config.id, format!("user {user:?}: {err}"))
                })?
                .ok_or_else(|| {
                    DriverError::start_failed(&config.id, format!("user {user:?} does not exist"))
                })?;
            command.uid(found.uid.as_raw()).gid(found.gid.as_raw());
        }
        let mut child = command.spawn().map_err(|err| {
            DriverError::start_failed(
                &config.id,
                format!("running {}: {err}", prepared.program.display()),
            )
        })?;
        // The command holds copies of the pipe ends given to the child: close them now.
        drop(command);
        let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) else {
            return Err(DriverError::start_failed(
                &config.id,
                "the process has no pid",
            ));
        };
        let start_ticks = process::read_stat(pid).map_or(0, |stat| stat.start_ticks);

        let mut background = Vec::new();
        let mut copiers = Vec::new();
        for (output, base) in [
            (&prepared.stdout, &config.stdout_path),
            (&prepared.stderr, &config.stderr_path),
        ] {
            if let Some(copier) = output.spawn_copier(base, config.logs) {
                background.push(copier.abort_handle());
                copiers.push(copier);
            }
        }
        drop(prepared.stdout);
        drop(prepared.stderr);

        let (sender, receiver) = watch::channel(None);
        let supervisor = tokio::spawn(async move {
            let result = match child.wait().await {
                Ok(status) => exit_from_status(status),
                Err(err) => ExitResult {
                    exit_code: -1,
                    error: Some(format!("waiting for the process: {err}")),
                    ..ExitResult::default()
                },
            };
            finish(copiers, &sender, result).await;
        });
        background.push(supervisor.abort_handle());

        let state = RawExecState {
            pid,
            start_ticks,
            stdout_fifo: fifo_path(&config.stdout_path),
            stderr_fifo: fifo_path(&config.stderr_path),
        };
        let driver_state = serde_json::to_value(&state)
            .map_err(|err| DriverError::other("encoding the task handle", err))?;
        let task = RawTask {
            config: config.clone(),
            state,
            started_at: SystemTime::now(),
            exit: receiver,
            background,
            killed: Arc::new(AtomicBool::new(false)),
            cpu_rate: CpuRate::default(),
        };
        self.tasks
            .insert_or_undo(Arc::new(task), |lost| async move {
                let _ = self.kill(&lost).await;
            })
            .await?;
        self.events.emit(
            DriverEvent::new(config, format!("started process {pid}"))
                .with_annotation("pid", pid.to_string()),
        );
        Ok(StartedTask {
            handle: TaskHandle::new(NAME, config.clone(), driver_state),
            network: None,
        })
    }

    async fn wait(&self, task_id: &str) -> Result<ExitResult, DriverError> {
        self.tasks.get(task_id)?.wait_result(task_id).await
    }

    async fn stop(
        &self,
        task_id: &str,
        timeout: Duration,
        signal: &str,
    ) -> Result<(), DriverError> {
        let task = self.tasks.get(task_id)?;
        let name = stop_signal_name(&task.config, signal);
        let signal = process::parse_signal(name)?;
        if task.exited().is_some() {
            return Ok(());
        }
        if process::is_alive(task.state.pid, task.state.start_ticks) {
            process::signal_process(task.state.pid, signal)?;
            self.events.emit(
                DriverEvent::new(&task.config, format!("sent {signal}"))
                    .with_annotation("signal", signal.as_str()),
            );
        }
        if task.wait_exit(timeout).await {
            // The command is gone; whatever it left behind in its group goes with it.
            return process::signal_group(task.state.pid, Signal::SIGKILL);
        }
        self.events.emit(
            DriverEvent::new(
                &task.config,
                format!("task did not exit {timeout:?} after {signal}; sending SIGKILL"),
            )
            .with_annotation("signal", "SIGKILL"),
        );
        self.kill(&task).await
    }

    async fn destroy(&self, task_id: &str, force: bool) -> Result<(), DriverError> {
        let Some(task) = self.tasks.find(task_id) else {
            return Ok(());
        };
        if task.exited().is_none() {
            if !force {
                return Err(DriverError::TaskRunning {
                    task_id: task_id.to_owned(),
                });
            }
            self.kill(&task).await?;
        } else {
            process::signal_group(task.state.pid, Signal::SIGKILL)?;
        }
        task.stop_following();
        for fifo in [&task.state.stdout_fifo, &task.state.stderr_fifo]
            .into_iter()
            .flatten()
        {
            match tokio::fs::remove_file(fifo).await {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(DriverError::other(
                        format!("removing {}", fifo.display()),
                        err,
                    ))
                }
            }
        }
        self.tasks.remove(task_id);
        Ok(())
    }

    async fn inspect(&self, task_id: &str) -> Result<TaskStatus, DriverError> {
        Ok(self.tasks.get(task_id)?.status())
    }

    async fn recover(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        self.check_enabled()?;
        if handle.driver != NAME {
            return Err(DriverError::InvalidHandle {
                reason: format!("the handle was made by driver {:?}", handle.driver),
            });
        }
        let state: RawExecState =
            serde_json::from_value(handle.driver_state.clone()).map_err(|err| {
                DriverError::InvalidHandle {
                    reason: format!("raw_exec state: {err}"),
                }
            })?;
        let config = &handle.config;
        if self.tasks.contains(&config.id) {
            return Ok(());
        }
        if !process::is_alive(state.pid, state.start_ticks) {
            return Err(DriverError::TaskGone {
                task_id: config.id.clone(),
                reason: format!(
                    "process {} started at tick {} no longer runs",
                    state.pid, state.start_ticks
                ),
            });
        }

        let mut background = Vec::new();
        let mut copiers = Vec::new();
        for (fifo, base) in [
            (&state.stdout_fifo, &config.stdout_path),
            (&state.stderr_fifo, &config.stderr_path),
        ] {
            let output = TaskOutput::reopen(fifo.clone());
            if let Some(copier) = output.spawn_copier(base, config.logs) {
                background.push(copier.abort_handle());
                copiers.push(copier);
            }
        }
        let killed = Arc::new(AtomicBool::new(false));
        let (sender, receiver) = watch::channel(None);
        let (pid, start_ticks, was_killed) = (state.pid, state.start_ticks, killed.clone());
        let supervisor = tokio::spawn(async move {
            while process::is_alive(pid, start_ticks) {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            let result = if was_killed.load(Ordering::SeqCst) {
                ExitResult::signaled(Signal::SIGKILL as i32)
            } else {
                ExitResult {
                    exit_code: -1,
                    error: Some(UNKNOWN_EXIT.into()),
                    ..ExitResult::default()
                }
            };
            finish(copiers, &sender, result).await;
        });
        background.push(supervisor.abort_handle());
        let task = RawTask {
            config: config.clone(),
            state,
            started_at: SystemTime::now(),
            exit: receiver,
            background,
            killed,
            cpu_rate: CpuRate::default(),
        };
        if let Err(task) = self.tasks.insert(Arc::new(task)) {
            task.stop_following();
        }
        Ok(())
    }

    async fn stats(&self, task_id: &str) -> Result<TaskResourceUsage, DriverError> {
        let task = self.tasks.get(task_id)?;
        if task.exited().is_some() {
            return Err(DriverError::TaskGone {
                task_id: task_id.to_owned(),
                reason: "the task has exited".into(),
            });
        }
        let pgid = task.state.pid;
        let (mut cpu, memory, pids) =
            tokio::task::spawn_blocking(move || process::group_usage(pgid))
                .await
                .map_err(join_error)?
                .map_err(|err| DriverError::other("reading /proc", err))?;
        let total = cpu.user_ns + cpu.system_ns;
        cpu.percent = task.cpu_rate.percent(total);
        Ok(TaskResourceUsage {
            timestamp: SystemTime::now(),
            cpu,
            memory,
            pids: Some(pids),
        })
    }

    fn events(&self, sink: Arc<dyn EventSink>) -> Result<(), DriverError> {
        self.events.subscribe(sink);
        Ok(())
    }

    async fn signal(&self, task_id: &str, signal: &str) -> Result<(), DriverError> {
        let task = self.tasks.get(task_id)?;
        let signal = process::parse_signal(signal)?;
        if task.exited().is_some() || !process::is_alive(task.state.pid, task.state.start_ticks) {
            return Err(DriverError::TaskGone {
                task_id: task_id.to_owned(),
                reason: "the task has exited".into(),
            });
        }
        process::signal_process(task.state.pid, signal)
    }

    async fn exec(
        &self,
        task_id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecResult, DriverError> {
        let task = self.tasks.get(task_id)?;
        let Some((program, args)) = command.split_first() else {
            return Err(DriverError::invalid_config(
                "command",
                "exec needs a command",
            ));
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(&task.config.env)
            .current_dir(&task.config.dirs.task_dir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        match tokio::time::timeout(timeout, cmd.output()).await {
            Ok(Ok(output)) => Ok(ExecResult {
                stdout: output.stdout,
                stderr: output.stderr,
                exit: exit_from_status(output.status),
            }),
            Ok(Err(err)) => Err(DriverError::other(format!("running {program:?}"), err)),
            Err(_) => Err(DriverError::Timeout {
                task_id: task_id.to_owned(),
                operation: "exec".into(),
            }),
        }
    }
}

/// Lets the log copiers drain what the task wrote (bounded: processes the task left behind
/// may keep its output open), then publishes the exit.
pub(crate) async fn finish(
    copiers: Vec<tokio::task::JoinHandle<()>>,
    sender: &watch::Sender<Option<Exited>>,
    result: ExitResult,
) {
    for copier in copiers {
        let _ = tokio::time::timeout(Duration::from_secs(2), copier).await;
    }
    sender.send_replace(Some(Exited {
        result,
        at: SystemTime::now(),
    }));
}
