//! End-to-end tests of `queue-server`: the real binary on a loopback port, driven by the `redis`
//! client and by raw RESP over TCP. Connection commands, pipelining, protocol errors,
//! authentication, streams, consumer groups and weir's delivery policy, transactions, the
//! keyspace and server commands, durability across crashes, reloads and clean shutdowns, and the
//! client limit.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Server, encode, entries, entry, error, field, info_field, int, items, pairs, query, read_reply,
    read_to_close, run, text,
};
use redis::Value;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Polls `condition` every few milliseconds until it holds; fails after a generous bound.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// `INFO section`, or every section for `""`.
fn info(con: &mut redis::Connection, section: &str) -> String {
    if section.is_empty() {
        text(&run(con, &["INFO"]))
    } else {
        text(&run(con, &["INFO", section]))
    }
}

fn blocked_clients(con: &mut redis::Connection) -> i64 {
    let info = info(con, "clients");
    info_field(&info, "blocked_clients")
        .expect("blocked_clients")
        .parse()
        .unwrap()
}

/// Waits until `count` clients are blocked, so that what happens next happens to a blocked
/// command.
fn wait_blocked(con: &mut redis::Connection, count: i64) {
    wait_until(&format!("{count} clients are blocked"), || {
        blocked_clients(con) == count
    });
}

fn ok() -> Value {
    Value::Okay
}

fn simple(text: &str) -> Value {
    Value::SimpleString(text.into())
}

fn bulk(text: &str) -> Value {
    Value::BulkString(text.as_bytes().to_vec())
}

/// The IDs of a list of entries.
fn ids(value: &Value) -> Vec<String> {
    entries(value).into_iter().map(|(id, _)| id).collect()
}

/// The IDs of every stream's entries in an XREAD/XREADGROUP reply (RESP2 or RESP3), by key.
fn read_ids(value: &Value) -> Vec<(String, Vec<String>)> {
    let streams: Vec<(Value, Value)> = match value {
        Value::Map(map) => map.clone(),
        Value::Array(list) => list
            .iter()
            .map(|pair| {
                let pair = items(pair);
                (pair[0].clone(), pair[1].clone())
            })
            .collect(),
        other => panic!("not a read reply: {other:?}"),
    };
    streams
        .iter()
        .map(|(key, list)| (text(key), ids(list)))
        .collect()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

fn fields(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// One row of `XPENDING key group - + n`, without the idle time: `(id, consumer, deliveries)`.
fn pending_rows(con: &mut redis::Connection, key: &str, group: &str) -> Vec<(String, String, i64)> {
    let reply = run(con, &["XPENDING", key, group, "-", "+", "100000"]);
    items(&reply)
        .iter()
        .map(|row| {
            let row = items(row);
            (text(&row[0]), text(&row[1]), int(&row[3]))
        })
        .collect()
}

/// XINFO GROUPS without the fields that depend on the clock.
fn groups_info(con: &mut redis::Connection, key: &str) -> Vec<Vec<(String, Value)>> {
    let reply = run(con, &["XINFO", "GROUPS", key]);
    items(&reply)
        .iter()
        .map(|group| {
            pairs(group)
                .into_iter()
                .filter(|(name, _)| name != "oldest-pending-ms" && name != "oldest-undelivered-ms")
                .collect()
        })
        .collect()
}

/// XINFO CONSUMERS as `(name, pending)`.
fn consumers(con: &mut redis::Connection, key: &str, group: &str) -> Vec<(String, i64)> {
    let reply = run(con, &["XINFO", "CONSUMERS", key, group]);
    items(&reply)
        .iter()
        .map(|consumer| {
            (
                text(&field(consumer, "name")),
                int(&field(consumer, "pending")),
            )
        })
        .collect()
}

/// The resident memory of a process in bytes (Linux), if it can be read.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

// ---------------------------------------------------------------------------------------------
// 1. Connection commands
// ---------------------------------------------------------------------------------------------

#[test]
fn ping_echo_and_errors() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(run(&mut con, &["PING"]), simple("PONG"));
    assert_eq!(run(&mut con, &["ping", "hello"]), bulk("hello"));
    assert_eq!(run(&mut con, &["ECHO", "a b\r\nc"]), bulk("a b\r\nc"));
    assert_eq!(
        error(&mut con, &["FOO", "a", "b"]),
        "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        error(&mut con, &["NOSUCH"]),
        "ERR unknown command 'NOSUCH', with args beginning with: "
    );
    assert_eq!(
        error(&mut con, &["XLEN"]),
        "ERR wrong number of arguments for 'xlen' command"
    );
    assert_eq!(
        error(&mut con, &["echo", "a", "b"]),
        "ERR wrong number of arguments for 'echo' command"
    );
    assert_eq!(
        error(&mut con, &["PING", "a", "b"]),
        "ERR wrong number of arguments for 'ping' command"
    );
    // The connection is still fine after errors.
    assert_eq!(run(&mut con, &["PING"]), simple("PONG"));
}

#[test]
fn hello_switches_protocols() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let hello = run(&mut con, &["HELLO", "2"]);
    assert!(matches!(hello, Value::Array(_)), "RESP2 map is an array");
    assert_eq!(field(&hello, "proto"), Value::Int(2));
    assert_eq!(text(&field(&hello, "server")), "redis");
    let id = int(&field(&hello, "id"));
    assert_eq!(query::<i64>(&mut con, &["CLIENT", "ID"]), id);
    assert_eq!(
        error(&mut con, &["HELLO", "4"]),
        "NOPROTO unsupported protocol version"
    );

    // RESP3 through the client's own handshake.
    let mut resp3 = server.conn_resp3();
    let hello = run(&mut resp3, &["HELLO"]);
    assert!(matches!(hello, Value::Map(_)), "RESP3 map: {hello:?}");
    assert_eq!(field(&hello, "proto"), Value::Int(3));
    query::<String>(&mut resp3, &["XADD", "s", "1-0", "f", "v"]);
    let read = run(&mut resp3, &["XREAD", "STREAMS", "s", "0"]);
    assert!(
        matches!(read, Value::Map(_)),
        "RESP3 XREAD is a map: {read:?}"
    );
    assert_eq!(read_ids(&read), vec![("s".into(), strings(&["1-0"]))]);
    // Null replies are RESP3 nulls.
    assert_eq!(run(&mut resp3, &["XREAD", "STREAMS", "s", "$"]), Value::Nil);

    // And back to RESP2 on the same connection.
    let hello = run(&mut resp3, &["HELLO", "2"]);
    assert_eq!(field(&hello, "proto"), Value::Int(2));
    let read = run(&mut resp3, &["XREAD", "STREAMS", "s", "0"]);
    assert!(matches!(read, Value::Array(_)), "RESP2 XREAD: {read:?}");
}

#[test]
fn select_separates_databases() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let mut other = server.conn();
    assert_eq!(run(&mut con, &["SELECT", "1"]), ok());
    query::<String>(&mut con, &["XADD", "k", "1-0", "f", "one"]);
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "k"]), 1);
    assert_eq!(query::<i64>(&mut other, &["EXISTS", "k"]), 0);
    assert_eq!(query::<i64>(&mut other, &["XLEN", "k"]), 0);
    assert_eq!(
        query::<Vec<String>>(&mut other, &["KEYS", "*"]),
        Vec::<String>::new()
    );
    // The same key in db 0 is another stream.
    query::<String>(&mut other, &["XADD", "k", "5-0", "f", "zero"]);
    assert_eq!(
        ids(&run(&mut con, &["XRANGE", "k", "-", "+"])),
        strings(&["1-0"])
    );
    assert_eq!(run(&mut con, &["SELECT", "0"]), ok());
    assert_eq!(
        ids(&run(&mut con, &["XRANGE", "k", "-", "+"])),
        strings(&["5-0"])
    );
    assert_eq!(run(&mut con, &["SELECT", "15"]), ok());
    assert_eq!(
        error(&mut con, &["SELECT", "16"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        error(&mut con, &["SELECT", "x"]),
        "ERR value is not an integer or out of range"
    );
}

#[test]
fn client_names_and_ids() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let mut other = server.conn();
    assert_eq!(run(&mut con, &["CLIENT", "GETNAME"]), Value::Nil);
    assert_eq!(run(&mut con, &["CLIENT", "SETNAME", "worker-1"]), ok());
    assert_eq!(run(&mut con, &["CLIENT", "GETNAME"]), bulk("worker-1"));
    assert_eq!(run(&mut other, &["CLIENT", "GETNAME"]), Value::Nil);
    assert_eq!(
        error(&mut con, &["CLIENT", "SETNAME", "has space"]),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    let a = query::<i64>(&mut con, &["CLIENT", "ID"]);
    let b = query::<i64>(&mut other, &["CLIENT", "ID"]);
    assert!(a > 0 && b > 0 && a != b, "{a} {b}");
    let list = text(&run(&mut other, &["CLIENT", "LIST"]));
    assert!(
        list.contains(&format!("id={a} ")) && list.contains("name=worker-1 "),
        "{list}"
    );
}

#[test]
fn quit_closes_the_connection() {
    let server = Server::start(&[]);
    let mut raw = server.raw();
    raw.write_all(&encode(&["PING"])).unwrap();
    assert_eq!(read_reply(&mut raw), b"+PONG\r\n");
    // Commands pipelined after QUIT are not run.
    let mut bytes = encode(&["QUIT"]);
    bytes.extend(encode(&["XADD", "after-quit", "*", "f", "v"]));
    raw.write_all(&bytes).unwrap();
    assert_eq!(read_to_close(&mut raw), b"+OK\r\n");
    let mut con = server.conn();
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "after-quit"]), 0);
}

// ---------------------------------------------------------------------------------------------
// 2. Pipelining
// ---------------------------------------------------------------------------------------------

#[test]
fn a_thousand_pipelined_xadds_reply_in_order() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("XADD").arg("p").arg("*").arg("n").arg(i);
        if i % 100 == 99 {
            pipe.cmd("XLEN").arg("p");
        }
    }
    let replies: Vec<Value> = pipe.query(&mut con).unwrap();
    assert_eq!(replies.len(), 1010);
    let mut added = Vec::new();
    let mut lengths = Vec::new();
    for reply in &replies {
        match reply {
            Value::Int(len) => lengths.push(*len),
            other => added.push(text(other)),
        }
    }
    assert_eq!(lengths, (1..=10).map(|k| k * 100).collect::<Vec<i64>>());
    let stored = entries(&run(&mut con, &["XRANGE", "p", "-", "+"]));
    assert_eq!(stored.len(), 1000);
    for (i, ((id, fields), reply_id)) in stored.iter().zip(&added).enumerate() {
        assert_eq!(id, reply_id, "reply {i} is not the ID of the {i}th entry");
        assert_eq!(fields, &vec![("n".to_string(), i.to_string())]);
    }
}

#[test]
fn raw_pipelined_commands_reply_in_order() {
    let server = Server::start(&[]);
    let mut raw = server.raw();
    let mut bytes = Vec::new();
    for i in 0..200 {
        bytes.extend(encode(&["ECHO", &i.to_string()]));
    }
    // Inline and multibulk commands mix.
    bytes.extend(b"PING\r\n");
    raw.write_all(&bytes).unwrap();
    for i in 0..200 {
        let expected = format!("${}\r\n{i}\r\n", i.to_string().len());
        assert_eq!(read_reply(&mut raw), expected.as_bytes());
    }
    assert_eq!(read_reply(&mut raw), b"+PONG\r\n");
}

// ---------------------------------------------------------------------------------------------
// 3. Protocol errors
// ---------------------------------------------------------------------------------------------

#[test]
fn protocol_errors_close_only_the_offending_connection() {
    let server = Server::start(&[]);
    let mut bystander = server.conn();
    let cases: [(&[u8], &[u8]); 4] = [
        (
            b"*1\r\n$-5\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*abc\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n+PING\r\n",
            b"-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            b"*1\r\n$99999999999999\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
    ];
    for (bytes, expected) in cases {
        let mut raw = server.raw();
        // A good command first: it is answered before the bad one closes the connection.
        let mut request = encode(&["PING"]);
        request.extend(bytes);
        raw.write_all(&request).unwrap();
        let mut expect = b"+PONG\r\n".to_vec();
        expect.extend(expected);
        assert_eq!(
            String::from_utf8_lossy(&read_to_close(&mut raw)),
            String::from_utf8_lossy(&expect),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(run(&mut bystander, &["PING"]), simple("PONG"));
    }
}

#[test]
fn inline_commands_work_over_raw_tcp() {
    let server = Server::start(&[]);
    let mut raw = server.raw();
    raw.write_all(b"PING\r\n").unwrap();
    assert_eq!(read_reply(&mut raw), b"+PONG\r\n");
    // Empty lines are skipped; a bare `\n` ends a line too.
    raw.write_all(b"\r\n  \r\nECHO hello\n").unwrap();
    assert_eq!(read_reply(&mut raw), b"$5\r\nhello\r\n");
    raw.write_all(b"XADD s 1-0 f \"two words\"\r\nXRANGE s - +\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut raw), b"$3\r\n1-0\r\n");
    assert_eq!(
        read_reply(&mut raw),
        b"*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$9\r\ntwo words\r\n"
    );
    raw.write_all(b"ECHO \"unbalanced\r\n").unwrap();
    assert_eq!(
        read_to_close(&mut raw),
        b"-ERR Protocol error: unbalanced quotes in request\r\n"
    );
}

#[test]
fn a_huge_declared_bulk_is_not_allocated() {
    let server = Server::start(&[]);
    let mut bystander = server.conn();
    let before = resident_bytes(server.pid());
    // Within the 512 MB limit: the server waits for the data without reserving room for it.
    let mut raw = server.raw();
    raw.write_all(b"*2\r\n$4\r\nECHO\r\n$536870912\r\n")
        .unwrap();
    raw.write_all(&[b'x'; 4096]).unwrap();
    // Beyond the limit: refused at once.
    let mut refused = server.raw();
    refused
        .write_all(b"*2\r\n$4\r\nECHO\r\n$536870913\r\n")
        .unwrap();
    assert_eq!(
        read_to_close(&mut refused),
        b"-ERR Protocol error: invalid bulk length\r\n"
    );
    // The server stays responsive, and did not allocate half a gigabyte.
    assert_eq!(run(&mut bystander, &["PING"]), simple("PONG"));
    if let (Some(before), Some(after)) = (before, resident_bytes(server.pid())) {
        assert!(
            after < before + (64 << 20),
            "resident memory grew from {before} to {after} bytes"
        );
    }
    drop(raw);
    assert_eq!(run(&mut bystander, &["PING"]), simple("PONG"));
}

#[test]
fn the_configured_bulk_limit_applies() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "# a small limit\nproto-max-bulk-len 1000\nappendfsync no\n",
    )
    .unwrap();
    let path = config.path().to_str().unwrap().to_string();
    let server = Server::start(&["--config", &path]);
    let mut con = server.conn();
    let limit = pairs(&run(&mut con, &["CONFIG", "GET", "proto-max-bulk-len"]));
    assert_eq!(text(&limit[0].1), "1000");
    let fsync = pairs(&run(&mut con, &["CONFIG", "GET", "appendfsync"]));
    assert_eq!(text(&fsync[0].1), "no");
    let fits = "y".repeat(1000);
    assert_eq!(run(&mut con, &["ECHO", &fits]), bulk(&fits));
    let mut raw = server.raw();
    raw.write_all(&encode(&["ECHO", &"y".repeat(1001)]))
        .unwrap();
    assert_eq!(
        read_to_close(&mut raw),
        b"-ERR Protocol error: invalid bulk length\r\n"
    );
    assert_eq!(run(&mut con, &["PING"]), simple("PONG"));
}

// ---------------------------------------------------------------------------------------------
// 4. Authentication
// ---------------------------------------------------------------------------------------------

#[test]
fn commands_need_auth_when_a_password_is_set() {
    let server = Server::start(&["--requirepass", "secret"]);
    let mut con = server.anonymous_conn();
    assert_eq!(
        error(&mut con, &["PING"]),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        error(&mut con, &["XADD", "s", "*", "f", "v"]),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        error(&mut con, &["AUTH", "wrong"]),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        error(&mut con, &["AUTH", "nobody", "secret"]),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        error(&mut con, &["HELLO", "3"]),
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
    );
    assert_eq!(run(&mut con, &["AUTH", "secret"]), ok());
    assert_eq!(run(&mut con, &["PING"]), simple("PONG"));
    query::<String>(&mut con, &["XADD", "s", "1-0", "f", "v"]);

    let mut other = server.anonymous_conn();
    assert_eq!(
        error(&mut other, &["XLEN", "s"]),
        "NOAUTH Authentication required."
    );
    let hello = run(&mut other, &["HELLO", "3", "AUTH", "default", "secret"]);
    assert_eq!(field(&hello, "proto"), Value::Int(3));
    assert_eq!(query::<i64>(&mut other, &["XLEN", "s"]), 1);

    // A wrong password in HELLO changes nothing.
    let mut third = server.anonymous_conn();
    assert_eq!(
        error(&mut third, &["HELLO", "3", "AUTH", "default", "nope"]),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        error(&mut third, &["PING"]),
        "NOAUTH Authentication required."
    );

    // The password in the URL (the client sends AUTH itself).
    let mut url = server.conn();
    assert_eq!(query::<i64>(&mut url, &["XLEN", "s"]), 1);
}

#[test]
fn auth_without_a_password_configured_is_an_error() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(
        error(&mut con, &["AUTH", "secret"]),
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Streams
// ---------------------------------------------------------------------------------------------

#[test]
fn xadd_ids_and_errors() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(
        query::<String>(&mut con, &["XADD", "s", "1-1", "a", "1"]),
        "1-1"
    );
    let too_small =
        "ERR The ID specified in XADD is equal or smaller than the target stream top item";
    assert_eq!(error(&mut con, &["XADD", "s", "1-1", "a", "1"]), too_small);
    assert_eq!(error(&mut con, &["XADD", "s", "1-0", "a", "1"]), too_small);
    assert_eq!(error(&mut con, &["XADD", "s", "1", "a", "1"]), too_small);
    assert_eq!(
        error(&mut con, &["XADD", "fresh", "0-0", "a", "1"]),
        "ERR The ID specified in XADD must be greater than 0-0"
    );
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "fresh"]), 0);
    assert_eq!(
        query::<String>(&mut con, &["XADD", "s", "5-*", "a", "2"]),
        "5-0"
    );
    assert_eq!(
        query::<String>(&mut con, &["XADD", "s", "5-*", "a", "3"]),
        "5-1"
    );
    assert_eq!(error(&mut con, &["XADD", "s", "4-*", "a", "1"]), too_small);
    assert_eq!(
        query::<String>(&mut con, &["XADD", "s", "7", "a", "4"]),
        "7-0"
    );
    let auto = query::<String>(&mut con, &["XADD", "s", "*", "a", "5"]);
    let (ms, seq) = auto.split_once('-').expect("ms-seq");
    let ms: u64 = ms.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(ms.abs_diff(now) < 60_000, "{auto} is not about now ({now})");
    assert!(seq.parse::<u64>().is_ok());
    assert_eq!(
        error(&mut con, &["XADD", "s", "bad", "a", "1"]),
        "ERR Invalid stream ID specified as stream command argument"
    );
    assert_eq!(
        error(&mut con, &["XADD", "s", "*", "a"]),
        "ERR wrong number of arguments for 'xadd' command"
    );
    assert_eq!(query::<i64>(&mut con, &["XLEN", "s"]), 5);
    assert_eq!(query::<i64>(&mut con, &["XLEN", "missing"]), 0);
    assert_eq!(
        entries(&run(&mut con, &["XRANGE", "s", "-", "+"]))[0],
        ("1-1".into(), fields(&[("a", "1")]))
    );
    // Many fields, in order, binary-safe.
    let id = query::<String>(
        &mut con,
        &["XADD", "s", "*", "z", "1", "a", "", "m", "x\r\ny"],
    );
    assert_eq!(
        entry(&items(&run(&mut con, &["XRANGE", "s", &id, &id]))[0]).1,
        fields(&[("z", "1"), ("a", ""), ("m", "x\r\ny")])
    );
    // NOMKSTREAM on a missing key: nil, and no key.
    assert_eq!(
        run(&mut con, &["XADD", "nokey", "NOMKSTREAM", "*", "f", "v"]),
        Value::Nil
    );
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "nokey"]), 0);
    let id = query::<String>(&mut con, &["XADD", "s", "NOMKSTREAM", "*", "f", "v"]);
    assert_eq!(
        ids(&run(&mut con, &["XREVRANGE", "s", "+", "-", "COUNT", "1"])),
        vec![id]
    );
    // Trimming as part of XADD.
    query::<String>(&mut con, &["XADD", "s", "MAXLEN", "2", "*", "f", "v"]);
    assert_eq!(query::<i64>(&mut con, &["XLEN", "s"]), 2);
}

#[test]
fn ranges_deletes_and_trims() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    for i in 1..=10 {
        let id = format!("{i}-0");
        query::<String>(&mut con, &["XADD", "r", &id, "n", &i.to_string()]);
    }
    let range = |con: &mut redis::Connection, args: &[&str]| ids(&run(con, args));
    let all: Vec<String> = (1..=10).map(|i| format!("{i}-0")).collect();
    assert_eq!(range(&mut con, &["XRANGE", "r", "-", "+"]), all);
    assert_eq!(
        range(&mut con, &["XRANGE", "r", "-", "+", "COUNT", "3"]),
        strings(&["1-0", "2-0", "3-0"])
    );
    assert_eq!(
        range(&mut con, &["XRANGE", "r", "(3-0", "+", "COUNT", "2"]),
        strings(&["4-0", "5-0"])
    );
    assert_eq!(
        range(&mut con, &["XRANGE", "r", "2", "4"]),
        strings(&["2-0", "3-0", "4-0"])
    );
    assert_eq!(
        range(&mut con, &["XRANGE", "r", "(2-0", "(5-0"]),
        strings(&["3-0", "4-0"])
    );
    assert_eq!(
        range(&mut con, &["XREVRANGE", "r", "+", "-", "COUNT", "2"]),
        strings(&["10-0", "9-0"])
    );
    assert_eq!(
        range(&mut con, &["XREVRANGE", "r", "(10-0", "(7-0"]),
        strings(&["9-0", "8-0"])
    );
    assert_eq!(
        range(&mut con, &["XRANGE", "missing", "-", "+"]),
        Vec::<String>::new()
    );
    assert_eq!(
        range(&mut con, &["XRANGE", "r", "5", "3"]),
        Vec::<String>::new()
    );
    assert_eq!(
        error(&mut con, &["XRANGE", "r", "x", "+"]),
        "ERR Invalid stream ID specified as stream command argument"
    );
    assert_eq!(
        error(&mut con, &["XRANGE", "r", "-", "+", "COUNT"]),
        "ERR syntax error"
    );
    assert_eq!(
        entries(&run(&mut con, &["XRANGE", "r", "3-0", "3-0"])),
        vec![("3-0".to_string(), fields(&[("n", "3")]))]
    );

    assert_eq!(
        query::<i64>(&mut con, &["XDEL", "r", "2-0", "3-0", "99-0"]),
        2
    );
    assert_eq!(query::<i64>(&mut con, &["XDEL", "r", "2-0"]), 0);
    assert_eq!(query::<i64>(&mut con, &["XLEN", "r"]), 8);
    // Left: 1, 4, 5, 6, 7, 8, 9, 10.
    assert_eq!(query::<i64>(&mut con, &["XTRIM", "r", "MAXLEN", "5"]), 3);
    assert_eq!(
        range(&mut con, &["XRANGE", "r", "-", "+"]),
        strings(&["6-0", "7-0", "8-0", "9-0", "10-0"])
    );
    assert_eq!(query::<i64>(&mut con, &["XTRIM", "r", "MINID", "8"]), 2);
    assert_eq!(
        range(&mut con, &["XRANGE", "r", "-", "+"]),
        strings(&["8-0", "9-0", "10-0"])
    );
    assert_eq!(
        query::<i64>(&mut con, &["XTRIM", "r", "MAXLEN", "=", "10"]),
        0
    );
    assert_eq!(
        query::<i64>(&mut con, &["XTRIM", "missing", "MAXLEN", "0"]),
        0
    );
    assert_eq!(
        error(&mut con, &["XTRIM", "r", "LIMIT", "0"]),
        "ERR syntax error, XTRIM must be called with a trimming strategy"
    );
    // Deleting every entry leaves the (empty) stream and its last ID.
    assert_eq!(query::<i64>(&mut con, &["XTRIM", "r", "MAXLEN", "0"]), 3);
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "r"]), 1);
    assert_eq!(
        error(&mut con, &["XADD", "r", "10-0", "f", "v"]),
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    );
}

#[test]
fn xsetid_moves_the_last_id() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    query::<String>(&mut con, &["XADD", "e", "1-0", "f", "v"]);
    query::<String>(&mut con, &["XADD", "e", "2-0", "f", "v"]);
    assert_eq!(
        error(&mut con, &["XSETID", "e", "1-0"]),
        "ERR The ID specified in XSETID is smaller than the target stream top item"
    );
    assert_eq!(
        error(&mut con, &["XSETID", "missing", "1-0"]),
        "ERR no such key"
    );
    assert_eq!(run(&mut con, &["XSETID", "e", "50-0"]), ok());
    let info = run(&mut con, &["XINFO", "STREAM", "e"]);
    assert_eq!(text(&field(&info, "last-generated-id")), "50-0");
    assert_eq!(int(&field(&info, "length")), 2);
    assert_eq!(
        error(&mut con, &["XADD", "e", "50-0", "f", "v"]),
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    );
    assert_eq!(
        query::<String>(&mut con, &["XADD", "e", "50-*", "f", "v"]),
        "50-1"
    );
    // On a stream whose entries were all deleted, any ID past the last one is allowed.
    assert_eq!(query::<i64>(&mut con, &["XTRIM", "e", "MAXLEN", "0"]), 3);
    assert_eq!(
        run(
            &mut con,
            &[
                "XSETID",
                "e",
                "60-0",
                "ENTRIESADDED",
                "9",
                "MAXDELETEDID",
                "55-0"
            ]
        ),
        ok()
    );
    let info = run(&mut con, &["XINFO", "STREAM", "e"]);
    assert_eq!(text(&field(&info, "last-generated-id")), "60-0");
    assert_eq!(int(&field(&info, "entries-added")), 9);
    assert_eq!(text(&field(&info, "max-deleted-entry-id")), "55-0");
}

#[test]
fn xread_reads_after_ids() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    for i in 1..=5 {
        query::<String>(
            &mut con,
            &["XADD", "a", &format!("{i}-0"), "n", &i.to_string()],
        );
    }
    query::<String>(&mut con, &["XADD", "b", "7-0", "n", "7"]);
    assert_eq!(
        read_ids(&run(
            &mut con,
            &["XREAD", "COUNT", "2", "STREAMS", "a", "0"]
        )),
        vec![("a".into(), strings(&["1-0", "2-0"]))]
    );
    assert_eq!(
        read_ids(&run(&mut con, &["XREAD", "STREAMS", "a", "3-0"])),
        vec![("a".into(), strings(&["4-0", "5-0"]))]
    );
    // Several keys; a key with nothing new and a missing key are left out.
    assert_eq!(
        read_ids(&run(
            &mut con,
            &[
                "XREAD", "COUNT", "1", "STREAMS", "a", "missing", "b", "1-0", "0", "0"
            ]
        )),
        vec![
            ("a".into(), strings(&["2-0"])),
            ("b".into(), strings(&["7-0"]))
        ]
    );
    // Nothing new anywhere: nil.
    assert_eq!(
        run(&mut con, &["XREAD", "STREAMS", "a", "b", "5-0", "$"]),
        Value::Nil
    );
    // `$` and nothing new: nil without BLOCK.
    assert_eq!(run(&mut con, &["XREAD", "STREAMS", "a", "$"]), Value::Nil);
    assert_eq!(
        run(&mut con, &["XREAD", "STREAMS", "missing", "0"]),
        Value::Nil
    );
    assert_eq!(
        error(&mut con, &["XREAD", "STREAMS", "a", "b", "0"]),
        "ERR Unbalanced 'xread' list of streams: for each stream key an ID, '+', or '$' must be specified."
    );
    assert_eq!(
        error(&mut con, &["XREAD", "STREAMS", "a", ">"]),
        "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."
    );
}

#[test]
fn xread_block_is_woken_by_an_xadd() {
    let server = Server::start(&[]);
    let mut writer = server.conn();
    let mut reader = server.conn();
    query::<String>(&mut writer, &["XADD", "q", "*", "old", "1"]);
    let blocked = thread::spawn(move || {
        let start = Instant::now();
        let reply = run(
            &mut reader,
            &["XREAD", "BLOCK", "8000", "STREAMS", "q", "$"],
        );
        (reply, start.elapsed())
    });
    wait_blocked(&mut writer, 1);
    // A write to another key does not answer the blocked read.
    query::<String>(&mut writer, &["XADD", "unrelated", "*", "f", "v"]);
    thread::sleep(Duration::from_millis(30));
    assert_eq!(blocked_clients(&mut writer), 1);
    let id = query::<String>(&mut writer, &["XADD", "q", "*", "new", "1"]);
    let (reply, elapsed) = blocked.join().unwrap();
    assert_eq!(read_ids(&reply), vec![("q".into(), vec![id])]);
    assert!(elapsed < Duration::from_secs(4), "woken after {elapsed:?}");
    assert_eq!(blocked_clients(&mut writer), 0);
}

#[test]
fn xread_block_times_out_with_nil() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let mut writer = server.conn();
    // Writes elsewhere during the wait must not extend it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noise = {
        let stop = std::sync::Arc::clone(&stop);
        thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                query::<String>(&mut writer, &["XADD", "elsewhere", "*", "f", "v"]);
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let start = Instant::now();
    let reply = run(&mut con, &["XREAD", "BLOCK", "300", "STREAMS", "q", "$"]);
    let elapsed = start.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    noise.join().unwrap();
    assert_eq!(reply, Value::Nil);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // The connection is usable afterwards.
    assert_eq!(run(&mut con, &["PING"]), simple("PONG"));
}

#[test]
fn block_inside_multi_never_blocks() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(
        run(&mut con, &["XGROUP", "CREATE", "q", "g", "$", "MKSTREAM"]),
        ok()
    );
    assert_eq!(run(&mut con, &["MULTI"]), ok());
    assert_eq!(
        run(&mut con, &["XREAD", "BLOCK", "0", "STREAMS", "q", "$"]),
        simple("QUEUED")
    );
    assert_eq!(
        run(
            &mut con,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "0",
                "STREAMS",
                "q",
                ">"
            ]
        ),
        simple("QUEUED")
    );
    let start = Instant::now();
    let replies = run(&mut con, &["EXEC"]);
    assert!(start.elapsed() < Duration::from_secs(2));
    let replies = items(&replies);
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0], Value::Nil);
    assert_eq!(replies[1], Value::Nil);
}

// ---------------------------------------------------------------------------------------------
// 6. Consumer groups
// ---------------------------------------------------------------------------------------------

#[test]
fn xgroup_create_variants() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(
        error(&mut con, &["XGROUP", "CREATE", "jobs", "g", "$"]),
        "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."
    );
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "jobs"]), 0);
    assert_eq!(
        run(
            &mut con,
            &["XGROUP", "CREATE", "jobs", "g", "$", "MKSTREAM"]
        ),
        ok()
    );
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "jobs"]), 1);
    assert_eq!(query::<i64>(&mut con, &["XLEN", "jobs"]), 0);
    assert_eq!(
        error(&mut con, &["XGROUP", "CREATE", "jobs", "g", "$"]),
        "BUSYGROUP Consumer Group name already exists"
    );
    for i in 1..=3 {
        query::<String>(
            &mut con,
            &["XADD", "jobs", &format!("{i}-0"), "n", &i.to_string()],
        );
    }
    // `$`: only entries added from now on.
    assert_eq!(
        run(&mut con, &["XGROUP", "CREATE", "jobs", "late", "$"]),
        ok()
    );
    assert_eq!(
        run(
            &mut con,
            &["XREADGROUP", "GROUP", "late", "c", "STREAMS", "jobs", ">"]
        ),
        Value::Nil
    );
    // An explicit ID: entries after it.
    assert_eq!(
        run(&mut con, &["XGROUP", "CREATE", "jobs", "mid", "1-0"]),
        ok()
    );
    assert_eq!(
        read_ids(&run(
            &mut con,
            &["XREADGROUP", "GROUP", "mid", "c", "STREAMS", "jobs", ">"]
        )),
        vec![("jobs".into(), strings(&["2-0", "3-0"]))]
    );
    let names: Vec<String> = groups_info(&mut con, "jobs")
        .iter()
        .map(|group| text(&group.iter().find(|(name, _)| name == "name").unwrap().1))
        .collect();
    assert_eq!(
        names.into_iter().collect::<BTreeSet<_>>(),
        strings(&["g", "late", "mid"])
            .into_iter()
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(
        error(
            &mut con,
            &["XREADGROUP", "GROUP", "nope", "c", "STREAMS", "jobs", ">"]
        ),
        "NOGROUP No such key 'jobs' or consumer group 'nope' in XREADGROUP with GROUP option"
    );
    assert_eq!(
        query::<i64>(&mut con, &["XGROUP", "DESTROY", "jobs", "late"]),
        1
    );
    assert_eq!(
        query::<i64>(&mut con, &["XGROUP", "DESTROY", "jobs", "late"]),
        0
    );
}

#[test]
fn reading_acking_and_claiming() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(
        run(
            &mut con,
            &["XGROUP", "CREATE", "jobs", "g", "0", "MKSTREAM"]
        ),
        ok()
    );
    for i in 1..=4 {
        query::<String>(
            &mut con,
            &["XADD", "jobs", &format!("{i}-0"), "n", &i.to_string()],
        );
    }
    let read = |con: &mut redis::Connection, consumer: &str, extra: &[&str], id: &str| {
        let mut args = vec!["XREADGROUP", "GROUP", "g", consumer];
        args.extend(extra);
        args.extend(["STREAMS", "jobs", id]);
        run(con, &args)
    };
    let alice = read(&mut con, "alice", &["COUNT", "2"], ">");
    assert_eq!(
        read_ids(&alice),
        vec![("jobs".into(), strings(&["1-0", "2-0"]))]
    );
    let (_, first) = entry(&items(&items(&items(&alice)[0])[1])[0]);
    assert_eq!(first, fields(&[("n", "1")]));
    assert_eq!(
        read_ids(&read(&mut con, "bob", &[], ">")),
        vec![("jobs".into(), strings(&["3-0", "4-0"]))]
    );
    assert_eq!(read(&mut con, "alice", &[], ">"), Value::Nil);
    // History: alice's own pending entries, delivered again.
    assert_eq!(
        read_ids(&read(&mut con, "alice", &[], "0")),
        vec![("jobs".into(), strings(&["1-0", "2-0"]))]
    );
    assert_eq!(
        read_ids(&read(&mut con, "alice", &[], "1-0")),
        vec![("jobs".into(), strings(&["2-0"]))]
    );
    // A consumer with nothing pending gets an empty history, not nil.
    assert_eq!(
        read_ids(&read(&mut con, "nobody", &[], "0")),
        vec![("jobs".into(), Vec::new())]
    );

    let summary = run(&mut con, &["XPENDING", "jobs", "g"]);
    let summary = items(&summary);
    assert_eq!(int(&summary[0]), 4);
    assert_eq!(text(&summary[1]), "1-0");
    assert_eq!(text(&summary[2]), "4-0");
    let owners: Vec<(String, String)> = items(&summary[3])
        .iter()
        .map(|pair| (text(&items(pair)[0]), text(&items(pair)[1])))
        .collect();
    assert_eq!(owners, fields(&[("alice", "2"), ("bob", "2")]));
    assert_eq!(
        pending_rows(&mut con, "jobs", "g"),
        vec![
            ("1-0".into(), "alice".into(), 2),
            ("2-0".into(), "alice".into(), 3),
            ("3-0".into(), "bob".into(), 1),
            ("4-0".into(), "bob".into(), 1),
        ]
    );
    let bob = run(&mut con, &["XPENDING", "jobs", "g", "-", "+", "10", "bob"]);
    assert_eq!(items(&bob).len(), 2);
    let limited = run(&mut con, &["XPENDING", "jobs", "g", "(1-0", "+", "1"]);
    assert_eq!(text(&items(&items(&limited)[0])[0]), "2-0");
    assert_eq!(
        error(&mut con, &["XPENDING", "jobs", "nope"]),
        "NOGROUP No such key 'jobs' or consumer group 'nope'"
    );

    assert_eq!(
        query::<i64>(&mut con, &["XACK", "jobs", "g", "1-0", "3-0", "99-0"]),
        2
    );
    assert_eq!(query::<i64>(&mut con, &["XACK", "jobs", "g", "1-0"]), 0);
    assert_eq!(query::<i64>(&mut con, &["XACK", "jobs", "nope", "2-0"]), 0);
    let summary = run(&mut con, &["XPENDING", "jobs", "g"]);
    assert_eq!(int(&items(&summary)[0]), 2);
    assert_eq!(text(&items(&summary)[1]), "2-0");

    // XCLAIM: the entry moves to carol, with one more delivery.
    let claimed = run(&mut con, &["XCLAIM", "jobs", "g", "carol", "0", "2-0"]);
    assert_eq!(
        entries(&claimed),
        vec![("2-0".to_string(), fields(&[("n", "2")]))]
    );
    // An idle time not reached: nothing claimed.
    assert_eq!(
        run(&mut con, &["XCLAIM", "jobs", "g", "dave", "3600000", "2-0"]),
        Value::Array(Vec::new())
    );
    // JUSTID: IDs only, and the delivery count is left alone.
    assert_eq!(
        run(
            &mut con,
            &["XCLAIM", "jobs", "g", "carol", "0", "4-0", "JUSTID"]
        ),
        Value::Array(vec![bulk("4-0")])
    );
    assert_eq!(
        pending_rows(&mut con, "jobs", "g"),
        vec![
            ("2-0".into(), "carol".into(), 4),
            ("4-0".into(), "carol".into(), 1),
        ]
    );

    // XAUTOCLAIM: next cursor, claimed entries, deleted IDs.
    query::<i64>(&mut con, &["XDEL", "jobs", "4-0"]);
    let auto = run(
        &mut con,
        &["XAUTOCLAIM", "jobs", "g", "dave", "0", "0-0", "COUNT", "10"],
    );
    let auto = items(&auto);
    assert_eq!(auto.len(), 3, "{auto:?}");
    assert_eq!(text(&auto[0]), "0-0");
    assert_eq!(ids(&auto[1]), strings(&["2-0"]));
    assert_eq!(auto[2], Value::Array(vec![bulk("4-0")]));
    assert_eq!(
        pending_rows(&mut con, "jobs", "g"),
        vec![("2-0".into(), "dave".into(), 5)]
    );
    let auto = run(
        &mut con,
        &["XAUTOCLAIM", "jobs", "g", "erin", "0", "-", "JUSTID"],
    );
    assert_eq!(items(&auto)[1], Value::Array(vec![bulk("2-0")]));

    // XINFO.
    let groups = run(&mut con, &["XINFO", "GROUPS", "jobs"]);
    let group = &items(&groups)[0];
    assert_eq!(text(&field(group, "name")), "g");
    assert_eq!(int(&field(group, "pending")), 1);
    assert_eq!(text(&field(group, "last-delivered-id")), "4-0");
    assert_eq!(int(&field(group, "entries-read")), 4);
    // Every consumer that read, was claimed for, or autoclaimed, by name.
    let expected: Vec<(String, i64)> = [
        ("alice", 0),
        ("bob", 0),
        ("carol", 0),
        ("dave", 0),
        ("erin", 1),
        ("nobody", 0),
    ]
    .iter()
    .map(|(name, pending)| ((*name).to_string(), *pending))
    .collect();
    assert_eq!(consumers(&mut con, "jobs", "g"), expected);
    let stream = run(&mut con, &["XINFO", "STREAM", "jobs"]);
    assert_eq!(int(&field(&stream, "length")), 3);
    assert_eq!(int(&field(&stream, "groups")), 1);
    assert_eq!(text(&field(&stream, "last-generated-id")), "4-0");
    assert_eq!(entry(&field(&stream, "first-entry")).0, "1-0");
    assert_eq!(entry(&field(&stream, "last-entry")).0, "3-0");
    assert_eq!(
        error(&mut con, &["XINFO", "CONSUMERS", "jobs", "nope"]),
        "NOGROUP No such consumer group 'nope' for key name 'jobs'"
    );
    assert_eq!(
        error(&mut con, &["XINFO", "STREAM", "missing"]),
        "ERR no such key"
    );
}

#[test]
fn xreadgroup_block_is_woken_by_an_xadd() {
    let server = Server::start(&[]);
    let mut writer = server.conn();
    let mut reader = server.conn();
    assert_eq!(
        run(
            &mut writer,
            &["XGROUP", "CREATE", "q", "g", "$", "MKSTREAM"]
        ),
        ok()
    );
    let blocked = thread::spawn(move || {
        let start = Instant::now();
        let reply = run(
            &mut reader,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "8000",
                "STREAMS",
                "q",
                ">",
            ],
        );
        (reply, start.elapsed())
    });
    wait_blocked(&mut writer, 1);
    let id = query::<String>(&mut writer, &["XADD", "q", "*", "job", "1"]);
    let (reply, elapsed) = blocked.join().unwrap();
    assert_eq!(read_ids(&reply), vec![("q".into(), vec![id.clone()])]);
    assert!(elapsed < Duration::from_secs(4), "woken after {elapsed:?}");
    assert_eq!(
        pending_rows(&mut writer, "q", "g"),
        vec![(id, "c".into(), 1)]
    );

    // And a blocked group read times out with nil.
    let start = Instant::now();
    let reply = run(
        &mut writer,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "BLOCK",
            "200",
            "STREAMS",
            "q",
            ">",
        ],
    );
    assert_eq!(reply, Value::Nil);
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[test]
fn ack_wait_redelivers_and_max_deliver_dead_letters() {
    const ACK_WAIT: Duration = Duration::from_millis(300);
    // The server keeps delivery times in whole wall-clock milliseconds: it may count a little
    // more time as passed than a monotonic clock here does.
    const SLACK: Duration = Duration::from_millis(5);
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(
        run(
            &mut con,
            &[
                "XGROUP",
                "CREATE",
                "work",
                "g",
                "$",
                "MKSTREAM",
                "ACKWAIT",
                "300",
                "MAXDELIVER",
                "2",
                "DEADLETTER",
                "dead"
            ]
        ),
        ok()
    );
    let groups = run(&mut con, &["XINFO", "GROUPS", "work", "WEIR"]);
    let group = &items(&groups)[0];
    assert_eq!(int(&field(group, "ack-wait")), 300);
    assert_eq!(int(&field(group, "max-deliver")), 2);
    assert_eq!(text(&field(group, "dead-letter")), "dead");

    let id = query::<String>(&mut con, &["XADD", "work", "*", "task", "resize"]);
    let read = |con: &mut redis::Connection, consumer: &str| {
        run(
            con,
            &["XREADGROUP", "GROUP", "g", consumer, "STREAMS", "work", ">"],
        )
    };
    let delivered_at = Instant::now();
    assert_eq!(
        read_ids(&read(&mut con, "c1")),
        vec![("work".into(), vec![id.clone()])]
    );
    // Not acknowledged, but the wait is not over: nobody else gets it yet. (Only checked when
    // the machine was quick enough for the wait to be surely not over.)
    let mut redelivered = read(&mut con, "c2");
    if delivered_at.elapsed() < ACK_WAIT - SLACK {
        assert_eq!(redelivered, Value::Nil);
    }
    // After ACKWAIT it is handed to the next reader.
    wait_until("the entry is redelivered", || {
        if redelivered == Value::Nil {
            redelivered = read(&mut con, "c2");
        }
        redelivered != Value::Nil
    });
    assert!(delivered_at.elapsed() >= ACK_WAIT - SLACK);
    assert_eq!(
        read_ids(&redelivered),
        vec![("work".into(), vec![id.clone()])]
    );
    assert_eq!(
        pending_rows(&mut con, "work", "g"),
        vec![(id.clone(), "c2".into(), 2)]
    );
    // After MAXDELIVER deliveries it goes to the dead-letter stream instead.
    thread::sleep(ACK_WAIT + Duration::from_millis(20));
    assert_eq!(read(&mut con, "c3"), Value::Nil);
    assert_eq!(pending_rows(&mut con, "work", "g"), Vec::new());
    let dead = entries(&run(&mut con, &["XRANGE", "dead", "-", "+"]));
    assert_eq!(dead.len(), 1, "{dead:?}");
    let dead_fields: Vec<(String, String)> = dead[0]
        .1
        .iter()
        .filter(|(name, _)| name != "dead-letter-stream")
        .cloned()
        .collect();
    assert_eq!(
        dead_fields,
        fields(&[
            ("task", "resize"),
            ("dead-letter-id", &id),
            ("dead-letter-group", "g"),
            ("dead-letter-deliveries", "2"),
        ])
    );
    assert!(
        dead[0]
            .1
            .iter()
            .any(|(name, _)| name == "dead-letter-stream")
    );
    // The original entry stays in its stream.
    assert_eq!(query::<i64>(&mut con, &["XLEN", "work"]), 1);
}

/// A full dead-letter stream does not make XREADGROUP fail: new entries still go out, the
/// entry that should have been dead-lettered stays pending as it was, and XINFO GROUPS says why.
#[test]
fn a_full_dead_letter_stream_does_not_fail_reads() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let create = [
        "XGROUP",
        "CREATE",
        "work",
        "g",
        "$",
        "MKSTREAM",
        "ACKWAIT",
        "100",
        "MAXDELIVER",
        "1",
        "DEADLETTER",
        "dl",
    ];
    assert_eq!(run(&mut con, &create), ok());
    query::<String>(&mut con, &["XADD", "dl", "*", "filler", "1"]);
    let full = ["XCFGSET", "dl", "DISCARD", "new", "MAXLEN", "1"];
    assert_eq!(run(&mut con, &full), ok());
    let read = |con: &mut redis::Connection, consumer: &str| {
        run(
            con,
            &["XREADGROUP", "GROUP", "g", consumer, "STREAMS", "work", ">"],
        )
    };
    let poison = query::<String>(&mut con, &["XADD", "work", "*", "task", "a"]);
    assert_eq!(
        read_ids(&read(&mut con, "c1")),
        [("work".into(), vec![poison.clone()])]
    );
    thread::sleep(Duration::from_millis(150));
    let fresh = query::<String>(&mut con, &["XADD", "work", "*", "task", "b"]);
    assert_eq!(
        read_ids(&read(&mut con, "c2")),
        [("work".into(), vec![fresh.clone()])]
    );
    assert_eq!(
        pending_rows(&mut con, "work", "g"),
        vec![(poison, "c1".into(), 1), (fresh, "c2".into(), 1)]
    );
    let groups = run(&mut con, &["XINFO", "GROUPS", "work", "WEIR"]);
    let refused = text(&field(&items(&groups)[0], "dead-letter-refused"));
    assert!(refused.contains("\"dl\" is full"), "{refused}");
    assert_eq!(query::<i64>(&mut con, &["XLEN", "dl"]), 1);
}

/// The dead letter names its source as the client knows it: the key, in whatever database.
#[test]
fn dead_letters_name_the_source_key() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    for db in ["0", "3"] {
        assert_eq!(run(&mut con, &["SELECT", db]), ok());
        assert_eq!(
            run(
                &mut con,
                &[
                    "XGROUP",
                    "CREATE",
                    "work",
                    "g",
                    "$",
                    "MKSTREAM",
                    "MAXDELIVER",
                    "1",
                    "DEADLETTER",
                    "dead"
                ]
            ),
            ok()
        );
        query::<String>(&mut con, &["XADD", "work", "*", "task", "1"]);
        let read = ["XREADGROUP", "GROUP", "g", "c", "STREAMS", "work", ">"];
        assert_eq!(read_ids(&run(&mut con, &read))[0].1.len(), 1);
        let pending = pending_rows(&mut con, "work", "g");
        assert_eq!(pending.len(), 1);
        let id = pending[0].0.clone();
        // Released unacknowledged: its next delivery would be the second, one too many.
        assert_eq!(
            query::<i64>(&mut con, &["XNACK", "work", "g", "FAIL", "IDS", "1", &id]),
            1
        );
        assert_eq!(run(&mut con, &read), Value::Nil);
        let dead = entries(&run(&mut con, &["XRANGE", "dead", "-", "+"]));
        assert_eq!(dead.len(), 1, "db {db}: {dead:?}");
        let source = dead[0]
            .1
            .iter()
            .find(|(name, _)| name == "dead-letter-stream")
            .map(|(_, value)| value.clone());
        assert_eq!(source.as_deref(), Some("work"), "db {db}");
    }
}

#[test]
fn a_blocked_group_read_gets_an_entry_whose_ack_wait_passed() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(
        run(
            &mut con,
            &[
                "XGROUP", "CREATE", "work", "g", "$", "MKSTREAM", "ACKWAIT", "100"
            ]
        ),
        ok()
    );
    let id = query::<String>(&mut con, &["XADD", "work", "*", "task", "1"]);
    assert_eq!(
        read_ids(&run(
            &mut con,
            &["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "work", ">"]
        )),
        vec![("work".into(), vec![id.clone()])]
    );
    // c2 blocks with nothing new to read; the unacknowledged entry becomes due meanwhile.
    let start = Instant::now();
    let reply = run(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c2",
            "BLOCK",
            "5000",
            "STREAMS",
            "work",
            ">",
        ],
    );
    assert_eq!(read_ids(&reply), vec![("work".into(), vec![id])]);
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "redelivered after {:?}",
        start.elapsed()
    );
}

#[test]
fn a_blocked_client_that_goes_away_takes_nothing() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(
        run(&mut con, &["XGROUP", "CREATE", "q", "g", "$", "MKSTREAM"]),
        ok()
    );
    // One client disconnects while blocked, another is killed while blocked.
    let mut gone = server.raw();
    gone.write_all(&encode(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "gone",
        "BLOCK",
        "0",
        "STREAMS",
        "q",
        ">",
    ]))
    .unwrap();
    let mut killed = server.raw();
    killed.write_all(&encode(&["CLIENT", "ID"])).unwrap();
    let reply = String::from_utf8(read_reply(&mut killed)).unwrap();
    let id = reply.trim().trim_start_matches(':').to_string();
    killed
        .write_all(&encode(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "killed",
            "BLOCK",
            "0",
            "STREAMS",
            "q",
            ">",
        ]))
        .unwrap();
    wait_blocked(&mut con, 2);
    drop(gone);
    assert_eq!(query::<i64>(&mut con, &["CLIENT", "KILL", "ID", &id]), 1);
    assert_eq!(read_to_close(&mut killed), b"");
    wait_until("both blocked clients are gone", || {
        let clients = info(&mut con, "clients");
        info_field(&clients, "connected_clients").as_deref() == Some("1")
            && info_field(&clients, "blocked_clients").as_deref() == Some("0")
    });
    // The next entry goes to a consumer that is there to get it.
    let added = query::<String>(&mut con, &["XADD", "q", "*", "job", "1"]);
    assert_eq!(int(&items(&run(&mut con, &["XPENDING", "q", "g"]))[0]), 0);
    let read = run(
        &mut con,
        &["XREADGROUP", "GROUP", "g", "here", "STREAMS", "q", ">"],
    );
    assert_eq!(read_ids(&read), vec![("q".into(), vec![added])]);
}

#[test]
fn deleting_the_key_unblocks_a_group_reader() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let mut reader = server.conn();
    assert_eq!(
        run(&mut con, &["XGROUP", "CREATE", "q", "g", "$", "MKSTREAM"]),
        ok()
    );
    let blocked = thread::spawn(move || {
        run(
            &mut reader,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "8000",
                "STREAMS",
                "q",
                ">",
            ],
        )
    });
    wait_blocked(&mut con, 1);
    assert_eq!(query::<i64>(&mut con, &["DEL", "q"]), 1);
    match blocked.join().unwrap() {
        Value::ServerError(e) => assert_eq!(
            common::error_text(&e),
            "UNBLOCKED the stream key no longer exists"
        ),
        other => panic!("expected an error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Transactions
// ---------------------------------------------------------------------------------------------

#[test]
fn multi_exec_and_discard() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(run(&mut con, &["MULTI"]), ok());
    assert_eq!(
        run(&mut con, &["XADD", "t", "1-0", "a", "1"]),
        simple("QUEUED")
    );
    assert_eq!(run(&mut con, &["XLEN", "t"]), simple("QUEUED"));
    // Fails when run, not when queued: the others still run.
    assert_eq!(
        run(&mut con, &["XADD", "t", "1-0", "a", "2"]),
        simple("QUEUED")
    );
    assert_eq!(run(&mut con, &["PING"]), simple("QUEUED"));
    assert_eq!(
        error(&mut con, &["MULTI"]),
        "ERR MULTI calls can not be nested"
    );
    let replies = run(&mut con, &["EXEC"]);
    let replies = items(&replies);
    assert_eq!(replies.len(), 4, "{replies:?}");
    assert_eq!(text(&replies[0]), "1-0");
    assert_eq!(replies[1], Value::Int(1));
    match &replies[2] {
        Value::ServerError(e) => assert_eq!(
            common::error_text(e),
            "ERR The ID specified in XADD is equal or smaller than the target stream top item"
        ),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(replies[3], simple("PONG"));

    // A command refused while queueing aborts the transaction.
    assert_eq!(run(&mut con, &["MULTI"]), ok());
    assert_eq!(
        run(&mut con, &["XADD", "t", "2-0", "a", "3"]),
        simple("QUEUED")
    );
    assert_eq!(
        error(&mut con, &["XADD", "t"]),
        "ERR wrong number of arguments for 'xadd' command"
    );
    assert_eq!(
        error(&mut con, &["EXEC"]),
        "EXECABORT Transaction discarded because of previous errors."
    );
    assert_eq!(query::<i64>(&mut con, &["XLEN", "t"]), 1);
    assert_eq!(run(&mut con, &["MULTI"]), ok());
    assert!(error(&mut con, &["NOSUCH"]).starts_with("ERR unknown command 'NOSUCH'"));
    assert_eq!(
        error(&mut con, &["EXEC"]),
        "EXECABORT Transaction discarded because of previous errors."
    );

    // DISCARD drops the queue.
    assert_eq!(run(&mut con, &["MULTI"]), ok());
    assert_eq!(
        run(&mut con, &["XADD", "t", "2-0", "a", "3"]),
        simple("QUEUED")
    );
    assert_eq!(run(&mut con, &["DISCARD"]), ok());
    assert_eq!(query::<i64>(&mut con, &["XLEN", "t"]), 1);
    assert_eq!(error(&mut con, &["EXEC"]), "ERR EXEC without MULTI");
    assert_eq!(error(&mut con, &["DISCARD"]), "ERR DISCARD without MULTI");
    // An empty transaction.
    assert_eq!(run(&mut con, &["MULTI"]), ok());
    assert_eq!(run(&mut con, &["EXEC"]), Value::Array(Vec::new()));
}

#[test]
fn exclusive_commands_inside_multi() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let mut other = server.conn();
    query::<String>(&mut con, &["XADD", "s", "1-0", "f", "v"]);
    assert_eq!(run(&mut con, &["MULTI"]), ok());
    assert_eq!(run(&mut con, &["DEBUG", "RELOAD"]), simple("QUEUED"));
    assert_eq!(
        run(&mut con, &["CONFIG", "SET", "appendfsync", "always"]),
        simple("QUEUED")
    );
    assert_eq!(run(&mut con, &["XLEN", "s"]), simple("QUEUED"));
    assert_eq!(
        run(&mut con, &["EXEC"]),
        Value::Array(vec![ok(), ok(), Value::Int(1)])
    );
    // The server still serves everyone.
    assert_eq!(run(&mut other, &["PING"]), simple("PONG"));
    let config = pairs(&run(&mut other, &["CONFIG", "GET", "appendfsync"]));
    assert_eq!(text(&config[0].1), "always");
}

#[test]
fn exec_runs_without_interleaving() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let mut other = server.conn();
    assert_eq!(run(&mut con, &["MULTI"]), ok());
    for _ in 0..50 {
        assert_eq!(
            run(&mut con, &["XADD", "t", "*", "from", "multi"]),
            simple("QUEUED")
        );
    }
    // Another client's writes meanwhile are not part of the transaction.
    query::<String>(&mut other, &["XADD", "t", "*", "from", "other"]);
    let replies = run(&mut con, &["EXEC"]);
    assert_eq!(items(&replies).len(), 50);
    let stored = entries(&run(&mut con, &["XRANGE", "t", "-", "+"]));
    assert_eq!(stored.len(), 51);
    assert_eq!(stored[0].1, fields(&[("from", "other")]));
    assert!(
        stored[1..]
            .iter()
            .all(|(_, f)| f == &fields(&[("from", "multi")]))
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Keyspace and server commands
// ---------------------------------------------------------------------------------------------

#[test]
fn keyspace_commands() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    for key in ["k1", "k2", "other:1"] {
        query::<String>(&mut con, &["XADD", key, "1-0", "f", key]);
    }
    assert_eq!(
        query::<i64>(&mut con, &["EXISTS", "k1", "k2", "nope", "k1"]),
        3
    );
    assert_eq!(run(&mut con, &["TYPE", "k1"]), simple("stream"));
    assert_eq!(run(&mut con, &["TYPE", "nope"]), simple("none"));
    let keys = |con: &mut redis::Connection, pattern: &str| {
        query::<Vec<String>>(con, &["KEYS", pattern])
            .into_iter()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(keys(&mut con, "k*"), ["k1", "k2"].map(String::from).into());
    assert_eq!(keys(&mut con, "*").len(), 3);
    assert_eq!(
        keys(&mut con, "other:?"),
        ["other:1"].map(String::from).into()
    );
    assert_eq!(query::<i64>(&mut con, &["DBSIZE"]), 3);

    assert_eq!(run(&mut con, &["RENAME", "k1", "k3"]), ok());
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "k1"]), 0);
    assert_eq!(
        entries(&run(&mut con, &["XRANGE", "k3", "-", "+"])),
        vec![("1-0".to_string(), fields(&[("f", "k1")]))]
    );
    assert_eq!(error(&mut con, &["RENAME", "nope", "x"]), "ERR no such key");
    assert_eq!(query::<i64>(&mut con, &["DEL", "k2", "k3", "nope"]), 2);
    assert_eq!(query::<i64>(&mut con, &["DBSIZE"]), 1);

    // SCAN visits every key exactly once.
    let all: BTreeSet<String> = (0..25).map(|i| format!("key:{i}")).collect();
    for key in &all {
        query::<String>(&mut con, &["XADD", key, "*", "f", "v"]);
    }
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    let mut rounds = 0;
    loop {
        let reply = run(&mut con, &["SCAN", &cursor, "MATCH", "key:*", "COUNT", "7"]);
        let reply = items(&reply);
        cursor = text(&reply[0]);
        seen.extend(items(&reply[1]).iter().map(text));
        rounds += 1;
        assert!(rounds < 100, "SCAN does not finish");
        if cursor == "0" {
            break;
        }
    }
    assert!(rounds > 1, "COUNT 7 over 26 keys takes more than one call");
    assert_eq!(seen.len(), all.len(), "duplicates: {seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), all);
    let reply = run(&mut con, &["SCAN", "0", "MATCH", "key:1*", "COUNT", "1000"]);
    assert_eq!(text(&items(&reply)[0]), "0");
    assert_eq!(items(&items(&reply)[1]).len(), 11);

    // FLUSHDB empties this database only; FLUSHALL all of them.
    assert_eq!(run(&mut con, &["SELECT", "1"]), ok());
    query::<String>(&mut con, &["XADD", "in-db-1", "*", "f", "v"]);
    assert_eq!(run(&mut con, &["SELECT", "0"]), ok());
    assert_eq!(run(&mut con, &["FLUSHDB"]), ok());
    assert_eq!(query::<i64>(&mut con, &["DBSIZE"]), 0);
    assert_eq!(run(&mut con, &["SELECT", "1"]), ok());
    assert_eq!(query::<i64>(&mut con, &["DBSIZE"]), 1);
    assert_eq!(run(&mut con, &["FLUSHALL"]), ok());
    assert_eq!(query::<i64>(&mut con, &["DBSIZE"]), 0);
    assert_eq!(run(&mut con, &["SELECT", "0"]), ok());
    assert_eq!(query::<i64>(&mut con, &["DBSIZE"]), 0);
}

#[test]
fn info_reports_how_writers_share_flushes() {
    let server = Server::start(&["--fsync", "always"]);
    let mut con = server.conn();
    let figures = |con: &mut redis::Connection| -> [u64; 4] {
        let text = info(con, "persistence");
        ["rounds", "requests", "usec", "max_usec"].map(|name| {
            let field = format!("weir_flush_{name}");
            info_field(&text, &field)
                .unwrap_or_else(|| panic!("{field} in {text}"))
                .parse()
                .unwrap()
        })
    };
    let [rounds_before, requests_before, ..] = figures(&mut con);
    for n in 0..20 {
        query::<String>(&mut con, &["XADD", "s", "*", "n", &n.to_string()]);
    }
    let [rounds, requests, usec, max_usec] = figures(&mut con);
    // One connection waits for each XADD before sending the next: a round apiece.
    assert!(
        requests - requests_before >= 20,
        "{requests_before} -> {requests}"
    );
    assert!(rounds - rounds_before >= 20, "{rounds_before} -> {rounds}");
    assert!(rounds <= requests && max_usec <= usec && max_usec > 0);
}

#[test]
fn a_pipeline_of_writes_waits_for_one_flush() {
    let server = Server::start(&["--fsync", "always"]);
    let mut con = server.conn();
    let requests = |con: &mut redis::Connection| -> u64 {
        let text = info(con, "persistence");
        info_field(&text, "weir_flush_requests")
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("weir_flush_requests in {text}"))
    };
    query::<String>(&mut con, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    let before = requests(&mut con);
    let mut pipe = redis::pipe();
    for n in 0..100 {
        pipe.cmd("XADD").arg("s").arg("*").arg("n").arg(n).ignore();
    }
    pipe.cmd("XREADGROUP")
        .arg(&["GROUP", "g", "c", "COUNT", "50", "STREAMS", "s", ">"])
        .ignore();
    pipe.cmd("XACK").arg(&["s", "g", "0-1"]).ignore();
    pipe.cmd("XLEN").arg("s");
    let (len,): (u64,) = pipe.query(&mut con).unwrap();
    assert_eq!(len, 100);
    // The pipeline arrives in one or a few reads; each batch read waits for one flush, where
    // waiting per write would take 102.
    let shared = requests(&mut con) - before;
    assert!((1..=10).contains(&shared), "{shared} flush requests");
}

#[test]
fn info_config_and_command() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    query::<String>(&mut con, &["XADD", "s", "*", "f", "v"]);
    let all = info(&mut con, "");
    for section in [
        "# Server",
        "# Clients",
        "# Persistence",
        "# Stats",
        "# Keyspace",
        "# Weir",
    ] {
        assert!(all.contains(section), "no {section} in {all}");
    }
    assert_eq!(
        info_field(&all, "tcp_port"),
        Some(server.port().to_string())
    );
    assert_eq!(
        info_field(&all, "process_id"),
        Some(server.pid().to_string())
    );
    assert_eq!(
        info_field(&all, "db0").as_deref(),
        Some("keys=1,expires=0,avg_ttl=0")
    );
    assert_eq!(info_field(&all, "streams").as_deref(), Some("1"));
    let persistence = info(&mut con, "persistence");
    assert!(persistence.contains("# Persistence"));
    assert!(!persistence.contains("# Server"), "{persistence}");
    assert_eq!(
        info_field(&persistence, "appendfsync").as_deref(),
        Some("everysec")
    );

    let config = pairs(&run(&mut con, &["CONFIG", "GET", "appendfsync"]));
    assert_eq!(config.len(), 1);
    assert_eq!(config[0].0, "appendfsync");
    assert_eq!(text(&config[0].1), "everysec");
    assert_eq!(
        error(&mut con, &["CONFIG", "SET", "no-such-parameter", "1"]),
        "ERR Unknown option or number of arguments for CONFIG SET - 'no-such-parameter'"
    );
    assert_eq!(
        error(&mut con, &["CONFIG", "SET", "appendfsync", "sometimes"]),
        "ERR CONFIG SET failed (possibly related to argument 'appendfsync') - argument(s) must be one of the following: always, everysec, no"
    );
    // A new fsync policy reopens the store; the data stays.
    assert_eq!(
        run(&mut con, &["CONFIG", "SET", "appendfsync", "always"]),
        ok()
    );
    let config = pairs(&run(&mut con, &["CONFIG", "GET", "append*"]));
    assert!(
        config
            .iter()
            .any(|(k, v)| k == "appendfsync" && text(v) == "always")
    );
    assert_eq!(query::<i64>(&mut con, &["XLEN", "s"]), 1);

    let count = query::<i64>(&mut con, &["COMMAND", "COUNT"]);
    assert!(count > 0);
    let listed = query::<Vec<String>>(&mut con, &["COMMAND", "LIST"]);
    let commands = listed.iter().filter(|name| !name.contains('|')).count();
    assert_eq!(commands as i64, count);
    for name in ["xadd", "xreadgroup", "xautoclaim", "multi", "info"] {
        assert!(listed.iter().any(|l| l == name), "{name} not in {listed:?}");
    }
    let xadd = run(&mut con, &["COMMAND", "INFO", "xadd"]);
    assert_eq!(text(&items(&items(&xadd)[0])[0]), "xadd");
    assert_eq!(items(&items(&xadd)[0])[1], Value::Int(-5));
}

// ---------------------------------------------------------------------------------------------
// 9. Durability
// ---------------------------------------------------------------------------------------------

/// Everything a restart must keep: the entries, and the group's position, pending list,
/// delivery counts and consumers.
#[derive(Debug, PartialEq)]
struct Snapshot {
    len: i64,
    entries: Vec<(String, Vec<(String, String)>)>,
    summary: Value,
    pending: Vec<(String, String, i64)>,
    groups: Vec<Vec<(String, Value)>>,
    consumers: Vec<(String, i64)>,
    stream: Vec<(String, Value)>,
}

fn snapshot(con: &mut redis::Connection) -> Snapshot {
    Snapshot {
        len: query(con, &["XLEN", "d"]),
        entries: entries(&run(con, &["XRANGE", "d", "-", "+"])),
        summary: run(con, &["XPENDING", "d", "g"]),
        pending: pending_rows(con, "d", "g"),
        groups: groups_info(con, "d"),
        consumers: consumers(con, "d", "g"),
        stream: pairs(&run(con, &["XINFO", "STREAM", "d"])),
    }
}

/// Entries, reads, acknowledgements, a re-read and a claim: every kind of group state.
fn populate(con: &mut redis::Connection, count: usize) -> Vec<String> {
    assert_eq!(
        run(con, &["XGROUP", "CREATE", "d", "g", "$", "MKSTREAM"]),
        ok()
    );
    let mut added = Vec::new();
    for i in 0..count {
        added.push(query::<String>(
            con,
            &["XADD", "d", "*", "n", &i.to_string()],
        ));
    }
    let read = |con: &mut redis::Connection, consumer: &str, n: usize| {
        let reply = run(
            con,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                consumer,
                "COUNT",
                &n.to_string(),
                "STREAMS",
                "d",
                ">",
            ],
        );
        read_ids(&reply).remove(0).1
    };
    let first = read(con, "c1", 30);
    let second = read(con, "c2", 20);
    assert_eq!(first.len() + second.len(), 50);
    let mut ack = vec!["XACK", "d", "g"];
    ack.extend(first[..10].iter().map(String::as_str));
    ack.extend(second[..5].iter().map(String::as_str));
    assert_eq!(query::<i64>(con, &ack), 15);
    // c1's remaining 20 entries delivered a second time.
    let history = run(
        con,
        &["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "d", "0"],
    );
    assert_eq!(read_ids(&history)[0].1.len(), 20);
    let claimed = run(
        con,
        &["XCLAIM", "d", "g", "c3", "0", &second[5], &second[6]],
    );
    assert_eq!(items(&claimed).len(), 2);
    added
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &["--fsync", "always"]);
    let mut con = server.conn();
    let added = populate(&mut con, 80);
    let before = snapshot(&mut con);
    assert_eq!(before.len, 80);
    assert_eq!(before.pending.len(), 35);
    assert!(
        before
            .pending
            .iter()
            .any(|(_, _, deliveries)| *deliveries == 2)
    );
    server.kill();
    drop(con);

    let server = Server::start_in(dir.path(), &["--fsync", "always"]);
    let mut con = server.conn();
    let after = snapshot(&mut con);
    assert_eq!(after, before);
    assert_eq!(
        after
            .entries
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>(),
        added
    );
    let persistence = info(&mut con, "persistence");
    assert_eq!(
        info_field(&persistence, "weir_last_open_clean").as_deref(),
        Some("0"),
        "{persistence}"
    );
    // The group carries on where it was.
    let next = run(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c4",
            "COUNT",
            "1",
            "STREAMS",
            "d",
            ">",
        ],
    );
    assert_eq!(read_ids(&next)[0].1, vec![added[50].clone()]);
}

#[test]
fn debug_reload_keeps_everything() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    populate(&mut con, 60);
    let before = snapshot(&mut con);
    assert_eq!(run(&mut con, &["DEBUG", "RELOAD"]), ok());
    assert_eq!(snapshot(&mut con), before);
    let persistence = info(&mut con, "persistence");
    assert_eq!(
        info_field(&persistence, "weir_last_open_clean").as_deref(),
        Some("1")
    );
    // Another connection sees the same.
    let mut other = server.conn();
    assert_eq!(snapshot(&mut other), before);
    // A reader blocked across a reload is woken by a write to the reopened store.
    let mut reader = server.conn();
    let blocked = thread::spawn(move || {
        run(
            &mut reader,
            &["XREAD", "BLOCK", "8000", "STREAMS", "d", "$"],
        )
    });
    wait_blocked(&mut con, 1);
    assert_eq!(run(&mut con, &["DEBUG", "RELOAD"]), ok());
    let added = query::<String>(&mut con, &["XADD", "d", "*", "after", "reload"]);
    assert_eq!(
        read_ids(&blocked.join().unwrap()),
        vec![("d".into(), vec![added])]
    );
}

/// Starts the server again on `dir` and checks that it found the directory closed cleanly.
fn restart_after_a_clean_stop(dir: &std::path::Path) -> (Server, redis::Connection) {
    let server = Server::start_in(dir, &[]);
    let mut con = server.conn();
    let persistence = info(&mut con, "persistence");
    assert_eq!(
        info_field(&persistence, "weir_last_open_clean").as_deref(),
        Some("1"),
        "{persistence}"
    );
    (server, con)
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &[]);
    let mut con = server.conn();
    populate(&mut con, 60);
    let before = snapshot(&mut con);
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    drop(con);

    let (_server, mut con) = restart_after_a_clean_stop(dir.path());
    assert_eq!(snapshot(&mut con), before);
}

#[test]
fn shutdown_command_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &[]);
    let mut con = server.conn();
    populate(&mut con, 60);
    let before = snapshot(&mut con);
    assert_eq!(
        common::error(&mut con, &["SHUTDOWN", "ABORT"]),
        "ERR No shutdown in progress."
    );
    assert_eq!(
        common::error(&mut con, &["SHUTDOWN", "SAVE", "NOSAVE"]),
        "ERR syntax error"
    );
    assert_eq!(run(&mut con, &["MULTI"]), ok());
    assert_eq!(
        common::error(&mut con, &["SHUTDOWN"]),
        "ERR Command not allowed inside a transaction"
    );
    assert!(common::error(&mut con, &["EXEC"]).starts_with("EXECABORT"));
    // Like Redis, a successful SHUTDOWN drops the connection instead of replying.
    assert!(common::try_run(&mut con, &["SHUTDOWN", "NOSAVE"]).is_err());
    let status = server.wait_for_exit();
    assert!(status.success(), "exit status {status}");

    let (_server, mut con) = restart_after_a_clean_stop(dir.path());
    assert_eq!(snapshot(&mut con), before);
}

#[test]
fn sigterm_does_not_wait_for_blocked_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &[]);
    let mut con = server.conn();
    let mut reader = server.conn();
    query::<String>(&mut con, &["XADD", "s", "*", "f", "v"]);
    let blocked = thread::spawn(move || {
        // Ends with an error or nothing when the server goes away.
        let _ = common::try_run(&mut reader, &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
    });
    wait_blocked(&mut con, 1);
    let start = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    blocked.join().unwrap();

    let (_server, mut con) = restart_after_a_clean_stop(dir.path());
    assert_eq!(query::<i64>(&mut con, &["XLEN", "s"]), 1);
}

// ---------------------------------------------------------------------------------------------
// 10. Limits
// ---------------------------------------------------------------------------------------------

#[test]
fn maxclients_refuses_extra_connections() {
    let server = Server::start(&["--maxclients", "2"]);
    // The readiness probe may still hold its slot for a moment.
    let mut first = server.conn();
    wait_until("only this client is connected", || {
        let clients = info(&mut first, "clients");
        info_field(&clients, "connected_clients").as_deref() == Some("1")
    });
    let mut second = server.conn();
    assert_eq!(run(&mut second, &["PING"]), simple("PONG"));
    let mut third = server.raw();
    assert_eq!(
        read_to_close(&mut third),
        b"-ERR max number of clients reached\r\n"
    );
    let stats = info(&mut first, "stats");
    assert_eq!(
        info_field(&stats, "rejected_connections").as_deref(),
        Some("1")
    );
    // A slot freed is a slot available.
    drop(second);
    wait_until("the second client is gone", || {
        let clients = info(&mut first, "clients");
        info_field(&clients, "connected_clients").as_deref() == Some("1")
    });
    let mut again = server.conn();
    assert_eq!(run(&mut again, &["PING"]), simple("PONG"));
}

#[test]
fn a_group_read_with_nothing_new_creates_no_consumer() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    run(&mut con, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    let nothing = ["XREADGROUP", "GROUP", "g", "idle", "STREAMS", "s", ">"];
    assert_eq!(run(&mut con, &nothing), Value::Nil);
    let timed_out = [
        "XREADGROUP",
        "GROUP",
        "g",
        "idle",
        "BLOCK",
        "10",
        "STREAMS",
        "s",
        ">",
    ];
    assert_eq!(run(&mut con, &timed_out), Value::Nil);
    // As in Redis 7.0: only a read that hands out entries, or reads history, creates one.
    assert!(consumers(&mut con, "s", "g").is_empty());
    run(&mut con, &["XADD", "s", "1-1", "f", "v"]);
    run(
        &mut con,
        &["XREADGROUP", "GROUP", "g", "reader", "STREAMS", "s", ">"],
    );
    run(
        &mut con,
        &["XREADGROUP", "GROUP", "g", "history", "STREAMS", "s", "0"],
    );
    let names: Vec<String> = consumers(&mut con, "s", "g")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["history", "reader"]);
}
