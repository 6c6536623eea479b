//! A client of the TLS port: the handshake, bounded in time, then the same connection code as
//! a plain client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::server::connection;
use crate::server::state::Server;

/// How long a client has to complete the TLS handshake. A client that connects and sends
/// nothing (or too little) is disconnected then, instead of holding a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one client of the TLS port. A failed or timed-out handshake closes the connection:
/// rustls has already sent the client an alert saying why, when it got that far.
pub(crate) async fn serve(server: Arc<Server>, socket: TcpStream, addr: SocketAddr, denied: bool) {
    // The listener is bound only once material is loaded, and a reload never removes it while
    // the TLS port is set: this is a server whose listener outlived that (a bug), not a client.
    let Some(acceptor) = server.tls.acceptor() else {
        tracing::error!(%addr, "a TLS client arrived while no TLS material is loaded");
        return;
    };
    // A shutdown does not wait for a handshake: the client has sent no command yet.
    let mut shutdown = server.shutdown.subscribe();
    let handshake = tokio::select! {
        handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)) => handshake,
        _ = shutdown.changed() => return,
    };
    match handshake {
        Ok(Ok(stream)) if denied => crate::server::deny_unprotected(stream).await,
        Ok(Ok(stream)) => connection::serve(server, stream, addr).await,
        Ok(Err(error)) => tracing::debug!(%addr, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(
            %addr,
            "TLS handshake not completed within {HANDSHAKE_TIMEOUT:?}: connection closed"
        ),
    }
}
