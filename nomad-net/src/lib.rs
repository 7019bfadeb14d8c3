//! Network models for allocations.
//!
//! What exists today is the **port index** ([`PortIndex`]): per node, which host ports are
//! taken on the default network and on each named host network, and collision-free
//! assignment of static ports and of dynamic ports from the node's dynamic range
//! (20000-32000 unless the node says otherwise). The scheduler uses it while ranking nodes,
//! the plan applier to re-check a node before committing, and the client to check what it
//! was given.
//!
//! Bridge networking (a network namespace per allocation, veth pairs, the `nomad` bridge,
//! port mapping), CNI networks and the `NetworkManager` trait come later.
//!
//! ```
//! use nomad_core::job::{NetworkResource, Port};
//! use nomad_core::structs::Node;
//! use nomad_net::PortIndex;
//!
//! let mut index = PortIndex::for_node(&Node::default())?;
//! let ask = NetworkResource {
//!     dynamic_ports: vec![Port { label: "http".into(), ..Port::default() }],
//!     ..NetworkResource::default()
//! };
//! let mut state = 1u32;
//! let mut rng = move || { state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345); state };
//! let ports = index.assign(&ask, &[], &mut rng)?;
//! assert!((20000..=32000).contains(&ports[0].value));
//! index.take(ports[0].network, ports[0].value)?;
//! assert!(index.is_used(0, ports[0].value));
//! # Ok::<(), nomad_net::PortError>(())
//! ```

#![forbid(unsafe_code)]

mod port_index;

pub use port_index::{
    parse_port_spec, AssignedPort, PlannedPort, PortError, PortIndex, DEFAULT_HOST_NETWORK,
    DEFAULT_MAX_DYNAMIC_PORT, DEFAULT_MIN_DYNAMIC_PORT,
};
