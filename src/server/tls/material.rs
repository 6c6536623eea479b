//! Turns the configured files into a TLS acceptor: the certificate chain, its key and, when
//! clients must (or may) present certificates, the CA that signs them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::{CryptoProvider, aws_lc_rs};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};

use super::settings::{TlsAuthClients, TlsSettings};

/// Why the TLS material could not be loaded. The previous material, if any, stays in use.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file TLS needs is not configured (the setting's name).
    #[error(
        "{0} is not set: TLS needs a certificate file, its key file and, unless tls-auth-clients is no, a CA certificate file"
    )]
    Missing(&'static str),
    #[error("cannot read {name} {}: {source}; check the path and the file's permissions", path.display())]
    /// A file could not be read.
    Unreadable {
        /// The setting that names the file.
        name: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    #[error("{name} {} is not valid PEM: {source}", path.display())]
    /// A file is not PEM.
    NotPem {
        /// The setting that names the file.
        name: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM reader found wrong.
        source: pem::Error,
    },
    #[error("{name} {} holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)", path.display())]
    /// A certificate file holds no certificate.
    NoCertificate {
        /// The setting that names the file.
        name: &'static str,
        /// The file.
        path: PathBuf,
    },
    #[error("tls-key-file {} holds no private key (expected a PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" block)", path.display())]
    /// The key file holds no private key.
    NoKey {
        /// The file.
        path: PathBuf,
    },
    #[error("tls-ca-cert-file {} holds a certificate that cannot be a trust anchor: {source}", path.display())]
    /// A CA certificate cannot be a trust anchor.
    UnusableCa {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The cluster bus needs a CA to check the other nodes' certificates against.
    #[error(
        "tls-cluster needs tls-ca-cert-file: every node checks the certificates of the others against that CA"
    )]
    ClusterWithoutCa,
    #[error("tls-ca-cert-file {}: {source}", path.display())]
    /// The CA certificates do not make a client verifier.
    BadCa {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        source: rustls::server::VerifierBuilderError,
    },
    /// The certificate and key do not make a configuration.
    #[error(
        "the certificate and key do not make a TLS configuration (is the key the certificate's?): {0}"
    )]
    Rejected(#[from] rustls::Error),
}

/// Builds an acceptor from the files `settings` names, reading each of them now.
pub(crate) fn load_acceptor(settings: &TlsSettings) -> Result<TlsAcceptor, TlsError> {
    let cert_file = required(&settings.cert_file, "tls-cert-file")?;
    let key_file = required(&settings.key_file, "tls-key-file")?;
    let chain = certificates(cert_file, "tls-cert-file")?;
    let key = private_key(key_file)?;
    let provider = Arc::new(aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match client_verifier(settings, provider)? {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The cluster bus's two sides, from the files `settings` names, reading each of them now: as a
/// server, a node asks every peer for a certificate signed by the CA (whatever
/// `tls-auth-clients` says of clients); as a client, it presents its own certificate and checks
/// the peer's against the CA.
pub(crate) fn load_bus_configs(
    settings: &TlsSettings,
) -> Result<(Arc<ServerConfig>, Arc<ClientConfig>), TlsError> {
    let cert_file = required(&settings.cert_file, "tls-cert-file")?;
    let key_file = required(&settings.key_file, "tls-key-file")?;
    let ca_file = settings
        .ca_cert_file
        .as_deref()
        .ok_or(TlsError::ClusterWithoutCa)?;
    let chain = certificates(cert_file, "tls-cert-file")?;
    let key = private_key(key_file)?;
    let roots = Arc::new(trust_anchors(ca_file)?);
    let provider = Arc::new(aws_lc_rs::default_provider());
    let peers =
        WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
            .build()
            .map_err(|source| TlsError::BadCa {
                path: ca_file.to_path_buf(),
                source,
            })?;
    let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(peers)
        .with_single_cert(chain.clone(), key.clone_key())?;
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    Ok((Arc::new(server), Arc::new(client)))
}

fn required<'a>(path: &'a Option<PathBuf>, name: &'static str) -> Result<&'a Path, TlsError> {
    path.as_deref().ok_or(TlsError::Missing(name))
}

/// How client certificates are checked, per `tls-auth-clients`; `None` when none is asked for.
fn client_verifier(
    settings: &TlsSettings,
    provider: Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, TlsError> {
    if settings.auth_clients == TlsAuthClients::No {
        return Ok(None);
    }
    let ca_file = required(&settings.ca_cert_file, "tls-ca-cert-file")?;
    let roots = trust_anchors(ca_file)?;
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = match settings.auth_clients {
        TlsAuthClients::Optional => builder.allow_unauthenticated(),
        TlsAuthClients::Yes | TlsAuthClients::No => builder,
    };
    let verifier = builder.build().map_err(|source| TlsError::BadCa {
        path: ca_file.to_path_buf(),
        source,
    })?;
    Ok(Some(verifier))
}

/// The CA certificates of `ca_file`, as trust anchors.
fn trust_anchors(ca_file: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(ca_file, "tls-ca-cert-file")? {
        roots
            .add(certificate)
            .map_err(|source| TlsError::UnusableCa {
                path: ca_file.to_path_buf(),
                source,
            })?;
    }
    Ok(roots)
}

fn certificates(path: &Path, name: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_text = read(path, name)?;
    let chain = CertificateDer::pem_slice_iter(&pem_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::NotPem {
            name,
            path: path.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            name,
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let name = "tls-key-file";
    let pem_text = read(path, name)?;
    PrivateKeyDer::from_pem_slice(&pem_text).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        source => TlsError::NotPem {
            name,
            path: path.to_path_buf(),
            source,
        },
    })
}

fn read(path: &Path, name: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Unreadable {
        name,
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and its key, written into `dir`.
    fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_file = dir.join(format!("{name}.crt"));
        let key_file = dir.join(format!("{name}.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    fn settings(cert: &Path, key: &Path, auth_clients: TlsAuthClients) -> TlsSettings {
        TlsSettings {
            port: 6380,
            cert_file: Some(cert.to_path_buf()),
            key_file: Some(key.to_path_buf()),
            ca_cert_file: None,
            auth_clients,
            cluster: false,
        }
    }

    #[test]
    fn the_cluster_bus_needs_a_ca_to_check_the_other_nodes_against() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "node");
        let mut settings = settings(&cert, &key, TlsAuthClients::No);
        settings.cluster = true;
        assert!(matches!(
            load_bus_configs(&settings),
            Err(TlsError::ClusterWithoutCa)
        ));
        settings.ca_cert_file = Some(cert.clone());
        let (_, client) = load_bus_configs(&settings).unwrap();
        assert!(client.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn a_certificate_and_its_key_load() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "server");
        load_acceptor(&settings(&cert, &key, TlsAuthClients::No)).unwrap();
        let with_ca = TlsSettings {
            ca_cert_file: Some(cert.clone()),
            ..settings(&cert, &key, TlsAuthClients::Yes)
        };
        load_acceptor(&with_ca).unwrap();
    }

    #[test]
    fn each_missing_or_wrong_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "server");
        let (_, other_key) = self_signed(dir.path(), "other");
        let failure = |settings: TlsSettings| load_acceptor(&settings).err().unwrap();

        let no_ca = failure(settings(&cert, &key, TlsAuthClients::Optional));
        assert!(
            matches!(no_ca, TlsError::Missing("tls-ca-cert-file")),
            "{no_ca}"
        );
        let wrong_key = failure(settings(&cert, &other_key, TlsAuthClients::No));
        assert!(matches!(wrong_key, TlsError::Rejected(_)), "{wrong_key}");
        let unreadable = failure(settings(&dir.path().join("none"), &key, TlsAuthClients::No));
        assert!(
            matches!(
                unreadable,
                TlsError::Unreadable {
                    name: "tls-cert-file",
                    ..
                }
            ),
            "{unreadable}"
        );
        let key_as_cert = failure(settings(&key, &key, TlsAuthClients::No));
        assert!(
            matches!(key_as_cert, TlsError::NoCertificate { .. }),
            "{key_as_cert}"
        );
        let cert_as_key = failure(settings(&cert, &cert, TlsAuthClients::No));
        assert!(
            matches!(cert_as_key, TlsError::NoKey { .. }),
            "{cert_as_key}"
        );
    }
}
