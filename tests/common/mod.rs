//! A harness for end-to-end tests of `queue-server`: it starts the real binary on a free
//! loopback port with its own data directory, waits until it serves, and stops it (gracefully or
//! not) when the test is done. Also small helpers for `redis` connections and raw RESP over TCP.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use redis::{ConnectionLike, Value};

/// How long a server may take to start serving.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stopped server may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Read and write timeout of every client connection: a test that waits longer has failed.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at finding a free port before giving up.
const PORT_ATTEMPTS: usize = 20;

/// A running `queue-server`. Dropping it stops it with SIGTERM (SIGKILL if it does not exit in
/// time) and reaps it.
pub struct Server {
    child: Option<Child>,
    port: u16,
    tls_port: Option<u16>,
    dir: PathBuf,
    password: Option<String>,
    log: PathBuf,
    /// Keeps the log directory (and, for [`Server::start`], the data directory) alive.
    _scratch: Option<tempfile::TempDir>,
    _data: Option<tempfile::TempDir>,
}

impl Server {
    /// A server on a fresh data directory, with extra command-line arguments.
    pub fn start(args: &[&str]) -> Server {
        let data = tempfile::tempdir().expect("data directory");
        let mut server = Server::start_in(data.path(), args);
        server._data = Some(data);
        server
    }

    /// A server on a fresh data directory whose open-files limit (soft and hard) is `limit`.
    pub fn start_with_open_files(limit: u64, args: &[&str]) -> Server {
        let data = tempfile::tempdir().expect("data directory");
        let mut server = Server::launch(data.path(), args, Some(limit), false);
        server._data = Some(data);
        server
    }

    /// A server on `dir` (which the caller keeps), with extra command-line arguments.
    pub fn start_in(dir: &Path, args: &[&str]) -> Server {
        Server::launch(dir, args, None, false)
    }

    /// A server on a fresh data directory that also listens for TLS on a free port (`args`
    /// give the certificate files).
    pub fn start_tls(args: &[&str]) -> Server {
        let data = tempfile::tempdir().expect("data directory");
        let mut server = Server::launch(data.path(), args, None, true);
        server._data = Some(data);
        server
    }

    fn launch(dir: &Path, args: &[&str], open_files: Option<u64>, tls: bool) -> Server {
        let scratch = tempfile::tempdir().expect("scratch directory");
        let password = args
            .iter()
            .position(|arg| *arg == "--requirepass")
            .and_then(|at| args.get(at + 1))
            .map(|password| (*password).to_string());
        let mut last_failure = String::new();
        for attempt in 0..PORT_ATTEMPTS {
            let port = free_port();
            let tls_port = tls.then(free_port);
            let tls_port_text = tls_port.map(|port| port.to_string());
            let mut all_args = args.to_vec();
            if let Some(text) = &tls_port_text {
                all_args.extend(["--tls-port", text]);
            }
            let log = scratch.path().join(format!("server-{attempt}.log"));
            let child = spawn(dir, port, &all_args, &log, open_files);
            let mut server = Server {
                child: Some(child),
                port,
                tls_port,
                dir: dir.to_path_buf(),
                password: password.clone(),
                log,
                _scratch: None,
                _data: None,
            };
            match server.wait_ready() {
                Ok(()) => {
                    server._scratch = Some(scratch);
                    return server;
                }
                Err(failure) => {
                    // Most likely the port was taken between choosing and binding it.
                    last_failure = format!("{failure}\n{}", server.log_text());
                    server.kill();
                }
            }
        }
        panic!("queue-server did not start after {PORT_ATTEMPTS} attempts: {last_failure}");
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port, for a server started with [`Server::start_tls`].
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("a server started with start_tls")
    }

    /// Sends `signal` to the server, which keeps running.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits");
        // SAFETY: `pid` is our own child, not yet reaped, so the ID cannot have been reused.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// What the server wrote to its standard error so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `redis://` address, with the password when the server requires one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// A RESP2 client connection (authenticated if the server needs it).
    pub fn conn(&self) -> redis::Connection {
        connect(&self.url())
    }

    /// A connection without credentials, whatever the server requires.
    pub fn anonymous_conn(&self) -> redis::Connection {
        connect(&format!("redis://127.0.0.1:{}/", self.port))
    }

    /// A RESP3 client connection (the client sends `HELLO 3` first).
    pub fn conn_resp3(&self) -> redis::Connection {
        connect(&format!("{}?protocol=resp3", self.url()))
    }

    /// A raw TCP connection, with timeouts.
    pub fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// Sends SIGTERM and waits for the exit; the server is gone afterwards.
    pub fn terminate(mut self) -> ExitStatus {
        self.stop_with(libc::SIGTERM)
            .unwrap_or_else(|| panic!("no exit after SIGTERM\n{}", self.log_text()))
    }

    /// Waits for the server to exit by itself (after `SHUTDOWN`); kills it if it does not.
    pub fn wait_for_exit(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        wait_exit(&mut child, EXIT_TIMEOUT).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no exit after SHUTDOWN\n{}", self.log_text())
        })
    }

    /// Sends SIGKILL and reaps the process: a crash, as far as the data directory can tell.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal`; returns the exit status if the process exited in time, else kills it.
    fn stop_with(&mut self, signal: libc::c_int) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // SAFETY: `pid` is our own child, not yet reaped, so the ID cannot have been reused.
        unsafe {
            libc::kill(pid, signal);
        }
        let status = wait_exit(&mut child, EXIT_TIMEOUT);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }

    /// Polls until the server answers a command, checking that it is this child that answers.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok())
                .flatten()
            {
                return Err(format!("queue-server exited early: {status}"));
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                let mut command = Vec::new();
                if let Some(password) = &self.password {
                    command.extend(encode(&["AUTH", password]));
                }
                command.extend(encode(&["INFO", "server"]));
                if stream.write_all(&command).is_ok() {
                    let mut reply = Vec::new();
                    let _ = stream.shutdown(Shutdown::Write);
                    let _ = stream.read_to_end(&mut reply);
                    let text = String::from_utf8_lossy(&reply);
                    if text.contains(&format!("process_id:{}\r\n", self.pid())) {
                        return Ok(());
                    }
                    if text.contains("process_id:") {
                        return Err(format!("another server answers on port {}", self.port));
                    }
                }
            }
            if Instant::now() > deadline {
                return Err("queue-server did not accept connections in time".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_with(libc::SIGTERM);
    }
}

/// Starts the binary; with `open_files`, through a shell that sets the soft and hard open-files
/// limits first and then replaces itself with the server (same process ID).
fn spawn(dir: &Path, port: u16, args: &[&str], log: &Path, open_files: Option<u64>) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    let binary = env!("CARGO_BIN_EXE_queue-server");
    let mut command = match open_files {
        Some(limit) => {
            let mut shell = Command::new("sh");
            shell
                .arg("-c")
                .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                .arg(binary);
            shell
        }
        None => Command::new(binary),
    };
    command
        .arg("--dir")
        .arg(dir)
        .arg("--port")
        .arg(port.to_string())
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn queue-server")
}

/// A port nothing listens on right now (the server binds it a moment later; a collision is
/// noticed and retried).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Waits up to `timeout` for the child to exit.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A client connection with timeouts.
pub fn connect(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).expect("client");
    let con = client
        .get_connection_with_timeout(IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    con.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    con.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    con
}

// ---------------------------------------------------------------------------------------------
// Commands through `redis`
// ---------------------------------------------------------------------------------------------

/// A command from its words.
pub fn command(args: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd
}

/// The reply as sent, errors included (nested ones too).
pub fn run(con: &mut redis::Connection, args: &[&str]) -> Value {
    con.req_command(&command(args))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// The reply as sent, or the client's error (a dropped connection, say).
pub fn try_run(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Value> {
    con.req_command(&command(args))
}

/// The reply, converted; panics on an error reply.
pub fn query<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    command(args)
        .query(con)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// The text of the error reply, as the server sent it (`CODE detail`); panics on success.
pub fn error(con: &mut redis::Connection, args: &[&str]) -> String {
    match run(con, args) {
        Value::ServerError(error) => error_text(&error),
        other => panic!("{args:?}: expected an error, got {other:?}"),
    }
}

/// `CODE detail` of a server error.
pub fn error_text(error: &redis::ServerError) -> String {
    match error.details() {
        Some(detail) => format!("{} {detail}", error.code()),
        None => error.code().to_string(),
    }
}

/// A bulk or simple string reply as text.
pub fn text(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(text) => text.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::Okay => "OK".into(),
        other => panic!("not a string: {other:?}"),
    }
}

/// An array reply's items.
pub fn items(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

/// A map reply (RESP3) or a flat array of pairs (RESP2) as pairs of a text key and a value.
pub fn pairs(value: &Value) -> Vec<(String, Value)> {
    match value {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), v.clone())).collect(),
        Value::Array(flat) => {
            assert!(flat.len() % 2 == 0, "odd field list: {flat:?}");
            flat.chunks(2)
                .map(|pair| (text(&pair[0]), pair[1].clone()))
                .collect()
        }
        other => panic!("not a map: {other:?}"),
    }
}

/// The value of `name` in a map reply.
pub fn field(value: &Value, name: &str) -> Value {
    pairs(value)
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
        .unwrap_or_else(|| panic!("no field {name:?} in {value:?}"))
}

/// An integer reply.
pub fn int(value: &Value) -> i64 {
    match value {
        Value::Int(n) => *n,
        Value::BulkString(_) | Value::SimpleString(_) => text(value).parse().expect("a number"),
        other => panic!("not an integer: {other:?}"),
    }
}

/// A stream entry reply `[id, [field, value, …]]` as `(id, [(field, value)])`.
pub fn entry(value: &Value) -> (String, Vec<(String, String)>) {
    let parts = items(value);
    let fields = pairs(&parts[1])
        .into_iter()
        .map(|(k, v)| (k, text(&v)))
        .collect();
    (text(&parts[0]), fields)
}

/// A list of entries.
pub fn entries(value: &Value) -> Vec<(String, Vec<(String, String)>)> {
    items(value).iter().map(entry).collect()
}

/// The value of `name` in an `INFO` reply.
pub fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::to_string)
}

// ---------------------------------------------------------------------------------------------
// Raw RESP over TCP
// ---------------------------------------------------------------------------------------------

/// A command as a RESP array of bulk strings (any bytes).
pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        out.extend(format!("${}\r\n", arg.len()).into_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Sends `args` and returns the reply as sent.
pub fn ask(socket: &mut TcpStream, args: &[&[u8]]) -> Vec<u8> {
    socket.write_all(&encode(args)).expect("send");
    read_reply(socket)
}

/// Sends `args` and checks the reply, byte for byte.
pub fn assert_reply(socket: &mut TcpStream, args: &[&[u8]], expected: &[u8]) {
    let reply = ask(socket, args);
    assert_eq!(
        String::from_utf8_lossy(&reply),
        String::from_utf8_lossy(expected),
        "the reply to {:?}",
        args.iter()
            .map(|arg| String::from_utf8_lossy(arg))
            .collect::<Vec<_>>()
    );
}

/// Reads one complete reply and returns its bytes as sent.
pub fn read_reply(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    read_value(stream, &mut out);
    out
}

fn read_line(stream: &mut TcpStream, out: &mut Vec<u8>) -> String {
    let start = out.len();
    let mut byte = [0u8];
    while !out.ends_with(b"\r\n") || out.len() - start < 2 {
        let read = stream.read(&mut byte).expect("read a reply");
        assert!(read == 1, "connection closed inside a reply: {out:?}");
        out.push(byte[0]);
    }
    String::from_utf8_lossy(&out[start..out.len() - 2]).into_owned()
}

fn read_value(stream: &mut TcpStream, out: &mut Vec<u8>) {
    let line = read_line(stream, out);
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" | "-" | ":" | "_" | "#" | "," | "(" => {}
        "$" | "=" | "!" => {
            let len: i64 = rest.parse().expect("a length");
            if len >= 0 {
                let mut data = vec![0u8; usize::try_from(len).unwrap() + 2];
                stream.read_exact(&mut data).expect("bulk data");
                out.extend(data);
            }
        }
        "*" | "~" | ">" | "%" | "|" => {
            let count: i64 = rest.parse().expect("a count");
            let per = if kind == "%" || kind == "|" { 2 } else { 1 };
            for _ in 0..count.max(0) * per {
                read_value(stream, out);
            }
        }
        other => panic!("unexpected reply type {other:?} in {line:?}"),
    }
}

/// Reads until the server closes the connection; returns everything it sent meanwhile.
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    stream
        .read_to_end(&mut out)
        .expect("the server closes the connection");
    out
}
