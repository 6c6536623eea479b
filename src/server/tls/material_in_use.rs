//! The TLS material in use, replaced whole by a reload: a handshake uses either the old
//! certificate, key and CA together or the new ones together, never a mix.

use parking_lot::{Mutex, RwLock};
use tokio_rustls::TlsAcceptor;

#[cfg(feature = "cluster")]
use super::material::load_bus_configs;
use super::material::{TlsError, load_acceptor};
use super::settings::TlsSettings;
#[cfg(feature = "cluster")]
use crate::cluster::network::BusTls;
use crate::server::state::Server;

/// The acceptor new TLS connections use; `None` while no TLS material is configured.
#[derive(Default)]
pub(crate) struct TlsMaterial {
    acceptor: RwLock<Option<TlsAcceptor>>,
    /// The cluster bus's TLS (`tls-cluster yes`): one handle, which the bus keeps, and whose
    /// configurations a reload replaces.
    #[cfg(feature = "cluster")]
    bus: RwLock<Option<BusTls>>,
    /// Reloads (SIGHUP, `CONFIG SET`) one at a time, so that the settings and the acceptor
    /// in use always come from the same reload.
    reloading: Mutex<()>,
}

impl TlsMaterial {
    pub(crate) fn acceptor(&self) -> Option<TlsAcceptor> {
        self.acceptor.read().clone()
    }

    /// The cluster bus's TLS, when `tls-cluster` is on.
    #[cfg(feature = "cluster")]
    pub(crate) fn bus(&self) -> Option<BusTls> {
        self.bus.read().clone()
    }

    #[cfg(feature = "cluster")]
    fn use_bus(&self, configs: Option<BusConfigs>) {
        let mut bus = self.bus.write();
        match (bus.as_ref(), configs) {
            (Some(handle), Some((server, client))) => handle.replace(server, client),
            (None, Some((server, client))) => *bus = Some(BusTls::new(server, client)),
            (_, None) => *bus = None,
        }
    }
}

#[cfg(feature = "cluster")]
type BusConfigs = (
    std::sync::Arc<tokio_rustls::rustls::ServerConfig>,
    std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
);

impl Server {
    /// Reads the configured TLS files again and puts them in use for new connections (at start
    /// and on SIGHUP). Returns whether any TLS material is in use. On an error nothing changes.
    pub fn reload_tls(&self) -> Result<bool, TlsError> {
        let settings = self.config.read().tls.clone();
        self.use_tls_settings(settings)
    }

    /// Loads the files `settings` names; only if all of them load are the settings and the
    /// material put in use (`CONFIG SET tls-…`). Material is loaded when a TLS port is set or a
    /// certificate file is named, so that a bad file is refused even before TLS is turned on.
    pub(crate) fn use_tls_settings(&self, settings: TlsSettings) -> Result<bool, TlsError> {
        let _one_at_a_time = self.tls.reloading.lock();
        #[cfg(feature = "cluster")]
        let bus = match settings.cluster {
            true => Some(load_bus_configs(&settings)?),
            false => None,
        };
        let acceptor = if settings.enabled() || settings.cert_file.is_some() {
            Some(load_acceptor(&settings)?)
        } else {
            None
        };
        let in_use = acceptor.is_some();
        self.config.write().tls = settings;
        *self.tls.acceptor.write() = acceptor;
        #[cfg(feature = "cluster")]
        self.tls.use_bus(bus);
        Ok(in_use)
    }
}
