//! Nodes: the machines allocations run on.

use std::collections::BTreeMap;

use arcstr::ArcStr;
use serde::{Deserialize, Serialize};

use crate::job::NetworkResource;

/// A client node as the server knows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    /// Unique ID (a UUID, stable across restarts).
    #[serde(rename = "ID")]
    pub id: ArcStr,
    /// Secret the node authenticates with (never returned by the API).
    #[serde(rename = "SecretID", skip_serializing_if = "String::is_empty")]
    pub secret_id: String,
    /// Datacenter.
    pub datacenter: String,
    /// Node name (hostname by default).
    pub name: ArcStr,
    /// The client's HTTP address.
    #[serde(rename = "HTTPAddr")]
    pub http_addr: String,
    /// The client's HTTP API speaks TLS.
    #[serde(rename = "TLSEnabled")]
    pub tls_enabled: bool,
    /// Fingerprinted attributes: `kernel.name`, `cpu.arch`, `driver.raw_exec`, `unique.*` ...
    pub attributes: BTreeMap<String, String>,
    /// What the node has.
    pub node_resources: Option<NodeResources>,
    /// What is held back from scheduling.
    pub reserved_resources: Option<NodeReservedResources>,
    /// Links to other systems.
    pub links: BTreeMap<String, String>,
    /// Operator metadata.
    pub meta: BTreeMap<String, String>,
    /// Operator node class.
    pub node_class: String,
    /// Node pool (default `default`).
    pub node_pool: String,
    /// Hash of the attributes that affect feasibility (computed class).
    pub computed_class: String,
    /// Draining (deprecated flag; see `drain_strategy`).
    pub drain: bool,
    /// How the node is being drained.
    pub drain_strategy: Option<DrainStrategy>,
    /// `eligible` or `ineligible`.
    pub scheduling_eligibility: String,
    /// `initializing`, `ready`, `down` or `disconnected`.
    pub status: String,
    /// Why.
    pub status_description: String,
    /// When the status last changed (Unix seconds).
    pub status_updated_at: i64,
    /// Drivers and their health.
    pub drivers: BTreeMap<String, DriverInfo>,
    /// Host volumes offered.
    pub host_volumes: BTreeMap<String, HostVolume>,
    /// Host networks offered.
    pub host_networks: BTreeMap<String, HostNetwork>,
    /// Raft index at creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
}

impl Node {
    /// True when the node is ready, eligible and not draining.
    pub fn ready_for_placement(&self) -> bool {
        self.status == super::status::NODE_READY
            && self.scheduling_eligibility != super::status::NODE_INELIGIBLE
            && self.drain_strategy.is_none()
            && !self.drain
    }

    /// The driver named `name` if it is detected and healthy.
    pub fn driver_healthy(&self, name: &str) -> bool {
        match self.drivers.get(name) {
            Some(d) => d.detected && d.healthy,
            None => self
                .attributes
                .get(&format!("driver.{name}"))
                .is_some_and(|v| v == "1" || v == "true"),
        }
    }

    /// Computes the node class: a stable hash of datacenter, pool, class, attributes and meta
    /// (leaving out `unique.*` ones), so that nodes that are interchangeable for feasibility
    /// share a class and feasibility results can be cached per class.
    pub fn compute_class(&mut self) {
        let mut h = Fnv64::new();
        h.write(self.datacenter.as_bytes());
        h.write(b"\0");
        h.write(self.node_pool.as_bytes());
        h.write(b"\0");
        h.write(self.node_class.as_bytes());
        for (k, v) in self.attributes.iter().chain(self.meta.iter()) {
            if k.starts_with("unique.") {
                continue;
            }
            h.write(k.as_bytes());
            h.write(b"=");
            h.write(v.as_bytes());
            h.write(b"\0");
        }
        for (name, d) in &self.drivers {
            h.write(name.as_bytes());
            h.write(if d.detected && d.healthy { b"+" } else { b"-" });
        }
        self.computed_class = format!("v1:{}", h.finish());
    }
}

/// FNV-1a, enough for a stable, dependency-free class hash.
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A driver as fingerprinted on a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DriverInfo {
    /// Driver attributes.
    pub attributes: BTreeMap<String, String>,
    /// The driver is present.
    pub detected: bool,
    /// The driver is usable.
    pub healthy: bool,
    /// Why it is or is not healthy.
    pub health_description: String,
    /// When this was last updated (RFC 3339).
    pub update_time: String,
}

/// Resources a node has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeResources {
    /// CPU.
    pub cpu: NodeCpuResources,
    /// Memory.
    pub memory: NodeMemoryResources,
    /// Disk.
    pub disk: NodeDiskResources,
    /// Network interfaces and addresses.
    pub networks: Vec<NetworkResource>,
    /// Devices.
    pub devices: Vec<NodeDeviceResource>,
    /// Lowest port of the dynamic range (default 20000).
    pub min_dynamic_port: u16,
    /// Highest port of the dynamic range (default 32000).
    pub max_dynamic_port: u16,
}

/// CPU of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeCpuResources {
    /// Total MHz across cores.
    pub cpu_shares: u64,
    /// Number of cores.
    pub total_cpu_cores: u32,
    /// Core IDs that can be reserved.
    pub reservable_cpu_cores: Vec<u16>,
}

/// Memory of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeMemoryResources {
    /// Total MB.
    #[serde(rename = "MemoryMB")]
    pub memory_mb: u64,
}

/// Disk of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeDiskResources {
    /// Total MB available to allocations.
    #[serde(rename = "DiskMB")]
    pub disk_mb: u64,
}

/// Resources held back from scheduling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeReservedResources {
    /// Reserved CPU.
    pub cpu: NodeReservedCpu,
    /// Reserved memory.
    pub memory: NodeMemoryResources,
    /// Reserved disk.
    pub disk: NodeDiskResources,
    /// Reserved ports.
    pub networks: NodeReservedNetwork,
}

/// Reserved CPU.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeReservedCpu {
    /// Reserved MHz.
    pub cpu_shares: u64,
    /// Reserved core IDs.
    pub reserved_cpu_cores: Vec<u16>,
}

/// Reserved ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeReservedNetwork {
    /// Ports and ranges, `"22,80,8000-8100"`.
    pub reserved_host_ports: String,
}

/// A group of identical devices on a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeDeviceResource {
    /// Vendor, e.g. `nvidia`.
    pub vendor: String,
    /// Type, e.g. `gpu`.
    #[serde(rename = "Type")]
    pub device_type: String,
    /// Model name.
    pub name: String,
    /// The instances.
    pub instances: Vec<NodeDevice>,
    /// Attributes (memory, clock, ...), as text.
    pub attributes: BTreeMap<String, String>,
}

impl NodeDeviceResource {
    /// `vendor/type/name`.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.vendor, self.device_type, self.name)
    }

    /// True when a request named `<type>`, `<vendor>/<type>` or `<vendor>/<type>/<name>`
    /// matches this group.
    pub fn matches_request(&self, request: &str) -> bool {
        let parts: Vec<&str> = request.split('/').collect();
        match parts.as_slice() {
            [t] => *t == self.device_type,
            [v, t] => *v == self.vendor && *t == self.device_type,
            [v, t, n] => *v == self.vendor && *t == self.device_type && *n == self.name,
            _ => false,
        }
    }
}

/// One device instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeDevice {
    /// Instance ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Healthy.
    pub healthy: bool,
    /// Why not.
    pub health_description: String,
}

/// How a node is being drained.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DrainStrategy {
    /// How long allocations may take to migrate (0: no deadline, -1: force).
    pub deadline: i64,
    /// Leave system jobs running.
    pub ignore_system_jobs: bool,
    /// When the deadline passes (Unix nanoseconds).
    pub force_deadline: i64,
    /// When the drain started (Unix nanoseconds).
    pub started_at: i64,
}

/// A host volume offered by a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostVolume {
    /// Path on the host.
    pub path: String,
    /// Read-only.
    pub read_only: bool,
}

/// A named host network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostNetwork {
    /// Name.
    pub name: String,
    /// CIDR of the addresses it takes.
    #[serde(rename = "CIDR")]
    pub cidr: String,
    /// Interface.
    pub interface: String,
    /// Reserved ports on it.
    pub reserved_ports: String,
}
