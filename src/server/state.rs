//! What all connections share: the store, the clients, counters, and the registry of blocked
//! readers that writes wake.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, watch};

use super::acl::Acl;
use super::command_stats::{CommandStats, ErrorStats};
use super::config::ServerConfig;
use super::diagnostics::Diagnostics;
use super::open_files::{OpenFiles, fit_maxclients};
#[cfg(feature = "cluster")]
use super::replication::Replication;
use super::shard_stores::{ShardStore, shard_dirs};
use super::tls::TlsMaterial;
#[cfg(feature = "cluster")]
use crate::clock::ManualClock;
use crate::store::{Store, StoreError, StoreRecovery};

/// A connected client, as `CLIENT LIST` shows it.
#[derive(Debug)]
pub(crate) struct ClientEntry {
    pub(crate) addr: SocketAddr,
    pub(crate) name: Option<Bytes>,
    pub(crate) db: u8,
    pub(crate) connected: Instant,
    pub(crate) last_command: Instant,
    pub(crate) last_command_name: &'static str,
    pub(crate) lib_name: Option<Bytes>,
    pub(crate) lib_version: Option<Bytes>,
    /// The user the client authenticated as.
    pub(crate) user: String,
    pub(crate) kill: Arc<Notify>,
}

/// Counters for `INFO stats`, `commandstats` and `errorstats`.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) connections_received: AtomicU64,
    pub(crate) commands_processed: AtomicU64,
    pub(crate) rejected_connections: AtomicU64,
    pub(crate) net_input_bytes: AtomicU64,
    pub(crate) net_output_bytes: AtomicU64,
    /// Calls, time, refusals and failures of each command, in the command table's slots.
    pub(crate) commands: CommandStats,
    pub(crate) errors: ErrorStats,
    /// The most memory `INFO` has seen the process use (`used_memory_peak`).
    pub(crate) peak_memory: AtomicU64,
}

impl Stats {
    fn new() -> Self {
        Stats {
            connections_received: AtomicU64::new(0),
            commands_processed: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            net_input_bytes: AtomicU64::new(0),
            net_output_bytes: AtomicU64::new(0),
            commands: CommandStats::new(super::commands::stats_slots()),
            errors: ErrorStats::default(),
            peak_memory: AtomicU64::new(0),
        }
    }
}

/// The state every connection shares.
pub struct Server {
    pub(crate) config: RwLock<ServerConfig>,
    /// The stores, one a shard: a single one but on a node of a sharded cluster.
    shards: Vec<ShardStore>,
    /// Held shared while a command runs and exclusively by `EXEC` and `DEBUG RELOAD`, so a
    /// transaction runs with no other client's command in between.
    pub(crate) exec_lock: RwLock<()>,
    /// The readers blocked on each key, woken by the commands that write it.
    pub(crate) blocked_readers: BlockedReaders,
    pub(crate) clients: Mutex<BTreeMap<u64, ClientEntry>>,
    next_client_id: AtomicU64,
    pub(crate) stats: Stats,
    /// The users and what each may do.
    pub(crate) acl: Acl,
    pub(crate) blocked_clients: AtomicUsize,
    /// The slow log and the latency monitor.
    pub(crate) diagnostics: Diagnostics,
    pub(crate) started: Instant,
    /// Unix time in milliseconds when the server started.
    pub(crate) started_unix_ms: u64,
    /// 40 hex digits that identify this run of the server (`run_id`, `master_replid`).
    pub(crate) run_id: String,
    /// The process's memory once the store was open (`used_memory_startup`).
    pub(crate) startup_memory: u64,
    pub(crate) shutdown: watch::Sender<bool>,
    /// Notified by `SHUTDOWN`: the accept loop stops as it does on SIGTERM.
    pub(crate) stop_requested: Notify,
    /// The certificate, key and CA the TLS port uses now.
    pub(crate) tls: TlsMaterial,
    /// This node's part of the cluster, once it started; unset on a single node.
    #[cfg(feature = "cluster")]
    replication: std::sync::OnceLock<Arc<Replication>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

impl Server {
    /// Opens the data directory and prepares the shared state.
    pub fn open(config: ServerConfig) -> Result<Arc<Server>, StoreError> {
        #[cfg(feature = "cluster")]
        let shard_count = config
            .cluster
            .as_ref()
            .map_or(1, |cluster| usize::from(cluster.shards));
        #[cfg(not(feature = "cluster"))]
        let shard_count = 1;
        let shards = shard_dirs(&config.dir, shard_count)?
            .into_iter()
            .map(|dir| ShardStore::open(&config, dir))
            .collect::<Result<Vec<_>, _>>()?;
        let acl = Acl::new(config.requirepass.as_deref(), config.aclfile.clone());
        Ok(Arc::new(Server {
            config: RwLock::new(config),
            shards,
            exec_lock: RwLock::new(()),
            blocked_readers: BlockedReaders::default(),
            clients: Mutex::new(BTreeMap::new()),
            next_client_id: AtomicU64::new(1),
            stats: Stats::new(),
            acl,
            blocked_clients: AtomicUsize::new(0),
            diagnostics: Diagnostics::default(),
            started: Instant::now(),
            started_unix_ms: unix_ms(),
            run_id: run_id(),
            startup_memory: super::process::memory().heap,
            shutdown: watch::channel(false).0,
            stop_requested: Notify::new(),
            tls: TlsMaterial::default(),
            #[cfg(feature = "cluster")]
            replication: std::sync::OnceLock::new(),
        }))
    }

    /// The clock shard `shard`'s replicated store reads (a new one on a single node, which has
    /// none).
    #[cfg(feature = "cluster")]
    pub(crate) fn replicated_clock(&self, shard: usize) -> Arc<ManualClock> {
        self.shards
            .get(shard)
            .and_then(ShardStore::clock)
            .cloned()
            .unwrap_or_else(|| Arc::new(ManualClock::new(0)))
    }

    /// How many shards (stores) this node holds: 1 but on a node of a sharded cluster.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Makes this server a node of its cluster: commands that change data go through the
    /// Raft log from now on.
    #[cfg(feature = "cluster")]
    pub fn attach_replication(&self, replication: Arc<Replication>) {
        // Started once; a second node for the same server is a programming error upstream,
        // and the first stays in charge.
        let _ = self.replication.set(replication);
    }

    /// This node's part of the cluster; `None` on a single node.
    #[cfg(feature = "cluster")]
    pub fn replication(&self) -> Option<&Arc<Replication>> {
        self.replication.get()
    }

    /// Whether the server was started as a node of a cluster (also while it replays its log,
    /// before its part of the cluster is attached).
    pub(crate) fn is_cluster_node(&self) -> bool {
        #[cfg(feature = "cluster")]
        return self.shards[0].clock().is_some();
        #[cfg(not(feature = "cluster"))]
        false
    }

    /// The cluster as this node sees it; `None` when the server runs as a single node.
    pub(crate) fn cluster_view(&self) -> Option<super::cluster_view::ClusterView> {
        #[cfg(feature = "cluster")]
        return self.replication().map(|replication| replication.view());
        #[cfg(not(feature = "cluster"))]
        None
    }

    /// Reads the users of the ACL file (`--aclfile`), if one is configured.
    pub fn load_users(&self) -> Result<(), String> {
        if self.config.read().aclfile.is_none() {
            return Ok(());
        }
        self.acl.load()
    }

    /// The first shard's store, the only one but on a node of a sharded cluster; `Closed`
    /// while it is being reloaded or after shutdown.
    pub fn store(&self) -> Result<Arc<Store>, StoreError> {
        self.shards[0].store()
    }

    /// Shard `shard`'s store (the first for a shard this node does not have).
    pub(crate) fn shard_store(&self, shard: usize) -> Result<Arc<Store>, StoreError> {
        self.shards.get(shard).unwrap_or(&self.shards[0]).store()
    }

    /// Every shard's store, by shard.
    pub(crate) fn stores(&self) -> Result<Vec<Arc<Store>>, StoreError> {
        self.shards.iter().map(ShardStore::store).collect()
    }

    /// What the last open of the stores recovered, all shards together.
    pub fn recovery(&self) -> StoreRecovery {
        let mut recovery = self.shards[0].recovery();
        for shard in &self.shards[1..] {
            recovery.merge(shard.recovery());
        }
        recovery
    }

    /// Closes the stores cleanly and opens them again from disk: `DEBUG RELOAD`, and how a new
    /// `appendfsync` takes effect. The caller holds the exec lock exclusively, so no command is
    /// running; blocked readers hold streams, not the store, and retry against the new one.
    pub(crate) fn reload(&self) -> Result<(), StoreError> {
        let config = self.config.read().clone();
        let reloaded = self
            .shards
            .iter()
            .try_for_each(|shard| shard.reload(&config));
        self.blocked_readers.wake_all();
        reloaded
    }

    /// Closes shard `shard`'s store, lets `replace` change its directory's content, and opens
    /// it again: how a replicated node installs a snapshot of its leader's store. No command runs
    /// meanwhile (the exec lock is held exclusively); the store is opened again even when
    /// `replace` failed, so that the node keeps the state it had.
    #[cfg(feature = "cluster")]
    pub(crate) fn replace_store<T>(
        &self,
        shard: usize,
        replace: impl FnOnce(&std::path::Path) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _exclusive = self.exec_lock.write();
        let config = self.config.read().clone();
        let replaced = self.shards[shard].replace(&config, replace);
        self.blocked_readers.wake_all();
        replaced
    }

    /// The directory of shard `shard`'s store (its Raft log is in `raft` inside it).
    pub(crate) fn shard_dir(&self, shard: usize) -> &std::path::Path {
        self.shards[shard].dir()
    }

    /// Closes the stores cleanly (at shutdown), each even when another failed; later commands
    /// get `Closed`. Answers the first failure.
    pub fn close(&self) -> Result<(), StoreError> {
        let mut closed = Ok(());
        for shard in &self.shards {
            let result = shard.close();
            if closed.is_ok() {
                closed = result;
            }
        }
        closed
    }

    /// How many streams the stores hold together.
    fn stream_count(&self) -> usize {
        self.stores().map_or(0, |stores| {
            stores.iter().map(|store| store.stream_names().len()).sum()
        })
    }

    /// Makes room for `maxclients` clients in the open-files limit (raising the soft limit if it
    /// can), else lowers `maxclients` to what fits. Fails when not even one client fits.
    pub fn fit_maxclients_to_open_files(&self) -> Result<OpenFiles, String> {
        let streams = self.stream_count();
        let wanted = self.config.read().maxclients;
        let fit = fit_maxclients(wanted, streams)?;
        if let OpenFiles::TooFew { maxclients, .. } = fit {
            self.config.write().maxclients = maxclients;
        }
        Ok(fit)
    }

    /// `CONFIG SET maxclients`: a higher count must fit the open-files limit (raised if it can
    /// be), else the setting is refused with the count that fits, as Redis does.
    pub(crate) fn set_maxclients(&self, maxclients: usize) -> Result<(), String> {
        if maxclients > self.config.read().maxclients {
            let streams = self.stream_count();
            match fit_maxclients(maxclients, streams)? {
                OpenFiles::TooFew {
                    maxclients: fitting,
                    ..
                } => {
                    return Err(format!(
                        "The operating system is not able to handle the specified number of clients, try with {fitting}"
                    ));
                }
                OpenFiles::Enough | OpenFiles::Raised { .. } => {}
            }
        }
        self.config.write().maxclients = maxclients;
        Ok(())
    }

    /// Registers a connection; `None` when `maxclients` is reached.
    pub(crate) fn register_client(&self, addr: SocketAddr) -> Option<(u64, Arc<Notify>)> {
        let mut clients = self.clients.lock();
        if clients.len() >= self.config.read().maxclients {
            self.stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        let kill = Arc::new(Notify::new());
        let now = Instant::now();
        clients.insert(
            id,
            ClientEntry {
                addr,
                name: None,
                db: 0,
                connected: now,
                last_command: now,
                last_command_name: "NULL",
                lib_name: None,
                lib_version: None,
                user: "default".into(),
                kill: Arc::clone(&kill),
            },
        );
        self.stats
            .connections_received
            .fetch_add(1, Ordering::Relaxed);
        Some((id, kill))
    }

    /// Forgets a connection.
    pub(crate) fn unregister_client(&self, id: u64) {
        self.clients.lock().remove(&id);
    }
}

/// The readers blocked on each stream, so that a write wakes the readers of the streams it
/// wrote and no others: with thousands of readers blocked, waking all of them on every write
/// cost a third of the write throughput.
#[derive(Debug, Default)]
pub(crate) struct BlockedReaders {
    /// Each blocked reader's wake-up, under the store name of every stream it waits on.
    by_stream: Mutex<HashMap<Vec<u8>, Vec<Arc<Notify>>>>,
    /// How many readers are registered: with none, a write takes no lock.
    registered: AtomicUsize,
}

impl BlockedReaders {
    /// Registers a reader of the streams `names` until the watch is dropped.
    pub(crate) fn watch(&self, names: Vec<Vec<u8>>) -> KeyWatch<'_> {
        let wake = Arc::new(Notify::new());
        {
            let mut by_stream = self.by_stream.lock();
            for name in &names {
                by_stream
                    .entry(name.clone())
                    .or_default()
                    .push(Arc::clone(&wake));
            }
        }
        self.registered.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fence in `wake`: either the writer sees this reader registered, or the
        // reader's next look sees the write.
        std::sync::atomic::fence(Ordering::SeqCst);
        KeyWatch {
            readers: self,
            names,
            wake,
        }
    }

    /// Wakes the readers of the streams `names`, after a command wrote them.
    pub(crate) fn wake(&self, names: impl Iterator<Item = Vec<u8>>) {
        if !self.anyone_registered() {
            return;
        }
        let by_stream = self.by_stream.lock();
        for name in names {
            for wake in by_stream.get(&name).into_iter().flatten() {
                wake.notify_one();
            }
        }
    }

    /// Wakes every blocked reader (a flush of a whole database, a reload).
    pub(crate) fn wake_all(&self) {
        if !self.anyone_registered() {
            return;
        }
        for wake in self.by_stream.lock().values().flatten() {
            wake.notify_one();
        }
    }

    fn anyone_registered(&self) -> bool {
        std::sync::atomic::fence(Ordering::SeqCst);
        self.registered.load(Ordering::SeqCst) > 0
    }
}

/// A blocked reader's registration; dropping it (when the command answers or is abandoned)
/// unregisters it.
#[derive(Debug)]
pub(crate) struct KeyWatch<'a> {
    readers: &'a BlockedReaders,
    names: Vec<Vec<u8>>,
    wake: Arc<Notify>,
}

impl KeyWatch<'_> {
    /// Resolves once a watched stream was written since the last call (or since the watch
    /// began): a write while the reader was looking is not lost.
    pub(crate) async fn written(&self) {
        self.wake.notified().await;
    }
}

impl Drop for KeyWatch<'_> {
    fn drop(&mut self) {
        let mut by_stream = self.readers.by_stream.lock();
        for name in &self.names {
            if let Some(wakes) = by_stream.get_mut(name) {
                wakes.retain(|wake| !Arc::ptr_eq(wake, &self.wake));
                if wakes.is_empty() {
                    by_stream.remove(name);
                }
            }
        }
        drop(by_stream);
        self.readers.registered.fetch_sub(1, Ordering::SeqCst);
    }
}

/// 40 random hex digits, from the standard library's per-process random hash keys.
fn run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    (0..3)
        .map(|_| {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(unix_ms());
            format!("{:016x}", hasher.finish())
        })
        .collect::<String>()[..40]
        .to_owned()
}

/// Unix time in milliseconds, for replies that report times.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `watch` was woken, without waiting.
    fn woken(watch: &KeyWatch<'_>) -> bool {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::ZERO, watch.written())
                .await
                .is_ok()
        })
    }

    #[test]
    fn a_write_wakes_only_the_readers_of_the_streams_it_wrote() {
        let readers = BlockedReaders::default();
        let orders = readers.watch(vec![b"\0orders".to_vec()]);
        let both = readers.watch(vec![b"\0users".to_vec(), b"\0orders".to_vec()]);
        let users = readers.watch(vec![b"\0users".to_vec()]);
        readers.wake([b"\0orders".to_vec()].into_iter());
        assert!(woken(&orders));
        assert!(woken(&both));
        assert!(!woken(&users), "a write to another stream woke a reader");
        readers.wake([b"\x01users".to_vec()].into_iter());
        assert!(
            !woken(&users),
            "a write to the same key in another database woke a reader"
        );
        readers.wake_all();
        assert!(woken(&users));
    }

    #[test]
    fn a_write_before_the_wait_is_not_lost() {
        let readers = BlockedReaders::default();
        let watch = readers.watch(vec![b"\0orders".to_vec()]);
        readers.wake([b"\0orders".to_vec()].into_iter());
        assert!(woken(&watch));
        assert!(!woken(&watch), "one write wakes once");
    }

    #[test]
    fn run_ids_are_forty_hex_digits_and_differ() {
        let (first, second) = (run_id(), run_id());
        assert_eq!(first.len(), 40);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(first, second);
    }

    #[test]
    fn a_dropped_watch_unregisters() {
        let readers = BlockedReaders::default();
        let first = readers.watch(vec![b"\0orders".to_vec()]);
        let second = readers.watch(vec![b"\0orders".to_vec()]);
        drop(first);
        assert_eq!(readers.by_stream.lock()[&b"\0orders"[..]].len(), 1);
        drop(second);
        assert!(readers.by_stream.lock().is_empty());
        assert_eq!(readers.registered.load(Ordering::SeqCst), 0);
    }
}
