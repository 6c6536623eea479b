//! The TLS settings, under Redis's names: `tls-port`, `tls-cert-file`, `tls-key-file`,
//! `tls-ca-cert-file`, `tls-auth-clients` and `tls-cluster`.

use std::path::PathBuf;

/// Which clients must present a certificate (`tls-auth-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsAuthClients {
    /// A certificate signed by the CA is required (Redis's default).
    Yes,
    /// A certificate is asked for but not required; one that is presented must be valid.
    Optional,
    /// No certificate is asked for.
    No,
}

impl TlsAuthClients {
    /// Parses `yes`, `no` or `optional` (any case).
    pub fn parse(text: &str) -> Option<TlsAuthClients> {
        match text.to_ascii_lowercase().as_str() {
            "yes" => Some(TlsAuthClients::Yes),
            "optional" => Some(TlsAuthClients::Optional),
            "no" => Some(TlsAuthClients::No),
            _ => None,
        }
    }

    /// The name Redis uses.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsAuthClients::Yes => "yes",
            TlsAuthClients::Optional => "optional",
            TlsAuthClients::No => "no",
        }
    }
}

/// Where the TLS listener is and which files hold its material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The TLS port; 0 (the default) turns TLS off.
    pub port: u16,
    /// The server's certificate chain (PEM), its own certificate first.
    pub cert_file: Option<PathBuf>,
    /// The private key of that certificate (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// The CA certificates (PEM) that client certificates must be signed by.
    pub ca_cert_file: Option<PathBuf>,
    /// Whether clients must present a certificate (`tls-auth-clients`).
    pub auth_clients: TlsAuthClients,
    /// Whether the cluster bus runs over mutual TLS (`tls-cluster`), with the same certificate,
    /// key and CA.
    pub cluster: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            port: 0,
            cert_file: None,
            key_file: None,
            ca_cert_file: None,
            auth_clients: TlsAuthClients::Yes,
            cluster: false,
        }
    }
}

impl TlsSettings {
    /// The names [`TlsSettings::apply`] and [`TlsSettings::value`] know.
    pub const NAMES: &[&str] = &[
        "tls-port",
        "tls-cert-file",
        "tls-key-file",
        "tls-ca-cert-file",
        "tls-auth-clients",
        "tls-cluster",
    ];

    /// Whether a TLS listener is configured.
    pub fn enabled(&self) -> bool {
        self.port != 0
    }

    /// Applies one setting by its Redis name (lower case). `None` for a name that is not a
    /// TLS setting; an empty file name clears that file.
    pub fn apply(&mut self, name: &str, value: &str) -> Option<Result<(), String>> {
        let file = || (!value.is_empty()).then(|| PathBuf::from(value));
        match name {
            "tls-port" => {
                return Some(match value.parse() {
                    Ok(port) => {
                        self.port = port;
                        Ok(())
                    }
                    Err(_) => Err(format!("tls-port: {value:?} is not a port number")),
                });
            }
            "tls-cert-file" => self.cert_file = file(),
            "tls-key-file" => self.key_file = file(),
            "tls-ca-cert-file" => self.ca_cert_file = file(),
            "tls-auth-clients" => match TlsAuthClients::parse(value) {
                Some(auth) => self.auth_clients = auth,
                None => {
                    return Some(Err(format!(
                        "tls-auth-clients: {value:?} is not yes, no or optional"
                    )));
                }
            },
            "tls-cluster" => match parse_yes_no(value) {
                Some(cluster) => self.cluster = cluster,
                None => return Some(Err(format!("tls-cluster: {value:?} is not yes or no"))),
            },
            _ => return None,
        }
        Some(Ok(()))
    }

    /// The value of one setting as `CONFIG GET` shows it; `None` for another name.
    pub fn value(&self, name: &str) -> Option<String> {
        let file = |path: &Option<PathBuf>| {
            path.as_ref()
                .map(|path| path.display().to_string())
                .unwrap_or_default()
        };
        Some(match name {
            "tls-port" => self.port.to_string(),
            "tls-cert-file" => file(&self.cert_file),
            "tls-key-file" => file(&self.key_file),
            "tls-ca-cert-file" => file(&self.ca_cert_file),
            "tls-auth-clients" => self.auth_clients.as_str().to_string(),
            "tls-cluster" => if self.cluster { "yes" } else { "no" }.to_string(),
            _ => return None,
        })
    }
}

/// `yes` or `no` (any case), as Redis's boolean settings are written.
pub fn parse_yes_no(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_what_was_applied() {
        let mut settings = TlsSettings::default();
        let values = [
            ("tls-port", "6380"),
            ("tls-cert-file", "/etc/weir/server.crt"),
            ("tls-key-file", "/etc/weir/server.key"),
            ("tls-ca-cert-file", "/etc/weir/ca.crt"),
            ("tls-auth-clients", "optional"),
            ("tls-cluster", "yes"),
        ];
        for (name, value) in values {
            assert_eq!(settings.apply(name, value), Some(Ok(())), "{name}");
        }
        for (name, value) in values {
            assert_eq!(settings.value(name).as_deref(), Some(value), "{name}");
        }
        assert!(settings.enabled());
        assert_eq!(settings.apply("tls-cert-file", ""), Some(Ok(())));
        assert_eq!(settings.cert_file, None);
    }

    #[test]
    fn bad_values_and_other_names_are_told_apart() {
        let mut settings = TlsSettings::default();
        assert!(matches!(settings.apply("tls-port", "65536"), Some(Err(_))));
        assert!(matches!(
            settings.apply("tls-auth-clients", "sometimes"),
            Some(Err(_))
        ));
        assert!(matches!(settings.apply("tls-cluster", "1"), Some(Err(_))));
        assert_eq!(settings.apply("port", "1"), None);
        assert_eq!(settings.value("port"), None);
        assert_eq!(settings, TlsSettings::default());
        assert!(!settings.enabled());
        assert_eq!(TlsAuthClients::parse("YES"), Some(TlsAuthClients::Yes));
    }
}
