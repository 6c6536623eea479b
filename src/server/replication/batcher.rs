//! Gathers the proposals of many connections into one Raft entry, as a group commit does: while
//! an entry is in flight, new proposals queue, and the next entry carries all of them (more
//! entries go in flight only when the queue fills whole ones). A Raft round (an append and its
//! fdatasync on a majority) then serves every command that was waiting, instead of one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::Raft;
use openraft::error::ClientWriteError;
use openraft::raft::ClientWriteResponse;
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::{Clock, SystemClock};
use crate::cluster::types::{Command, NodeAddr, NodeId, TypeConfig};
use crate::server::commands::Outcome;

use super::apply::ServerState;
use super::node::ProposeError;
use super::proposal::{Proposal, encode_batch};

/// Entries in flight at once, at most; past the first, only full ones (see [`launches`]).
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
    /// While `true`, proposals wait in the queue instead of becoming entries (see
    /// [`Batcher::hold`]).
    held: watch::Sender<bool>,
    /// How many batches Raft has been handed and not yet answered.
    in_flight: watch::Receiver<usize>,
}

impl Batcher {
    /// Starts the task that writes the batches to `raft`.
    pub(crate) fn start(
        raft: Raft<TypeConfig>,
        stamps: Arc<Stamps>,
    ) -> (Batcher, tokio::task::JoinHandle<()>) {
        let (queue, waiting) = mpsc::unbounded_channel();
        let (held, holding) = watch::channel(false);
        let (counting, in_flight) = watch::channel(0);
        let task = tokio::spawn(write_batches(raft, stamps, waiting, holding, counting));
        (
            Batcher {
                queue,
                held,
                in_flight,
            },
            task,
        )
    }

    /// Waits until every batch handed to Raft is answered, so that none can still be added to
    /// the log (with proposals held back), for at most `limit`; answers whether they were.
    pub(crate) async fn settle(&self, limit: std::time::Duration) -> bool {
        let mut in_flight = self.in_flight.clone();
        let settled = in_flight.wait_for(|count| *count == 0);
        matches!(tokio::time::timeout(limit, settled).await, Ok(Ok(_)))
    }

    /// Holds the proposals back (`true`), or lets them through again (`false`): while a leader
    /// hands its shard over, its log must stop growing so that the node taking over can hold
    /// all of it, which its election needs. Batches already handed to Raft go on.
    pub(crate) fn hold(&self, held: bool) {
        self.held.send_replace(held);
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

/// Gathers the proposals as they come and hands them to Raft as entries, one task for the
/// whole node, so that the entries reach the log in the order the proposals were queued.
async fn write_batches(
    raft: Raft<TypeConfig>,
    stamps: Arc<Stamps>,
    mut waiting: mpsc::UnboundedReceiver<Pending>,
    mut held: watch::Receiver<bool>,
    counting: watch::Sender<usize>,
) {
    let mut gathered: Vec<Pending> = Vec::new();
    let mut in_flight = 0;
    let (finished, mut finishes) = mpsc::unbounded_channel();
    loop {
        tokio::select! {
            biased;
            Some(()) = finishes.recv() => {
                in_flight -= 1;
                counting.send_replace(in_flight);
            }
            Ok(()) = held.changed() => {}
            next = waiting.recv() => match next {
                Some(pending) => gathered.push(pending),
                None => return,
            },
        }
        while let Ok(pending) = waiting.try_recv() {
            gathered.push(pending);
        }
        while !*held.borrow() && launches(gathered.len(), in_flight) {
            let batch: Vec<Pending> = gathered.drain(..gathered.len().min(MAX_BATCH)).collect();
            in_flight += 1;
            counting.send_replace(in_flight);
            write_batch(&raft, stamps.next(), batch, finished.clone()).await;
        }
    }
}

/// Whether the next entry goes to the log now: a full one while there is room, anything once
/// the log is idle. While an entry is in flight, a partial batch keeps gathering: the next
/// entry then carries every command that came meanwhile, so a round of the log (its append,
/// sync and replication, whose cost is per entry) serves as many commands as it can.
fn launches(waiting: usize, in_flight: usize) -> bool {
    waiting > 0 && in_flight < MAX_IN_FLIGHT && (in_flight == 0 || waiting >= MAX_BATCH)
}

/// Hands the batch to Raft, in the order of the calls (so that commands a connection submitted
/// one after the other are applied in that order), and leaves the wait for its answers to a
/// task of its own, which signals `finished` when it is done.
async fn write_batch(
    raft: &Raft<TypeConfig>,
    time_ms: u64,
    batch: Vec<Pending>,
    finished: mpsc::UnboundedSender<()>,
) {
    let (proposals, answers): (Vec<Proposal>, Vec<oneshot::Sender<Answer>>) = batch
        .into_iter()
        .map(|pending| (pending.proposal, pending.answer))
        .unzip();
    let command = Command {
        time_ms,
        body: encode_batch(&proposals),
    };
    let written = raft.client_write_ff(command).await;
    tokio::spawn(async move {
        let outcome = match written {
            Ok(receiver) => receiver
                .await
                .map_err(|_| ProposeError::Unavailable("the Raft node stopped".into()))
                .and_then(|result| result.map_err(refused)),
            Err(fatal) => Err(ProposeError::Unavailable(fatal.to_string())),
        };
        answer_all(answers, outcome);
        // The writer may be gone (the node is stopping), with nothing left to launch.
        let _ = finished.send(());
    });
}

fn refused(error: ClientWriteError<NodeId, NodeAddr>) -> ProposeError {
    match error {
        ClientWriteError::ForwardToLeader(forward) => ProposeError::NotLeader(forward.leader_id),
        error => ProposeError::Unavailable(error.to_string()),
    }
}

/// Sends each proposer its outcome, or the batch's failure.
fn answer_all(
    answers: Vec<oneshot::Sender<Answer>>,
    written: Result<ClientWriteResponse<TypeConfig>, ProposeError>,
) {
    let failure = match written {
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
        Err(failure) => failure,
    };
    for answer in answers {
        let _ = answer.send(Err(failure.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_batch_waits_for_the_log_to_be_idle_and_full_ones_fill_the_room() {
        assert!(!launches(0, 0));
        assert!(launches(1, 0));
        assert!(!launches(MAX_BATCH - 1, 1));
        assert!(launches(MAX_BATCH, 1));
        assert!(launches(MAX_BATCH, MAX_IN_FLIGHT - 1));
        assert!(!launches(MAX_BATCH * 8, MAX_IN_FLIGHT));
    }
}
