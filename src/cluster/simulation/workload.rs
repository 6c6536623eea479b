//! Clients writing `add` commands to whichever node they believe leads, following the leader
//! a node names and trying another node after any other failure. Every attempt is a new
//! command (its time is a unique write number), so a command found twice in the log was
//! duplicated by the cluster, not retried by a client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use tokio::time::Instant;

use super::events::EventLog;
use super::network::SimNetwork;
use super::rng::SimRng;
use crate::cluster::state_machine::test_counter::add;
use crate::cluster::types::NodeId;

/// The counters the clients add to.
pub(super) const NAMES: [&str; 3] = ["jobs", "mails", "tasks"];

/// The time of write number 0; write `n` has time `FIRST_WRITE_TIME + n`, its identity.
pub(super) const FIRST_WRITE_TIME: u64 = 1_700_000_000_000;

/// How long a client waits for a write before it gives up on it (its outcome then unknown).
const WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// A write the cluster acknowledged: `client_write` returned its log index and reply.
#[derive(Debug, Clone)]
pub(super) struct AckedWrite {
    pub(super) time_ms: u64,
    pub(super) index: u64,
    pub(super) name: &'static str,
    pub(super) delta: u64,
    /// The counter's value after the write, as the leader answered.
    pub(super) reply: Option<u64>,
}

/// What a client shares with the others.
#[derive(Clone)]
pub(super) struct Clients {
    pub(super) network: SimNetwork,
    pub(super) events: Arc<EventLog>,
    pub(super) node_ids: Vec<NodeId>,
    /// The next write number.
    pub(super) next_write: Arc<AtomicU64>,
}

/// How one attempt ended.
pub(super) enum Attempt {
    Acked(AckedWrite),
    /// Not the leader; it names the leader it knows, if any.
    Redirected(Option<NodeId>),
    /// Failed or timed out: the command may or may not be applied.
    Unknown,
}

impl Clients {
    /// Writes through `node`: one attempt, one new command.
    pub(super) async fn write(&self, client: usize, node: NodeId, rng: &mut SimRng) -> Attempt {
        let Some(raft) = self.network.node(node) else {
            return Attempt::Unknown;
        };
        let time_ms = FIRST_WRITE_TIME + self.next_write.fetch_add(1, Ordering::Relaxed);
        let name = rng.pick(&NAMES);
        let delta = rng.between(1, 100);
        let written =
            tokio::time::timeout(WRITE_TIMEOUT, raft.client_write(add(time_ms, name, delta)));
        match written.await {
            Ok(Ok(response)) => {
                let acked = AckedWrite {
                    time_ms,
                    index: response.log_id.index,
                    name,
                    delta,
                    reply: response.data.into_answer::<u64>(),
                };
                self.events.record(format_args!(
                    "client {client}: write {time_ms} ({name} += {delta}) acknowledged by node \
                     {node} at index {} with {:?}",
                    acked.index, acked.reply
                ));
                Attempt::Acked(acked)
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                Attempt::Redirected(forward.leader_id)
            }
            Ok(Err(error)) => {
                self.events.record(format_args!(
                    "client {client}: write {time_ms} through node {node} failed: {error}"
                ));
                Attempt::Unknown
            }
            Err(_) => {
                self.events.record(format_args!(
                    "client {client}: write {time_ms} through node {node} timed out"
                ));
                Attempt::Unknown
            }
        }
    }

    /// Writes until `until`, pausing a little between writes; returns the writes acknowledged.
    pub(super) async fn run(
        self,
        client: usize,
        mut rng: SimRng,
        until: Instant,
    ) -> Vec<AckedWrite> {
        let mut acked = Vec::new();
        let mut leader = None;
        while Instant::now() < until {
            let node = leader.unwrap_or_else(|| rng.pick(&self.node_ids));
            match self.write(client, node, &mut rng).await {
                Attempt::Acked(write) => {
                    acked.push(write);
                    leader = Some(node);
                }
                Attempt::Redirected(named) => leader = named.filter(|named| *named != node),
                Attempt::Unknown => leader = None,
            }
            tokio::time::sleep(Duration::from_millis(rng.between(0, 30))).await;
        }
        acked
    }
}
