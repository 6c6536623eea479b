//! The listening sockets: the plain port and the TLS port, side by side, and which of them a
//! configuration asks for.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpListener;

use super::config::ServerConfig;
use super::state::Server;
use super::tls::TlsError;

/// The sockets the server accepts clients on; at least one of them is bound.
#[derive(Debug)]
pub struct Listeners {
    pub(crate) plain: Option<TcpListener>,
    pub(crate) tls: Option<TcpListener>,
}

impl Listeners {
    /// Where plain clients connect; `None` when the plain port is off.
    pub fn plain_address(&self) -> Option<SocketAddr> {
        self.plain.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where TLS clients connect; `None` without a TLS port.
    pub fn tls_address(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// Why the server cannot listen.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The TLS material could not be loaded.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// A port could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// Loads the TLS material when a TLS port is set, then binds the configured ports.
pub async fn listen(server: &Server) -> Result<Listeners, ListenError> {
    server.reload_tls()?;
    let config = server.config.read().clone();
    let plain = match plain_port(&config) {
        Some(port) => Some(bind(config.bind, port).await?),
        None => None,
    };
    let tls = match config.tls.enabled() {
        true => Some(bind(config.bind, config.tls.port).await?),
        false => None,
    };
    Ok(Listeners { plain, tls })
}

/// The plain port to bind, if any. `port 0` means what Redis means by it, no plain listener,
/// when a TLS port is set; without one the server would listen nowhere, so there `0` keeps
/// its meaning of "any free port" (what tests and ad-hoc runs use).
fn plain_port(config: &ServerConfig) -> Option<u16> {
    (config.port != 0 || !config.tls.enabled()).then_some(config.port)
}

async fn bind(ip: IpAddr, port: u16) -> Result<TcpListener, ListenError> {
    let address = SocketAddr::new(ip, port);
    TcpListener::bind(address)
        .await
        .map_err(|source| ListenError::Bind { address, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(port: u16, tls_port: u16) -> Option<u16> {
        let mut config = ServerConfig {
            port,
            ..ServerConfig::default()
        };
        config.tls.port = tls_port;
        plain_port(&config)
    }

    #[test]
    fn port_zero_turns_plain_off_only_beside_a_tls_port() {
        assert_eq!(ports(6379, 0), Some(6379));
        assert_eq!(ports(6379, 6380), Some(6379));
        assert_eq!(ports(0, 6380), None);
        assert_eq!(ports(0, 0), Some(0), "alone, port 0 is any free port");
    }
}
