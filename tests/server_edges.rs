//! End-to-end tests of `queue-server` at its edges: hostile glob patterns, clients that never
//! read their replies, running out of file descriptors, and the smaller limits a server exposed
//! to many clients must keep (client counts, protected mode, password retries, wake-ups of
//! blocked readers).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, encode, error, query, read_reply, run};

/// Polls `condition` every few milliseconds until it holds; fails after a generous bound.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A field of `/proc/<pid>/status` in bytes (Linux), like `RssAnon`.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let line = status
        .lines()
        .find(|line| line.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in the process status"));
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The CPU time a process has used so far, in clock ticks (Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process stat");
    // The fields after the command name, which is in parentheses; utime and stime are the
    // 14th and 15th fields of the whole line.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Glob patterns
// ---------------------------------------------------------------------------------------------

#[test]
fn keys_and_scan_with_sixty_thousand_stars_answer() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    run(&mut con, &["XADD", "orders", "*", "f", "v"]);
    let pattern = "*".repeat(60_000);
    let keys: Vec<String> = query(&mut con, &["KEYS", &format!("{pattern}s")]);
    assert_eq!(keys, ["orders"]);
    let (cursor, page): (String, Vec<String>) =
        query(&mut con, &["SCAN", "0", "MATCH", &format!("{pattern}x")]);
    assert_eq!((cursor.as_str(), page.len()), ("0", 0));
    assert_eq!(query::<String>(&mut con, &["PING"]), "PONG");
}

#[test]
fn a_backtracking_pattern_leaves_the_server_responsive() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    run(&mut con, &["XADD", &"a".repeat(50), "*", "f", "v"]);
    // More matchers than the server has worker threads.
    let matchers: Vec<_> = (0..4)
        .map(|_| {
            let mut con = server.conn();
            thread::spawn(move || {
                query::<Vec<String>>(&mut con, &["KEYS", "*a*a*a*a*a*a*a*a*a*a*a*ab"])
            })
        })
        .collect();
    let mut fresh = server.conn();
    assert_eq!(query::<String>(&mut fresh, &["PING"]), "PONG");
    for matcher in matchers {
        assert!(matcher.join().unwrap().is_empty());
    }
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
}

// ---------------------------------------------------------------------------------------------
// Clients that do not read their replies
// ---------------------------------------------------------------------------------------------

/// An entry as the `redis` client reads it: its ID and its fields.
type Entry = (String, Vec<(String, String)>);

/// A stream of `megabytes` entries of 1 MiB each.
fn big_stream(con: &mut redis::Connection, key: &str, megabytes: usize) {
    let value = "x".repeat(1 << 20);
    for _ in 0..megabytes {
        run(con, &["XADD", key, "*", "f", &value]);
    }
}

/// A raw client that asks for the whole of `key` and never reads the reply; also its ID.
fn client_not_reading(server: &Server, key: &str) -> (TcpStream, String) {
    let mut stream = server.raw();
    stream.write_all(&encode(&["CLIENT", "ID"])).unwrap();
    let reply = String::from_utf8(read_reply(&mut stream)).unwrap();
    let id = reply.trim_start_matches(':').trim_end().to_string();
    stream
        .write_all(&encode(&["XRANGE", key, "-", "+"]))
        .unwrap();
    (stream, id)
}

fn client_list(con: &mut redis::Connection) -> String {
    query(con, &["CLIENT", "LIST"])
}

/// Waits until client `id` has started its XRANGE.
fn wait_reading(con: &mut redis::Connection, id: &str) {
    wait_until("the client's XRANGE runs", || {
        client_list(con)
            .lines()
            .any(|line| line.starts_with(&format!("id={id} ")) && line.contains("cmd=xrange"))
    });
}

#[test]
fn client_kill_ends_a_client_that_does_not_read_its_reply() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    big_stream(&mut con, "big", 32);
    let (_stream, id) = client_not_reading(&server, "big");
    wait_reading(&mut con, &id);
    assert_eq!(query::<i64>(&mut con, &["CLIENT", "KILL", "ID", &id]), 1);
    wait_until("the killed client is gone", || {
        !client_list(&mut con).contains(&format!("id={id} "))
    });
}

#[test]
fn sigterm_does_not_wait_for_a_client_that_does_not_read() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    big_stream(&mut con, "big", 32);
    let (_stream, id) = client_not_reading(&server, "big");
    wait_reading(&mut con, &id);
    let start = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn clients_that_do_not_read_hold_a_bounded_part_of_their_replies() {
    const STREAM_MIB: usize = 32;
    const CLIENTS: usize = 4;
    let server = Server::start(&[]);
    let mut con = server.conn();
    big_stream(&mut con, "big", STREAM_MIB);
    let before = status_bytes(server.pid(), "RssAnon");
    let stuck: Vec<_> = (0..CLIENTS)
        .map(|_| client_not_reading(&server, "big"))
        .collect();
    for (_, id) in &stuck {
        wait_reading(&mut con, id);
    }
    // Time for the replies to be encoded as far as they will be.
    thread::sleep(Duration::from_secs(1));
    let grown = status_bytes(server.pid(), "RssAnon").saturating_sub(before);
    // Buffering whole replies would take CLIENTS × STREAM_MIB = 128 MiB.
    assert!(
        grown < 48 << 20,
        "{} MiB more anonymous memory for {CLIENTS} clients that do not read",
        grown >> 20
    );
    assert_eq!(query::<String>(&mut con, &["PING"]), "PONG");
}

#[test]
fn a_large_reply_arrives_whole_and_in_order() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    big_stream(&mut con, "big", 8);
    let mut pipe = redis::pipe();
    pipe.cmd("XRANGE").arg("big").arg("-").arg("+");
    pipe.cmd("XLEN").arg("big");
    pipe.cmd("PING");
    let (entries, len, pong): (Vec<Entry>, i64, String) = pipe.query(&mut con).unwrap();
    assert_eq!((entries.len(), len, pong.as_str()), (8, 8, "PONG"));
    assert!(
        entries
            .iter()
            .all(|(_, fields)| fields[0].1.len() == 1 << 20)
    );
}

// ---------------------------------------------------------------------------------------------
// File descriptors
// ---------------------------------------------------------------------------------------------

#[test]
fn maxclients_is_lowered_to_fit_the_open_files_limit() {
    let server = Server::start_with_open_files(128, &[]);
    let mut con = server.conn();
    let (_, maxclients): (String, String) = query(&mut con, &["CONFIG", "GET", "maxclients"]);
    assert_eq!(
        maxclients, "96",
        "128 descriptors less the 32 kept for the server"
    );
    assert!(
        server.log_text().contains("maxclients"),
        "{}",
        server.log_text()
    );
    let refused = error(&mut con, &["CONFIG", "SET", "maxclients", "1000"]);
    assert_eq!(
        refused,
        "ERR CONFIG SET failed (possibly related to argument 'maxclients') - The operating system is not able to handle the specified number of clients, try with 96"
    );
    run(&mut con, &["CONFIG", "SET", "maxclients", "50"]);
}

#[test]
fn accept_backs_off_while_descriptors_run_out() {
    let server = Server::start_with_open_files(64, &[]);
    let mut con = server.conn();
    // Each stream keeps descriptors open: create streams until the server has none left.
    let mut streams = 0;
    let added = |con: &mut redis::Connection, key: &str| {
        common::try_run(con, &["XADD", key, "*", "f", "v"])
            .is_ok_and(|reply| matches!(reply, redis::Value::BulkString(_)))
    };
    while streams < 64 && added(&mut con, &format!("s{streams}")) {
        streams += 1;
    }
    assert!(streams < 64, "the descriptors never ran out");
    // Clients waiting in the backlog keep the listener readable while accept fails.
    let waiting: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port())).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(500));
    let (ticks, lines) = (cpu_ticks(server.pid()), server.log_text().lines().count());
    thread::sleep(Duration::from_secs(2));
    let busy = cpu_ticks(server.pid()) - ticks;
    let logged = server.log_text().lines().count() - lines;
    // A busy loop would use about 200 ticks (two seconds of a core) and log thousands of lines.
    assert!(
        busy < 50,
        "{busy} ticks of CPU in 2 s while out of descriptors"
    );
    assert!(
        logged < 10,
        "{logged} lines logged in 2 s while out of descriptors"
    );
    assert_eq!(query::<String>(&mut con, &["PING"]), "PONG");
    // Descriptors come back: the clients that waited are served.
    for stream in 0..streams {
        run(&mut con, &["DEL", &format!("s{stream}")]);
    }
    drop(waiting);
    let mut late = server.raw();
    late.write_all(&encode(&["PING"])).unwrap();
    assert_eq!(read_reply(&mut late), b"+PONG\r\n");
}

// ---------------------------------------------------------------------------------------------
// Smaller limits
// ---------------------------------------------------------------------------------------------

#[test]
fn maxclients_must_be_at_least_one() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    for value in ["0", "-1"] {
        assert_eq!(
            error(&mut con, &["CONFIG", "SET", "maxclients", value]),
            "ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument must be between 1 and 4294967295 inclusive"
        );
    }
    let (_, maxclients): (String, String) = query(&mut con, &["CONFIG", "GET", "maxclients"]);
    assert_eq!(maxclients, "10000");
    let dir = tempfile::tempdir().unwrap();
    let mut refused = std::process::Command::new(env!("CARGO_BIN_EXE_queue-server"))
        .arg("--dir")
        .arg(dir.path())
        .args(["--port", "0", "--maxclients", "0"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = common::wait_exit(&mut refused, Duration::from_secs(10));
    if status.is_none() {
        let _ = refused.kill();
        let _ = refused.wait();
    }
    assert_eq!(status.and_then(|status| status.code()), Some(2));
}

#[test]
fn an_ipv4_loopback_client_is_served_by_a_server_bound_to_ipv6() {
    // The harness connects to 127.0.0.1, which a server bound to `::` sees as
    // ::ffff:127.0.0.1; protected mode must take it for the loopback client it is.
    let server = Server::start(&["--bind", "::"]);
    let mut con = server.conn();
    assert_eq!(query::<String>(&mut con, &["PING"]), "PONG");
}

#[test]
fn failed_password_checks_are_answered_slowly_without_holding_a_thread() {
    const GUESSES: usize = 4;
    let server = Server::start(&["--requirepass", "secret"]);
    let start = Instant::now();
    // More guessing clients than the server has worker threads, each pipelining its guesses.
    let guessers: Vec<_> = (0..4)
        .map(|_| {
            let mut stream = server.raw();
            let guesses: Vec<u8> = (0..GUESSES)
                .flat_map(|guess| encode(&["AUTH", &format!("guess{guess}")]))
                .collect();
            stream.write_all(&guesses).unwrap();
            stream
        })
        .collect();
    let mut other = server.conn();
    let ping = Instant::now();
    assert_eq!(query::<String>(&mut other, &["PING"]), "PONG");
    assert!(
        ping.elapsed() < Duration::from_secs(2),
        "a PING waited {:?} behind failed password checks",
        ping.elapsed()
    );
    for mut guesser in guessers {
        for _ in 0..GUESSES {
            assert!(read_reply(&mut guesser).starts_with(b"-WRONGPASS"));
        }
    }
    // 250 + 500 + 750 + 1000 ms for each client's four guesses.
    assert!(
        start.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
}
