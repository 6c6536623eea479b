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
