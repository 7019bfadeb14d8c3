//! Group and task networks and their ports.

use arcstr::ArcStr;
use serde::{Deserialize, Serialize};

/// A network request: the group's network namespace mode and the ports it needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkResource {
    /// `host` (default), `bridge`, `none` or `cni/<name>`.
    pub mode: ArcStr,
    /// The host interface, filled in by the scheduler.
    pub device: String,
    /// The CIDR of the interface, filled in by the scheduler.
    #[serde(rename = "CIDR")]
    pub cidr: String,
    /// The address the ports are on, filled in by the scheduler.
    #[serde(rename = "IP")]
    pub ip: ArcStr,
    /// Hostname inside the group's network namespace (bridge mode).
    pub hostname: String,
    /// Bandwidth in megabits (deprecated in Nomad; kept).
    #[serde(rename = "MBits")]
    pub mbits: i32,
    /// DNS settings for the tasks (bridge and CNI modes).
    #[serde(rename = "DNS")]
    pub dns: Option<DnsConfig>,
    /// Ports with a fixed host port.
    pub reserved_ports: Vec<Port>,
    /// Ports assigned a host port from the dynamic range.
    pub dynamic_ports: Vec<Port>,
    /// Arguments passed to CNI plugins (`cni { args = {...} }`).
    #[serde(rename = "CNI")]
    pub cni: Option<CniConfig>,
}

impl NetworkResource {
    /// Reserved then dynamic ports.
    pub fn ports(&self) -> impl Iterator<Item = &Port> {
        self.reserved_ports.iter().chain(self.dynamic_ports.iter())
    }

    /// The mode, `host` when unset.
    pub fn mode_or_default(&self) -> &str {
        if self.mode.is_empty() {
            "host"
        } else {
            &self.mode
        }
    }
}

/// A port label with its host port (`Value`, 0 until assigned for dynamic ports) and the
/// port inside the network namespace it maps to (`To`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Port {
    /// The label tasks and services refer to it by.
    pub label: ArcStr,
    /// The host port: static, or assigned from the dynamic range.
    pub value: u16,
    /// The port the task listens on inside its network (0: same as `Value`; -1: the
    /// `Value` is mapped to the same port, used by Connect).
    pub to: i32,
    /// The named host network to take an address from.
    pub host_network: ArcStr,
}

/// DNS settings of a network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DnsConfig {
    /// Name servers.
    pub servers: Vec<String>,
    /// Search domains.
    pub searches: Vec<String>,
    /// resolv.conf options.
    pub options: Vec<String>,
}

/// CNI arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CniConfig {
    /// Key/value arguments handed to the plugins.
    pub args: std::collections::BTreeMap<String, String>,
}
