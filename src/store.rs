//! The store: a data directory holding any number of named streams.
//!
//! Layout: `DIR/LOCK` (held with an exclusive `flock` while the store is open), `DIR/CLEAN`
//! (present only after a clean close), and `DIR/streams/<n>-<escaped name>/` per stream (see
//! [`names`]) with the stream's name in its `NAME` file.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::clock::{ManualClock, SharedClock, SystemClock};
pub use crate::error::StoreError;

use crate::durability::{CommitBatch, Durability, FlushStats, Syncer};
use crate::fs;
use crate::group::durable::GroupRecovery;
use crate::log::{Log, LogOptions, RecoveryReport};
use crate::names::{self, CLEAN_FILE, LOCK_FILE, NAME_FILE, STREAMS_DIR};
use crate::repeated::RepeatLimiter;
use crate::stream::{
    NodeLimits, Requester, Stream, StreamContext, StreamResolver, prepare_reply_stream,
};
use crate::undo::{self, Target, Undo};

#[cfg(test)]
mod fault_tests;
mod machine_crash;
mod progress;
mod replication_mark;
mod snapshot;
mod snapshot_archive;
mod transaction;
#[cfg(test)]
mod transaction_tests;

use progress::ProgressReporter;
pub use progress::{ProgressHook, RECOVERY_PROGRESS_INTERVAL_MS, RecoveryProgress};
pub use replication_mark::ReplicationMark;
// queue-dump checks a replicated node's snapshot data file (an archive) without installing it.
pub use snapshot::{
    FROZEN_PREFIX, FrozenStore, INSTALLING_DIR, REPLACED_STREAMS_DIR, SnapshotSummary,
};
#[cfg(feature = "cluster")]
pub(crate) use snapshot_archive::check_archive;
use transaction::Transactions;

const MAINTENANCE_INTERVAL: Duration = Duration::from_millis(500);
/// How long opening waits for the directory's lock before reporting it in use.
const LOCK_WAIT: Duration = Duration::from_millis(500);

fn io_error<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// When writes become durable.
    pub durability: Durability,
    /// File sizing of every stream's log.
    pub log: LogOptions,
    /// The clock for IDs, timestamps and deadlines.
    pub clock: SharedClock,
    /// How a stream's name appears in entries the store writes itself (the
    /// `dead-letter-stream` header of a dead letter). An embedder that prefixes names with a
    /// namespace, as the server does with database numbers, strips it here.
    pub public_name: fn(&[u8]) -> &[u8],
    /// Told how far opening has got, every few seconds while it recovers streams (see
    /// [`ProgressHook`]); by default, logged.
    pub recovery_progress: ProgressHook,
    /// Who applies the changes that time alone causes (retention by age, removal of entries
    /// every group acknowledged, expiry of idle streams).
    pub timed_changes: TimedChanges,
    /// What opening does after the machine (not only the process) stopped without a clean
    /// close.
    pub after_machine_crash: AfterMachineCrash,
    /// For the state machine of a replicated log: the manual clock (also `clock`) that is set
    /// to the time of the last replicated command the store applied (its replication mark)
    /// before the streams recover, so that what recovery computes from the time (idempotency
    /// windows, say) is what the replicas that did not restart hold.
    pub replication_clock: Option<Arc<ManualClock>>,
}

/// What opening a store does after the machine stopped without a clean close (a power loss,
/// a kernel crash), which it tells from a process crash by the kernel's boot id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AfterMachineCrash {
    /// Recover what the files hold, as after any crash: what the durability policy synced is
    /// there.
    #[default]
    Recover,
    /// Empty the store: it was written without syncs, and another source (a replicated log)
    /// holds its content to rebuild it from. [`StoreRecovery::discarded`] says it happened.
    Discard,
}

/// Who applies the changes that time alone causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimedChanges {
    /// The store's maintenance thread, every few seconds, at its clock's time.
    #[default]
    Automatic,
    /// Only [`Store::apply_timed_changes`], at the clock's time when it is called: for a
    /// replicated store, whose replicas must all make them at the same point of the log.
    /// Idle streams never expire.
    OnRequest,
}

fn identity(name: &[u8]) -> &[u8] {
    name
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Interval(1000),
            log: LogOptions::default(),
            clock: SystemClock::shared(),
            public_name: identity,
            recovery_progress: ProgressHook::default(),
            timed_changes: TimedChanges::Automatic,
            replication_clock: None,
            after_machine_crash: AfterMachineCrash::Recover,
        }
    }
}

/// What opening the store recovered.
#[derive(Debug, Clone, Default)]
pub struct StoreRecovery {
    /// The previous run closed cleanly.
    pub clean: bool,
    /// This open created the data directory (or found it without any store in it): there was
    /// no previous run, so `clean` being false says nothing about a crash.
    pub new_directory: bool,
    /// Each stream's report, by name.
    pub streams: Vec<(Vec<u8>, RecoveryReport)>,
    /// What each stream's consumer groups recovered, by stream name.
    pub groups: Vec<(Vec<u8>, GroupRecovery)>,
    /// Changes of a transaction that a crash interrupted, undone (0 when none was).
    pub undone_changes: usize,
    /// The store was emptied at open after a machine crash
    /// ([`AfterMachineCrash::Discard`]).
    pub discarded: bool,
}

impl StoreRecovery {
    /// Entries across all streams.
    pub fn entries(&self) -> u64 {
        self.streams.iter().map(|(_, report)| report.entries).sum()
    }

    /// Records lost across all streams.
    pub fn lost_records(&self) -> u64 {
        self.streams.iter().map(|(_, r)| r.lost_records()).sum()
    }

    /// Adds what another store's open recovered (another shard's of the same node): the two
    /// were clean only if both were, new only if both were.
    pub fn merge(&mut self, other: StoreRecovery) {
        self.clean &= other.clean;
        self.new_directory &= other.new_directory;
        self.streams.extend(other.streams);
        self.groups.extend(other.groups);
        self.undone_changes += other.undone_changes;
        self.discarded |= other.discarded;
    }
}

/// A stream and its directory.
type OpenStream = (Arc<Stream>, PathBuf);

struct Shared {
    me: Weak<Shared>,
    dir: PathBuf,
    options: StoreOptions,
    syncer: Arc<Syncer>,
    streams: RwLock<HashMap<Vec<u8>, OpenStream>>,
    create_lock: Mutex<()>,
    next_number: AtomicU64,
    stopping: AtomicBool,
    stop_signal: (Mutex<bool>, Condvar),
    /// Held for a whole maintenance pass, whose stream handles would make every stream look in
    /// use to idle expiry, and for a whole transaction.
    maintenance_pass: Mutex<()>,
    /// Held for a whole transaction: they run one at a time.
    transaction_lock: Mutex<()>,
    transactions: Arc<Mutex<Transactions>>,
    /// Where the streams' Redis-compatible nodes close (see [`NodeLimits`]).
    node_limits: Arc<RwLock<NodeLimits>>,
    /// Keeps maintenance that fails the same way every pass from flooding the log.
    maintenance_log: RepeatLimiter,
    /// Snapshots gathered by this open, for the names of their directories.
    frozen_count: AtomicU64,
}

/// A data directory of named streams.
///
/// Opening recovers every stream the directory holds; [`close`](Store::close) shuts it down
/// cleanly, so that the next open trusts what it finds and scans nothing.
///
/// ```
/// use weir::{Message, Store};
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = Store::open(dir.path()).unwrap();
/// store.stream(b"orders").unwrap().append(Message::new("first")).unwrap();
/// store.stream(b"audit").unwrap();
/// assert_eq!(store.stream_names(), [b"audit".to_vec(), b"orders".to_vec()]);
/// store.close().unwrap();
///
/// let store = Store::open(dir.path()).unwrap();
/// assert!(store.recovery().clean);
/// assert_eq!(store.get(b"orders").unwrap().len(), 1);
/// assert!(store.get(b"missing").is_none());
/// ```
pub struct Store {
    shared: Arc<Shared>,
    recovery: StoreRecovery,
    maintenance: Option<JoinHandle<()>>,
    _lock: File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.shared.dir)
            .finish()
    }
}

impl Store {
    /// Opens (or creates) the data directory with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store, StoreError> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// Opens (or creates) the data directory, locks it, and recovers every stream.
    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let streams_dir = dir.join(STREAMS_DIR);
        let new_directory = !streams_dir.is_dir();
        fs::create_dir_all(&streams_dir).map_err(io_error("create directory", &streams_dir))?;
        let lock = lock_directory(&dir)?;
        snapshot::remove_snapshot_leftovers(&dir)?;
        let clean_path = dir.join(CLEAN_FILE);
        let clean = clean_path.exists();
        let discarded = options.after_machine_crash == AfterMachineCrash::Discard
            && machine_crash::discard_after_machine_crash(&dir, clean)
                .map_err(io_error("empty after a machine crash", &dir))?;
        if discarded {
            tracing::warn!(dir = %dir.display(), "the machine stopped without closing this store, which is written without syncs: emptied, to be rebuilt from the replicated log");
            fs::create_dir_all(&streams_dir).map_err(io_error("create directory", &streams_dir))?;
        }
        if clean {
            // From here on the directory is being written: a crash must not look clean.
            fs::remove_file(&clean_path).map_err(io_error("remove", &clean_path))?;
        }
        fs::sync_dir(&dir).map_err(io_error("sync directory", &dir))?;
        let (transactions, undone_changes) =
            Transactions::open(&dir, &streams_dir, options.durability)?;
        if let (Some(clock), Some(mark)) = (&options.replication_clock, transactions.mark()) {
            clock.set_ms(mark.time_ms);
        }
        let syncer =
            Arc::new(Syncer::start(options.durability).map_err(io_error("start flusher", &dir))?);
        let now_ms = options.clock.now_ms();
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            dir,
            options,
            syncer,
            streams: RwLock::new(HashMap::new()),
            create_lock: Mutex::new(()),
            next_number: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            stop_signal: (Mutex::new(false), Condvar::new()),
            maintenance_pass: Mutex::new(()),
            transaction_lock: Mutex::new(()),
            transactions: Arc::new(Mutex::new(transactions)),
            node_limits: Arc::default(),
            maintenance_log: RepeatLimiter::default(),
            frozen_count: AtomicU64::new(0),
        });
        let mut reports = Vec::new();
        let mut group_reports = Vec::new();
        let stream_dirs = list_stream_dirs(&streams_dir)?;
        let mut progress = ProgressReporter::start(
            &shared.options.recovery_progress,
            &shared.options.clock,
            now_ms,
            stream_dirs.len(),
        );
        for (number, path, name) in stream_dirs {
            let (log, report) = Log::open(&path, shared.options.log, clean, now_ms)?;
            progress.stream_done(report.scanned_bytes);
            let (stream, groups) = Stream::open(name.clone(), log, shared.context())?;
            shared
                .streams
                .write()
                .insert(name.clone(), (Arc::new(stream), path));
            reports.push((name.clone(), report));
            group_reports.push((name, groups));
            shared.next_number.fetch_max(number + 1, Ordering::AcqRel);
        }
        let maintenance = {
            let worker = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("weir-maintenance".into())
                .spawn(move || run_maintenance(&worker))
                .map_err(io_error("start maintenance thread for", &shared.dir))?
        };
        Ok(Store {
            shared,
            recovery: StoreRecovery {
                clean,
                new_directory,
                streams: reports,
                groups: group_reports,
                undone_changes,
                discarded,
            },
            maintenance: Some(maintenance),
            _lock: lock,
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// What opening the store recovered.
    pub fn recovery(&self) -> &StoreRecovery {
        &self.recovery
    }

    /// Where approximate trims see node boundaries (Redis's `stream-node-max-entries` and
    /// `stream-node-max-bytes`), for every stream of the store. Entries already taken into
    /// nodes keep them; the limits apply to those appended from now on.
    pub fn set_node_limits(&self, limits: NodeLimits) {
        *self.shared.node_limits.write() = limits;
    }

    /// The node limits in force (see [`set_node_limits`](Self::set_node_limits)).
    pub fn node_limits(&self) -> NodeLimits {
        *self.shared.node_limits.read()
    }

    /// Checkpoints every stream and compacts its group journals (see [`Stream::compact`]).
    pub fn compact(&self) -> Result<(), StoreError> {
        for name in self.stream_names() {
            if let Some(stream) = self.get(&name) {
                stream.compact()?;
            }
        }
        Ok(())
    }

    /// The durability policy in force.
    pub fn durability(&self) -> Durability {
        self.shared.options.durability
    }

    /// What the group-commit flusher has done since the store opened.
    pub fn flush_stats(&self) -> FlushStats {
        self.shared.syncer.stats()
    }

    /// Makes the writes collected in `batch` durable under the store's policy, with one
    /// group-commit wait, and empties it.
    pub(crate) async fn complete(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        self.shared.syncer.complete(batch).await?;
        Ok(())
    }

    /// Makes the writes collected in `batch` durable, blocking the calling thread.
    #[cfg(feature = "cluster")]
    pub(crate) fn complete_now(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        self.shared.syncer.complete_now(batch)?;
        Ok(())
    }

    /// The stream called `name` (any bytes: `"orders"`, `b"orders"`, a `Vec<u8>`), created if
    /// it does not exist.
    pub fn stream(&self, name: impl AsRef<[u8]>) -> Result<Arc<Stream>, StoreError> {
        self.shared.resolve(name.as_ref())
    }

    /// The stream called `name`, if it exists.
    pub fn get(&self, name: impl AsRef<[u8]>) -> Option<Arc<Stream>> {
        self.shared.get(name.as_ref())
    }

    /// The names of every stream.
    pub fn stream_names(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = self.shared.streams.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Renames a stream (Redis's `RENAME`): an existing stream called `to` is deleted first.
    /// Returns whether `from` existed. The new name is written to the stream's `NAME` file
    /// atomically (temporary file, fsync, rename, directory fsync).
    pub fn rename_stream(
        &self,
        from: impl AsRef<[u8]>,
        to: impl AsRef<[u8]>,
    ) -> Result<bool, StoreError> {
        let (from, to) = (from.as_ref(), to.as_ref());
        if from == to {
            return Ok(self.get(from).is_some());
        }
        if self.get(from).is_none() {
            return Ok(false);
        }
        self.delete_stream(to)?;
        let _creating = self.shared.create_lock.lock();
        let Some((stream, path)) = self.shared.streams.read().get(from).cloned() else {
            return Ok(false);
        };
        undo::before_change(&path, Target::Name, || Undo::Renamed {
            dir: path.clone(),
            name: from.to_vec(),
        })?;
        let name_path = path.join(NAME_FILE);
        let tmp = names::tmp_path(&name_path);
        fs::place(
            &tmp,
            &name_path,
            || fs::write_durably(&tmp, to),
            |error| error,
        )
        .map_err(io_error("replace", &name_path))?;
        // The new name is in the directory: memory follows it whatever the sync below says.
        stream.set_name(to);
        {
            let mut streams = self.shared.streams.write();
            streams.remove(from);
            streams.insert(to.to_vec(), (stream, path.clone()));
        }
        fs::sync_dir(&path).map_err(io_error("sync directory", &path))?;
        Ok(true)
    }

    /// Deletes a stream and its files; returns whether it existed. Readers holding entries keep
    /// them readable until they drop them.
    pub fn delete_stream(&self, name: impl AsRef<[u8]>) -> Result<bool, StoreError> {
        let name = name.as_ref();
        let _creating = self.shared.create_lock.lock();
        let Some((_, path)) = self.shared.streams.read().get(name).cloned() else {
            return Ok(false);
        };
        let trash = self.shared.move_to_trash(&path)?;
        self.shared.streams.write().remove(name);
        self.shared.empty_trash(&trash)?;
        Ok(true)
    }

    /// A requester with a reply stream of its own, created now (see
    /// [`Requester`]).
    pub fn requester(&self) -> Result<Requester, StoreError> {
        static REQUESTERS: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "weir.replies.{}.{}.{}",
            std::process::id(),
            self.shared.options.clock.now_ms(),
            REQUESTERS.fetch_add(1, Ordering::Relaxed)
        );
        let replies = self
            .shared
            .resolve_with(name.as_bytes(), &prepare_reply_stream)?;
        Ok(Requester::new(replies))
    }

    /// Deletes the streams whose idle expiry
    /// ([`StreamConfig::expire_idle_ms`](crate::StreamConfig::expire_idle_ms)) has passed and
    /// that no handle outside the store refers to; returns their names. The store's
    /// maintenance runs it twice a second.
    pub fn expire_idle_streams(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let _pass = self.shared.maintenance_pass.lock();
        self.shared.expire_idle_streams()
    }

    /// Applies retention by age and removes the entries every group acknowledged, in every
    /// stream, at the clock's time: what the maintenance thread does by itself under
    /// [`TimedChanges::Automatic`], and only this call does under [`TimedChanges::OnRequest`].
    /// Streams are visited in name order, so that replicas make the same changes in the same
    /// order.
    pub fn apply_timed_changes(&self) -> Result<(), StoreError> {
        let mut streams: Vec<Arc<Stream>> = self.all_streams();
        streams.sort_by_key(|stream| stream.name());
        for stream in streams {
            stream.apply_timed_changes()?;
        }
        Ok(())
    }

    /// Makes everything written so far durable, whatever the policy.
    pub fn flush(&self) -> Result<(), StoreError> {
        for stream in self.all_streams() {
            stream.flush()?;
        }
        Ok(())
    }
}

impl Shared {
    /// What to add to a maintenance error's log line, `None` when it is not logged: the same
    /// failure (`key`) is logged once per interval, with a count of its repeats.
    fn maintenance_note(&self, key: &str) -> Option<String> {
        self.maintenance_log
            .check(key, self.options.clock.now_ms())
            .note()
    }

    fn context(&self) -> StreamContext {
        let resolver: Weak<dyn StreamResolver> = self.me.clone();
        StreamContext {
            syncer: Arc::clone(&self.syncer),
            clock: Arc::clone(&self.options.clock),
            resolver,
            public_name: self.options.public_name,
            node_limits: Arc::clone(&self.node_limits),
        }
    }

    /// Moves a stream's directory aside, to `trash-<its name>`: the stream is deleted from then
    /// on (the next open removes what is left). A failure changes nothing.
    fn move_to_trash(&self, path: &Path) -> Result<PathBuf, StoreError> {
        let streams_dir = self.dir.join(STREAMS_DIR);
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let trash = streams_dir.join(names::trash_dir_name(&file_name));
        undo::before_change(path, Target::Deleted, || Undo::Deleted {
            dir: path.to_path_buf(),
            trash: trash.clone(),
        })?;
        fs::rename(path, &trash).map_err(io_error("rename", path))?;
        Ok(trash)
    }

    /// Makes a deletion durable and removes the deleted stream's files; inside a transaction,
    /// which may still be undone, its commit removes them.
    fn empty_trash(&self, trash: &Path) -> Result<(), StoreError> {
        let streams_dir = self.dir.join(STREAMS_DIR);
        fs::sync_dir(&streams_dir).map_err(io_error("sync directory", &streams_dir))?;
        if undo::recording() {
            return Ok(());
        }
        fs::remove_dir_all(trash).map_err(io_error("remove", trash))
    }

    fn expire_idle_streams(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let now_ms = self.options.clock.now_ms();
        let _creating = self.create_lock.lock();
        let expired: Vec<(Vec<u8>, OpenStream)> = {
            // Under the write lock nobody can take a new handle: a stream whose only handle is
            // the map's is unused, and stays so once removed.
            let mut streams = self.streams.write();
            let names: Vec<Vec<u8>> = streams
                .iter()
                .filter(|(_, (stream, _))| {
                    Arc::strong_count(stream) == 1 && stream.idle_expired(now_ms)
                })
                .map(|(name, _)| name.clone())
                .collect();
            names
                .into_iter()
                .filter_map(|name| streams.remove_entry(&name))
                .collect()
        };
        let mut names = Vec::with_capacity(expired.len());
        for (name, (stream, path)) in expired {
            let trash = match self.move_to_trash(&path) {
                Ok(trash) => trash,
                Err(error) => {
                    // Still there: the map keeps it, to expire at a later pass.
                    self.streams.write().insert(name, (stream, path));
                    return Err(error);
                }
            };
            self.empty_trash(&trash)?;
            tracing::debug!(stream = %String::from_utf8_lossy(&name), "idle stream expired");
            names.push(name);
        }
        Ok(names)
    }

    fn get(&self, name: &[u8]) -> Option<Arc<Stream>> {
        self.streams
            .read()
            .get(name)
            .map(|(stream, _)| Arc::clone(stream))
    }

    fn create_stream(&self, name: &[u8]) -> Result<(Arc<Stream>, PathBuf), StoreError> {
        let streams_dir = self.dir.join(STREAMS_DIR);
        let number = self.next_number.fetch_add(1, Ordering::AcqRel);
        let final_path = streams_dir.join(names::directory_name(number, name));
        let tmp_path = streams_dir.join(names::creating_dir_name(number));
        fs::create_dir(&tmp_path).map_err(io_error("create directory", &tmp_path))?;
        let name_path = tmp_path.join(NAME_FILE);
        fs::write_durably(&name_path, name).map_err(io_error("write", &name_path))?;
        let now_ms = self.options.clock.now_ms();
        // The log is created inside the temporary directory, so a crash before the rename leaves
        // only a `tmp-` directory that the next open removes.
        drop(Log::open(&tmp_path, self.options.log, false, now_ms)?);
        undo::before_change(&final_path, Target::Created, || Undo::Created {
            dir: final_path.clone(),
        })?;
        fs::rename(&tmp_path, &final_path).map_err(io_error("rename", &tmp_path))?;
        let opened = self.open_created(&streams_dir, &final_path, name, now_ms);
        if opened.is_err() {
            // Nothing will know of the stream: its directory must not outlive the failure, or
            // the next open would find a stream its creator was told was not created.
            let removed = fs::remove_dir_all(&final_path).and_then(|()| fs::sync_dir(&streams_dir));
            if let Err(error) = removed {
                tracing::warn!(dir = %final_path.display(), %error, "could not remove a stream whose creation failed; it opens empty next time");
            }
        }
        opened
    }

    /// The second half of [`create_stream`](Self::create_stream), once the directory has its
    /// final name: makes the name durable and opens the stream.
    fn open_created(
        &self,
        streams_dir: &Path,
        path: &Path,
        name: &[u8],
        now_ms: u64,
    ) -> Result<(Arc<Stream>, PathBuf), StoreError> {
        fs::sync_dir(streams_dir).map_err(io_error("sync directory", streams_dir))?;
        let (log, _) = Log::open(path, self.options.log, true, now_ms)?;
        let (stream, _) = Stream::open(name.to_vec(), log, self.context())?;
        Ok((Arc::new(stream), path.to_path_buf()))
    }
}

impl StreamResolver for Shared {
    fn resolve(&self, name: &[u8]) -> Result<Arc<Stream>, StoreError> {
        self.resolve_with(name, &|_| Ok(()))
    }

    fn resolve_with(
        &self,
        name: &[u8],
        prepare: &dyn Fn(&Stream) -> Result<(), StoreError>,
    ) -> Result<Arc<Stream>, StoreError> {
        if let Some(stream) = self.get(name) {
            return Ok(stream);
        }
        let _creating = self.create_lock.lock();
        if let Some(stream) = self.get(name) {
            return Ok(stream);
        }
        let (stream, path) = self.create_stream(name)?;
        self.streams
            .write()
            .insert(name.to_vec(), (Arc::clone(&stream), path));
        prepare(&stream)?;
        Ok(stream)
    }
}

impl Store {
    fn all_streams(&self) -> Vec<Arc<Stream>> {
        self.shared
            .streams
            .read()
            .values()
            .map(|(s, _)| Arc::clone(s))
            .collect()
    }

    /// Closes the store cleanly: every stream is flushed and checkpointed, then the directory is
    /// marked clean so the next open scans nothing.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.stop_maintenance();
        for stream in self.all_streams() {
            stream.close()?;
        }
        let clean_path = self.shared.dir.join(CLEAN_FILE);
        fs::write_durably(&clean_path, b"").map_err(io_error("write", &clean_path))?;
        fs::sync_dir(&self.shared.dir).map_err(io_error("sync directory", &self.shared.dir))?;
        Ok(())
    }

    fn stop_maintenance(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        let (lock, signal) = &self.shared.stop_signal;
        *lock.lock() = true;
        signal.notify_all();
        if let Some(thread) = self.maintenance.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.stop_maintenance();
    }
}

fn run_maintenance(shared: &Shared) {
    let (lock, signal) = &shared.stop_signal;
    loop {
        {
            let mut stopped = lock.lock();
            if !*stopped {
                signal.wait_for(&mut stopped, MAINTENANCE_INTERVAL);
            }
            if *stopped {
                return;
            }
        }
        let _pass = shared.maintenance_pass.lock();
        let streams: Vec<Arc<Stream>> = shared
            .streams
            .read()
            .values()
            .map(|(s, _)| Arc::clone(s))
            .collect();
        for stream in streams {
            if shared.stopping.load(Ordering::Acquire) {
                return;
            }
            if let Err(error) = stream.maintain(shared.options.timed_changes) {
                let name = String::from_utf8_lossy(&stream.name()).into_owned();
                if let Some(note) = shared.maintenance_note(&format!("{name}\0{error}")) {
                    tracing::error!(stream = %name, %error, "stream maintenance failed{note}");
                }
            }
        }
        // After the loop above, which consumed its handles: they would keep every stream in use.
        if shared.options.timed_changes == TimedChanges::Automatic
            && let Err(error) = shared.expire_idle_streams()
            && let Some(note) = shared.maintenance_note(&format!("\0{error}"))
        {
            tracing::error!(%error, "expiring idle streams failed{note}");
        }
    }
}

fn lock_directory(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = fs::open_or_create(&path).map_err(io_error("open", &path))?;
    // A lock held for a moment longer than its store: a child process that another thread
    // spawned shares the descriptor from its fork until its exec closes it.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(StoreError::Locked(dir.to_path_buf()));
            }
            Err(errno) => {
                return Err(StoreError::Io {
                    op: "lock",
                    path,
                    source: errno.into(),
                });
            }
        }
    }
}

/// Stream directories, removing leftovers of interrupted creates and deletes.
fn list_stream_dirs(streams_dir: &Path) -> Result<Vec<(u64, PathBuf, Vec<u8>)>, StoreError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(streams_dir).map_err(io_error("list", streams_dir))? {
        let entry = entry.map_err(io_error("list", streams_dir))?;
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if names::is_stream_leftover(&file_name) {
            fs::remove_dir_all(&path).map_err(io_error("remove", &path))?;
            continue;
        }
        let Some(number) = names::directory_number(&file_name) else {
            tracing::warn!(path = %path.display(), "ignoring a directory that is not a stream");
            continue;
        };
        let name_path = path.join(NAME_FILE);
        let name = std::fs::read(&name_path).map_err(|error| StoreError::BadStreamDir {
            path: path.clone(),
            detail: format!("cannot read {NAME_FILE}: {error}"),
        })?;
        found.push((number, path, name));
    }
    found.sort_by_key(|(number, _, _)| *number);
    Ok(found)
}
