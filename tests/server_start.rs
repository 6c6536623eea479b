//! Starting `queue-server`: what `--help` shows, what `--bind` accepts, and what the server logs
//! about the data directory it opened.

mod common;

use std::process::Command;

use common::{Server, run, text};

#[test]
fn help_shows_the_default_of_every_setting() {
    let output = Command::new(env!("CARGO_BIN_EXE_queue-server"))
        .arg("--help")
        .output()
        .expect("run queue-server --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for default in [
        "[default: ./data]",
        "[default: 127.0.0.1]",
        "[default: 6379]",
        "[default: everysec]",
        "[default: 10000]",
    ] {
        assert!(help.contains(default), "{default} missing from:\n{help}");
    }
}

#[test]
fn bind_accepts_localhost() {
    let server = Server::start(&["--bind", "localhost"]);
    let mut con = server.conn();
    assert_eq!(text(&run(&mut con, &["PING"])), "PONG");
    assert_eq!(
        common::query::<Vec<String>>(&mut con, &["CONFIG", "GET", "bind"]),
        ["bind", "127.0.0.1"]
    );
}

#[test]
fn a_new_data_directory_is_not_reported_as_a_crash() {
    let data = tempfile::tempdir().expect("data directory");
    let first = Server::start_in(data.path(), &[]);
    let log = first.log_text();
    assert!(log.contains("new data directory"), "{log}");
    assert!(!log.contains("clean_shutdown"), "{log}");
    assert!(first.terminate().success());

    let second = Server::start_in(data.path(), &[]);
    let log = second.log_text();
    assert!(log.contains("clean_shutdown=true"), "{log}");
    assert!(!log.contains("new data directory"), "{log}");
}

#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    let server = Server::start(&[]);
    let log = server.log_text();
    assert!(log.contains("ready to accept connections"), "{log}");
    assert!(!log.contains("\x1b["), "{log:?}");
}

/// Reads one notification, waiting at most the socket's read timeout.
fn notification(socket: &std::os::unix::net::UnixDatagram) -> String {
    let mut buffer = [0u8; 1024];
    let len = socket
        .recv(&mut buffer)
        .expect("a notification before the timeout");
    String::from_utf8_lossy(&buffer[..len]).into_owned()
}

#[test]
fn a_service_manager_hears_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    let scratch = tempfile::tempdir().expect("scratch directory");
    let socket_path = scratch.path().join("notify.sock");
    let manager = UnixDatagram::bind(&socket_path).expect("bind the notification socket");
    manager
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_queue-server"))
        .args(["--port", "0", "--dir"])
        .arg(scratch.path().join("data"))
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start queue-server");

    let ready = notification(&manager);
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(
        ready.contains(&format!("MAINPID={}\n", child.id())),
        "{ready}"
    );
    // Ready means accepting: the address in the status takes a connection at once.
    let address = ready
        .lines()
        .find_map(|line| line.strip_prefix("STATUS=accepting connections on "))
        .unwrap_or_else(|| panic!("no address in {ready:?}"));
    let client = redis::Client::open(format!("redis://{address}")).unwrap();
    let mut con = client.get_connection().expect("connect right after READY");
    assert_eq!(text(&run(&mut con, &["PING"])), "PONG");

    assert_eq!(notification(&manager), "WATCHDOG=1\n");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .expect("send SIGTERM");
    let mut stopping = notification(&manager);
    while stopping == "WATCHDOG=1\n" {
        stopping = notification(&manager);
    }
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping}");
    assert!(child.wait().expect("wait for queue-server").success());
}

#[test]
fn json_logs_are_one_object_a_line() {
    let server = Server::start(&["--log-format", "json"]);
    let log = server.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    let ready = lines
        .iter()
        .find(|line| line["fields"]["message"] == "ready to accept connections")
        .unwrap_or_else(|| panic!("no ready line in {log}"));
    assert_eq!(ready["level"], "INFO");
    assert!(ready["fields"]["address"].is_string(), "{ready}");
}
