//! The values drivers return: capabilities, fingerprints, handles, exit results, stats.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use std::path::PathBuf;

use super::config::{TaskConfig, TaskDirs};

/// What a driver can do; the client uses it to decide which hooks and job features apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Whether [`TaskDriver::signal`](super::TaskDriver::signal) works.
    pub send_signals: bool,
    /// Whether [`TaskDriver::exec`](super::TaskDriver::exec) works.
    pub exec: bool,
    /// How the task's filesystem is isolated; decides whether the task sees host paths or
    /// `/alloc`, `/local` and `/secrets`.
    pub fs_isolation: FsIsolation,
    /// The network modes the driver can run a task in.
    pub network_isolation_modes: Vec<NetIsolationMode>,
    /// Whether the driver must create the group's network namespace itself (Docker's pause
    /// container) rather than join one made by the client.
    pub must_init_network: bool,
    /// Which `volume_mount` configurations the driver honours.
    pub mount_configs: MountConfigSupport,
}

impl Default for Capabilities {
    /// A driver that runs tasks on the host: no signals, no exec, no isolation.
    fn default() -> Self {
        Self {
            send_signals: false,
            exec: false,
            fs_isolation: FsIsolation::None,
            network_isolation_modes: vec![NetIsolationMode::Host],
            must_init_network: false,
            mount_configs: MountConfigSupport::None,
        }
    }
}

/// How a driver isolates a task's filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsIsolation {
    /// The task sees the host's filesystem (raw_exec).
    None,
    /// The task runs in a root built from the task dir and read-only host dirs (exec).
    Chroot,
    /// The task runs in its own image (docker).
    Image,
}

impl FsIsolation {
    /// Where a task isolated this way sees its directories: the host paths themselves without
    /// isolation, `/alloc`, `/local` and `/secrets` with it. The task environment hook uses it
    /// for `NOMAD_ALLOC_DIR`, `NOMAD_TASK_DIR` and `NOMAD_SECRETS_DIR`.
    pub fn task_view(self, dirs: &TaskDirs) -> TaskDirView {
        match self {
            FsIsolation::None => TaskDirView {
                alloc_dir: dirs.shared_dir.clone(),
                local_dir: dirs.local_dir.clone(),
                secrets_dir: dirs.secrets_dir.clone(),
            },
            FsIsolation::Chroot | FsIsolation::Image => TaskDirView {
                alloc_dir: PathBuf::from("/alloc"),
                local_dir: PathBuf::from("/local"),
                secrets_dir: PathBuf::from("/secrets"),
            },
        }
    }
}

/// The task's directories as the task itself sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDirView {
    /// The shared alloc dir (`NOMAD_ALLOC_DIR`).
    pub alloc_dir: PathBuf,
    /// The task's local dir (`NOMAD_TASK_DIR`).
    pub local_dir: PathBuf,
    /// The task's secrets dir (`NOMAD_SECRETS_DIR`).
    pub secrets_dir: PathBuf,
}

/// A network mode a driver supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetIsolationMode {
    /// The host's network namespace.
    Host,
    /// A namespace shared by the group's tasks.
    Group,
    /// A namespace of the task's own.
    Task,
    /// No network at all.
    None,
}

/// Which `volume_mount` configurations a driver honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountConfigSupport {
    /// None: volumes cannot be mounted into the task.
    None,
    /// All of them.
    All,
}

/// The health of a driver on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// The driver is not present or not enabled; jobs using it are not placed here.
    Undetected,
    /// The driver is present but cannot run tasks now.
    Unhealthy,
    /// The driver can run tasks.
    Healthy,
}

/// What a driver found out about itself and the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The driver's health.
    pub health: HealthState,
    /// A human description of the health: `Healthy`, `disabled`, `Docker daemon not answering`.
    pub description: String,
    /// Node attributes, as `driver.raw_exec = "1"` or `driver.docker.version = "24.0.7"`.
    pub attributes: BTreeMap<String, String>,
}

impl Fingerprint {
    /// A healthy fingerprint with no attributes.
    pub fn healthy() -> Self {
        Self {
            health: HealthState::Healthy,
            description: "Healthy".into(),
            attributes: BTreeMap::new(),
        }
    }

    /// An unhealthy fingerprint saying why.
    pub fn unhealthy(description: impl Into<String>) -> Self {
        Self {
            health: HealthState::Unhealthy,
            description: description.into(),
            attributes: BTreeMap::new(),
        }
    }

    /// An undetected fingerprint saying why.
    pub fn undetected(description: impl Into<String>) -> Self {
        Self {
            health: HealthState::Undetected,
            description: description.into(),
            attributes: BTreeMap::new(),
        }
    }

    /// Adds a node attribute.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// The lifecycle state of a task as a driver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// The driver does not know.
    #[default]
    Unknown,
    /// The task runs.
    Running,
    /// The task has exited.
    Exited,
}

/// What a driver needs to find a task again after the agent restarted.
///
/// Returned by [`TaskDriver::start`](super::TaskDriver::start), persisted by the client (it is
/// plain serde data) and handed back to [`TaskDriver::recover`](super::TaskDriver::recover).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskHandle {
    /// The version of `driver_state`'s format, for drivers that change it.
    pub version: u32,
    /// The name of the driver that made the handle.
    pub driver: String,
    /// The configuration the task was started with.
    pub config: TaskConfig,
    /// The task's state when the handle was made.
    pub state: TaskState,
    /// The driver's own state: a pid and its start time, a container id, ...
    pub driver_state: serde_json::Value,
}

impl TaskHandle {
    /// A running task's handle.
    pub fn new(
        driver: impl Into<String>,
        config: TaskConfig,
        driver_state: serde_json::Value,
    ) -> Self {
        Self {
            version: 1,
            driver: driver.into(),
            config,
            state: TaskState::Running,
            driver_state,
        }
    }
}

/// The network a driver created for a task itself (Docker's bridge), so services and checks
/// can use the task's own address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverNetwork {
    /// The task's IP address.
    pub ip: String,
    /// Port labels mapped to the ports inside the task's network.
    pub port_map: BTreeMap<String, u16>,
    /// Whether services should advertise this address rather than the host's.
    pub auto_advertise: bool,
}

/// What [`TaskDriver::start`](super::TaskDriver::start) returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartedTask {
    /// The handle to persist for recovery.
    pub handle: TaskHandle,
    /// The network the driver made for the task, if it made one.
    pub network: Option<DriverNetwork>,
}

/// How a task ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitResult {
    /// The exit code; `-1` when the driver cannot know it (see `error`).
    pub exit_code: i32,
    /// The signal that ended the task, if one did.
    pub signal: Option<i32>,
    /// Whether the task was killed for exceeding its memory limit.
    pub oom_killed: bool,
    /// A driver-side error about the task's end: it could not be waited on, its exit code is
    /// not knowable, ...
    pub error: Option<String>,
}

impl ExitResult {
    /// An exit with `code` and no signal.
    pub fn code(code: i32) -> Self {
        Self {
            exit_code: code,
            ..Self::default()
        }
    }

    /// An end by `signal`.
    pub fn signaled(signal: i32) -> Self {
        Self {
            exit_code: 0,
            signal: Some(signal),
            ..Self::default()
        }
    }

    /// Whether the task succeeded: exit code 0, no signal, not OOM-killed, no error.
    pub fn successful(&self) -> bool {
        self.exit_code == 0 && self.signal.is_none() && !self.oom_killed && self.error.is_none()
    }
}

/// The status of one task, from [`TaskDriver::inspect`](super::TaskDriver::inspect).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The task's id.
    pub id: String,
    /// The task's name.
    pub name: String,
    /// Running or exited.
    pub state: TaskState,
    /// When the task started.
    pub started_at: Option<SystemTime>,
    /// When it exited, once it has.
    pub completed_at: Option<SystemTime>,
    /// How it exited, once it has.
    pub exit_result: Option<ExitResult>,
    /// Driver-specific facts: `pid`, `container_id`, ...
    pub driver_attributes: BTreeMap<String, String>,
}

/// CPU used by a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// CPU time in user mode, in nanoseconds, since the task started.
    pub user_ns: u64,
    /// CPU time in kernel mode, in nanoseconds, since the task started.
    pub system_ns: u64,
    /// Percent of one core used since the previous sample; `None` on the first sample.
    pub percent: Option<f64>,
}

/// Memory used by a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryUsage {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// Page cache in bytes, where the driver can tell.
    pub cache_bytes: u64,
    /// Swap in bytes, where the driver can tell.
    pub swap_bytes: u64,
    /// Total usage as the driver's accounting sees it (cgroup usage, or the RSS).
    pub usage_bytes: u64,
}

/// One sample of a task's resource usage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TaskResourceUsage {
    /// When the sample was taken.
    pub timestamp: SystemTime,
    /// CPU used.
    pub cpu: CpuUsage,
    /// Memory used.
    pub memory: MemoryUsage,
    /// How many processes the task has, where the driver can tell.
    pub pids: Option<u64>,
}

/// The result of [`TaskDriver::exec`](super::TaskDriver::exec).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResult {
    /// What the command wrote to standard output.
    pub stdout: Vec<u8>,
    /// What the command wrote to standard error.
    pub stderr: Vec<u8>,
    /// How the command ended.
    pub exit: ExitResult,
}
