//! The names of the variables in a task's environment, as Nomad documents them.
//!
//! Names ending in `_` are prefixes: the rest of the name is a port label, a task and port
//! label, an upstream service, a metadata key or a workload identity name.

/// The shared `alloc/` directory, as the task sees it.
pub const ALLOC_DIR: &str = "NOMAD_ALLOC_DIR";
/// The task's `local/` directory, as the task sees it.
pub const TASK_DIR: &str = "NOMAD_TASK_DIR";
/// The task's `secrets/` directory, as the task sees it.
pub const SECRETS_DIR: &str = "NOMAD_SECRETS_DIR";
/// The task's memory limit in MB.
pub const MEMORY_LIMIT: &str = "NOMAD_MEMORY_LIMIT";
/// The memory the task may burst to in MB, when oversubscription is configured.
pub const MEMORY_MAX_LIMIT: &str = "NOMAD_MEMORY_MAX_LIMIT";
/// The task's CPU limit in MHz.
pub const CPU_LIMIT: &str = "NOMAD_CPU_LIMIT";
/// The cores reserved for the task, in cpuset list notation (`0-2,7`).
pub const CPU_CORES: &str = "NOMAD_CPU_CORES";
/// The allocation ID.
pub const ALLOC_ID: &str = "NOMAD_ALLOC_ID";
/// The first 8 characters of the allocation ID.
pub const SHORT_ALLOC_ID: &str = "NOMAD_SHORT_ALLOC_ID";
/// The allocation name, `<job>.<group>[<index>]`.
pub const ALLOC_NAME: &str = "NOMAD_ALLOC_NAME";
/// The allocation index, from 0 to count - 1.
pub const ALLOC_INDEX: &str = "NOMAD_ALLOC_INDEX";
/// The task name.
pub const TASK_NAME: &str = "NOMAD_TASK_NAME";
/// The task group name.
pub const GROUP_NAME: &str = "NOMAD_GROUP_NAME";
/// The job ID.
pub const JOB_ID: &str = "NOMAD_JOB_ID";
/// The job name.
pub const JOB_NAME: &str = "NOMAD_JOB_NAME";
/// The ID of the job's parent (periodic or parameterized), if it has one.
pub const JOB_PARENT_ID: &str = "NOMAD_JOB_PARENT_ID";
/// The node's datacenter.
pub const DC: &str = "NOMAD_DC";
/// The cgroup parent under which the task's cgroups are made.
pub const PARENT_CGROUP: &str = "NOMAD_PARENT_CGROUP";
/// The allocation's namespace.
pub const NAMESPACE: &str = "NOMAD_NAMESPACE";
/// The region the allocation runs in.
pub const REGION: &str = "NOMAD_REGION";
/// The task's Vault token.
pub const VAULT_TOKEN: &str = "VAULT_TOKEN";
/// The Vault namespace of the task's token.
pub const VAULT_NAMESPACE: &str = "VAULT_NAMESPACE";
/// The task's default workload identity token; named identities use `NOMAD_TOKEN_<name>`.
pub const TOKEN: &str = "NOMAD_TOKEN";
/// The address of the agent's task API socket (`unix://<secrets>/api.sock`).
pub const UNIX_ADDR: &str = "NOMAD_UNIX_ADDR";

/// `NOMAD_ADDR_<label>`: host `ip:port` of a port; also `NOMAD_ADDR_<task>_<label>`.
pub const ADDR_PREFIX: &str = "NOMAD_ADDR_";
/// `NOMAD_IP_<label>`: host IP of a port; also `NOMAD_IP_<task>_<label>`.
pub const IP_PREFIX: &str = "NOMAD_IP_";
/// `NOMAD_PORT_<label>`: the port the task binds (`to` when mapped, else the host port);
/// also `NOMAD_PORT_<task>_<label>`.
pub const PORT_PREFIX: &str = "NOMAD_PORT_";
/// `NOMAD_HOST_PORT_<label>`: the port on the host.
pub const HOST_PORT_PREFIX: &str = "NOMAD_HOST_PORT_";
/// `NOMAD_HOST_IP_<label>`: the host IP of a group port.
pub const HOST_IP_PREFIX: &str = "NOMAD_HOST_IP_";
/// `NOMAD_HOST_ADDR_<label>`: the host `ip:port` of a group port.
pub const HOST_ADDR_PREFIX: &str = "NOMAD_HOST_ADDR_";
/// `NOMAD_ALLOC_PORT_<label>`: the port inside the allocation's network.
pub const ALLOC_PORT_PREFIX: &str = "NOMAD_ALLOC_PORT_";
/// `NOMAD_ALLOC_IP_<label>`: the allocation's address in its network namespace.
pub const ALLOC_IP_PREFIX: &str = "NOMAD_ALLOC_IP_";
/// `NOMAD_ALLOC_ADDR_<label>`: `ip:port` inside the allocation's network namespace.
pub const ALLOC_ADDR_PREFIX: &str = "NOMAD_ALLOC_ADDR_";
/// `NOMAD_ALLOC_INTERFACE_<label>`: the interface of the allocation's network namespace.
pub const ALLOC_INTERFACE_PREFIX: &str = "NOMAD_ALLOC_INTERFACE_";
/// `NOMAD_IPv4_<label>`: host IP of a task-level port, when it is an IPv4 address.
pub const IPV4_PREFIX: &str = "NOMAD_IPv4_";
/// `NOMAD_IPv6_<label>`: host IP of a task-level port, when it is an IPv6 address.
pub const IPV6_PREFIX: &str = "NOMAD_IPv6_";
/// `NOMAD_UPSTREAM_IP_<service>`: the local address of a Connect upstream.
pub const UPSTREAM_IP_PREFIX: &str = "NOMAD_UPSTREAM_IP_";
/// `NOMAD_UPSTREAM_PORT_<service>`: the local port of a Connect upstream.
pub const UPSTREAM_PORT_PREFIX: &str = "NOMAD_UPSTREAM_PORT_";
/// `NOMAD_UPSTREAM_ADDR_<service>`: the local `ip:port` of a Connect upstream.
pub const UPSTREAM_ADDR_PREFIX: &str = "NOMAD_UPSTREAM_ADDR_";
/// `NOMAD_META_<key>`: job, group and task metadata merged (task wins).
pub const META_PREFIX: &str = "NOMAD_META_";

/// The prefixes whose variable names are sanitised (see
/// [`clean_env_name`](super::clean_env_name)) once the environment is built. Nomad cleans
/// exactly these; `NOMAD_HOST_IP_`, `NOMAD_HOST_ADDR_` and `NOMAD_ALLOC_*` names keep the port
/// label as written.
pub const CLEANED_PREFIXES: [&str; 5] = [
    ADDR_PREFIX,
    IP_PREFIX,
    PORT_PREFIX,
    HOST_PORT_PREFIX,
    META_PREFIX,
];
