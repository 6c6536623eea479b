//! Snapshots of a node's store: once the leader has purged its Raft log below a snapshot, a
//! node added later and a node that was down while the log moved on are sent the leader's
//! store and end up with the same streams, consumer groups and pending entries as the leader.

mod cluster_support;

use cluster_support::{Cluster, eventually, query};
use redis::Commands;

const STREAM: &str = "orders";
const GROUP: &str = "billing";

/// One write per Raft entry (the client waits for each), so that the log grows by `count`.
fn write(cluster: &Cluster, first: u64, count: u64) {
    let mut conn = cluster.cluster_client().get_connection().unwrap();
    for n in first..first + count {
        let _: String = conn.xadd(STREAM, "*", &[("n", n)]).unwrap();
    }
}

/// Delivers `count` entries to `consumer` and acknowledges every other one.
fn consume(cluster: &Cluster, consumer: &str, count: usize) {
    let mut conn = cluster.cluster_client().get_connection().unwrap();
    let options = redis::streams::StreamReadOptions::default()
        .group(GROUP, consumer)
        .count(count);
    let read: redis::streams::StreamReadReply =
        conn.xread_options(&[STREAM], &[">"], &options).unwrap();
    let ids: Vec<String> = read.keys[0]
        .ids
        .iter()
        .step_by(2)
        .map(|entry| entry.id.clone())
        .collect();
    let _: u64 = conn.xack(STREAM, GROUP, &ids).unwrap();
}

/// What node `id` holds: every entry, the group's summary and its pending entries with their
/// consumers and delivery counts.
fn state_on(cluster: &Cluster, id: u64) -> String {
    let Ok(mut conn) = cluster.replica_conn(id) else {
        return format!("node {id} does not answer");
    };
    let entries = query(&mut conn, &["XRANGE", STREAM, "-", "+"]);
    let groups = query(&mut conn, &["XINFO", "GROUPS", STREAM]);
    let pending = query(&mut conn, &["XPENDING", STREAM, GROUP, "-", "+", "10000"]);
    let (Ok(entries), Ok(groups), Ok(pending)) = (entries, groups, pending) else {
        return format!("node {id} cannot answer reads yet");
    };
    let pending: Vec<String> = match pending {
        redis::Value::Array(rows) => rows
            .into_iter()
            .map(|row| match row {
                // The idle time differs from node to node; id, consumer and count do not.
                redis::Value::Array(fields) => {
                    format!("{:?}", [&fields[0], &fields[1], &fields[3]])
                }
                other => format!("{other:?}"),
            })
            .collect(),
        other => vec![format!("{other:?}")],
    };
    format!("{entries:?}\n{groups:?}\n{pending:?}")
}

fn installed_snapshot(cluster: &Cluster, id: u64) -> bool {
    cluster.nodes[(id - 1) as usize]
        .log_text()
        .contains("installed a snapshot of the store")
}

#[test]
fn nodes_behind_a_purged_log_catch_up_from_the_leaders_snapshot() {
    let mut cluster = Cluster::start(68, 3, "always");
    let leader = cluster.leader();
    let mut admin = cluster.conn(leader).unwrap();
    let created = query(
        &mut admin,
        &["XGROUP", "CREATE", STREAM, GROUP, "$", "MKSTREAM"],
    );
    assert_eq!(created, Ok(redis::Value::Okay));
    let down = (1..=3).find(|node| *node != leader).unwrap();
    cluster.kill(down);

    // Far more entries than a snapshot interval (200) plus what is kept below it (200), so
    // that the leader purges entries the stopped follower and a new node never received.
    write(&cluster, 0, 600);
    consume(&cluster, "alice", 300);
    write(&cluster, 600, 400);
    consume(&cluster, "bob", 200);
    let leader_log = cluster.dir(leader).join("raft");
    let data_files = || {
        std::fs::read_dir(&leader_log)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|item| item.file_name().to_string_lossy().ends_with(".data"))
            .count()
    };
    eventually("a snapshot on the leader", || data_files() == 1);

    cluster.restart(down);
    let new = cluster.start_joining_node();
    let added = cluster.add_node(&mut admin, new);
    assert_eq!(added, Ok(redis::Value::Okay), "{added:?}");

    write(&cluster, 1000, 10);
    let expected = state_on(&cluster, leader);
    assert!(
        expected.contains("alice") && expected.contains("bob"),
        "{expected}"
    );
    for node in [down, new] {
        eventually(
            &format!("node {node} holding what the leader holds"),
            || state_on(&cluster, node) == expected,
        );
        assert!(
            installed_snapshot(&cluster, node),
            "node {node} caught up without a snapshot: the leader's log was not purged"
        );
    }
    assert!(!installed_snapshot(&cluster, leader));

    // The installed store survives a restart of its node, and the node takes part in writes.
    cluster.kill(new);
    cluster.restart(new);
    write(&cluster, 1010, 5);
    let expected = state_on(&cluster, leader);
    eventually("the restarted node holding what the leader holds", || {
        state_on(&cluster, new) == expected
    });
}
