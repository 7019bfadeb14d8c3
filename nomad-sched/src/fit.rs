//! The plan applier's node-fit check: do a plan's placements on one node still fit, given
//! what runs there now?

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use nomad_core::structs::{status, Allocation, Node};
use nomad_net::{PlannedPort, PortError, PortIndex};
use smallvec::SmallVec;

use crate::state::NodeUsage;

/// Why a node refuses a plan's placements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeFitError {
    /// The node is unknown to the state.
    NodeMissing,
    /// The node is not `ready`.
    NodeNotReady(String),
    /// The node is not eligible for placements.
    NodeIneligible,
    /// CPU, memory or disk would be over-committed.
    Exhausted(&'static str),
    /// A port would be taken twice.
    Ports(PortError),
    /// A device instance is unknown, unhealthy or taken twice.
    Devices(String),
}

impl fmt::Display for NodeFitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeFitError::NodeMissing => write!(f, "node does not exist"),
            NodeFitError::NodeNotReady(s) => write!(f, "node is not ready for placements ({s})"),
            NodeFitError::NodeIneligible => write!(f, "node is not eligible"),
            NodeFitError::Exhausted(d) => write!(f, "resources exhausted: {d}"),
            NodeFitError::Ports(e) => write!(f, "{e}"),
            NodeFitError::Devices(d) => write!(f, "devices: {d}"),
        }
    }
}

impl std::error::Error for NodeFitError {}

/// Checks that a plan's `placed` allocations fit on `node` together with the node's
/// `existing` allocations, less those the plan stops, evicts or replaces (`removed` IDs and
/// the IDs of `placed`, which update in place). Re-checks CPU, memory, disk, ports on every
/// network and device instances. Stops alone always fit.
///
/// This is the check the server's plan applier runs for every node of a plan against its
/// latest state; it is pure and touches nothing else.
pub fn evaluate_node_plan(
    node: &Node,
    existing: &[Arc<Allocation>],
    removed: &[&str],
    placed: &[Arc<Allocation>],
) -> Result<(), NodeFitError> {
    let mut base = NodeUsage::default();
    for a in existing {
        base.add(&NodeUsage::of_alloc(a));
    }
    evaluate_node_plan_with(
        node,
        &NodeUsage::capacity_of(node),
        &base,
        None,
        existing,
        removed,
        placed,
    )
}

/// [`evaluate_node_plan`] for stores that keep running totals: `usage` is what the
/// non-terminal `existing` allocations use and `ports` (when given) their port index, so the
/// check costs time in the size of the plan, not of the node's allocations, but for one ID
/// comparison per existing allocation to find those that leave (stores that index
/// allocations by ID can spare it with [`evaluate_node_plan_leaving`]).
pub fn evaluate_node_plan_with(
    node: &Node,
    capacity: &NodeUsage,
    usage: &NodeUsage,
    ports: Option<&PortIndex>,
    existing: &[Arc<Allocation>],
    removed: &[&str],
    placed: &[Arc<Allocation>],
) -> Result<(), NodeFitError> {
    let leaving: Vec<&Allocation> = if placed.is_empty() {
        Vec::new()
    } else {
        let gone = Gone::of(removed, placed);
        existing
            .iter()
            .map(|a| a.as_ref())
            .filter(|a| gone.contains(&a.id) && !a.terminal())
            .collect()
    };
    check_node(
        node, capacity, usage, ports, existing, removed, &leaving, placed,
    )
}

/// [`evaluate_node_plan_with`] for stores that index allocations by ID: the caller finds
/// `leaving`, the non-terminal allocations of `existing` whose IDs are in `removed` or
/// among `placed` (each once), so that the check does not compare the ID of every
/// allocation on the node. `existing` is then only read when the placements ask for
/// devices or `ports` is not given. Given a different `leaving`, the answer is that of a
/// node where exactly those allocations leave.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_node_plan_leaving(
    node: &Node,
    capacity: &NodeUsage,
    usage: &NodeUsage,
    ports: Option<&PortIndex>,
    existing: &[Arc<Allocation>],
    removed: &[&str],
    placed: &[Arc<Allocation>],
    leaving: &[&Allocation],
) -> Result<(), NodeFitError> {
    check_node(
        node, capacity, usage, ports, existing, removed, leaving, placed,
    )
}

#[allow(clippy::too_many_arguments)]
fn check_node(
    node: &Node,
    capacity: &NodeUsage,
    usage: &NodeUsage,
    ports: Option<&PortIndex>,
    existing: &[Arc<Allocation>],
    removed: &[&str],
    leaving: &[&Allocation],
    placed: &[Arc<Allocation>],
) -> Result<(), NodeFitError> {
    if placed.is_empty() {
        return Ok(());
    }
    if node.status != status::NODE_READY {
        return Err(NodeFitError::NodeNotReady(node.status.clone()));
    }
    if node.scheduling_eligibility == status::NODE_INELIGIBLE {
        return Err(NodeFitError::NodeIneligible);
    }
    let mut total = *usage;
    for a in leaving {
        total.sub(&NodeUsage::of_alloc(a));
    }
    for a in placed {
        total.add(&NodeUsage::of_alloc(a));
    }
    capacity.covers(&total).map_err(NodeFitError::Exhausted)?;

    check_ports(node, ports, existing, leaving, placed)?;
    check_devices(node, existing, removed, placed)
}

/// IDs leaving a node: a short list is scanned, a long one hashed.
enum Gone<'a> {
    Few(Vec<&'a str>),
    Many(HashSet<&'a str>),
}

impl<'a> Gone<'a> {
    /// The IDs a node plan takes off the node: those it stops or evicts (`removed`) and
    /// those it replaces in place (the IDs of `placed`).
    fn of(removed: &[&'a str], placed: &'a [Arc<Allocation>]) -> Self {
        let v: Vec<&str> = removed
            .iter()
            .copied()
            .chain(placed.iter().map(|a| a.id.as_str()))
            .collect();
        if v.len() <= 16 {
            Gone::Few(v)
        } else {
            Gone::Many(v.into_iter().collect())
        }
    }

    fn contains(&self, id: &str) -> bool {
        match self {
            Gone::Few(v) => v.contains(&id),
            Gone::Many(h) => h.contains(id),
        }
    }
}

fn check_ports(
    node: &Node,
    ports: Option<&PortIndex>,
    existing: &[Arc<Allocation>],
    leaving: &[&Allocation],
    placed: &[Arc<Allocation>],
) -> Result<(), NodeFitError> {
    let built;
    let index = match ports {
        Some(p) => p,
        None => {
            built = PortIndex::for_node_with_allocs(node, existing.iter().map(|a| a.as_ref()))
                .map_err(NodeFitError::Ports)?;
            &built
        }
    };
    // Sorted short lists, not hash sets: a node plan holds a few ports, and this runs
    // for every node of every plan.
    let mut freed: SmallVec<[PlannedPort; 8]> = leaving
        .iter()
        .flat_map(|a| index.alloc_ports_iter(a))
        .collect();
    freed.sort_unstable();
    let collision = |(net, port): PlannedPort| {
        NodeFitError::Ports(PortError::Collision {
            network: net.to_string(),
            port,
        })
    };
    let mut fresh: SmallVec<[PlannedPort; 8]> = SmallVec::new();
    for a in placed.iter().filter(|a| !a.terminal()) {
        for (net, port) in index.alloc_ports_iter(a) {
            if index.is_used(net, port) && freed.binary_search(&(net, port)).is_err() {
                return Err(collision((net, port)));
            }
            fresh.push((net, port));
        }
    }
    fresh.sort_unstable();
    if let Some(w) = fresh.windows(2).find(|w| w[0] == w[1]) {
        return Err(collision(w[0]));
    }
    Ok(())
}

fn check_devices(
    node: &Node,
    existing: &[Arc<Allocation>],
    removed: &[&str],
    placed: &[Arc<Allocation>],
) -> Result<(), NodeFitError> {
    let wanted = |a: &Allocation| -> Vec<String> {
        a.allocated_resources
            .iter()
            .flat_map(|ar| ar.tasks.values())
            .flat_map(|t| t.devices.iter())
            .flat_map(|d| d.device_ids.iter().cloned())
            .collect()
    };
    let asks: Vec<String> = placed
        .iter()
        .filter(|a| !a.terminal())
        .flat_map(|a| wanted(a))
        .collect();
    if asks.is_empty() {
        return Ok(());
    }
    let gone = Gone::of(removed, placed);
    let healthy: HashSet<&str> = node
        .node_resources
        .iter()
        .flat_map(|r| r.devices.iter())
        .flat_map(|g| g.instances.iter())
        .filter(|i| i.healthy)
        .map(|i| i.id.as_str())
        .collect();
    let mut used: HashSet<String> = existing
        .iter()
        .filter(|a| !a.terminal() && !gone.contains(&a.id))
        .flat_map(|a| wanted(a))
        .collect();
    for id in asks {
        if !healthy.contains(id.as_str()) {
            return Err(NodeFitError::Devices(format!(
                "instance {id:?} is not a healthy device of the node"
            )));
        }
        if !used.insert(id.clone()) {
            return Err(NodeFitError::Devices(format!(
                "instance {id:?} already in use"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomad_core::structs::{
        AllocatedDevice, AllocatedPortMapping, AllocatedResources, AllocatedTaskResources,
        NodeDevice, NodeDeviceResource, NodeResources,
    };

    fn node() -> Node {
        let mut n = Node {
            id: "n1".into(),
            status: "ready".into(),
            node_resources: Some(NodeResources::default()),
            ..Node::default()
        };
        if let Some(r) = &mut n.node_resources {
            r.cpu.cpu_shares = 1000;
            r.memory.memory_mb = 1000;
            r.disk.disk_mb = 1000;
            r.devices.push(NodeDeviceResource {
                vendor: "nvidia".into(),
                device_type: "gpu".into(),
                name: "t4".into(),
                instances: vec![NodeDevice {
                    id: "gpu0".into(),
                    healthy: true,
                    ..NodeDevice::default()
                }],
                ..NodeDeviceResource::default()
            });
        }
        n
    }

    fn alloc(id: &str, cpu: u64, port: Option<u16>, gpu: Option<&str>) -> Allocation {
        let mut ar = AllocatedResources::default();
        let mut t = AllocatedTaskResources::default();
        t.cpu.cpu_shares = cpu;
        t.memory.memory_mb = 100;
        if let Some(g) = gpu {
            t.devices.push(AllocatedDevice {
                device_ids: vec![g.to_string()],
                ..AllocatedDevice::default()
            });
        }
        ar.tasks.insert("t".into(), t);
        ar.shared.disk_mb = 10;
        if let Some(p) = port {
            ar.shared.ports.push(AllocatedPortMapping {
                label: "http".into(),
                value: p,
                ..AllocatedPortMapping::default()
            });
        }
        Allocation {
            id: id.into(),
            node_id: "n1".into(),
            desired_status: "run".into(),
            client_status: "running".into(),
            allocated_resources: Some(ar),
            ..Allocation::default()
        }
    }

    #[test]
    fn refuses_over_commit_and_accepts_after_stops() {
        let n = node();
        let existing = vec![Arc::new(alloc("a", 800, None, None))];
        let placed = vec![Arc::new(alloc("b", 300, None, None))];
        assert_eq!(
            evaluate_node_plan(&n, &existing, &[], &placed),
            Err(NodeFitError::Exhausted("cpu"))
        );
        assert_eq!(evaluate_node_plan(&n, &existing, &["a"], &placed), Ok(()));
        // An in-place update replaces the existing copy instead of adding to it.
        let updated = vec![Arc::new(alloc("a", 900, None, None))];
        assert_eq!(evaluate_node_plan(&n, &existing, &[], &updated), Ok(()));
    }

    #[test]
    fn refuses_port_collisions_and_double_device_use() {
        let n = node();
        let existing = vec![Arc::new(alloc("a", 100, Some(25000), Some("gpu0")))];
        let same_port = vec![Arc::new(alloc("b", 100, Some(25000), None))];
        assert!(matches!(
            evaluate_node_plan(&n, &existing, &[], &same_port),
            Err(NodeFitError::Ports(_))
        ));
        let two_in_plan = vec![
            Arc::new(alloc("b", 100, Some(26000), None)),
            Arc::new(alloc("c", 100, Some(26000), None)),
        ];
        assert!(matches!(
            evaluate_node_plan(&n, &existing, &[], &two_in_plan),
            Err(NodeFitError::Ports(_))
        ));
        let same_gpu = vec![Arc::new(alloc("b", 100, None, Some("gpu0")))];
        assert!(matches!(
            evaluate_node_plan(&n, &existing, &[], &same_gpu),
            Err(NodeFitError::Devices(_))
        ));
        let unknown_gpu = vec![Arc::new(alloc("b", 100, None, Some("gpu9")))];
        assert!(matches!(
            evaluate_node_plan(&n, &[], &[], &unknown_gpu),
            Err(NodeFitError::Devices(_))
        ));
        assert_eq!(evaluate_node_plan(&n, &existing, &["a"], &same_gpu), Ok(()));
    }

    #[test]
    fn the_indexed_check_agrees_when_given_the_leaving_allocations() {
        let n = node();
        let cap = NodeUsage::capacity_of(&n);
        let existing = vec![
            Arc::new(alloc("a", 500, Some(25000), Some("gpu0"))),
            Arc::new(alloc("b", 300, Some(25001), None)),
        ];
        let mut usage = NodeUsage::default();
        for a in &existing {
            usage.add(&NodeUsage::of_alloc(a));
        }
        let index = PortIndex::for_node_with_allocs(&n, existing.iter().map(|a| a.as_ref()))
            .expect("no collisions");
        let cases: Vec<(Vec<&str>, Vec<Arc<Allocation>>)> = vec![
            (vec![], vec![Arc::new(alloc("c", 100, Some(26000), None))]),
            (vec![], vec![Arc::new(alloc("c", 300, None, None))]),
            (
                vec!["a"],
                vec![Arc::new(alloc("c", 600, Some(25000), Some("gpu0")))],
            ),
            // An in-place update of "b" with more CPU, and a stop of it at the same time.
            (vec![], vec![Arc::new(alloc("b", 500, Some(25001), None))]),
            (
                vec!["b"],
                vec![Arc::new(alloc("b", 500, Some(25001), None))],
            ),
            (vec![], vec![Arc::new(alloc("c", 100, Some(25001), None))]),
            (vec!["x"], vec![]),
        ];
        for (removed, placed) in cases {
            let gone: Vec<&str> = removed
                .iter()
                .copied()
                .chain(placed.iter().map(|a| a.id.as_str()))
                .collect();
            let leaving: Vec<&Allocation> = existing
                .iter()
                .map(|a| a.as_ref())
                .filter(|a| gone.contains(&a.id.as_str()))
                .collect();
            let scanned = evaluate_node_plan_with(
                &n,
                &cap,
                &usage,
                Some(&index),
                &existing,
                &removed,
                &placed,
            );
            let indexed = evaluate_node_plan_leaving(
                &n,
                &cap,
                &usage,
                Some(&index),
                &existing,
                &removed,
                &placed,
                &leaving,
            );
            assert_eq!(scanned, indexed, "removed {removed:?}");
            assert_eq!(
                scanned,
                evaluate_node_plan(&n, &existing, &removed, &placed)
            );
        }
    }

    #[test]
    fn refuses_nodes_not_ready_or_ineligible_but_stops_always_fit() {
        let mut n = node();
        n.status = "down".into();
        let placed = vec![Arc::new(alloc("b", 1, None, None))];
        assert!(matches!(
            evaluate_node_plan(&n, &[], &[], &placed),
            Err(NodeFitError::NodeNotReady(_))
        ));
        assert_eq!(evaluate_node_plan(&n, &[], &["x"], &[]), Ok(()));
        n.status = "ready".into();
        n.scheduling_eligibility = "ineligible".into();
        assert_eq!(
            evaluate_node_plan(&n, &[], &[], &placed),
            Err(NodeFitError::NodeIneligible)
        );
    }
}
