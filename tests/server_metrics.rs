//! The Prometheus endpoint, scraped over HTTP after a known workload and read with a parser of
//! the text format: every figure the workload moved shows the value it must have.

mod common;

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::{Server, run};
use prometheus_parse::{Sample, Scrape, Value};

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Sends a GET for `path` and returns the status code, the content type and the body.
fn get(port: u16, path: &str) -> (u16, String, String) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics port");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    socket
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a header and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status code");
    let content_type = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

fn scrape(port: u16) -> Scrape {
    let (status, content_type, body) = get(port, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Scrape::parse(body.lines().map(|line| Ok(line.to_owned()))).expect("the text format parses")
}

/// The sample `metric` whose labels include all of `labels`.
fn sample<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> &'a Sample {
    scrape
        .samples
        .iter()
        .find(|sample| {
            sample.metric == metric
                && labels
                    .iter()
                    .all(|(name, value)| sample.labels.get(name) == Some(*value))
        })
        .unwrap_or_else(|| panic!("no {metric} with {labels:?}"))
}

fn number(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match &sample(scrape, metric, labels).value {
        Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => *value,
        other => panic!("{metric} is not a number: {other:?}"),
    }
}

#[test]
fn a_scrape_shows_what_a_known_workload_did() {
    let port = free_port();
    let server = Server::start(&["--metrics-port", &port.to_string()]);
    let mut con = server.conn();
    for n in 0..5 {
        run(&mut con, &["XADD", "jobs", "*", "n", &n.to_string()]);
    }
    run(&mut con, &["XADD", "other", "*", "n", "0"]);
    run(&mut con, &["XGROUP", "CREATE", "jobs", "workers", "0"]);
    let read = run(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "workers",
            "w1",
            "COUNT",
            "3",
            "STREAMS",
            "jobs",
            ">",
        ],
    );
    let first = common::entries(&common::items(&common::items(&read)[0])[1]);
    run(&mut con, &["XACK", "jobs", "workers", &first[0].0]);
    let refusal = common::error(&mut con, &["XADD", "jobs"]);
    assert!(refusal.contains("wrong number of arguments"), "{refusal}");

    let metrics = scrape(port);
    let jobs = [("db", "0"), ("stream", "jobs")];
    let workers = [("db", "0"), ("stream", "jobs"), ("group", "workers")];
    assert_eq!(number(&metrics, "weir_streams", &[]), 2.0);
    assert_eq!(number(&metrics, "weir_streams_omitted", &[]), 0.0);
    assert_eq!(number(&metrics, "weir_stream_length", &jobs), 5.0);
    assert_eq!(
        number(&metrics, "weir_stream_entries_added_total", &jobs),
        5.0
    );
    assert!(number(&metrics, "weir_stream_stored_bytes", &jobs) > 0.0);
    assert!(number(&metrics, "weir_stream_disk_bytes", &jobs) > 0.0);
    assert_eq!(number(&metrics, "weir_group_lag", &workers), 2.0);
    assert_eq!(number(&metrics, "weir_group_pending", &workers), 2.0);
    assert_eq!(number(&metrics, "weir_group_consumers", &workers), 1.0);
    assert_eq!(
        number(&metrics, "weir_group_delivered_total", &workers),
        3.0
    );
    assert_eq!(
        number(&metrics, "weir_group_redelivered_total", &workers),
        0.0
    );
    assert_eq!(
        number(&metrics, "weir_group_dead_lettered_total", &workers),
        0.0
    );
    assert!(
        number(
            &metrics,
            "weir_group_oldest_undelivered_age_seconds",
            &workers
        ) >= 0.0
    );
    assert!(number(&metrics, "weir_group_oldest_pending_age_seconds", &workers) >= 0.0);

    let xadd = [("cmd", "xadd")];
    assert_eq!(number(&metrics, "weir_command_calls_total", &xadd), 6.0);
    assert_eq!(
        number(&metrics, "weir_command_rejected_calls_total", &xadd),
        1.0
    );
    assert_eq!(
        number(
            &metrics,
            "weir_command_calls_total",
            &[("cmd", "xgroup|create")]
        ),
        1.0
    );
    let Value::Histogram(buckets) = &sample(&metrics, "weir_command_duration_seconds", &xadd).value
    else {
        panic!("weir_command_duration_seconds is not a histogram");
    };
    let everything = buckets
        .iter()
        .find(|bucket| bucket.less_than == f64::INFINITY)
        .expect("a +Inf bucket");
    assert_eq!(everything.count, 6.0);
    assert!(
        buckets
            .windows(2)
            .all(|pair| pair[0].count <= pair[1].count)
    );

    assert_eq!(number(&metrics, "weir_connected_clients", &[]), 1.0);
    assert_eq!(number(&metrics, "weir_blocked_clients", &[]), 0.0);
    assert_eq!(
        number(&metrics, "weir_rejected_connections_total", &[]),
        0.0
    );
    assert!(number(&metrics, "weir_connections_received_total", &[]) >= 1.0);
    assert_eq!(number(&metrics, "weir_recovery_clean_shutdown", &[]), 1.0);
    assert_eq!(number(&metrics, "weir_recovery_streams", &[]), 0.0);
    assert!(number(&metrics, "weir_flush_rounds_total", &[]) >= 0.0);
}

#[test]
fn recovery_figures_describe_the_last_start() {
    let port = free_port();
    let data = tempfile::tempdir().expect("data directory");
    let server = Server::start_in(data.path(), &[]);
    let mut con = server.conn();
    for n in 0..3 {
        run(&mut con, &["XADD", "jobs", "*", "n", &n.to_string()]);
    }
    drop(con);
    assert!(server.terminate().success());
    let _again = Server::start_in(data.path(), &["--metrics-port", &port.to_string()]);
    let metrics = scrape(port);
    assert_eq!(number(&metrics, "weir_recovery_streams", &[]), 1.0);
    assert_eq!(number(&metrics, "weir_recovery_entries", &[]), 3.0);
    assert_eq!(number(&metrics, "weir_recovery_lost_records", &[]), 0.0);
    assert_eq!(number(&metrics, "weir_recovery_clean_shutdown", &[]), 1.0);
}

#[test]
fn other_paths_and_methods_are_refused() {
    let port = free_port();
    let _server = Server::start(&["--metrics-port", &port.to_string()]);
    assert_eq!(get(port, "/").0, 404);
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .write_all(
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .expect("send");
    let mut status = String::new();
    std::io::BufReader::new(socket)
        .read_line(&mut status)
        .expect("status line");
    assert!(status.starts_with("HTTP/1.1 405"), "{status}");
}
