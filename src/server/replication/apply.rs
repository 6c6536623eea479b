//! The server as the replicated state machine: a committed command runs on every node as the
//! client's connection would have run it, with the store's clock set to the time the leader
//! stamped on it, inside one store transaction per batch that records the batch's last index.

use std::sync::{Arc, OnceLock, Weak};

use crate::clock::{Clock, ManualClock};
use crate::cluster::state_machine::Replicated;
use crate::cluster::types::{Command, Reply};
use crate::codec::CodecError;
use crate::server::Server;
use crate::server::commands::{self, Client, Outcome};
use crate::store::{ReplicationMark, Store, StoreError};

use super::proposal::{Proposal, decode_batch};

/// Why a batch could not be applied: the node must stop applying (openraft stops the node)
/// rather than go on with a state that differs from the other nodes'.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The server this state machine runs commands on is gone (it is shutting down).
    #[error("the server is shutting down")]
    ServerGone,
    /// The store failed: its transaction is undone at the next open, and the commands are
    /// applied again from the Raft log.
    #[error("the store failed while applying replicated commands: {0}")]
    Store(#[from] StoreError),
    /// An entry does not decode: this node's Raft log holds what no leader wrote.
    #[error("a replicated command does not decode: {0}; the node's Raft log is damaged")]
    Decode(#[from] CodecError),
    /// Snapshots of the store are not built: every node keeps the whole Raft log instead.
    #[error(
        "this node cannot send or install a store snapshot; it keeps the whole Raft log, so a node that falls behind catches up from the log"
    )]
    NoSnapshots,
}

/// The server's state, as openraft's state machine sees it.
#[derive(Debug)]
pub struct ServerState {
    server: OnceLock<Weak<Server>>,
    /// The store's clock: set to each command's time before it runs.
    clock: Arc<ManualClock>,
}

impl ServerState {
    /// A state machine over the server that will be attached with [`attach`](Self::attach),
    /// whose store reads `clock`.
    pub(crate) fn new(clock: Arc<ManualClock>) -> ServerState {
        ServerState {
            server: OnceLock::new(),
            clock,
        }
    }

    /// Attaches the server the commands run on; before this, nothing can be applied.
    pub(crate) fn attach(&self, server: &Arc<Server>) {
        // Attached once, at start; a second call would name the same server.
        let _ = self.server.set(Arc::downgrade(server));
    }

    /// The time of the last command applied, which a new leader's stamps must not go below.
    pub(crate) fn applied_time_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn server(&self) -> Result<Arc<Server>, ApplyError> {
        self.server
            .get()
            .and_then(Weak::upgrade)
            .ok_or(ApplyError::ServerGone)
    }

    fn store(&self) -> Result<(Arc<Server>, Arc<Store>), ApplyError> {
        let server = self.server()?;
        let store = server.store()?;
        Ok((server, store))
    }
}

impl Replicated for ServerState {
    type Error = ApplyError;

    fn applied(&self) -> Result<Option<u64>, ApplyError> {
        let (_, store) = self.store()?;
        Ok(store.replication_mark().map(|mark| mark.index))
    }

    fn apply(&self, commands: &[(u64, Command)]) -> Result<Vec<Reply>, ApplyError> {
        let (server, store) = self.store()?;
        let batches = commands
            .iter()
            .map(|(_, command)| decode_batch(&command.body))
            .collect::<Result<Vec<_>, _>>()?;
        let Some((last, _)) = commands.last() else {
            return Ok(Vec::new());
        };
        // The time the batch ends at: the clock only moves forward, so a new leader whose
        // clock is behind continues from the last time applied, the same on every node.
        let end_ms = commands
            .iter()
            .map(|(_, command)| command.time_ms)
            .fold(self.clock.now_ms(), u64::max);
        let mark = ReplicationMark {
            index: *last,
            time_ms: end_ms,
        };
        let replies = commands::off_worker(|| {
            store.transaction_marked(mark, || {
                let mut client = Client::replica(&server.acl);
                let mut replies = Vec::with_capacity(batches.len());
                for ((_, command), batch) in commands.iter().zip(batches) {
                    self.clock.set_ms(command.time_ms);
                    let outcomes: Vec<Outcome> = batch
                        .into_iter()
                        .map(|proposal| run(&server, &store, &mut client, proposal))
                        .collect();
                    replies.push(Reply::new(outcomes));
                }
                store.complete_now(&client.commits).map(|()| replies)
            })
        })??;
        Ok(replies)
    }

    fn snapshot(&self) -> Result<Vec<u8>, ApplyError> {
        Err(ApplyError::NoSnapshots)
    }

    fn install(&self, _state: &[u8]) -> Result<(), ApplyError> {
        Err(ApplyError::NoSnapshots)
    }
}

/// Runs one committed proposal.
fn run(server: &Arc<Server>, store: &Store, client: &mut Client, proposal: Proposal) -> Outcome {
    match proposal {
        Proposal::Run {
            db,
            protocol,
            retry,
            args,
        } => {
            client.db = db;
            client.protocol = protocol;
            commands::run_replicated(server, client, &args, retry)
        }
        Proposal::Exec {
            db,
            protocol,
            queued,
        } => {
            client.db = db;
            client.protocol = protocol;
            commands::exec_replicated(server, client, queued)
        }
        Proposal::Tick => match store.apply_timed_changes() {
            Ok(()) => Outcome::Reply(crate::server::resp::Value::ok()),
            Err(error) => Outcome::Reply(commands::store_error(&error)),
        },
    }
}
