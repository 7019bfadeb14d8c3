//! The per-node port index: which host ports are taken on each of a node's networks, and
//! collision-free assignment of static and dynamic ports.
//!
//! One index serves the scheduler (choosing ports while ranking a node), the plan applier
//! (re-checking a node's placements before committing) and the client (checking what it was
//! given). Ports are tracked per host network: the node's default network and every named
//! `host_network` it offers. A taken-port bitmap (8 KiB) is only allocated for a network once
//! a port on it is taken, so an index for an idle node costs a few bytes.

use std::fmt;
use std::sync::Arc;

use nomad_core::job::NetworkResource;
use nomad_core::structs::{AllocatedPortMapping, Allocation, ArcStr, Node};
use smallvec::SmallVec;

/// Lowest port of the dynamic range when the node does not say.
pub const DEFAULT_MIN_DYNAMIC_PORT: u16 = 20000;
/// Highest port of the dynamic range when the node does not say.
pub const DEFAULT_MAX_DYNAMIC_PORT: u16 = 32000;
/// The name of a node's default network in port requests (`host_network = "default"`).
pub const DEFAULT_HOST_NETWORK: &str = "default";

/// Random picks tried in the dynamic range before scanning it in order.
const RANDOM_ATTEMPTS: usize = 20;
/// Ports per block of the bitmap: 4,096 ports in 64 words (512 bytes).
const BLOCK_PORTS: usize = 4096;
const BLOCK_WORDS: usize = BLOCK_PORTS / 64;
/// Blocks covering the 65,536 ports.
const BLOCKS: usize = 65536 / BLOCK_PORTS;

/// One block of the taken-ports bitmap.
type Block = [u64; BLOCK_WORDS];

/// Why ports could not be taken or assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortError {
    /// A port is already in use on that network.
    Collision {
        /// The network's name.
        network: String,
        /// The port.
        port: u16,
    },
    /// No free port is left in the dynamic range of that network.
    DynamicExhausted {
        /// The network's name.
        network: String,
    },
    /// The request names a host network the node does not offer.
    UnknownHostNetwork {
        /// The network asked for.
        network: String,
    },
    /// A reserved-ports specification such as `"22,80,8000-8100"` does not parse.
    BadSpec {
        /// The specification.
        spec: String,
    },
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortError::Collision { network, port } => {
                write!(f, "port {port} already in use on network {network:?}")
            }
            PortError::DynamicExhausted { network } => {
                write!(f, "dynamic port range exhausted on network {network:?}")
            }
            PortError::UnknownHostNetwork { network } => {
                write!(f, "host network {network:?} not present on node")
            }
            PortError::BadSpec { spec } => write!(f, "invalid port specification {spec:?}"),
        }
    }
}

impl std::error::Error for PortError {}

impl PortError {
    /// The dimension name placement metrics use for this failure.
    pub fn dimension(&self) -> &'static str {
        match self {
            PortError::Collision { .. } => "network: port collision",
            PortError::DynamicExhausted { .. } => "network: dynamic port selection failed",
            PortError::UnknownHostNetwork { .. } => "network: host network missing",
            PortError::BadSpec { .. } => "network: invalid reserved ports",
        }
    }
}

/// Parses a port list such as `"22,80,8000-8100"` into single ports.
pub fn parse_port_spec(spec: &str) -> Result<Vec<u16>, PortError> {
    let bad = || PortError::BadSpec {
        spec: spec.to_string(),
    };
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((lo, hi)) => {
                let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
                let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
                if lo > hi {
                    return Err(bad());
                }
                out.extend(lo..=hi);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

/// Taken ports of one network.
///
/// The bitmap is kept in blocks of 4,096 ports shared between copies of the index: a
/// copy (as a state store makes of each node's index it changes) costs a reference count
/// per block in use, and taking or freeing a port then copies only that port's block.
#[derive(Clone)]
struct NetworkPorts {
    name: ArcStr,
    ip: ArcStr,
    used: [Option<Arc<Block>>; BLOCKS],
    /// Taken ports inside the dynamic range, so that "is there room" needs no bitmap scan.
    dynamic_used: u32,
}

impl NetworkPorts {
    fn new(name: &str, ip: &str) -> Self {
        NetworkPorts {
            name: ArcStr::from(name),
            ip: ArcStr::from(ip),
            used: Default::default(),
            dynamic_used: 0,
        }
    }

    fn is_used(&self, port: u16) -> bool {
        let p = usize::from(port);
        self.used[p / BLOCK_PORTS].as_ref().is_some_and(|b| {
            let bit = p % BLOCK_PORTS;
            b[bit / 64] & (1u64 << (bit % 64)) != 0
        })
    }

    /// Taken ports in all (for debugging output).
    fn taken(&self) -> u32 {
        self.used
            .iter()
            .flatten()
            .map(|b| b.iter().map(|w| w.count_ones()).sum::<u32>())
            .sum()
    }

    /// Sets or clears a port; returns true when that changed anything.
    fn set(&mut self, port: u16, on: bool, range: (u16, u16)) -> bool {
        let p = usize::from(port);
        let slot = &mut self.used[p / BLOCK_PORTS];
        let bit = p % BLOCK_PORTS;
        let mask = 1u64 << (bit % 64);
        let was = slot.as_ref().is_some_and(|b| b[bit / 64] & mask != 0);
        if was == on {
            return false;
        }
        // Only now, with a change to make, is a shared block copied.
        let bits = Arc::make_mut(slot.get_or_insert_with(|| Arc::new([0u64; BLOCK_WORDS])));
        if on {
            bits[bit / 64] |= mask;
        } else {
            bits[bit / 64] &= !mask;
        }
        if (range.0..=range.1).contains(&port) {
            if on {
                self.dynamic_used += 1;
            } else {
                self.dynamic_used = self.dynamic_used.saturating_sub(1);
            }
        }
        true
    }
}

/// Which ports are taken on each network of one node.
#[derive(Clone)]
pub struct PortIndex {
    min_dynamic: u16,
    max_dynamic: u16,
    /// The default network, kept inline: most checks touch nothing else.
    default: NetworkPorts,
    /// Named host networks, ids 1...
    extra: Vec<NetworkPorts>,
}

impl fmt::Debug for PortIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("PortIndex");
        d.field("dynamic", &(self.min_dynamic..=self.max_dynamic));
        for n in self.nets() {
            d.field(&n.name, &n.taken());
        }
        d.finish()
    }
}

/// A port a placement wants that another placement in the same plan already took:
/// `(network id, port)` as returned by [`PortIndex::network_id`].
pub type PlannedPort = (usize, u16);

impl PortIndex {
    /// An empty index with one default network and the given dynamic range.
    pub fn new(min_dynamic: u16, max_dynamic: u16) -> Self {
        let (lo, hi) = if min_dynamic <= max_dynamic {
            (min_dynamic, max_dynamic)
        } else {
            (max_dynamic, min_dynamic)
        };
        PortIndex {
            min_dynamic: lo,
            max_dynamic: hi,
            default: NetworkPorts::new(DEFAULT_HOST_NETWORK, ""),
            extra: Vec::new(),
        }
    }

    fn nets(&self) -> impl Iterator<Item = &NetworkPorts> {
        std::iter::once(&self.default).chain(self.extra.iter())
    }

    fn net(&self, id: usize) -> Option<&NetworkPorts> {
        match id {
            0 => Some(&self.default),
            i => self.extra.get(i - 1),
        }
    }

    fn net_mut(&mut self, id: usize) -> Option<&mut NetworkPorts> {
        match id {
            0 => Some(&mut self.default),
            i => self.extra.get_mut(i - 1),
        }
    }

    fn range(&self) -> (u16, u16) {
        (self.min_dynamic, self.max_dynamic)
    }

    /// The index of a node with nothing running: its dynamic range (default 20000-32000),
    /// its default network address, its host networks, and its reserved ports taken.
    pub fn for_node(node: &Node) -> Result<Self, PortError> {
        let (mut lo, mut hi) = (DEFAULT_MIN_DYNAMIC_PORT, DEFAULT_MAX_DYNAMIC_PORT);
        let mut ip = "";
        if let Some(r) = &node.node_resources {
            if r.min_dynamic_port > 0 {
                lo = r.min_dynamic_port;
            }
            if r.max_dynamic_port > 0 {
                hi = r.max_dynamic_port;
            }
            if let Some(n) = r.networks.first() {
                ip = &n.ip;
            }
        }
        let mut idx = PortIndex::new(lo, hi);
        let range = idx.range();
        idx.default.ip = ArcStr::from(ip);
        for (name, hn) in &node.host_networks {
            let addr = hn.cidr.split('/').next().unwrap_or("");
            let mut net = NetworkPorts::new(name, addr);
            for p in parse_port_spec(&hn.reserved_ports)? {
                net.set(p, true, range);
            }
            idx.extra.push(net);
        }
        if let Some(r) = &node.reserved_resources {
            for p in parse_port_spec(&r.networks.reserved_host_ports)? {
                // Node-reserved ports apply to every address of the node.
                idx.default.set(p, true, range);
                for n in &mut idx.extra {
                    n.set(p, true, range);
                }
            }
        }
        Ok(idx)
    }

    /// The index of a node with `allocs` running on it (terminal ones are skipped). Fails on
    /// the first port two allocations share.
    pub fn for_node_with_allocs<'a>(
        node: &Node,
        allocs: impl IntoIterator<Item = &'a Allocation>,
    ) -> Result<Self, PortError> {
        let mut idx = PortIndex::for_node(node)?;
        for a in allocs {
            if !a.terminal() {
                idx.add_alloc(a)?;
            }
        }
        Ok(idx)
    }

    /// Free ports left in the dynamic range of network `net`.
    pub fn dynamic_free(&self, net: usize) -> u32 {
        let span = u32::from(self.max_dynamic - self.min_dynamic) + 1;
        span.saturating_sub(self.net(net).map_or(span, |n| n.dynamic_used))
    }

    /// The dynamic range, inclusive.
    pub fn dynamic_range(&self) -> (u16, u16) {
        (self.min_dynamic, self.max_dynamic)
    }

    /// The id of the network called `name` (`""` and `default` are the default network).
    pub fn network_id(&self, name: &str) -> Option<usize> {
        if name.is_empty() || name == DEFAULT_HOST_NETWORK {
            return Some(0);
        }
        self.extra
            .iter()
            .position(|n| n.name == name)
            .map(|i| i + 1)
    }

    fn network_by_ip(&self, ip: &str) -> usize {
        if ip.is_empty() {
            return 0;
        }
        self.nets().position(|n| n.ip == ip).unwrap_or(0)
    }

    /// True when `port` is taken on network `net`.
    pub fn is_used(&self, net: usize, port: u16) -> bool {
        self.net(net).is_some_and(|n| n.is_used(port))
    }

    /// Takes `port` on network `net`; a collision leaves the index unchanged.
    pub fn take(&mut self, net: usize, port: u16) -> Result<(), PortError> {
        let range = self.range();
        let n = self
            .net_mut(net)
            .ok_or_else(|| PortError::UnknownHostNetwork {
                network: format!("#{net}"),
            })?;
        if n.is_used(port) {
            return Err(PortError::Collision {
                network: n.name.to_string(),
                port,
            });
        }
        n.set(port, true, range);
        Ok(())
    }

    /// Frees `port` on network `net`.
    pub fn release(&mut self, net: usize, port: u16) {
        let range = self.range();
        if let Some(n) = self.net_mut(net) {
            n.set(port, false, range);
        }
    }

    /// The host ports an allocation holds, as `(network id, port)`.
    pub fn alloc_ports(&self, alloc: &Allocation) -> Vec<PlannedPort> {
        self.ports_held(alloc).into_vec()
    }

    /// [`PortIndex::alloc_ports`] without a heap allocation for up to four ports.
    pub fn alloc_ports_iter(&self, alloc: &Allocation) -> impl Iterator<Item = PlannedPort> {
        self.ports_held(alloc).into_iter()
    }

    fn ports_held(&self, alloc: &Allocation) -> SmallVec<[PlannedPort; 4]> {
        let mut out = SmallVec::new();
        let Some(ar) = &alloc.allocated_resources else {
            return out;
        };
        if !ar.shared.ports.is_empty() {
            for p in &ar.shared.ports {
                out.push((self.network_by_ip(&p.host_ip), p.value));
            }
            return out;
        }
        let task_nets = ar.tasks.values().flat_map(|t| t.networks.iter());
        for n in ar.shared.networks.iter().chain(task_nets) {
            let net = self.network_by_ip(&n.ip);
            for p in n.ports() {
                if p.value > 0 {
                    let id = if p.host_network.is_empty() {
                        net
                    } else {
                        self.network_id(&p.host_network).unwrap_or(net)
                    };
                    out.push((id, p.value));
                }
            }
        }
        out
    }

    /// Takes every port of `alloc`; on a collision nothing is taken.
    pub fn add_alloc(&mut self, alloc: &Allocation) -> Result<(), PortError> {
        let ports = self.ports_held(alloc);
        for (i, (net, port)) in ports.iter().enumerate() {
            if let Err(e) = self.take(*net, *port) {
                for (n, p) in &ports[..i] {
                    self.release(*n, *p);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Frees every port of `alloc`.
    pub fn remove_alloc(&mut self, alloc: &Allocation) {
        for (net, port) in self.ports_held(alloc) {
            self.release(net, port);
        }
    }

    /// Chooses host ports for a network request without changing the index: static ports
    /// must be free, dynamic ones are picked at random in the dynamic range (then in order
    /// once random picks keep colliding). `planned` lists ports that other placements of the
    /// same plan already took on this node; `rng` returns random numbers.
    pub fn assign(
        &self,
        ask: &NetworkResource,
        planned: &[PlannedPort],
        rng: &mut dyn FnMut() -> u32,
    ) -> Result<Vec<AssignedPort>, PortError> {
        let in_plan = |net: usize, port: u16| planned.iter().any(|&(n, p)| n == net && p == port);
        self.assign_avoiding(ask, &in_plan, rng)
    }

    /// [`PortIndex::assign`] with the ports other placements of the plan took given as a
    /// lookup (`in_plan(network id, port)`) instead of a list, for callers that keep them in
    /// a set because a node gets many placements in one plan.
    pub fn assign_avoiding(
        &self,
        ask: &NetworkResource,
        in_plan: &dyn Fn(usize, u16) -> bool,
        rng: &mut dyn FnMut() -> u32,
    ) -> Result<Vec<AssignedPort>, PortError> {
        let mut chosen: Vec<AssignedPort> =
            Vec::with_capacity(ask.reserved_ports.len() + ask.dynamic_ports.len());
        let taken = |chosen: &[AssignedPort], net: usize, port: u16| {
            self.is_used(net, port)
                || in_plan(net, port)
                || chosen.iter().any(|c| c.network == net && c.value == port)
        };
        for p in &ask.reserved_ports {
            let net = self.resolve(&p.host_network)?;
            if taken(&chosen, net, p.value) {
                return Err(PortError::Collision {
                    network: self.net_name(net),
                    port: p.value,
                });
            }
            chosen.push(self.assigned(p, net, p.value));
        }
        let span = u32::from(self.max_dynamic - self.min_dynamic) + 1;
        for p in &ask.dynamic_ports {
            let net = self.resolve(&p.host_network)?;
            let mut found = None;
            for _ in 0..RANDOM_ATTEMPTS {
                let candidate = self.min_dynamic + (rng() % span) as u16;
                if !taken(&chosen, net, candidate) {
                    found = Some(candidate);
                    break;
                }
            }
            if found.is_none() {
                let start = rng() % span;
                found = (0..span)
                    .map(|i| self.min_dynamic + ((start + i) % span) as u16)
                    .find(|&c| !taken(&chosen, net, c));
            }
            let Some(value) = found else {
                return Err(PortError::DynamicExhausted {
                    network: self.net_name(net),
                });
            };
            chosen.push(self.assigned(p, net, value));
        }
        Ok(chosen)
    }

    fn net_name(&self, net: usize) -> String {
        self.net(net)
            .map(|n| n.name.to_string())
            .unwrap_or_default()
    }

    /// Whether [`PortIndex::assign`] would succeed, without choosing ports or allocating:
    /// static ports must be free; the dynamic range must have room for every dynamic port.
    pub fn check(&self, ask: &NetworkResource, planned: &[PlannedPort]) -> Result<(), PortError> {
        for (i, p) in ask.reserved_ports.iter().enumerate() {
            let net = self.resolve(&p.host_network)?;
            let dup = ask.reserved_ports[..i]
                .iter()
                .any(|q| q.value == p.value && self.network_id(&q.host_network) == Some(net));
            if dup
                || self.is_used(net, p.value)
                || planned.iter().any(|&(n, v)| n == net && v == p.value)
            {
                return Err(PortError::Collision {
                    network: self.net_name(net),
                    port: p.value,
                });
            }
        }
        if ask.dynamic_ports.is_empty() {
            return Ok(());
        }
        let span = u32::from(self.max_dynamic - self.min_dynamic) + 1;
        let range = self.min_dynamic..=self.max_dynamic;
        for p in &ask.dynamic_ports {
            let net = self.resolve(&p.host_network)?;
            let used = self.net(net).map_or(0, |n| n.dynamic_used);
            let in_plan = planned
                .iter()
                .filter(|&&(n, v)| n == net && range.contains(&v))
                .count() as u32;
            let statics = ask
                .reserved_ports
                .iter()
                .filter(|q| {
                    range.contains(&q.value) && self.network_id(&q.host_network) == Some(net)
                })
                .count() as u32;
            let wanted = ask
                .dynamic_ports
                .iter()
                .filter(|q| self.network_id(&q.host_network) == Some(net))
                .count() as u32;
            if used + in_plan + statics + wanted > span {
                return Err(PortError::DynamicExhausted {
                    network: self.net_name(net),
                });
            }
        }
        Ok(())
    }

    fn resolve(&self, host_network: &str) -> Result<usize, PortError> {
        self.network_id(host_network)
            .ok_or_else(|| PortError::UnknownHostNetwork {
                network: host_network.to_string(),
            })
    }

    fn assigned(&self, p: &nomad_core::job::Port, net: usize, value: u16) -> AssignedPort {
        AssignedPort {
            label: p.label.clone(),
            network: net,
            value,
            to: p.to,
            host_ip: self.net(net).map(|n| n.ip.clone()).unwrap_or_default(),
        }
    }
}

/// A port chosen by [`PortIndex::assign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedPort {
    /// The request's label.
    pub label: ArcStr,
    /// The network id (see [`PortIndex::network_id`]).
    pub network: usize,
    /// The host port.
    pub value: u16,
    /// The port inside the allocation's network namespace.
    pub to: i32,
    /// The host address.
    pub host_ip: ArcStr,
}

impl AssignedPort {
    /// The flat form stored in an allocation's shared resources.
    pub fn mapping(&self) -> AllocatedPortMapping {
        self.clone().into_mapping()
    }

    /// [`AssignedPort::mapping`], moving the label and address instead of copying them.
    pub fn into_mapping(self) -> AllocatedPortMapping {
        AllocatedPortMapping {
            label: self.label,
            value: self.value,
            to: self.to,
            host_ip: self.host_ip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomad_core::job::Port;
    use nomad_core::structs::{
        AllocatedResources, HostNetwork, NodeReservedResources, NodeResources,
    };

    fn seq() -> impl FnMut() -> u32 {
        let mut x = 7u32;
        move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        }
    }

    fn port(label: &str, value: u16) -> Port {
        Port {
            label: label.into(),
            value,
            ..Port::default()
        }
    }

    #[test]
    fn parses_port_specs() {
        assert_eq!(
            parse_port_spec("22, 80,8000-8002").unwrap(),
            vec![22, 80, 8000, 8001, 8002]
        );
        assert_eq!(parse_port_spec("").unwrap(), Vec::<u16>::new());
        assert!(parse_port_spec("9-3").is_err());
        assert!(parse_port_spec("http").is_err());
    }

    #[test]
    fn reserved_ports_of_the_node_are_taken() {
        let mut reserved = NodeReservedResources::default();
        reserved.networks.reserved_host_ports = "22,8080".into();
        let node = Node {
            reserved_resources: Some(reserved),
            ..Node::default()
        };
        let idx = PortIndex::for_node(&node).unwrap();
        assert!(idx.is_used(0, 22));
        assert!(idx.is_used(0, 8080));
        assert!(!idx.is_used(0, 8081));
        let ask = NetworkResource {
            reserved_ports: vec![port("ssh", 22)],
            ..NetworkResource::default()
        };
        let err = idx.assign(&ask, &[], &mut seq()).unwrap_err();
        assert_eq!(
            err,
            PortError::Collision {
                network: "default".into(),
                port: 22
            }
        );
    }

    #[test]
    fn dynamic_ports_stay_in_the_node_range_and_never_collide() {
        let node = Node {
            node_resources: Some(NodeResources {
                min_dynamic_port: 30000,
                max_dynamic_port: 30009,
                ..NodeResources::default()
            }),
            ..Node::default()
        };
        let mut idx = PortIndex::for_node(&node).unwrap();
        let ask = NetworkResource {
            dynamic_ports: vec![port("a", 0), port("b", 0)],
            ..NetworkResource::default()
        };
        let mut rng = seq();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5 {
            let got = idx.assign(&ask, &[], &mut rng).unwrap();
            for p in got {
                assert!((30000..=30009).contains(&p.value));
                assert!(seen.insert(p.value), "port {} handed out twice", p.value);
                idx.take(p.network, p.value).unwrap();
            }
        }
        let err = idx.assign(&ask, &[], &mut rng).unwrap_err();
        assert!(matches!(err, PortError::DynamicExhausted { .. }));
    }

    #[test]
    fn planned_ports_count_as_taken() {
        let idx = PortIndex::new(20000, 20001);
        let ask = NetworkResource {
            dynamic_ports: vec![port("a", 0)],
            ..NetworkResource::default()
        };
        let got = idx.assign(&ask, &[(0, 20000)], &mut seq()).unwrap();
        assert_eq!(got[0].value, 20001);
        assert!(idx
            .assign(&ask, &[(0, 20000), (0, 20001)], &mut seq())
            .is_err());
    }

    #[test]
    fn host_networks_are_separate_address_spaces() {
        let mut node = Node::default();
        node.host_networks.insert(
            "public".into(),
            HostNetwork {
                name: "public".into(),
                cidr: "10.0.0.5/32".into(),
                reserved_ports: "443".into(),
                ..HostNetwork::default()
            },
        );
        let mut idx = PortIndex::for_node(&node).unwrap();
        let public = idx.network_id("public").unwrap();
        assert!(idx.is_used(public, 443));
        assert!(!idx.is_used(0, 443));
        idx.take(0, 80).unwrap();
        let mut p = port("web", 80);
        p.host_network = "public".into();
        let ask = NetworkResource {
            reserved_ports: vec![p],
            ..NetworkResource::default()
        };
        let got = idx.assign(&ask, &[], &mut seq()).unwrap();
        assert_eq!(got[0].host_ip, "10.0.0.5");
        let mut missing = port("x", 1);
        missing.host_network = "nope".into();
        let ask = NetworkResource {
            reserved_ports: vec![missing],
            ..NetworkResource::default()
        };
        assert!(matches!(
            idx.assign(&ask, &[], &mut seq()),
            Err(PortError::UnknownHostNetwork { .. })
        ));
    }

    #[test]
    fn allocations_add_and_remove_their_ports() {
        let node = Node::default();
        let mut a = Allocation::default();
        let mut ar = AllocatedResources::default();
        ar.shared.ports = vec![AllocatedPortMapping {
            label: "http".into(),
            value: 25000,
            ..AllocatedPortMapping::default()
        }];
        a.allocated_resources = Some(ar);
        let mut idx = PortIndex::for_node_with_allocs(&node, [&a]).unwrap();
        assert!(idx.is_used(0, 25000));
        assert!(idx.add_alloc(&a).is_err());
        idx.remove_alloc(&a);
        assert!(!idx.is_used(0, 25000));
        assert!(PortIndex::for_node_with_allocs(&node, [&a, &a]).is_err());
    }

    #[test]
    fn copies_share_blocks_but_never_see_each_others_changes() {
        let mut first = PortIndex::new(20000, 32000);
        first.take(0, 22).unwrap();
        first.take(0, 25000).unwrap();
        let mut second = first.clone();
        // Changes to the copy, in a block both hold and in one only the copy uses.
        second.take(0, 25001).unwrap();
        second.release(0, 22);
        second.take(0, 60000).unwrap();
        assert!(first.is_used(0, 22) && first.is_used(0, 25000));
        assert!(!first.is_used(0, 25001) && !first.is_used(0, 60000));
        assert!(!second.is_used(0, 22) && second.is_used(0, 25000));
        assert!(second.is_used(0, 25001) && second.is_used(0, 60000));
        // Dynamic-range counts follow each copy's own changes.
        assert_eq!(first.dynamic_free(0), 12001 - 1);
        assert_eq!(second.dynamic_free(0), 12001 - 2);
        // Freeing a port that is free changes nothing.
        second.release(0, 40000);
        assert_eq!(second.dynamic_free(0), 12001 - 2);
        assert!(first.take(0, 25000).is_err());
    }

    #[test]
    fn assign_avoiding_skips_the_ports_the_lookup_names() {
        let node = Node {
            node_resources: Some(NodeResources {
                min_dynamic_port: 30000,
                max_dynamic_port: 30003,
                ..NodeResources::default()
            }),
            ..Node::default()
        };
        let idx = PortIndex::for_node(&node).unwrap();
        let ask = NetworkResource {
            dynamic_ports: vec![port("a", 0)],
            ..NetworkResource::default()
        };
        let planned: Vec<PlannedPort> = vec![(0, 30000), (0, 30001), (0, 30003)];
        let in_plan = |n: usize, p: u16| planned.contains(&(n, p));
        for _ in 0..8 {
            let got = idx.assign_avoiding(&ask, &in_plan, &mut seq()).unwrap();
            assert_eq!(got[0].value, 30002);
        }
        // The list form gives the same answer for the same random numbers.
        let by_list = idx.assign(&ask, &planned, &mut seq()).unwrap();
        let by_lookup = idx.assign_avoiding(&ask, &in_plan, &mut seq()).unwrap();
        assert_eq!(by_list, by_lookup);
        let full = |_: usize, _: u16| true;
        assert!(idx.assign_avoiding(&ask, &full, &mut seq()).is_err());
    }
}
