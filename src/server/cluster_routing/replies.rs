//! The replies of `CLUSTER SLOTS`, `SHARDS`, `NODES`, `REPLICAS`, `INFO` and `MYID`, built
//! from a [`ClusterView`] in Redis 7.0's formats (the encoder makes the RESP2 and RESP3 forms).
//!
//! What weir does not track is reported as a Redis node that has just started would: no ping
//! in flight and no pong received (`0 0` in `CLUSTER NODES`), no cluster bus messages counted
//! (`CLUSTER INFO`). The Raft term stands for Redis's epochs, and a shard's replication offset
//! is the last log index this node applied for it, the same for each of its nodes.

use bytes::Bytes;

use super::node_name::node_name;
use super::topology::{
    Role, SlotRun, every_slot_served, reachable, replicas_of, role, runs_of, slot_count, slot_runs,
};
use crate::server::cluster_view::{ClusterView, ViewNode, ViewShard};
use crate::server::resp::Value;

/// `CLUSTER MYID`: this node's name.
pub(crate) fn myid(view: &ClusterView) -> Value {
    Value::bulk(node_name(view.myself))
}

/// `CLUSTER SLOTS`: each shard's slot ranges with its leader as master, then the shard's other
/// voters as replicas that can serve reads (Redis leaves out those with nothing replicated yet),
/// each as `[ip, port, name, {}]` (the map holds the networking details other than the
/// preferred endpoint: weir announces none). A shard without a leader is left out.
pub(crate) fn slots(view: &ClusterView) -> Value {
    let mut entries = Vec::new();
    for shard in &view.shards {
        let Some(master) = shard.leader.and_then(|leader| view.node(leader)) else {
            continue;
        };
        let replicas: Vec<Value> = followers(view, shard)
            .filter(|_| shard.applied_index != 0)
            .map(slots_node)
            .collect();
        for (first, last) in &shard.slots {
            let mut entry = vec![
                Value::Integer(i64::from(*first)),
                Value::Integer(i64::from(*last)),
                slots_node(master),
            ];
            entry.extend(replicas.iter().cloned());
            entries.push(Value::Array(entry));
        }
    }
    Value::Array(entries)
}

/// The voters of `shard` other than its leader, in the view's order.
fn followers<'a>(
    view: &'a ClusterView,
    shard: &'a ViewShard,
) -> impl Iterator<Item = &'a ViewNode> {
    shard
        .members
        .iter()
        .filter(move |id| Some(**id) != shard.leader)
        .filter_map(|id| view.node(*id))
}

fn slots_node(node: &ViewNode) -> Value {
    Value::Array(vec![
        Value::bulk(node.client_ip.clone()),
        Value::Integer(i64::from(node.client_port)),
        Value::bulk(node_name(node.id)),
        Value::Map(Vec::new()),
    ])
}

/// `CLUSTER SHARDS`: each shard with its slots as start, end pairs, then its leader as master
/// and its other voters as replicas (all replicas while it has no leader); then, for each node
/// that is no shard's voter (a learner), a shard of its own without slots, as Redis shows a
/// master without slots.
pub(crate) fn shards(view: &ClusterView) -> Value {
    let served = view.shards.iter().map(|group| {
        let leader = group.leader.and_then(|leader| view.node(leader));
        let nodes = leader
            .map(|node| (node, true))
            .into_iter()
            .chain(followers(view, group).map(|node| (node, false)));
        shard(group.slots.iter().copied(), nodes, group.applied_index)
    });
    let outside = view
        .nodes
        .iter()
        .filter(|node| {
            !view
                .shards
                .iter()
                .any(|group| group.members.contains(&node.id) || group.leader == Some(node.id))
        })
        .map(|node| shard(std::iter::empty(), std::iter::once((node, true)), 0));
    Value::Array(served.chain(outside).collect())
}

fn shard<'a>(
    slots: impl Iterator<Item = (u16, u16)>,
    nodes: impl Iterator<Item = (&'a ViewNode, bool)>,
    offset: u64,
) -> Value {
    let slots = slots
        .flat_map(|(first, last)| [first, last])
        .map(|slot| Value::Integer(i64::from(slot)))
        .collect();
    let nodes = nodes
        .map(|(node, master)| shard_node(node, master, offset))
        .collect();
    Value::Map(vec![
        (Value::bulk("slots"), Value::Array(slots)),
        (Value::bulk("nodes"), Value::Array(nodes)),
    ])
}

fn shard_node(node: &ViewNode, master: bool, offset: u64) -> Value {
    // Redis's health: `fail` once the cluster agrees a node failed, which weir never reports.
    let health = if !master && offset == 0 {
        "loading"
    } else {
        "online"
    };
    let field = |name: &'static str, value: Value| (Value::bulk(name), value);
    Value::Map(vec![
        field("id", Value::bulk(node_name(node.id))),
        field("port", Value::Integer(i64::from(node.client_port))),
        field("ip", Value::bulk(node.client_ip.clone())),
        field("endpoint", Value::bulk(node.client_ip.clone())),
        field(
            "role",
            Value::bulk(if master { "master" } else { "replica" }),
        ),
        field(
            "replication-offset",
            Value::Integer(i64::try_from(offset).unwrap_or(i64::MAX)),
        ),
        field("health", Value::bulk(health)),
    ])
}

/// `CLUSTER NODES`: a line per node, each ending in a line feed, as verbatim text.
pub(crate) fn nodes(view: &ClusterView) -> Value {
    let runs = slot_runs(view);
    let text: String = view
        .nodes
        .iter()
        .map(|node| node_line(view, &runs, node) + "\n")
        .collect();
    verbatim(text)
}

/// `<name> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv> <config-epoch>
/// <link-state> <slot runs…>`.
fn node_line(view: &ClusterView, runs: &[SlotRun], node: &ViewNode) -> String {
    let mut flags = Vec::new();
    if node.id == view.myself {
        flags.push("myself");
    }
    let master = match role(view, node.id) {
        Role::Master => {
            flags.push("master");
            None
        }
        Role::Replica { master } => {
            flags.push("slave");
            master
        }
    };
    let reachable = reachable(view, node);
    if !reachable {
        flags.push("fail?");
    }
    let mut line = format!(
        "{} {}:{}@{} {} {} 0 0 {} {}",
        node_name(node.id),
        node.client_ip,
        node.client_port,
        node.bus_port,
        flags.join(","),
        master.map_or_else(|| "-".to_string(), node_name),
        view.term,
        if reachable {
            "connected"
        } else {
            "disconnected"
        },
    );
    for run in runs_of(runs, node.id) {
        if run.first == run.last {
            line += &format!(" {}", run.first);
        } else {
            line += &format!(" {}-{}", run.first, run.last);
        }
    }
    line
}

/// `CLUSTER REPLICAS <node-name>`: the `CLUSTER NODES` line of each replica of the master
/// called `name`.
pub(crate) fn replicas(view: &ClusterView, name: &[u8]) -> Value {
    let Some(master) = view
        .nodes
        .iter()
        .find(|node| node_name(node.id).as_bytes() == name)
    else {
        return Value::err(format_args!(
            "Unknown node {}",
            String::from_utf8_lossy(c_string(name))
        ));
    };
    if role(view, master.id) != Role::Master {
        return Value::err("The specified node is not a master");
    }
    let runs = slot_runs(view);
    Value::Array(
        replicas_of(view, master.id)
            .into_iter()
            .map(|replica| Value::bulk(node_line(view, &runs, replica)))
            .collect(),
    )
}

/// The bytes before the first NUL: Redis formats the name as a C string.
fn c_string(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// `CLUSTER INFO`: Redis 7.0's fields in its order, each line ending in CRLF, as verbatim text.
pub(crate) fn info(view: &ClusterView) -> Value {
    let runs = slot_runs(view);
    let unreachable = |run: &SlotRun| {
        view.node(run.master)
            .is_some_and(|node| !reachable(view, node))
    };
    let assigned = slot_count(runs.iter().copied());
    let pfail = slot_count(runs.iter().copied().filter(unreachable));
    let mut masters: Vec<u64> = runs.iter().map(|run| run.master).collect();
    masters.sort_unstable();
    masters.dedup();
    let state = if every_slot_served(&runs) {
        "ok"
    } else {
        "fail"
    };
    let fields = [
        ("cluster_state", state.to_string()),
        ("cluster_slots_assigned", assigned.to_string()),
        ("cluster_slots_ok", (assigned - pfail).to_string()),
        ("cluster_slots_pfail", pfail.to_string()),
        ("cluster_slots_fail", "0".into()),
        ("cluster_known_nodes", view.nodes.len().to_string()),
        ("cluster_size", masters.len().to_string()),
        ("cluster_current_epoch", view.term.to_string()),
        ("cluster_my_epoch", view.term.to_string()),
        ("cluster_stats_messages_sent", "0".into()),
        ("cluster_stats_messages_received", "0".into()),
        ("total_cluster_links_buffer_limit_exceeded", "0".into()),
    ];
    verbatim(
        fields
            .iter()
            .map(|(name, value)| format!("{name}:{value}\r\n"))
            .collect(),
    )
}

fn verbatim(text: String) -> Value {
    Value::Verbatim {
        format: *b"txt",
        text: Bytes::from(text),
    }
}

#[cfg(test)]
mod tests;
