//! Building a task's environment from its allocation, node, directories and hooks.

use std::collections::{BTreeMap, BTreeSet};

use crate::driver::{DriverNetwork, TaskDirView};
use crate::job::{Job, NetworkResource, Port, Task, TaskGroup};
use crate::structs::{AllocatedPortMapping, Allocation, Node};

use super::interpolate::{env_key, expand, lookup_env, lookup_node, node_variables, Reference};
use super::names;
use super::TaskEnv;

type Map = BTreeMap<String, String>;

/// Connect sidecars listen for upstreams on this address, whatever `local_bind_address` says
/// (as in Nomad).
const UPSTREAM_IP: &str = "127.0.0.1";

/// How deep references between a task's `env` entries are followed before the rest are left
/// as written.
const MAX_ENV_NESTING: usize = 32;

/// Why a task environment cannot be built: the allocation does not describe the task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// The allocation does not carry its job.
    #[error("allocation {alloc_id:?} carries no job")]
    NoJob {
        /// The allocation.
        alloc_id: String,
    },
    /// The allocation's group is not in its job.
    #[error("allocation {alloc_id:?}: job {job_id:?} has no group {group:?}")]
    NoGroup {
        /// The allocation.
        alloc_id: String,
        /// Its job.
        job_id: String,
        /// The group it names.
        group: String,
    },
    /// The task is not in the allocation's group.
    #[error("allocation {alloc_id:?}: group {group:?} of job {job_id:?} has no task {task:?}")]
    NoTask {
        /// The allocation.
        alloc_id: String,
        /// Its job.
        job_id: String,
        /// Its group.
        group: String,
        /// The task asked for.
        task: String,
    },
}

/// The allocation's own network namespace (bridge or CNI mode), as the network hook made it:
/// the source of `NOMAD_ALLOC_IP_<label>`, `NOMAD_ALLOC_ADDR_<label>` and
/// `NOMAD_ALLOC_INTERFACE_<label>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllocNetworkStatus {
    /// The interface inside the namespace (`eth0`).
    pub interface_name: String,
    /// The allocation's address on it.
    pub address: String,
}

/// Builds a [`TaskEnv`]: what Nomad's client gives a task, in Nomad's precedence order.
///
/// [`TaskEnvBuilder::new`] takes everything the allocation, its job and the node say; the
/// setters add what the client learns while it prepares the task (directories, networks,
/// tokens, the environment of hooks and templates). [`TaskEnvBuilder::build`] can be called
/// again whenever one of those changes. The builder is cheap to clone: build once with the
/// directories as the task sees them and once with the host's paths when both are needed.
///
/// Layers, each overriding the ones before it:
///
/// 1. directories, resource limits, identity (alloc, job, group, task, datacenter, namespace,
///    region, cgroup parent);
/// 2. the task's own task-level ports (`NOMAD_{IP,PORT,ADDR,HOST_PORT}_<label>`, with the
///    driver's port map for `NOMAD_PORT_`), then other tasks' task-level ports
///    (`NOMAD_{IP,PORT,ADDR,HOST_PORT}_<task>_<label>`), then the group network's ports
///    (`NOMAD_{IP,PORT,ADDR}_<label>`, `NOMAD_HOST_{IP,PORT,ADDR}_<label>`,
///    `NOMAD_ALLOC_PORT_<label>`), Connect upstreams (`NOMAD_UPSTREAM_*`) and the allocation
///    namespace's addresses (`NOMAD_ALLOC_{IP,ADDR,INTERFACE}_<label>`);
/// 3. `VAULT_TOKEN` / `VAULT_NAMESPACE` and workload identity tokens;
/// 4. `NOMAD_META_<key>` and `NOMAD_META_<KEY>` for job, group and task metadata merged (task
///    wins, then group); names and values are interpolated against the layers above;
/// 5. the host's environment, only for names not set yet, interpolated;
/// 6. the task's `env` block, interpolated; entries may refer to each other (see below);
/// 7. the environment of each hook, in the order the hooks first set one, interpolated;
/// 8. the environment read from templates with `env = true`, as it is.
///
/// Names that start with `NOMAD_ADDR_`, `NOMAD_IP_`, `NOMAD_PORT_`, `NOMAD_HOST_PORT_` or
/// `NOMAD_META_` are sanitised with [`clean_env_name`](super::clean_env_name), whichever layer
/// they come from (Nomad sanitises exactly those).
///
/// Interpolation in layers 4 to 7 looks a name up in the node variables first, then in the
/// layers below; references that resolve to nothing are left as written. An `env` entry that
/// refers to another entry of the same block gets that entry's interpolated value, whatever
/// their order; a reference back to an entry being resolved (`PATH = "${PATH}:/opt/bin"`, or
/// a cycle) sees the value from the layers below, or stays as written when there is none.
/// Nomad resolves such references in its map's random order; here the result is always the
/// same.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskEnvBuilder {
    alloc_id: String,
    alloc_name: String,
    alloc_index: Option<u32>,
    group_name: String,
    task_name: String,
    job_id: String,
    job_name: String,
    job_parent_id: String,
    namespace: String,
    region: String,
    datacenter: String,
    cgroup_parent: String,
    cpu_limit: u64,
    cpu_cores: Vec<u16>,
    memory_limit: u64,
    memory_max_limit: u64,
    alloc_dir: String,
    local_dir: String,
    secrets_dir: String,
    task_networks: Vec<NetworkResource>,
    other_ports: Vec<(String, String)>,
    allocated_ports: Vec<AllocatedPortMapping>,
    upstreams: Vec<(String, u16)>,
    driver_network: Option<DriverNetwork>,
    alloc_network: Option<AllocNetworkStatus>,
    vault: Option<(String, String)>,
    default_token: Option<String>,
    named_tokens: Map,
    meta: Vec<(String, String)>,
    host_env: Map,
    task_env: Map,
    hook_envs: Vec<(String, Map)>,
    template_env: Map,
    node_vars: Map,
}

impl TaskEnvBuilder {
    /// A builder for task `task_name` of `alloc`'s group, running on `node`.
    ///
    /// # Errors
    ///
    /// [`EnvError`] when the allocation carries no job, or its job has no such group or the
    /// group no such task.
    pub fn new(alloc: &Allocation, task_name: &str, node: &Node) -> Result<Self, EnvError> {
        let (job, group) = job_and_group(alloc)?;
        let task = group.task(task_name).ok_or_else(|| EnvError::NoTask {
            alloc_id: alloc.id.to_string(),
            job_id: job.id.clone(),
            group: group.name.clone(),
            task: task_name.to_owned(),
        })?;
        Ok(Self::from_alloc(alloc, job, group, Some(task), node))
    }

    /// A builder for the group as a whole (no task): what group services are interpolated
    /// against. Every task's task-level ports appear as `NOMAD_*_<task>_<label>`.
    ///
    /// # Errors
    ///
    /// [`EnvError`] when the allocation carries no job or its job has no such group.
    pub fn for_group(alloc: &Allocation, node: &Node) -> Result<Self, EnvError> {
        let (job, group) = job_and_group(alloc)?;
        Ok(Self::from_alloc(alloc, job, group, None, node))
    }

    fn from_alloc(
        alloc: &Allocation,
        job: &Job,
        group: &TaskGroup,
        task: Option<&Task>,
        node: &Node,
    ) -> Self {
        let task_name = task.map(|t| t.name.clone()).unwrap_or_default();
        let mut b = Self {
            alloc_id: alloc.id.to_string(),
            alloc_name: alloc.name.clone(),
            alloc_index: alloc.index(),
            group_name: alloc.task_group.to_string(),
            job_id: job.id.clone(),
            job_name: job.name.clone(),
            job_parent_id: job.parent_id.clone(),
            namespace: if alloc.namespace.is_empty() {
                job.namespace_or_default().to_owned()
            } else {
                alloc.namespace.to_string()
            },
            region: job
                .region
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "global".to_owned()),
            datacenter: node.datacenter.clone(),
            node_vars: node_variables(node, ""),
            ..Self::default()
        };

        if let Some(task) = task {
            if let Some(r) = &task.resources {
                b.cpu_limit = r.cpu.map_or(0, u64::from);
                b.memory_limit = r.memory_mb.map_or(0, u64::from);
                b.memory_max_limit = r.memory_max_mb.map_or(0, u64::from);
            }
            b.task_env = task.env.clone();
        }
        b.meta = meta_entries(job, group, task);

        if let Some(res) = &alloc.allocated_resources {
            if let Some(tr) = res.tasks.get(&task_name).filter(|_| task.is_some()) {
                b.cpu_limit = tr.cpu.cpu_shares;
                b.cpu_cores = tr.cpu.reserved_cores.clone();
                b.memory_limit = tr.memory.memory_mb;
                b.memory_max_limit = tr.memory.memory_max_mb;
                b.task_networks = tr.networks.clone();
            }
            for (other, tr) in &res.tasks {
                if task.is_some() && *other == task_name {
                    continue;
                }
                for nw in &tr.networks {
                    for p in nw.ports() {
                        other_task_port(&mut b.other_ports, other, &nw.ip, p);
                    }
                }
            }
            for nw in &res.shared.networks {
                for p in nw.ports() {
                    let port = if p.to > 0 {
                        p.to.to_string()
                    } else {
                        p.value.to_string()
                    };
                    b.other_ports
                        .push((format!("{}{}", names::PORT_PREFIX, p.label), port));
                    b.other_ports.push((
                        format!("{}{}", names::HOST_PORT_PREFIX, p.label),
                        p.value.to_string(),
                    ));
                }
            }
            for p in &res.shared.ports {
                group_port(&mut b.other_ports, p);
            }
            b.allocated_ports = res.shared.ports.clone();
        }

        b.upstreams = group
            .services
            .iter()
            .filter_map(|s| s.connect.as_ref()?.sidecar_service.as_ref()?.proxy.as_ref())
            .flat_map(|proxy| &proxy.upstreams)
            .map(|u| (u.destination_name.clone(), u.local_bind_port))
            .collect();
        b.task_name = task_name;
        b
    }

    /// The region (`NOMAD_REGION`, `${node.region}`): the client agent's region. Defaults to
    /// the job's region, or `global`.
    pub fn region(&mut self, region: &str) -> &mut Self {
        region.clone_into(&mut self.region);
        self
    }

    /// The task's directories as the task sees them: host paths without filesystem
    /// isolation, `/alloc`, `/local` and `/secrets` with it (see
    /// [`FsIsolation::task_view`](crate::driver::FsIsolation::task_view)). Empty paths are
    /// left out of the environment.
    pub fn dirs(&mut self, dirs: &TaskDirView) -> &mut Self {
        self.alloc_dir = dirs.alloc_dir.to_string_lossy().into_owned();
        self.local_dir = dirs.local_dir.to_string_lossy().into_owned();
        self.secrets_dir = dirs.secrets_dir.to_string_lossy().into_owned();
        self
    }

    /// The network the driver made for the task, if any: its port map gives
    /// `NOMAD_PORT_<label>` of task-level ports.
    pub fn driver_network(&mut self, network: Option<DriverNetwork>) -> &mut Self {
        self.driver_network = network;
        self
    }

    /// The allocation's network namespace (bridge or CNI mode), if it has one: gives
    /// `NOMAD_ALLOC_{IP,ADDR,INTERFACE}_<label>` for each group port.
    pub fn alloc_network(&mut self, status: Option<AllocNetworkStatus>) -> &mut Self {
        self.alloc_network = status;
        self
    }

    /// The cgroup parent tasks' cgroups are made under (`NOMAD_PARENT_CGROUP`); empty for
    /// none.
    pub fn cgroup_parent(&mut self, parent: &str) -> &mut Self {
        parent.clone_into(&mut self.cgroup_parent);
        self
    }

    /// The host's environment (already filtered by the client's configuration) for drivers
    /// that pass it on; its variables never override the task's own.
    pub fn host_env(&mut self, env: impl IntoIterator<Item = (String, String)>) -> &mut Self {
        self.host_env = env.into_iter().collect();
        self
    }

    /// The task's Vault token and namespace; they are put in `VAULT_TOKEN` and
    /// `VAULT_NAMESPACE` (when not empty) only when `inject` (the `vault` block's `env`) is
    /// true.
    pub fn vault_token(&mut self, token: &str, namespace: &str, inject: bool) -> &mut Self {
        self.vault = inject.then(|| (token.to_owned(), namespace.to_owned()));
        self
    }

    /// The default workload identity's token, for an identity with `env = true`: sets
    /// `NOMAD_TOKEN` and `NOMAD_UNIX_ADDR`.
    pub fn default_workload_token(&mut self, token: &str) -> &mut Self {
        self.default_token = Some(token.to_owned());
        self
    }

    /// A named workload identity's token, for an identity with `env = true`: sets
    /// `NOMAD_TOKEN_<name>` and `NOMAD_UNIX_ADDR`.
    pub fn workload_token(&mut self, name: &str, token: &str) -> &mut Self {
        self.named_tokens.insert(name.to_owned(), token.to_owned());
        self
    }

    /// The environment a hook contributes (devices, Connect, secrets, ...). Setting it again
    /// for the same hook replaces it and keeps the hook's place: hooks apply in the order they
    /// first set an environment, later ones winning.
    pub fn hook_env(&mut self, hook: &str, env: BTreeMap<String, String>) -> &mut Self {
        match self.hook_envs.iter_mut().find(|(name, _)| name == hook) {
            Some((_, existing)) => *existing = env,
            None => self.hook_envs.push((hook.to_owned(), env)),
        }
        self
    }

    /// The variables read from templates with `env = true`; they override everything else
    /// and are not interpolated.
    pub fn template_env(&mut self, env: BTreeMap<String, String>) -> &mut Self {
        self.template_env = env;
        self
    }

    /// The environment, in the precedence order described on [`TaskEnvBuilder`].
    pub fn build(&self) -> TaskEnv {
        let mut node = self.node_vars.clone();
        if !self.region.is_empty() {
            node.insert("node.region".to_owned(), self.region.clone());
        }
        let mut env = Map::new();

        put_some(&mut env, names::ALLOC_DIR, &self.alloc_dir);
        put_some(&mut env, names::TASK_DIR, &self.local_dir);
        put_some(&mut env, names::SECRETS_DIR, &self.secrets_dir);
        for (name, value) in [
            (names::MEMORY_LIMIT, self.memory_limit),
            (names::MEMORY_MAX_LIMIT, self.memory_max_limit),
            (names::CPU_LIMIT, self.cpu_limit),
        ] {
            if value != 0 {
                put(&mut env, name, value.to_string());
            }
        }
        if !self.cpu_cores.is_empty() {
            put(&mut env, names::CPU_CORES, cpuset_list(&self.cpu_cores));
        }
        if !self.alloc_id.is_empty() {
            put(&mut env, names::ALLOC_ID, self.alloc_id.clone());
            put(
                &mut env,
                names::SHORT_ALLOC_ID,
                self.alloc_id.chars().take(8).collect(),
            );
        }
        put_some(&mut env, names::ALLOC_NAME, &self.alloc_name);
        put_some(&mut env, names::GROUP_NAME, &self.group_name);
        if let Some(index) = self.alloc_index {
            put(&mut env, names::ALLOC_INDEX, index.to_string());
        }
        put_some(&mut env, names::TASK_NAME, &self.task_name);
        put_some(&mut env, names::JOB_ID, &self.job_id);
        put_some(&mut env, names::JOB_NAME, &self.job_name);
        put_some(&mut env, names::JOB_PARENT_ID, &self.job_parent_id);
        put_some(&mut env, names::DC, &self.datacenter);
        put_some(&mut env, names::PARENT_CGROUP, &self.cgroup_parent);
        put_some(&mut env, names::NAMESPACE, &self.namespace);
        put_some(&mut env, names::REGION, &self.region);

        for nw in &self.task_networks {
            for p in nw.ports() {
                own_task_port(&mut env, p, &nw.ip, self.driver_network.as_ref());
            }
        }
        for (name, value) in &self.other_ports {
            put(&mut env, name, value.clone());
        }
        for (service, port) in &self.upstreams {
            let port = port.to_string();
            let addr = join_host_port(UPSTREAM_IP, &port);
            let clean = super::clean_env_name(service);
            for name in [service.as_str(), clean.as_str()] {
                put(
                    &mut env,
                    &format!("{}{name}", names::UPSTREAM_IP_PREFIX),
                    UPSTREAM_IP.into(),
                );
                put(
                    &mut env,
                    &format!("{}{name}", names::UPSTREAM_PORT_PREFIX),
                    port.clone(),
                );
                put(
                    &mut env,
                    &format!("{}{name}", names::UPSTREAM_ADDR_PREFIX),
                    addr.clone(),
                );
            }
        }
        if let Some(status) = &self.alloc_network {
            for p in &self.allocated_ports {
                let port = if p.to > 0 {
                    p.to.to_string()
                } else {
                    p.value.to_string()
                };
                let label = &p.label;
                put(
                    &mut env,
                    &format!("{}{label}", names::ALLOC_INTERFACE_PREFIX),
                    status.interface_name.clone(),
                );
                put(
                    &mut env,
                    &format!("{}{label}", names::ALLOC_IP_PREFIX),
                    status.address.clone(),
                );
                put(
                    &mut env,
                    &format!("{}{label}", names::ALLOC_ADDR_PREFIX),
                    join_host_port(&status.address, &port),
                );
            }
        }

        if let Some((token, namespace)) = &self.vault {
            put_some(&mut env, names::VAULT_TOKEN, token);
            put_some(&mut env, names::VAULT_NAMESPACE, namespace);
        }
        let unix_addr = format!("unix://{}", join_path(&self.secrets_dir, "api.sock"));
        if let Some(token) = self.default_token.as_ref().filter(|t| !t.is_empty()) {
            put(&mut env, names::TOKEN, token.clone());
            put(&mut env, names::UNIX_ADDR, unix_addr.clone());
        }
        for (name, token) in &self.named_tokens {
            put(&mut env, &format!("{}_{name}", names::TOKEN), token.clone());
            put(&mut env, names::UNIX_ADDR, unix_addr.clone());
        }

        let meta: Vec<(String, String)> = self
            .meta
            .iter()
            .map(|(k, v)| (substitute(&node, &env, k), substitute(&node, &env, v)))
            .collect();
        for (k, v) in meta {
            put(&mut env, &k, v);
        }

        let host: Vec<(&String, String)> = self
            .host_env
            .iter()
            .filter(|(k, _)| !env.contains_key(env_key(k).as_ref()))
            .map(|(k, v)| (k, substitute(&node, &env, v)))
            .collect();
        for (k, v) in host {
            put(&mut env, k, v);
        }

        let values = EnvBlock::new(&node, &env, &self.task_env).resolve_all();
        for (k, v) in self.task_env.keys().zip(values) {
            put(&mut env, k, v);
        }

        for (_, hook) in &self.hook_envs {
            let values: Vec<(&String, String)> = hook
                .iter()
                .map(|(k, v)| (k, substitute(&node, &env, v)))
                .collect();
            for (k, v) in values {
                put(&mut env, k, v);
            }
        }

        for (k, v) in &self.template_env {
            put(&mut env, k, v.clone());
        }

        TaskEnv::from_parts(env, node)
    }
}

fn job_and_group(alloc: &Allocation) -> Result<(&Job, &TaskGroup), EnvError> {
    let job = alloc.job.as_ref().ok_or_else(|| EnvError::NoJob {
        alloc_id: alloc.id.to_string(),
    })?;
    let group = job
        .group(&alloc.task_group)
        .ok_or_else(|| EnvError::NoGroup {
            alloc_id: alloc.id.to_string(),
            job_id: job.id.clone(),
            group: alloc.task_group.to_string(),
        })?;
    Ok((job, group))
}

/// `NOMAD_META_*` entries in the order they are applied: defaults for a dispatched job's
/// optional keys, then the upper-cased names, then the names as written (so a key written in
/// capitals wins over another key that upper-cases to it).
fn meta_entries(job: &Job, group: &TaskGroup, task: Option<&Task>) -> Vec<(String, String)> {
    let mut merged = Map::new();
    for meta in [task.map(|t| &t.meta), Some(&group.meta), Some(&job.meta)]
        .into_iter()
        .flatten()
    {
        for (k, v) in meta {
            merged.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let mut entries = Vec::with_capacity(merged.len() * 2);
    if job.dispatched {
        if let Some(p) = &job.parameterized_job {
            for k in &p.meta_optional {
                entries.push((
                    format!("{}{}", names::META_PREFIX, k.to_uppercase()),
                    String::new(),
                ));
                entries.push((format!("{}{k}", names::META_PREFIX), String::new()));
            }
        }
    }
    for (k, v) in &merged {
        entries.push((
            format!("{}{}", names::META_PREFIX, k.to_uppercase()),
            v.clone(),
        ));
    }
    for (k, v) in &merged {
        entries.push((format!("{}{k}", names::META_PREFIX), v.clone()));
    }
    entries
}

/// A task-level port of this task: host values, and the driver's mapped port for
/// `NOMAD_PORT_` when its port map has the label.
fn own_task_port(env: &mut Map, p: &Port, ip: &str, driver: Option<&DriverNetwork>) {
    let host = p.value.to_string();
    let label = &p.label;
    let family = if ip.contains(':') {
        names::IPV6_PREFIX
    } else {
        names::IPV4_PREFIX
    };
    put(env, &format!("{}{label}", names::IP_PREFIX), ip.to_owned());
    put(env, &format!("{family}{label}"), ip.to_owned());
    put(
        env,
        &format!("{}{label}", names::HOST_PORT_PREFIX),
        host.clone(),
    );
    put(
        env,
        &format!("{}{label}", names::ADDR_PREFIX),
        join_host_port(ip, &host),
    );
    let mapped = driver
        .and_then(|d| d.port_map.get(label.as_str()))
        .filter(|port| **port != 0)
        .map(u16::to_string);
    put(
        env,
        &format!("{}{label}", names::PORT_PREFIX),
        mapped.unwrap_or(host),
    );
}

/// A task-level port of another task of the group: always host values.
fn other_task_port(out: &mut Vec<(String, String)>, task: &str, ip: &str, p: &Port) {
    let port = p.value.to_string();
    let suffix = format!("{task}_{}", p.label);
    out.push((
        format!("{}{suffix}", names::ADDR_PREFIX),
        join_host_port(ip, &port),
    ));
    out.push((format!("{}{suffix}", names::IP_PREFIX), ip.to_owned()));
    out.push((format!("{}{suffix}", names::PORT_PREFIX), port.clone()));
    out.push((format!("{}{suffix}", names::HOST_PORT_PREFIX), port));
}

/// A port of the group network as the scheduler assigned it: `NOMAD_PORT_` and
/// `NOMAD_ALLOC_PORT_` are the `to` port when there is one (the port the task binds inside
/// its network), the host port otherwise; the `HOST_` and plain `IP`/`ADDR` names are the
/// host's.
fn group_port(out: &mut Vec<(String, String)>, p: &AllocatedPortMapping) {
    let host = p.value.to_string();
    let inner = if p.to > 0 {
        p.to.to_string()
    } else {
        host.clone()
    };
    let addr = join_host_port(&p.host_ip, &host);
    let label = &p.label;
    out.push((format!("{}{label}", names::ADDR_PREFIX), addr.clone()));
    out.push((format!("{}{label}", names::HOST_ADDR_PREFIX), addr));
    out.push((
        format!("{}{label}", names::IP_PREFIX),
        p.host_ip.to_string(),
    ));
    out.push((
        format!("{}{label}", names::HOST_IP_PREFIX),
        p.host_ip.to_string(),
    ));
    out.push((format!("{}{label}", names::PORT_PREFIX), inner.clone()));
    out.push((format!("{}{label}", names::ALLOC_PORT_PREFIX), inner));
    out.push((format!("{}{label}", names::HOST_PORT_PREFIX), host));
}

/// Stores `value` under `name`, sanitised where Nomad sanitises.
fn put(env: &mut Map, name: &str, value: String) {
    env.insert(env_key(name).into_owned(), value);
}

/// Stores `value` under `name` unless it is empty.
fn put_some(env: &mut Map, name: &str, value: &str) {
    if !value.is_empty() {
        put(env, name, value.to_owned());
    }
}

/// Interpolates `text` against the node variables, then `env`.
fn substitute(node: &Map, env: &Map, text: &str) -> String {
    expand(text, &mut |r| {
        match r {
            Reference::Name(name) => lookup_node(node, name).or_else(|| lookup_env(env, name)),
            Reference::Env(name) => env.get(name).map(String::as_str),
        }
        .map(str::to_owned)
    })
}

/// The task's `env` block being interpolated: entries may refer to each other.
struct EnvBlock<'a> {
    node: &'a Map,
    below: &'a Map,
    raw: &'a Map,
    done: Map,
    active: BTreeSet<&'a str>,
}

impl<'a> EnvBlock<'a> {
    fn new(node: &'a Map, below: &'a Map, raw: &'a Map) -> Self {
        Self {
            node,
            below,
            raw,
            done: Map::new(),
            active: BTreeSet::new(),
        }
    }

    /// The interpolated values, in the order of the block's names.
    fn resolve_all(mut self) -> Vec<String> {
        let raw = self.raw;
        raw.iter().map(|(k, v)| self.resolve(k, v, 0)).collect()
    }

    fn resolve(&mut self, key: &'a str, text: &'a str, depth: usize) -> String {
        if let Some(done) = self.done.get(key) {
            return done.clone();
        }
        self.active.insert(key);
        let value = expand(text, &mut |r| self.lookup(r, depth + 1));
        self.active.remove(key);
        self.done.insert(key.to_owned(), value.clone());
        value
    }

    fn lookup(&mut self, reference: &Reference<'_>, depth: usize) -> Option<String> {
        let name = match reference {
            Reference::Name(name) => {
                if let Some(v) = lookup_node(self.node, name) {
                    return Some(v.to_owned());
                }
                *name
            }
            Reference::Env(name) => name.as_str(),
        };
        let raw = self.raw;
        if let Some((key, text)) = raw.get_key_value(name) {
            if depth <= MAX_ENV_NESTING && !self.active.contains(key.as_str()) {
                return Some(self.resolve(key, text, depth));
            }
        }
        match reference {
            Reference::Name(name) => lookup_env(self.below, name),
            Reference::Env(name) => self.below.get(name).map(String::as_str),
        }
        .map(str::to_owned)
    }
}

/// `ip:port`, with an IPv6 address in brackets.
fn join_host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn join_path(dir: &str, file: &str) -> String {
    if dir.is_empty() || dir.ends_with('/') {
        format!("{dir}{file}")
    } else {
        format!("{dir}/{file}")
    }
}

/// Core IDs in cpuset list notation: sorted, duplicates dropped, runs as `first-last`.
fn cpuset_list(cores: &[u16]) -> String {
    let mut ids = cores.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut iter = ids.into_iter();
    let Some(first) = iter.next() else {
        return String::new();
    };
    let (mut low, mut high) = (first, first);
    let mut flush = |low: u16, high: u16| {
        parts.push(if low == high {
            low.to_string()
        } else {
            format!("{low}-{high}")
        });
    };
    for id in iter {
        if Some(id) == high.checked_add(1) {
            high = id;
        } else {
            flush(low, high);
            low = id;
            high = id;
        }
    }
    flush(low, high);
    parts.join(",")
}

#[cfg(test)]
mod tests;
