//! A stream: the handle through which entries are appended and read, and its consumer groups.

mod activity;
mod admin;
mod backlog;
mod config;
mod groups;
mod idempotent_append;
mod listpack;
mod memory;
mod nodes;
mod queries;
mod radix;
mod redelivery;
mod references;
mod request;
mod source;

/// The group types a stream's group methods take and give.
pub use crate::group::{
    AutoClaim, ClaimOptions, GroupPolicy, NackMode, PendingQuery, ReadNew, StreamFacts,
};
pub use activity::GroupActivity;
pub use backlog::Backlog;
pub use config::{Discard, StreamConfig};
use config::{Refusal, Usage};
pub use groups::{Claimed, Delivery, Group, GroupStart, PendingDelivery};
pub use idempotent_append::{
    IDEMPOTENCY_SNAPSHOT_FILE, IDEMPOTENCY_SNAPSHOT_KIND, IdempotentAppend,
};
pub use memory::StreamMemory;
pub use nodes::NodeLimits;
pub use queries::{ConsumerDetails, GroupDetails, GroupInFull, PendingEntry, PendingOverview};
pub use references::{Deletion, References, TrimTo};
pub(crate) use request::prepare_reply_stream;
pub use request::{
    CORRELATION_ID, REPLY_STREAM_TTL, REPLY_TO, RequestError, Requester, reply_stream_config,
};

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use std::sync::Weak;

use parking_lot::{Mutex, RwLock};

use crate::clock::SharedClock;
use crate::durability::{Commit, Flush, Syncer};
use crate::error::StoreError;
use crate::group::durable::{DurableGroups, GroupRecovery};
use crate::id::StreamId;
use crate::idempotency::IdempotencyWindows;
use crate::log::{Appended, AsEntry, Entry, IdSpec, Log, NewEntry, Retention};
use crate::record::IdempotencyKey;
use crate::repeated::RepeatLimiter;
use crate::signal::ChangeSignal;
use crate::store::TimedChanges;
use nodes::{NodeModel, Threshold};
use source::{LogSource, StreamFlush};

/// An entry to append: a body, optional headers, and how its ID is chosen.
///
/// ```
/// use weir::{Message, StreamId};
/// let message = Message::new("payload")
///     .header("content-type", "text/plain")
///     .id(StreamId::new(1_700_000_000_000, 0));
/// assert_eq!(message.headers.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// How the entry's ID is chosen (automatic unless set).
    pub id: IdSpec,
    /// Header names and values, arbitrary bytes, in the order given.
    pub headers: Vec<(Bytes, Bytes)>,
    /// The entry's body.
    pub body: Bytes,
    pub(crate) idempotency: Option<(Bytes, Bytes)>,
}

impl Message {
    /// A message with this body, no headers and an automatic ID.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Message {
            id: IdSpec::Auto,
            headers: Vec::new(),
            body: body.into(),
            idempotency: None,
        }
    }

    /// Adds a header (name and value are arbitrary bytes; order is kept).
    pub fn header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Uses exactly this ID (it must exceed the stream's last ID).
    pub fn id(mut self, id: StreamId) -> Self {
        self.id = IdSpec::Explicit(id);
        self
    }

    /// Chooses the ID another way (`ms-*`, automatic, explicit).
    pub fn id_spec(mut self, spec: IdSpec) -> Self {
        self.id = spec;
        self
    }
}

impl AsEntry for Message {
    type Field = Bytes;

    fn as_entry(&self) -> NewEntry<'_, Bytes> {
        NewEntry {
            id: self.id,
            headers: &self.headers,
            body: &self.body,
            idempotency: self
                .idempotency
                .as_ref()
                .map(|(producer, iid)| IdempotencyKey { producer, iid }),
        }
    }
}

/// The size of the radix tree Redis would keep for a stream (see [`Stream::radix_tree`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RadixTree {
    /// Keys: the nodes that hold live entries.
    pub keys: u64,
    /// Nodes of the tree.
    pub nodes: u64,
}

/// A named stream of entries in a [`Store`](crate::Store).
///
/// ```
/// use std::ops::Bound;
/// use weir::{Message, Store};
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = Store::open(dir.path()).unwrap();
/// let events = store.stream(b"events").unwrap();
/// let created = events.append(Message::new("created")).unwrap();
/// events.append(Message::new("paid").header("amount", "10")).unwrap();
/// assert_eq!(events.len(), 2);
///
/// let after = events.range(Bound::Excluded(created.id), Bound::Unbounded, 10).unwrap();
/// assert_eq!(after[0].body(), b"paid");
/// assert_eq!(events.last_id(), after[0].id);
/// assert_eq!(events.delete(&[created.id]).unwrap(), 1);
/// assert_eq!(events.len(), 1);
/// ```
pub struct Stream {
    name: RwLock<Bytes>,
    log: Arc<Log>,
    syncer: Arc<Syncer>,
    clock: SharedClock,
    groups: Mutex<DurableGroups>,
    flush: Arc<StreamFlush>,
    /// `flush` as the syncer takes it, made once: a clone per commit cost two atomic operations
    /// per append.
    flush_handle: Arc<dyn Flush>,
    appended: ChangeSignal,
    resolver: Weak<dyn StreamResolver>,
    config: RwLock<StreamConfig>,
    idempotency: Mutex<IdempotencyWindows>,
    public_name: fn(&[u8]) -> &[u8],
    /// Held from the length check to the append on a stream with a length limit, so that
    /// concurrent appends cannot pass the limit together.
    admission: Mutex<()>,
    /// When the stream was opened or last appended to (store clock): what idle expiry measures.
    last_activity_ms: AtomicU64,
    /// Per group, why its dead-letter stream refused the last dead letters it was sent (those
    /// entries stay pending and are tried again); absent once dead-lettering succeeds.
    dead_letter_refusals: Mutex<BTreeMap<Vec<u8>, String>>,
    /// Keeps a dead-letter stream that refuses again and again from flooding the log.
    dead_letter_log: RepeatLimiter,
    /// Per group, what it handed out and dead-lettered since the stream was opened.
    activity: activity::ActivityCounters,
    /// Where Redis would have cut the stream into nodes; `None` until an approximate trim or
    /// `radix_tree` first needs it.
    nodes: Mutex<Option<NodeModel>>,
    /// The store's node limits.
    node_limits: Arc<RwLock<NodeLimits>>,
}

/// Finds (or creates) another stream of the same store: where dead letters and replies go.
pub(crate) trait StreamResolver: Send + Sync {
    fn resolve(&self, name: &[u8]) -> Result<Arc<Stream>, StoreError>;
    /// Like `resolve`; a stream it creates is first set up by `prepare`.
    fn resolve_with(
        &self,
        name: &[u8],
        prepare: &dyn Fn(&Stream) -> Result<(), StoreError>,
    ) -> Result<Arc<Stream>, StoreError>;
}

/// What a stream needs from its store.
pub(crate) struct StreamContext {
    pub(crate) syncer: Arc<Syncer>,
    pub(crate) clock: SharedClock,
    pub(crate) resolver: Weak<dyn StreamResolver>,
    pub(crate) public_name: fn(&[u8]) -> &[u8],
    pub(crate) node_limits: Arc<RwLock<NodeLimits>>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("name", &String::from_utf8_lossy(&self.name()))
            .field("dir", &self.log.dir())
            .finish()
    }
}

impl Stream {
    /// Opens the stream's consumer groups over its recovered log.
    pub(crate) fn open(
        name: Vec<u8>,
        log: Log,
        context: StreamContext,
    ) -> Result<(Stream, GroupRecovery), StoreError> {
        let log = Arc::new(log);
        let config = StreamConfig::decode(&log.meta().attributes).map_err(|error| {
            StoreError::BadStreamDir {
                path: log.dir().to_path_buf(),
                detail: format!("unreadable stream configuration: {error}"),
            }
        })?;
        let (groups, recovery) = DurableGroups::open(log.dir(), &LogSource(&log))?;
        let windows = idempotent_append::recover_windows(
            &log,
            idempotent_append::window_config(&config),
            context.clock.now_ms(),
        )?;
        let opened_ms = context.clock.now_ms();
        let flush = Arc::new(StreamFlush {
            log: Arc::clone(&log),
            groups_sync: Mutex::new(groups.sync_handle()),
        });
        let stream = Stream {
            name: RwLock::new(Bytes::from(name)),
            log,
            syncer: context.syncer,
            clock: context.clock,
            groups: Mutex::new(groups),
            flush_handle: Arc::clone(&flush) as Arc<dyn Flush>,
            flush,
            appended: ChangeSignal::new(),
            resolver: context.resolver,
            config: RwLock::new(config),
            idempotency: Mutex::new(windows),
            public_name: context.public_name,
            admission: Mutex::new(()),
            last_activity_ms: AtomicU64::new(opened_ms),
            dead_letter_refusals: Mutex::default(),
            dead_letter_log: RepeatLimiter::default(),
            activity: activity::ActivityCounters::default(),
            nodes: Mutex::new(None),
            node_limits: context.node_limits,
        };
        Ok((stream, recovery))
    }

    /// The stream's name.
    pub fn name(&self) -> Bytes {
        self.name.read().clone()
    }

    /// The store's clock, in Unix milliseconds: the clock every delivery time is taken from, so
    /// idle times measured against it (as the server reports them) agree with the deliveries.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(crate) fn set_name(&self, name: &[u8]) {
        *self.name.write() = Bytes::copy_from_slice(name);
    }

    /// The underlying log (lower-level reads, metadata, recovery facts).
    pub fn log(&self) -> &Log {
        &self.log
    }

    fn flush_handle(&self) -> &Arc<dyn Flush> {
        &self.flush_handle
    }

    /// Appends one entry. Under [`Durability::Always`](crate::Durability::Always) it returns
    /// once the entry is on disk.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = weir::Store::open(dir.path()).unwrap();
    /// let orders = store.stream(b"orders").unwrap();
    /// let first = orders.append(weir::Message::new("hello")).unwrap();
    /// assert_eq!(first.offset, 0);
    /// assert_eq!(orders.read(0).unwrap().unwrap().body(), b"hello");
    /// ```
    pub fn append(&self, message: Message) -> Result<Appended, StoreError> {
        self.append_in(message, Commit::Wait)
    }

    /// [`append`](Self::append), made durable as `commit` says.
    pub(crate) fn append_in(
        &self,
        message: Message,
        commit: Commit<'_>,
    ) -> Result<Appended, StoreError> {
        let appended = self.write_one(&message)?;
        self.commit(commit)?;
        Ok(appended)
    }

    /// Appends several entries with one write and, under `Always`, one shared flush.
    pub fn append_batch(&self, messages: &[Message]) -> Result<Vec<Appended>, StoreError> {
        let mut appended = Vec::with_capacity(messages.len());
        self.write(messages, |placed| appended.push(placed))?;
        self.commit(Commit::Wait)?;
        Ok(appended)
    }

    /// The async form of [`append`](Self::append): resolves once the entry is durable under the
    /// store's policy, without blocking a thread while the flush runs.
    pub async fn append_async(&self, message: Message) -> Result<Appended, StoreError> {
        let appended = self.write_one(&message)?;
        self.syncer.commit_async(self.flush_handle()).await?;
        Ok(appended)
    }

    fn write_one(&self, message: &Message) -> Result<Appended, StoreError> {
        let mut appended = None;
        self.write(std::slice::from_ref(message), |placed| {
            appended = Some(placed);
        })?;
        appended.ok_or(StoreError::EmptyBatch)
    }

    /// Writes the messages (not yet durable), handing each one's place to `on_placed`.
    fn write(
        &self,
        messages: &[Message],
        on_placed: impl FnMut(Appended),
    ) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Err(StoreError::EmptyBatch);
        }
        let config = self.config();
        let _admitted = if config.has_limits() {
            let admitted = self.admission.lock();
            self.admit(&config, messages)?;
            Some(admitted)
        } else {
            None
        };
        let now_ms = self.clock.now_ms();
        if now_ms > self.last_activity_ms.load(Ordering::Relaxed) {
            self.last_activity_ms.fetch_max(now_ms, Ordering::Relaxed);
        }
        let appended = self.log.append_with(messages, now_ms, on_placed);
        self.appended.notify();
        appended?;
        // Made durable by the caller's commit, with the entries.
        self.drop_oldest_past_limits(&config)?;
        Ok(())
    }

    /// Refuses an append the stream's limits do not let in (the caller holds the admission
    /// lock, so the figures stay true until the append).
    fn admit(&self, config: &StreamConfig, messages: &[Message]) -> Result<(), StoreError> {
        let batch = Usage {
            entries: messages.len() as u64,
            bytes: match config.max_bytes {
                Some(_) => messages
                    .iter()
                    .map(|message| Log::stored_len(&message.as_entry()))
                    .sum(),
                None => 0,
            },
        };
        let current = Usage {
            entries: self.log.len(),
            bytes: if config.refuses_by_bytes() {
                self.log.stored_bytes()?
            } else {
                0
            },
        };
        let stream = || String::from_utf8_lossy(&self.public_name()).into_owned();
        config
            .admit(current, batch)
            .map_err(|refusal| match refusal {
                Refusal::Length => StoreError::StreamFull {
                    stream: stream(),
                    len: current.entries,
                    max_len: config.max_len.unwrap_or(0),
                },
                Refusal::Bytes => StoreError::StreamFullBytes {
                    stream: stream(),
                    stored: current.bytes,
                    adding: batch.bytes,
                    max_bytes: config.max_bytes.unwrap_or(0),
                },
                Refusal::LargerThanLimit => StoreError::LargerThanStream {
                    stream: stream(),
                    adding: batch.bytes,
                    max_bytes: config.max_bytes.unwrap_or(0),
                },
            })
    }

    /// Under `DISCARD old`, trims the oldest entries past the length and size limits.
    fn drop_oldest_past_limits(&self, config: &StreamConfig) -> Result<(), StoreError> {
        let limited = config.max_len.is_some() || config.max_bytes.is_some();
        if config.discard != Discard::Old || !limited {
            // The common case, on every append: no lock taken.
            return Ok(());
        }
        self.nodes_follow()?;
        if let Some(max_len) = config.max_len {
            self.log.trim_max_len(max_len, false, None)?;
        }
        if let Some(max_bytes) = config.max_bytes {
            self.log.trim_max_bytes(max_bytes)?;
        }
        Ok(())
    }

    /// The stream's name as the embedder shows it (without a namespace prefix).
    pub(crate) fn public_name(&self) -> Bytes {
        Bytes::copy_from_slice((self.public_name)(&self.name()))
    }

    /// Whether the stream's idle expiry has passed at `now_ms`.
    pub(crate) fn idle_expired(&self, now_ms: u64) -> bool {
        self.config().expire_idle_ms.is_some_and(|idle_ms| {
            let last = self.last_activity_ms.load(Ordering::Relaxed);
            now_ms.saturating_sub(last) >= idle_ms
        })
    }

    /// The namespace prefix the embedder strips from names (empty for plain library use):
    /// another stream named in an entry of this one lives in the same namespace.
    pub(crate) fn namespaced(&self, public: &[u8]) -> Vec<u8> {
        let name = self.name();
        let shown = (self.public_name)(&name);
        let prefix = name.strip_suffix(shown).unwrap_or_default();
        [prefix, public].concat()
    }

    /// The entry at `offset`, if it is live.
    pub fn read(&self, offset: u64) -> Result<Option<Entry>, StoreError> {
        Ok(self.log.read(offset)?)
    }

    /// Up to `max` entries with IDs in the range, oldest first (Redis's XRANGE).
    pub fn range(
        &self,
        from: Bound<StreamId>,
        to: Bound<StreamId>,
        max: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        Ok(self.log.range(from, to, max)?)
    }

    /// Up to `max` entries with IDs in the range, newest first (Redis's XREVRANGE).
    pub fn range_rev(
        &self,
        high: Bound<StreamId>,
        low: Bound<StreamId>,
        max: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        Ok(self.log.range_rev(high, low, max)?)
    }

    /// Live entries.
    pub fn len(&self) -> u64 {
        self.log.len()
    }

    /// Bytes the live entries store: what [`StreamConfig::max_bytes`] limits (see
    /// `Log::stored_bytes`).
    pub fn stored_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.log.stored_bytes()?)
    }

    /// Bytes of the stream's segment files on disk (what `INFO` adds up).
    pub fn disk_bytes(&self) -> u64 {
        self.log.disk_bytes()
    }

    /// How many segment files hold the stream.
    pub fn segment_count(&self) -> usize {
        self.log.segment_count()
    }

    /// Whether the stream has no live entries.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    /// The last ID the stream generated (deleting entries never lowers it).
    pub fn last_id(&self) -> StreamId {
        self.log.last_id()
    }

    /// Deletes entries by ID (Redis's XDEL); returns how many existed.
    pub fn delete(&self, ids: &[StreamId]) -> Result<usize, StoreError> {
        self.delete_in(ids, Commit::Wait)
    }

    /// [`delete`](Self::delete), made durable as `commit` says.
    pub(crate) fn delete_in(
        &self,
        ids: &[StreamId],
        commit: Commit<'_>,
    ) -> Result<usize, StoreError> {
        self.nodes_follow()?;
        let count = self.log.delete(ids)?;
        self.commit(commit)?;
        Ok(count)
    }

    /// Keeps at most `max_len` entries (Redis's `XTRIM MAXLEN`). With `approximate` (`~`), only
    /// whole nodes go, as Redis cuts a stream into nodes (see [`NodeLimits`]): the oldest
    /// ones, while at least `max_len` entries remain, and at most `limit` entries in all
    /// (`None`: no limit; the limit applies to approximate trims only). Returns how many
    /// entries went.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = weir::Store::open(dir.path()).unwrap();
    /// let stream = store.stream(b"s").unwrap();
    /// for _ in 0..555 {
    ///     stream.append(weir::Message::new("").header("f", "v")).unwrap();
    /// }
    /// // Nodes of 100 entries: removing a second one would leave fewer than 444.
    /// assert_eq!(stream.trim_max_len(444, true, None).unwrap(), 100);
    /// assert_eq!(stream.trim_max_len(444, false, None).unwrap(), 11);
    /// ```
    pub fn trim_max_len(
        &self,
        max_len: u64,
        approximate: bool,
        limit: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.trim_max_len_in(max_len, approximate, limit, Commit::Wait)
    }

    /// [`trim_max_len`](Self::trim_max_len), made durable as `commit` says.
    pub(crate) fn trim_max_len_in(
        &self,
        max_len: u64,
        approximate: bool,
        limit: Option<u64>,
        commit: Commit<'_>,
    ) -> Result<u64, StoreError> {
        let removed = self.trim_uncommitted(Threshold::MaxLen(max_len), approximate, limit)?;
        self.commit(commit)?;
        Ok(removed)
    }

    /// Removes entries with IDs below `min_id` (Redis's `XTRIM MINID`); with `approximate`,
    /// only whole nodes whose entries are all below it, as [`trim_max_len`](Self::trim_max_len).
    pub fn trim_min_id(
        &self,
        min_id: StreamId,
        approximate: bool,
        limit: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.trim_min_id_in(min_id, approximate, limit, Commit::Wait)
    }

    /// [`trim_min_id`](Self::trim_min_id), made durable as `commit` says.
    pub(crate) fn trim_min_id_in(
        &self,
        min_id: StreamId,
        approximate: bool,
        limit: Option<u64>,
        commit: Commit<'_>,
    ) -> Result<u64, StoreError> {
        let removed = self.trim_uncommitted(Threshold::MinId(min_id), approximate, limit)?;
        self.commit(commit)?;
        Ok(removed)
    }

    /// Trims to `threshold`: exactly, or by whole nodes with `approximate`; at most `limit`
    /// live entries go, when one is given. Not yet durable: the caller commits.
    pub(in crate::stream) fn trim_uncommitted(
        &self,
        threshold: Threshold,
        approximate: bool,
        limit: Option<u64>,
    ) -> Result<u64, StoreError> {
        if approximate {
            return self.trim_nodes(threshold, limit);
        }
        self.nodes_follow()?;
        Ok(match threshold {
            Threshold::MaxLen(max_len) => self.log.trim_max_len(max_len, false, limit)?,
            Threshold::MinId(min_id) => self.log.trim_min_id(min_id, false, limit)?,
        })
    }

    /// Removes whole nodes from the head down to `threshold`, at most `limit` live entries.
    fn trim_nodes(&self, threshold: Threshold, limit: Option<u64>) -> Result<u64, StoreError> {
        let mut nodes = self.nodes.lock();
        let model = self.current_nodes(&mut nodes)?;
        let point = model.trim_point(&self.log.meta(), self.log.len(), threshold, limit);
        Ok(self.log.trim_before(point)?)
    }

    /// The node model, built or brought up to date with the log.
    fn current_nodes<'a>(
        &self,
        nodes: &'a mut Option<NodeModel>,
    ) -> Result<&'a mut NodeModel, StoreError> {
        let limits = *self.node_limits.read();
        match nodes {
            Some(model) => model.catch_up(&self.log, limits)?,
            None => *nodes = Some(NodeModel::build(&self.log, limits)?),
        }
        Ok(nodes.get_or_insert_default())
    }

    /// Before entries are removed, lets the node model (if one is kept) take in the entries
    /// appended until now, so that it sees the removal after them, as Redis would.
    pub(in crate::stream) fn nodes_follow(&self) -> Result<(), StoreError> {
        let mut nodes = self.nodes.lock();
        if let Some(model) = nodes.as_mut() {
            model.catch_up(&self.log, *self.node_limits.read())?;
        }
        Ok(())
    }

    /// The store's node limits (see [`Store::set_node_limits`](crate::Store::set_node_limits)).
    pub fn node_limits(&self) -> NodeLimits {
        *self.node_limits.read()
    }

    /// What Redis's radix tree of this stream's nodes would count (`XINFO STREAM`'s
    /// `radix-tree-keys` and `radix-tree-nodes`).
    pub fn radix_tree(&self) -> Result<RadixTree, StoreError> {
        let mut nodes = self.nodes.lock();
        let model = self.current_nodes(&mut nodes)?;
        let (keys, nodes) = model.radix_counts(&self.log.meta());
        Ok(RadixTree { keys, nodes })
    }

    /// Sets retention by age and size; whole sealed segments past either limit are removed.
    pub fn set_retention(&self, retention: Retention) -> Result<(), StoreError> {
        self.set_retention_in(retention, Commit::Wait)
    }

    /// [`set_retention`](Self::set_retention), made durable as `commit` says.
    pub(crate) fn set_retention_in(
        &self,
        retention: Retention,
        commit: Commit<'_>,
    ) -> Result<(), StoreError> {
        self.log
            .record_meta(crate::log::MetaEvent::SetRetention(retention))?;
        self.commit(commit)?;
        self.enforce_retention()?;
        Ok(())
    }

    /// Applies retention now; returns the number of segment files removed.
    pub fn enforce_retention(&self) -> Result<usize, StoreError> {
        Ok(self.log.enforce_retention(self.clock.now_ms())?)
    }

    /// The stream's settings.
    pub fn config(&self) -> StreamConfig {
        *self.config.read()
    }

    /// Replaces the stream's settings (durable under the store's policy).
    pub fn set_config(&self, config: StreamConfig) -> Result<(), StoreError> {
        self.set_config_in(config, Commit::Wait)
    }

    /// [`set_config`](Self::set_config), made durable as `commit` says.
    pub(crate) fn set_config_in(
        &self,
        config: StreamConfig,
        commit: Commit<'_>,
    ) -> Result<(), StoreError> {
        idempotent_append::window_config(&config)
            .validate()
            .map_err(|error| StoreError::InvalidConfig(error.to_string()))?;
        if config.max_len == Some(0) {
            return Err(StoreError::InvalidConfig(
                "MAXLEN must be at least 1 (leave it unset for no limit)".into(),
            ));
        }
        if config.max_bytes == Some(0) {
            return Err(StoreError::InvalidConfig(
                "MAXBYTES must be at least 1 (leave it unset for no limit)".into(),
            ));
        }
        if config.expire_idle_ms == Some(0) {
            return Err(StoreError::InvalidConfig(
                "the idle expiry must be at least 1 ms (leave it unset to keep the stream)".into(),
            ));
        }
        self.log
            .record_meta(crate::log::MetaEvent::SetAttributes(config.encode()))?;
        *self.config.write() = config;
        self.idempotency.lock().set_config(
            idempotent_append::window_config(&config),
            self.clock.now_ms(),
        );
        {
            let _admitted = self.admission.lock();
            self.drop_oldest_past_limits(&config)?;
        }
        self.commit(commit)?;
        self.drop_acknowledged(commit)
    }

    /// Work-queue retention: removes the entries every group has acknowledged (those before the
    /// smallest unacknowledged ID of all groups). Entries acknowledged out of order after that
    /// point stay until it passes them. A stream without groups keeps everything.
    pub(crate) fn drop_acknowledged(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        if !self.config().work_queue {
            return Ok(());
        }
        let Some(floor) = self.groups.lock().state().stream_floor() else {
            return Ok(());
        };
        self.nodes_follow()?;
        if self.log.trim_min_id(floor, false, None)? > 0 {
            self.commit(commit)?;
        }
        Ok(())
    }

    /// Under [`Durability::Always`](crate::Durability::Always), waits until everything written
    /// to the stream so far is on disk. A server calls it before answering a read, so that no
    /// client sees an entry a crash could still take back.
    pub fn ensure_durable(&self) -> Result<(), StoreError> {
        self.commit(Commit::Wait)
    }

    /// Commits everything written to the stream so far (entries, metadata, group state) as
    /// `commit` says: what every write method ends with, and what a read that must not show
    /// undurable entries asks for.
    pub(crate) fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        self.syncer.commit(self.flush_handle(), commit)?;
        Ok(())
    }

    /// Makes everything written to the stream (entries and group state) durable, whatever the
    /// policy.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.flush.flush()?;
        Ok(())
    }

    /// Periodic upkeep: a checkpoint after a segment was sealed, and retention.
    pub(crate) fn maintain(&self, timed_changes: TimedChanges) -> Result<(), StoreError> {
        if self.log.take_checkpoint_due() {
            self.log.checkpoint()?;
            self.save_idempotency()?;
        }
        if timed_changes == TimedChanges::Automatic {
            self.apply_timed_changes()?;
        }
        self.compact_groups_if_large()?;
        Ok(())
    }

    /// Retention by age and the removal of entries every group acknowledged, at the clock's
    /// time.
    pub(crate) fn apply_timed_changes(&self) -> Result<(), StoreError> {
        self.log.enforce_retention(self.clock.now_ms())?;
        self.drop_acknowledged(Commit::Wait)
    }

    /// Writes a checkpoint of the log and compacts the group journals now, whatever their
    /// size: what `BGSAVE` and `BGREWRITEAOF` ask of the server.
    pub fn compact(&self) -> Result<(), StoreError> {
        self.log.checkpoint()?;
        self.save_idempotency()?;
        let mut groups = self.groups.lock();
        groups.compact()?;
        *self.flush.groups_sync.lock() = groups.sync_handle();
        Ok(())
    }

    fn compact_groups_if_large(&self) -> Result<(), StoreError> {
        let mut groups = self.groups.lock();
        if groups.wants_compaction() {
            groups.compact()?;
            *self.flush.groups_sync.lock() = groups.sync_handle();
        }
        Ok(())
    }

    pub(crate) fn close(&self) -> Result<(), StoreError> {
        self.save_idempotency()?;
        self.log.close()?;
        self.groups.lock().sync_handle().sync()?;
        Ok(())
    }
}
