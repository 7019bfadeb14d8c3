//! The network seam of the replicated log.
//!
//! Raft sends its RPCs through an [`openraft::RaftNetworkFactory`]; [`RaftLog`] accepts any.
//! [`InProcessNetwork`] delivers them by calling the target's inbound handlers
//! ([`RaftLog::handle_append_entries`] and friends) directly: what a single-voter server
//! carries (it never sends) and what tests use to run several servers in one process. A
//! networked transport implements the same factory and calls the same handlers on the
//! receiving side.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{RaftNetwork, RaftNetworkFactory};

use super::{Node, NodeId, RaftLog, TypeConfig};

#[derive(Debug, thiserror::Error)]
#[error("raft node {0} is not reachable in this process")]
struct NotRegistered(NodeId);

#[derive(Debug, thiserror::Error)]
#[error("raft node {0} is isolated from the in-process network")]
struct Isolated(NodeId);

#[derive(Default)]
struct Routes {
    nodes: HashMap<NodeId, RaftLog>,
    isolated: std::collections::HashSet<NodeId>,
}

/// An in-process Raft network: a registry of the [`RaftLog`]s of this process by node ID.
/// Cloning it is cheap; every clone is the same registry.
#[derive(Clone, Default)]
pub struct InProcessNetwork {
    routes: Arc<RwLock<Routes>>,
}

impl InProcessNetwork {
    /// A network with no nodes.
    pub fn new() -> Self {
        InProcessNetwork::default()
    }

    /// Makes `log` reachable as its node ID.
    pub fn register(&self, log: &RaftLog) {
        if let Ok(mut r) = self.routes.write() {
            r.nodes.insert(log.node_id(), log.clone());
        }
    }

    /// Makes a node unreachable (its RPCs in and out fail) or reachable again.
    pub fn set_isolated(&self, id: NodeId, isolated: bool) {
        if let Ok(mut r) = self.routes.write() {
            if isolated {
                r.isolated.insert(id);
            } else {
                r.isolated.remove(&id);
            }
        }
    }

    fn route(&self, from: NodeId, to: NodeId) -> Result<RaftLog, Unreachable> {
        let r = self
            .routes
            .read()
            .map_err(|_| Unreachable::new(&NotRegistered(to)))?;
        for id in [from, to] {
            if r.isolated.contains(&id) {
                return Err(Unreachable::new(&Isolated(id)));
            }
        }
        r.nodes
            .get(&to)
            .cloned()
            .ok_or_else(|| Unreachable::new(&NotRegistered(to)))
    }
}

/// The factory handed to one node's Raft: it knows which node is sending.
pub struct InProcessFactory {
    network: InProcessNetwork,
    from: NodeId,
}

impl InProcessNetwork {
    /// The connection factory for node `from`.
    pub fn factory(&self, from: NodeId) -> InProcessFactory {
        InProcessFactory {
            network: self.clone(),
            from,
        }
    }
}

/// A client from one node to another over the in-process network.
pub struct InProcessClient {
    network: InProcessNetwork,
    from: NodeId,
    to: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for InProcessFactory {
    type Network = InProcessClient;

    async fn new_client(&mut self, target: NodeId, _node: &Node) -> InProcessClient {
        InProcessClient {
            network: self.network.clone(),
            from: self.from,
            to: target,
        }
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

fn remote<E: std::error::Error>(
    to: NodeId,
    e: RaftError<NodeId, E>,
) -> RPCError<NodeId, Node, RaftError<NodeId, E>> {
    match e {
        RaftError::Fatal(f) => RPCError::Network(NetworkError::new(&f)),
        other => RPCError::RemoteError(RemoteError::new(to, other)),
    }
}

impl RaftNetwork<TypeConfig> for InProcessClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let target = self.network.route(self.from, self.to)?;
        target
            .handle_append_entries(rpc)
            .await
            .map_err(|e| remote(self.to, e))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let target = self.network.route(self.from, self.to)?;
        target
            .handle_install_snapshot(rpc)
            .await
            .map_err(|e| remote(self.to, e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let target = self.network.route(self.from, self.to)?;
        target
            .handle_vote(rpc)
            .await
            .map_err(|e| remote(self.to, e))
    }
}
