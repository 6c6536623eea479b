//! TLS on `queue-server`: clients through the `redis` crate's rustls support and through
//! `redis-cli --tls`, mutual TLS (`tls-auth-clients yes|optional|no`), clients that fail the
//! handshake or never send one, and reloading the certificates with `CONFIG SET` and SIGHUP.
//! Every certificate is made here, with rcgen.

mod common;
mod tls_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{IO_TIMEOUT, Server, error, info_field, query, text};
use rcgen::ExtendedKeyUsagePurpose;
use redis::{ClientTlsConfig, TlsCertificates};
use tls_support::{Authority, Identity};

/// How long a refused client may take to learn it was refused: far less than [`IO_TIMEOUT`], so
/// that a refusal is told apart from a hang.
const REFUSAL_TIME: Duration = Duration::from_secs(5);

impl Authority {
    /// A server certificate for the loopback address the tests connect to.
    fn server(&self) -> Identity {
        self.issue(
            vec!["127.0.0.1".into(), "localhost".into()],
            vec![ExtendedKeyUsagePurpose::ServerAuth],
        )
    }

    fn client(&self) -> Identity {
        self.issue(Vec::new(), vec![ExtendedKeyUsagePurpose::ClientAuth])
    }
}

/// The files a server is started with: its certificate and key, and the CA of its clients.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(authority: &Authority) -> Files {
        let files = Files {
            dir: tempfile::tempdir().unwrap(),
        };
        files.install(authority);
        files
    }

    /// Writes `authority`'s CA and a fresh server certificate over the files.
    fn install(&self, authority: &Authority) {
        let server = authority.server();
        self.write("server.crt", &server.cert);
        self.write("server.key", &server.key);
        self.write("ca.crt", &authority.pem());
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// The command-line flags naming the files, with `tls-auth-clients`.
    fn flags(&self, auth_clients: &str) -> Vec<String> {
        vec![
            "--tls-cert-file".into(),
            self.arg("server.crt"),
            "--tls-key-file".into(),
            self.arg("server.key"),
            "--tls-ca-cert-file".into(),
            self.arg("ca.crt"),
            "--tls-auth-clients".into(),
            auth_clients.into(),
        ]
    }
}

fn start(files: &Files, auth_clients: &str) -> Server {
    let flags = files.flags(auth_clients);
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start_tls(&args)
}

/// A TLS connection that trusts `ca` and presents `identity`, if any.
fn tls_conn(
    port: u16,
    ca: &Authority,
    identity: Option<&Identity>,
) -> redis::RedisResult<redis::Connection> {
    let certificates = TlsCertificates {
        client_tls: identity.map(|identity| ClientTlsConfig {
            client_cert: identity.cert.clone().into_bytes(),
            client_key: identity.key.clone().into_bytes(),
        }),
        root_cert: Some(ca.pem().into_bytes()),
    };
    let client =
        redis::Client::build_with_tls(format!("rediss://127.0.0.1:{port}/"), certificates)?;
    let con = client.get_connection_with_timeout(IO_TIMEOUT)?;
    con.set_read_timeout(Some(IO_TIMEOUT))?;
    con.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(con)
}

/// `PING` over a new TLS connection.
fn tls_ping(port: u16, ca: &Authority, identity: Option<&Identity>) -> redis::RedisResult<String> {
    let mut con = tls_conn(port, ca, identity)?;
    redis::cmd("PING").query(&mut con)
}

/// Asserts that the server refuses the client at once, with an error rather than a hang.
fn assert_refused(port: u16, ca: &Authority, identity: Option<&Identity>, case: &str) {
    let started = Instant::now();
    let outcome = tls_ping(port, ca, identity);
    assert!(outcome.is_err(), "{case}: served: {outcome:?}");
    assert!(
        started.elapsed() < REFUSAL_TIME,
        "{case}: took {:?} to fail: {outcome:?}",
        started.elapsed()
    );
}

/// Waits until `ready` holds, for a server that acts on a signal in its own time.
fn eventually(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {IO_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tls_and_plain_clients_share_the_streams() {
    let authority = Authority::new("weir test CA");
    let files = Files::new(&authority);
    let server = start(&files, "yes");
    let client = authority.client();

    let mut tls = tls_conn(server.tls_port(), &authority, Some(&client)).unwrap();
    let id: String = query_tls(&mut tls, &["XADD", "jobs", "*", "over", "tls"]);
    let mut plain = server.conn();
    let length: i64 = query(&mut plain, &["XLEN", "jobs"]);
    assert_eq!(length, 1);
    let entries: Vec<(String, Vec<(String, String)>)> =
        query(&mut plain, &["XRANGE", "jobs", "-", "+"]);
    assert_eq!(entries, vec![(id, vec![("over".into(), "tls".into())])]);

    let info: String = query(&mut plain, &["INFO", "server"]);
    assert_eq!(
        info_field(&info, "weir_tls_port"),
        Some(server.tls_port().to_string())
    );
    let auth: Vec<String> = query(&mut plain, &["CONFIG", "GET", "tls-auth-clients"]);
    assert_eq!(auth, ["tls-auth-clients", "yes"]);
}

fn query_tls<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    common::command(args)
        .query(con)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn mutual_tls_refuses_clients_without_a_certificate_of_the_ca() {
    let authority = Authority::new("weir test CA");
    let stranger = Authority::new("another CA");
    let files = Files::new(&authority);
    let server = start(&files, "yes");
    let port = server.tls_port();

    assert_refused(port, &authority, None, "no client certificate");
    assert_refused(
        port,
        &authority,
        Some(&stranger.client()),
        "a certificate of another CA",
    );
    assert_refused(
        port,
        &stranger,
        Some(&authority.client()),
        "a client that does not trust the server",
    );
    assert_eq!(
        tls_ping(port, &authority, Some(&authority.client())).unwrap(),
        "PONG",
        "the refusals left the server serving"
    );
}

#[test]
fn optional_client_certificates_may_be_left_out_but_not_forged() {
    let authority = Authority::new("weir test CA");
    let stranger = Authority::new("another CA");
    let files = Files::new(&authority);
    let server = start(&files, "optional");
    let port = server.tls_port();

    assert_eq!(tls_ping(port, &authority, None).unwrap(), "PONG");
    assert_eq!(
        tls_ping(port, &authority, Some(&authority.client())).unwrap(),
        "PONG"
    );
    assert_refused(
        port,
        &authority,
        Some(&stranger.client()),
        "a certificate of another CA",
    );
}

#[test]
fn without_client_authentication_no_ca_is_needed() {
    let authority = Authority::new("weir test CA");
    let files = Files::new(&authority);
    let flags = [
        "--tls-cert-file",
        &files.arg("server.crt"),
        "--tls-key-file",
        &files.arg("server.key"),
        "--tls-auth-clients",
        "no",
    ]
    .map(str::to_string);
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start_tls(&args);
    assert_eq!(
        tls_ping(server.tls_port(), &authority, None).unwrap(),
        "PONG"
    );
}

#[test]
fn a_silent_client_is_disconnected_without_holding_up_others() {
    let authority = Authority::new("weir test CA");
    let files = Files::new(&authority);
    let server = start(&files, "optional");
    let port = server.tls_port();

    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        tls_ping(port, &authority, None).unwrap(),
        "PONG",
        "a client that sends no handshake blocked the accept loop"
    );
    let mut buffer = [0u8; 64];
    let read = silent.read(&mut buffer);
    assert!(
        matches!(read, Ok(0))
            || matches!(&read, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut),
        "the silent client was not disconnected: {read:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(20),
        "disconnected after {waited:?}, not after the handshake timeout"
    );
}

#[test]
fn a_shutdown_does_not_wait_for_a_pending_handshake() {
    let authority = Authority::new("weir test CA");
    let files = Files::new(&authority);
    let server = start(&files, "optional");
    let _silent = TcpStream::connect(("127.0.0.1", server.tls_port())).unwrap();
    // The handshake task starts once the connection is accepted.
    assert_eq!(
        tls_ping(server.tls_port(), &authority, None).unwrap(),
        "PONG"
    );
    let started = Instant::now();
    assert!(server.terminate().success());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the shutdown waited {:?} for a client that sent no handshake",
        started.elapsed()
    );
}

#[test]
fn plain_text_on_the_tls_port_gets_a_clean_close() {
    let authority = Authority::new("weir test CA");
    let files = Files::new(&authority);
    let server = start(&files, "yes");
    let mut stream = TcpStream::connect(("127.0.0.1", server.tls_port())).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(&common::encode(&["PING"])).unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert!(
        started.elapsed() < REFUSAL_TIME,
        "no close in {:?}",
        started.elapsed()
    );
    assert!(
        !String::from_utf8_lossy(&reply).contains("PONG"),
        "{reply:?}"
    );
    assert_eq!(
        tls_ping(server.tls_port(), &authority, Some(&authority.client())).unwrap(),
        "PONG"
    );
}

#[test]
fn config_set_reloads_every_file_at_once_or_not_at_all() {
    let old = Authority::new("old CA");
    let files = Files::new(&old);
    let server = start(&files, "yes");
    let port = server.tls_port();
    let mut plain = server.conn();
    let mut kept = tls_conn(port, &old, Some(&old.client())).unwrap();

    let missing = files.path("missing.crt").display().to_string();
    let refused = error(&mut plain, &["CONFIG", "SET", "tls-cert-file", &missing]);
    assert!(
        refused.starts_with("ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS configuration: cannot read tls-cert-file"),
        "{refused}"
    );
    let stray_key = files.write("stray.key", &old.server().key);
    let refused = error(
        &mut plain,
        &[
            "CONFIG",
            "SET",
            "tls-key-file",
            &stray_key.display().to_string(),
        ],
    );
    assert!(
        refused.contains("is the key the certificate's?"),
        "{refused}"
    );
    let not_pem = files.write("not-pem.crt", "-----BEGIN CERTIFICATE-----\nnot base64!\n");
    let refused = error(
        &mut plain,
        &[
            "CONFIG",
            "SET",
            "tls-ca-cert-file",
            &not_pem.display().to_string(),
        ],
    );
    assert!(refused.contains("is not valid PEM"), "{refused}");
    let unchanged: Vec<String> = query(&mut plain, &["CONFIG", "GET", "tls-key-file"]);
    assert_eq!(unchanged[1], files.arg("server.key"));
    assert_eq!(tls_ping(port, &old, Some(&old.client())).unwrap(), "PONG");

    let new = Authority::new("new CA");
    let identity = new.server();
    let cert = files.write("new.crt", &identity.cert);
    let key = files.write("new.key", &identity.key);
    let ca = files.write("new-ca.crt", &new.pem());
    let set: String = query(
        &mut plain,
        &[
            "CONFIG",
            "SET",
            "tls-cert-file",
            &cert.display().to_string(),
            "tls-key-file",
            &key.display().to_string(),
            "tls-ca-cert-file",
            &ca.display().to_string(),
        ],
    );
    assert_eq!(set, "OK");
    assert_eq!(tls_ping(port, &new, Some(&new.client())).unwrap(), "PONG");
    assert_refused(
        port,
        &old,
        Some(&old.client()),
        "the old CA after the reload",
    );
    let pong: String = query_tls(&mut kept, &["PING"]);
    assert_eq!(pong, "PONG", "a reload does not cut existing connections");
    let refused = error(&mut plain, &["CONFIG", "SET", "tls-port", "1"]);
    assert!(refused.ends_with("can't set immutable config"), "{refused}");
}

#[test]
fn sighup_reloads_the_files_and_keeps_the_old_material_when_they_are_bad() {
    let old = Authority::new("old CA");
    let files = Files::new(&old);
    let server = start(&files, "yes");
    let port = server.tls_port();

    let new = Authority::new("new CA");
    files.install(&new);
    server.signal(libc::SIGHUP);
    eventually("the new certificates in use", || {
        tls_ping(port, &new, Some(&new.client())).is_ok()
    });
    assert!(server.log_text().contains("SIGHUP: TLS material reloaded"));
    assert_refused(port, &old, Some(&old.client()), "the old CA after SIGHUP");

    files.write("server.key", "not a key");
    server.signal(libc::SIGHUP);
    eventually("the failed reload logged", || {
        server
            .log_text()
            .contains("SIGHUP: TLS material not reloaded")
    });
    assert_eq!(tls_ping(port, &new, Some(&new.client())).unwrap(), "PONG");
}

#[test]
fn redis_cli_speaks_tls() {
    if Command::new("redis-cli").arg("--version").output().is_err() {
        eprintln!("redis-cli is not installed: skipping its TLS test");
        return;
    }
    let authority = Authority::new("weir test CA");
    let files = Files::new(&authority);
    let client = authority.client();
    let cert = files.write("client.crt", &client.cert);
    let key = files.write("client.key", &client.key);
    let server = start(&files, "yes");
    let redis_cli = |certificate: Option<(&Path, &Path)>, args: &[&str]| {
        let mut command = Command::new("redis-cli");
        command
            .args(["--tls", "--cacert"])
            .arg(files.path("ca.crt"))
            .args(["-h", "127.0.0.1", "-p", &server.tls_port().to_string()]);
        if let Some((cert, key)) = certificate {
            command.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
            + &String::from_utf8_lossy(&output.stderr)
    };
    let with_cert = Some((cert.as_path(), key.as_path()));
    let id = redis_cli(with_cert, &["XADD", "jobs", "*", "from", "redis-cli"]);
    assert!(id.contains('-'), "{id}");
    assert_eq!(redis_cli(with_cert, &["XLEN", "jobs"]), "1");
    let refused = redis_cli(None, &["XLEN", "jobs"]);
    assert_ne!(refused, "1", "served without a client certificate");
}

/// Starts the binary directly: the harness always gives a plain port.
fn spawn_tls_only(files: &Files, tls_port: u16, log: &Path) -> std::process::Child {
    let data = files.path("data");
    Command::new(env!("CARGO_BIN_EXE_queue-server"))
        .arg("--dir")
        .arg(&data)
        .args(["--port", "0", "--tls-port", &tls_port.to_string()])
        .args(files.flags("optional"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start queue-server")
}

#[test]
fn port_zero_beside_a_tls_port_turns_plain_connections_off() {
    let authority = Authority::new("weir test CA");
    let files = Files::new(&authority);
    let log = files.path("server.log");
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let mut child = spawn_tls_only(&files, tls_port, &log);
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut con = loop {
        if let Ok(con) = tls_conn(tls_port, &authority, None) {
            break con;
        }
        assert!(
            Instant::now() < deadline,
            "no TLS listener: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let port: Vec<String> = query_tls(&mut con, &["CONFIG", "GET", "port"]);
    assert_eq!(port, ["port", "0"]);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("listening for TLS connections"),
        "{log_text}"
    );
    assert!(
        !log_text.contains("listening for plain connections"),
        "{log_text}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_tls_port_without_a_certificate_is_refused_at_start() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_queue-server"))
        .arg("--dir")
        .arg(data.path())
        .args(["--port", "0", "--tls-port", "1"])
        .stdin(Stdio::null())
        .output()
        .expect("run queue-server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tls-cert-file is not set"), "{stderr}");
}

#[test]
fn the_configuration_file_takes_the_tls_names() {
    let authority = Authority::new("weir test CA");
    let files = Files::new(&authority);
    let config = files.write(
        "weir.conf",
        &format!(
            "tls-cert-file {}\ntls-key-file {}\ntls-auth-clients no\n",
            files.arg("server.crt"),
            files.arg("server.key")
        ),
    );
    let server = Server::start_tls(&["--config", &config.display().to_string()]);
    assert_eq!(
        tls_ping(server.tls_port(), &authority, None).unwrap(),
        "PONG"
    );
    let mut plain = server.conn();
    let auth: Vec<String> = query(&mut plain, &["CONFIG", "GET", "tls-auth-clients"]);
    assert_eq!(auth, ["tls-auth-clients", "no"]);
    assert_eq!(text(&common::run(&mut plain, &["PING"])), "PONG");
}
