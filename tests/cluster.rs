//! A replicated cluster of queue-server processes on loopback, driven by Redis Cluster clients:
//! the `redis` crate's cluster client and redis-py's `RedisCluster` route commands unchanged,
//! and acknowledged writes survive every fault the harness injects (see `cluster_faults.rs`).

mod cluster_support;

use std::process::Command;
use std::time::{Duration, Instant};

use cluster_support::{Cluster, eventually};
use redis::Commands;

#[test]
fn the_redis_crate_cluster_client_routes_writes_and_reads() {
    let cluster = Cluster::start(61, 3, "always");
    let leader = cluster.leader();
    let mut conn = cluster.cluster_client().get_connection().unwrap();
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "orders", "workers", "0", "MKSTREAM"])
        .query(&mut conn)
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..20 {
        let id: String = conn.xadd("orders", "*", &[("n", n)]).unwrap();
        ids.push(id);
    }
    let len: u64 = conn.xlen("orders").unwrap();
    assert_eq!(len, 20);
    let read: redis::streams::StreamReadReply = conn
        .xread_options(
            &["orders"],
            &[">"],
            &redis::streams::StreamReadOptions::default()
                .group("workers", "alice")
                .count(5),
        )
        .unwrap();
    let delivered: Vec<String> = read.keys[0]
        .ids
        .iter()
        .map(|entry| entry.id.clone())
        .collect();
    assert_eq!(delivered, ids[..5]);
    let acked: u64 = conn.xack("orders", "workers", &delivered[..3]).unwrap();
    assert_eq!(acked, 3);
    // Every node applies the same commands: each holds the entries and the group's state.
    for node in 1..=3 {
        let mut replica = cluster.replica_conn(node).unwrap();
        eventually(&format!("node {node} applying every write"), || {
            let pending: redis::streams::StreamPendingReply =
                replica.xpending("orders", "workers").unwrap();
            replica.xlen::<_, u64>("orders").unwrap() == 20 && pending.count() == 2
        });
    }
    // A write sent to a follower is redirected to the leader.
    let follower = (1..=3).find(|node| *node != leader).unwrap();
    let mut direct = cluster.conn(follower).unwrap();
    let refused = direct.xadd::<_, _, _, _, String>("orders", "*", &[("n", 99)]);
    let error = refused.unwrap_err();
    assert_eq!(error.code(), Some("MOVED"), "{error}");
}

#[test]
fn a_follower_serves_reads_after_readonly_and_refuses_writes() {
    let cluster = Cluster::start(62, 3, "always");
    let leader = cluster.leader();
    let mut conn = cluster.cluster_client().get_connection().unwrap();
    let _: String = conn.xadd("{t}a", "*", &[("f", "v")]).unwrap();
    let follower = (1..=3).find(|node| *node != leader).unwrap();
    let mut replica = cluster.replica_conn(follower).unwrap();
    // A follower's read is linearizable: it waits until the follower has applied what the
    // leader acknowledged before the read, so it sees each write as soon as it is answered.
    for written in 2..=50 {
        let _: String = conn.xadd("{t}a", "*", &[("f", "v")]).unwrap();
        let seen: u64 = replica.xlen("{t}a").unwrap();
        assert_eq!(
            seen, written,
            "a read on the follower missed an acknowledged write"
        );
    }
    let write = replica.xadd::<_, _, _, _, String>("{t}a", "*", &[("f", "v")]);
    assert_eq!(write.unwrap_err().code(), Some("MOVED"));
    // (The cluster client splits a multi-key DEL by slot itself; a plain connection does not.)
    let mut direct = cluster.conn(leader).unwrap();
    let cross = redis::cmd("DEL")
        .arg("a")
        .arg("b")
        .query::<u64>(&mut direct);
    assert_eq!(cross.unwrap_err().code(), Some("CROSSSLOT"));
    let same_slot = redis::cmd("DEL")
        .arg("{t}a")
        .arg("{t}b")
        .query::<u64>(&mut direct);
    assert_eq!(same_slot.unwrap(), 1);
}

#[test]
fn a_new_leader_takes_writes_after_the_leader_is_killed() {
    let mut cluster = Cluster::start(63, 3, "always");
    let leader = cluster.leader();
    let client = cluster.cluster_client();
    let mut conn = client.get_connection().unwrap();
    let before: String = conn.xadd("jobs", "*", &[("n", 1)]).unwrap();
    cluster.kill(leader);
    let killed = Instant::now();
    // A new connection per attempt: it reads the slots afresh from a node that answers.
    let after: String = loop {
        let attempt = client
            .get_connection()
            .and_then(|mut conn| conn.xadd("jobs", "*", &[("n", 2)]));
        match attempt {
            Ok(id) => break id,
            Err(error) => {
                assert!(
                    killed.elapsed() < Duration::from_secs(20),
                    "no failover: {error}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let mut conn = client.get_connection().unwrap();
    println!(
        "first acknowledged write {:?} after the kill",
        killed.elapsed()
    );
    assert_ne!(cluster.leader(), leader);
    let entries: redis::streams::StreamRangeReply = conn.xrange_all("jobs").unwrap();
    let ids: Vec<String> = entries.ids.into_iter().map(|entry| entry.id).collect();
    assert_eq!(ids, [before, after]);
    cluster.restart(leader);
    let mut rejoined = cluster.replica_conn(leader).unwrap();
    eventually("the old leader catching up", || {
        rejoined.xlen::<_, u64>("jobs").is_ok_and(|len| len == 2)
    });
}

#[test]
fn a_blocked_group_read_is_answered_by_a_later_write_or_times_out() {
    let cluster = Cluster::start(66, 3, "always");
    let leader = cluster.leader();
    let mut conn = cluster.conn(leader).unwrap();
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "{b}jobs", "g", "$", "MKSTREAM"])
        .query(&mut conn)
        .unwrap();
    let read = |block: &str| {
        redis::cmd("XREADGROUP")
            .arg(&["GROUP", "g", "c", "BLOCK", block, "STREAMS", "{b}jobs", ">"])
            .to_owned()
    };
    let timed_out: Option<redis::streams::StreamReadReply> = read("200").query(&mut conn).unwrap();
    assert!(timed_out.is_none());
    let mut reader = cluster.conn(leader).unwrap();
    let waiting = std::thread::spawn(move || {
        read("10000")
            .query::<redis::streams::StreamReadReply>(&mut reader)
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    let id: String = conn.xadd("{b}jobs", "*", &[("n", 1)]).unwrap();
    let delivered = waiting.join().unwrap();
    assert_eq!(delivered.keys[0].ids[0].id, id);
    let pending: redis::streams::StreamPendingReply = conn.xpending("{b}jobs", "g").unwrap();
    assert_eq!(pending.count(), 1);

    // Readers blocked on an idle stream add nothing to the log: over 1.5 s, five of them would
    // have proposed their read some thirty times; the leader's tick adds one entry a second.
    let before = applied_index(&mut conn);
    let readers: Vec<_> = (0..5)
        .map(|_| {
            let mut reader = cluster.conn(leader).unwrap();
            std::thread::spawn(move || {
                read("1500")
                    .query::<Option<redis::streams::StreamReadReply>>(&mut reader)
                    .unwrap()
            })
        })
        .collect();
    for reader in readers {
        assert!(reader.join().unwrap().is_none());
    }
    let grown = applied_index(&mut conn) - before;
    assert!(grown <= 4, "idle blocked readers added {grown} log entries");

    // A group read pipelined behind writes of its connection sees them, with or without BLOCK,
    // and an XACK with the next read in one write acknowledges before the read.
    for block in [None, Some("100")] {
        let mut read = redis::cmd("XREADGROUP");
        read.arg(&["GROUP", "g", "c"]);
        if let Some(block) = block {
            read.arg(&["BLOCK", block]);
        }
        read.arg(&["STREAMS", "{b}jobs", ">"]);
        let (added, delivered): (String, redis::streams::StreamReadReply) = redis::pipe()
            .cmd("XADD")
            .arg(&["{b}jobs", "*", "n", "2"])
            .add_command(read.clone())
            .query(&mut conn)
            .unwrap();
        assert_eq!(delivered.keys[0].ids[0].id, added, "BLOCK {block:?}");
        let (acked, next): (u64, Option<redis::streams::StreamReadReply>) = redis::pipe()
            .cmd("XACK")
            .arg(&["{b}jobs", "g", &added])
            .add_command(read)
            .query(&mut conn)
            .unwrap();
        assert_eq!(acked, 1);
        assert!(
            next.as_ref().is_none_or(|next| next.keys.is_empty()),
            "{next:?}"
        );
    }
    let pending: redis::streams::StreamPendingReply = conn.xpending("{b}jobs", "g").unwrap();
    assert_eq!(pending.count(), 1, "the first entry, never acknowledged");
}

/// The last Raft log index the node applied (`master_repl_offset` in `INFO replication`).
fn applied_index(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("replication").query(conn).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("master_repl_offset:"))
        .and_then(|offset| offset.trim().parse().ok())
        .expect("master_repl_offset in INFO replication")
}

#[test]
fn five_nodes_keep_taking_writes_with_two_of_them_gone() {
    let mut cluster = Cluster::start(65, 5, "always");
    let leader = cluster.leader();
    let client = cluster.cluster_client();
    let mut conn = client.get_connection().unwrap();
    let _: String = conn.xadd("five", "*", &[("n", 0)]).unwrap();
    let gone: Vec<u64> = (1..=5).filter(|node| *node != leader).take(2).collect();
    for node in &gone {
        cluster.kill(*node);
    }
    for n in 1..=3 {
        let _: String = client
            .get_connection()
            .and_then(|mut conn| conn.xadd("five", "*", &[("n", n)]))
            .unwrap();
    }
    for node in gone {
        cluster.restart(node);
        let mut rejoined = cluster.replica_conn(node).unwrap();
        eventually(&format!("node {node} catching up"), || {
            rejoined.xlen::<_, u64>("five").is_ok_and(|len| len == 4)
        });
    }
}

/// redis-py's `RedisCluster`: needs python3 with the `redis` package; `WEIR_REQUIRE_REDIS_PY=1`
/// (as `.ci/run` sets after installing it) makes its absence a failure.
#[test]
fn redis_py_cluster_client_routes_commands() {
    let has_redis_py = Command::new("python3")
        .args(["-c", "import redis.cluster"])
        .status()
        .is_ok_and(|status| status.success());
    if !has_redis_py {
        assert!(
            std::env::var_os("WEIR_REQUIRE_REDIS_PY").is_none(),
            "redis-py is required (pip install redis)"
        );
        eprintln!("skipped: python3 with redis-py is not installed (pip install redis)");
        return;
    }
    let cluster = Cluster::start(64, 3, "always");
    cluster.leader();
    let node = &cluster.nodes[1];
    let script = format!(
        r#"
from redis.cluster import RedisCluster
rc = RedisCluster(host="{ip}", port={port}, decode_responses=True)
assert rc.xgroup_create("events", "readers", id="0", mkstream=True)
ids = [rc.xadd("events", {{"n": str(n)}}) for n in range(10)]
assert rc.xlen("events") == 10
got = rc.xreadgroup("readers", "bob", {{"events": ">"}}, count=4)
seen = [entry_id for entry_id, _ in got[0][1]]
assert seen == ids[:4], (seen, ids)
assert rc.xack("events", "readers", *seen) == 4
assert rc.xpending("events", "readers")["pending"] == 0
slots = rc.cluster_slots()
assert len(slots) == 1, slots
print("ok")
"#,
        ip = node.ip,
        port = cluster.port
    );
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "redis-py failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `XADD … MAXLEN ~ 100` then `XTRIM … MAXLEN ~ 10 LIMIT 30` on `stream`; returns what the
/// XTRIM removed.
fn trim_approximately(conn: &mut redis::cluster::ClusterConnection, stream: &str) -> u64 {
    for n in 0..250 {
        let _: String = redis::cmd("XADD")
            .arg(stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(100)
            .arg("*")
            .arg("n")
            .arg(n)
            .query(conn)
            .unwrap();
    }
    redis::cmd("XTRIM")
        .arg(stream)
        .arg("MAXLEN")
        .arg("~")
        .arg(10)
        .arg("LIMIT")
        .arg(30)
        .query(conn)
        .unwrap()
}

/// The entries of both trimmed streams, as `conn` reads them.
fn both_streams(conn: &mut redis::Connection) -> redis::RedisResult<Vec<redis::Value>> {
    ["{trim}before", "{trim}after"]
        .iter()
        .map(|stream| {
            redis::cmd("XRANGE")
                .arg(stream)
                .arg("-")
                .arg("+")
                .query(conn)
        })
        .collect()
}

#[test]
fn approximate_trims_are_exact_and_the_same_on_every_node() {
    let mut cluster = Cluster::start(60, 3, "always");
    let mut conn = cluster.cluster_client().get_connection().unwrap();
    // A single node keeps whole nodes of 100 entries (150 of the 250); a cluster node trims
    // exactly, as a node restarted in between, whose model of the nodes is rebuilt, does too.
    assert_eq!(trim_approximately(&mut conn, "{trim}before"), 30);
    let follower = (1..=3).find(|node| *node != cluster.leader()).unwrap();
    cluster.restart(follower);
    assert_eq!(trim_approximately(&mut conn, "{trim}after"), 30);
    let leader = cluster.leader();
    let expected = both_streams(&mut cluster.conn(leader).unwrap()).unwrap();
    for stream in &expected {
        let redis::Value::Array(entries) = stream else {
            panic!("{stream:?}");
        };
        assert_eq!(entries.len(), 70);
    }
    for node in 1..=3 {
        let mut replica = cluster.replica_conn(node).unwrap();
        eventually(&format!("node {node} holding the leader's entries"), || {
            both_streams(&mut replica).is_ok_and(|held| held == expected)
        });
    }
}

/// `(error code, message)` of a command that must be refused.
fn refusal(conn: &mut redis::Connection, args: &[&str]) -> String {
    let error = redis::cmd(args[0])
        .arg(&args[1..])
        .query::<redis::Value>(conn)
        .unwrap_err();
    error.code().unwrap_or_default().to_owned()
}

#[test]
fn commands_naming_keys_of_several_slots_are_refused_and_dead_letters_stay_in_their_slot() {
    let cluster = Cluster::start(59, 3, "always");
    let leader = cluster.leader();
    let mut conn = cluster.conn(leader).unwrap();
    let crossing: [&[&str]; 5] = [
        &["XREAD", "STREAMS", "a", "b", "0", "0"],
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "STREAMS",
            "a",
            "b",
            ">",
            ">",
        ],
        // A dead-letter stream is a key of the group's command: it must share the slot.
        &[
            "XGROUP",
            "CREATE",
            "jobs",
            "g",
            "$",
            "MKSTREAM",
            "DEADLETTER",
            "jobs-dead",
        ],
        &[
            "XGROUP",
            "SETPOLICY",
            "jobs",
            "g",
            "MAXDELIVER",
            "1",
            "DEADLETTER",
            "dlq",
        ],
        &[
            "XGROUP",
            "CREATE",
            "jobs",
            "DEADLETTER",
            "$",
            "DEADLETTER",
            "dlq",
        ],
    ];
    for args in crossing {
        assert_eq!(refusal(&mut conn, args), "CROSSSLOT", "{args:?}");
    }
    let len: u64 = conn.exists("jobs").unwrap();
    assert_eq!(len, 0, "a refused XGROUP CREATE MKSTREAM created nothing");
    let _: redis::streams::StreamReadReply = redis::cmd("XREAD")
        .arg(&["STREAMS", "{t}a", "{t}b", "0", "0"])
        .query(&mut conn)
        .unwrap();

    // Dead-lettering in a cluster: the second delivery exceeds MAXDELIVER 1, so the entry
    // moves to the dead-letter stream of the same slot, on every node.
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "{jobs}", "g", "$", "MKSTREAM", "ACKWAIT", "100"])
        .arg(&["MAXDELIVER", "1", "DEADLETTER", "{jobs}dead"])
        .query(&mut conn)
        .unwrap();
    let id: String = conn.xadd("{jobs}", "*", &[("n", 1)]).unwrap();
    let read = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "g", "c", "STREAMS", "{jobs}", ">"])
        .to_owned();
    let first: redis::streams::StreamReadReply = read.query(&mut conn).unwrap();
    assert_eq!(first.keys[0].ids[0].id, id);
    eventually("the entry dead-lettered after its ack wait", || {
        let _: redis::Value = read.query(&mut conn).unwrap();
        conn.xlen::<_, u64>("{jobs}dead").unwrap() == 1
    });
    for node in 1..=3 {
        let mut replica = cluster.replica_conn(node).unwrap();
        eventually(&format!("node {node} holding the dead letter"), || {
            replica
                .xlen::<_, u64>("{jobs}dead")
                .is_ok_and(|len| len == 1)
        });
    }
}

#[test]
fn a_reply_goes_to_the_requesters_own_slot_and_is_acknowledged_after_it() {
    let cluster = Cluster::start(58, 3, "always");
    let mut conn = cluster.cluster_client().get_connection().unwrap();
    let (requests, replies) = ("prices", "replies:client-42");
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", requests, "service", "$", "MKSTREAM"])
        .query(&mut conn)
        .unwrap();
    let fields = [
        ("reply-to", replies),
        ("correlation-id", "1"),
        ("item", "apples"),
    ];
    let request: String = conn.xadd(requests, "*", &fields).unwrap();
    let delivered: redis::streams::StreamReadReply = conn
        .xread_options(
            &[requests],
            &[">"],
            &redis::streams::StreamReadOptions::default()
                .group("service", "responder")
                .count(1),
        )
        .unwrap();
    let entry = &delivered.keys[0].ids[0];
    let reply_to: String = entry.get("reply-to").unwrap();
    // The reply and the acknowledgement are two writes in two slots, in this order: a
    // responder that fails between them answers again; the reply is never lost.
    let _: String = conn
        .xadd(&reply_to, "*", &[("correlation-id", "1"), ("price", "3")])
        .unwrap();
    let acked: u64 = conn.xack(requests, "service", &[&request]).unwrap();
    assert_eq!(acked, 1);
    let answer: redis::streams::StreamReadReply = conn.xread(&[replies], &["0-0"]).unwrap();
    let price: String = answer.keys[0].ids[0].get("price").unwrap();
    assert_eq!(price, "3");
    // Both in one transaction would span two slots: refused, nothing applied.
    let mut leader = cluster.conn(cluster.leader()).unwrap();
    let (_, queued): ((), redis::RedisResult<redis::Value>) = (
        redis::cmd("MULTI").query(&mut leader).unwrap(),
        redis::pipe()
            .cmd("XADD")
            .arg(&[replies, "*", "correlation-id", "2"])
            .cmd("XACK")
            .arg(&[requests, "service", &request])
            .query(&mut leader),
    );
    assert!(queued.is_ok(), "{queued:?}");
    let exec = redis::cmd("EXEC").query::<redis::Value>(&mut leader);
    assert_eq!(exec.unwrap_err().code(), Some("CROSSSLOT"));
    let len: u64 = conn.xlen(replies).unwrap();
    assert_eq!(len, 1);
}

/// The Raft term node `id` is in (`cluster_current_epoch`).
fn term_of(cluster: &Cluster, id: u64) -> u64 {
    let mut conn = cluster.conn(id).unwrap();
    let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("cluster_current_epoch:"))
        .and_then(|term| term.trim().parse().ok())
        .expect("cluster_current_epoch")
}

#[test]
fn a_leader_restarted_at_once_leads_again_only_after_a_new_election() {
    let mut cluster = Cluster::start(56, 3, "always");
    let leader = cluster.leader();
    let mut conn = cluster.cluster_client().get_connection().unwrap();
    let _: String = conn.xadd("{r}s", "*", &[("n", 1)]).unwrap();
    let term = term_of(&cluster, leader);
    // Back before the followers' election timeout: it must not resume leading its old term
    // from its saved state (its commit point may lag what it acknowledged).
    cluster.restart(leader);
    let now = cluster.leader();
    assert!(
        term_of(&cluster, now) > term,
        "node {now} leads in term {term} again, without an election"
    );
    let _: String = conn.xadd("{r}s", "*", &[("n", 2)]).unwrap();
    let len: u64 = conn.xlen("{r}s").unwrap();
    assert_eq!(len, 2);
}
