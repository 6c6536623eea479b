//! `CLUSTER` and the connection's cluster modes (`READONLY`, `READWRITE`), answered from the
//! node's cluster view. A server that runs as a single node answers as a Redis 7.0 server
//! without cluster support does.

use bytes::Bytes;

use super::describe::{About, Group};
use super::parse::integer;
use super::subcommands::{Subcommand, dispatch, help};
use super::{CommandSpec, Ctx, Outcome, containers, off_worker, store_error};
use crate::server::cluster_routing::{SLOTS, key_slot, replies, shard_of_slot};
use crate::server::cluster_view::ClusterView;
use crate::server::keys::key_of;
use crate::server::resp::Value;

pub(super) fn commands() -> Vec<CommandSpec> {
    let mode = |name, handler, summary| {
        CommandSpec::new(name, 1, &["loading", "stale", "fast"], (0, 0, 0), handler).about(About {
            categories: &["@connection"],
            ..About::new(Group::Cluster, "3.0.0", summary)
        })
    };
    vec![
        CommandSpec::new("cluster", -2, &[], (0, 0, 0), cluster).about(containers::CLUSTER),
        mode(
            "readonly",
            readonly,
            "Lets the connection read from a replica.",
        ),
        mode(
            "readwrite",
            readwrite,
            "Sends the connection's reads to the master again.",
        ),
    ]
}

/// `CLUSTER <subcommand> …`. Redis checks the subcommand and its argument count before it
/// looks at whether cluster support is on, so the subcommands of Redis that weir does not
/// serve are known here too: without a cluster they answer as Redis does.
pub(crate) fn cluster(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    const TABLE: &[Subcommand] = &[
        ("addnode", -4, waits_for_cluster),
        ("countkeysinslot", 3, count_keys_in_slot),
        ("getkeysinslot", 4, get_keys_in_slot),
        ("help", 2, cluster_help),
        ("info", 2, info),
        ("keyslot", 3, keyslot),
        ("myid", 2, myid),
        ("nodes", 2, nodes),
        ("rebalance", 2, waits_for_cluster),
        ("removenode", 3, waits_for_cluster),
        ("replicas", 3, replicas),
        ("shards", 2, shards),
        ("slaves", 3, replicas),
        ("slots", 2, slots),
        ("addslots", -3, not_served),
        ("addslotsrange", -4, not_served),
        ("bumpepoch", 2, not_served),
        ("count-failure-reports", 3, not_served),
        ("delslots", -3, not_served),
        ("delslotsrange", -4, not_served),
        ("failover", -2, not_served),
        ("flushslots", 2, not_served),
        ("forget", 3, not_served),
        ("links", 2, not_served),
        ("meet", -4, not_served),
        ("replicate", 3, not_served),
        ("reset", -2, not_served),
        ("saveconfig", 2, not_served),
        ("set-config-epoch", 3, not_served),
        ("setslot", -4, not_served),
    ];
    dispatch(ctx, args, "cluster", TABLE)
}

/// `CLUSTER ADDNODE`, `REMOVENODE` and `REBALANCE` where they cannot wait: inside `MULTI` or a script. (A
/// connection runs them outside, in `membership`.)
fn waits_for_cluster(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    view(ctx)?;
    Err(Value::error(
        "ERR CLUSTER ADDNODE, REMOVENODE and REBALANCE wait for the cluster: they cannot run inside MULTI or a script",
    ))
}

/// Redis's reply to a cluster command on a server that is not part of a cluster.
fn disabled() -> Value {
    Value::err("This instance has cluster support disabled")
}

/// The cluster as this node sees it, or the reply of a server without cluster support.
fn view(ctx: &Ctx<'_>) -> Result<ClusterView, Value> {
    ctx.server.cluster_view().ok_or_else(disabled)
}

fn info(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(replies::info(&view(ctx)?))
}

fn myid(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(replies::myid(&view(ctx)?))
}

fn nodes(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(replies::nodes(&view(ctx)?))
}

fn shards(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(replies::shards(&view(ctx)?))
}

fn slots(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(replies::slots(&view(ctx)?))
}

/// `CLUSTER REPLICAS <node-name>` and its old name, `CLUSTER SLAVES`.
fn replicas(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    Ok(replies::replicas(&view(ctx)?, &args[2]))
}

fn keyslot(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    view(ctx)?;
    Ok(Value::Integer(i64::from(key_slot(&args[2]))))
}

/// A subcommand of Redis that changes slots or membership, which Raft decides in weir.
fn not_served(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    view(ctx)?;
    Err(Value::err(format_args!(
        "unknown subcommand '{}'. Try CLUSTER HELP.",
        String::from_utf8_lossy(&args[1])
    )))
}

/// `CLUSTER COUNTKEYSINSLOT <slot>`, in the connection's database.
fn count_keys_in_slot(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    view(ctx)?;
    let slot = integer(&args[2])?;
    let slot = u16::try_from(slot)
        .ok()
        .filter(|&slot| slot < SLOTS)
        .ok_or_else(|| Value::err("Invalid slot"))?;
    let count = keys_in_slot(ctx, slot, usize::MAX)?.len();
    Ok(Value::Integer(i64::try_from(count).unwrap_or(i64::MAX)))
}

/// `CLUSTER GETKEYSINSLOT <slot> <count>`: up to `count` keys of the slot in the connection's
/// database, in byte order.
fn get_keys_in_slot(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    view(ctx)?;
    let (slot, count) = (integer(&args[2])?, integer(&args[3])?);
    let invalid = || Value::err("Invalid slot or number of keys");
    let slot = u16::try_from(slot)
        .ok()
        .filter(|&slot| slot < SLOTS)
        .ok_or_else(invalid)?;
    let count = usize::try_from(count).map_err(|_| invalid())?;
    let keys = keys_in_slot(ctx, slot, count)?;
    Ok(Value::Array(keys.into_iter().map(Value::Bulk).collect()))
}

/// The first `limit` keys of the connection's database that hash to `slot`. A walk over every
/// key: it leaves its worker thread to the other clients meanwhile.
fn keys_in_slot(ctx: &Ctx<'_>, slot: u16, limit: usize) -> Result<Vec<Bytes>, Value> {
    let shard = shard_of_slot(slot, ctx.server.shard_count() as u16);
    let names = ctx
        .server
        .shard_store(shard)
        .map_err(|error| store_error(&error))?
        .stream_names();
    let db = ctx.client.db;
    Ok(off_worker(|| {
        names
            .iter()
            .filter_map(|name| key_of(db, name))
            .filter(|key| key_slot(key) == slot)
            .take(limit)
            .collect()
    }))
}

/// Redis's texts for the subcommands weir serves, and weir's own.
const CLUSTER_HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ADDNODE <node-number> <ip:port@cport> [TIMEOUT <milliseconds>]",
    "    Add a node, started with --join, to the cluster: a learner until it has",
    "    caught up with the log (or the timeout passes), then a voter.",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MYID",
    "    Return the node id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "REBALANCE",
    "    Hand the leadership of each shard this node leads over to the shard's",
    "    preferred leader; return how many shards moved.",
    "REMOVENODE <node-number>",
    "    Remove a node from the cluster.",
    "REPLICAS <node-id>",
    "    Return <node-id> replicas.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "HELP",
    "    Print this help.",
];

fn cluster_help(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    view(ctx)?;
    Ok(help(CLUSTER_HELP))
}

/// `READONLY`: the connection's reads may be answered by a replica.
fn readonly(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Outcome {
    set_read_only(ctx, true).into()
}

/// `READWRITE`: the connection's reads go to the master again.
fn readwrite(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Outcome {
    set_read_only(ctx, false).into()
}

fn set_read_only(ctx: &mut Ctx<'_>, read_only: bool) -> Value {
    if ctx.server.cluster_view().is_none() {
        return disabled();
    }
    ctx.client.read_only = read_only;
    Value::ok()
}
