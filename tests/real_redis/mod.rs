//! A real `redis-server` for tests that compare with it or copy from it: started on a free
//! loopback port with its own directory and no persistence, stopped when dropped.
//!
//! Where `redis-server` is not installed the tests print why and pass, unless the environment
//! variable `WEIR_REQUIRE_REDIS=1` says that it must be there (`.ci/run` sets it once it has
//! installed the package).

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long redis-server may take to start serving.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts at finding a free port before giving up.
const PORT_ATTEMPTS: usize = 20;

/// A running `redis-server`, killed and reaped when dropped.
pub struct RedisServer {
    child: Child,
    port: u16,
    password: Option<String>,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// A server without a password, or `None` (with the reason printed) when `redis-server` is
    /// not installed and not required.
    pub fn start_or_skip(test: &str) -> Option<RedisServer> {
        RedisServer::start_with_password_or_skip(test, None)
    }

    /// A server that requires `password` (when given), or `None` as for
    /// [`RedisServer::start_or_skip`].
    pub fn start_with_password_or_skip(test: &str, password: Option<&str>) -> Option<RedisServer> {
        let version = Command::new("redis-server")
            .arg("--version")
            .stdin(Stdio::null())
            .output();
        match version {
            Ok(output) if output.status.success() => Some(RedisServer::launch(password)),
            _ if std::env::var("WEIR_REQUIRE_REDIS").as_deref() == Ok("1") => {
                panic!("{test}: WEIR_REQUIRE_REDIS=1 but redis-server is not installed")
            }
            _ => {
                eprintln!(
                    "{test}: skipped, redis-server is not installed (apt-get install \
                     redis-server; WEIR_REQUIRE_REDIS=1 makes its absence a failure)"
                );
                None
            }
        }
    }

    fn launch(password: Option<&str>) -> RedisServer {
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let dir = tempfile::tempdir().expect("redis-server directory");
            let port = free_port();
            let mut command = Command::new("redis-server");
            command
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(dir.path())
                .args(["--logfile", "redis.log"]);
            if let Some(password) = password {
                command.args(["--requirepass", password]);
            }
            let child = command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut server = RedisServer {
                child,
                port,
                password: password.map(str::to_string),
                _dir: dir,
            };
            match server.wait_ready() {
                Ok(()) => return server,
                // Most likely the port was taken between choosing and binding it; dropping
                // the server kills it.
                Err(failure) => last_failure = failure,
            }
        }
        panic!("redis-server did not start after {PORT_ATTEMPTS} attempts: {last_failure}");
    }

    /// Polls until this child answers (not another server that took the port meanwhile).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let own = format!("process_id:{}\r\n", self.child.id());
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("redis-server exited early: {status}"));
            }
            if let Some(info) = self.server_info() {
                if info.contains(&own) {
                    return Ok(());
                }
                return Err(format!("another server answers on port {}", self.port));
            }
            if Instant::now() > deadline {
                return Err("redis-server did not accept connections in time".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `INFO server`, once something answers on the port.
    fn server_info(&self) -> Option<String> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut con = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        redis::cmd("INFO").arg("server").query(&mut con).ok()
    }

    /// The server's version (`redis_version` of `INFO server`).
    pub fn version(&self) -> String {
        let info = self.server_info().expect("INFO server");
        info.lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .expect("redis_version in INFO")
            .trim()
            .to_string()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `redis://` address, with the password when the server requires one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}
