//! The `exec` driver: a command isolated in a container made with libcontainer.

mod cgroup;
mod init;
mod spec;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::Signal;
use nomad_core::driver::{
    Capabilities, ConfigSchema, DriverError, DriverEvent, EventFanout, EventSink, ExitResult,
    FieldKind, Fingerprint, FsIsolation, MountConfigSupport, NetIsolationMode, StartedTask,
    TaskConfig, TaskDriver, TaskHandle, TaskResourceUsage, TaskStatus,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use self::cgroup::CgroupLayout;
use self::spec::HostInputs;
use super::exit::{stop_signal_name, ExitWatch, Exited};
use super::output::TaskOutput;
use super::process;
use super::raw_exec::{fifo_path, finish, join_error};
use super::table::{CpuRate, TaskTable, TrackedTask};

const NAME: &str = "exec";
/// Where cgroup filesystems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// How long a killed task may take to die before stop reports a timeout.
const KILL_GRACE: Duration = Duration::from_secs(10);
/// How often a task's first process is looked for in `/proc`.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The client configuration of the `exec` driver (its `plugin "exec"` block).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecConfig {
    /// Whether jobs may use the driver (Nomad enables it by default).
    pub enabled: bool,
    /// Where container state, task specifications and exit files are kept. It must survive
    /// an agent restart (not a reboot: the tasks do not either).
    pub state_dir: PathBuf,
    /// The cgroup under which every task gets its own, as `nomad/<container id>`.
    pub cgroup_parent: String,
}

impl Default for ExecConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            state_dir: PathBuf::from("/run/nomad/exec"),
            cgroup_parent: "nomad".into(),
        }
    }
}

/// The `exec` task driver: Nomad's isolated `exec`, on libcontainer.
///
/// A task's `config` block has `command` and `args`, as in Nomad. The command runs in a
/// container whose root is the task dir, with the group's shared alloc dir at `/alloc`, its
/// own `/local`, `/secrets` and `/tmp`, and Nomad's default `chroot_env` host directories
/// (`/bin`, `/etc`, `/lib`, `/lib32`, `/lib64`, `/run/resolvconf`, `/sbin`, `/usr`) bound
/// read-only. It has private PID, IPC and mount namespaces and the host's network. Its
/// cgroup enforces `memory` (or `memory_max` when set, `memory` then being the soft limit),
/// `cpu` as CPU shares and `cores` as a cpuset, on cgroup v1 (hybrid hosts included) and v2;
/// stats are read from it, and it is removed when the task is destroyed.
///
/// The task's first process forwards signals to the command and records how it ended in an
/// exit file, so a task recovered after an agent restart still reports its exit code.
/// Output goes to the rotated log files through named pipes, as with `raw_exec`. A task
/// killed for exceeding its memory limit reports [`ExitResult::oom_killed`].
///
/// The driver needs root; elsewhere it fingerprints as undetected and refuses tasks.
#[derive(Debug)]
pub struct ExecDriver {
    config: ExecConfig,
    tasks: TaskTable<ExecTask>,
    events: EventFanout,
}

/// What an exec handle stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExecState {
    container_id: String,
    /// libcontainer's root: the container's state is in `<state_dir>/<container_id>`.
    state_dir: PathBuf,
    /// The specification and exit file.
    bundle_dir: PathBuf,
    /// The cgroup, relative to the cgroup root.
    cgroup: String,
    /// The host pid of the task's first process and its start time.
    pid: i32,
    start_ticks: u64,
    stdout_fifo: Option<PathBuf>,
    stderr_fifo: Option<PathBuf>,
}

impl ExecState {
    fn exit_file(&self) -> PathBuf {
        self.bundle_dir.join("exit")
    }
}

/// A task's `config` block.
#[derive(Debug, Deserialize)]
struct ExecTaskConfig {
    command: String,
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Debug)]
struct ExecTask {
    config: TaskConfig,
    state: ExecState,
    started_at: SystemTime,
    exit: watch::Receiver<Option<Exited>>,
    background: Vec<AbortHandle>,
    killed: Arc<AtomicBool>,
    cpu_rate: CpuRate,
}

impl ExitWatch for ExecTask {
    fn exit_rx(&self) -> &watch::Receiver<Option<Exited>> {
        &self.exit
    }
}

impl TrackedTask for ExecTask {
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
        [
            ("pid".to_owned(), self.state.pid.to_string()),
            ("container_id".to_owned(), self.state.container_id.clone()),
        ]
        .into()
    }
}

/// Why the driver cannot run tasks on this host, if it cannot.
fn health(config: &ExecConfig, euid: u32, layout: Option<&CgroupLayout>) -> Fingerprint {
    if !config.enabled {
        return Fingerprint::undetected("disabled");
    }
    if euid != 0 {
        return Fingerprint::undetected(
            "the exec driver must run as root: isolating tasks needs namespaces and cgroups",
        );
    }
    match layout {
        None => Fingerprint::unhealthy(format!("no cgroup filesystem found at {CGROUP_ROOT}")),
        Some(layout) => Fingerprint::healthy()
            .with_attribute("driver.exec", "1")
            .with_attribute("driver.exec.cgroup", layout.version()),
    }
}

/// A container id from a task id: letters, digits, `-`, `_` and `.` only.
fn container_id(task_id: &str) -> String {
    let id: String = task_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("nomad-{id}")
}

impl ExecDriver {
    /// A driver with the given client configuration.
    pub fn new(config: ExecConfig) -> Self {
        Self {
            config,
            tasks: TaskTable::default(),
            events: EventFanout::new(),
        }
    }

    fn layout() -> Option<CgroupLayout> {
        CgroupLayout::detect(Path::new(CGROUP_ROOT))
    }

    fn check_usable(&self) -> Result<CgroupLayout, DriverError> {
        let layout = Self::layout();
        let print = health(
            &self.config,
            nix::unistd::geteuid().as_raw(),
            layout.as_ref(),
        );
        match (print.health, layout) {
            (nomad_core::driver::HealthState::Healthy, Some(layout)) => Ok(layout),
            _ if !self.config.enabled => Err(DriverError::DriverDisabled {
                driver: NAME.into(),
            }),
            _ => Err(DriverError::DriverUnhealthy {
                driver: NAME.into(),
                reason: print.description,
            }),
        }
    }

    async fn kill(&self, task: &ExecTask) -> Result<(), DriverError> {
        task.killed.store(true, Ordering::SeqCst);
        if process::is_alive(task.state.pid, task.state.start_ticks) {
            // The first process of a PID namespace takes every other one with it.
            process::signal_process(task.state.pid, Signal::SIGKILL)?;
        }
        if task.wait_exit(KILL_GRACE).await {
            Ok(())
        } else {
            Err(DriverError::Timeout {
                task_id: task.config.id.clone(),
                operation: "kill".into(),
            })
        }
    }

    /// Starts the copiers and the supervisor of a task. The task's first process is never a
    /// child of the agent (see [`init::in_forked_child`]): the supervisor watches `/proc` for
    /// its end and reads its exit file.
    fn watch(
        &self,
        config: &TaskConfig,
        state: &ExecState,
        outputs: [TaskOutput; 2],
    ) -> (
        Vec<AbortHandle>,
        watch::Receiver<Option<Exited>>,
        Arc<AtomicBool>,
    ) {
        let mut background = Vec::new();
        let mut copiers = Vec::new();
        for (output, base) in outputs
            .iter()
            .zip([&config.stdout_path, &config.stderr_path])
        {
            if let Some(copier) = output.spawn_copier(base, config.logs) {
                background.push(copier.abort_handle());
                copiers.push(copier);
            }
        }
        drop(outputs);
        let killed = Arc::new(AtomicBool::new(false));
        let (sender, receiver) = watch::channel(None);
        let (state, was_killed) = (state.clone(), killed.clone());
        let supervisor = tokio::spawn(async move {
            while process::is_alive(state.pid, state.start_ticks) {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            let result = tokio::task::spawn_blocking(move || {
                exit_result(&state, was_killed.load(Ordering::SeqCst))
            })
            .await
            .unwrap_or_else(|err| ExitResult {
                exit_code: -1,
                error: Some(format!("reading the task's exit: {err}")),
                ..ExitResult::default()
            });
            finish(copiers, &sender, result).await;
        });
        background.push(supervisor.abort_handle());
        (background, receiver, killed)
    }
}

impl Default for ExecDriver {
    fn default() -> Self {
        Self::new(ExecConfig::default())
    }
}

impl Drop for ExecDriver {
    /// Stops watching the tasks; the tasks go on running so that another driver instance can
    /// recover them.
    fn drop(&mut self) {
        self.tasks.stop_following_all();
    }
}

/// How a task ended, from its exit file, and whether its cgroup saw an OOM kill.
fn exit_result(state: &ExecState, killed: bool) -> ExitResult {
    let recorded = std::fs::read_to_string(state.exit_file())
        .ok()
        .and_then(|text| init::parse_exit(&text));
    let mut result = match recorded {
        Some(result) => result,
        // Process 1 itself was killed, so it could not record anything.
        None if killed => ExitResult::signaled(Signal::SIGKILL as i32),
        None => ExitResult {
            exit_code: -1,
            error: Some("the task ended without recording its exit status".into()),
            ..ExitResult::default()
        },
    };
    if let Some(layout) = ExecDriver::layout() {
        result.oom_killed = layout.oom_killed(&state.cgroup);
    }
    result
}

/// Everything `start` does on disk and in the kernel, off the async threads.
struct Created {
    state: ExecState,
    stdout: TaskOutput,
    stderr: TaskOutput,
}

fn create(
    driver: &ExecConfig,
    layout: &CgroupLayout,
    config: &TaskConfig,
    task: &ExecTaskConfig,
) -> Result<Created, String> {
    let id = container_id(&config.id);
    let cgroup = format!("{}/{id}", driver.cgroup_parent.trim_matches('/'));
    let bundle_dir = driver.state_dir.join("bundles").join(&id);
    let state_dir = driver.state_dir.join("containers");
    let (uid, gid) = match config.user.as_deref().filter(|user| !user.is_empty()) {
        None => (0, 0),
        Some(user) => {
            let found = nix::unistd::User::from_name(user)
                .map_err(|err| format!("user {user:?}: {err}"))?
                .ok_or_else(|| format!("user {user:?} does not exist"))?;
            (found.uid.as_raw(), found.gid.as_raw())
        }
    };
    let memory_nodes = ["cpuset/cpuset.mems", "cpuset.mems.effective"]
        .iter()
        .find_map(|file| std::fs::read_to_string(Path::new(CGROUP_ROOT).join(file)).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "0".into());
    let host = HostInputs {
        chroot_dirs: spec::CHROOT_ENV
            .iter()
            .map(PathBuf::from)
            .filter(|dir| dir.is_dir())
            .collect(),
        uid,
        gid,
        cgroup: cgroup.clone(),
        memory_nodes,
    };
    let spec = spec::task_spec(config, &task.command, &task.args, &host)?;
    for point in spec::mount_points(&host) {
        let dir = config.dirs.task_dir.join(point);
        std::fs::create_dir_all(&dir).map_err(|err| format!("making {}: {err}", dir.display()))?;
    }
    // A stale bundle or container of the same id (a start that failed half-way) goes first.
    remove_container(&state_dir, &id, &bundle_dir, layout, &cgroup);
    std::fs::create_dir_all(&bundle_dir)
        .and_then(|()| std::fs::create_dir_all(&state_dir))
        .map_err(|err| format!("making {}: {err}", bundle_dir.display()))?;
    spec.save(bundle_dir.join("config.json"))
        .map_err(|err| format!("writing the container specification: {err}"))?;
    let exit_file = File::create(bundle_dir.join("exit"))
        .map_err(|err| format!("creating the exit file: {err}"))?;

    let stdout = TaskOutput::create(fifo_path(&config.stdout_path))
        .map_err(|err| format!("stdout pipe: {err}"))?;
    let stderr = TaskOutput::create(fifo_path(&config.stderr_path))
        .map_err(|err| format!("stderr pipe: {err}"))?;
    let stdin = File::open("/dev/null").map_err(|err| format!("opening /dev/null: {err}"))?;
    let stdout_fd = stdout
        .child_fd()
        .map_err(|err| format!("stdout pipe: {err}"))?;
    let stderr_fd = stderr
        .child_fd()
        .map_err(|err| format!("stderr pipe: {err}"))?;

    let keep = [
        stdin.as_raw_fd(),
        stdout_fd.as_raw_fd(),
        stderr_fd.as_raw_fd(),
        exit_file.as_raw_fd(),
    ];
    let (setup_id, setup_state, setup_bundle) = (id.clone(), state_dir.clone(), bundle_dir.clone());
    let reported = init::in_forked_child(&keep, move || {
        let mut container = ContainerBuilder::new(setup_id, SyscallType::default())
            .with_root_path(&setup_state)
            .and_then(|builder| {
                builder
                    .with_executor(init::SupervisingExecutor::new(exit_file))
                    .with_stdin(stdin)
                    .with_stdout(stdout_fd)
                    .with_stderr(stderr_fd)
                    .as_init(&setup_bundle)
                    .with_systemd(false)
                    .with_detach(true)
                    .build()
            })
            .map_err(|err| format!("creating the container: {err}"))?;
        if let Err(err) = container.start() {
            let _ = container.delete(true);
            return Err(format!("starting the container: {err}"));
        }
        container
            .pid()
            .map(|pid| pid.as_raw().to_string())
            .ok_or_else(|| "the container has no process".to_owned())
    });
    let pid = match reported.and_then(|text| {
        text.trim()
            .parse::<i32>()
            .map_err(|_| format!("the container setup reported {text:?}, not a pid"))
    }) {
        Ok(pid) => pid,
        Err(err) => {
            remove_container(&state_dir, &id, &bundle_dir, layout, &cgroup);
            return Err(err);
        }
    };
    let start_ticks = process::read_stat(pid).map_or(0, |stat| stat.start_ticks);
    Ok(Created {
        state: ExecState {
            container_id: id,
            state_dir,
            bundle_dir,
            cgroup,
            pid,
            start_ticks,
            stdout_fifo: fifo_path(&config.stdout_path),
            stderr_fifo: fifo_path(&config.stderr_path),
        },
        stdout,
        stderr,
    })
}

/// Removes a container's state through libcontainer, then what it leaves behind: its
/// cgroups (libcontainer leaves some on cgroup v1), its state and its bundle. Best effort;
/// the cgroup's removal is reported.
fn remove_container(
    state_dir: &Path,
    id: &str,
    bundle_dir: &Path,
    layout: &CgroupLayout,
    cgroup: &str,
) -> Option<String> {
    let container_dir = state_dir.join(id);
    if container_dir.exists() {
        match Container::load(container_dir.clone()) {
            Ok(mut container) => {
                if let Err(err) = container.delete(true) {
                    tracing::debug!(container = id, error = %err, "libcontainer delete failed");
                }
            }
            Err(err) => {
                tracing::debug!(container = id, error = %err, "libcontainer load failed");
            }
        }
        let _ = std::fs::remove_dir_all(&container_dir);
    }
    let _ = std::fs::remove_dir_all(bundle_dir);
    layout
        .remove(cgroup)
        .err()
        .map(|err| format!("removing cgroup {cgroup}: {err}"))
}

/// Removes the empty mount points `start` made in the task dir.
fn remove_mount_points(task_dir: &Path) {
    let host = HostInputs {
        chroot_dirs: spec::CHROOT_ENV.iter().map(PathBuf::from).collect(),
        ..HostInputs::default()
    };
    for point in spec::mount_points(&host) {
        // Only empty directories go (`remove_dir` refuses others), deepest first.
        let mut dir = task_dir.join(point);
        while dir.starts_with(task_dir) && dir != task_dir {
            if std::fs::remove_dir(&dir).is_err() {
                break;
            }
            if !dir.pop() {
                break;
            }
        }
    }
}

#[async_trait]
impl TaskDriver for ExecDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            send_signals: true,
            exec: false,
            fs_isolation: FsIsolation::Chroot,
            network_isolation_modes: vec![NetIsolationMode::Host],
            must_init_network: false,
            mount_configs: MountConfigSupport::None,
        }
    }

    async fn fingerprint(&self) -> Fingerprint {
        health(
            &self.config,
            nix::unistd::geteuid().as_raw(),
            Self::layout().as_ref(),
        )
    }

    fn config_schema(&self) -> ConfigSchema {
        ConfigSchema::new()
            .required("command", FieldKind::String)
            .optional("args", FieldKind::list(FieldKind::String))
    }

    async fn start(&self, config: &TaskConfig) -> Result<StartedTask, DriverError> {
        let layout = self.check_usable()?;
        self.validate_config(&config.driver_config)?;
        let task_config: ExecTaskConfig = serde_json::from_value(config.driver_config.clone())
            .map_err(|err| DriverError::invalid_config("", err.to_string()))?;
        if task_config.command.is_empty() {
            return Err(DriverError::invalid_config("command", "must not be empty"));
        }
        if self.tasks.contains(&config.id) {
            return Err(DriverError::TaskAlreadyExists {
                task_id: config.id.clone(),
            });
        }

        let (driver, owned) = (self.config.clone(), config.clone());
        let created =
            tokio::task::spawn_blocking(move || create(&driver, &layout, &owned, &task_config))
                .await
                .map_err(join_error)?
                .map_err(|reason| DriverError::start_failed(&config.id, reason))?;

        let (background, exit, killed) =
            self.watch(config, &created.state, [created.stdout, created.stderr]);
        let driver_state = serde_json::to_value(&created.state)
            .map_err(|err| DriverError::other("encoding the task handle", err))?;
        let pid = created.state.pid;
        let task = ExecTask {
            config: config.clone(),
            state: created.state,
            started_at: SystemTime::now(),
            exit,
            background,
            killed,
            cpu_rate: CpuRate::default(),
        };
        self.tasks
            .insert_or_undo(Arc::new(task), |lost| async move {
                let _ = self.kill(&lost).await;
            })
            .await?;
        self.events.emit(
            DriverEvent::new(config, format!("started container with process {pid}"))
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
            // The first process forwards it to the command.
            process::signal_process(task.state.pid, signal)?;
            self.events.emit(
                DriverEvent::new(&task.config, format!("sent {signal}"))
                    .with_annotation("signal", signal.as_str()),
            );
        }
        if task.wait_exit(timeout).await {
            return Ok(());
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
        }
        task.stop_following();
        let state = task.state.clone();
        let task_dir = task.config.dirs.task_dir.clone();
        let failure = tokio::task::spawn_blocking(move || {
            for fifo in [&state.stdout_fifo, &state.stderr_fifo]
                .into_iter()
                .flatten()
            {
                let _ = std::fs::remove_file(fifo);
            }
            remove_mount_points(&task_dir);
            let layout = Self::layout()?;
            remove_container(
                &state.state_dir,
                &state.container_id,
                &state.bundle_dir,
                &layout,
                &state.cgroup,
            )
        })
        .await
        .map_err(join_error)?;
        if let Some(reason) = failure {
            return Err(DriverError::other(
                format!("destroying task {task_id:?}"),
                reason,
            ));
        }
        self.tasks.remove(task_id);
        Ok(())
    }

    async fn inspect(&self, task_id: &str) -> Result<TaskStatus, DriverError> {
        Ok(self.tasks.get(task_id)?.status())
    }

    async fn recover(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        if !self.config.enabled {
            return Err(DriverError::DriverDisabled {
                driver: NAME.into(),
            });
        }
        if handle.driver != NAME {
            return Err(DriverError::InvalidHandle {
                reason: format!("the handle was made by driver {:?}", handle.driver),
            });
        }
        let state: ExecState =
            serde_json::from_value(handle.driver_state.clone()).map_err(|err| {
                DriverError::InvalidHandle {
                    reason: format!("exec state: {err}"),
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
                    "container {} (process {}) no longer runs",
                    state.container_id, state.pid
                ),
            });
        }
        let outputs = [
            TaskOutput::reopen(state.stdout_fifo.clone()),
            TaskOutput::reopen(state.stderr_fifo.clone()),
        ];
        let (background, exit, killed) = self.watch(config, &state, outputs);
        let task = ExecTask {
            config: config.clone(),
            state,
            started_at: SystemTime::now(),
            exit,
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
        let cgroup = task.state.cgroup.clone();
        let (mut cpu, memory, pids) = tokio::task::spawn_blocking(move || {
            let layout = Self::layout().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no cgroup filesystem")
            })?;
            layout.usage(&cgroup)
        })
        .await
        .map_err(join_error)?
        .map_err(|err| DriverError::other(format!("reading cgroup {}", task.state.cgroup), err))?;
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
}

#[cfg(test)]
mod tests {
    use nomad_core::driver::HealthState;

    use super::*;

    #[test]
    fn fingerprint_says_why_the_driver_cannot_run() {
        let layout = CgroupLayout::V1 {
            root: PathBuf::from(CGROUP_ROOT),
        };
        let config = ExecConfig::default();
        let print = health(&config, 1000, Some(&layout));
        assert_eq!(print.health, HealthState::Undetected);
        assert!(print.description.contains("root"), "{}", print.description);
        let print = health(&config, 0, None);
        assert_eq!(print.health, HealthState::Unhealthy);
        assert!(print.description.contains("cgroup"));
        let disabled = ExecConfig {
            enabled: false,
            ..ExecConfig::default()
        };
        assert_eq!(
            health(&disabled, 0, Some(&layout)).health,
            HealthState::Undetected
        );
        let print = health(&config, 0, Some(&layout));
        assert_eq!(print.health, HealthState::Healthy);
        assert_eq!(print.attributes["driver.exec.cgroup"], "v1");
    }

    #[test]
    fn container_ids_are_safe_names() {
        assert_eq!(container_id("a1/web/0"), "nomad-a1-web-0");
        assert_eq!(container_id("x y.z"), "nomad-x-y.z");
    }
}
