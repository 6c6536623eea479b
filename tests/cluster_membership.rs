//! Changing a running cluster's membership: a node lost for good is replaced by a new one
//! (started with `--join`, added with `CLUSTER ADDNODE`, the lost one removed with `CLUSTER
//! REMOVENODE`) while a client keeps writing, and the new node then counts in the quorum.

mod cluster_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use cluster_support::{Cluster, eventually, query};
use redis::Commands;

const STREAM: &str = "ledger";

/// Writes `n=0,1,2,…` until told to stop, each value once (a failed write is not retried, so an
/// unknown outcome never writes a value twice); returns the values acknowledged.
fn keep_writing(
    client: redis::cluster::ClusterClient,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        let mut conn = None;
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let written = conn
                .take()
                .map_or_else(|| client.get_connection(), Ok)
                .and_then(|mut live: redis::cluster::ClusterConnection| {
                    let id = live.xadd::<_, _, _, _, String>(STREAM, "*", &[("n", n)]);
                    id.map(|_| live)
                });
            match written {
                Ok(live) => {
                    acknowledged.push(n);
                    conn = Some(live);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        acknowledged
    })
}

/// The values of `n` in the stream, as node `id` holds it.
fn values_on(cluster: &Cluster, id: u64) -> Vec<u64> {
    let mut conn = cluster.replica_conn(id).unwrap();
    let entries: redis::streams::StreamRangeReply = conn.xrange_all(STREAM).unwrap();
    entries
        .ids
        .iter()
        .map(|entry| entry.get::<u64>("n").expect("a value of n"))
        .collect()
}

fn text(reply: redis::RedisResult<redis::Value>) -> String {
    match reply {
        Ok(value) => format!("{value:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_lost_node_is_replaced_by_a_new_one_while_a_client_writes() {
    let mut cluster = Cluster::start(67, 3, "always");
    let leader = cluster.leader();
    let lost = (1..=3).find(|node| *node != leader).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_writing(cluster.cluster_client(), Arc::clone(&stop));
    std::thread::sleep(Duration::from_millis(300));
    cluster.kill(lost);
    let new = cluster.start_joining_node();
    let mut admin = cluster.conn(leader).unwrap();

    // Before it is added, the new node knows itself alone: a master without slots or address.
    let mut on_new = cluster.conn(new).unwrap();
    let nodes = text(query(&mut on_new, &["CLUSTER", "NODES"]));
    let own_line = format!(
        ":{}@{} myself,master - 0 0 ",
        cluster.port, cluster.bus_port
    );
    assert!(
        nodes.contains(&own_line) && nodes.matches("myself").count() == 1,
        "{nodes}"
    );
    let refused = text(query(&mut on_new, &["XADD", "early", "*", "f", "v"]));
    assert!(refused.contains("CLUSTERDOWN"), "{refused}");

    // Refusals first: a follower names the leader; ids and addresses are never shared.
    let follower = (1..=3)
        .find(|node| *node != leader && *node != lost)
        .unwrap();
    let mut on_follower = cluster.conn(follower).unwrap();
    let refused = text(query(
        &mut on_follower,
        &[
            "CLUSTER",
            "ADDNODE",
            &new.to_string(),
            &cluster.address(new),
        ],
    ));
    assert!(
        refused.contains(&format!("run the command on node {leader}")),
        "{refused}"
    );
    let refused = text(query(
        &mut admin,
        &[
            "CLUSTER",
            "ADDNODE",
            &follower.to_string(),
            &cluster.address(new),
        ],
    ));
    assert!(refused.contains("never reused"), "{refused}");
    let refused = text(query(
        &mut admin,
        &["CLUSTER", "ADDNODE", "99", &cluster.address(follower)],
    ));
    assert!(
        refused.contains(&format!("REMOVENODE {follower}")),
        "{refused}"
    );
    let refused = text(query(&mut admin, &["CLUSTER", "REMOVENODE", "99"]));
    assert!(refused.contains("no node 99"), "{refused}");

    let added = cluster.add_node(&mut admin, new);
    assert_eq!(added, Ok(redis::Value::Okay), "{added:?}");
    let removed = query(&mut admin, &["CLUSTER", "REMOVENODE", &lost.to_string()]);
    assert_eq!(removed, Ok(redis::Value::Okay), "{removed:?}");
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut admin)
        .unwrap();
    let listed: BTreeSet<String> = nodes
        .lines()
        .filter_map(|line| line.split(' ').nth(1))
        .map(|addr| addr.split(':').next().unwrap_or_default().to_string())
        .collect();
    let expected: BTreeSet<String> = [leader, follower, new]
        .iter()
        .map(|id| cluster.nodes[(*id - 1) as usize].ip.clone())
        .collect();
    assert_eq!(listed, expected, "{nodes}");

    // The new node votes: with the old leader gone too, it and the other follower are a
    // majority of the three voters, and elect a leader that takes writes.
    std::thread::sleep(Duration::from_millis(300));
    cluster.kill(leader);
    std::thread::sleep(Duration::from_millis(1_500));
    stop.store(true, Ordering::SeqCst);
    let acknowledged = writer.join().unwrap();
    let client = cluster.cluster_client();
    let mut last_try = 1_000_000u64;
    eventually("a write acknowledged by the new leader", || {
        last_try += 1;
        client
            .get_connection()
            .and_then(|mut conn| conn.xadd::<_, _, _, _, String>(STREAM, "*", &[("n", last_try)]))
            .is_ok()
    });
    assert!(
        acknowledged.len() > 10,
        "too few writes: {}",
        acknowledged.len()
    );
    for node in [follower, new] {
        eventually(
            &format!("node {node} holding every acknowledged write"),
            || {
                let held: BTreeSet<u64> = values_on(&cluster, node).into_iter().collect();
                acknowledged.iter().all(|n| held.contains(n)) && held.contains(&last_try)
            },
        );
    }
    let on_follower = values_on(&cluster, follower);
    assert_eq!(on_follower, values_on(&cluster, new), "the replicas differ");
    let distinct: BTreeSet<u64> = on_follower.iter().copied().collect();
    assert_eq!(distinct.len(), on_follower.len(), "a value written twice");
}
