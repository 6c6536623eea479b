//! queue-server against replies Redis 7.0.15 gave to the same commands: approximate trims under
//! the node settings, the configuration names tools set, BGSAVE and BGREWRITEAOF, XINFO's exact
//! fields and a negative lag.

mod common;

use common::{Server, error, field, int, items, pairs, query, run};

fn add(con: &mut redis::Connection, key: &str, from: u64, to: u64) {
    for ms in from..=to {
        run(con, &["XADD", key, &format!("{ms}-0"), "f", "v"]);
    }
}

#[test]
fn approximate_trims_follow_the_node_settings() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    add(&mut con, "s", 1, 555);
    assert_eq!(
        query::<i64>(&mut con, &["XTRIM", "s", "MAXLEN", "~", "444"]),
        100
    );
    let info = run(&mut con, &["XINFO", "STREAM", "s"]);
    assert_eq!(int(&field(&info, "radix-tree-keys")), 5);
    assert_eq!(int(&field(&info, "radix-tree-nodes")), 14);

    run(&mut con, &["XADD", "two", "1-0", "a", "1"]);
    run(&mut con, &["XADD", "two", "2-0", "b", "2"]);
    let trim = ["XTRIM", "two", "MAXLEN", "~", "0", "LIMIT", "2"];
    assert_eq!(query::<i64>(&mut con, &trim), 2);

    run(
        &mut con,
        &["CONFIG", "SET", "stream-node-max-entries", "10"],
    );
    let got = run(&mut con, &["CONFIG", "GET", "stream-node-max-*"]);
    let got: Vec<(String, String)> = pairs(&got)
        .into_iter()
        .map(|(name, value)| (name, common::text(&value)))
        .collect();
    assert_eq!(
        got,
        [
            ("stream-node-max-entries".into(), "10".into()),
            ("stream-node-max-bytes".into(), "4096".into())
        ]
    );
    add(&mut con, "s9", 1, 95);
    assert_eq!(
        query::<i64>(&mut con, &["XTRIM", "s9", "MAXLEN", "~", "50"]),
        40
    );
    assert_eq!(
        error(
            &mut con,
            &["CONFIG", "SET", "stream-node-max-bytes", "lots"]
        ),
        "ERR CONFIG SET failed (possibly related to argument 'stream-node-max-bytes') - argument must be a memory value"
    );
    run(&mut con, &["CONFIG", "SET", "stream-node-max-bytes", "4kb"]);
    run(
        &mut con,
        &["CONFIG", "SET", "aof-use-rdb-preamble", "no", "save", ""],
    );
}

#[test]
fn persistence_commands_answer_as_redis() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    add(&mut con, "s", 1, 3);
    run(&mut con, &["XGROUP", "CREATE", "s", "g", "0"]);
    let saving = run(&mut con, &["BGSAVE"]);
    assert_eq!(
        saving,
        redis::Value::SimpleString("Background saving started".into())
    );
    let rewriting = run(&mut con, &["BGREWRITEAOF"]);
    assert_eq!(
        rewriting,
        redis::Value::SimpleString("Background append only file rewriting started".into())
    );
    assert_eq!(query::<i64>(&mut con, &["XLEN", "s"]), 3);
}

#[test]
fn xinfo_replies_hold_redis_fields_and_weir_ones_on_request() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    run(&mut con, &["XADD", "u", "1-0", "a", "b"]);
    run(&mut con, &["XGROUP", "CREATE", "u", "g", "0"]);
    run(
        &mut con,
        &["XGROUP", "SETID", "u", "g", "1-0", "ENTRIESREAD", "2"],
    );
    let groups = run(&mut con, &["XINFO", "GROUPS", "u"]);
    let names: Vec<String> = pairs(&items(&groups)[0])
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "name",
            "consumers",
            "pending",
            "last-delivered-id",
            "entries-read",
            "lag"
        ]
    );
    assert_eq!(int(&field(&items(&groups)[0], "lag")), -1);
    let weir = run(&mut con, &["XINFO", "GROUPS", "u", "WEIR"]);
    assert_eq!(pairs(&items(&weir)[0]).len(), 14);
    let stream = run(&mut con, &["XINFO", "STREAM", "u"]);
    let names: Vec<String> = pairs(&stream).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "length",
            "radix-tree-keys",
            "radix-tree-nodes",
            "last-generated-id",
            "max-deleted-entry-id",
            "entries-added",
            "recorded-first-entry-id",
            "groups",
            "first-entry",
            "last-entry"
        ]
    );
}

/// The consumer fields of `XINFO CONSUMERS s g`, by name.
fn consumer_fields(con: &mut redis::Connection) -> Vec<String> {
    let consumers = run(con, &["XINFO", "CONSUMERS", "s", "g"]);
    pairs(&items(&consumers)[0])
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

#[test]
fn the_reported_version_is_one_and_shapes_the_replies() {
    let latest = Server::start(&[]);
    let mut con = latest.conn();
    let hello = run(&mut con, &["HELLO", "2"]);
    let reported = common::text(&field(&hello, "version"));
    let info: String = query(&mut con, &["INFO", "server"]);
    assert_eq!(
        common::info_field(&info, "redis_version"),
        Some(reported.clone())
    );
    assert_eq!(reported, "8.4.0");
    run(&mut con, &["XADD", "s", "1-0", "f", "v"]);
    run(&mut con, &["XGROUP", "CREATE", "s", "g", "0"]);
    run(
        &mut con,
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"],
    );
    // Redis 7.2 added `inactive`.
    assert_eq!(
        consumer_fields(&mut con),
        ["name", "pending", "idle", "inactive"]
    );

    let as_7_0 = Server::start(&["--redis-version", "7.0.15"]);
    let mut con = as_7_0.conn();
    let hello = run(&mut con, &["HELLO", "2"]);
    assert_eq!(common::text(&field(&hello, "version")), "7.0.15");
    run(&mut con, &["XADD", "s", "1-0", "f", "v"]);
    run(&mut con, &["XGROUP", "CREATE", "s", "g", "0"]);
    run(
        &mut con,
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"],
    );
    assert_eq!(consumer_fields(&mut con), ["name", "pending", "idle"]);
}

#[test]
fn an_unsupported_version_is_refused_at_start() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_queue-server"))
        .args(["--redis-version", "6.2.0", "--port", "0"])
        .output()
        .expect("run queue-server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("6.2.0 is outside"), "{stderr}");
}
