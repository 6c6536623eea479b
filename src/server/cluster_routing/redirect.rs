//! The errors that send a Redis Cluster client to another node or ask it to wait, with Redis
//! 7.0's exact texts (clients parse them), and which of them a keyed command gets on this node.

use super::keyslot::key_slot;
use super::topology::every_slot_led;
use crate::server::cluster_view::ClusterView;
use crate::server::resp::Value;

/// `MOVED <slot> <ip>:<port>`: the slot is served at that address; the client updates its map
/// of slots and sends the command there.
pub(crate) fn moved(slot: u16, ip: &str, port: u16) -> Value {
    Value::error(format!("MOVED {slot} {ip}:{port}"))
}

/// The keys of one command are in different slots, which may be on different nodes.
pub(crate) fn crossslot() -> Value {
    Value::error("CROSSSLOT Keys in request don't hash to the same slot")
}

/// Not every slot is served (no leader is known): the client retries later.
pub(crate) fn cluster_down() -> Value {
    Value::error("CLUSTERDOWN The cluster is down")
}

/// The command could not be carried out now but may be later (the node could not replicate
/// it, for `reason`): cluster clients wait a little and send it again.
pub(crate) fn try_again(reason: &str) -> Value {
    Value::error(format!("TRYAGAIN {reason}"))
}

/// The slot all `keys` hash to: `None` without keys, `CROSSSLOT` when they hash to more than
/// one slot.
pub(crate) fn keys_slot<'a>(
    keys: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Option<u16>, Value> {
    let mut slots = keys.into_iter().map(key_slot);
    let Some(first) = slots.next() else {
        return Ok(None);
    };
    if slots.all(|slot| slot == first) {
        Ok(Some(first))
    } else {
        Err(crossslot())
    }
}

/// Why a command on `slot` must not run on this node, as Redis's `getNodeByQuery` decides:
/// `None` when this node leads the slot, or follows its leader and may answer a read
/// (`serves_reads`: the client sent `READONLY` and the command only reads).
/// Otherwise `CLUSTERDOWN` while some slot has no leader (Redis requires every slot to be
/// served), `MOVED` to the leader.
pub(crate) fn redirection(view: &ClusterView, slot: u16, serves_reads: bool) -> Option<Value> {
    let down = Some(cluster_down());
    if !every_slot_led(view) {
        return down;
    }
    let Some((shard, leader)) = view
        .shard_of(slot)
        .and_then(|shard| Some((shard, shard.leader?)))
    else {
        return down;
    };
    if leader == view.myself || (serves_reads && shard.members.contains(&view.myself)) {
        return None;
    }
    Some(match view.node(leader) {
        Some(node) => moved(slot, &node.client_ip, node.client_port),
        None => cluster_down(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::topology::fixtures::three_nodes;
    use super::*;

    fn text(value: Option<Value>) -> Option<String> {
        value.map(|value| match value {
            Value::Error(text) => text,
            other => panic!("not an error: {other:?}"),
        })
    }

    /// Each text as a real Redis 7.0 cluster sends it.
    #[test]
    fn errors_have_redis_texts() {
        assert_eq!(
            text(Some(moved(12182, "127.0.0.1", 7001))).unwrap(),
            "MOVED 12182 127.0.0.1:7001"
        );
        assert_eq!(
            text(Some(crossslot())).unwrap(),
            "CROSSSLOT Keys in request don't hash to the same slot"
        );
        assert_eq!(
            text(Some(cluster_down())).unwrap(),
            "CLUSTERDOWN The cluster is down"
        );
        assert_eq!(
            text(Some(try_again("no quorum; send it again"))).unwrap(),
            "TRYAGAIN no quorum; send it again"
        );
    }

    #[test]
    fn keys_share_a_slot_or_cross_slots() {
        let none: [&[u8]; 0] = [];
        assert_eq!(keys_slot(none), Ok(None));
        assert_eq!(keys_slot([&b"foo"[..]]), Ok(Some(12182)));
        assert_eq!(
            keys_slot([&b"{user1000}.following"[..], b"{user1000}.followers"]),
            Ok(Some(3443))
        );
        assert_eq!(keys_slot([&b"a"[..], b"b"]), Err(crossslot()));
    }

    #[test]
    fn the_leader_serves_and_followers_redirect_writes() {
        let leader = three_nodes(1, Some(1));
        assert_eq!(redirection(&leader, 12182, false), None);
        let follower = three_nodes(2, Some(1));
        assert_eq!(
            text(redirection(&follower, 12182, false)).as_deref(),
            Some("MOVED 12182 127.0.0.1:7001")
        );
        assert_eq!(redirection(&follower, 12182, true), None);
    }

    #[test]
    fn without_a_leader_the_cluster_is_down() {
        let view = three_nodes(2, None);
        assert_eq!(redirection(&view, 0, true), Some(cluster_down()));
        assert_eq!(redirection(&view, 0, false), Some(cluster_down()));
    }

    #[test]
    fn uncovered_slots_take_the_cluster_down() {
        let mut view = three_nodes(1, Some(1));
        view.shards[0].slots = vec![(0, 100)];
        assert_eq!(redirection(&view, 200, false), Some(cluster_down()));
        view.shards[0].slots = vec![(0, 16383)];
        view.shards[0].members = vec![1];
        let follower = ClusterView { myself: 2, ..view };
        assert_eq!(
            text(redirection(&follower, 5, true)).as_deref(),
            Some("MOVED 5 127.0.0.1:7001")
        );
    }
}
