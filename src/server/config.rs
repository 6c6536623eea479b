//! The server's settings: command-line flags, optionally a Redis-style configuration file.
//!
//! Adding a directive takes three edits here: its name in [`DIRECTIVES`], an arm in
//! [`ServerConfig::apply`] that parses it, and an arm in [`ServerConfig::directive_value`] that
//! writes it back for `CONFIG REWRITE`. A directive that takes more than one argument also gets
//! an arm in [`ServerConfig::apply_directive`].

#[cfg(feature = "cluster")]
mod cluster;
mod file;
mod redis_names;
mod rewrite;
mod suggest;

use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

#[cfg(feature = "cluster")]
pub use cluster::{
    BUS_PORT_OFFSET, ClusterConfig, DEFAULT_SNAPSHOT_ENTRIES, LOG_KEPT_AFTER_SNAPSHOT, MAX_SHARDS,
    PeerAddr, parse_peers,
};
pub use file::ConfigFileError;
pub use rewrite::rewrite;

use super::tls::TlsSettings;
use crate::durability::Durability;
use crate::server::version::{LATEST, RedisVersion};
use crate::stream::NodeLimits;

/// The directives weir reads from a configuration file (and `CONFIG REWRITE` writes).
pub const DIRECTIVES: &[&str] = &[
    "dir",
    "bind",
    "port",
    "appendfsync",
    "appendonly",
    "aof-use-rdb-preamble",
    "requirepass",
    "aclfile",
    "maxclients",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "stream-node-max-entries",
    "stream-node-max-bytes",
    "redis-version",
    "tls-port",
    "tls-cert-file",
    "tls-key-file",
    "tls-ca-cert-file",
    "tls-auth-clients",
    "metrics-port",
    "metrics-bind",
];

/// A Redis directive of the configuration file that has no effect in weir, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredDirective {
    /// The file holding it.
    pub file: PathBuf,
    /// Its line, from 1.
    pub line: usize,
    /// The directive's name.
    pub name: String,
}

impl std::fmt::Display for IgnoredDirective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: `{}` is a Redis directive with no effect in weir; ignored",
            self.file.display(),
            self.line,
            self.name
        )
    }
}

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
    /// The data directory (`dir`), created if missing and locked while the server runs.
    pub dir: PathBuf,
    /// The address to listen on (`bind`). Beyond loopback and without `requirepass`, only
    /// loopback clients are served (protected mode).
    pub bind: IpAddr,
    /// The TCP port to listen on (`port`).
    pub port: u16,
    /// When appends reach the disk (`appendfsync`).
    pub fsync: FsyncPolicy,
    /// The password clients give with `AUTH` (`requirepass`); `None` asks for none.
    pub requirepass: Option<String>,
    /// The file users are kept in (`ACL SAVE`, `ACL LOAD`).
    pub aclfile: Option<PathBuf>,
    /// Most clients connected at once (`maxclients`), lowered at start to what the open-files
    /// limit allows.
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
    /// The Redis version the server reports and whose reply shapes it gives (`redis-version`).
    pub redis_version: RedisVersion,
    /// The configuration file read at start, which `CONFIG REWRITE` writes (absolute).
    pub config_file: Option<PathBuf>,
    /// `tls-port`, `tls-cert-file`, `tls-key-file`, `tls-ca-cert-file`, `tls-auth-clients`.
    pub tls: TlsSettings,
    /// The Prometheus endpoint's port (`metrics-port`); `None`: no endpoint.
    pub metrics_port: Option<u16>,
    /// The Prometheus endpoint's address (`metrics-bind`); `None`: the server's `bind`.
    pub metrics_bind: Option<IpAddr>,
    /// The replicated cluster this node belongs to; `None`: a single node.
    #[cfg(feature = "cluster")]
    pub cluster: Option<ClusterConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            dir: PathBuf::from("./data"),
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 6379,
            fsync: FsyncPolicy::Everysec,
            requirepass: None,
            aclfile: None,
            maxclients: 10_000,
            max_bulk_len: 512 << 20,
            max_query_buffer: 1 << 30,
            max_output_buffer: 256 << 20,
            node_limits: NodeLimits::default(),
            redis_version: LATEST,
            config_file: None,
            tls: TlsSettings::default(),
            metrics_port: None,
            metrics_bind: None,
            #[cfg(feature = "cluster")]
            cluster: None,
        }
    }
}

impl ServerConfig {
    /// Applies a Redis-style configuration file (see [`file`] for the syntax), and remembers it
    /// as the file `CONFIG REWRITE` writes. Redis directives that mean nothing here are returned,
    /// for the caller to warn about; any other unknown name, a bad value or a bad line is an error
    /// naming the file and line.
    pub fn apply_file(&mut self, path: &Path) -> Result<Vec<IgnoredDirective>, ConfigFileError> {
        let mut ignored = Vec::new();
        for directive in file::read(path)? {
            if DIRECTIVES.contains(&directive.name.as_str()) {
                self.apply_directive(&directive.name, &directive.args)
            } else if redis_names::ignored(&directive.name) {
                ignored.push(IgnoredDirective {
                    file: directive.file.clone(),
                    line: directive.line,
                    name: directive.name.clone(),
                });
                Ok(())
            } else {
                Err(unknown_directive(&directive.name))
            }
            .map_err(|reason| ConfigFileError::Line {
                file: directive.file,
                line: directive.line,
                reason,
            })?;
        }
        self.config_file = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        Ok(ignored)
    }

    /// Applies one directive of a configuration file: `bind` takes one address or more (the
    /// first is used), every other directive exactly one value.
    pub fn apply_directive(&mut self, name: &str, args: &[String]) -> Result<(), String> {
        match (name, args) {
            ("bind", [first, ..]) => self.apply(name, first),
            (_, [value]) => self.apply(name, value),
            _ => Err(format!(
                "wrong number of arguments: `{name}` takes one value"
            )),
        }
    }

    /// The value of a directive as `CONFIG REWRITE` writes it; `None` for a directive with no
    /// stored value (one that is accepted and ignored).
    pub fn directive_value(&self, name: &str) -> Option<String> {
        Some(match name {
            "dir" => file::quote(&self.dir.display().to_string()),
            "bind" => self.bind.to_string(),
            "port" => self.port.to_string(),
            "appendfsync" => self.fsync.as_str().to_string(),
            "requirepass" => file::quote(self.requirepass.as_deref().unwrap_or_default()),
            "aclfile" => file::quote(&self.aclfile.as_ref()?.display().to_string()),
            "maxclients" => self.maxclients.to_string(),
            "proto-max-bulk-len" => format_memory(self.max_bulk_len as u64),
            "client-query-buffer-limit" => format_memory(self.max_query_buffer as u64),
            "stream-node-max-entries" => self.node_limits.max_entries.to_string(),
            "stream-node-max-bytes" => format_memory(self.node_limits.max_bytes),
            "redis-version" => self.redis_version.to_string(),
            "metrics-port" => self.metrics_port?.to_string(),
            "metrics-bind" => self.metrics_bind?.to_string(),
            name => return self.tls.value(name).map(|value| file::quote(&value)),
        })
    }

    /// Applies one setting by its Redis name.
    pub fn apply(&mut self, name: &str, value: &str) -> Result<(), String> {
        let size = |value: &str| {
            parse_memory(value)
                .and_then(|bytes| usize::try_from(bytes).ok())
                .ok_or_else(|| format!("{name}: {value:?} is not a size (a number, or one with a unit such as 512mb)"))
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
            "aclfile" => self.aclfile = (!value.is_empty()).then(|| PathBuf::from(value)),
            "maxclients" => {
                self.maxclients =
                    parse_maxclients(value).map_err(|reason| format!("maxclients: {reason}"))?;
            }
            "appendonly" => {
                if !parse_yes_no(value)
                    .ok_or_else(|| format!("{name}: {value:?} is not yes or no"))?
                {
                    return Err("appendonly: weir writes every change to its log; `appendonly no` has no equivalent, remove the line".into());
                }
            }
            "aof-use-rdb-preamble" => {
                parse_yes_no(value).ok_or_else(|| format!("{name}: {value:?} is not yes or no"))?;
            }
            "proto-max-bulk-len" => self.max_bulk_len = size(value)?,
            "client-query-buffer-limit" => self.max_query_buffer = size(value)?,
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
            "redis-version" => self.redis_version = RedisVersion::parse_supported(value)?,
            other => {
                return self
                    .tls
                    .apply(other, value)
                    .unwrap_or_else(|| Err(unknown_directive(other)));
            }
        }
        Ok(())
    }
}

/// Why a name is not a directive: a Redis directive weir refuses, or an unknown name, with the
/// closest known name when one is close.
fn unknown_directive(name: &str) -> String {
    if let Some(reason) = redis_names::refusal(name) {
        return format!("`{name}` is not supported: {reason}; remove the line");
    }
    let known = DIRECTIVES
        .iter()
        .chain(redis_names::IGNORED)
        .chain(redis_names::REFUSED.iter().map(|(name, _)| name))
        .copied();
    match suggest::closest(name, known) {
        Some(closest) => format!("unknown directive `{name}`: did you mean `{closest}`?"),
        None => format!("unknown directive `{name}`"),
    }
}

/// A Redis boolean: `yes` or `no`, any case.
pub fn parse_yes_no(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("yes") {
        Some(true)
    } else if text.eq_ignore_ascii_case("no") {
        Some(false)
    } else {
        None
    }
}

/// A byte count as Redis's `CONFIG REWRITE` writes one: with the largest of `gb`, `mb`, `kb`
/// that divides it.
pub fn format_memory(bytes: u64) -> String {
    let units = [("gb", 1u64 << 30), ("mb", 1 << 20), ("kb", 1 << 10)];
    units
        .iter()
        .find(|&&(_, unit)| bytes != 0 && bytes % unit == 0)
        .map_or_else(
            || bytes.to_string(),
            |&(suffix, unit)| format!("{}{suffix}", bytes / unit),
        )
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

    fn apply_text(text: &str) -> Result<(ServerConfig, Vec<IgnoredDirective>), String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.conf");
        std::fs::write(&path, text).unwrap();
        let mut config = ServerConfig::default();
        let ignored = config.apply_file(&path).map_err(|e| {
            let text = e.to_string();
            let prefix = format!("{}:", path.display());
            text.strip_prefix(&prefix)
                .map(str::to_string)
                .unwrap_or(text)
        })?;
        assert_eq!(config.config_file.as_deref(), Some(path.as_path()));
        Ok((config, ignored))
    }

    #[test]
    fn a_redis_configuration_file_applies() {
        let text = "# weir\nPORT 7000\nport 7001\nappendonly YES\naof-use-rdb-preamble no\n\
                    proto-max-bulk-len 1gb\nclient-query-buffer-limit 512mb\n\
                    requirepass 'it\\'s secret'\nsave \"\"\nmaxmemory-policy noeviction\n";
        let (config, ignored) = apply_text(text).unwrap();
        assert_eq!(config.port, 7001);
        assert_eq!(config.max_bulk_len, 1 << 30);
        assert_eq!(config.max_query_buffer, 512 << 20);
        assert_eq!(config.requirepass.as_deref(), Some("it's secret"));
        let ignored: Vec<(usize, &str)> =
            ignored.iter().map(|d| (d.line, d.name.as_str())).collect();
        assert_eq!(ignored, [(9, "save"), (10, "maxmemory-policy")]);
    }

    #[test]
    fn bad_lines_are_errors_that_say_what_to_do() {
        let error = |text: &str| apply_text(text).unwrap_err();
        assert_eq!(
            error("port 1\nmaxclent 5\n"),
            "2: unknown directive `maxclent`: did you mean `maxclients`?"
        );
        assert_eq!(error("listen 5\n"), "1: unknown directive `listen`");
        assert!(
            error("tls-ciphers DEFAULT\n")
                .starts_with("1: `tls-ciphers` is not supported: weir's TLS takes tls-port")
        );
        assert!(apply_text("tls-port 6380\n").is_ok());
        assert!(error("appendonly no\n").starts_with("1: appendonly: weir writes every change"));
        assert_eq!(
            error("appendonly maybe\n"),
            "1: appendonly: \"maybe\" is not yes or no"
        );
        assert_eq!(
            error("port 1 2\n"),
            "1: wrong number of arguments: `port` takes one value"
        );
        assert_eq!(
            error("bind\n"),
            "1: wrong number of arguments: `bind` takes one value"
        );
        assert!(
            error("proto-max-bulk-len lots\n")
                .starts_with("1: proto-max-bulk-len: \"lots\" is not a size")
        );
    }

    #[test]
    fn memory_values_are_written_with_the_largest_unit() {
        assert_eq!(format_memory(0), "0");
        assert_eq!(format_memory(4096), "4kb");
        assert_eq!(format_memory(8 << 20), "8mb");
        assert_eq!(format_memory(1 << 30), "1gb");
        assert_eq!(format_memory(1000), "1000");
        let config = ServerConfig::default();
        for name in DIRECTIVES {
            if let Some(value) = config.directive_value(name) {
                let args = file::split_args(&value).unwrap();
                let mut reread = ServerConfig::default();
                reread.apply_directive(name, &args).unwrap();
                assert_eq!(reread.directive_value(name), Some(value), "{name}");
            }
        }
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
