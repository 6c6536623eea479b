//! TLS on the cluster bus: with it, every bus connection is a mutual TLS session (each node
//! presents its certificate and checks the other's against the cluster's CA) that carries the
//! secret's handshake and every frame after it, so that no one on the path can read or change
//! a request. The rustls configurations come from the node's TLS files, which this layer does
//! not read; a reload of those files replaces them for the connections opened afterwards.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::RwLock;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use super::error::TransportError;

/// The bus's TLS configurations: the server side (which must ask for and verify the peer's
/// certificate) and the client side (which presents this node's certificate and verifies the
/// peer's, its name included). Clones share them, so a replacement reaches the listener and
/// every peer connection of the node at once.
#[derive(Clone)]
pub struct BusTls {
    configs: Arc<RwLock<BusTlsConfigs>>,
}

struct BusTlsConfigs {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl std::fmt::Debug for BusTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusTls").finish_non_exhaustive()
    }
}

impl BusTls {
    /// TLS with these configurations.
    pub fn new(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> BusTls {
        BusTls {
            configs: Arc::new(RwLock::new(BusTlsConfigs { server, client })),
        }
    }

    /// Puts new configurations in use for the connections opened from now on; open ones keep
    /// the session they made.
    pub fn replace(&self, server: Arc<ServerConfig>, client: Arc<ClientConfig>) {
        *self.configs.write() = BusTlsConfigs { server, client };
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.configs.read().server))
    }

    fn connector(&self) -> TlsConnector {
        TlsConnector::from(Arc::clone(&self.configs.read().client))
    }
}

/// A bus connection: TCP, or TLS over it.
pub(super) enum BusStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl std::fmt::Debug for BusStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BusStream::Plain(_) => "BusStream::Plain",
            BusStream::Tls(_) => "BusStream::Tls",
        })
    }
}

/// Opens TLS, when the bus has it, on a connection the listener accepted, within `limit`.
pub(super) async fn accept(
    tcp: TcpStream,
    tls: Option<&BusTls>,
    limit: Duration,
) -> Result<BusStream, TransportError> {
    let Some(tls) = tls else {
        return Ok(BusStream::Plain(tcp));
    };
    let session = timeout(limit, tls.acceptor().accept(tcp))
        .await
        .map_err(|_| TransportError::TimedOut { after: limit })?
        .map_err(tls_failed)?;
    Ok(BusStream::Tls(Box::new(TlsStream::Server(session))))
}

/// Opens TLS, when the bus has it, on a connection to `addr` (`host:port`), within `limit`: the
/// peer's certificate must name `host`.
pub(super) async fn connect(
    tcp: TcpStream,
    tls: Option<&BusTls>,
    addr: &str,
    limit: Duration,
) -> Result<BusStream, TransportError> {
    let Some(tls) = tls else {
        return Ok(BusStream::Plain(tcp));
    };
    let name = server_name(addr)?;
    let session = timeout(limit, tls.connector().connect(name, tcp))
        .await
        .map_err(|_| TransportError::TimedOut { after: limit })?
        .map_err(tls_failed)?;
    Ok(BusStream::Tls(Box::new(TlsStream::Client(session))))
}

/// The name a peer's certificate must hold: the host of its bus address, an IP address or a
/// DNS name (a bracketed IPv6 address loses its brackets).
fn server_name(addr: &str) -> Result<ServerName<'static>, TransportError> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|_| TransportError::BadPeerName {
        addr: addr.to_owned(),
    })
}

fn tls_failed(error: io::Error) -> TransportError {
    TransportError::Tls(error.to_string())
}

impl AsyncRead for BusStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BusStream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            BusStream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BusStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BusStream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            BusStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BusStream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            BusStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            BusStream::Plain(tcp) => tcp.is_write_vectored(),
            BusStream::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BusStream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            BusStream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BusStream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            BusStream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_named_by_the_host_of_its_bus_address() {
        let name = |addr| server_name(addr).map(|name| name.to_str().into_owned());
        assert_eq!(name("10.0.0.4:16379").unwrap(), "10.0.0.4");
        assert_eq!(
            name("node-4.weir.internal:16379").unwrap(),
            "node-4.weir.internal"
        );
        assert_eq!(name("[::1]:16379").unwrap(), "::1");
        assert!(matches!(
            server_name("not a host:16379"),
            Err(TransportError::BadPeerName { .. })
        ));
    }
}
