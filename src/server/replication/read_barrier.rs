//! Linearizable reads, on the leader and on followers. A node answers a keyed read only once it
//! has applied the log up to an index the leader gave after the read arrived, having confirmed
//! with a quorum that it still leads (Raft's read index). The leader finds it in its own Raft; a
//! follower (answering a connection that sent `READONLY`, as every connection of some Redis
//! Cluster clients does) asks the leader over the bus. A client whose slot map is stale, or
//! that reads from replicas on purpose, so never sees a state older than a write acknowledged
//! before its read, whatever node answers.
//!
//! Reads share requests: one task asks, and every read that arrived before it asked waits for
//! that answer; reads arriving meanwhile wait for the next request, since an index given before
//! a read arrived may miss writes acknowledged before the read. Each request costs the leader a
//! heartbeat round to its followers, so a thousand concurrent reads cost one round, not a
//! thousand.

use std::time::Duration;

use openraft::Raft;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::cluster::network::{ClusterNetwork, PeerConnection, ReadIndexAnswer, read_index};
use crate::cluster::types::{NodeId, TypeConfig};

use super::node::ProposeError;

/// How long a read waits for the leader's answer, and then for this node to apply up to it,
/// before it is refused with `TRYAGAIN`: a node that is cut off or far behind answers soon,
/// and the client tries another.
const READ_BARRIER_TIMEOUT: Duration = Duration::from_secs(2);

type Waiter = oneshot::Sender<Result<Option<u64>, ProposeError>>;

/// The read barrier of a node.
pub(crate) struct ReadBarrier {
    requests: mpsc::UnboundedSender<Waiter>,
    raft: Raft<TypeConfig>,
}

impl ReadBarrier {
    /// Starts the task that asks the leader for read indexes for node `this`, over `network`.
    pub(crate) fn start(
        raft: Raft<TypeConfig>,
        network: ClusterNetwork,
        this: NodeId,
    ) -> (ReadBarrier, JoinHandle<()>) {
        let (requests, waiting) = mpsc::unbounded_channel();
        let asking = Asking {
            raft: raft.clone(),
            network,
            this,
            leader: None,
        };
        let task = tokio::spawn(asking.run(waiting));
        (ReadBarrier { requests, raft }, task)
    }

    /// Waits until this node has applied everything acknowledged before the call: then a read
    /// of its state is linearizable.
    pub(crate) async fn wait(&self) -> Result<(), ProposeError> {
        let (answer, answered) = oneshot::channel();
        self.requests
            .send(answer)
            .map_err(|_| ProposeError::Unavailable("the node is stopping".into()))?;
        let index = answered
            .await
            .map_err(|_| ProposeError::Unavailable("the node is stopping".into()))??;
        self.raft
            .wait(Some(READ_BARRIER_TIMEOUT))
            .applied_index_at_least(index, "a linearizable read on a follower")
            .await
            .map(|_| ())
            .map_err(|_| {
                ProposeError::Unavailable(format!(
                    "this node has not applied the log up to index {} yet",
                    index.unwrap_or_default()
                ))
            })
    }
}

/// The task's state: the connection to the leader, kept while it leads.
struct Asking {
    raft: Raft<TypeConfig>,
    network: ClusterNetwork,
    this: NodeId,
    leader: Option<(NodeId, PeerConnection)>,
}

impl Asking {
    async fn run(mut self, mut waiting: mpsc::UnboundedReceiver<Waiter>) {
        while let Some(first) = waiting.recv().await {
            let mut waiters = vec![first];
            while let Ok(more) = waiting.try_recv() {
                waiters.push(more);
            }
            let answer = self.read_index().await;
            for waiter in waiters {
                // A reader that gave up (its connection closed) is not waiting any more.
                let _ = waiter.send(answer.clone());
            }
        }
    }

    /// The read index, from the leader this node knows, or from its own Raft when it leads.
    async fn read_index(&mut self) -> Result<Option<u64>, ProposeError> {
        let (leader, bus) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            let Some(leader) = metrics.current_leader else {
                return Err(ProposeError::NotLeader(None));
            };
            let bus = metrics
                .membership_config
                .membership()
                .get_node(&leader)
                .map(|addr| addr.bus.clone());
            (leader, bus)
        };
        if leader == self.this {
            return answered(self.this, read_index(&self.raft).await);
        }
        let Some(bus) = bus else {
            return Err(ProposeError::NotLeader(None));
        };
        let connection = match &mut self.leader {
            Some((known, connection)) if *known == leader => connection,
            _ => {
                let connection = self.network.connection(leader, &bus);
                &mut self.leader.insert((leader, connection)).1
            }
        };
        let asked = tokio::time::timeout(READ_BARRIER_TIMEOUT, connection.read_index()).await;
        match asked {
            Ok(Ok(answer)) => answered(leader, answer),
            Ok(Err(error)) => {
                self.leader = None;
                Err(ProposeError::Unavailable(format!(
                    "node {leader}, the leader, did not answer: {error}"
                )))
            }
            Err(_) => {
                self.leader = None;
                Err(ProposeError::Unavailable(format!(
                    "node {leader}, the leader, did not answer within {READ_BARRIER_TIMEOUT:?}"
                )))
            }
        }
    }
}

/// The read index `leader` answered, or why there is none.
fn answered(leader: NodeId, answer: ReadIndexAnswer) -> Result<Option<u64>, ProposeError> {
    match answer {
        ReadIndexAnswer::ReadAt(index) => Ok(index),
        ReadIndexAnswer::NotLeader(known) => Err(ProposeError::NotLeader(known)),
        ReadIndexAnswer::Unavailable(reason) => Err(ProposeError::Unavailable(format!(
            "node {leader} could not confirm that it leads: {reason}"
        ))),
    }
}
