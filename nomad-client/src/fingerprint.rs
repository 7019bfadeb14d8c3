//! Fingerprinting: what the node is and has, as a nomad-core [`Node`].

use std::collections::BTreeMap;

use nomad_core::driver::HealthState;
use nomad_core::job::NetworkResource;
use nomad_core::structs::{DriverInfo, Node, NodeCpuResources, NodeResources};

use crate::driver_set::DriverSet;

/// The operator's settings that go into the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSettings {
    /// The node's id; generated when empty.
    pub id: String,
    /// The node's name; the hostname when empty.
    pub name: String,
    /// The datacenter (`dc1` when empty).
    pub datacenter: String,
    /// The node class.
    pub node_class: String,
    /// The node pool (`default` when empty).
    pub node_pool: String,
    /// Operator metadata (`meta { ... }`).
    pub meta: BTreeMap<String, String>,
    /// Where allocation directories live: the free space of its file system is the disk
    /// offered to allocations (`/` when unset).
    pub data_dir: Option<std::path::PathBuf>,
}

/// The file system holding `dir`: `(total bytes, bytes available to unprivileged writers)`.
fn storage(dir: &std::path::Path) -> Option<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    let frag = s.fragment_size();
    Some((
        s.blocks().saturating_mul(frag),
        s.blocks_available().saturating_mul(frag),
    ))
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// CPU: `(cores, MHz per core)` from `/proc/cpuinfo`, the cpufreq maximum preferred.
pub(crate) fn cpu_info(cpuinfo: &str, cpufreq_max_khz: Option<&str>) -> (u32, u64) {
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mhz_line = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64);
    let max = cpufreq_max_khz
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|khz| khz / 1000);
    let cores = u32::try_from(cores.max(1)).unwrap_or(1);
    (cores, max.or(mhz_line).unwrap_or(1000))
}

fn mem_total_mb(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn os_release() -> (String, String) {
    let text = read("/etc/os-release").unwrap_or_default();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_default()
    };
    (field("ID"), field("VERSION_ID"))
}

/// The node's interfaces with an address: `(interface, address, prefix length)`.
fn interfaces() -> Vec<(String, String, u8)> {
    let mut out = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifa in addrs {
            let Some(addr) = ifa
                .address
                .as_ref()
                .and_then(|a| a.as_sockaddr_in().copied())
            else {
                continue;
            };
            let prefix = ifa
                .netmask
                .as_ref()
                .and_then(|m| m.as_sockaddr_in().copied())
                .map(|m| u8::try_from(m.ip().to_bits().count_ones()).unwrap_or(32))
                .unwrap_or(32);
            out.push((ifa.interface_name.clone(), addr.ip().to_string(), prefix));
        }
    }
    out
}

fn new_id() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(data) = std::fs::read("/proc/sys/kernel/random/uuid") {
        let text = String::from_utf8_lossy(&data).trim().to_owned();
        if text.len() == 36 {
            return text;
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::try_from((nanos >> ((i % 12) * 8)) & 0xff).unwrap_or(0);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fingerprints the host and the drivers into a [`Node`] (status `initializing`, computed
/// class set).
pub async fn fingerprint_node(settings: &NodeSettings, drivers: &DriverSet) -> Node {
    let mut attrs = BTreeMap::new();
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let freq = read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
    let (cores, mhz) = cpu_info(&cpuinfo, freq.as_deref());
    let total_mhz = u64::from(cores) * mhz;
    attrs.insert("cpu.numcores".into(), cores.to_string());
    attrs.insert("cpu.frequency".into(), mhz.to_string());
    attrs.insert("cpu.totalcompute".into(), total_mhz.to_string());
    attrs.insert("cpu.arch".into(), go_arch().into());
    if let Some(model) = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
    {
        attrs.insert("cpu.modelname".into(), model.trim().to_owned());
    }
    let memory_mb = mem_total_mb(&read("/proc/meminfo").unwrap_or_default());
    attrs.insert(
        "memory.totalbytes".into(),
        (memory_mb * 1024 * 1024).to_string(),
    );
    attrs.insert(
        "kernel.name".into(),
        read("/proc/sys/kernel/ostype")
            .map(|s| s.trim().to_lowercase())
            .unwrap_or_else(|| std::env::consts::OS.into()),
    );
    if let Some(v) = read("/proc/sys/kernel/osrelease") {
        attrs.insert("kernel.version".into(), v.trim().to_owned());
    }
    attrs.insert("kernel.arch".into(), std::env::consts::ARCH.into());
    let (os, os_version) = os_release();
    attrs.insert("os.name".into(), os);
    attrs.insert("os.version".into(), os_version);
    let hostname = read("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    attrs.insert("unique.hostname".into(), hostname.clone());
    attrs.insert("nomad.version".into(), env!("CARGO_PKG_VERSION").into());

    let ifaces = interfaces();
    let mut networks = Vec::new();
    for (name, ip, prefix) in &ifaces {
        attrs.insert(format!("unique.network.ip-address.{name}"), ip.clone());
        networks.push(NetworkResource {
            mode: "host".into(),
            device: name.clone(),
            ip: ip.clone().into(),
            cidr: format!("{ip}/{prefix}"),
            ..NetworkResource::default()
        });
    }
    // The default address: the first non-loopback interface, else loopback.
    networks.sort_by_key(|n| n.ip.starts_with("127."));
    if let Some(first) = networks.first() {
        attrs.insert("unique.network.ip-address".into(), first.ip.to_string());
    }

    let mut driver_infos = BTreeMap::new();
    for (name, _, fp) in drivers.iter() {
        for (k, v) in &fp.attributes {
            attrs.insert(k.clone(), v.clone());
        }
        let detected = fp.health != HealthState::Undetected;
        if detected {
            attrs
                .entry(format!("driver.{name}"))
                .or_insert_with(|| "1".into());
        }
        driver_infos.insert(
            name.to_owned(),
            DriverInfo {
                attributes: fp.attributes.clone(),
                detected,
                healthy: fp.health == HealthState::Healthy,
                health_description: fp.description.clone(),
                update_time: String::new(),
            },
        );
    }

    let mut node = Node {
        id: if settings.id.is_empty() {
            new_id().into()
        } else {
            settings.id.as_str().into()
        },
        name: if settings.name.is_empty() {
            hostname.into()
        } else {
            settings.name.as_str().into()
        },
        datacenter: if settings.datacenter.is_empty() {
            "dc1".into()
        } else {
            settings.datacenter.clone()
        },
        node_class: settings.node_class.clone(),
        node_pool: if settings.node_pool.is_empty() {
            "default".into()
        } else {
            settings.node_pool.clone()
        },
        meta: settings.meta.clone(),
        attributes: attrs,
        drivers: driver_infos,
        node_resources: Some(NodeResources {
            cpu: NodeCpuResources {
                cpu_shares: total_mhz,
                total_cpu_cores: cores,
                reservable_cpu_cores: (0..u16::try_from(cores).unwrap_or(1)).collect(),
            },
            memory: nomad_core::structs::NodeResources::default().memory,
            networks,
            min_dynamic_port: 20000,
            max_dynamic_port: 32000,
            ..NodeResources::default()
        }),
        status: nomad_core::structs::status::NODE_INITIALIZING.into(),
        scheduling_eligibility: nomad_core::structs::status::NODE_ELIGIBLE.into(),
        ..Node::default()
    };
    let volume = settings
        .data_dir
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("/"));
    let (bytes_total, bytes_free) = storage(&volume).unwrap_or((0, 0));
    node.attributes
        .insert("unique.storage.volume".into(), volume.display().to_string());
    node.attributes
        .insert("unique.storage.bytestotal".into(), bytes_total.to_string());
    node.attributes
        .insert("unique.storage.bytesfree".into(), bytes_free.to_string());
    if let Some(r) = node.node_resources.as_mut() {
        r.memory.memory_mb = memory_mb;
        r.disk.disk_mb = bytes_free >> 20;
    }
    node.compute_class();
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_from_cpuinfo_and_cpufreq() {
        let info = "processor\t: 0\ncpu MHz\t\t: 2399.998\nprocessor\t: 1\ncpu MHz\t\t: 2400.1\n";
        assert_eq!(cpu_info(info, None), (2, 2399));
        assert_eq!(cpu_info(info, Some("3500000\n")), (2, 3500));
        assert_eq!(mem_total_mb("MemTotal:       8048576 kB\n"), 7859);
    }

    #[tokio::test]
    async fn node_has_attributes_drivers_and_class() {
        let raw: std::sync::Arc<dyn nomad_core::driver::TaskDriver> =
            std::sync::Arc::new(crate::RawExecDriver::new(Default::default()));
        let mock: std::sync::Arc<dyn nomad_core::driver::TaskDriver> =
            std::sync::Arc::new(crate::MockDriver::new());
        let drivers = DriverSet::fingerprint(vec![raw, mock]).await;
        let settings = NodeSettings {
            node_class: "web".into(),
            meta: BTreeMap::from([("rack".into(), "r1".into())]),
            ..NodeSettings::default()
        };
        let node = fingerprint_node(&settings, &drivers).await;
        assert_eq!(node.attributes["kernel.name"], "linux");
        assert!(node.attributes["cpu.numcores"].parse::<u32>().unwrap() >= 1);
        assert!(node.attributes.contains_key("unique.hostname"));
        assert!(node.node_resources.as_ref().unwrap().memory.memory_mb > 0);
        assert!(node.node_resources.as_ref().unwrap().disk.disk_mb > 0);
        assert!(
            node.attributes["unique.storage.bytesfree"]
                .parse::<u64>()
                .unwrap()
                > 0
        );
        assert!(
            !node.drivers["raw_exec"].detected,
            "raw_exec is disabled by default"
        );
        assert!(node.drivers["mock"].healthy);
        assert!(node.computed_class.starts_with("v1:"));
        assert_eq!(node.meta["rack"], "r1");
        let mut other = node.clone();
        other
            .attributes
            .insert("unique.hostname".into(), "elsewhere".into());
        other.compute_class();
        assert_eq!(other.computed_class, node.computed_class);
    }
}
