//! The server's settings: command-line flags, optionally a Redis-style configuration file.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use crate::durability::Durability;
use crate::stream::NodeLimits;

/// Redis's `appendfsync` values, mapped onto the store's durability policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// A reply is sent only once the write and everything it changed is on disk.
    Always,
    /// Flushed once a second.
    Everysec,
    /// The operating system decides.
    No,
}

impl FsyncPolicy {
    /// Parses `always`, `everysec` or `no` (any case).
    pub fn parse(text: &str) -> Option<FsyncPolicy> {
        match text.to_ascii_lowercase().as_str() {
            "always" => Some(FsyncPolicy::Always),
            "everysec" => Some(FsyncPolicy::Everysec),
            "no" => Some(FsyncPolicy::No),
            _ => None,
        }
    }

    /// The name Redis uses.
    pub fn as_str(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Everysec => "everysec",
            FsyncPolicy::No => "no",
        }
    }

    /// The store policy.
    pub fn durability(self) -> Durability {
        match self {
            FsyncPolicy::Always => Durability::Always,
            FsyncPolicy::Everysec => Durability::Interval(1000),
            FsyncPolicy::No => Durability::Never,
        }
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub dir: PathBuf,
    pub bind: IpAddr,
    pub port: u16,
    pub fsync: FsyncPolicy,
    pub requirepass: Option<String>,
    pub maxclients: usize,
    /// Largest bulk string a client may send (`proto-max-bulk-len`).
    pub max_bulk_len: usize,
    /// Most bytes of unparsed input buffered per client (`client-query-buffer-limit`).
    pub max_query_buffer: usize,
    /// Most bytes of replies buffered for a slow client before it is disconnected
    /// (`client-output-buffer-limit`).
    pub max_output_buffer: usize,
    /// `stream-node-max-entries` and `stream-node-max-bytes`.
    pub node_limits: NodeLimits,
    /// The Prometheus endpoint's port (`metrics-port`); `None`: no endpoint.
    pub metrics_port: Option<u16>,
    /// The Prometheus endpoint's address (`metrics-bind`); `None`: the server's `bind`.
    pub metrics_bind: Option<IpAddr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            dir: PathBuf::from("./data"),
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 6379,
            fsync: FsyncPolicy::Everysec,
            requirepass: None,
            maxclients: 10_000,
            max_bulk_len: 512 << 20,
            max_query_buffer: 1 << 30,
            max_output_buffer: 256 << 20,
            node_limits: NodeLimits::default(),
            metrics_port: None,
            metrics_bind: None,
        }
    }
}

impl ServerConfig {
    /// Applies a Redis-style configuration file: one `name value` per line, `#` comments.
    /// Known names: `dir`, `bind`, `port`, `appendfsync`, `requirepass`, `maxclients`,
    /// `proto-max-bulk-len`, `client-query-buffer-limit`.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read configuration file {}: {e}", path.display()))?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            self.apply(name, value.trim().trim_matches('"'))
                .map_err(|e| format!("{}:{}: {e}", path.display(), number + 1))?;
        }
        Ok(())
    }

    /// Applies one setting by its Redis name.
    pub fn apply(&mut self, name: &str, value: &str) -> Result<(), String> {
        let number = |value: &str| {
            value
                .parse::<usize>()
                .map_err(|_| format!("{name}: {value:?} is not a number"))
        };
        match name.to_ascii_lowercase().as_str() {
            "dir" => self.dir = PathBuf::from(value),
            "bind" => {
                let first = value.split_whitespace().next().unwrap_or(value);
                self.bind = resolve_bind(first).map_err(|reason| format!("bind: {reason}"))?;
            }
            "port" => {
                self.port = value
                    .parse()
                    .map_err(|_| format!("port: {value:?} is not a port number"))?;
            }
            "appendfsync" => {
                self.fsync = FsyncPolicy::parse(value).ok_or_else(|| {
                    format!("appendfsync: {value:?} is not always, everysec or no")
                })?;
            }
            "requirepass" => {
                self.requirepass = (!value.is_empty()).then(|| value.to_string());
            }
            "maxclients" => {
                self.maxclients =
                    parse_maxclients(value).map_err(|reason| format!("maxclients: {reason}"))?;
            }
            "proto-max-bulk-len" => self.max_bulk_len = number(value)?,
            "client-query-buffer-limit" => self.max_query_buffer = number(value)?,
            "stream-node-max-entries" => {
                self.node_limits.max_entries = parse_node_entries(value)
                    .ok_or_else(|| format!("{name}: {value:?} is not a number"))?;
            }
            "stream-node-max-bytes" => {
                self.node_limits.max_bytes = parse_memory(value)
                    .ok_or_else(|| format!("{name}: {value:?} is not a size"))?;
            }
            "metrics-port" => {
                let port = value
                    .parse()
                    .map_err(|_| format!("metrics-port: {value:?} is not a port number"))?;
                self.metrics_port = Some(port);
            }
            "metrics-bind" => {
                let address =
                    resolve_bind(value).map_err(|reason| format!("metrics-bind: {reason}"))?;
                self.metrics_bind = Some(address);
            }
            other => return Err(format!("unknown setting {other:?}")),
        }
        Ok(())
    }
}

/// A `stream-node-max-entries` value: a non-negative integer.
pub fn parse_node_entries(text: &str) -> Option<u64> {
    text.parse().ok()
}

/// A memory size as Redis reads one: a non-negative integer with an optional unit (`k`, `m`,
/// `g` for powers of 1000; `kb`, `mb`, `gb` for powers of 1024; any case).
pub fn parse_memory(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let units: [(&str, u64); 6] = [
        ("kb", 1 << 10),
        ("mb", 1 << 20),
        ("gb", 1 << 30),
        ("k", 1_000),
        ("m", 1_000_000),
        ("g", 1_000_000_000),
    ];
    let (digits, unit) = units
        .iter()
        .find_map(|&(suffix, unit)| lower.strip_suffix(suffix).map(|digits| (digits, unit)))
        .unwrap_or((lower.as_str(), 1));
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// Parses a `maxclients` value as Redis checks it: an integer from 1 to 2^32 - 1.
pub fn parse_maxclients(text: &str) -> Result<usize, String> {
    let value: i64 = text
        .parse()
        .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
    usize::try_from(value)
        .ok()
        .filter(|&value| value >= 1 && value as u64 <= u64::from(u32::MAX))
        .ok_or_else(|| "argument must be between 1 and 4294967295 inclusive".to_string())
}

/// The address to listen on for a `bind` value: an IP address, or a host name such as
/// `localhost`, resolved once at start. A name with IPv4 addresses gets the first of them, as
/// clients that connect to `127.0.0.1` (redis-cli's default) expect of `localhost`.
pub fn resolve_bind(text: &str) -> Result<IpAddr, String> {
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    let addresses: Vec<IpAddr> = (text, 0)
        .to_socket_addrs()
        .map_err(|e| {
            format!("{text:?} is neither an IP address nor a host name that resolves: {e}")
        })?
        .map(|socket| socket.ip())
        .collect();
    addresses
        .iter()
        .find(|address| address.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_take_redis_units() {
        assert_eq!(parse_memory("4096"), Some(4096));
        assert_eq!(parse_memory("4kb"), Some(4096));
        assert_eq!(parse_memory("4K"), Some(4000));
        assert_eq!(parse_memory("1mb"), Some(1 << 20));
        assert_eq!(parse_memory("lots"), None);
        assert_eq!(parse_memory("-1"), None);
        let mut config = ServerConfig::default();
        config.apply("stream-node-max-entries", "10").unwrap();
        config.apply("stream-node-max-bytes", "1kb").unwrap();
        assert_eq!(
            config.node_limits,
            NodeLimits {
                max_entries: 10,
                max_bytes: 1024
            }
        );
    }

    #[test]
    fn bind_takes_an_address_or_a_host_name() {
        assert_eq!(
            resolve_bind("::1"),
            Ok(IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1u16]))
        );
        assert_eq!(resolve_bind("localhost"), Ok(IpAddr::from([127, 0, 0, 1])));
        let mut config = ServerConfig::default();
        config.apply("bind", "localhost ::1").unwrap();
        assert_eq!(config.bind, IpAddr::from([127, 0, 0, 1]));
    }

    #[test]
    fn the_metrics_endpoint_is_off_unless_a_port_is_given() {
        let mut config = ServerConfig::default();
        assert_eq!((config.metrics_port, config.metrics_bind), (None, None));
        config.apply("metrics-port", "9121").unwrap();
        config.apply("metrics-bind", "::1").unwrap();
        assert_eq!(config.metrics_port, Some(9121));
        assert_eq!(
            config.metrics_bind,
            Some(IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1u16]))
        );
        assert!(config.apply("metrics-port", "http").is_err());
    }
}
