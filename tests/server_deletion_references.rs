//! Redis 8.2's deletions that mind consumer groups, end to end through the `redis` client:
//! XDELEX, XACKDEL and the `KEEPREF | DELREF | ACKED` options of XADD and XTRIM, with their
//! replies in RESP2 and RESP3, and their effect surviving a crash.

mod common;

use common::{Server, error, query, run};
use redis::Value;

/// Stream `s` with entries `1-0` ..= `count-0`, and groups `g` and `h` reading from the start.
fn stream_with_two_groups(con: &mut redis::Connection, count: u64) {
    for ms in 1..=count {
        query::<String>(con, &["XADD", "s", &format!("{ms}-0"), "f", "v"]);
    }
    for group in ["g", "h"] {
        query::<String>(con, &["XGROUP", "CREATE", "s", group, "0"]);
    }
}

fn read(con: &mut redis::Connection, group: &str, count: u64) {
    run(
        con,
        &[
            "XREADGROUP",
            "GROUP",
            group,
            "c",
            "COUNT",
            &count.to_string(),
            "STREAMS",
            "s",
            ">",
        ],
    );
}

fn pending(con: &mut redis::Connection, group: &str) -> i64 {
    match run(con, &["XPENDING", "s", group]) {
        Value::Array(summary) => match summary[0] {
            Value::Int(count) => count,
            ref other => panic!("not a count: {other:?}"),
        },
        other => panic!("not a summary: {other:?}"),
    }
}

fn live(con: &mut redis::Connection) -> Vec<String> {
    let entries: Vec<(String, Vec<String>)> = query(con, &["XRANGE", "s", "-", "+"]);
    entries.into_iter().map(|(id, _)| id).collect()
}

#[test]
fn xdelex_answers_one_code_per_id() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(
        query::<Vec<i64>>(&mut con, &["XDELEX", "nokey", "IDS", "2", "1-0", "2-0"]),
        [-1, -1],
        "a missing key answers -1 per ID"
    );
    stream_with_two_groups(&mut con, 5);
    read(&mut con, "g", 2);
    query::<i64>(&mut con, &["XACK", "s", "g", "1-0"]);
    // 1: `h` has not read it; 9: no such entry.
    assert_eq!(
        query::<Vec<i64>>(
            &mut con,
            &["XDELEX", "s", "ACKED", "IDS", "2", "1-0", "9-0"]
        ),
        [2, -1]
    );
    read(&mut con, "h", 1);
    query::<i64>(&mut con, &["XACK", "s", "h", "1-0"]);
    assert_eq!(
        query::<Vec<i64>>(&mut con, &["XDELEX", "s", "IDS", "1", "1-0", "ACKED"]),
        [1],
        "the IDS block may come first"
    );
    // KEEPREF (the default) leaves 2 pending in `g`; DELREF then clears it all the same.
    assert_eq!(
        query::<Vec<i64>>(&mut con, &["XDELEX", "s", "IDS", "1", "2-0"]),
        [1]
    );
    assert_eq!(pending(&mut con, "g"), 1);
    assert_eq!(
        query::<Vec<i64>>(&mut con, &["XDELEX", "s", "DELREF", "IDS", "1", "2-0"]),
        [-1]
    );
    assert_eq!(pending(&mut con, "g"), 0);
    assert_eq!(live(&mut con), ["3-0", "4-0", "5-0"]);

    let mut resp3 = server.conn_resp3();
    assert_eq!(
        run(
            &mut resp3,
            &["XDELEX", "s", "KEEPREF", "IDS", "2", "3-0", "3-0"]
        ),
        Value::Array(vec![Value::Int(1), Value::Int(-1)]),
        "RESP3 answers the same array"
    );
}

#[test]
fn xackdel_acknowledges_then_deletes() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(
        query::<Vec<i64>>(&mut con, &["XACKDEL", "nokey", "g", "IDS", "1", "1-0"]),
        [-1]
    );
    stream_with_two_groups(&mut con, 3);
    assert_eq!(
        error(&mut con, &["XACKDEL", "s", "nogroup", "IDS", "1", "1-0"]),
        "NOGROUP No such key 's' or consumer group 'nogroup'"
    );
    read(&mut con, "g", 3);
    read(&mut con, "h", 1);
    assert_eq!(
        query::<Vec<i64>>(
            &mut con,
            &["XACKDEL", "s", "g", "ACKED", "IDS", "2", "1-0", "2-0"]
        ),
        [2, 2],
        "1 is pending in `h`, which has not read 2"
    );
    assert_eq!(pending(&mut con, "g"), 1, "both were acknowledged in `g`");
    assert_eq!(
        query::<Vec<i64>>(&mut con, &["XACKDEL", "s", "h", "ACKED", "IDS", "1", "1-0"]),
        [1]
    );
    assert_eq!(
        query::<Vec<i64>>(
            &mut con,
            &["XACKDEL", "s", "g", "DELREF", "IDS", "1", "3-0"]
        ),
        [1]
    );
    assert_eq!(live(&mut con), ["2-0"]);
    for (args, expected) in [
        (
            &["XACKDEL", "s", "g", "IDS", "0", "1-0"][..],
            "ERR Number of IDs must be a positive integer",
        ),
        (
            &["XACKDEL", "s", "g", "IDS", "2", "1-0"],
            "ERR The `numids` parameter must match the number of arguments",
        ),
        (
            &["XACKDEL", "s", "g", "BOGUS", "IDS", "1", "1-0"],
            "ERR syntax error",
        ),
        (
            &["XACKDEL", "s", "g", "IDS", "1", "nope"],
            "ERR Invalid stream ID specified as stream command argument",
        ),
        (
            &["XACKDEL", "s", "g", "IDS", "1"],
            "ERR wrong number of arguments for 'xackdel' command",
        ),
        (
            &["XDELEX", "s", "IDS", "1"],
            "ERR wrong number of arguments for 'xdelex' command",
        ),
    ] {
        assert_eq!(error(&mut con, args), expected, "{args:?}");
    }
}

#[test]
fn trims_keep_remove_or_respect_references_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &["--fsync", "always"]);
    let mut con = server.conn();
    stream_with_two_groups(&mut con, 6);
    read(&mut con, "g", 6);
    read(&mut con, "h", 2);
    query::<i64>(&mut con, &["XACK", "s", "g", "1-0", "2-0", "3-0"]);
    query::<i64>(&mut con, &["XACK", "s", "h", "1-0"]);
    // Only 1 is free of references: ACKED stops short of MAXLEN 3.
    assert_eq!(
        query::<i64>(&mut con, &["XTRIM", "s", "MAXLEN", "3", "ACKED"]),
        1
    );
    assert_eq!(live(&mut con), ["2-0", "3-0", "4-0", "5-0", "6-0"]);
    // DELREF takes 2 and 3 from the pending lists too.
    query::<String>(
        &mut con,
        &["XADD", "s", "DELREF", "MINID", "4", "7-0", "f", "v"],
    );
    assert_eq!(live(&mut con), ["4-0", "5-0", "6-0", "7-0"]);
    assert_eq!((pending(&mut con, "g"), pending(&mut con, "h")), (3, 0));
    // KEEPREF leaves 4 pending in `g`.
    assert_eq!(
        query::<i64>(&mut con, &["XTRIM", "s", "MAXLEN", "3", "KEEPREF"]),
        1
    );
    assert_eq!(pending(&mut con, "g"), 3);
    drop(con);
    server.kill();

    let server = Server::start_in(dir.path(), &[]);
    let mut con = server.conn();
    assert_eq!(live(&mut con), ["5-0", "6-0", "7-0"]);
    assert_eq!((pending(&mut con, "g"), pending(&mut con, "h")), (3, 0));
}
