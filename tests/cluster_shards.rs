//! A cluster whose slots are cut into shards (`--cluster-shards`), each its own Raft group:
//! leaders spread over the nodes, every slot is served by its shard's leader with `-MOVED`
//! sending clients there, a lost node's shards fail over, and a node joins and leaves every
//! shard through the first shard's leader.

#![cfg(feature = "cluster")]

mod cluster_support;

use std::collections::BTreeMap;
use std::process::Command;

use cluster_support::{Cluster, eventually, query};
use redis::Commands;

const SHARDS: usize = 6;

fn sharded(net: u8, nodes: u64) -> Cluster {
    let flags = vec!["--cluster-shards".to_string(), SHARDS.to_string()];
    Cluster::start_with(net, nodes, "always", flags)
}

/// Each slot range's master, as node `id` reports them in `CLUSTER SLOTS`, by first slot; a
/// range without a master is missing.
fn masters(cluster: &Cluster, id: u64) -> BTreeMap<i64, String> {
    let Ok(mut conn) = cluster.conn(id) else {
        return BTreeMap::new();
    };
    let Ok(redis::Value::Array(ranges)) = query(&mut conn, &["CLUSTER", "SLOTS"]) else {
        return BTreeMap::new();
    };
    ranges
        .into_iter()
        .filter_map(|range| match range {
            redis::Value::Array(fields) => match (&fields[0], &fields[2]) {
                (redis::Value::Int(first), redis::Value::Array(master)) => {
                    let ip = match &master[0] {
                        redis::Value::BulkString(ip) => String::from_utf8_lossy(ip).into_owned(),
                        _ => return None,
                    };
                    Some((*first, ip))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The node with this IP address.
fn node_at(cluster: &Cluster, ip: &str) -> u64 {
    let id = ip.rsplit('.').next().and_then(|last| last.parse().ok());
    let id = id.expect("a node's address");
    assert!(id as usize <= cluster.nodes.len(), "{ip} is no node");
    id
}

/// Waits until node `id` shows every shard with a leader; answers each shard's leader.
fn shard_leaders(cluster: &Cluster, id: u64) -> Vec<u64> {
    let mut leaders = Vec::new();
    eventually("every shard has a leader", || {
        let seen = masters(cluster, id);
        leaders = seen.values().map(|ip| node_at(cluster, ip)).collect();
        seen.len() == SHARDS
    });
    leaders
}

/// Waits until each shard is led by its preferred leader (the voters in id order, shard `k`
/// the `k mod n`-th), as the nodes rebalance the leaders a few seconds after they start;
/// answers each shard's leader.
fn spread_leaders(cluster: &Cluster) -> Vec<u64> {
    let voters = cluster.nodes.len() as u64;
    let preferred: Vec<u64> = (0..SHARDS as u64).map(|shard| shard % voters + 1).collect();
    eventually("each shard led by its preferred leader", || {
        shard_leaders(cluster, 1) == preferred
    });
    preferred
}

/// The members each shard lists in `CLUSTER SHARDS` on node `id`, by shard.
fn shard_members(cluster: &Cluster, id: u64) -> Vec<usize> {
    let mut conn = cluster.conn(id).expect("connect");
    let Ok(redis::Value::Array(shards)) = query(&mut conn, &["CLUSTER", "SHARDS"]) else {
        return Vec::new();
    };
    shards
        .into_iter()
        .map(|shard| match shard {
            redis::Value::Array(fields) => match fields.get(3) {
                Some(redis::Value::Array(nodes)) => nodes.len(),
                _ => 0,
            },
            _ => 0,
        })
        .collect()
}

/// Writes entry `round + 1`-1 to stream `key` through the cluster client, reconnecting and
/// sending it again while nodes fail over (a connection refused, `CLUSTERDOWN`); an entry that
/// an attempt already wrote makes the next one fail on its ID, which counts as written.
fn write(
    client: &redis::cluster::ClusterClient,
    conn: &mut Option<redis::cluster::ClusterConnection>,
    key: &str,
    round: u64,
) {
    let id = format!("{}-1", round + 1);
    for _ in 0..200 {
        let live = match conn.take() {
            Some(live) => Ok(live),
            None => client.get_connection(),
        };
        let written = live.and_then(|mut live| {
            let sent = live.xadd::<_, _, _, _, String>(key, &id, &[("round", round)]);
            sent.map(|_| live)
        });
        match written {
            Ok(live) => {
                *conn = Some(live);
                return;
            }
            Err(error) if error.to_string().contains("equal or smaller") => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    panic!("{key} {id} was not written within 10 s");
}

fn dbsize(cluster: &Cluster, id: u64) -> i64 {
    cluster
        .conn(id)
        .and_then(|mut conn| redis::cmd("DBSIZE").query(&mut conn))
        .unwrap_or(-1)
}

#[test]
fn shards_spread_their_leaders_serve_their_slots_and_fail_over() {
    let mut cluster = sharded(91, 3);
    let leaders = spread_leaders(&cluster);
    for shard in 0..SHARDS {
        assert!(
            cluster
                .dir(1)
                .join("shards")
                .join(shard.to_string())
                .is_dir()
        );
    }

    let client = cluster.cluster_client();
    let mut conn = None;
    let streams = 120;
    for round in 0..2 {
        for stream in 0..streams {
            write(&client, &mut conn, &format!("s{stream}"), round);
        }
    }
    let mut reader = client.get_connection().expect("cluster connection");
    for stream in 0..streams {
        let len: usize = reader.xlen(format!("s{stream}")).expect("XLEN");
        assert_eq!(len, 2, "stream s{stream}");
    }
    for id in 1..=3 {
        eventually("every node holds every shard", || {
            dbsize(&cluster, id) == streams
        });
    }

    // A write sent to a node that does not lead the key's shard is sent to its leader.
    let leader_of_shard0 = leaders[0];
    let other = (1..=3)
        .find(|id| *id != leader_of_shard0)
        .expect("another node");
    let mut plain = cluster.conn(other).expect("connect");
    let key_in_shard0 = "k2"; // slot 449: the first shard's.
    let sent = redis::cmd("XADD")
        .arg(key_in_shard0)
        .arg("*")
        .arg("f")
        .arg("v")
        .query::<String>(&mut plain);
    let refused = sent
        .expect_err("only the shard's leader writes")
        .to_string();
    assert!(
        refused.to_lowercase().contains("moved") && refused.contains("449"),
        "{refused}"
    );

    // Losing a node: its shards elect new leaders and the client goes on.
    cluster.kill(1);
    eventually("shards node 1 led are led elsewhere", || {
        let seen = masters(&cluster, 2);
        seen.len() == SHARDS && seen.values().all(|ip| node_at(&cluster, ip) != 1)
    });
    for stream in 0..streams {
        write(&client, &mut conn, &format!("s{stream}"), 2);
    }
    cluster.restart(1);
    let mut reader = client.get_connection().expect("cluster connection");
    for stream in 0..streams {
        let len: usize = reader.xlen(format!("s{stream}")).expect("XLEN");
        assert_eq!(len, 3, "stream s{stream}");
    }
    drop(reader);
    eventually("the restarted node catches up on every shard", || {
        dbsize(&cluster, 1) == streams
    });

    // The restarted node leads nothing until the others hand its shards back.
    let mut moved = 0;
    for id in 1..=3 {
        let mut conn = cluster.conn(id).expect("connect");
        moved += redis::cmd("CLUSTER")
            .arg("REBALANCE")
            .query::<i64>(&mut conn)
            .expect("CLUSTER REBALANCE");
    }
    assert!(moved >= 1, "no shard was handed back to node 1");
    eventually("every shard led by its preferred leader again", || {
        shard_leaders(&cluster, 2) == leaders
    });
    for stream in 0..streams {
        write(&client, &mut conn, &format!("s{stream}"), 3);
    }

    // FLUSHALL on every master, as cluster clients send it, empties every shard.
    for id in 1..=3 {
        let mut conn = cluster.conn(id).expect("connect");
        let flushed = redis::cmd("FLUSHALL").query::<String>(&mut conn);
        assert!(
            flushed.as_deref() == Ok("OK")
                || flushed
                    .as_ref()
                    .is_err_and(|e| e.to_string().contains("read only")),
            "{flushed:?}"
        );
    }
    for id in 1..=3 {
        eventually("FLUSHALL emptied every shard", || dbsize(&cluster, id) == 0);
    }
}

#[test]
fn a_node_joins_and_leaves_every_shard_and_a_directory_keeps_its_shard_count() {
    let mut cluster = sharded(92, 3);
    let leaders = shard_leaders(&cluster, 1);
    let client = cluster.cluster_client();
    let mut conn = client.get_connection().expect("cluster connection");
    for stream in 0..30 {
        let _: String = conn
            .xadd(format!("j{stream}"), "*", &[("f", "v")])
            .expect("XADD");
    }

    let new = cluster.start_joining_node();
    let mut admin = cluster.conn(leaders[0]).expect("connect");
    let added = cluster.add_node(&mut admin, new);
    assert!(matches!(added, Ok(redis::Value::Okay)), "{added:?}");
    // The new node is a voter of every shard once ADDNODE answers.
    assert_eq!(shard_members(&cluster, leaders[0]), vec![4; SHARDS]);
    eventually("the new node is a member of every shard", || {
        shard_members(&cluster, 1) == vec![4; SHARDS]
    });
    eventually("the new node holds every shard's data", || {
        dbsize(&cluster, new) == 30
    });

    // CLUSTER ADDNODE runs on the first shard's leader; another node names it.
    if let Some(other) = (1..=3).find(|id| *id != leaders[0]) {
        let mut elsewhere = cluster.conn(other).expect("connect");
        let refused = redis::cmd("CLUSTER")
            .arg("REMOVENODE")
            .arg(new)
            .query::<String>(&mut elsewhere)
            .expect_err("only the first shard's leader removes a node");
        assert!(refused.to_string().contains("does not lead"), "{refused}");
    }
    let leader0 = shard_leaders(&cluster, 1)[0];
    let mut admin = cluster.conn(leader0).expect("connect");
    let removed = query(&mut admin, &["CLUSTER", "REMOVENODE", &new.to_string()]);
    assert!(matches!(removed, Ok(redis::Value::Okay)), "{removed:?}");
    eventually("the removed node left every shard", || {
        shard_members(&cluster, 1) == vec![3; SHARDS]
    });
    let len: usize = conn.xlen("j7").expect("XLEN after the change");
    assert_eq!(len, 1);

    // A data directory made for six shards refuses another count.
    cluster.kill(3);
    let output = Command::new(env!("CARGO_BIN_EXE_queue-server"))
        .args(["--dir", cluster.dir(3).to_str().expect("UTF-8 path")])
        .args(["--bind", "127.0.92.3", "--port", "0"])
        .args(["--cluster-port", &cluster.bus_port.to_string()])
        .args([
            "--join",
            "--node-id",
            "3",
            "--cluster-secret",
            "0123456789abcdef",
        ])
        .args(["--cluster-shards", "4"])
        .output()
        .expect("run queue-server");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("--cluster-shards 6"), "{said}");
}
