//! `queue-server`: Redis Streams over the Redis protocol, durable and disk-backed.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use weir::server::notify::ServiceNotifier;
use weir::server::tls::{TlsAuthClients, TlsSettings};
use weir::server::{
    FsyncPolicy, Listeners, OpenFiles, Server, ServerConfig, parse_maxclients, resolve_bind,
};

/// A Redis-protocol server for weir streams: every Redis client, redis-cli and redis-benchmark
/// work against it unchanged, and acknowledged writes survive crashes.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Data directory (created if missing; locked while the server runs).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Address to listen on: an IP address or a host name such as `localhost`. Anything but
    /// loopback needs --requirepass, or only loopback clients are served (protected mode).
    #[arg(long, value_parser = resolve_bind)]
    bind: Option<IpAddr>,
    /// TCP port for plain clients. With --tls-port, 0 turns plain connections off; alone, 0
    /// picks any free port.
    #[arg(long)]
    port: Option<u16>,
    #[command(flatten)]
    tls: TlsArgs,
    /// When writes reach the disk: `always` (a reply is sent only once the write is on disk;
    /// concurrent clients share flushes), `everysec` (at most about a second is lost to a power
    /// failure), or `no` (the operating system decides).
    #[arg(long, value_parser = parse_fsync)]
    fsync: Option<FsyncPolicy>,
    /// Password clients must give with AUTH or HELLO before any other command (by default,
    /// none: clients need no password, and only loopback clients are served).
    #[arg(long)]
    requirepass: Option<String>,
    /// The file users and their permissions are kept in: read at start (a missing file holds
    /// no users), rewritten by ACL SAVE, read again by ACL LOAD.
    #[arg(long)]
    aclfile: Option<PathBuf>,
    /// Most clients connected at once (at least 1); more are refused with an error. Lowered at
    /// start to what the open-files limit allows, if it cannot be raised far enough.
    #[arg(long, value_parser = parse_maxclients)]
    maxclients: Option<usize>,
    /// Port of the Prometheus endpoint (plain HTTP, `GET /metrics`); off unless given.
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Address of the Prometheus endpoint [default: the --bind address].
    #[arg(long, value_parser = resolve_bind)]
    metrics_bind: Option<IpAddr>,
    /// A configuration file in Redis's syntax (`name value` lines, quotes, units such as
    /// `512mb`, `include`; the `tls-*` and `metrics-*` names among others), which CONFIG
    /// REWRITE updates; flags given on the command line win over it. By default, none.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The Redis version to report (INFO, HELLO) and whose reply shapes to give, from 7.0.0 to
    /// the latest whose stream commands queue-server implements; for clients or tests that
    /// expect an older Redis's replies.
    #[arg(long)]
    redis_version: Option<String>,
    /// How log lines are written to stderr: `text` for people, `json` (one object a line) for
    /// log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// A node of a replicated cluster. Without --peers or --join, the server is a single node.
#[derive(Debug, clap::Args)]
struct ClusterArgs {
    /// Every initial voter of the cluster, this node included, the same on every node:
    /// `ID=HOST:BUSPORT` (the client port is then BUSPORT less 10000, as in Redis Cluster) or
    /// `ID=HOST:CLIENTPORT@BUSPORT`, separated by commas.
    #[arg(long, requires_all = ["node_id", "cluster_port"], value_parser = weir::server::parse_peers)]
    peers: Option<std::collections::BTreeMap<u64, weir::server::PeerAddr>>,
    /// Joins a running cluster as a new node instead of forming one: the node waits until the
    /// leader adds it with `CLUSTER ADDNODE`, then catches up and votes.
    #[arg(long, conflicts_with = "peers", requires_all = ["node_id", "cluster_port"])]
    join: bool,
    /// This node's id: one of the ids in --peers (or a new id with --join), never reused for
    /// another node.
    #[arg(long)]
    node_id: Option<u64>,
    /// The TCP port of the cluster bus, where the other nodes connect (on the --bind address).
    #[arg(long)]
    cluster_port: Option<u16>,
    /// The secret every node of the cluster shares (at least 16 bytes); it authenticates the
    /// cluster bus. Visible in the process list: prefer --cluster-secret-file.
    #[arg(long, conflicts_with = "cluster_secret_file")]
    cluster_secret: Option<String>,
    /// A file holding the cluster secret (its bytes, with any trailing newline removed).
    #[arg(long)]
    cluster_secret_file: Option<PathBuf>,
    /// Raft entries applied between two snapshots of the node's store, after which its Raft
    /// log is purged but for the entries just below the snapshot (as many as this interval, at
    /// most 10,000); a node that falls further behind is sent the leader's snapshot. 0: no
    /// snapshots, the whole log is kept.
    #[arg(long, default_value_t = weir::server::DEFAULT_SNAPSHOT_ENTRIES)]
    snapshot_entries: u64,
    /// How many shards the 16,384 slots are cut into (consecutive ranges of equal size), each
    /// its own Raft group with its own log and store on every node, led by a node of its own so
    /// that writes spread over the nodes. Fixed when the cluster is formed: every node must
    /// give the same count, and a node refuses to start on a data directory made with another.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=i64::from(weir::server::MAX_SHARDS)))]
    cluster_shards: u16,
    /// With several shards: 3 s after it starts, each node hands every shard it leads over to
    /// the shard's preferred leader (the voters in id order, one shard each in turn), then one
    /// such shard every this many seconds, so that leaders spread when the cluster forms and
    /// even out again after failures and membership changes; a move leaves the shard without a
    /// leader while one election runs. 0: only on CLUSTER REBALANCE.
    #[arg(long, default_value_t = 30)]
    cluster_rebalance_interval: u64,
}

impl ClusterArgs {
    /// The cluster configuration, if --peers or --join was given.
    fn config(self) -> Result<Option<weir::server::ClusterConfig>, String> {
        if self.peers.is_none() && !self.join {
            if self.node_id.is_some() || self.cluster_port.is_some() {
                return Err(
                    "--node-id and --cluster-port start a cluster node: give --peers (the initial voters) or --join too".into(),
                );
            }
            return Ok(None);
        }
        let (Some(node_id), Some(bus_port)) = (self.node_id, self.cluster_port) else {
            return Err("a cluster node needs --node-id and --cluster-port".into());
        };
        let peers = self.peers.unwrap_or_default();
        let secret = match (self.cluster_secret, self.cluster_secret_file) {
            (Some(secret), _) => secret.into_bytes(),
            (None, Some(file)) => {
                let mut bytes = std::fs::read(&file).map_err(|error| {
                    format!(
                        "cannot read the cluster secret from {}: {error}",
                        file.display()
                    )
                })?;
                while bytes
                    .last()
                    .is_some_and(|byte| matches!(byte, b'\n' | b'\r'))
                {
                    bytes.pop();
                }
                bytes
            }
            (None, None) => {
                return Err(
                    "a cluster node needs --cluster-secret-file (or --cluster-secret): the same secret on every node".into(),
                );
            }
        };
        let secret = weir::cluster::network::ClusterSecret::new(secret)
            .map_err(|error| error.to_string())?;
        Ok(Some(weir::server::ClusterConfig {
            node_id,
            peers,
            join: self.join,
            bus_port,
            secret,
            snapshot_entries: self.snapshot_entries,
            shards: self.cluster_shards,
            rebalance_interval: (self.cluster_rebalance_interval > 0)
                .then(|| std::time::Duration::from_secs(self.cluster_rebalance_interval)),
        }))
    }
}

/// TLS, under Redis's names (also accepted in the configuration file).
#[derive(Debug, clap::Args)]
struct TlsArgs {
    /// TCP port for TLS clients, beside the plain port (0: no TLS).
    #[arg(long)]
    tls_port: Option<u16>,
    /// The server's certificate chain (PEM), its own certificate first.
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file (PEM).
    #[arg(long)]
    tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must be signed by.
    #[arg(long)]
    tls_ca_cert_file: Option<PathBuf>,
    /// Whether TLS clients must present a certificate signed by the CA: `yes` (the default),
    /// `optional` (one presented must be valid), or `no` (none is asked for).
    #[arg(long, value_parser = parse_tls_auth_clients)]
    tls_auth_clients: Option<TlsAuthClients>,
    /// `yes`: the cluster bus runs over mutual TLS, with the certificate, key and CA above
    /// (every node's certificate must name the host of its bus address); `no` (the default).
    #[arg(long, value_parser = parse_tls_cluster)]
    tls_cluster: Option<bool>,
}

impl TlsArgs {
    /// Overrides the configuration file's settings with the flags given.
    fn apply_to(self, settings: &mut TlsSettings) {
        if let Some(port) = self.tls_port {
            settings.port = port;
        }
        for (flag, file) in [
            (self.tls_cert_file, &mut settings.cert_file),
            (self.tls_key_file, &mut settings.key_file),
            (self.tls_ca_cert_file, &mut settings.ca_cert_file),
        ] {
            if flag.is_some() {
                *file = flag;
            }
        }
        if let Some(auth) = self.tls_auth_clients {
            settings.auth_clients = auth;
        }
        if let Some(cluster) = self.tls_cluster {
            settings.cluster = cluster;
        }
    }
}

fn parse_tls_cluster(text: &str) -> Result<bool, String> {
    weir::server::tls::parse_yes_no(text).ok_or_else(|| format!("{text:?}: expected yes or no"))
}

fn parse_tls_auth_clients(text: &str) -> Result<TlsAuthClients, String> {
    TlsAuthClients::parse(text).ok_or_else(|| format!("{text:?}: expected yes, no or optional"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr at `RUST_LOG`'s level (info by default). Colour codes only on a terminal: in
/// a log file they are noise.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// The command line, with the default of each setting shown in `--help`. The parser itself
/// applies no default: a flag left out must not override the configuration file, so the
/// defaults shown are the server's own.
fn command_line() -> clap::Command {
    let defaults = ServerConfig::default();
    let shown = [
        ("dir", defaults.dir.display().to_string()),
        ("bind", defaults.bind.to_string()),
        ("port", defaults.port.to_string()),
        ("fsync", defaults.fsync.as_str().to_string()),
        ("maxclients", defaults.maxclients.to_string()),
        ("redis_version", defaults.redis_version.to_string()),
        ("requirepass", "none".to_string()),
        ("config", "none".to_string()),
    ];
    shown
        .into_iter()
        .fold(Args::command(), |command, (name, default)| {
            command.mut_arg(name, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} [default: {default}]"))
            })
        })
}

/// How long the runtime's threads get to stop once the store is closed.
const RUNTIME_STOP_TIMEOUT: Duration = Duration::from_secs(1);

fn parse_fsync(text: &str) -> Result<FsyncPolicy, String> {
    FsyncPolicy::parse(text).ok_or_else(|| format!("{text:?}: expected always, everysec or no"))
}

fn configuration(args: Args) -> Result<ServerConfig, String> {
    let mut config = ServerConfig::default();
    if let Some(file) = &args.config {
        let ignored = config.apply_file(file).map_err(|e| e.to_string())?;
        for directive in ignored {
            tracing::warn!("{directive}");
        }
    }
    if let Some(dir) = args.dir {
        config.dir = dir;
    }
    if let Some(bind) = args.bind {
        config.bind = bind;
    }
    if let Some(port) = args.port {
        config.port = port;
    }
    args.tls.apply_to(&mut config.tls);
    if let Some(fsync) = args.fsync {
        config.fsync = fsync;
    }
    if args.requirepass.is_some() {
        config.requirepass = args.requirepass;
    }
    if args.aclfile.is_some() {
        config.aclfile = args.aclfile;
    }
    if let Some(maxclients) = args.maxclients {
        config.maxclients = maxclients;
    }
    if let Some(version) = &args.redis_version {
        config.apply("redis-version", version)?;
    }
    config.metrics_port = args.metrics_port.or(config.metrics_port);
    config.metrics_bind = args.metrics_bind.or(config.metrics_bind);
    config.cluster = args.cluster.config()?;
    Ok(config)
}

fn main() -> ExitCode {
    let args = match Args::from_arg_matches(&command_line().get_matches()) {
        Ok(args) => args,
        Err(error) => error.exit(),
    };
    init_logging(args.log_format);
    let config = match configuration(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("queue-server: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("queue-server: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(config));
    // A command that ignores the shutdown must not keep the process alive: the store is closed.
    runtime.shutdown_timeout(RUNTIME_STOP_TIMEOUT);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("queue-server: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: ServerConfig) -> Result<(), String> {
    let server = Server::open(config.clone())
        .map_err(|e| format!("cannot open data directory {}: {e}", config.dir.display()))?;
    server
        .load_users()
        .map_err(|e| format!("cannot load the ACL file: {e}"))?;
    let recovery = server.recovery();
    if recovery.new_directory {
        tracing::info!(dir = %config.dir.display(), "new data directory");
    } else {
        tracing::info!(
            dir = %config.dir.display(),
            streams = recovery.streams.len(),
            entries = recovery.entries(),
            clean_shutdown = recovery.clean,
            lost_records = recovery.lost_records(),
            "recovered data directory"
        );
    }
    fit_maxclients(&server, config.maxclients)?;
    // The client ports are taken before the cluster starts: the node's connections to its peers
    // leave from its address, and one of them could otherwise take a client port as its own.
    // Nothing is served until `serve` runs, after the node joined its cluster.
    let listeners = weir::server::listen(&server)
        .await
        .map_err(|e| e.to_string())?;
    let replication = start_replication(&server, &config).await?;
    let address = log_listeners(&listeners, config.fsync)?;
    let metrics = start_metrics(&server, &config).await?;
    let notifier = Arc::new(
        ServiceNotifier::from_env()
            .map_err(|e| format!("cannot open the service manager's notification socket: {e}"))?,
    );
    announce_ready(&notifier, address);
    let watchdog = tokio::spawn(keep_watchdog_fed(
        Arc::clone(&notifier),
        Arc::clone(&server),
    ));
    let tls_reloads = tokio::spawn(reload_tls_on_hangup(Arc::clone(&server)));
    let stopping = {
        let notifier = Arc::clone(&notifier);
        let replication = replication.clone();
        async move {
            shutdown_signal().await;
            tell_stopping(&notifier);
            if let Some(replication) = replication {
                replication.shutdown().await;
            }
        }
    };
    let served = weir::server::serve(server, listeners, stopping).await;
    watchdog.abort();
    tls_reloads.abort();
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    tell_stopping(&notifier);
    served.map_err(|e| format!("shutdown failed: {e}"))
}

/// Starts this node's part of its cluster, if it is in one: the Raft log, the bus and the
/// replicated state machine; commands that change data go through the log from then on.
async fn start_replication(
    server: &Arc<Server>,
    config: &ServerConfig,
) -> Result<Option<Arc<weir::server::replication::Replication>>, String> {
    let Some(cluster) = &config.cluster else {
        return Ok(None);
    };
    let bus_addr = std::net::SocketAddr::new(config.bind, cluster.bus_port);
    let bus = tokio::net::TcpListener::bind(bus_addr)
        .await
        .map_err(|e| format!("cannot listen for the cluster bus on {bus_addr}: {e}"))?;
    let replication = weir::server::replication::Replication::start(
        server,
        cluster,
        bus,
        config.fsync.durability(),
    )
    .await
    .map_err(|e| e.to_string())?;
    server.attach_replication(Arc::clone(&replication));
    tracing::info!(
        node_id = cluster.node_id,
        bus = %bus_addr,
        peers = cluster.peers.len(),
        "cluster node started"
    );
    Ok(Some(replication))
}

/// Logs where clients connect; returns the address announced to the service manager: the
/// plain one, or the TLS one when plain connections are off.
fn log_listeners(
    listeners: &Listeners,
    fsync: FsyncPolicy,
) -> Result<std::net::SocketAddr, String> {
    let (plain, tls) = (listeners.plain_address(), listeners.tls_address());
    if let Some(address) = plain {
        tracing::info!(%address, "listening for plain connections");
    }
    if let Some(address) = tls {
        tracing::info!(%address, "listening for TLS connections");
    }
    let address = plain.or(tls).ok_or("cannot read the listening address")?;
    tracing::info!(%address, fsync = fsync.as_str(), "ready to accept connections");
    Ok(address)
}

/// SIGHUP reads the TLS certificate, key and CA files again, as `CONFIG SET tls-cert-file`
/// does; a file that does not load leaves the material in use as it was.
async fn reload_tls_on_hangup(server: Arc<Server>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler: reload TLS files with CONFIG SET");
        return;
    };
    while hangups.recv().await.is_some() {
        match server.reload_tls() {
            Ok(true) => tracing::info!("SIGHUP: TLS material reloaded"),
            Ok(false) => tracing::info!("SIGHUP: no TLS material configured, nothing reloaded"),
            Err(error) => tracing::warn!(
                %error,
                "SIGHUP: TLS material not reloaded; the previous material stays in use"
            ),
        }
    }
}

/// Starts the Prometheus endpoint when a port is configured, on the server's address unless
/// another is given.
async fn start_metrics(
    server: &Arc<Server>,
    config: &ServerConfig,
) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    let Some(port) = config.metrics_port else {
        return Ok(None);
    };
    let address = std::net::SocketAddr::new(config.metrics_bind.unwrap_or(config.bind), port);
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
        format!("cannot listen for metrics on {address}: {e} (choose another --metrics-port)")
    })?;
    tracing::info!(%address, "serving metrics at /metrics");
    Ok(Some(tokio::spawn(weir::server::serve_metrics(
        Arc::clone(server),
        listener,
    ))))
}

fn announce_ready(notifier: &ServiceNotifier, address: std::net::SocketAddr) {
    if let Err(error) = notifier.ready(&format!("accepting connections on {address}")) {
        tracing::warn!(%error, "cannot tell the service manager the server is ready");
    }
}

fn tell_stopping(notifier: &ServiceNotifier) {
    if let Err(error) = notifier.stopping() {
        tracing::warn!(%error, "cannot tell the service manager the server is stopping");
    }
}

/// Tells the service manager's watchdog the server is alive, as long as the runtime runs this
/// task and the store is open: a wedged runtime or a store that failed to reopen stops the
/// pings, and the manager restarts the server.
async fn keep_watchdog_fed(notifier: Arc<ServiceNotifier>, server: Arc<Server>) {
    let Some(interval) = notifier.watchdog_interval() else {
        return;
    };
    let mut ticks = tokio::time::interval(interval);
    loop {
        ticks.tick().await;
        if server.store().is_err() {
            continue;
        }
        if let Err(error) = notifier.watchdog() {
            tracing::warn!(%error, "cannot reach the service manager's watchdog");
        }
    }
}

/// Makes room for every client in the open-files limit, or lowers `maxclients` to fit it, and
/// says which.
fn fit_maxclients(server: &Server, maxclients: usize) -> Result<(), String> {
    match server.fit_maxclients_to_open_files()? {
        OpenFiles::Enough => {}
        OpenFiles::Raised { from, to } => tracing::info!(
            from,
            to,
            maxclients,
            "raised the open-files limit to fit maxclients"
        ),
        OpenFiles::TooFew {
            limit,
            maxclients: fitting,
        } => tracing::warn!(
            limit,
            requested = maxclients,
            maxclients = fitting,
            "the open-files limit is too low for maxclients, which has been lowered to fit; raise `ulimit -n` for more clients"
        ),
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
    }
}
