//! What a driver is told about a task: [`TaskConfig`] and its parts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything a driver needs to start one task, modelled on Nomad's `drivers.TaskConfig`.
///
/// The task runner builds it after its prestart hooks ran: the directories exist, the
/// environment is final (`NOMAD_*` variables included) and the driver configuration has been
/// interpolated. A driver never changes it; it is stored in the [`TaskHandle`](super::TaskHandle)
/// so that a driver recovering a task knows what it was started with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskConfig {
    /// The task's id, unique on the node: Nomad uses `<alloc id>/<task name>/<random>`.
    pub id: String,
    /// The allocation the task belongs to.
    pub alloc_id: String,
    /// The job's id.
    pub job_id: String,
    /// The job's name.
    pub job_name: String,
    /// The job's namespace.
    pub namespace: String,
    /// The task group's name.
    pub group_name: String,
    /// The task's name.
    pub task_name: String,
    /// The user to run the task as; `None` runs it as the driver's default user.
    pub user: Option<String>,
    /// The task's `config` block, as JSON, checked by
    /// [`TaskDriver::validate_config`](super::TaskDriver::validate_config).
    pub driver_config: serde_json::Value,
    /// The task's complete environment. Drivers pass exactly this to the task.
    pub env: BTreeMap<String, String>,
    /// The resources reserved for the task.
    pub resources: TaskResources,
    /// The task's directories on the host.
    pub dirs: TaskDirs,
    /// The base path of the task's standard output log: the driver writes
    /// `<stdout_path>.0`, `<stdout_path>.1`, ... rotating by [`TaskConfig::logs`].
    pub stdout_path: PathBuf,
    /// The base path of the task's standard error log, rotated like `stdout_path`.
    pub stderr_path: PathBuf,
    /// How the task's logs rotate.
    pub logs: LogConfig,
    /// The signal the task is stopped with (`kill_signal`), as `SIGINT`; `None` for the
    /// driver's default (usually `SIGTERM`).
    pub kill_signal: Option<String>,
    /// How long a task is given to exit after its kill signal before it is killed
    /// (`kill_timeout`, 5 seconds by default in Nomad).
    pub kill_timeout: Duration,
    /// The ports allocated to the task's group or task.
    pub ports: Vec<PortMapping>,
    /// The network the task joins, when the group's network is isolated (bridge or CNI).
    pub network_isolation: Option<NetworkIsolation>,
}

/// The resources reserved for a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskResources {
    /// CPU in MHz, used as relative CPU shares.
    pub cpu_shares: u64,
    /// The cores reserved exclusively for the task (`cores`), as CPU ids on the node.
    pub reserved_cores: Vec<u16>,
    /// Memory in MB: the limit, or the reservation when `memory_max_mb` is set.
    pub memory_mb: u64,
    /// The hard memory limit in MB when memory oversubscription is used; 0 when unset.
    pub memory_max_mb: u64,
}

/// The directories of a task on the host, in Nomad's layout.
///
/// ```text
/// <alloc dir>/alloc          shared by the group's tasks (NOMAD_ALLOC_DIR)
/// <alloc dir>/alloc/logs     the tasks' log files
/// <alloc dir>/alloc/data     data kept across task restarts
/// <alloc dir>/<task>         the task dir
/// <alloc dir>/<task>/local   the task's own files (NOMAD_TASK_DIR)
/// <alloc dir>/<task>/secrets secrets, not shown by the file API (NOMAD_SECRETS_DIR)
/// <alloc dir>/<task>/tmp     the task's temporary files
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskDirs {
    /// The allocation's directory.
    pub alloc_dir: PathBuf,
    /// The directory shared by the group's tasks (`<alloc dir>/alloc`).
    pub shared_dir: PathBuf,
    /// The log directory (`<alloc dir>/alloc/logs`).
    pub log_dir: PathBuf,
    /// The task's directory (`<alloc dir>/<task>`); raw tasks run with it as working directory.
    pub task_dir: PathBuf,
    /// The task's local directory (`<task dir>/local`).
    pub local_dir: PathBuf,
    /// The task's secrets directory (`<task dir>/secrets`).
    pub secrets_dir: PathBuf,
    /// The task's temporary directory (`<task dir>/tmp`).
    pub tmp_dir: PathBuf,
}

impl TaskDirs {
    /// The directories of task `task_name` in allocation directory `alloc_dir`, in Nomad's
    /// layout. Only computes paths; creating them is the alloc dir hook's job.
    pub fn new(alloc_dir: impl AsRef<Path>, task_name: &str) -> Self {
        let alloc_dir = alloc_dir.as_ref().to_path_buf();
        let shared_dir = alloc_dir.join("alloc");
        let task_dir = alloc_dir.join(task_name);
        Self {
            log_dir: shared_dir.join("logs"),
            local_dir: task_dir.join("local"),
            secrets_dir: task_dir.join("secrets"),
            tmp_dir: task_dir.join("tmp"),
            shared_dir,
            task_dir,
            alloc_dir,
        }
    }

    /// Every directory of the layout, parents first.
    pub fn all(&self) -> [&Path; 7] {
        [
            &self.alloc_dir,
            &self.shared_dir,
            &self.log_dir,
            &self.task_dir,
            &self.local_dir,
            &self.secrets_dir,
            &self.tmp_dir,
        ]
    }
}

/// How a task's log files rotate (the task's `logs` block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// How many files of each stream are kept (Nomad's default: 10).
    pub max_files: u32,
    /// The size in MB at which a file is rotated (Nomad's default: 10).
    pub max_file_size_mb: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            max_files: 10,
            max_file_size_mb: 10,
        }
    }
}

/// One port allocated to the task's group or task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortMapping {
    /// The port's label in the network block (`http`).
    pub label: String,
    /// The port on the host.
    pub value: u16,
    /// The port inside the task's network namespace (`to`); 0 means the same as `value`.
    pub to: u16,
    /// The host address the port is bound on.
    pub host_ip: String,
}

/// The isolated network a task joins (a bridge or CNI network namespace made by the client).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkIsolation {
    /// The network mode: `bridge`, `cni/<name>`, ...
    pub mode: String,
    /// The path of the network namespace, as `/var/run/netns/<alloc id>`.
    pub path: String,
    /// Extra labels the network manager attached.
    pub labels: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_dirs_follow_nomads_layout() {
        let dirs = TaskDirs::new("/var/nomad/alloc/abc", "web");
        assert_eq!(dirs.shared_dir, Path::new("/var/nomad/alloc/abc/alloc"));
        assert_eq!(dirs.log_dir, Path::new("/var/nomad/alloc/abc/alloc/logs"));
        assert_eq!(dirs.task_dir, Path::new("/var/nomad/alloc/abc/web"));
        assert_eq!(dirs.local_dir, Path::new("/var/nomad/alloc/abc/web/local"));
        assert_eq!(
            dirs.secrets_dir,
            Path::new("/var/nomad/alloc/abc/web/secrets")
        );
        assert_eq!(dirs.tmp_dir, Path::new("/var/nomad/alloc/abc/web/tmp"));
        assert_eq!(dirs.all()[0], Path::new("/var/nomad/alloc/abc"));
    }

    #[test]
    fn task_config_round_trips_through_json() {
        let mut config = TaskConfig {
            id: "a/web/1".into(),
            task_name: "web".into(),
            driver_config: serde_json::json!({"command": "/bin/true"}),
            kill_timeout: Duration::from_secs(5),
            ..TaskConfig::default()
        };
        config.env.insert("A".into(), "1".into());
        let text = serde_json::to_string(&config).unwrap();
        let back: TaskConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, config);
        assert_eq!(back.logs.max_files, 10);
    }
}
