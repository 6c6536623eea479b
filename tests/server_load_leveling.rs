//! End-to-end tests of request/response and load-leveling over `queue-server` with the `redis`
//! client: the reply-to/correlation-id convention with many requesters and responders,
//! duplicate and late replies, `XCFGSET … DISCARD old|new MAXLEN n|MAXBYTES n`, the backlog in
//! `XINFO GROUPS` and `INFO`, and the pending cap with concurrent readers.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, entries, error, error_text, field, info_field, int, items, run, text};
use redis::Value;

/// Long enough never to pass on a loaded machine: these waits are expected to succeed.
const PATIENT_MS: &str = "60000";

/// The entries of an `XREAD`/`XREADGROUP` reply for its single stream (none on a timeout).
fn read_entries(reply: &Value) -> Vec<(String, Vec<(String, String)>)> {
    match reply {
        Value::Nil => Vec::new(),
        Value::Map(streams) => entries(&streams[0].1),
        other => entries(&items(&items(other)[0])[1]),
    }
}

fn value_of<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .unwrap_or_else(|| panic!("no field {name} in {fields:?}"))
}

/// A requester on its own connection and reply stream, following the README's convention.
struct Requester {
    con: redis::Connection,
    reply_to: String,
    last_seen: String,
    next_correlation: u64,
}

impl Requester {
    fn new(server: &Server, reply_to: &str) -> Requester {
        Requester {
            con: server.conn(),
            reply_to: reply_to.to_string(),
            last_seen: "0-0".into(),
            next_correlation: 1,
        }
    }

    fn send(&mut self, body: &str) -> String {
        let correlation = self.next_correlation.to_string();
        self.next_correlation += 1;
        let args = [
            "XADD",
            "requests",
            "*",
            "reply-to",
            &self.reply_to,
            "correlation-id",
            &correlation,
            "body",
            body,
        ];
        run(&mut self.con, &args);
        correlation
    }

    /// Waits up to `block_ms` at a time for the reply with this correlation ID, skipping any
    /// other (late or duplicate) reply; `None` when a wait ends without it.
    fn wait(&mut self, correlation: &str, block_ms: &str) -> Option<Vec<(String, String)>> {
        loop {
            let reply = run(
                &mut self.con,
                &[
                    "XREAD",
                    "BLOCK",
                    block_ms,
                    "STREAMS",
                    &self.reply_to,
                    &self.last_seen,
                ],
            );
            let replies = read_entries(&reply);
            if replies.is_empty() {
                return None;
            }
            for (id, fields) in replies {
                self.last_seen = id;
                if value_of(&fields, "correlation-id") == correlation {
                    return Some(fields);
                }
            }
        }
    }
}

/// Answers every request with `echo:<body>` until `done` is set.
fn respond_until(server: &Server, consumer: &str, done: &AtomicBool) {
    let mut con = server.conn();
    while !done.load(Ordering::SeqCst) {
        let reply = run(
            &mut con,
            &[
                "XREADGROUP",
                "GROUP",
                "service",
                consumer,
                "COUNT",
                "8",
                "BLOCK",
                "50",
                "STREAMS",
                "requests",
                ">",
            ],
        );
        for (id, fields) in read_entries(&reply) {
            let answer = format!("echo:{}", value_of(&fields, "body"));
            let reply_to = value_of(&fields, "reply-to");
            let correlation = value_of(&fields, "correlation-id");
            run(
                &mut con,
                &[
                    "XADD",
                    reply_to,
                    "*",
                    "correlation-id",
                    correlation,
                    "answer",
                    &answer,
                ],
            );
            assert_eq!(
                int(&run(&mut con, &["XACK", "requests", "service", &id])),
                1
            );
        }
    }
}

fn create_service(con: &mut redis::Connection) {
    run(
        con,
        &["XGROUP", "CREATE", "requests", "service", "$", "MKSTREAM"],
    );
}

#[test]
fn requests_and_replies_over_plain_commands() {
    let server = Server::start(&[]);
    create_service(&mut server.conn());
    let done = AtomicBool::new(false);
    thread::scope(|scope| {
        for r in 0..3 {
            let (server, done) = (&server, &done);
            scope.spawn(move || respond_until(server, &format!("responder-{r}"), done));
        }
        let mut clients = Vec::new();
        for c in 0..4 {
            let server = &server;
            clients.push(scope.spawn(move || {
                let mut requester = Requester::new(server, &format!("replies:client-{c}"));
                for i in 0..25 {
                    let body = format!("c{c}-q{i}");
                    let correlation = requester.send(&body);
                    let reply = requester.wait(&correlation, PATIENT_MS).expect("a reply");
                    assert_eq!(value_of(&reply, "answer"), format!("echo:{body}"));
                }
            }));
        }
        for client in clients {
            client.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
    });
    let mut con = server.conn();
    assert_eq!(int(&run(&mut con, &["XLEN", "requests"])), 100);
    for c in 0..4 {
        let key = format!("replies:client-{c}");
        assert_eq!(int(&run(&mut con, &["XLEN", &key])), 25);
    }
}

#[test]
fn duplicate_and_late_replies_are_recognised_by_their_correlation_id() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    create_service(&mut con);
    let mut requester = Requester::new(&server, "replies:c");

    // A responder replies, then fails before XACK; another claims the request and replies too.
    let first = requester.send("q1");
    let reply = run(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "service",
            "a",
            "STREAMS",
            "requests",
            ">",
        ],
    );
    let (id, fields) = read_entries(&reply).remove(0);
    assert_eq!(value_of(&fields, "correlation-id"), first);
    run(
        &mut con,
        &[
            "XADD",
            "replies:c",
            "*",
            "correlation-id",
            &first,
            "answer",
            "1",
        ],
    );
    run(&mut con, &["XCLAIM", "requests", "service", "b", "0", &id]);
    run(
        &mut con,
        &[
            "XADD",
            "replies:c",
            "*",
            "correlation-id",
            &first,
            "answer",
            "2",
        ],
    );
    run(&mut con, &["XACK", "requests", "service", &id]);
    let reply = requester.wait(&first, PATIENT_MS).unwrap();
    assert_eq!(value_of(&reply, "answer"), "1");

    // A request that times out: its reply comes late, and the next request skips it.
    let second = requester.send("q2");
    assert!(requester.wait(&second, "20").is_none());
    run(
        &mut con,
        &[
            "XADD",
            "replies:c",
            "*",
            "correlation-id",
            &second,
            "answer",
            "late",
        ],
    );
    let third = requester.send("q3");
    run(
        &mut con,
        &[
            "XADD",
            "replies:c",
            "*",
            "correlation-id",
            &third,
            "answer",
            "3",
        ],
    );
    let reply = requester.wait(&third, PATIENT_MS).unwrap();
    assert_eq!(value_of(&reply, "answer"), "3");
    assert_eq!(int(&run(&mut con, &["XLEN", "replies:c"])), 4);
}

/// A refused XADD changed nothing: the stream holds `len` entries, all it ever added, the last
/// of them `last`.
fn assert_unchanged(con: &mut redis::Connection, key: &str, len: i64, last: &str) {
    assert_eq!(int(&run(con, &["XLEN", key])), len);
    let info = run(con, &["XINFO", "STREAM", key]);
    assert_eq!(text(&field(&info, "last-generated-id")), last);
    assert_eq!(int(&field(&info, "entries-added")), len);
}

/// A consumer of `group` reads the next entry and acknowledges it.
fn read_and_ack_one(con: &mut redis::Connection, key: &str, group: &str) {
    let read = [
        "XREADGROUP",
        "GROUP",
        group,
        "w",
        "COUNT",
        "1",
        "STREAMS",
        key,
        ">",
    ];
    let (id, _) = read_entries(&run(con, &read)).remove(0);
    assert_eq!(int(&run(con, &["XACK", key, group, &id])), 1);
}

/// Makes `jobs` a work queue read by the group `workers` that refuses appends past `limit`
/// (`MAXLEN` or `MAXBYTES`) of `value`.
fn limited_work_queue(con: &mut redis::Connection, limit: &str, value: &str) {
    run(
        con,
        &["XGROUP", "CREATE", "jobs", "workers", "0", "MKSTREAM"],
    );
    let set = [
        "XCFGSET",
        "jobs",
        "RETENTION",
        "ACKED",
        "DISCARD",
        "NEW",
        limit,
        value,
    ];
    assert_eq!(run(con, &set), Value::Okay);
}

#[test]
fn discard_new_refuses_appends_until_consumers_catch_up() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    limited_work_queue(&mut con, "MAXLEN", "2");
    run(&mut con, &["XADD", "jobs", "*", "n", "1"]);
    let last = text(&run(&mut con, &["XADD", "jobs", "*", "n", "2"]));
    let refused = error(&mut con, &["XADD", "jobs", "*", "n", "3"]);
    assert!(refused.starts_with("FULL "), "{refused}");
    assert!(refused.contains("MAXLEN 2 with DISCARD new"), "{refused}");
    assert!(refused.contains("\"jobs\""), "{refused}");
    assert_unchanged(&mut con, "jobs", 2, &last);

    // The setting survives a reload.
    assert_eq!(run(&mut con, &["DEBUG", "RELOAD"]), Value::Okay);
    assert!(error(&mut con, &["XADD", "jobs", "*", "n", "3"]).starts_with("FULL "));

    // A consumer catches up: the acknowledged entry leaves the work queue, and there is room.
    read_and_ack_one(&mut con, "jobs", "workers");
    assert_eq!(int(&run(&mut con, &["XLEN", "jobs"])), 1);
    run(&mut con, &["XADD", "jobs", "*", "n", "3"]);
    assert!(error(&mut con, &["XADD", "jobs", "*", "n", "4"]).starts_with("FULL "));

    // Removing the limit (MAXLEN 0) lets everything in.
    run(&mut con, &["XCFGSET", "jobs", "MAXLEN", "0"]);
    run(&mut con, &["XADD", "jobs", "*", "n", "4"]);
    assert_eq!(int(&run(&mut con, &["XLEN", "jobs"])), 3);
}

#[test]
fn discard_old_keeps_the_newest_entries() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    for n in ["1", "2", "3"] {
        run(&mut con, &["XADD", "events", "*", "n", n]);
    }
    run(
        &mut con,
        &["XCFGSET", "events", "DISCARD", "OLD", "MAXLEN", "2"],
    );
    run(&mut con, &["XADD", "events", "*", "n", "4"]);
    let kept: Vec<String> = entries(&run(&mut con, &["XRANGE", "events", "-", "+"]))
        .into_iter()
        .map(|(_, fields)| value_of(&fields, "n").to_string())
        .collect();
    assert_eq!(kept, ["3", "4"]);
    let bad = error(&mut con, &["XCFGSET", "events", "DISCARD", "SOMETIMES"]);
    assert_eq!(bad, "ERR syntax error");
    assert_eq!(
        error(&mut con, &["XCFGSET", "missing", "MAXLEN", "2"]),
        "ERR no such key"
    );
}

/// Appends `n <number>` entries (all the same size) until the stream refuses one; returns how
/// many went in.
fn fill_until_full(con: &mut redis::Connection, key: &str) -> usize {
    for n in 0..1000 {
        let number = format!("{n:04}");
        if let Value::ServerError(refused) = run(con, &["XADD", key, "*", "n", &number]) {
            assert_eq!(refused.code(), "FULL", "{}", error_text(&refused));
            return n;
        }
    }
    panic!("{key} never became full");
}

#[test]
fn discard_new_at_the_size_limit_refuses_until_consumers_catch_up() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    limited_work_queue(&mut con, "MAXBYTES", "1000");
    let fits = fill_until_full(&mut con, "jobs");
    assert!((2..100).contains(&fits), "{fits} entries fit in 1000 bytes");
    let info = run(&mut con, &["XINFO", "STREAM", "jobs"]);
    let last = text(&field(&info, "last-generated-id"));
    let refused = error(&mut con, &["XADD", "jobs", "*", "n", "next"]);
    assert!(refused.starts_with("FULL "), "{refused}");
    assert!(
        refused.contains("MAXBYTES 1000 with DISCARD new"),
        "{refused}"
    );
    // An entry that could never fit is refused as such, whatever the consumers do.
    let huge = "x".repeat(1000);
    let too_large = error(&mut con, &["XADD", "jobs", "*", "n", &huge]);
    assert!(too_large.starts_with("ERR "), "{too_large}");
    assert!(too_large.contains("MAXBYTES 1000"), "{too_large}");
    assert_unchanged(&mut con, "jobs", fits as i64, &last);

    // The setting survives a reload.
    assert_eq!(run(&mut con, &["DEBUG", "RELOAD"]), Value::Okay);
    assert!(error(&mut con, &["XADD", "jobs", "*", "n", "next"]).starts_with("FULL "));

    // A consumer catches up: the acknowledged entry frees its bytes.
    read_and_ack_one(&mut con, "jobs", "workers");
    run(&mut con, &["XADD", "jobs", "*", "n", "next"]);
    assert!(error(&mut con, &["XADD", "jobs", "*", "n", "more"]).starts_with("FULL "));

    // MAXBYTES 0 removes the limit.
    run(&mut con, &["XCFGSET", "jobs", "MAXBYTES", "0"]);
    run(&mut con, &["XADD", "jobs", "*", "n", "more"]);
    assert_eq!(int(&run(&mut con, &["XLEN", "jobs"])), fits as i64 + 1);
}

#[test]
fn an_entry_stores_the_bytes_the_readme_gives_and_xinfo_shows_them() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    run(&mut con, &["XADD", "jobs", "*", "kind", "job"]);
    run(
        &mut con,
        &["XCFGSET", "jobs", "DISCARD", "NEW", "MAXBYTES", "160"],
    );
    run(&mut con, &["XADD", "jobs", "*", "kind", "job"]);
    let refused = error(&mut con, &["XADD", "jobs", "*", "kind", "job"]);
    assert!(
        refused.contains("it stores 160 bytes, the append needs 80 more"),
        "{refused}"
    );
    // XINFO STREAM … WEIR shows the size and the limits after Redis's own fields, in both
    // forms.
    for form in [
        &["XINFO", "STREAM", "jobs", "WEIR"][..],
        &["XINFO", "STREAM", "jobs", "FULL", "WEIR"],
    ] {
        let info = run(&mut con, form);
        assert_eq!(int(&field(&info, "stored-bytes")), 160);
        assert_eq!(field(&info, "max-len"), Value::Nil);
        assert_eq!(int(&field(&info, "max-bytes")), 160);
        assert_eq!(text(&field(&info, "discard")), "new");
    }
}

#[test]
fn the_size_limit_holds_under_concurrent_producers() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    run(&mut con, &["XADD", "s", "*", "n", "0000"]);
    run(
        &mut con,
        &["XCFGSET", "s", "DISCARD", "NEW", "MAXBYTES", "2000"],
    );
    let more = fill_until_full(&mut con, "s");
    let fits = more + 1;
    run(&mut con, &["XTRIM", "s", "MAXLEN", "0"]);
    let accepted = AtomicUsize::new(0);
    thread::scope(|scope| {
        for t in 0..4 {
            let (server, accepted) = (&server, &accepted);
            scope.spawn(move || {
                let mut con = server.conn();
                for i in 0..fits {
                    let number = format!("{t}{i:03}");
                    match run(&mut con, &["XADD", "s", "*", "n", &number]) {
                        Value::ServerError(refused) => {
                            assert_eq!(refused.code(), "FULL", "{refused:?}");
                        }
                        _ => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            });
        }
    });
    assert_eq!(accepted.load(Ordering::SeqCst), fits);
    assert_eq!(int(&run(&mut con, &["XLEN", "s"])), fits as i64);
}

#[test]
fn discard_old_at_the_size_limit_keeps_the_newest_entries() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let padding = "p".repeat(100);
    for n in 0..10 {
        run(
            &mut con,
            &["XADD", "events", "*", "n", &n.to_string(), "pad", &padding],
        );
    }
    run(
        &mut con,
        &["XCFGSET", "events", "DISCARD", "OLD", "MAXBYTES", "1000"],
    );
    let kept = int(&run(&mut con, &["XLEN", "events"]));
    assert!((1..10).contains(&kept), "{kept} entries kept");
    for n in 10..15 {
        run(
            &mut con,
            &["XADD", "events", "*", "n", &n.to_string(), "pad", &padding],
        );
    }
    let numbers: Vec<String> = entries(&run(&mut con, &["XRANGE", "events", "-", "+"]))
        .into_iter()
        .map(|(_, fields)| value_of(&fields, "n").to_string())
        .collect();
    let expected: Vec<String> = (15 - kept..15).map(|n| n.to_string()).collect();
    assert_eq!(numbers, expected);
}

#[test]
fn idle_streams_expire_when_asked_to() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    run(
        &mut con,
        &["XADD", "replies:gone", "*", "correlation-id", "1"],
    );
    run(
        &mut con,
        &["XADD", "replies:kept", "*", "correlation-id", "1"],
    );
    assert_eq!(
        error(&mut con, &["XCFGSET", "replies:gone", "EXPIRE-IDLE", "-5"]),
        "ERR value is out of range, must be positive"
    );
    run(&mut con, &["XCFGSET", "replies:gone", "EXPIRE-IDLE", "1"]);
    // The server's maintenance deletes it within a pass or two.
    let deadline = Instant::now() + Duration::from_secs(30);
    while int(&run(&mut con, &["EXISTS", "replies:gone"])) == 1 {
        assert!(
            Instant::now() < deadline,
            "the idle stream was never deleted"
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(int(&run(&mut con, &["EXISTS", "replies:kept"])), 1);
}

#[test]
fn backlog_in_xinfo_groups_and_info() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    run(
        &mut con,
        &["XGROUP", "CREATE", "orders", "billing", "0", "MKSTREAM"],
    );
    for n in ["1", "2", "3"] {
        run(&mut con, &["XADD", "orders", "*", "n", n]);
    }
    run(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "billing",
            "c",
            "COUNT",
            "1",
            "STREAMS",
            "orders",
            ">",
        ],
    );
    let groups = run(&mut con, &["XINFO", "GROUPS", "orders", "WEIR"]);
    let group = &items(&groups)[0];
    assert_eq!(
        (int(&field(group, "lag")), int(&field(group, "pending"))),
        (2, 1)
    );
    assert!(int(&field(group, "oldest-undelivered-ms")) >= 0);
    assert!(int(&field(group, "oldest-pending-ms")) >= 0);
    // Redis's own fields come first.
    let names: Vec<String> = common::pairs(group).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        names[..6],
        [
            "name",
            "consumers",
            "pending",
            "last-delivered-id",
            "entries-read",
            "lag"
        ]
    );

    let info = text(&run(&mut con, &["INFO", "backlog"]));
    assert!(info.starts_with("# Backlog"), "{info}");
    assert_eq!(info_field(&info, "backlog_groups").unwrap(), "1");
    assert_eq!(info_field(&info, "backlog_lag_total").unwrap(), "2");
    assert_eq!(info_field(&info, "backlog_pending_total").unwrap(), "1");
    let line = info_field(&info, "group0").unwrap();
    assert!(
        line.starts_with("db=0,key=orders,group=billing,lag=2,pending=1,"),
        "{line}"
    );
    assert!(
        info_field(&info, "backlog_oldest_undelivered_ms_max")
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );

    // Everything delivered and acknowledged: nothing undelivered, nothing pending.
    let reply = run(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "billing",
            "c",
            "STREAMS",
            "orders",
            ">",
        ],
    );
    assert_eq!(read_entries(&reply).len(), 2);
    let pending = run(&mut con, &["XPENDING", "orders", "billing", "-", "+", "10"]);
    for row in items(&pending) {
        run(
            &mut con,
            &["XACK", "orders", "billing", &text(&items(row)[0])],
        );
    }
    let groups = run(&mut con, &["XINFO", "GROUPS", "orders", "WEIR"]);
    let group = &items(&groups)[0];
    assert_eq!(field(group, "oldest-undelivered-ms"), Value::Nil);
    assert_eq!(field(group, "oldest-pending-ms"), Value::Nil);
    let info = text(&run(&mut con, &["INFO"]));
    assert_eq!(
        info_field(&info, "backlog_oldest_pending_ms_max").unwrap(),
        "-1"
    );
    assert!(
        info_field(&info, "group0")
            .unwrap()
            .ends_with("lag=0,pending=0,oldest_undelivered_ms=-1,oldest_pending_ms=-1")
    );
}

#[test]
fn the_pending_cap_holds_under_concurrent_readers() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    run(
        &mut con,
        &[
            "XGROUP",
            "CREATE",
            "s",
            "g",
            "0",
            "MKSTREAM",
            "MAXACKPENDING",
            "3",
        ],
    );
    for n in 0..40 {
        run(&mut con, &["XADD", "s", "*", "n", &n.to_string()]);
    }
    let held = Mutex::new(0usize);
    let most = AtomicUsize::new(0);
    let received = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for c in 0..4 {
            let (server, held, most, received) = (&server, &held, &most, &received);
            scope.spawn(move || {
                let mut con = server.conn();
                let consumer = format!("c{c}");
                while received.lock().unwrap().len() < 40 {
                    let reply = run(
                        &mut con,
                        &[
                            "XREADGROUP",
                            "GROUP",
                            "g",
                            &consumer,
                            "COUNT",
                            "10",
                            "BLOCK",
                            "50",
                            "STREAMS",
                            "s",
                            ">",
                        ],
                    );
                    let got = read_entries(&reply);
                    if got.is_empty() {
                        continue;
                    }
                    {
                        let mut held = held.lock().unwrap();
                        *held += got.len();
                        most.fetch_max(*held, Ordering::SeqCst);
                    }
                    let summary = run(&mut con, &["XPENDING", "s", "g"]);
                    assert!(int(&items(&summary)[0]) <= 3);
                    *held.lock().unwrap() -= got.len();
                    let ids: Vec<String> = got.into_iter().map(|(id, _)| id).collect();
                    let mut ack = vec!["XACK", "s", "g"];
                    ack.extend(ids.iter().map(String::as_str));
                    assert_eq!(int(&run(&mut con, &ack)), ids.len() as i64);
                    received.lock().unwrap().extend(ids);
                }
            });
        }
    });
    let most = most.load(Ordering::SeqCst);
    assert!((1..=3).contains(&most), "{most} pending at once");
    let mut received = received.into_inner().unwrap();
    received.sort();
    received.dedup();
    assert_eq!(received.len(), 40);
}
