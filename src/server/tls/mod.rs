//! TLS for `queue-server`'s clients, as Redis 6 and later offer it: a TLS port beside the
//! plain one, the certificate and key files, an optional CA for client certificates (mutual
//! TLS), and reloading all of them without a restart. rustls does the cryptography.

mod accept;
mod material;
mod material_in_use;
mod settings;

pub(crate) use accept::serve;
pub use material::TlsError;
pub(crate) use material_in_use::TlsMaterial;
pub use settings::{TlsAuthClients, TlsSettings, parse_yes_no};
