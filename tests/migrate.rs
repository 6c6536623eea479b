//! `queue-migrate` end to end: a real `redis-server` filled with a varied stream workload, a
//! real `queue-server`, the binary between them, and the copy checked through both servers
//! with commands of their own (not only the tool's verification).
//!
//! Skipped (with a message) where `redis-server` is not installed, unless
//! `WEIR_REQUIRE_REDIS=1`.

mod common;
mod real_redis;

use std::process::{Command, Output};

use common::{Server, connect, field, int, items, pairs, run, text};
use real_redis::RedisServer;
use redis::Value;

/// Runs `queue-migrate` with `args`.
fn migrate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_queue-migrate"))
        .args(args)
        .output()
        .expect("run queue-migrate")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn exit_code(output: &Output) -> i32 {
    output.status.code().expect("an exit code")
}

/// Runs each command, failing on an error reply.
fn fill(con: &mut redis::Connection, commands: &[&[&str]]) {
    for command in commands {
        if let Value::ServerError(error) = run(con, command) {
            panic!("{command:?}: {error:?}");
        }
    }
}

/// Streams of every kind: long (several pages), with deletions, trimmed under pending
/// entries, with groups at unknown entries-read, consumers without pending entries, delivery
/// counts above one, an empty stream with a group, a stream whose entries are all deleted,
/// binary values and hash-tagged names; and a key that is not a stream.
fn fill_workload(con: &mut redis::Connection) {
    let mut pipe = redis::pipe();
    for n in 1..=2500u64 {
        pipe.cmd("XADD")
            .arg("orders")
            .arg(format!("{}-{}", 1000 + n / 3, n % 3))
            .arg("item")
            .arg(format!("book-{n}"))
            .arg("qty")
            .arg(n % 7);
    }
    pipe.query::<()>(con).expect("fill orders");
    fill(
        con,
        &[
            &["XDEL", "orders", "1001-1", "1500-2", "1833-0"],
            &["XGROUP", "CREATE", "orders", "billing", "0"],
            &["XGROUP", "CREATE", "orders", "audit", "1200-0"],
            &["XGROUP", "CREATE", "orders", "late", "$"],
            &[
                "XREADGROUP",
                "GROUP",
                "billing",
                "w1",
                "COUNT",
                "40",
                "STREAMS",
                "orders",
                ">",
            ],
            &[
                "XREADGROUP",
                "GROUP",
                "billing",
                "w2",
                "COUNT",
                "25",
                "STREAMS",
                "orders",
                ">",
            ],
            &[
                "XREADGROUP",
                "GROUP",
                "billing",
                "w1",
                "STREAMS",
                "orders",
                "0",
            ],
            &[
                "XREADGROUP",
                "GROUP",
                "billing",
                "w1",
                "COUNT",
                "3",
                "STREAMS",
                "orders",
                "0",
            ],
            &[
                "XCLAIM",
                "orders",
                "billing",
                "w3",
                "0",
                "1010-0",
                "1011-2",
                "RETRYCOUNT",
                "9",
            ],
            &["XACK", "orders", "billing", "1005-0", "1006-1", "1012-0"],
            &[
                "XGROUP",
                "CREATECONSUMER",
                "orders",
                "billing",
                "idle-worker",
            ],
            &[
                "XREADGROUP",
                "GROUP",
                "audit",
                "a1",
                "COUNT",
                "5",
                "STREAMS",
                "orders",
                ">",
            ],
            // Deleted after delivery: still pending in Redis.
            &["XDEL", "orders", "1003-0", "1201-0"],
        ],
    );
    fill(
        con,
        &[
            &["XADD", "trimmed", "5-0", "n", "1"],
            &["XADD", "trimmed", "6-0", "n", "2"],
            &["XADD", "trimmed", "7-0", "n", "3"],
            &["XGROUP", "CREATE", "trimmed", "g", "0"],
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "COUNT",
                "2",
                "STREAMS",
                "trimmed",
                ">",
            ],
            &["XADD", "trimmed", "MAXLEN", "2", "8-0", "n", "4"],
            &["XTRIM", "trimmed", "MAXLEN", "1"],
            &["XGROUP", "CREATE", "empty", "waiting", "$", "MKSTREAM"],
            &["XGROUP", "CREATECONSUMER", "empty", "waiting", "nobody-yet"],
            &["XADD", "emptied", "3-1", "a", "1"],
            &["XDEL", "emptied", "3-1"],
            &[
                "XSETID",
                "emptied",
                "9-9",
                "ENTRIESADDED",
                "40",
                "MAXDELETEDID",
                "4-0",
            ],
            &["XADD", "{user:7}:events", "1-1", "kind", "login"],
            &[
                "XADD",
                "{user:7}:audit",
                "1-1",
                "kind",
                "login",
                "from",
                "10.0.0.1",
            ],
            &["XGROUP", "CREATE", "{user:7}:events", "ui", "0"],
            &[
                "XREADGROUP",
                "GROUP",
                "ui",
                "tab-1",
                "STREAMS",
                "{user:7}:events",
                ">",
            ],
            &["SET", "plain", "not a stream"],
        ],
    );
    let mut binary = redis::cmd("XADD");
    binary
        .arg("binary")
        .arg("1-0")
        .arg(&b"f\x00ld"[..])
        .arg(&b"\x00\xff\r\n\x01"[..])
        .arg("empty")
        .arg("");
    binary.query::<String>(con).expect("binary entry");
}

/// What both servers must agree on for one stream, read with plain commands: its entries,
/// counters, groups, consumers and pending lists (delivery times included, idle times not).
fn snapshot(con: &mut redis::Connection, key: &str) -> Vec<(String, Value)> {
    let mut facts = vec![("entries".to_string(), run(con, &["XRANGE", key, "-", "+"]))];
    let info = run(con, &["XINFO", "STREAM", key]);
    for name in [
        "length",
        "last-generated-id",
        "max-deleted-entry-id",
        "entries-added",
        "groups",
        "first-entry",
        "last-entry",
    ] {
        facts.push((name.to_string(), field(&info, name)));
    }
    let full = run(con, &["XINFO", "STREAM", key, "FULL", "COUNT", "0"]);
    for group in items(&field(&full, "groups")) {
        let name = text(&field(group, "name"));
        for fact in ["last-delivered-id", "entries-read", "pel-count", "pending"] {
            facts.push((format!("{name}.{fact}"), field(group, fact)));
        }
        for consumer in items(&field(group, "consumers")) {
            let consumer_name = text(&field(consumer, "name"));
            for fact in ["pel-count", "pending"] {
                facts.push((
                    format!("{name}.{consumer_name}.{fact}"),
                    field(consumer, fact),
                ));
            }
        }
        let summary = run(con, &["XPENDING", key, &name]);
        facts.push((format!("{name}.xpending"), summary));
        let extended = run(con, &["XPENDING", key, &name, "-", "+", "1000"]);
        let without_idle = items(&extended)
            .iter()
            .map(|row| {
                let row = items(row);
                Value::Array(vec![row[0].clone(), row[1].clone(), row[3].clone()])
            })
            .collect();
        facts.push((
            format!("{name}.xpending-extended"),
            Value::Array(without_idle),
        ));
    }
    facts
}

const STREAMS: [&str; 7] = [
    "binary",
    "emptied",
    "empty",
    "orders",
    "trimmed",
    "{user:7}:audit",
    "{user:7}:events",
];

#[test]
fn copies_every_stream_with_its_groups_and_pending_entries() {
    let Some(redis_server) = RedisServer::start_with_password_or_skip(
        "copies_every_stream_with_its_groups_and_pending_entries",
        Some("source-secret"),
    ) else {
        return;
    };
    let mut source = connect(&redis_server.url());
    fill_workload(&mut source);
    let server = Server::start(&["--requirepass", "target-secret"]);
    let output = migrate(&["--from", &redis_server.url(), "--to", &server.url()]);
    assert_eq!(
        exit_code(&output),
        0,
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let log = stderr(&output);
    assert!(log.contains("7 stream(s) selected"), "{log}");
    assert!(log.contains("verified 7 stream(s)"), "{log}");
    assert!(
        !log.contains("source-secret") && !log.contains("target-secret"),
        "{log}"
    );
    // Two entries of `orders` and two of `trimmed` are pending without their entry.
    assert!(
        log.contains("(4 of them without their deleted entry)"),
        "{log}"
    );

    let mut target = server.conn();
    let mut keys: Vec<String> = {
        let value = run(&mut target, &["KEYS", "*"]);
        items(&value).iter().map(text).collect()
    };
    keys.sort();
    assert_eq!(keys, STREAMS);
    for key in STREAMS {
        let expected = snapshot(&mut source, key);
        let found = snapshot(&mut target, key);
        assert_eq!(found, expected, "stream {key}");
    }
    // The pending entries of deleted entries are really there, with their counts.
    let rows = run(&mut target, &["XPENDING", "trimmed", "g", "-", "+", "10"]);
    let ids: Vec<String> = items(&rows)
        .iter()
        .map(|row| text(&items(row)[0]))
        .collect();
    assert_eq!(ids, ["5-0", "6-0"]);
    let claimed = run(&mut target, &["XINFO", "STREAM", "orders", "FULL"]);
    assert!(int(&field(&claimed, "length")) > 2000);
}

#[test]
fn refuses_existing_target_streams_unless_asked_to_replace_them() {
    let Some(redis_server) =
        RedisServer::start_or_skip("refuses_existing_target_streams_unless_asked_to_replace_them")
    else {
        return;
    };
    let mut source = connect(&redis_server.url());
    fill(
        &mut source,
        &[
            &["XADD", "jobs", "1-1", "a", "1"],
            &["XADD", "other", "1-1", "b", "2"],
        ],
    );
    let server = Server::start(&[]);
    let mut target = server.conn();
    fill(&mut target, &[&["XADD", "jobs", "7-7", "old", "entry"]]);

    let refused = migrate(&["--from", &redis_server.url(), "--to", &server.url()]);
    assert_eq!(exit_code(&refused), 2);
    let message = stderr(&refused);
    assert!(
        message.contains("already has 1 of the selected keys (jobs)"),
        "{message}"
    );
    assert!(message.contains("--replace"), "{message}");
    // Nothing was written, not even the stream that did not conflict.
    assert_eq!(int(&run(&mut target, &["EXISTS", "other"])), 0);
    assert_eq!(int(&run(&mut target, &["XLEN", "jobs"])), 1);

    let replaced = migrate(&[
        "--from",
        &redis_server.url(),
        "--to",
        &server.url(),
        "--replace",
    ]);
    assert_eq!(exit_code(&replaced), 0, "{}", stderr(&replaced));
    let entries = run(&mut target, &["XRANGE", "jobs", "-", "+"]);
    assert_eq!(entries, run(&mut source, &["XRANGE", "jobs", "-", "+"]));
}

#[test]
fn verify_only_reports_every_kind_of_difference() {
    let Some(redis_server) =
        RedisServer::start_or_skip("verify_only_reports_every_kind_of_difference")
    else {
        return;
    };
    let mut source = connect(&redis_server.url());
    fill(
        &mut source,
        &[
            &["XADD", "jobs", "1-1", "a", "1"],
            &["XADD", "jobs", "1-2", "a", "2"],
            &["XGROUP", "CREATE", "jobs", "g", "0"],
            &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "jobs", ">"],
        ],
    );
    let server = Server::start(&[]);
    let copied = migrate(&["--from", &redis_server.url(), "--to", &server.url()]);
    assert_eq!(exit_code(&copied), 0, "{}", stderr(&copied));
    let same = migrate(&[
        "--from",
        &redis_server.url(),
        "--to",
        &server.url(),
        "--verify-only",
    ]);
    assert_eq!(exit_code(&same), 0, "{}", stderr(&same));

    let mut target = server.conn();
    fill(
        &mut target,
        &[
            &["XADD", "jobs", "1-3", "a", "3"],
            &["XACK", "jobs", "g", "1-1"],
            &["XGROUP", "CREATE", "jobs", "extra", "0"],
        ],
    );
    let different = migrate(&[
        "--from",
        &redis_server.url(),
        "--to",
        &server.url(),
        "--verify-only",
    ]);
    assert_eq!(exit_code(&different), 1, "{}", stderr(&different));
    let report = stdout(&different);
    for expected in [
        "jobs: the target has entry 1-3 after the source's last",
        "jobs: length is 3, not 2",
        "jobs: last-generated-id is 1-3, not 1-2",
        "jobs: group g: 1-1 is not pending in the target",
        "jobs: group extra is not in the source",
    ] {
        assert!(report.contains(expected), "{expected:?} not in\n{report}");
    }
    assert!(
        stderr(&different).contains("found"),
        "{}",
        stderr(&different)
    );
}

#[test]
fn dry_run_writes_nothing_and_keys_select_streams() {
    let Some(redis_server) =
        RedisServer::start_or_skip("dry_run_writes_nothing_and_keys_select_streams")
    else {
        return;
    };
    let mut source = connect(&redis_server.url());
    fill(
        &mut source,
        &[
            &["XADD", "orders:eu", "1-1", "a", "1"],
            &["XADD", "orders:us", "1-1", "a", "1"],
            &["XADD", "jobs", "1-1", "a", "1"],
            &["XADD", "logs", "1-1", "a", "1"],
            &["SET", "plain", "x"],
        ],
    );
    let server = Server::start(&[]);
    let mut target = server.conn();
    let (from, to) = (redis_server.url(), server.url());

    let dry = migrate(&["--from", &from, "--to", &to, "--dry-run"]);
    assert_eq!(exit_code(&dry), 0, "{}", stderr(&dry));
    assert!(stdout(&dry).contains("orders:eu: 1 entries, last ID 1-1, 0 group(s)"));
    assert_eq!(int(&run(&mut target, &["DBSIZE"])), 0);

    let not_a_stream = migrate(&["--from", &from, "--to", &to, "plain"]);
    assert_eq!(exit_code(&not_a_stream), 2);
    assert!(stderr(&not_a_stream).contains("\"plain\" is not a stream in the source"));

    let chosen = migrate(&["--from", &from, "--to", &to, "--match", "orders:*", "jobs"]);
    assert_eq!(exit_code(&chosen), 0, "{}", stderr(&chosen));
    let value = run(&mut target, &["KEYS", "*"]);
    let mut keys: Vec<String> = items(&value).iter().map(text).collect();
    keys.sort();
    assert_eq!(keys, ["jobs", "orders:eu", "orders:us"]);
    let info = pairs(&run(&mut target, &["XINFO", "STREAM", "jobs"]));
    assert!(info.iter().any(|(name, _)| name == "entries-added"));
}
