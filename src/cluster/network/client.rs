//! The client side of the bus: openraft's network factory and one connection per target,
//! opened (and authenticated) on first use and again after any failure.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use parking_lot::Mutex;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

use crate::cluster::types::{NodeAddr, NodeId, TypeConfig};

use super::BusTimeouts;
use super::error::TransportError;
use super::frame::{MAX_FRAME_BYTES, read_frame, write_frame};
use super::handshake::{self, Group};
use super::leadership_message::{LeadershipAnswer, LeadershipStep};
use super::membership_message::{MembershipAnswer, MembershipChange};
use super::message::{ReadIndexAnswer, Request, Response};
use super::remote_error::ApiError;
use super::secret::ClusterSecret;
use super::tls::{self, BusStream, BusTls};

type RpcError<E = openraft::error::Infallible> = RPCError<NodeId, NodeAddr, RaftError<NodeId, E>>;

/// openraft's network over the bus: makes a [`PeerConnection`] for each target.
#[derive(Debug, Clone)]
pub struct ClusterNetwork {
    this: NodeId,
    secret: ClusterSecret,
    timeouts: BusTimeouts,
    /// The local address connections leave from; `None`: the one the kernel picks.
    source: Option<IpAddr>,
    /// TLS for every connection, when the bus has it.
    tls: Option<BusTls>,
    /// The Raft group (shard) whose requests this network carries: each connection is to that
    /// group on the target node.
    group: Group,
    /// Open connections that a dropped [`PeerConnection`] left, for the next one to the same
    /// node at the same address: openraft makes a new client for every leadership check (each linearizable
    /// read), and a new TCP connection (and handshake) for each would cost the leader far
    /// more than the check, and leave thousands of sockets in `TIME_WAIT`.
    idle: IdleConnections,
}

/// The most idle connections kept per address.
const IDLE_PER_ADDRESS: usize = 8;

#[derive(Debug, Clone, Default)]
struct IdleConnections(Arc<Mutex<IdleByTarget>>);

/// The idle connections to each node at each address, each with when it was last used.
type IdleByTarget = HashMap<(NodeId, String), Vec<(Instant, BusStream)>>;

impl IdleConnections {
    /// An idle connection to node `target` at `addr` that the server has not yet closed for
    /// idleness, if any.
    fn take(&self, target: NodeId, addr: &str, idle_limit: Duration) -> Option<BusStream> {
        let mut idle = self.0.lock();
        let kept = idle.get_mut(&(target, addr.to_owned()))?;
        while let Some((since, stream)) = kept.pop() {
            // The server closes a connection idle for `idle_limit`: half of it leaves margin.
            if since.elapsed() < idle_limit / 2 {
                return Some(stream);
            }
        }
        None
    }

    fn put(&self, target: NodeId, addr: &str, stream: BusStream) {
        let mut idle = self.0.lock();
        let kept = idle.entry((target, addr.to_owned())).or_default();
        if kept.len() < IDLE_PER_ADDRESS {
            kept.push((Instant::now(), stream));
        }
    }
}

impl ClusterNetwork {
    /// The network of node `this`, proving `secret`, with the default timeouts.
    pub fn new(this: NodeId, secret: ClusterSecret) -> ClusterNetwork {
        ClusterNetwork::with_timeouts(this, secret, BusTimeouts::default())
    }

    /// The network of node `this`, proving `secret`, with the given timeouts.
    pub fn with_timeouts(
        this: NodeId,
        secret: ClusterSecret,
        timeouts: BusTimeouts,
    ) -> ClusterNetwork {
        ClusterNetwork {
            this,
            secret,
            timeouts,
            source: None,
            tls: None,
            group: 0,
            idle: IdleConnections::default(),
        }
    }

    /// The same network for Raft group `group`, with connections of its own.
    #[must_use]
    pub fn for_group(&self, group: Group) -> ClusterNetwork {
        ClusterNetwork {
            group,
            idle: IdleConnections::default(),
            ..self.clone()
        }
    }

    /// Connections leave from `source` (the address the node listens on), as a node's
    /// traffic should: the other nodes, and firewalls between them, see where it comes from.
    #[must_use]
    pub fn from_address(mut self, source: IpAddr) -> ClusterNetwork {
        self.source = Some(source);
        self
    }

    /// Connections open TLS sessions with `tls` (the other nodes must serve the bus with it).
    #[must_use]
    pub fn over_tls(mut self, tls: BusTls) -> ClusterNetwork {
        self.tls = Some(tls);
        self
    }
}

impl ClusterNetwork {
    /// A connection to node `target` at bus address `bus`, for requests of this node's own
    /// (openraft makes its connections with [`RaftNetworkFactory::new_client`]).
    pub fn connection(&self, target: NodeId, bus: &str) -> PeerConnection {
        PeerConnection {
            network: self.clone(),
            target,
            addr: bus.to_owned(),
            stream: None,
        }
    }
}

/// Connects to `addr`, from `source` when one is given.
async fn connect_from(addr: &str, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(addr).await;
    };
    let mut last_error = None;
    for target in tokio::net::lookup_host(addr).await? {
        let socket = if target.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if source.is_ipv4() == target.is_ipv4() {
            socket.bind(SocketAddr::new(source, 0))?;
        }
        match socket.connect(target).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{addr} resolves to no address"),
        )
    }))
}

impl RaftNetworkFactory<TypeConfig> for ClusterNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &NodeAddr) -> PeerConnection {
        PeerConnection {
            network: self.clone(),
            target,
            addr: node.bus.clone(),
            stream: None,
        }
    }
}

/// The connection to one target node, at its bus address.
#[derive(Debug)]
pub struct PeerConnection {
    network: ClusterNetwork,
    target: NodeId,
    addr: String,
    /// The open, authenticated connection; taken for the length of a call, so a call that fails
    /// or is cancelled half-way leaves none behind.
    stream: Option<BusStream>,
}

impl Drop for PeerConnection {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            self.network.idle.put(self.target, &self.addr, stream);
        }
    }
}

/// Why a call failed: before the connection was up (the target is unreachable), or after.
enum CallError {
    Unreachable(TransportError),
    Network(TransportError),
}

impl PeerConnection {
    async fn open(&self) -> Result<BusStream, TransportError> {
        let network = &self.network;
        let limit = network.timeouts.handshake;
        let tcp = timeout(limit, connect_from(&self.addr, network.source))
            .await
            .map_err(|_| TransportError::TimedOut { after: limit })??;
        tcp.set_nodelay(true)?;
        let mut stream = tls::connect(tcp, network.tls.as_ref(), &self.addr, limit).await?;
        let ends = (network.this, self.target, network.group);
        handshake::connect(&mut stream, &network.secret, ends, &network.timeouts).await?;
        Ok(stream)
    }

    async fn call(&mut self, payload: &[u8]) -> Result<Response, CallError> {
        let limit = self.network.timeouts.exchange;
        self.call_answered_within(payload, limit).await
    }

    /// [`call`](Self::call), waiting up to `answer_limit` for the answer.
    async fn call_answered_within(
        &mut self,
        payload: &[u8],
        answer_limit: Duration,
    ) -> Result<Response, CallError> {
        let idle_limit = self.network.timeouts.idle;
        let reused = self
            .stream
            .take()
            .or_else(|| self.network.idle.take(self.target, &self.addr, idle_limit));
        let mut stream = match reused {
            Some(stream) => stream,
            None => self.open().await.map_err(CallError::Unreachable)?,
        };
        let limit = self.network.timeouts.exchange;
        let exchange = async {
            write_frame(&mut stream, payload, limit).await?;
            let payload = read_frame(&mut stream, MAX_FRAME_BYTES, answer_limit).await?;
            Ok::<_, TransportError>(Response::decode(&payload)?)
        };
        let response = exchange.await.map_err(CallError::Network)?;
        self.stream = Some(stream);
        Ok(response)
    }

    async fn rpc<T, E: ApiError>(
        &mut self,
        request: Request,
        pick: fn(Response) -> Option<T>,
    ) -> Result<T, RpcError<E>> {
        let asked = request.name();
        let payload = request.encode();
        if payload.len() > MAX_FRAME_BYTES {
            return Err(too_large(&request, payload.len()));
        }
        let response = match self.call(&payload).await {
            Ok(response) => response,
            Err(error) => return Err(self.failed(asked, error)),
        };
        match response {
            Response::Failure(failure) => {
                if let Some(error) = failure.into_raft::<E>() {
                    return Err(RPCError::RemoteError(RemoteError::new(self.target, error)));
                }
            }
            response => {
                if let Some(answer) = pick(response) {
                    return Ok(answer);
                }
            }
        }
        // The peer does not speak this protocol: the connection is not reused.
        self.stream = None;
        let error = TransportError::Unexpected { asked };
        Err(RPCError::Network(NetworkError::new(&error)))
    }

    /// Asks the target, believed to lead, for the index this node must have applied before a
    /// read sees every write acknowledged before the request was sent.
    pub async fn read_index(&mut self) -> Result<ReadIndexAnswer, TransportError> {
        let limit = self.network.timeouts.exchange;
        self.ask(Request::ReadIndex, limit, |response| match response {
            Response::ReadIndex(answer) => Some(answer),
            _ => None,
        })
        .await
    }

    /// Asks the target, believed to lead this network's group, to make `change` to the group's
    /// membership, and waits for it to be made (an added node's catch-up included).
    pub async fn change_membership(
        &mut self,
        change: MembershipChange,
    ) -> Result<MembershipAnswer, TransportError> {
        let mut limit = self.network.timeouts.exchange;
        if let MembershipChange::Add { catch_up, .. } = &change {
            limit += *catch_up;
        }
        let request = Request::ChangeMembership(change);
        self.ask(request, limit, |response| match response {
            Response::Membership(answer) => Some(answer),
            _ => None,
        })
        .await
    }

    /// Asks the target to take `step` of a leadership move in this network's group.
    pub async fn leadership(
        &mut self,
        step: LeadershipStep,
    ) -> Result<LeadershipAnswer, TransportError> {
        let limit = self.network.timeouts.exchange;
        self.ask(
            Request::Leadership(step),
            limit,
            |response| match response {
                Response::Leadership(answer) => Some(answer),
                _ => None,
            },
        )
        .await
    }

    /// Sends one of weir's own requests (not openraft's) and waits up to `answer_limit` for
    /// the answer `pick` takes.
    async fn ask<T>(
        &mut self,
        request: Request,
        answer_limit: Duration,
        pick: fn(Response) -> Option<T>,
    ) -> Result<T, TransportError> {
        let asked = request.name();
        match self
            .call_answered_within(&request.encode(), answer_limit)
            .await
        {
            Ok(response) => pick(response).ok_or_else(|| {
                // The peer does not speak this protocol: the connection is not reused.
                self.stream = None;
                TransportError::Unexpected { asked }
            }),
            Err(CallError::Unreachable(error) | CallError::Network(error)) => Err(error),
        }
    }

    fn failed<E: ApiError>(&self, asked: &str, error: CallError) -> RpcError<E> {
        let (target, addr) = (self.target, &self.addr);
        match error {
            CallError::Unreachable(error) => {
                tracing::debug!(node = target, %addr, "{asked}: node {target} is unreachable: {error}");
                RPCError::Unreachable(Unreachable::new(&error))
            }
            CallError::Network(error) => {
                tracing::debug!(node = target, %addr, "{asked} to node {target} failed: {error}");
                RPCError::Network(NetworkError::new(&error))
            }
        }
    }
}

/// The error for a request above the frame limit: openraft sends fewer entries at once when it
/// hears that an AppendEntries is too large, so it hears that with a hint of half as many.
fn too_large<E: ApiError>(request: &Request, len: usize) -> RpcError<E> {
    match request {
        Request::AppendEntries(rpc) if rpc.entries.len() > 1 => {
            let hint = (rpc.entries.len() / 2) as u64;
            RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(hint))
        }
        _ => RPCError::Network(NetworkError::new(&TransportError::FrameTooLarge {
            len,
            max: MAX_FRAME_BYTES,
        })),
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        self.rpc(Request::AppendEntries(rpc), |response| match response {
            Response::AppendEntries(response) => Some(response),
            _ => None,
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        self.rpc(Request::InstallSnapshot(rpc), |response| match response {
            Response::InstallSnapshot(response) => Some(response),
            _ => None,
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        self.rpc(Request::Vote(rpc), |response| match response {
            Response::Vote(response) => Some(response),
            _ => None,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;
    use crate::cluster::types::{Entry, EntryPayload, LogId, Vote};

    #[test]
    fn an_oversized_append_asks_openraft_for_fewer_entries() {
        let entry = |index| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        };
        let append = |count| {
            Request::AppendEntries(AppendEntriesRequest {
                vote: Vote::new(1, 1),
                prev_log_id: None,
                leader_commit: None,
                entries: (1..=count).map(entry).collect(),
            })
        };
        let len = MAX_FRAME_BYTES + 1;
        match too_large::<openraft::error::Infallible>(&append(4), len) {
            RPCError::PayloadTooLarge(hint) => assert_eq!(hint.entries_hint(), 2),
            other => panic!("expected a hint, got {other}"),
        }
        let single = too_large::<openraft::error::Infallible>(&append(1), len);
        assert!(matches!(single, RPCError::Network(_)), "{single}");
    }
}
