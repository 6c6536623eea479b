//! `queue-server`: Redis Streams over the Redis protocol (RESP2 and RESP3), on a weir store.
//!
//! The server holds no storage logic: commands translate Redis arguments into calls on the
//! [`Store`](crate::Store) and its streams and groups, and their results into replies.

mod command_stats;
mod commands;
mod config;
mod connection;
mod diagnostics;
mod keys;
#[cfg(feature = "cli")]
mod metrics;
pub mod notify;
mod open_files;
mod process;
pub mod resp;
mod state;
pub mod version;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

pub use config::{FsyncPolicy, ServerConfig, parse_maxclients, resolve_bind};
#[cfg(feature = "cli")]
pub use metrics::serve_metrics;
pub use open_files::OpenFiles;
pub use state::Server;

/// How long a shutdown waits for the connections' commands in flight before it closes the
/// store without them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accepts clients on `listener` until `shutdown` resolves or a client sends `SHUTDOWN`, then
/// stops accepting, lets the commands in flight finish, and closes the store cleanly.
pub async fn serve(
    server: Arc<Server>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), crate::StoreError> {
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    warn_if_unprotected(&server.config.read());
    let mut accepting = AcceptBackoff::default();
    loop {
        tokio::select! {
            accepted = accepting.accept(&listener) => match accepted {
                Ok((socket, addr)) => {
                    accepting.succeeded();
                    if refused_by_protected_mode(&server.config.read(), addr.ip()) {
                        refuse_unprotected(socket);
                        continue;
                    }
                    let server = Arc::clone(&server);
                    connections.spawn(connection::serve(server, socket, addr));
                }
                Err(error) => accepting.failed(&error),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
            () = server.stop_requested.notified() => {
                tracing::info!("SHUTDOWN received");
                break;
            }
        }
    }
    tracing::info!("shutting down: no new connections; finishing commands in flight");
    server.shutdown.send_replace(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "commands still running after {SHUTDOWN_GRACE:?}: closing the store without waiting for them (their writes are not acknowledged)"
        );
        connections.abort_all();
    }
    server.close()?;
    tracing::info!("store closed cleanly");
    Ok(())
}

/// Redis's protected mode: bound beyond loopback without a password, only loopback clients are
/// served. Decided for each client from the configuration of the moment, so that
/// `CONFIG SET requirepass ""` closes the server to the network again.
fn refused_by_protected_mode(config: &ServerConfig, client: IpAddr) -> bool {
    config.requirepass.is_none() && !is_loopback(config.bind) && !is_loopback(client)
}

/// Loopback, also as an IPv4 address mapped into IPv6 (`::ffff:127.0.0.1`), which is how a
/// server bound to `::` sees an IPv4 client.
fn is_loopback(address: IpAddr) -> bool {
    address.to_canonical().is_loopback()
}

fn warn_if_unprotected(config: &ServerConfig) {
    if !is_loopback(config.bind) && config.requirepass.is_none() {
        tracing::warn!(
            bind = %config.bind,
            "listening beyond loopback without --requirepass: protected mode refuses non-loopback clients until a password is set"
        );
    }
}

fn refuse_unprotected(socket: tokio::net::TcpStream) {
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut socket = socket;
        let message = b"-DENIED weir is running in protected mode because it listens beyond loopback without a password. Set --requirepass, or connect through the loopback interface.\r\n";
        let _ = socket.write_all(message).await;
    });
}

/// The first pause after `accept` fails for want of descriptors or memory; each failure in a
/// row doubles it, up to [`MAX_ACCEPT_PAUSE`].
const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(10);
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);
/// Repeated accept failures are logged at most this often, with a count of those not logged.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Pauses accepting while `accept` fails for want of a resource. A client waiting in the
/// backlog keeps the listener readable, so without a pause a full descriptor table turns the
/// accept loop into a busy loop that fills the log.
#[derive(Debug, Default)]
struct AcceptBackoff {
    pause: Option<Duration>,
    resume_at: Option<tokio::time::Instant>,
    last_logged: Option<Instant>,
    not_logged: u64,
}

impl AcceptBackoff {
    async fn accept(&self, listener: &TcpListener) -> std::io::Result<(TcpStream, SocketAddr)> {
        if let Some(resume_at) = self.resume_at {
            tokio::time::sleep_until(resume_at).await;
        }
        listener.accept().await
    }

    /// Accepting works again (or failed for a reason a pause does not help with).
    fn succeeded(&mut self) {
        self.pause = None;
        self.resume_at = None;
    }

    fn failed(&mut self, error: &std::io::Error) {
        let exhausted = rustix::io::Errno::from_io_error(error).is_some_and(|errno| {
            [
                rustix::io::Errno::MFILE,
                rustix::io::Errno::NFILE,
                rustix::io::Errno::NOBUFS,
                rustix::io::Errno::NOMEM,
            ]
            .contains(&errno)
        });
        if exhausted {
            let pause = self.pause.map_or(FIRST_ACCEPT_PAUSE, |pause| {
                (pause * 2).min(MAX_ACCEPT_PAUSE)
            });
            self.pause = Some(pause);
            self.resume_at = Some(tokio::time::Instant::now() + pause);
        } else {
            self.succeeded();
        }
        self.log(error);
    }

    fn log(&mut self, error: &std::io::Error) {
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|last| now.duration_since(last) < ACCEPT_LOG_INTERVAL)
        {
            self.not_logged += 1;
            return;
        }
        match self.pause {
            Some(pause) => tracing::warn!(
                %error,
                pause_ms = pause.as_millis(),
                failures_not_logged = self.not_logged,
                "accept failed: new connections wait (if out of file descriptors, raise `ulimit -n` or lower maxclients)"
            ),
            None => tracing::warn!(%error, failures_not_logged = self.not_logged, "accept failed"),
        }
        self.last_logged = Some(now);
        self.not_logged = 0;
    }
}

/// Binds the configured address.
pub async fn bind(config: &ServerConfig) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(config.bind, config.port)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposed(requirepass: Option<&str>) -> ServerConfig {
        ServerConfig {
            bind: IpAddr::from([0u16; 8]),
            requirepass: requirepass.map(str::to_string),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn protected_mode_follows_the_password_of_the_moment() {
        let remote = IpAddr::from([192, 0, 2, 7]);
        assert!(!refused_by_protected_mode(&exposed(Some("secret")), remote));
        assert!(refused_by_protected_mode(&exposed(None), remote));
        let loopback_only = ServerConfig::default();
        assert!(!refused_by_protected_mode(&loopback_only, remote));
    }

    #[test]
    fn an_ipv4_loopback_client_of_a_server_bound_to_ipv6_is_local() {
        let config = exposed(None);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(!refused_by_protected_mode(&config, mapped));
        assert!(!refused_by_protected_mode(&config, "::1".parse().unwrap()));
        assert!(refused_by_protected_mode(
            &config,
            "::ffff:192.0.2.7".parse().unwrap()
        ));
        let bound_mapped = ServerConfig {
            bind: "::ffff:127.0.0.1".parse().unwrap(),
            ..ServerConfig::default()
        };
        assert!(!refused_by_protected_mode(
            &bound_mapped,
            "192.0.2.7".parse().unwrap()
        ));
    }
}
