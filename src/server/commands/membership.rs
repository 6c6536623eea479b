//! `CLUSTER ADDNODE id host:port@cport [TIMEOUT ms]` and `CLUSTER REMOVENODE id`: weir's own
//! subcommands for changing which nodes replicate the log, run on the leader.
//!
//! Redis Cluster's `MEET` and `FORGET` do not fit: `MEET` introduces a node by address alone
//! and lets gossip spread it, while a weir node has an id chosen by its operator and joins only
//! through a change a majority commits; `FORGET` drops a node from one node's table, while
//! removing a weir node changes the membership of the whole cluster at once.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Outcome;
use super::parse::integer;
use crate::cluster::types::NodeAddr;
use crate::server::config::PeerAddr;
use crate::server::replication::{Added, MembershipError, Replication};
use crate::server::resp::Value;

/// How long `CLUSTER ADDNODE` waits by default for the new node to catch up.
const DEFAULT_CATCH_UP: Duration = Duration::from_secs(60);

/// Whether `args` (a `CLUSTER` call) changes the membership or the leaders, and so waits for
/// the cluster.
pub(super) fn changes_membership(args: &[Bytes]) -> bool {
    args.get(1).is_some_and(|sub| {
        sub.eq_ignore_ascii_case(b"addnode")
            || sub.eq_ignore_ascii_case(b"removenode")
            || sub.eq_ignore_ascii_case(b"rebalance")
    })
}

/// Runs `CLUSTER ADDNODE`, `REMOVENODE` or `REBALANCE` on this node of `replication`'s cluster.
pub(super) async fn run(replication: &Replication, args: &[Bytes]) -> Outcome {
    let reply = if args[1].eq_ignore_ascii_case(b"addnode") {
        add_node(replication, args).await
    } else if args[1].eq_ignore_ascii_case(b"removenode") {
        remove_node(replication, args).await
    } else {
        rebalance(replication, args).await
    };
    reply.unwrap_or_else(|error| error).into()
}

/// `CLUSTER REBALANCE`: hands the leadership of every shard this node leads over to the
/// shard's preferred leader; answers how many moved. A shard that could not be moved (its
/// preferred node unreachable or behind) is logged and left as it is.
async fn rebalance(replication: &Replication, args: &[Bytes]) -> Result<Value, Value> {
    if args.len() != 2 {
        return Err(wrong_arity("rebalance"));
    }
    let (moved, failures) = replication.rebalance_led(usize::MAX).await;
    for failure in &failures {
        tracing::info!(%failure, "CLUSTER REBALANCE left a shard's leader where it was");
    }
    Ok(Value::Integer(moved as i64))
}

async fn add_node(replication: &Replication, args: &[Bytes]) -> Result<Value, Value> {
    if args.len() != 4 && args.len() != 6 {
        return Err(wrong_arity("addnode"));
    }
    let id = node_id(&args[2])?;
    let peer = std::str::from_utf8(&args[3])
        .map_err(|_| "the address is not text".to_string())
        .and_then(PeerAddr::parse)
        .map_err(|reason| Value::error(format!("ERR invalid node address: {reason}")))?;
    let catch_up = match args.get(4..6) {
        Some([option, millis]) if option.eq_ignore_ascii_case(b"timeout") => {
            let millis = integer(millis)?;
            let millis = u64::try_from(millis)
                .ok()
                .filter(|millis| *millis > 0)
                .ok_or_else(|| {
                    Value::error("ERR TIMEOUT must be a positive number of milliseconds")
                })?;
            Duration::from_millis(millis)
        }
        Some(_) => return Err(Value::error("ERR syntax error")),
        None => DEFAULT_CATCH_UP,
    };
    let addr = NodeAddr {
        client: peer.client(),
        bus: peer.bus(),
    };
    match replication
        .add_node(id, addr, Instant::now() + catch_up)
        .await
    {
        Ok(Added::Voter | Added::AlreadyVoter) => Ok(Value::ok()),
        Err(error) => Err(membership_error(replication, &error)),
    }
}

async fn remove_node(replication: &Replication, args: &[Bytes]) -> Result<Value, Value> {
    if args.len() != 3 {
        return Err(wrong_arity("removenode"));
    }
    let id = node_id(&args[2])?;
    replication
        .remove_node(id)
        .await
        .map(|()| Value::ok())
        .map_err(|error| membership_error(replication, &error))
}

fn node_id(arg: &[u8]) -> Result<u64, Value> {
    let id = integer(arg)?;
    u64::try_from(id).map_err(|_| Value::error("ERR a node id is a non-negative integer"))
}

fn wrong_arity(sub: &str) -> Value {
    Value::error(format!(
        "ERR wrong number of arguments for 'cluster|{sub}' command"
    ))
}

/// The error reply; one sent to a follower names the leader, where the command must go.
fn membership_error(replication: &Replication, error: &MembershipError) -> Value {
    match error {
        MembershipError::NotLeader(Some(leader)) => {
            let addr = replication.client_addr(*leader).unwrap_or_default();
            Value::error(format!(
                "ERR this node does not lead the cluster: run the command on node {leader} ({addr})"
            ))
        }
        MembershipError::NotLeader(None) => {
            Value::error("CLUSTERDOWN no node leads the cluster now: try again shortly")
        }
        other => Value::error(format!("ERR {other}")),
    }
}
