//! A node's stores: one in the data directory itself on a single node and on a node of a
//! one-shard cluster; one a shard on a node of a sharded cluster, each in `DIR/shards/<n>`, laid
//! out as a one-shard node's data directory (its store, and its Raft log under `raft`).
//!
//! Each store is opened, reloaded (`DEBUG RELOAD`, a new `appendfsync`), replaced (a replicated
//! snapshot installed) and closed on its own; in a cluster each reads its own replicated clock,
//! which the commands of its shard's log set.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use super::config::ServerConfig;
#[cfg(feature = "cluster")]
use crate::clock::ManualClock;
use crate::fs::{self, names::RAFT_DIR, names::SHARDS_DIR};
use crate::store::{Store, StoreError, StoreOptions, StoreRecovery};

/// One shard's store.
#[derive(Debug)]
pub(crate) struct ShardStore {
    dir: PathBuf,
    store: RwLock<Option<Arc<Store>>>,
    recovery: RwLock<StoreRecovery>,
    /// In a cluster, the store's clock: each replicated command sets it to the leader's time.
    #[cfg(feature = "cluster")]
    clock: Option<Arc<ManualClock>>,
}

impl ShardStore {
    /// Opens the store in `dir`; in a cluster, on a replicated clock of its own.
    pub(crate) fn open(config: &ServerConfig, dir: PathBuf) -> Result<ShardStore, StoreError> {
        #[cfg(feature = "cluster")]
        let clock = config
            .cluster
            .is_some()
            .then(|| Arc::new(ManualClock::new(0)));
        let shard = ShardStore {
            dir,
            store: RwLock::new(None),
            recovery: RwLock::new(StoreRecovery::default()),
            #[cfg(feature = "cluster")]
            clock,
        };
        let store = shard.open_store(config)?;
        *shard.recovery.write() = store.recovery().clone();
        *shard.store.write() = Some(Arc::new(store));
        Ok(shard)
    }

    /// The store; `Closed` while it is being reloaded or after shutdown.
    pub(crate) fn store(&self) -> Result<Arc<Store>, StoreError> {
        self.store.read().clone().ok_or(StoreError::Closed)
    }

    /// What the last open of the store recovered.
    pub(crate) fn recovery(&self) -> StoreRecovery {
        self.recovery.read().clone()
    }

    /// The store's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The clock the store reads, in a cluster.
    #[cfg(feature = "cluster")]
    pub(crate) fn clock(&self) -> Option<&Arc<ManualClock>> {
        self.clock.as_ref()
    }

    /// Closes the store cleanly and opens it again from disk. No command may run meanwhile.
    pub(crate) fn reload(&self, config: &ServerConfig) -> Result<(), StoreError> {
        let mut slot = self.store.write();
        close_store(slot.take())?;
        let store = self.open_store(config)?;
        *self.recovery.write() = store.recovery().clone();
        *slot = Some(Arc::new(store));
        Ok(())
    }

    /// Closes the store once nothing holds it, lets `replace` change its directory's content,
    /// and opens it again, even when `replace` failed, so that the shard keeps the state it had.
    #[cfg(feature = "cluster")]
    pub(crate) fn replace<T>(
        &self,
        config: &ServerConfig,
        replace: impl FnOnce(&Path) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut slot = self.store.write();
        close_store_when_unshared(slot.take())?;
        let replaced = replace(&self.dir);
        let store = self.open_store(config)?;
        *self.recovery.write() = store.recovery().clone();
        *slot = Some(Arc::new(store));
        replaced
    }

    /// Closes the store cleanly (at shutdown); later commands get `Closed`.
    pub(crate) fn close(&self) -> Result<(), StoreError> {
        let store = self.store.write().take();
        close_store(store)
    }

    #[cfg(not(feature = "cluster"))]
    fn open_store(&self, config: &ServerConfig) -> Result<Store, StoreError> {
        let options = StoreOptions {
            durability: config.fsync.durability(),
            public_name: super::keys::key_part,
            ..StoreOptions::default()
        };
        let store = Store::open_with(&self.dir, options)?;
        store.set_node_limits(config.node_limits);
        Ok(store)
    }

    /// Opens the store; in a cluster, on the replicated clock, continued from the time of the
    /// last command the store applied, with the changes time causes left to the replicated
    /// ticks, and without syncs of its own.
    #[cfg(feature = "cluster")]
    fn open_store(&self, config: &ServerConfig) -> Result<Store, StoreError> {
        let mut options = StoreOptions {
            durability: config.fsync.durability(),
            public_name: super::keys::key_part,
            ..StoreOptions::default()
        };
        if let Some(clock) = &self.clock {
            options.clock = Arc::clone(clock) as crate::clock::SharedClock;
            options.timed_changes = crate::store::TimedChanges::OnRequest;
            options.replication_clock = Some(Arc::clone(clock));
            // The Raft log is what makes a cluster node's writes durable: the store is written
            // without syncs, consistent after a process crash (its transaction journal), and
            // rebuilt from the log after a machine crash.
            options.durability = crate::durability::Durability::Never;
            options.after_machine_crash = crate::store::AfterMachineCrash::Discard;
        }
        let store = Store::open_with(&self.dir, options)?;
        store.set_node_limits(config.node_limits);
        Ok(store)
    }
}

/// The directories of a node's `shards` stores under the data directory `dir`: `dir` itself for
/// one shard, else `dir/shards/0`, `dir/shards/1`, ..., created (and their names made durable)
/// when missing. A directory made for another number of shards is refused: the slots a shard
/// holds depend on the count, so opening it with another would serve keys from the wrong store.
pub(crate) fn shard_dirs(dir: &Path, shards: usize) -> Result<Vec<PathBuf>, StoreError> {
    let shards_dir = dir.join(SHARDS_DIR);
    let found = shards_found(&shards_dir)?;
    let refused = |found| StoreError::ShardCount {
        dir: dir.to_path_buf(),
        found,
        wanted: shards,
    };
    if shards == 1 {
        return match found {
            Some(found) => Err(refused(found)),
            None => Ok(vec![dir.to_path_buf()]),
        };
    }
    match found {
        Some(found) if found != shards => return Err(refused(found)),
        None if dir.join(RAFT_DIR).is_dir() => return Err(refused(1)),
        _ => {}
    }
    let dirs: Vec<PathBuf> = (0..shards)
        .map(|shard| shards_dir.join(shard.to_string()))
        .collect();
    if found.is_none() {
        create_shard_dirs(dir, &shards_dir, &dirs)?;
    }
    Ok(dirs)
}

/// How many shard directories `shards_dir` holds (the highest number plus one), if it exists.
fn shards_found(shards_dir: &Path) -> Result<Option<usize>, StoreError> {
    let entries = match std::fs::read_dir(shards_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                op: "read directory",
                path: shards_dir.to_path_buf(),
                source,
            });
        }
    };
    let mut count = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some(number) = name.to_str().and_then(|name| name.parse::<usize>().ok()) {
            count = count.max(number + 1);
        }
    }
    Ok(Some(count))
}

/// Creates every shard's directory, then makes their names durable; `shards_dir` is created
/// last under its own name, so that a crash part-way leaves no `shards` directory to count.
fn create_shard_dirs(dir: &Path, shards_dir: &Path, dirs: &[PathBuf]) -> Result<(), StoreError> {
    let building = fs::names::tmp_path(shards_dir);
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { op, path, source }
    };
    if building.exists() {
        fs::remove_dir_all(&building).map_err(io("remove", &building))?;
    }
    for shard in dirs {
        let name = shard.file_name().unwrap_or_default();
        let path = building.join(name);
        fs::create_dir_all(&path).map_err(io("create directory", &path))?;
    }
    fs::sync_dir(&building).map_err(io("sync directory", &building))?;
    fs::rename(&building, shards_dir).map_err(io("rename", &building))?;
    fs::sync_dir(dir).map_err(io("sync directory", dir))
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

/// How long a store being replaced waits for the commands still holding it (outside the exec
/// lock: replies being written, `INFO`) to let it go.
#[cfg(feature = "cluster")]
const UNSHARED_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Closes the store cleanly once nothing else holds it, so that its directory is unlocked.
#[cfg(feature = "cluster")]
fn close_store_when_unshared(store: Option<Arc<Store>>) -> Result<(), StoreError> {
    let Some(mut store) = store else {
        return Ok(());
    };
    let deadline = std::time::Instant::now() + UNSHARED_WAIT;
    loop {
        match Arc::try_unwrap(store) {
            Ok(store) => return store.close(),
            Err(shared) if std::time::Instant::now() < deadline => {
                store = shared;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(shared) => {
                shared.flush()?;
                return Err(StoreError::Locked(shared.dir().to_path_buf()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_is_the_data_directory_and_many_live_under_shards() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(shard_dirs(dir.path(), 1).unwrap(), vec![dir.path()]);
        let dirs = shard_dirs(dir.path(), 3).unwrap();
        assert_eq!(dirs.len(), 3);
        assert!(dirs.iter().all(|shard| shard.is_dir()));
        assert_eq!(dirs[2], dir.path().join("shards").join("2"));
        assert_eq!(shard_dirs(dir.path(), 3).unwrap(), dirs);
    }

    #[test]
    fn a_directory_made_for_another_shard_count_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        shard_dirs(dir.path(), 4).unwrap();
        for wanted in [1, 3, 5] {
            let refused = shard_dirs(dir.path(), wanted).unwrap_err();
            assert!(
                matches!(refused, StoreError::ShardCount { found: 4, .. }),
                "{refused}"
            );
            assert!(
                refused.to_string().contains("--cluster-shards 4"),
                "{refused}"
            );
        }
        let single = tempfile::tempdir().unwrap();
        std::fs::create_dir(single.path().join(RAFT_DIR)).unwrap();
        let refused = shard_dirs(single.path(), 2).unwrap_err();
        assert!(matches!(refused, StoreError::ShardCount { found: 1, .. }));
    }
}
