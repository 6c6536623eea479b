//! How a node of a cluster runs a client's command: it routes the command to the slot's leader
//! as Redis Cluster does (`-MOVED`, `-CROSSSLOT`, `-CLUSTERDOWN`), proposes commands that
//! change data to the Raft log and answers what applying them answered, and serves reads from
//! applied state once it has confirmed that it still leads (or, after `READONLY`, on a
//! follower, as Redis replicas do).

use std::sync::Arc;

use bytes::Bytes;

use super::command::call_keys;
use super::{
    Attempt, Client, CommandSpec, Flag, Look, Outcome, lookup, nothing_to_deliver,
    retry_while_blocked, run_blocking, run_once,
};
use crate::server::Server;
use crate::server::cluster_routing::{cluster_down, keys_slot, moved, redirection, try_again};
use crate::server::replication::{Awaited, Proposal, ProposeError, Replication};
use crate::server::resp::Value;

/// A write submitted to a shard's log, whose reply the connection collects later.
pub(crate) struct Replicating {
    awaited: Awaited,
    replication: Arc<Replication>,
    slot: Option<u16>,
    shard: usize,
}

impl Replicating {
    /// Waits for the write's reply; the client's last write is then this one (for `WAIT`).
    pub(crate) async fn outcome(self, client: &mut Client) -> Outcome {
        match self.awaited.answer().await {
            Ok((outcome, index)) => {
                client.last_write_index = index;
                client.last_write_shard = self.shard;
                outcome
            }
            Err(error) => refusal(&self.replication, error, self.slot).into(),
        }
    }
}

/// Whether the connection may run `args` without first collecting the replies of the writes
/// it submitted before: it is itself a write that is submitted the same way (keyed or not,
/// outside a transaction, never blocking), or a group read without `BLOCK` that follows them
/// into the log, so the log keeps them in order.
pub(crate) fn submitted_in_order(server: &Server, client: &Client, args: &[Bytes]) -> bool {
    server.replication().is_some()
        && client.multi.is_none()
        && args
            .first()
            .and_then(|name| lookup(name))
            .is_some_and(|spec| submitted(spec) || group_read_never_blocking(spec, args))
}

fn submitted(spec: &CommandSpec) -> bool {
    spec.has_flag(Flag::Write) && !spec.has_flag(Flag::Blocking) && spec.name != "exec"
}

/// `XREADGROUP` without `BLOCK`: a write that never blocks. After writes of its connection
/// still in flight it goes into the log behind them, so that it sees them and a consumer's
/// `XACK` and next read share a round; without such writes it runs as a group read always
/// does, where the leader answers a read of an idle stream without proposing it. Options run
/// from the fifth argument (after `GROUP group consumer`) to `STREAMS`; a `BLOCK` among them,
/// even as a mistaken value, counts.
fn group_read_never_blocking(spec: &CommandSpec, args: &[Bytes]) -> bool {
    spec.name == "xreadgroup"
        && !args
            .iter()
            .skip(4)
            .take_while(|arg| !arg.eq_ignore_ascii_case(b"streams"))
            .any(|arg| arg.eq_ignore_ascii_case(b"block"))
}

/// Runs `args` (a command `spec` accepted) on this node of the cluster.
pub(super) async fn run(
    server: &Arc<Server>,
    replication: &Arc<Replication>,
    client: &mut Client,
    spec: &'static CommandSpec,
    args: Vec<Bytes>,
) -> Outcome {
    let transaction = (spec.name == "exec").then(|| client.multi.take()).flatten();
    let writes = match &transaction {
        Some(queued) => queued.iter().any(|call| writes(call)),
        None => spec.has_flag(Flag::Write),
    };
    let keys: Vec<Bytes> = match &transaction {
        Some(queued) => queued.iter().flat_map(|call| call_keys(call)).collect(),
        None => call_keys(&args),
    };
    let slot = match keys_slot(keys.iter().map(|key| &key[..])) {
        Ok(slot) => slot,
        Err(crossslot) => return crossslot.into(),
    };
    if spec.name == "select" && args.get(1).is_some_and(|db| &db[..] != b"0") {
        return Value::error("ERR SELECT is not allowed in cluster mode").into();
    }
    // The command sees its keys' shard; a keyless one every shard this node holds.
    let shard = slot.map(|slot| replication.shard_of(slot));
    client.shard = shard;
    let target = Target {
        slot,
        shard: shard.unwrap_or(0),
    };
    if shard.is_none() && writes && replication.shard_count() > 1 {
        return keyless_write(server, replication, client, args, transaction).await;
    }
    // The leader of the shard serves its slots: no view to build on the hot path.
    if let Some(refused) = (!replication.leads(target.shard))
        .then(|| route(server, client, slot, writes))
        .flatten()
    {
        return refused.into();
    }
    match transaction {
        Some(queued) if writes => {
            if std::mem::take(&mut client.multi_failed) {
                return Value::error("EXECABORT Transaction discarded because of previous errors.")
                    .into();
            }
            let proposal = Proposal::Exec {
                db: client.db,
                protocol: client.protocol,
                queued,
            };
            answer(replication, client, proposal, target).await
        }
        Some(queued) => {
            client.multi = Some(queued);
            read(server, replication, client, spec, args, target).await
        }
        None if submitted(spec)
            || (client.writes_in_flight && group_read_never_blocking(spec, &args)) =>
        {
            let proposal = Proposal::Run {
                db: client.db,
                protocol: client.protocol,
                retry: false,
                args,
            };
            Outcome::Replicating(Replicating {
                awaited: replication.submit(target.shard, proposal),
                replication: Arc::clone(replication),
                slot,
                shard: target.shard,
            })
        }
        None if writes => propose_until_answered(server, replication, client, args, target).await,
        None => read(server, replication, client, spec, args, target).await,
    }
}

/// Where a command goes: its keys' slot, if it has keys, and the shard whose log it enters.
#[derive(Debug, Clone, Copy)]
struct Target {
    slot: Option<u16>,
    shard: usize,
}

/// A write without keys (`FLUSHALL`, say) on a node of a sharded cluster: as on a Redis Cluster
/// master, it changes the shards this node leads, through each one's log in turn; a node that
/// leads none refuses it as a Redis replica does. The reply is the last shard's.
async fn keyless_write(
    server: &Arc<Server>,
    replication: &Arc<Replication>,
    client: &mut Client,
    args: Vec<Bytes>,
    transaction: Option<Vec<Vec<Bytes>>>,
) -> Outcome {
    let led = replication.led_shards();
    if led.is_empty() {
        return route(server, client, None, true)
            .unwrap_or_else(read_only_replica)
            .into();
    }
    if transaction.is_some() && std::mem::take(&mut client.multi_failed) {
        return Value::error("EXECABORT Transaction discarded because of previous errors.").into();
    }
    let mut last = Outcome::Reply(Value::ok());
    for shard in led {
        let proposal = match &transaction {
            Some(queued) => Proposal::Exec {
                db: client.db,
                protocol: client.protocol,
                queued: queued.clone(),
            },
            None => Proposal::Run {
                db: client.db,
                protocol: client.protocol,
                retry: false,
                args: args.clone(),
            },
        };
        let target = Target { slot: None, shard };
        last = answer(replication, client, proposal, target).await;
        if matches!(&last, Outcome::Reply(Value::Error(_))) {
            break;
        }
    }
    last
}

fn read_only_replica() -> Value {
    Value::error("READONLY You can't write against a read only replica.")
}

/// Whether the call changes data (and so goes through the log).
fn writes(call: &[Bytes]) -> bool {
    call.first()
        .and_then(|name| lookup(name))
        .is_some_and(|spec| spec.has_flag(Flag::Write))
}

/// Why the command must run elsewhere, if it must: keyed commands go to their slot's leader
/// (reads may stay on a follower after `READONLY`); keyless writes only run on the leader.
fn route(server: &Server, client: &Client, slot: Option<u16>, writes: bool) -> Option<Value> {
    let view = server.cluster_view()?;
    match slot {
        Some(slot) => redirection(&view, slot, client.read_only && !writes),
        None if writes => {
            let leaders: Vec<Option<u64>> = view.shards.iter().map(|shard| shard.leader).collect();
            if leaders.contains(&Some(view.myself)) {
                None
            } else if leaders.iter().all(Option::is_some) {
                Some(read_only_replica())
            } else {
                Some(cluster_down())
            }
        }
        None => None,
    }
}

/// Runs a read here, linearizable when it names a key: on the leader once it confirmed it still
/// leads (so that a deposed leader never answers from stale state), on a follower (for a
/// `READONLY` connection) once it applied the log up to the leader's read index. Either way the
/// read sees every write acknowledged before it arrived. (Some Redis Cluster clients send
/// `READONLY` on every connection, so a read that a stale slot map sends to a follower, a
/// deposed leader catching up, say, must not be answered from its older state.)
async fn read(
    server: &Arc<Server>,
    replication: &Replication,
    client: &mut Client,
    spec: &'static CommandSpec,
    args: Vec<Bytes>,
    target: Target,
) -> Outcome {
    if target.slot.is_some()
        && let Err(error) = replication.read_barrier(target.shard).await
    {
        return read_refusal(replication, error, target.slot).into();
    }
    if spec.has_flag(Flag::Blocking) {
        run_blocking(server, client, spec, args).await
    } else {
        run_once(server, client, spec, &args, false, false)
    }
}

/// Proposes a command and waits for its answer; a command that would block waits here, on the
/// proposing node, for a write to its keys or its deadline, then is proposed again.
async fn propose_until_answered(
    server: &Arc<Server>,
    replication: &Replication,
    client: &mut Client,
    args: Vec<Bytes>,
    target: Target,
) -> Outcome {
    let proposing = Propose {
        server,
        replication,
        target,
    };
    retry_while_blocked(server, client, args, proposing).await
}

/// Proposes the command to the log; a last look is one more proposal, and if it would still
/// block, the timeout reply stands. On the leader, a group read whose streams hold nothing to
/// deliver is not proposed: it blocks (or, after the read barrier, times out) at once, as its
/// proposal would, so readers waiting on idle streams add nothing to the log.
struct Propose<'r> {
    server: &'r Arc<Server>,
    replication: &'r Replication,
    target: Target,
}

impl Attempt for Propose<'_> {
    async fn attempt(&mut self, client: &mut Client, args: &[Bytes], look: Look) -> Outcome {
        let leads = self.replication.leads(self.target.shard);
        if leads && let Some(idle) = nothing_to_deliver(self.server, client, args, look) {
            if !look.last {
                return idle;
            }
            // The last look answers the timeout's nil without a proposal: only once this node
            // has confirmed that it still leads and applied what was acknowledged, as a read
            // must, or a deposed leader would answer "nothing" while the new one holds entries.
            if self
                .replication
                .read_barrier(self.target.shard)
                .await
                .is_ok()
                && let Some(idle) = nothing_to_deliver(self.server, client, args, look)
            {
                return idle;
            }
        }
        let proposal = Proposal::Run {
            db: client.db,
            protocol: client.protocol,
            retry: look.retry,
            args: args.to_vec(),
        };
        answer(self.replication, client, proposal, self.target).await
    }
}

/// Proposes `proposal` and turns a failure into the reply a Redis Cluster client acts on; the
/// client's last write is then this one (for `WAIT`).
async fn answer(
    replication: &Replication,
    client: &mut Client,
    proposal: Proposal,
    target: Target,
) -> Outcome {
    match replication.propose(target.shard, proposal).await {
        Ok((outcome, index)) => {
            client.last_write_index = index;
            client.last_write_shard = target.shard;
            outcome
        }
        Err(error) => refusal(replication, error, target.slot).into(),
    }
}

/// The answer to a read this node could not make linearizable.
fn read_refusal(replication: &Replication, error: ProposeError, slot: Option<u16>) -> Value {
    match error {
        ProposeError::Unavailable(reason) => try_again(&format!(
            "this node cannot confirm that its state is current ({reason}); send the read again"
        )),
        not_leader => refusal(replication, not_leader, slot),
    }
}

fn refusal(replication: &Replication, error: ProposeError, slot: Option<u16>) -> Value {
    match error {
        // A node that has just lost the lead may still name itself: no one is known to lead.
        ProposeError::NotLeader(Some(leader)) if leader == replication.node_id() => cluster_down(),
        ProposeError::NotLeader(Some(leader)) => match replication.client_endpoint(leader) {
            Some((ip, port)) => moved(slot.unwrap_or(0), &ip, port),
            None => cluster_down(),
        },
        ProposeError::NotLeader(None) => cluster_down(),
        ProposeError::Unavailable(reason) => try_again(&format!(
            "the command could not be replicated ({reason}); send it again"
        )),
    }
}
