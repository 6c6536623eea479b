//! Gathers the proposals of many connections into one Raft entry, as a group commit does: while
//! a few entries are in flight, new proposals queue, and the next entry carries all of them. A
//! Raft round (an append and its fdatasync on a majority) then serves every command that was
//! waiting, instead of one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::Raft;
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::clock::{Clock, SystemClock};
use crate::cluster::types::{Command, TypeConfig};
use crate::server::commands::Outcome;

use super::apply::ServerState;
use super::node::ProposeError;
use super::proposal::{Proposal, encode_batch};

/// Entries in flight at once: enough to keep the log busy while the next batch gathers.
const MAX_IN_FLIGHT: usize = 4;
/// Proposals in one entry, at most.
const MAX_BATCH: usize = 1024;

/// What a proposer hears back: the outcome and the index of the entry that carried it.
pub(crate) type Answer = Result<(Outcome, u64), ProposeError>;

struct Pending {
    proposal: Proposal,
    answer: oneshot::Sender<Answer>,
}

/// The times entries are stamped with: the leader's wall clock, never below the last stamp
/// nor the last command applied.
pub(crate) struct Stamps {
    state: Arc<ServerState>,
    wall: SystemClock,
    last: AtomicU64,
}

impl Stamps {
    pub(crate) fn new(state: Arc<ServerState>) -> Stamps {
        let last = AtomicU64::new(state.applied_time_ms());
        Stamps {
            state,
            wall: SystemClock::new(),
            last,
        }
    }

    fn next(&self) -> u64 {
        let now = self.wall.now_ms().max(self.state.applied_time_ms());
        self.last.fetch_max(now, Ordering::AcqRel).max(now)
    }
}

/// The queue proposals wait in.
pub(crate) struct Batcher {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Batcher {
    /// Starts the task that writes the batches to `raft`.
    pub(crate) fn start(
        raft: Raft<TypeConfig>,
        stamps: Arc<Stamps>,
    ) -> (Batcher, tokio::task::JoinHandle<()>) {
        let (queue, waiting) = mpsc::unbounded_channel();
        let task = tokio::spawn(write_batches(raft, stamps, waiting));
        (Batcher { queue }, task)
    }

    /// Queues `proposal` to be replicated with whatever else is waiting; the answer comes once
    /// its entry is committed and applied here. Proposals submitted one after the other are
    /// applied in that order.
    pub(crate) fn submit(&self, proposal: Proposal) -> Awaited {
        let (answer, answered) = oneshot::channel();
        // A closed queue drops `answer`, which the wait reports as the node stopping.
        let _ = self.queue.send(Pending { proposal, answer });
        Awaited(answered)
    }
}

/// The answer to a submitted proposal, to wait for.
pub(crate) struct Awaited(oneshot::Receiver<Answer>);

impl Awaited {
    /// Waits for the answer.
    pub(crate) async fn answer(self) -> Answer {
        self.0
            .await
            .map_err(|_| ProposeError::Unavailable("the node is stopping".into()))?
    }
}

async fn write_batches(
    raft: Raft<TypeConfig>,
    stamps: Arc<Stamps>,
    mut waiting: mpsc::UnboundedReceiver<Pending>,
) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = waiting.recv().await {
        // Waiting for room first lets more proposals join this batch.
        let Ok(room) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        let time_ms = stamps.next();
        tokio::spawn(async move {
            write_batch(&raft, time_ms, batch).await;
            drop(room);
        });
    }
}

async fn write_batch(raft: &Raft<TypeConfig>, time_ms: u64, batch: Vec<Pending>) {
    let (proposals, answers): (Vec<Proposal>, Vec<oneshot::Sender<Answer>>) = batch
        .into_iter()
        .map(|pending| (pending.proposal, pending.answer))
        .unzip();
    let command = Command {
        time_ms,
        body: encode_batch(&proposals),
    };
    let failure = match raft.client_write(command).await {
        Ok(written) => {
            let index = written.log_id.index;
            match written.data.into_answer::<Vec<Outcome>>() {
                Some(outcomes) if outcomes.len() == answers.len() => {
                    for (answer, outcome) in answers.into_iter().zip(outcomes) {
                        // A proposer that went away (its client disconnected) needs no answer.
                        let _ = answer.send(Ok((outcome, index)));
                    }
                    return;
                }
                _ => ProposeError::Unavailable(format!(
                    "entry {index} was applied without its answers (before a restart)"
                )),
            }
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
            ProposeError::NotLeader(forward.leader_id)
        }
        Err(error) => ProposeError::Unavailable(error.to_string()),
    };
    for answer in answers {
        let _ = answer.send(Err(failure.clone()));
    }
}
