//! End-to-end tests of `queue-server` at its edges: hostile glob patterns, clients that never
//! read their replies, running out of file descriptors, and the smaller limits a server exposed
//! to many clients must keep (client counts, protected mode, password retries, wake-ups of
//! blocked readers).

mod common;

use std::thread;

use common::{Server, query, run};

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
