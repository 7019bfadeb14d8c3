//! Tasks and what they carry: resources, lifecycle, templates, artifacts, logs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    Affinity, Constraint, ConsulBlock, Duration, FreeForm, NetworkResource, RestartPolicy,
    ScalingPolicy, Service,
};

/// One unit of work run by a driver.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Task {
    /// The task name, unique in its group.
    pub name: String,
    /// The driver that runs it: `raw_exec`, `exec`, `docker`, ...
    pub driver: String,
    /// The user to run as.
    pub user: String,
    /// When the task runs relative to the group's main tasks.
    pub lifecycle: Option<TaskLifecycle>,
    /// Driver configuration, checked by the driver.
    pub config: FreeForm,
    /// Constraints on the node.
    pub constraints: Vec<Constraint>,
    /// Node preferences.
    pub affinities: Vec<Affinity>,
    /// Environment variables (may interpolate `${...}`).
    pub env: BTreeMap<String, String>,
    /// Services the task offers.
    pub services: Vec<Service>,
    /// Resources the task needs.
    pub resources: Option<Resources>,
    /// Restart policy; inherits the group's.
    pub restart_policy: Option<RestartPolicy>,
    /// Metadata, visible as `NOMAD_META_*`.
    pub meta: BTreeMap<String, String>,
    /// Time between the kill signal and a forced kill (default 5s).
    pub kill_timeout: Option<Duration>,
    /// Log rotation.
    pub log_config: Option<LogConfig>,
    /// Files fetched before the task starts.
    pub artifacts: Vec<TaskArtifact>,
    /// Vault token settings.
    pub vault: Option<Vault>,
    /// Files rendered from templates.
    pub templates: Vec<Template>,
    /// Where a dispatched job's payload is written.
    pub dispatch_payload: Option<DispatchPayloadConfig>,
    /// Volumes mounted into the task.
    pub volume_mounts: Vec<VolumeMount>,
    /// The task is a CSI plugin.
    #[serde(rename = "CSIPluginConfig")]
    pub csi_plugin_config: Option<FreeForm>,
    /// When the leader exits, the group's other tasks are stopped.
    pub leader: bool,
    /// Delay between deregistering services and killing the task.
    pub shutdown_delay: Duration,
    /// Signal used to stop the task (default SIGINT).
    pub kill_signal: String,
    /// Internal kind, e.g. `connect-proxy:<service>` for injected sidecars.
    pub kind: String,
    /// Vertical scaling policies.
    pub scaling_policies: Vec<ScalingPolicy>,
    /// The default workload identity.
    pub identity: Option<WorkloadIdentity>,
    /// Named workload identities.
    pub identities: Vec<WorkloadIdentity>,
    /// Consul settings of this task.
    pub consul: Option<ConsulBlock>,
    /// Named actions that can be run in the task.
    pub actions: Vec<Action>,
}

impl Task {
    /// The lifecycle hook, or `None` for a main task.
    pub fn lifecycle_hook(&self) -> Option<&str> {
        self.lifecycle
            .as_ref()
            .map(|l| l.hook.as_str())
            .filter(|h| !h.is_empty())
    }
}

/// Task resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Resources {
    /// CPU in MHz (default 100).
    #[serde(rename = "CPU")]
    pub cpu: Option<u32>,
    /// Whole cores reserved for the task (exclusive with `cpu`).
    pub cores: Option<u32>,
    /// Memory in MB (default 300).
    #[serde(rename = "MemoryMB")]
    pub memory_mb: Option<u32>,
    /// Memory the task may burst to, in MB (0: no oversubscription).
    #[serde(rename = "MemoryMaxMB")]
    pub memory_max_mb: Option<u32>,
    /// Disk in MB (deprecated at the task level).
    #[serde(rename = "DiskMB")]
    pub disk_mb: Option<u32>,
    /// Task-level networks (deprecated; use the group network).
    pub networks: Vec<NetworkResource>,
    /// Devices such as GPUs.
    pub devices: Vec<RequestedDevice>,
}

/// A device request: `device "nvidia/gpu" { count = 2 }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RequestedDevice {
    /// `<type>`, `<vendor>/<type>` or `<vendor>/<type>/<model>`.
    pub name: String,
    /// How many instances (default 1).
    pub count: Option<u64>,
    /// Constraints on the device's attributes.
    pub constraints: Vec<Constraint>,
    /// Preferences among devices.
    pub affinities: Vec<Affinity>,
}

/// When a task runs relative to the main tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskLifecycle {
    /// `prestart`, `poststart` or `poststop`.
    pub hook: String,
    /// Keep the task running alongside the main tasks.
    pub sidecar: bool,
}

/// A file rendered from a Go template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Template {
    /// A template file on the client, relative to the task dir.
    pub source_path: String,
    /// Where the rendered file goes, relative to the task dir.
    pub dest_path: String,
    /// The template text itself.
    pub embedded_tmpl: String,
    /// `restart` (default), `signal`, `script` or `noop`.
    pub change_mode: String,
    /// The signal for `change_mode = "signal"`.
    pub change_signal: String,
    /// The script for `change_mode = "script"`.
    pub change_script: Option<ChangeScript>,
    /// Random delay before acting on a change (default 5s).
    pub splay: Option<Duration>,
    /// File mode of the rendered file (default "0644").
    pub perms: String,
    /// Owner user id of the rendered file.
    pub uid: Option<i32>,
    /// Owner group id of the rendered file.
    pub gid: Option<i32>,
    /// Left delimiter (default `{{`).
    pub left_delim: String,
    /// Right delimiter (default `}}`).
    pub right_delim: String,
    /// Read the rendered file into the task environment.
    pub envvars: bool,
    /// Deprecated Vault lease grace period.
    pub vault_grace: Option<Duration>,
    /// Quiescence timers.
    pub wait: Option<WaitConfig>,
    /// Fail rendering on a missing map key.
    pub err_missing_key: bool,
    /// Render once and never again.
    pub once: bool,
}

/// Minimum and maximum quiescence before re-rendering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WaitConfig {
    /// Minimum wait.
    pub min: Option<Duration>,
    /// Maximum wait.
    pub max: Option<Duration>,
}

/// A script run in the task when a template changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ChangeScript {
    /// Command to run.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// How long it may run (default 5s).
    pub timeout: Option<Duration>,
    /// Kill the task when the script fails.
    pub fail_on_error: bool,
}

/// A file fetched into the task dir before the task starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskArtifact {
    /// Where to fetch from (go-getter syntax).
    pub getter_source: String,
    /// go-getter options.
    pub getter_options: BTreeMap<String, String>,
    /// HTTP headers.
    pub getter_headers: BTreeMap<String, String>,
    /// `any` (default), `file` or `dir`.
    pub getter_mode: String,
    /// Destination relative to the task dir (default `local/`).
    pub relative_dest: String,
    /// Insecure transport allowed.
    pub getter_insecure: bool,
}

/// Log rotation of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    /// Files kept per stream (default 10).
    pub max_files: Option<u32>,
    /// Size of each file in MB (default 10).
    #[serde(rename = "MaxFileSizeMB")]
    pub max_file_size_mb: Option<u32>,
    /// Turn log collection off.
    pub disabled: Option<bool>,
    /// Turn log collection on (deprecated counterpart of `disabled`).
    pub enabled: Option<bool>,
}

/// A group volume mounted into a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeMount {
    /// The group volume's name.
    pub volume: String,
    /// Path in the task.
    pub destination: String,
    /// Mount read-only.
    pub read_only: bool,
    /// `private`, `host-to-task` or `bidirectional`.
    pub propagation_mode: String,
    /// SELinux label.
    #[serde(rename = "SELinuxLabel")]
    pub selinux_label: String,
}

/// Where a dispatched job's payload is written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DispatchPayloadConfig {
    /// File name relative to the task's local dir.
    pub file: String,
}

/// Vault token settings of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Vault {
    /// Vault policies.
    pub policies: Vec<String>,
    /// Vault role.
    pub role: String,
    /// Vault namespace.
    pub namespace: String,
    /// Vault cluster.
    pub cluster: String,
    /// Put the token in `VAULT_TOKEN` (default true).
    pub env: Option<bool>,
    /// Do not write the token file.
    pub disable_file: bool,
    /// What to do when the token changes.
    pub change_mode: String,
    /// Signal for `change_mode = "signal"`.
    pub change_signal: String,
    /// Keep running when the token cannot be renewed.
    pub allow_token_expiration: bool,
}

/// A workload identity token given to the task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WorkloadIdentity {
    /// Name (the default identity has none).
    pub name: String,
    /// Token audience.
    pub audience: Vec<String>,
    /// Expose the token as `NOMAD_TOKEN` / `NOMAD_TOKEN_<name>`.
    pub env: bool,
    /// Write the token to the secrets dir.
    pub file: bool,
    /// What to do when the token changes.
    pub change_mode: String,
    /// Signal for `change_mode = "signal"`.
    pub change_signal: String,
    /// Token lifetime.
    #[serde(rename = "TTL")]
    pub ttl: Duration,
    /// Service name, for service identities.
    pub service_name: String,
}

/// A named command that can be run in the task on request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Action {
    /// Action name.
    pub name: String,
    /// Command.
    pub command: String,
    /// Arguments.
    pub args: Vec<String>,
}
