//! `queue-server`: Redis Streams over the Redis protocol (RESP2 and RESP3), on a weir store.
//!
//! The server holds no storage logic: commands translate Redis arguments into calls on the
//! [`Store`](crate::Store) and its streams and groups, and their results into replies.

mod commands;
mod config;
mod connection;
mod keys;
pub mod resp;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::{FsyncPolicy, ServerConfig};
pub use state::Server;

/// Accepts clients on `listener` until `shutdown` resolves or a client sends `SHUTDOWN`, then
/// stops accepting, lets the commands in flight finish, and closes the store cleanly.
pub async fn serve(
    server: Arc<Server>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), crate::StoreError> {
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    let protected = protected_mode(&server);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, addr)) => {
                    if protected && !addr.ip().is_loopback() {
                        refuse_unprotected(socket);
                        continue;
                    }
                    let server = Arc::clone(&server);
                    connections.spawn(connection::serve(server, socket, addr));
                }
                Err(error) => tracing::warn!(%error, "accept failed"),
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
    while connections.join_next().await.is_some() {}
    server.close()?;
    tracing::info!("store closed cleanly");
    Ok(())
}

/// Redis's protected mode: bound beyond loopback without a password, only loopback clients are
/// served.
fn protected_mode(server: &Server) -> bool {
    let config = server.config.read();
    let exposed = !config.bind.is_loopback();
    if exposed && config.requirepass.is_none() {
        tracing::warn!(
            bind = %config.bind,
            "listening beyond loopback without --requirepass: protected mode refuses non-loopback clients until a password is set"
        );
    }
    exposed && config.requirepass.is_none()
}

fn refuse_unprotected(socket: tokio::net::TcpStream) {
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut socket = socket;
        let message = b"-DENIED weir is running in protected mode because it listens beyond loopback without a password. Set --requirepass, or connect through the loopback interface.\r\n";
        let _ = socket.write_all(message).await;
    });
}

/// Binds the configured address.
pub async fn bind(config: &ServerConfig) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(config.bind, config.port)).await
}
