//! The server side of the bus: accepts connections, authenticates each, and hands its requests
//! to the local Raft group (shard) the connection names, answering them in order. A follower's request for a read index is answered
//! once a quorum confirmed that this node still leads.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::Raft;
use openraft::error::{CheckIsLeaderError, RaftError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cluster::types::{NodeId, TypeConfig};

use super::BusTimeouts;
use super::error::TransportError;
use super::frame::{MAX_FRAME_BYTES, read_frame, write_frame};
use super::handshake;
use super::leadership_message::{LeadershipAnswer, LeadershipStep};
use super::membership_message::{MembershipAnswer, MembershipChange};
use super::message::{ReadIndexAnswer, Request, Response};
use super::remote_error::RemoteFailure;
use super::secret::ClusterSecret;
use super::tls::{self, BusStream, BusTls};
use crate::cluster::membership::Members;

/// The most connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 256;

/// How long to pause after the listener fails to accept (out of file descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves the bus on `listener` for the Raft groups `rafts` (group `n` at index `n`) of node
/// `node_id`, over TLS when `tls` is given, with the default timeouts.
///
/// Runs until the future is dropped (its task aborted), which closes every connection.
pub async fn serve_cluster(
    listener: TcpListener,
    rafts: Vec<Raft<TypeConfig>>,
    secret: ClusterSecret,
    tls: Option<BusTls>,
    node_id: NodeId,
) {
    serve_cluster_with(
        listener,
        rafts,
        secret,
        tls,
        node_id,
        BusTimeouts::default(),
    )
    .await;
}

/// [`serve_cluster`] with the given timeouts.
pub async fn serve_cluster_with(
    listener: TcpListener,
    rafts: Vec<Raft<TypeConfig>>,
    secret: ClusterSecret,
    tls: Option<BusTls>,
    node_id: NodeId,
    timeouts: BusTimeouts,
) {
    let groups = rafts
        .into_iter()
        .map(|raft| ServedGroup {
            raft,
            pauses: Arc::new(AtomicU64::new(0)),
        })
        .collect();
    let server = Arc::new(Server {
        groups,
        secret,
        tls,
        this: node_id,
        timeouts,
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        tracing::warn!(%peer, "refusing a cluster bus connection: {MAX_CONNECTIONS} are open");
                        continue;
                    };
                    let server = Arc::clone(&server);
                    connections.spawn(async move {
                        server.serve(stream).await;
                        drop(slot);
                    });
                }
                Err(error) => {
                    tracing::warn!("the cluster bus listener failed to accept: {error}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

struct Server {
    groups: Vec<ServedGroup>,
    secret: ClusterSecret,
    tls: Option<BusTls>,
    this: NodeId,
    timeouts: BusTimeouts,
}

impl Server {
    async fn serve(&self, stream: TcpStream) {
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "an unknown address".to_owned(), |a| a.to_string());
        match self.run(stream).await {
            Ok(()) => tracing::debug!(%peer, "cluster bus connection closed by the peer"),
            Err(error) => tracing::warn!(%peer, "closing a cluster bus connection: {error}"),
        }
    }

    async fn run(&self, tcp: TcpStream) -> Result<(), TransportError> {
        tcp.set_nodelay(true)?;
        let limit = self.timeouts.handshake;
        let mut stream: BusStream = tls::accept(tcp, self.tls.as_ref(), limit).await?;
        let (node, group) =
            handshake::accept(&mut stream, &self.secret, self.this, &self.timeouts).await?;
        let Some(served) = usize::try_from(group)
            .ok()
            .and_then(|group| self.groups.get(group))
        else {
            return Err(TransportError::NoSuchGroup {
                peer: node,
                group,
                groups: self.groups.len(),
            });
        };
        tracing::debug!(node, group, "cluster bus connection authenticated");
        loop {
            let payload = match read_frame(&mut stream, MAX_FRAME_BYTES, self.timeouts.idle).await {
                Err(TransportError::Io(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    return Ok(());
                }
                read => read?,
            };
            let response = answer(served, Request::decode(&payload)?, self.this).await;
            write_frame(&mut stream, &response.encode(), self.timeouts.exchange).await?;
        }
    }
}

/// One Raft group this node serves on the bus.
struct ServedGroup {
    raft: Raft<TypeConfig>,
    /// How many times its elections were paused: a pause ends only if no later one began.
    pauses: Arc<AtomicU64>,
}

/// The longest a peer may pause this node's elections in a group for.
const MAX_ELECTION_PAUSE: Duration = Duration::from_secs(10);

/// Hands one request to the group and answers what its Raft said.
async fn answer(group: &ServedGroup, request: Request, this: NodeId) -> Response {
    let raft = &group.raft;
    match request {
        Request::AppendEntries(rpc) => match raft.append_entries(rpc).await {
            Ok(response) => Response::AppendEntries(response),
            Err(error) => Response::Failure(RemoteFailure::from_raft(&error)),
        },
        Request::Vote(rpc) => match raft.vote(rpc).await {
            Ok(response) => Response::Vote(response),
            Err(error) => Response::Failure(RemoteFailure::from_raft(&error)),
        },
        Request::InstallSnapshot(rpc) => match raft.install_snapshot(rpc).await {
            Ok(response) => Response::InstallSnapshot(response),
            Err(error) => Response::Failure(RemoteFailure::from_raft(&error)),
        },
        Request::ReadIndex => Response::ReadIndex(read_index(raft).await),
        Request::ChangeMembership(change) => {
            Response::Membership(change_membership(raft, change, this).await)
        }
        Request::Leadership(step) => Response::Leadership(leadership_step(group, step).await),
    }
}

/// Takes one step of a leadership move in `group` (see `LeadershipStep`).
async fn leadership_step(group: &ServedGroup, step: LeadershipStep) -> LeadershipAnswer {
    match step {
        LeadershipStep::PauseElections(pause) => {
            let pause = pause.min(MAX_ELECTION_PAUSE);
            let generation = group.pauses.fetch_add(1, Ordering::SeqCst) + 1;
            group.raft.runtime_config().elect(false);
            let (raft, pauses) = (group.raft.clone(), Arc::clone(&group.pauses));
            tokio::spawn(async move {
                tokio::time::sleep(pause).await;
                if pauses.load(Ordering::SeqCst) == generation {
                    raft.runtime_config().elect(true);
                }
            });
            LeadershipAnswer::Done
        }
        LeadershipStep::Campaign => match group.raft.trigger().elect().await {
            Ok(()) => LeadershipAnswer::Done,
            Err(fatal) => LeadershipAnswer::Failed(fatal.to_string()),
        },
    }
}

/// Makes `change` to the group of `raft`, which node `this` must lead.
async fn change_membership(
    raft: &Raft<TypeConfig>,
    change: MembershipChange,
    this: NodeId,
) -> MembershipAnswer {
    let members = Members { raft, this };
    let answer = match change {
        MembershipChange::Add { id, addr, catch_up } => {
            let deadline = std::time::Instant::now() + catch_up;
            members
                .add_node(id, addr, deadline)
                .await
                .map(MembershipAnswer::Added)
        }
        MembershipChange::Remove { id } => members
            .remove_node(id)
            .await
            .map(|()| MembershipAnswer::Removed),
    };
    answer.unwrap_or_else(MembershipAnswer::Refused)
}

/// The index a read must wait for, once a quorum confirmed that this node leads: the answer to
/// a follower's [`Request::ReadIndex`], and to the node's own reads.
pub async fn read_index(raft: &Raft<TypeConfig>) -> ReadIndexAnswer {
    match raft.get_read_log_id().await {
        Ok((read, _)) => ReadIndexAnswer::ReadAt(read.map(|id| id.index)),
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
            ReadIndexAnswer::NotLeader(forward.leader_id)
        }
        Err(error) => ReadIndexAnswer::Unavailable(error.to_string()),
    }
}
