//! The replies for three nodes: node 1 leads every slot, nodes 2 and 3 follow it, and node 3
//! does not answer. The expected bytes follow the replies of a real Redis 7.0 cluster of one
//! master and two replicas (`redis-cli -p … CLUSTER …`, RESP2 and `HELLO 3`), with weir's
//! names, epochs, offsets and zero ping and pong times.

use bytes::BytesMut;

use super::super::topology::fixtures::three_nodes;
use super::*;
use crate::server::resp::Protocol;

fn resp2(value: &Value) -> Vec<u8> {
    encoded(value, Protocol::Resp2)
}

fn resp3(value: &Value) -> Vec<u8> {
    encoded(value, Protocol::Resp3)
}

fn encoded(value: &Value, protocol: Protocol) -> Vec<u8> {
    let mut out = BytesMut::new();
    value.encode(protocol, &mut out);
    out.to_vec()
}

/// Shows a mismatch as text rather than as two lists of numbers.
#[track_caller]
fn assert_bytes(actual: &[u8], expected: &[u8]) {
    assert_eq!(
        String::from_utf8_lossy(actual),
        String::from_utf8_lossy(expected)
    );
}

#[test]
fn slots_list_the_leader_then_its_replicas() {
    let view = three_nodes(1, Some(1));
    assert_bytes(
        &resp2(&slots(&view)),
        b"*1\r\n*5\r\n:0\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$40\r\ne16f8cd9aaa1ba0568593ca860e2ad2598ac08de\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:7002\r\n$40\r\n2cab27d06b544d382a2bb9f9fa52a76f7d2d43d6\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:7003\r\n$40\r\ne68db9898157348d5ca43aa0f97abfa51b68af00\r\n*0\r\n",
    );
    assert_bytes(
        &resp3(&slots(&view)),
        b"*1\r\n*5\r\n:0\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$40\r\ne16f8cd9aaa1ba0568593ca860e2ad2598ac08de\r\n%0\r\n*4\r\n$9\r\n127.0.0.1\r\n:7002\r\n$40\r\n2cab27d06b544d382a2bb9f9fa52a76f7d2d43d6\r\n%0\r\n*4\r\n$9\r\n127.0.0.1\r\n:7003\r\n$40\r\ne68db9898157348d5ca43aa0f97abfa51b68af00\r\n%0\r\n",
    );
    assert_bytes(
        &resp2(&slots(&three_nodes(2, Some(1)))),
        &resp2(&slots(&view)),
    );
}

#[test]
fn slots_without_a_leader_are_not_listed() {
    assert_bytes(&resp2(&slots(&three_nodes(2, None))), b"*0\r\n");
}

#[test]
fn slots_leave_out_replicas_with_nothing_applied() {
    let mut view = three_nodes(1, Some(1));
    view.shards[0].applied_index = 0;
    let Value::Array(runs) = slots(&view) else {
        panic!("not an array");
    };
    let Value::Array(run) = &runs[0] else {
        panic!("not an array");
    };
    assert_eq!(run.len(), 3);
}

#[test]
fn shards_hold_the_master_then_its_replicas() {
    let view = three_nodes(1, Some(1));
    assert_bytes(
        &resp2(&shards(&view)),
        b"*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*3\r\n*14\r\n$2\r\nid\r\n$40\r\ne16f8cd9aaa1ba0568593ca860e2ad2598ac08de\r\n$4\r\nport\r\n:7001\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n2cab27d06b544d382a2bb9f9fa52a76f7d2d43d6\r\n$4\r\nport\r\n:7002\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\ne68db9898157348d5ca43aa0f97abfa51b68af00\r\n$4\r\nport\r\n:7003\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n",
    );
    assert_bytes(
        &resp3(&shards(&view)),
        b"*1\r\n%2\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*3\r\n%7\r\n$2\r\nid\r\n$40\r\ne16f8cd9aaa1ba0568593ca860e2ad2598ac08de\r\n$4\r\nport\r\n:7001\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n%7\r\n$2\r\nid\r\n$40\r\n2cab27d06b544d382a2bb9f9fa52a76f7d2d43d6\r\n$4\r\nport\r\n:7002\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n%7\r\n$2\r\nid\r\n$40\r\ne68db9898157348d5ca43aa0f97abfa51b68af00\r\n$4\r\nport\r\n:7003\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n",
    );
}

#[test]
fn a_shard_without_a_leader_has_only_replicas() {
    assert_bytes(
        &resp2(&shards(&three_nodes(2, None))),
        b"*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*3\r\n*14\r\n$2\r\nid\r\n$40\r\ne16f8cd9aaa1ba0568593ca860e2ad2598ac08de\r\n$4\r\nport\r\n:7001\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n2cab27d06b544d382a2bb9f9fa52a76f7d2d43d6\r\n$4\r\nport\r\n:7002\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\ne68db9898157348d5ca43aa0f97abfa51b68af00\r\n$4\r\nport\r\n:7003\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n",
    );
}

#[test]
fn nodes_flag_myself_the_master_and_the_unreachable() {
    let leader = three_nodes(1, Some(1));
    assert_bytes(
        &resp2(&nodes(&leader)),
        b"$361\r\ne16f8cd9aaa1ba0568593ca860e2ad2598ac08de 127.0.0.1:7001@17001 myself,master - 0 0 5 connected 0-16383\n2cab27d06b544d382a2bb9f9fa52a76f7d2d43d6 127.0.0.1:7002@17002 slave e16f8cd9aaa1ba0568593ca860e2ad2598ac08de 0 0 5 connected\ne68db9898157348d5ca43aa0f97abfa51b68af00 127.0.0.1:7003@17003 slave,fail? e16f8cd9aaa1ba0568593ca860e2ad2598ac08de 0 0 5 disconnected\n\r\n",
    );
    assert_bytes(
        &resp3(&nodes(&leader)),
        b"=365\r\ntxt:e16f8cd9aaa1ba0568593ca860e2ad2598ac08de 127.0.0.1:7001@17001 myself,master - 0 0 5 connected 0-16383\n2cab27d06b544d382a2bb9f9fa52a76f7d2d43d6 127.0.0.1:7002@17002 slave e16f8cd9aaa1ba0568593ca860e2ad2598ac08de 0 0 5 connected\ne68db9898157348d5ca43aa0f97abfa51b68af00 127.0.0.1:7003@17003 slave,fail? e16f8cd9aaa1ba0568593ca860e2ad2598ac08de 0 0 5 disconnected\n\r\n",
    );
    assert_bytes(
        &resp2(&nodes(&three_nodes(2, Some(1)))),
        b"$361\r\ne16f8cd9aaa1ba0568593ca860e2ad2598ac08de 127.0.0.1:7001@17001 master - 0 0 5 connected 0-16383\n2cab27d06b544d382a2bb9f9fa52a76f7d2d43d6 127.0.0.1:7002@17002 myself,slave e16f8cd9aaa1ba0568593ca860e2ad2598ac08de 0 0 5 connected\ne68db9898157348d5ca43aa0f97abfa51b68af00 127.0.0.1:7003@17003 slave,fail? e16f8cd9aaa1ba0568593ca860e2ad2598ac08de 0 0 5 disconnected\n\r\n",
    );
}

#[test]
fn nodes_without_a_leader_are_replicas_of_no_master() {
    assert_bytes(
        &resp2(&nodes(&three_nodes(2, None))),
        b"$274\r\ne16f8cd9aaa1ba0568593ca860e2ad2598ac08de 127.0.0.1:7001@17001 slave - 0 0 5 connected\n2cab27d06b544d382a2bb9f9fa52a76f7d2d43d6 127.0.0.1:7002@17002 myself,slave - 0 0 5 connected\ne68db9898157348d5ca43aa0f97abfa51b68af00 127.0.0.1:7003@17003 slave,fail? - 0 0 5 disconnected\n\r\n",
    );
}

#[test]
fn nodes_list_single_slots_and_ranges() {
    let mut view = three_nodes(1, Some(1));
    view.shards[0].slots = vec![(0, 0), (2, 16383)];
    let Value::Verbatim { text, .. } = nodes(&view) else {
        panic!("not verbatim");
    };
    let first = String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(str::to_owned);
    assert!(first.is_some_and(|line| line.ends_with(" connected 0 2-16383")));
}

#[test]
fn info_reports_the_state_of_the_slots() {
    let leader = three_nodes(1, Some(1));
    assert_bytes(
        &resp2(&info(&leader)),
        b"$312\r\ncluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:3\r\ncluster_size:1\r\ncluster_current_epoch:5\r\ncluster_my_epoch:5\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n\r\n",
    );
    assert_bytes(
        &resp3(&info(&leader)),
        b"=316\r\ntxt:cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:3\r\ncluster_size:1\r\ncluster_current_epoch:5\r\ncluster_my_epoch:5\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n\r\n",
    );
    assert_bytes(
        &resp2(&info(&three_nodes(2, None))),
        b"$306\r\ncluster_state:fail\r\ncluster_slots_assigned:0\r\ncluster_slots_ok:0\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:3\r\ncluster_size:0\r\ncluster_current_epoch:5\r\ncluster_my_epoch:5\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n\r\n",
    );
}

#[test]
fn info_counts_the_slots_of_an_unreachable_leader_as_pfail() {
    let mut follower = three_nodes(2, Some(1));
    follower.nodes[0].connected = false;
    assert_bytes(
        &resp2(&info(&follower)),
        b"$312\r\ncluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:0\r\ncluster_slots_pfail:16384\r\ncluster_slots_fail:0\r\ncluster_known_nodes:3\r\ncluster_size:1\r\ncluster_current_epoch:5\r\ncluster_my_epoch:5\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n\r\n",
    );
}

#[test]
fn replicas_are_the_nodes_lines_of_a_master() {
    let view = three_nodes(1, Some(1));
    let leader = node_name(1);
    assert_bytes(
        &resp2(&replicas(&view, leader.as_bytes())),
        b"*2\r\n$124\r\n2cab27d06b544d382a2bb9f9fa52a76f7d2d43d6 127.0.0.1:7002@17002 slave e16f8cd9aaa1ba0568593ca860e2ad2598ac08de 0 0 5 connected\r\n$133\r\ne68db9898157348d5ca43aa0f97abfa51b68af00 127.0.0.1:7003@17003 slave,fail? e16f8cd9aaa1ba0568593ca860e2ad2598ac08de 0 0 5 disconnected\r\n",
    );
    assert_eq!(
        replicas(&view, node_name(2).as_bytes()),
        Value::error("ERR The specified node is not a master")
    );
    assert_eq!(
        replicas(&view, b"nosuch\0tail"),
        Value::error("ERR Unknown node nosuch")
    );
}

#[test]
fn myid_is_the_name_of_this_node() {
    assert_bytes(
        &resp2(&myid(&three_nodes(1, Some(1)))),
        b"$40\r\ne16f8cd9aaa1ba0568593ca860e2ad2598ac08de\r\n",
    );
}

/// Two shards over the same three nodes, led by nodes 1 and 2.
fn two_shards() -> ClusterView {
    let mut view = three_nodes(3, Some(1));
    view.shards[0].slots = vec![(0, 8191)];
    let mut second = view.shards[0].clone();
    second.slots = vec![(8192, 16383)];
    second.leader = Some(2);
    view.shards.push(second);
    view
}

/// The ports of each range's nodes in `CLUSTER SLOTS`, or of each shard's in `CLUSTER SHARDS`.
fn ports(entries: &Value, nodes_at: fn(&[Value]) -> Vec<Value>) -> Vec<Vec<i64>> {
    let Value::Array(entries) = entries else {
        panic!("not an array");
    };
    entries
        .iter()
        .map(|entry| {
            let fields = match entry {
                Value::Array(fields) => fields.clone(),
                Value::Map(pairs) => pairs.iter().map(|(_, value)| value.clone()).collect(),
                other => panic!("not an entry: {other:?}"),
            };
            nodes_at(&fields)
                .iter()
                .map(|node| match node {
                    Value::Array(fields) => match fields[1] {
                        Value::Integer(port) => port,
                        _ => panic!("no port"),
                    },
                    Value::Map(pairs) => match pairs[1].1 {
                        Value::Integer(port) => port,
                        _ => panic!("no port"),
                    },
                    other => panic!("not a node: {other:?}"),
                })
                .collect()
        })
        .collect()
}

#[test]
fn each_shard_lists_its_own_leader_then_its_other_voters() {
    let view = two_shards();
    let in_slots = ports(&slots(&view), |fields| fields[2..].to_vec());
    assert_eq!(
        in_slots,
        vec![vec![7001, 7002, 7003], vec![7002, 7001, 7003]]
    );
    let in_shards = ports(&shards(&view), |fields| match &fields[1] {
        Value::Array(nodes) => nodes.clone(),
        _ => panic!("no nodes"),
    });
    assert_eq!(
        in_shards,
        vec![vec![7001, 7002, 7003], vec![7002, 7001, 7003]]
    );
    let Value::Verbatim { text, .. } = nodes(&view) else {
        panic!("not verbatim");
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains(" master - ") && lines[0].ends_with(" 0-8191"),
        "{text}"
    );
    assert!(
        lines[1].contains(" master - ") && lines[1].ends_with(" 8192-16383"),
        "{text}"
    );
    assert!(lines[2].contains("myself,slave"), "{text}");
}
