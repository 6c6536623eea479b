//! Changing a running cluster's membership: a node lost for good is replaced by a new one
//! (started with `--join`, added with `CLUSTER ADDNODE`, the lost one removed with `CLUSTER
//! REMOVENODE`) while a client keeps writing, and the new node then counts in the quorum; a
//! five-node cluster grows to six, shrinks and replaces a dead node while the `redis` crate's
//! cluster client and redis-py's `RedisCluster` write, seeing no error but brief refusals.

mod cluster_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
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

/// The values of `n` in the stream, as node `id` holds it (none while it cannot answer a read:
/// `TRYAGAIN` while it catches up, `CLUSTERDOWN` before it knows the leader).
fn values_on(cluster: &Cluster, id: u64) -> Vec<u64> {
    let read = cluster
        .replica_conn(id)
        .and_then(|mut conn| conn.xrange_all::<_, redis::streams::StreamRangeReply>(STREAM));
    read.map(|entries| {
        entries
            .ids
            .iter()
            .map(|entry| entry.get::<u64>("n").expect("a value of n"))
            .collect()
    })
    .unwrap_or_default()
}

/// `CLUSTER NODES` on `admin`, and the hosts it lists.
fn listed_hosts(admin: &mut redis::Connection) -> (String, BTreeSet<String>) {
    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(admin).unwrap();
    let hosts = nodes
        .lines()
        .filter_map(|line| line.split(' ').nth(1))
        .map(|addr| addr.split(':').next().unwrap_or_default().to_string())
        .collect();
    (nodes, hosts)
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
    let (nodes, listed) = listed_hosts(&mut admin);
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

/// redis-py's `RedisCluster`, seeded with `seeds`, writing `n=1,2,…` to `stream` until
/// `stop_file` exists; prints the values acknowledged and the errors that reached the
/// application, by class, as JSON. (`None`: python3 with redis-py is not installed.)
fn redis_py_writer(seeds: &[(String, u16)], stream: &str, stop_file: &Path) -> Option<Child> {
    let installed = Command::new("python3")
        .args(["-c", "import redis.cluster"])
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        assert!(
            std::env::var_os("WEIR_REQUIRE_REDIS_PY").is_none(),
            "redis-py is required (pip install redis)"
        );
        eprintln!("redis-py is not installed (pip install redis): the redis crate writes alone");
        return None;
    }
    let seeds: Vec<String> = seeds
        .iter()
        .map(|(ip, port)| format!("ClusterNode({ip:?}, {port})"))
        .collect();
    let script = format!(
        r#"
import json, os, time
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisError
rc = RedisCluster(startup_nodes=[{seeds}], decode_responses=True)
acknowledged, errors, n = [], {{}}, 0
while not os.path.exists({stop:?}):
    n += 1
    try:
        rc.xadd({stream:?}, {{"n": str(n)}})
        acknowledged.append(n)
    except RedisError as error:
        errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
        time.sleep(0.02)
print(json.dumps({{"acknowledged": acknowledged, "errors": errors}}))
"#,
        seeds = seeds.join(", "),
        stop = stop_file.display().to_string(),
    );
    let child = Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    Some(child)
}

/// What the redis-py writer acknowledged, once it stopped; panics on errors other than the
/// brief refusals of a changing cluster.
fn redis_py_result(child: Child) -> Vec<u64> {
    let output = child.wait_with_output().expect("the redis-py writer");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "redis-py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).expect("the writer's JSON");
    let errors = result["errors"].as_object().expect("errors");
    for (class, count) in errors {
        assert!(
            ["TryAgainError", "ClusterDownError"].contains(&class.as_str()),
            "redis-py saw {count} × {class}: {errors:?}"
        );
    }
    result["acknowledged"]
        .as_array()
        .expect("acknowledged")
        .iter()
        .map(|n| n.as_u64().expect("a value"))
        .collect()
}

#[test]
fn five_nodes_grow_shrink_and_heal_while_both_cluster_clients_write() {
    grow_shrink_and_heal(57, 1);
}

/// The same on sixteen shards: each change is made shard by shard, from the first shard's
/// leader, to groups led all over the cluster (the retired and the dead node lead some).
#[test]
fn sixteen_shards_on_five_nodes_grow_shrink_and_heal_while_both_cluster_clients_write() {
    grow_shrink_and_heal(94, 16);
}

/// Five nodes of `shards` shards: a sixth joins, a follower of the first shard is removed, and
/// another dies and is replaced, while the `redis` crate's cluster client and redis-py's write.
fn grow_shrink_and_heal(net: u8, shards: u16) {
    let flags = vec!["--cluster-shards".to_string(), shards.to_string()];
    let mut cluster = Cluster::start_with(net, 5, "always", flags);
    let leader = cluster.leader();
    let scratch = tempfile::tempdir().unwrap();
    let stop_file = scratch.path().join("stop");
    let seeds: Vec<(String, u16)> = cluster
        .nodes
        .iter()
        .map(|node| (node.ip.clone(), cluster.port))
        .collect();
    let python = redis_py_writer(&seeds, "py-ledger", &stop_file);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_writing(cluster.cluster_client(), Arc::clone(&stop));
    let followers: Vec<u64> = (1..=5).filter(|node| *node != leader).collect();
    std::thread::sleep(Duration::from_millis(500));

    // Grow: a sixth node joins and catches up.
    let sixth = cluster.start_joining_node();
    cluster.add_member(sixth);
    std::thread::sleep(Duration::from_millis(300));
    // Shrink: a follower is removed, then shut down.
    let retired = followers[0];
    cluster.remove_member(retired);
    cluster.kill(retired);
    std::thread::sleep(Duration::from_millis(300));
    // Heal: a follower dies, and a new node takes its place.
    let dead = followers[1];
    let successor = cluster.replace(dead);
    std::thread::sleep(Duration::from_millis(500));

    std::fs::write(&stop_file, b"").unwrap();
    stop.store(true, Ordering::SeqCst);
    let acknowledged = writer.join().unwrap();
    assert!(
        acknowledged.len() > 10,
        "too few writes: {}",
        acknowledged.len()
    );
    let python_acknowledged = python.map(redis_py_result);
    let members = [leader, followers[2], followers[3], sixth, successor];
    let mut admin = cluster.conn(leader).unwrap();
    let (nodes, listed) = listed_hosts(&mut admin);
    let expected: BTreeSet<String> = members
        .iter()
        .map(|id| cluster.nodes[(*id - 1) as usize].ip.clone())
        .collect();
    assert_eq!(listed, expected, "{nodes}");
    for node in members {
        eventually(
            &format!("node {node} holding every acknowledged write"),
            || {
                let held: BTreeSet<u64> = values_on(&cluster, node).into_iter().collect();
                acknowledged.iter().all(|n| held.contains(n))
            },
        );
    }
    let on_leader = values_on(&cluster, leader);
    let distinct: BTreeSet<u64> = on_leader.iter().copied().collect();
    assert_eq!(distinct.len(), on_leader.len(), "a value written twice");
    println!(
        "the redis crate's client: {} writes acknowledged; redis-py: {:?}",
        acknowledged.len(),
        python_acknowledged.as_ref().map(Vec::len)
    );
    if let Some(python_acknowledged) = python_acknowledged {
        assert!(
            python_acknowledged.len() > 10,
            "redis-py wrote {}",
            python_acknowledged.len()
        );
        let mut conn = cluster.replica_conn(leader).unwrap();
        let entries: redis::streams::StreamRangeReply = conn.xrange_all("py-ledger").unwrap();
        let held: BTreeSet<u64> = entries
            .ids
            .iter()
            .map(|entry| entry.get::<String>("n").unwrap().parse().unwrap())
            .collect();
        let missing: Vec<&u64> = python_acknowledged
            .iter()
            .filter(|n| !held.contains(n))
            .collect();
        assert!(
            missing.is_empty(),
            "redis-py's acknowledged writes missing: {missing:?}"
        );
    }
}
