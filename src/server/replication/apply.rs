//! The server as the replicated state machine: a committed command runs on every node as the
//! client's connection would have run it, with the store's clock set to the time the leader
//! stamped on it, inside one store transaction per batch that records the batch's last index.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use crate::clock::{Clock, ManualClock};
use crate::cluster::state_machine::{FrozenState, Replicated};
use crate::cluster::types::{Command, Reply};
use crate::codec::CodecError;
use crate::server::Server;
use crate::server::commands::{self, Client, Outcome, local_failure};
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
}

/// What a node does when its machine fails a replicated command: it must neither answer the
/// failure (the other nodes did not fail) nor go on past the command (its state would lack the
/// command's effect), so it stops before the batch's transaction is committed. The next start
/// undoes the unfinished transaction and applies the batch again from the Raft log.
type Halt = fn(index: u64, reason: &str) -> !;

/// The exit status of a node that stopped on a failure of its machine.
const HALTED_EXIT_STATUS: i32 = 75;

/// One shard of the server's state (its store), as openraft's state machine sees it.
#[derive(Debug)]
pub struct ServerState {
    server: OnceLock<Weak<Server>>,
    /// The shard whose store the commands run on.
    shard: usize,
    /// The store's clock: set to each command's time before it runs.
    clock: Arc<ManualClock>,
    halt: Halt,
}

/// Stops the process: the store is left as a crash leaves it, with the batch's transaction
/// unfinished, so that the next start undoes it.
fn halt_process(index: u64, reason: &str) -> ! {
    tracing::error!(
        index,
        %reason,
        "this node's store failed while applying a committed command; the node stops so that its state does not differ from the other nodes': fix the cause (free disk space, check the disk) and start it again, and it applies the command again from its Raft log"
    );
    std::process::exit(HALTED_EXIT_STATUS)
}

impl ServerState {
    /// A state machine over shard `shard` of the server that will be attached with
    /// [`attach`](Self::attach), whose store reads `clock`.
    pub(crate) fn new(shard: usize, clock: Arc<ManualClock>) -> ServerState {
        ServerState {
            server: OnceLock::new(),
            shard,
            clock,
            halt: halt_process,
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
        let store = server.shard_store(self.shard)?;
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
        let applied = commands::off_worker(|| {
            store.transaction_marked(mark, || {
                let mut client = Client::replica(&server.acl, self.shard);
                let mut replies = Vec::with_capacity(batches.len());
                local_failure::take();
                for ((index, command), batch) in commands.iter().zip(batches) {
                    self.clock.set_ms(command.time_ms);
                    let outcomes: Vec<Outcome> = batch
                        .into_iter()
                        .map(|proposal| run(&server, &store, &mut client, proposal))
                        .collect();
                    if let Some(reason) = local_failure::take() {
                        (self.halt)(*index, &reason);
                    }
                    replies.push(Reply::new(outcomes));
                }
                if let Err(error) = store.complete_now(&client.commits) {
                    (self.halt)(*last, &error.to_string());
                }
                replies
            })
        });
        match applied {
            Ok(replies) => Ok(replies),
            // The transaction could not start or commit: whether the store holds the batch
            // is known only to its next open.
            Err(error) if error.is_local() => (self.halt)(*last, &error.to_string()),
            Err(error) => Err(error.into()),
        }
    }

    fn freeze(&self) -> Result<FrozenState<ApplyError>, ApplyError> {
        let server = self.server()?;
        let started = Instant::now();
        // No command runs while the store's files are gathered, so they are what a crash at
        // this moment would leave: the store's recovery opens them whole.
        let frozen = {
            let _exclusive = server.exec_lock.write();
            server.shard_store(self.shard)?.freeze()?
        };
        let paused_ms = started.elapsed().as_millis() as u64;
        Ok(Box::new(move |out: &mut dyn Write| {
            let summary = frozen.write_archive(out)?;
            tracing::info!(
                files = summary.files,
                bytes = summary.data_bytes,
                paused_ms,
                took_ms = started.elapsed().as_millis() as u64,
                "wrote a snapshot of the store"
            );
            Ok(())
        }))
    }

    fn install(&self, data: &Path) -> Result<(), ApplyError> {
        let server = self.server()?;
        let started = Instant::now();
        let install = |dir: &Path| Store::install_snapshot(dir, data);
        let summary = server.replace_store(self.shard, install)?;
        tracing::info!(
            files = summary.files,
            bytes = summary.data_bytes,
            took_ms = started.elapsed().as_millis() as u64,
            "installed a snapshot of the store"
        );
        Ok(())
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use bytes::Bytes;

    use super::*;
    use crate::cluster::network::ClusterSecret;
    use crate::fs::fault::{self, Fault};
    use crate::server::config::{ClusterConfig, ServerConfig};
    use crate::server::replication::proposal::encode_batch;
    use crate::server::resp::{Protocol, Value};

    fn halt_by_panicking(index: u64, reason: &str) -> ! {
        panic!("halted at index {index}: {reason}")
    }

    fn cluster_node_server(dir: &Path) -> Arc<Server> {
        let cluster = ClusterConfig {
            node_id: 1,
            peers: BTreeMap::new(),
            join: true,
            bus_port: 1,
            secret: ClusterSecret::new(b"a secret of 16 bytes or more".to_vec()).unwrap(),
            snapshot_entries: 0,
            shards: 1,
            rebalance_interval: None,
        };
        let config = ServerConfig {
            dir: dir.to_path_buf(),
            cluster: Some(cluster),
            ..ServerConfig::default()
        };
        Server::open(config).unwrap()
    }

    fn state_of(server: &Arc<Server>) -> ServerState {
        let state = ServerState {
            halt: halt_by_panicking,
            ..ServerState::new(0, server.replicated_clock(0))
        };
        state.attach(server);
        state
    }

    fn xadd(index: u64, stream: &str) -> (u64, Command) {
        let args = ["XADD", stream, "*", "f", "v"].map(|arg| Bytes::from(arg.to_owned()));
        let proposal = Proposal::Run {
            db: 0,
            protocol: Protocol::Resp2,
            retry: false,
            args: args.to_vec(),
        };
        let command = Command {
            time_ms: 1_700_000_000_000 + index,
            body: encode_batch(&[proposal]),
        };
        (index, command)
    }

    fn answer(reply: Reply) -> Value {
        let outcomes: Vec<Outcome> = reply.into_answer().unwrap();
        match outcomes.into_iter().next() {
            Some(Outcome::Reply(value)) => value,
            _ => panic!("no reply"),
        }
    }

    #[test]
    fn a_command_the_data_refuses_is_answered_and_applied_on_every_node_alike() {
        let dir = tempfile::tempdir().unwrap();
        let server = cluster_node_server(dir.path());
        let state = state_of(&server);
        let first = state.apply(&[xadd(1, "s")]).unwrap();
        assert!(matches!(
            answer(first.into_iter().next().unwrap()),
            Value::Id(_)
        ));
        let args = ["XADD", "s", "1-1", "f", "v"].map(|arg| Bytes::from(arg.to_owned()));
        let too_small = Command {
            time_ms: 1_700_000_000_100,
            body: encode_batch(&[Proposal::Run {
                db: 0,
                protocol: Protocol::Resp2,
                retry: false,
                args: args.to_vec(),
            }]),
        };
        let replies = state.apply(&[(2, too_small)]).unwrap();
        let refused = answer(replies.into_iter().next().unwrap());
        assert!(matches!(refused, Value::Error(_)), "{refused:?}");
        assert_eq!(state.applied().unwrap(), Some(2));
    }

    /// Applies entry 1, then entries 2 and 3 (each creating a stream) with file-system call
    /// `at` failing for want of space (`None`: no fault); answers the file-system calls the
    /// second apply made, and why it halted, if it did.
    fn apply_with_disk_full_at(dir: &Path, at: Option<u64>) -> (u64, Option<String>) {
        let server = cluster_node_server(dir);
        let state = state_of(&server);
        state.apply(&[xadd(1, "before")]).unwrap();
        let plan = match at {
            Some(at) => fault::inject(dir, at, Fault::NoSpace),
            None => fault::count(dir),
        };
        let halted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            state.apply(&[xadd(2, "{s}a"), xadd(3, "{s}b")])
        }));
        let reason = match halted {
            Ok(applied) => {
                applied.unwrap();
                None
            }
            Err(panic) => Some(*panic.downcast::<String>().unwrap()),
        };
        // A halted process stops here: the store is dropped as a crash leaves it.
        (plan.calls(), reason)
    }

    #[test]
    fn a_failure_of_the_machine_stops_the_node_before_the_batch_counts_as_applied() {
        let counting = tempfile::tempdir().unwrap();
        let (calls, halted) = apply_with_disk_full_at(counting.path(), None);
        assert!(halted.is_none());
        assert!(calls > 0);
        let mut halts = 0;
        for at in 0..calls {
            let dir = tempfile::tempdir().unwrap();
            let (_, halted) = apply_with_disk_full_at(dir.path(), Some(at));
            let server = cluster_node_server(dir.path());
            let state = state_of(&server);
            let store = server.store().unwrap();
            // A key of database 0 is its name after a 0 byte.
            let held = [b"\0{s}a", b"\0{s}b"].map(|key| store.get(key).is_some());
            assert!(store.get(b"\0before").is_some(), "at {at}");
            match state.applied().unwrap() {
                Some(3) => assert_eq!(held, [true, true], "at {at}: {halted:?}"),
                Some(1) => {
                    let reason = halted.as_deref().unwrap_or_default();
                    assert!(reason.contains("space"), "at {at}: {reason}");
                    assert_eq!(held, [false, false], "at {at}: {reason}");
                    halts += 1;
                }
                other => panic!("at {at}: the mark is {other:?}"),
            }
        }
        assert!(halts > 0, "no fault position made the node halt");
    }
}
