//! Starting `queue-server` or `redis-server` on a temporary directory for one run.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerKind {
    /// weir's `queue-server`, built with this bench.
    Weir,
    /// `redis-server` from the PATH, with `appendonly yes` and the same `appendfsync`.
    Redis,
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Weir => "queue-server",
            ServerKind::Redis => "redis-server",
        }
    }
}

/// A server this process started; stopped and its directory removed on drop.
pub struct Started {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Started {
    pub fn start(kind: ServerKind, fsync: &str) -> Result<Started, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let port = free_port()?;
        let mut command = match kind {
            ServerKind::Weir => {
                let mut command = Command::new(env!("CARGO_BIN_EXE_queue-server"));
                command.arg("--dir").arg(dir.path()).args([
                    "--port",
                    &port.to_string(),
                    "--fsync",
                    fsync,
                ]);
                command
            }
            ServerKind::Redis => {
                let mut command = Command::new("redis-server");
                command
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .arg("--dir")
                    .arg(dir.path())
                    .args(["--appendonly", "yes", "--appendfsync", fsync, "--save", ""]);
                command
            }
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e} (is it installed?)", kind.name()))?;
        Ok(Started {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        // The server may already have exited; there is nothing more to do then.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free local port: {e}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| format!("no free local port: {e}"))
}

/// Waits until the server answers PING.
pub async fn wait_ready(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut connection) = Connection::connect(addr).await
            && connection.call(&[b"PING"]).await.is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("no server answered PING at {addr} within 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The process's anonymous resident memory (`RssAnon` in `/proc/PID/status`), in bytes.
pub fn rss_anon(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("RssAnon:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
