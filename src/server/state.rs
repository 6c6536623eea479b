//! What all connections share: the store, the clients, counters, and the write generation that
//! wakes blocked readers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, watch};

use super::config::ServerConfig;
use super::open_files::{OpenFiles, fit_maxclients};
use crate::signal::ChangeSignal;
use crate::store::{Store, StoreError, StoreOptions, StoreRecovery};

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
    pub(crate) kill: Arc<Notify>,
}

/// Counters for `INFO stats`.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) connections_received: AtomicU64,
    pub(crate) commands_processed: AtomicU64,
    pub(crate) rejected_connections: AtomicU64,
    pub(crate) net_input_bytes: AtomicU64,
    pub(crate) net_output_bytes: AtomicU64,
}

/// The state every connection shares.
pub struct Server {
    pub(crate) config: RwLock<ServerConfig>,
    store: RwLock<Option<Arc<Store>>>,
    recovery: RwLock<StoreRecovery>,
    /// Held shared while a command runs and exclusively by `EXEC` and `DEBUG RELOAD`, so a
    /// transaction runs with no other client's command in between.
    pub(crate) exec_lock: RwLock<()>,
    /// Bumped after every command that changed data; blocked readers wait on it.
    pub(crate) writes: ChangeSignal,
    pub(crate) clients: Mutex<BTreeMap<u64, ClientEntry>>,
    next_client_id: AtomicU64,
    pub(crate) stats: Stats,
    pub(crate) blocked_clients: AtomicUsize,
    pub(crate) started: Instant,
    pub(crate) shutdown: watch::Sender<bool>,
    /// Notified by `SHUTDOWN`: the accept loop stops as it does on SIGTERM.
    pub(crate) stop_requested: Notify,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

impl Server {
    /// Opens the data directory and prepares the shared state.
    pub fn open(config: ServerConfig) -> Result<Arc<Server>, StoreError> {
        let store = open_store(&config)?;
        let recovery = store.recovery().clone();
        Ok(Arc::new(Server {
            config: RwLock::new(config),
            store: RwLock::new(Some(Arc::new(store))),
            recovery: RwLock::new(recovery),
            exec_lock: RwLock::new(()),
            writes: ChangeSignal::new(),
            clients: Mutex::new(BTreeMap::new()),
            next_client_id: AtomicU64::new(1),
            stats: Stats::default(),
            blocked_clients: AtomicUsize::new(0),
            started: Instant::now(),
            shutdown: watch::channel(false).0,
            stop_requested: Notify::new(),
        }))
    }

    /// The store; `Closed` while it is being reloaded or after shutdown.
    pub fn store(&self) -> Result<Arc<Store>, StoreError> {
        self.store.read().clone().ok_or(StoreError::Closed)
    }

    /// What the last open of the store recovered.
    pub fn recovery(&self) -> StoreRecovery {
        self.recovery.read().clone()
    }

    /// Closes the store cleanly and opens it again from disk: `DEBUG RELOAD`, and how a new
    /// `appendfsync` takes effect. The caller holds the exec lock exclusively, so no command is
    /// running; blocked readers hold streams, not the store, and retry against the new one.
    pub(crate) fn reload(&self) -> Result<(), StoreError> {
        let mut slot = self.store.write();
        close_store(slot.take())?;
        let store = open_store(&self.config.read())?;
        *self.recovery.write() = store.recovery().clone();
        *slot = Some(Arc::new(store));
        drop(slot);
        self.note_write();
        Ok(())
    }

    /// Closes the store cleanly (at shutdown); later commands get `Closed`.
    pub fn close(&self) -> Result<(), StoreError> {
        let store = self.store.write().take();
        close_store(store)
    }

    /// Makes room for `maxclients` clients in the open-files limit (raising the soft limit if it
    /// can), else lowers `maxclients` to what fits. Fails when not even one client fits.
    pub fn fit_maxclients_to_open_files(&self) -> Result<OpenFiles, String> {
        let streams = self.store().map_or(0, |store| store.stream_names().len());
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
            let streams = self.store().map_or(0, |store| store.stream_names().len());
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

    /// Wakes blocked readers after a command that changed data.
    pub(crate) fn note_write(&self) {
        self.writes.notify();
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

/// Closes a store cleanly if nothing else holds it; otherwise flushes it (the last holder's drop
/// then releases the directory, and the next open recovers without data loss).
fn close_store(store: Option<Arc<Store>>) -> Result<(), StoreError> {
    match store.map(Arc::try_unwrap) {
        Some(Ok(store)) => store.close(),
        Some(Err(shared)) => shared.flush(),
        None => Ok(()),
    }
}

fn open_store(config: &ServerConfig) -> Result<Store, StoreError> {
    let options = StoreOptions {
        durability: config.fsync.durability(),
        public_name: super::keys::key_part,
        ..StoreOptions::default()
    };
    Store::open_with(&config.dir, options)
}

/// Unix time in milliseconds, for replies that report times.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
