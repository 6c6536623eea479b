//! A simulated network between the nodes of one process. Every RPC travels as its own task, so
//! a message outlives a sender that gave up on it and arrives late, out of order with newer
//! ones. Faults come from the seed: a request lost, a reply lost (the call happened, the caller
//! sees a failure), each leg delayed; a partition cuts the nodes of one side off the others.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::Raft;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::events::EventLog;
use super::rng::SimRng;
use crate::cluster::types::{NodeAddr, NodeId, TypeConfig};

type RpcError<E = openraft::error::Infallible> = RPCError<NodeId, NodeAddr, RaftError<NodeId, E>>;

/// How badly the links behave, the same for every link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LinkFaults {
    /// Requests lost, per thousand.
    pub(super) drop_per_mille: u64,
    /// Replies lost after the request was handled, per thousand.
    pub(super) drop_reply_per_mille: u64,
    /// The longest delay of one leg, request or reply.
    pub(super) max_delay_ms: u64,
}

impl LinkFaults {
    pub(super) const NONE: LinkFaults = LinkFaults {
        drop_per_mille: 0,
        drop_reply_per_mille: 0,
        max_delay_ms: 0,
    };
}

struct NetworkState {
    /// The nodes running, by id.
    nodes: BTreeMap<NodeId, Raft<TypeConfig>>,
    /// The side of the partition each node is on; nodes absent are on side 0.
    sides: BTreeMap<NodeId, u8>,
    faults: LinkFaults,
    rng: SimRng,
}

impl NetworkState {
    fn connected(&self, source: NodeId, target: NodeId) -> bool {
        let side = |node| self.sides.get(&node).copied().unwrap_or(0);
        side(source) == side(target)
    }

    fn delay(&mut self) -> Duration {
        Duration::from_millis(self.rng.between(0, self.faults.max_delay_ms))
    }
}

/// What the network decided for one RPC when it was sent.
struct Route {
    request_delay: Duration,
    reply_delay: Duration,
    drop_reply: bool,
}

/// The network shared by all the nodes of a simulated cluster.
#[derive(Clone)]
pub(super) struct SimNetwork {
    state: Arc<Mutex<NetworkState>>,
    events: Arc<EventLog>,
}

impl SimNetwork {
    pub(super) fn new(rng: SimRng, events: Arc<EventLog>) -> SimNetwork {
        let state = NetworkState {
            nodes: BTreeMap::new(),
            sides: BTreeMap::new(),
            faults: LinkFaults::NONE,
            rng,
        };
        SimNetwork {
            state: Arc::new(Mutex::new(state)),
            events,
        }
    }

    /// What node `source` sends through.
    pub(super) fn endpoint(&self, source: NodeId) -> Endpoint {
        Endpoint {
            network: self.clone(),
            source,
        }
    }

    pub(super) fn node_up(&self, id: NodeId, raft: Raft<TypeConfig>) {
        self.state.lock().nodes.insert(id, raft);
    }

    pub(super) fn node_down(&self, id: NodeId) {
        self.state.lock().nodes.remove(&id);
    }

    /// The running node `id`, if it is up.
    pub(super) fn node(&self, id: NodeId) -> Option<Raft<TypeConfig>> {
        self.state.lock().nodes.get(&id).cloned()
    }

    /// Splits the nodes: each reaches only those on its side.
    pub(super) fn partition(&self, sides: BTreeMap<NodeId, u8>) {
        self.state.lock().sides = sides;
    }

    pub(super) fn heal(&self) {
        self.state.lock().sides.clear();
    }

    pub(super) fn set_faults(&self, faults: LinkFaults) {
        self.state.lock().faults = faults;
    }

    /// Decides the fate of an RPC from `source` to `target`; `None` if it is lost at once.
    fn route(&self, kind: &str, source: NodeId, target: NodeId) -> Option<Route> {
        let mut state = self.state.lock();
        if !state.connected(source, target) {
            return None;
        }
        let drop_per_mille = state.faults.drop_per_mille;
        if state.rng.chance(drop_per_mille) {
            drop(state);
            self.events
                .record(format_args!("drop {kind} {source} -> {target}"));
            return None;
        }
        let drop_reply_per_mille = state.faults.drop_reply_per_mille;
        Some(Route {
            request_delay: state.delay(),
            reply_delay: state.delay(),
            drop_reply: state.rng.chance(drop_reply_per_mille),
        })
    }

    /// The target when a request arrives: it must be up and still on the sender's side.
    fn arrive(&self, source: NodeId, target: NodeId) -> Option<Raft<TypeConfig>> {
        let state = self.state.lock();
        if !state.connected(source, target) {
            return None;
        }
        state.nodes.get(&target).cloned()
    }
}

/// One node's access to the network.
pub(super) struct Endpoint {
    network: SimNetwork,
    source: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for Endpoint {
    type Network = Link;

    async fn new_client(&mut self, target: NodeId, _node: &NodeAddr) -> Link {
        Link {
            network: self.network.clone(),
            source: self.source,
            target,
        }
    }
}

/// The link from one node to another.
pub(super) struct Link {
    network: SimNetwork,
    source: NodeId,
    target: NodeId,
}

fn unreachable<E: std::error::Error>(why: &str) -> RpcError<E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(why.to_string())))
}

impl Link {
    /// Sends `request`, handled at the target by `handle`, and waits for the reply, if any.
    async fn call<Req, Resp, E, Handle, Handled>(
        &self,
        kind: &'static str,
        request: Req,
        handle: Handle,
    ) -> Result<Resp, RpcError<E>>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
        E: std::error::Error + Send + 'static,
        Handle: FnOnce(Raft<TypeConfig>, Req) -> Handled + Send + 'static,
        Handled: Future<Output = Result<Resp, RaftError<NodeId, E>>> + Send,
    {
        let (source, target) = (self.source, self.target);
        let Some(route) = self.network.route(kind, source, target) else {
            return Err(unreachable("request lost"));
        };
        let network = self.network.clone();
        let (reply_to, reply) = oneshot::channel();
        tokio::spawn(async move {
            tokio::time::sleep(route.request_delay).await;
            let Some(raft) = network.arrive(source, target) else {
                return;
            };
            let outcome = handle(raft, request).await;
            if route.drop_reply {
                network
                    .events
                    .record(format_args!("drop {kind} reply {target} -> {source}"));
                return;
            }
            tokio::time::sleep(route.reply_delay).await;
            // The sender may have given up waiting: the reply is lost then.
            let _ = reply_to.send(outcome);
        });
        match reply.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(RaftError::Fatal(_))) => Err(unreachable("the target stopped")),
            Ok(Err(error)) => Err(RPCError::RemoteError(RemoteError::new(target, error))),
            Err(_) => Err(unreachable("no reply")),
        }
    }
}

impl RaftNetwork<TypeConfig> for Link {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        self.call("append", rpc, |raft, rpc| async move {
            raft.append_entries(rpc).await
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        self.call("snapshot", rpc, |raft, rpc| async move {
            raft.install_snapshot(rpc).await
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        self.call("vote", rpc, |raft, rpc| async move { raft.vote(rpc).await })
            .await
    }
}
