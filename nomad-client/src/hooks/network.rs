//! The network hook: host mode with static and dynamic ports.

use nomad_core::driver::PortMapping;
use nomad_core::structs::{Allocation, Node};

use super::{AllocContext, AllocHook, HookError, Named, PrerunResponse};

/// Gives the tasks the allocation's ports on the node's address (host mode). Bridge and CNI
/// modes are refused until the client can build network namespaces.
#[derive(Debug, Default)]
pub(crate) struct NetworkHook;

impl Named for NetworkHook {
    fn name(&self) -> &str {
        "network"
    }
}

/// The address ports are bound on: the node's first network address, else loopback.
pub(crate) fn node_address(node: &Node) -> String {
    node.node_resources
        .as_ref()
        .and_then(|r| r.networks.iter().find(|n| !n.ip.is_empty()))
        .map(|n| n.ip.clone())
        .unwrap_or_else(|| "127.0.0.1".into())
        .to_string()
}

/// The allocation's host ports (static and dynamic), each on its assigned address or the
/// node's.
pub(crate) fn host_ports(alloc: &Allocation, node: &Node) -> Result<Vec<PortMapping>, String> {
    let Some(resources) = &alloc.allocated_resources else {
        return Ok(Vec::new());
    };
    let fallback = node_address(node);
    for network in &resources.shared.networks {
        if !network.mode.is_empty() && network.mode != "host" {
            return Err(format!(
                "network mode {:?} is not supported by this client (host mode only)",
                network.mode
            ));
        }
    }
    let mut ports: Vec<PortMapping> = resources
        .shared
        .ports
        .iter()
        .map(|p| PortMapping {
            label: p.label.to_string(),
            value: p.value,
            to: u16::try_from(p.to).unwrap_or(0),
            host_ip: if p.host_ip.is_empty() {
                fallback.clone()
            } else {
                p.host_ip.to_string()
            },
        })
        .collect();
    for network in &resources.shared.networks {
        for port in network.ports() {
            if ports.iter().any(|p| p.label == port.label) {
                continue;
            }
            ports.push(PortMapping {
                label: port.label.to_string(),
                value: port.value,
                to: u16::try_from(port.to).unwrap_or(0),
                host_ip: if network.ip.is_empty() {
                    fallback.clone()
                } else {
                    network.ip.to_string()
                },
            });
        }
    }
    Ok(ports)
}

#[async_trait::async_trait]
impl AllocHook for NetworkHook {
    async fn prerun(&self, ctx: &AllocContext) -> Result<PrerunResponse, HookError> {
        let ports = host_ports(&ctx.alloc, &ctx.node).map_err(HookError::fatal)?;
        Ok(PrerunResponse { ports })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomad_core::job::{NetworkResource, Port};
    use nomad_core::structs::{AllocatedResources, AllocatedSharedResources};

    fn alloc_with(network: NetworkResource) -> Allocation {
        Allocation {
            allocated_resources: Some(AllocatedResources {
                shared: AllocatedSharedResources {
                    networks: vec![network],
                    ..AllocatedSharedResources::default()
                },
                ..AllocatedResources::default()
            }),
            ..Allocation::default()
        }
    }

    #[test]
    fn host_mode_gives_static_and_dynamic_ports_on_the_node_address() {
        let a = alloc_with(NetworkResource {
            mode: "host".into(),
            reserved_ports: vec![Port {
                label: "http".into(),
                value: 8080,
                ..Port::default()
            }],
            dynamic_ports: vec![Port {
                label: "admin".into(),
                value: 23456,
                to: 9000,
                ..Port::default()
            }],
            ..NetworkResource::default()
        });
        let ports = host_ports(&a, &Node::default()).unwrap();
        assert_eq!(ports.len(), 2);
        assert_eq!(
            (
                ports[0].label.as_str(),
                ports[0].value,
                ports[0].host_ip.as_str()
            ),
            ("http", 8080, "127.0.0.1")
        );
        assert_eq!((ports[1].value, ports[1].to), (23456, 9000));
    }

    #[test]
    fn bridge_mode_is_refused_for_now() {
        let a = alloc_with(NetworkResource {
            mode: "bridge".into(),
            ..NetworkResource::default()
        });
        let err = host_ports(&a, &Node::default()).unwrap_err();
        assert!(err.contains("\"bridge\""), "{err}");
    }
}
