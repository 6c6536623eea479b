//! `queue-server`: Redis Streams over the Redis protocol (RESP2 and RESP3), on a weir store.
//!
//! The server holds no storage logic: commands translate Redis arguments into calls on the
//! [`Store`](crate::Store) and its streams and groups, and their results into replies.

mod acl;
mod cluster_routing;
mod cluster_view;
mod command_stats;
mod commands;
mod config;
mod connection;
mod diagnostics;
mod keys;
mod listen;
#[cfg(feature = "cli")]
mod metrics;
pub mod notify;
mod open_files;
mod process;
#[cfg(feature = "cluster")]
pub mod replication;
pub mod resp;
mod shard_stores;
mod state;
pub mod tls;
pub mod version;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::clock::{Clock, SystemClock};
use crate::repeated::RepeatLimiter;

#[cfg(feature = "cluster")]
pub use config::{
    BUS_PORT_OFFSET, ClusterConfig, DEFAULT_SNAPSHOT_ENTRIES, LOG_KEPT_AFTER_SNAPSHOT, MAX_SHARDS,
    PeerAddr, parse_peers,
};
pub use config::{
    ConfigFileError, FsyncPolicy, IgnoredDirective, ServerConfig, parse_maxclients, resolve_bind,
};
pub use listen::{ListenError, Listeners, listen};
#[cfg(feature = "cli")]
pub use metrics::serve_metrics;
pub use open_files::OpenFiles;
pub use state::Server;

/// How long a shutdown waits for the connections' commands in flight before it closes the
/// store without them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accepts clients on the plain and TLS listeners until `shutdown` resolves or a client sends
/// `SHUTDOWN`, then stops accepting, lets the commands in flight finish, and closes the store
/// cleanly.
pub async fn serve(
    server: Arc<Server>,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), crate::StoreError> {
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    warn_if_unprotected(&server.config.read());
    let mut plain = AcceptBackoff::default();
    let mut tls = AcceptBackoff::default();
    loop {
        tokio::select! {
            accepted = plain.accept(listeners.plain.as_ref()) => {
                if let Some(client) = plain.outcome(accepted) {
                    admit(&server, &mut connections, client, Transport::Plain);
                }
            }
            accepted = tls.accept(listeners.tls.as_ref()) => {
                if let Some(client) = tls.outcome(accepted) {
                    admit(&server, &mut connections, client, Transport::Tls);
                }
            }
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

/// Redis's protected mode: bound beyond loopback while the default user needs no password, only
/// loopback clients are served. Decided for each client from the users of the moment, so that
/// a password given by `requirepass` or `ACL SETUSER default >…` opens the server to the
/// network, and `CONFIG SET requirepass ""` closes it again.
fn refused_by_protected_mode(bind: IpAddr, default_user_open: bool, client: IpAddr) -> bool {
    default_user_open && !is_loopback(bind) && !is_loopback(client)
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

/// Which listener a client came through.
#[derive(Debug, Clone, Copy)]
enum Transport {
    Plain,
    Tls,
}

/// Starts serving an accepted client: its connection (after the TLS handshake, for the TLS
/// port) or, in protected mode, the refusal. The handshake runs in the client's own task, so a
/// slow or silent client never holds up the accept loop.
fn admit(
    server: &Arc<Server>,
    connections: &mut JoinSet<()>,
    (socket, addr): (TcpStream, SocketAddr),
    transport: Transport,
) {
    let _ = socket.set_nodelay(true);
    let bind = server.config.read().bind;
    let denied = refused_by_protected_mode(bind, server.acl.default_user().nopass, addr.ip());
    let server = Arc::clone(server);
    match transport {
        Transport::Plain if denied => connections.spawn(deny_unprotected(socket)),
        Transport::Plain => connections.spawn(connection::serve(server, socket, addr)),
        Transport::Tls => connections.spawn(tls::serve(server, socket, addr, denied)),
    };
}

async fn deny_unprotected(mut socket: impl AsyncWrite + Unpin) {
    let message = b"-DENIED weir is running in protected mode because it listens beyond loopback without a password. Set --requirepass, or connect through the loopback interface.\r\n";
    if socket.write_all(message).await.is_ok() {
        let _ = socket.flush().await;
    }
}

/// The first pause after `accept` fails for want of descriptors or memory; each failure in a
/// row doubles it, up to [`MAX_ACCEPT_PAUSE`].
const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(10);
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Pauses accepting while `accept` fails for want of a resource. A client waiting in the
/// backlog keeps the listener readable, so without a pause a full descriptor table turns the
/// accept loop into a busy loop that fills the log.
#[derive(Debug, Default)]
struct AcceptBackoff {
    pause: Option<Duration>,
    resume_at: Option<tokio::time::Instant>,
    /// Logs an accept failure that repeats once per interval, with a count of its repeats.
    log_limit: RepeatLimiter,
    clock: SystemClock,
}

impl AcceptBackoff {
    /// The next client of `listener`; never resolves without a listener (a port that is off).
    async fn accept(
        &self,
        listener: Option<&TcpListener>,
    ) -> std::io::Result<(TcpStream, SocketAddr)> {
        let Some(listener) = listener else {
            return std::future::pending().await;
        };
        if let Some(resume_at) = self.resume_at {
            tokio::time::sleep_until(resume_at).await;
        }
        listener.accept().await
    }

    /// The accepted client, or `None` after noting the failure.
    fn outcome(
        &mut self,
        accepted: std::io::Result<(TcpStream, SocketAddr)>,
    ) -> Option<(TcpStream, SocketAddr)> {
        match accepted {
            Ok(client) => {
                self.succeeded();
                Some(client)
            }
            Err(error) => {
                self.failed(&error);
                None
            }
        }
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

    fn log(&self, error: &std::io::Error) {
        let Some(note) = self
            .log_limit
            .check(&error.to_string(), self.clock.now_ms())
            .note()
        else {
            return;
        };
        match self.pause {
            Some(pause) => tracing::warn!(
                %error,
                pause_ms = pause.as_millis(),
                "accept failed: new connections wait (if out of file descriptors, raise `ulimit -n` or lower maxclients){note}"
            ),
            None => tracing::warn!(%error, "accept failed{note}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANYWHERE: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

    #[test]
    fn protected_mode_follows_the_password_of_the_moment() {
        let remote = IpAddr::from([192, 0, 2, 7]);
        assert!(!refused_by_protected_mode(ANYWHERE, false, remote));
        assert!(refused_by_protected_mode(ANYWHERE, true, remote));
        let loopback = ServerConfig::default().bind;
        assert!(!refused_by_protected_mode(loopback, true, remote));
    }

    #[test]
    fn an_ipv4_loopback_client_of_a_server_bound_to_ipv6_is_local() {
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(!refused_by_protected_mode(ANYWHERE, true, mapped));
        assert!(!refused_by_protected_mode(
            ANYWHERE,
            true,
            "::1".parse().unwrap()
        ));
        assert!(refused_by_protected_mode(
            ANYWHERE,
            true,
            "::ffff:192.0.2.7".parse().unwrap()
        ));
        assert!(!refused_by_protected_mode(
            "::ffff:127.0.0.1".parse().unwrap(),
            true,
            "192.0.2.7".parse().unwrap()
        ));
    }
}
