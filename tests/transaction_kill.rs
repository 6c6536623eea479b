//! MULTI/EXEC across SIGKILL: workers move jobs from `in` to `out`, each with
//! `MULTI; XACK in g <id>; XADD out * src <id>; EXEC`, under `--fsync always`; the server is
//! killed at a random moment, restarted, and every job read so far must show both writes of its
//! EXEC or neither: pending in `g` with no `out` entry, or acknowledged with exactly one.
//! `TRANSACTION_KILL_ROUNDS` runs more rounds (10 by default), `TRANSACTION_KILL_SEED` others.

mod common;
mod rng;

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::Duration;

use common::{Server, entries, items, query, run, text};
use redis::Value;
use rng::Rng;

const WORKERS: usize = 3;
const JOBS_PER_ROUND: usize = 400;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Takes jobs one at a time until the server goes away or runs out of them; returns how many
/// EXECs returned.
fn work(url: &str, consumer: &str) -> usize {
    let Ok(client) = redis::Client::open(url) else {
        return 0;
    };
    let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(5)) else {
        return 0;
    };
    let mut done = 0;
    loop {
        let read: redis::RedisResult<Value> = redis::cmd("XREADGROUP")
            .arg(&["GROUP", "g", consumer, "COUNT", "1", "STREAMS", "in", ">"])
            .query(&mut con);
        let Ok(reply) = read else { return done };
        let Some(id) = first_id(&reply) else {
            return done;
        };
        let exec: redis::RedisResult<Value> = redis::pipe()
            .atomic()
            .cmd("XACK")
            .arg(&["in", "g", &id])
            .cmd("XADD")
            .arg(&["out", "*", "src", &id])
            .query(&mut con);
        if exec.is_err() {
            return done;
        }
        done += 1;
    }
}

/// The ID of the one entry an XREADGROUP reply holds, if any.
fn first_id(reply: &Value) -> Option<String> {
    let Value::Array(streams) = reply else {
        return None;
    };
    let stream = items(streams.first()?);
    let entry = items(stream.get(1)?).first()?;
    Some(text(&items(entry)[0]))
}

/// Checks the invariant on a freshly restarted server; returns how many jobs were moved.
fn check_all_or_nothing(server: &Server, round: usize, seed: u64) -> usize {
    let mut con = server.conn();
    let jobs: Vec<String> = entries(&run(&mut con, &["XRANGE", "in", "-", "+"]))
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let pending: BTreeSet<String> = items(&run(
        &mut con,
        &["XPENDING", "in", "g", "-", "+", "1000000"],
    ))
    .iter()
    .map(|row| text(&items(row)[0]))
    .collect();
    let mut moved: BTreeMap<String, usize> = BTreeMap::new();
    for (_, fields) in entries(&run(&mut con, &["XRANGE", "out", "-", "+"])) {
        let src = fields
            .iter()
            .find(|(name, _)| name == "src")
            .map(|(_, value)| value.clone())
            .expect("every out entry names its job");
        *moved.entry(src).or_default() += 1;
    }
    let groups = items(&run(&mut con, &["XINFO", "GROUPS", "in"])).to_vec();
    let last_delivered = common::field(&groups[0], "last-delivered-id");
    let last_delivered = text(&last_delivered);
    let context = format!("round {round}, seed {seed}");
    for (src, count) in &moved {
        assert_eq!(*count, 1, "{context}: job {src} was moved {count} times");
        assert!(
            !pending.contains(src),
            "{context}: job {src} is in out but still pending: its XADD survived, its XACK did not"
        );
        assert!(
            jobs.contains(src),
            "{context}: out names a job {src} never added"
        );
    }
    for job in &jobs {
        let delivered = id_parts(job) <= id_parts(&last_delivered);
        let is_pending = pending.contains(job);
        let is_moved = moved.contains_key(job);
        if delivered {
            assert!(
                is_pending != is_moved,
                "{context}: job {job} is {} — its EXEC was cut in half",
                if is_pending {
                    "pending and in out"
                } else {
                    "neither pending nor in out"
                }
            );
        } else {
            assert!(
                !is_pending && !is_moved,
                "{context}: job {job} was never delivered, yet pending {is_pending}, moved {is_moved}"
            );
        }
    }
    moved.len()
}

#[test]
fn a_killed_exec_leaves_all_of_its_writes_or_none() {
    let rounds = env_number("TRANSACTION_KILL_ROUNDS", 10) as usize;
    let seed = env_number("TRANSACTION_KILL_SEED", 0x5eed_7a11) | 1;
    let mut rng = Rng(seed);
    let data = tempfile::tempdir().expect("data directory");
    let args = ["--fsync", "always"];
    let mut server = Server::start_in(data.path(), &args);
    query::<String>(
        &mut server.conn(),
        &["XGROUP", "CREATE", "in", "g", "0", "MKSTREAM"],
    );
    let mut moved = 0;
    for round in 0..rounds {
        let mut con = server.conn();
        let mut fill = redis::pipe();
        for n in 0..JOBS_PER_ROUND {
            fill.cmd("XADD")
                .arg(&["in", "*", "job", &format!("{round}-{n}")])
                .ignore();
        }
        let _: () = fill.query(&mut con).expect("add jobs");
        let url = server.url();
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let url = url.clone();
                thread::spawn(move || work(&url, &format!("w{w}")))
            })
            .collect();
        thread::sleep(Duration::from_millis(100 + rng.below(400)));
        server.kill();
        let execs: usize = workers
            .into_iter()
            .map(|worker| worker.join().expect("worker"))
            .sum();
        server = Server::start_in(data.path(), &args);
        let now_moved = check_all_or_nothing(&server, round, seed);
        assert!(
            now_moved >= moved + execs,
            "round {round}: an acknowledged EXEC was lost"
        );
        moved = now_moved;
    }
    assert!(
        moved > 0,
        "no EXEC ran before the kills: the test proved nothing"
    );
}

fn id_parts(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').expect("an ms-seq ID");
    (ms.parse().expect("ms"), seq.parse().expect("seq"))
}
