//! Consumer groups as library users see them: [`Group`] handles and [`Delivery`]s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Stream;
use super::source::{LogSource, ReadingSource};
use crate::durability::Commit;
use crate::error::StoreError;
use crate::group::durable::DurableGroups;
use crate::group::{
    Applied, AutoClaim, ClaimOptions, DeadLetter, EntrySource, GroupError, GroupPolicy,
    GroupsState, HistoryEntry, ReadNew,
};
use crate::id::StreamId;
use crate::log::Entry;
use crate::record::Headers;
use crate::stream::Message;

/// Where a new group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStart {
    /// Every entry of the stream (Redis's `0`).
    Beginning,
    /// Only entries appended from now on (Redis's `$`).
    End,
    /// Entries with IDs greater than this one.
    After(StreamId),
}

/// How long entries that the dead-letter stream refused stay pending before a read tries to
/// dead-letter them again: a full dead-letter stream is not tried by every read, and its
/// refused entries do not take up the reads' budget for undeliverable entries meanwhile.
pub const DEAD_LETTER_RETRY_MS: u64 = 1_000;

/// How long a blocking read sleeps at most before looking again for pending entries whose ack
/// deadline passed (new entries wake it at once).
const REDELIVERY_RECHECK: Duration = Duration::from_millis(250);

/// A consumer group of a stream: every group sees every entry; the consumers inside a group
/// compete for them.
///
/// ```
/// use std::time::Duration;
/// use weir::{GroupStart, Message, Store};
/// use weir::group::GroupPolicy;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = Store::open(dir.path()).unwrap();
/// let jobs = store.stream(b"jobs").unwrap();
/// let workers = jobs.create_group(b"workers", GroupStart::Beginning, GroupPolicy::default()).unwrap();
/// jobs.append(Message::new("resize photo 17")).unwrap();
///
/// let batch = workers.read(b"worker-1", 10).unwrap();
/// assert_eq!(batch[0].body(), b"resize photo 17");
/// batch[0].ack().unwrap();
/// assert!(workers.read_blocking(b"worker-1", 10, Duration::from_millis(10)).unwrap().is_empty());
/// ```
#[derive(Clone)]
pub struct Group {
    stream: Arc<Stream>,
    name: Arc<[u8]>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("stream", &String::from_utf8_lossy(&self.stream.name()))
            .field("name", &String::from_utf8_lossy(&self.name))
            .finish()
    }
}

/// An entry handed to a consumer: acknowledge it once processed, or give it back.
#[derive(Debug, Clone)]
pub struct Delivery {
    group: Group,
    consumer: Arc<[u8]>,
    entry: Entry,
    /// Times the entry was delivered to this group, this delivery included.
    pub deliveries: u32,
    /// For a redelivery: milliseconds since the previous delivery.
    pub idle_ms: Option<u64>,
}

impl Delivery {
    /// The entry's ID.
    pub fn id(&self) -> StreamId {
        self.entry.id
    }

    /// The entry, read in place from the log.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The entry's body.
    pub fn body(&self) -> &[u8] {
        self.entry.body()
    }

    /// The entry's headers.
    pub fn headers(&self) -> Headers<'_> {
        self.entry.headers()
    }

    /// Acknowledges the entry: it leaves the group's pending list for good. Returns whether it
    /// was still pending (it may have been claimed and acknowledged by another consumer).
    pub fn ack(&self) -> Result<bool, StoreError> {
        Ok(self.group.ack(&[self.entry.id])? == 1)
    }

    /// Gives the entry back for redelivery to any consumer of the group after `delay`. Does
    /// nothing (and returns false) when the entry is no longer this consumer's: it was
    /// acknowledged, or redelivered to someone else after its ack deadline.
    pub fn nack(&self, delay: Duration) -> Result<bool, StoreError> {
        Ok(self
            .group
            .nack_as(Some(&self.consumer), &[self.entry.id], delay)?
            == 1)
    }

    /// The consumer the entry was handed to.
    pub fn consumer(&self) -> &[u8] {
        &self.consumer
    }

    /// The group the entry was handed out by.
    pub fn group(&self) -> &Group {
        &self.group
    }
}

/// An entry of a consumer's own pending list, read again.
#[derive(Debug, Clone)]
pub enum PendingDelivery {
    /// The entry, delivered once more.
    Live(Delivery),
    /// The entry was deleted from the stream after it was delivered; it stays pending.
    Deleted(StreamId),
}

/// Entries a claim moved to a consumer.
#[derive(Debug, Clone, Default)]
pub struct Claimed {
    /// The entries now owned by the consumer.
    pub deliveries: Vec<Delivery>,
    /// Pending entries dropped because the stream no longer holds them.
    pub deleted: Vec<StreamId>,
    /// For an auto-claim: where the next call should start (`0-0` when the scan is complete).
    pub next: StreamId,
}

impl Stream {
    /// Creates a consumer group; fails with [`ErrorKind::GroupExists`](crate::ErrorKind) if
    /// one by that name exists (see [`ensure_group`](Self::ensure_group)).
    pub fn create_group(
        self: &Arc<Self>,
        name: impl AsRef<[u8]>,
        start: GroupStart,
        policy: GroupPolicy,
    ) -> Result<Group, StoreError> {
        let name = name.as_ref();
        policy.validate()?;
        let position = match start {
            GroupStart::Beginning => StreamId::MIN,
            GroupStart::End => self.log.last_id(),
            GroupStart::After(id) => id,
        };
        self.groups
            .lock()
            .apply(|state| state.create_group_with(name, position, None, policy))?;
        self.commit(Commit::Wait)?;
        Ok(self.group_handle(name))
    }

    /// The group called `name`, created from `start` with `policy` if it does not exist, as a
    /// Kafka consumer subscribes or a NATS consumer is created-or-updated: a program can call
    /// it at every start. An existing group keeps its position and policy
    /// ([`Group::set_policy`] changes the policy).
    pub fn ensure_group(
        self: &Arc<Self>,
        name: impl AsRef<[u8]>,
        start: GroupStart,
        policy: GroupPolicy,
    ) -> Result<Group, StoreError> {
        let name = name.as_ref();
        if let Ok(group) = self.group(name) {
            return Ok(group);
        }
        match self.create_group(name, start, policy) {
            // Created by another thread in between.
            Err(error) if error.kind() == crate::ErrorKind::GroupExists => self.group(name),
            created => created,
        }
    }

    /// Creates a consumer group positioned after `last_delivered` with a read counter
    /// (`entries_read`, `None` when unknown), as Redis's `XGROUP CREATE … ENTRIESREAD` does.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = weir::Store::open(dir.path()).unwrap();
    /// let stream = store.stream(b"s").unwrap();
    /// stream.append(weir::Message::new("a")).unwrap();
    /// let id = stream.last_id();
    /// stream.create_group_at(b"g", id, Some(1), Default::default()).unwrap();
    /// let read = stream.inspect_groups(|state, log| state.group_info(log, b"g").unwrap().entries_read);
    /// assert_eq!(read, Some(1));
    /// ```
    pub fn create_group_at(
        self: &Arc<Self>,
        name: &[u8],
        last_delivered: StreamId,
        entries_read: Option<u64>,
        policy: GroupPolicy,
    ) -> Result<Group, StoreError> {
        self.create_group_at_in(name, last_delivered, entries_read, policy, Commit::Wait)
    }

    /// [`create_group_at`](Self::create_group_at), made durable as `commit` says.
    pub(crate) fn create_group_at_in(
        self: &Arc<Self>,
        name: &[u8],
        last_delivered: StreamId,
        entries_read: Option<u64>,
        policy: GroupPolicy,
        commit: Commit<'_>,
    ) -> Result<Group, StoreError> {
        policy.validate()?;
        self.groups
            .lock()
            .apply(|state| state.create_group_with(name, last_delivered, entries_read, policy))?;
        self.commit(commit)?;
        self.group(name)
    }

    /// The group called `name`.
    pub fn group(self: &Arc<Self>, name: impl AsRef<[u8]>) -> Result<Group, StoreError> {
        let name = name.as_ref();
        if !self.groups.lock().state().has_group(name) {
            return Err(GroupError::NoGroup {
                group: name.to_vec(),
            }
            .into());
        }
        Ok(self.group_handle(name))
    }

    fn group_handle(self: &Arc<Self>, name: &[u8]) -> Group {
        Group {
            stream: Arc::clone(self),
            name: name.into(),
        }
    }

    /// Destroys a group and its pending list; returns whether it existed.
    pub fn destroy_group(&self, name: impl AsRef<[u8]>) -> Result<bool, StoreError> {
        self.destroy_group_in(name.as_ref(), Commit::Wait)
    }

    /// [`destroy_group`](Self::destroy_group), made durable as `commit` says.
    pub(crate) fn destroy_group_in(
        &self,
        name: &[u8],
        commit: Commit<'_>,
    ) -> Result<bool, StoreError> {
        let existed = self
            .groups
            .lock()
            .apply(|state| Ok(state.destroy_group(name)))?;
        self.dead_letter_refusals.lock().remove(name);
        self.activity.forget(name);
        self.commit(commit)?;
        Ok(existed)
    }

    /// The names of the stream's groups.
    pub fn group_names(&self) -> Vec<Vec<u8>> {
        let groups = self.groups.lock();
        groups.state().group_names().map(<[u8]>::to_vec).collect()
    }

    /// Runs a query over the groups' state (pending lists, group and consumer information).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = weir::Store::open(dir.path()).unwrap();
    /// # let stream = store.stream(b"s").unwrap();
    /// # stream.create_group(b"g", weir::GroupStart::Beginning, Default::default()).unwrap();
    /// let lag = stream.inspect_groups(|state, log| state.group_info(log, b"g").map(|info| info.lag));
    /// assert_eq!(lag, Ok(Some(0)));
    /// ```
    pub fn inspect_groups<T>(&self, query: impl FnOnce(&GroupsState, &dyn EntrySource) -> T) -> T {
        let groups = self.groups.lock();
        query(groups.state(), &LogSource(&self.log))
    }

    /// Appends dead letters to the group's dead-letter stream, then removes them from the
    /// pending list. Runs under the group lock, so no other read hands them out meanwhile.
    ///
    /// A dead-letter stream that refuses them (full under `DISCARD new`, or failing) does not
    /// fail the read that met them: the refused entries stay pending as they are, due again
    /// after [`DEAD_LETTER_RETRY_MS`], and the refusal is logged and shown in the group's
    /// [`Backlog`](super::Backlog). Only a failure to journal the group's events is an error.
    fn dead_letter(
        &self,
        groups: &mut DurableGroups,
        group: &[u8],
        letters: &[DeadLetter],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let policy = groups
            .state()
            .group_info(&LogSource(&self.log), group)?
            .policy
            .clone();
        let Some(target) = policy.dead_letter else {
            return Ok(());
        };
        let (sent, refusal) = match self.send_dead_letters(&target, group, letters) {
            Ok(sent) => (sent, None),
            Err((sent, error)) => (sent, Some(error)),
        };
        if !sent.is_empty() {
            groups.apply(|state| state.commit_dead_letters(group, &sent))?;
            self.activity.dead_lettered(group, sent.len());
        }
        let mut refusals = self.dead_letter_refusals.lock();
        let Some(error) = refusal else {
            refusals.remove(group);
            return Ok(());
        };
        let waiting: Vec<StreamId> = letters[sent.len()..].iter().map(|l| l.id).collect();
        let group_name = String::from_utf8_lossy(group);
        let key = format!("{group_name}\0{error}");
        if let Some(note) = self.dead_letter_log.check(&key, now_ms).note() {
            tracing::warn!(
                stream = %String::from_utf8_lossy(&self.public_name()),
                group = %group_name,
                entries = waiting.len(),
                %error,
                "the dead-letter stream refused entries: they stay pending and are tried again{note}"
            );
        }
        refusals.insert(
            group.to_vec(),
            format!(
                "{} entries wait for the dead-letter stream: {error}",
                waiting.len()
            ),
        );
        drop(refusals);
        groups.apply(|state| state.nack(group, None, &waiting, DEAD_LETTER_RETRY_MS, now_ms))?;
        Ok(())
    }

    /// Appends the dead letters, in order, to the stream called `target` and makes them
    /// durable. Returns the IDs taken care of (appended, or gone from the log so that there is
    /// nothing to append), a prefix of `letters`; on a refusal, that prefix with the error.
    fn send_dead_letters(
        &self,
        target: &[u8],
        group: &[u8],
        letters: &[DeadLetter],
    ) -> Result<Vec<StreamId>, (Vec<StreamId>, StoreError)> {
        let resolver = self
            .resolver
            .upgrade()
            .ok_or((Vec::new(), StoreError::Closed))?;
        let target = resolver
            .resolve(target)
            .map_err(|error| (Vec::new(), error))?;
        let mut sent = Vec::with_capacity(letters.len());
        let mut appended = 0;
        let mut refusal = None;
        for letter in letters {
            let written = match self.log.read(letter.offset) {
                Ok(Some(entry)) => {
                    let message = self.dead_letter_message(&entry, group, letter.deliveries);
                    appended += 1;
                    target.write(std::slice::from_ref(&message), |_| {})
                }
                Ok(None) => Ok(()),
                Err(error) => Err(error.into()),
            };
            if let Err(error) = written {
                refusal = Some(error);
                break;
            }
            sent.push(letter.id);
        }
        // Whatever the policy, the dead letters reach the disk before the record that takes
        // them out of the pending list can; if they may not have, none counts as sent.
        if appended > 0
            && let Err(error) = target.flush()
        {
            return Err((Vec::new(), error));
        }
        match refusal {
            None => Ok(sent),
            Some(error) => Err((sent, error)),
        }
    }

    fn dead_letter_message(&self, entry: &Entry, group: &[u8], deliveries: u32) -> Message {
        let mut message = Message::new(Bytes::copy_from_slice(entry.body()));
        for (name, value) in entry.headers() {
            message = message.header(Bytes::copy_from_slice(name), Bytes::copy_from_slice(value));
        }
        message
            .header("dead-letter-stream", self.public_name())
            .header("dead-letter-id", entry.id.to_string())
            .header("dead-letter-group", Bytes::copy_from_slice(group))
            .header("dead-letter-deliveries", deliveries.to_string())
    }
}

impl Group {
    /// The group's name.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The stream the group reads.
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// Hands up to `max` entries to `consumer`: entries due for redelivery first (ack deadline
    /// passed, or negatively acknowledged), then new ones. Returns at once, possibly empty.
    pub fn read(&self, consumer: &[u8], max: usize) -> Result<Vec<Delivery>, StoreError> {
        self.read_with(consumer, ReadNew::count(max))
    }

    /// [`read`](Self::read) with every option of `XREADGROUP … >`.
    pub fn read_with(
        &self,
        consumer: &[u8],
        request: ReadNew,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.read_with_in(consumer, request, Commit::Wait)
    }

    /// [`read_with`](Self::read_with), made durable as `commit` says.
    pub(crate) fn read_with_in(
        &self,
        consumer: &[u8],
        request: ReadNew,
        commit: Commit<'_>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let deliveries = self.read_uncommitted(consumer, request)?;
        self.stream.commit(commit)?;
        Ok(deliveries)
    }

    fn read_uncommitted(
        &self,
        consumer: &[u8],
        request: ReadNew,
    ) -> Result<Vec<Delivery>, StoreError> {
        let stream = &self.stream;
        let now_ms = stream.clock.now_ms();
        let source = ReadingSource::new(&stream.log);
        let outcome = {
            let mut groups = stream.groups.lock();
            let outcome = groups
                .apply(|state| state.read_new(&source, &self.name, consumer, request, now_ms))?;
            if !outcome.dead_letters.is_empty() {
                stream.dead_letter(&mut groups, &self.name, &outcome.dead_letters, now_ms)?;
            }
            outcome
        };
        stream.activity.handed_out(&self.name, &outcome.entries);
        let mut deliveries = Vec::with_capacity(outcome.entries.len());
        for delivered in &outcome.entries {
            if let Some(entry) = source.take(delivered.offset)? {
                deliveries.push(self.delivery(
                    consumer,
                    entry,
                    delivered.deliveries,
                    delivered.idle_ms,
                ));
            }
        }
        Ok(deliveries)
    }

    fn delivery(
        &self,
        consumer: &[u8],
        entry: Entry,
        deliveries: u32,
        idle_ms: Option<u64>,
    ) -> Delivery {
        Delivery {
            group: self.clone(),
            consumer: consumer.into(),
            entry,
            deliveries,
            idle_ms,
        }
    }

    /// Like [`read`](Self::read), but waits up to `timeout` for entries to arrive. New entries
    /// wake it at once; entries whose ack deadline passes are noticed within a quarter second.
    pub fn read_blocking(
        &self,
        consumer: &[u8],
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.stream.appended.generation();
            let deliveries = self.read(consumer, max)?;
            let now = Instant::now();
            if !deliveries.is_empty() || now >= deadline {
                return Ok(deliveries);
            }
            self.stream
                .appended
                .wait_past(seen, deadline.min(now + REDELIVERY_RECHECK));
        }
    }

    /// Waits, without blocking a thread, until at least one entry can be handed to `consumer`.
    /// Wrap it in `tokio::time::timeout` to bound the wait: the read is cancel-safe. Entries are
    /// taken only when the read returns them, so under
    /// [`Durability::Always`](crate::Durability::Always) that last step waits for their flush
    /// on the calling thread, as [`read`](Self::read) does.
    pub async fn read_async(
        &self,
        consumer: &[u8],
        max: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        loop {
            let seen = self.stream.appended.generation();
            let deliveries = self.read_uncommitted(consumer, ReadNew::count(max))?;
            if !deliveries.is_empty() {
                // No await between taking the entries and returning them: a read cancelled
                // there would leave them pending for a caller that never received them.
                self.stream.commit(Commit::Wait)?;
                return Ok(deliveries);
            }
            self.stream
                .syncer
                .commit_async(self.stream.flush_handle())
                .await?;
            tokio::select! {
                () = self.stream.appended.changed_past(seen) => {}
                () = tokio::time::sleep(REDELIVERY_RECHECK) => {}
            }
        }
    }

    /// Delivers again `consumer`'s own pending entries with IDs after `after` (Redis's
    /// `XREADGROUP` with an explicit ID): each one's delivery count goes up.
    pub fn read_pending(
        &self,
        consumer: &[u8],
        after: StreamId,
        max: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        self.read_pending_in(consumer, after, max, Commit::Wait)
    }

    /// [`read_pending`](Self::read_pending), made durable as `commit` says.
    pub(crate) fn read_pending_in(
        &self,
        consumer: &[u8],
        after: StreamId,
        max: usize,
        commit: Commit<'_>,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let history = self.operate(commit, |state, log, group, now_ms| {
            state.read_pending(log, group, consumer, after, max, now_ms)
        })?;
        let stream = &self.stream;
        let mut out = Vec::with_capacity(history.len());
        for item in history {
            match item {
                HistoryEntry::Live(delivered) => match stream.log.read(delivered.offset)? {
                    Some(entry) => out.push(PendingDelivery::Live(self.delivery(
                        consumer,
                        entry,
                        delivered.deliveries,
                        delivered.idle_ms,
                    ))),
                    None => out.push(PendingDelivery::Deleted(delivered.id)),
                },
                HistoryEntry::Deleted(id) => out.push(PendingDelivery::Deleted(id)),
            }
        }
        Ok(out)
    }

    /// Acknowledges entries; returns how many were pending. Durable before it returns under
    /// [`Durability::Always`](crate::Durability::Always).
    pub fn ack(&self, ids: &[StreamId]) -> Result<usize, StoreError> {
        self.ack_in(ids, Commit::Wait)
    }

    /// [`ack`](Self::ack), made durable as `commit` says.
    pub(crate) fn ack_in(&self, ids: &[StreamId], commit: Commit<'_>) -> Result<usize, StoreError> {
        let count = self.operate(commit, |state, _, group, _| state.ack(group, ids))?;
        if count > 0 {
            self.stream.drop_acknowledged(commit)?;
            // Room under a group's pending cap: wake readers waiting for it.
            self.stream.appended.notify();
        }
        Ok(count)
    }

    /// Gives entries back for redelivery to any consumer after `delay` (zero: at once); returns
    /// how many were pending.
    pub fn nack(&self, ids: &[StreamId], delay: Duration) -> Result<usize, StoreError> {
        self.nack_as(None, ids, delay)
    }

    fn nack_as(
        &self,
        owner: Option<&[u8]>,
        ids: &[StreamId],
        delay: Duration,
    ) -> Result<usize, StoreError> {
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let count = self.operate(Commit::Wait, |state, _, group, now_ms| {
            state.nack(group, owner, ids, delay_ms, now_ms)
        })?;
        // A released entry may be due now: wake readers waiting for something to hand out.
        self.stream.appended.notify();
        Ok(count)
    }

    /// Moves pending entries to `consumer` (Redis's `XCLAIM` and its options).
    pub fn claim(
        &self,
        consumer: &[u8],
        ids: &[StreamId],
        options: ClaimOptions,
    ) -> Result<Claimed, StoreError> {
        self.claim_in(consumer, ids, options, Commit::Wait)
    }

    /// [`claim`](Self::claim), made durable as `commit` says.
    pub(crate) fn claim_in(
        &self,
        consumer: &[u8],
        ids: &[StreamId],
        options: ClaimOptions,
        commit: Commit<'_>,
    ) -> Result<Claimed, StoreError> {
        let outcome = self.operate(commit, |state, log, group, now_ms| {
            state.claim(log, group, consumer, ids, options, now_ms)
        })?;
        Ok(Claimed {
            deliveries: self.read_deliveries(consumer, &outcome.claimed)?,
            deleted: outcome.deleted,
            next: StreamId::MIN,
        })
    }

    /// Scans the pending list from a cursor and moves idle entries to `consumer` (Redis's
    /// `XAUTOCLAIM`).
    pub fn auto_claim(&self, consumer: &[u8], request: AutoClaim) -> Result<Claimed, StoreError> {
        self.auto_claim_in(consumer, request, Commit::Wait)
    }

    /// [`auto_claim`](Self::auto_claim), made durable as `commit` says.
    pub(crate) fn auto_claim_in(
        &self,
        consumer: &[u8],
        request: AutoClaim,
        commit: Commit<'_>,
    ) -> Result<Claimed, StoreError> {
        let outcome = self.operate(commit, |state, log, group, now_ms| {
            state.auto_claim(log, group, consumer, request, now_ms)
        })?;
        Ok(Claimed {
            deliveries: self.read_deliveries(consumer, &outcome.claimed)?,
            deleted: outcome.deleted,
            next: outcome.next,
        })
    }

    fn read_deliveries(
        &self,
        consumer: &[u8],
        claimed: &[crate::group::Handout],
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut out = Vec::with_capacity(claimed.len());
        for delivered in claimed {
            if let Some(entry) = self.stream.log.read(delivered.offset)? {
                out.push(self.delivery(consumer, entry, delivered.deliveries, delivered.idle_ms));
            }
        }
        Ok(out)
    }

    /// Creates a consumer; returns whether it was new.
    pub fn create_consumer(&self, consumer: &[u8]) -> Result<bool, StoreError> {
        self.create_consumer_in(consumer, Commit::Wait)
    }

    /// [`create_consumer`](Self::create_consumer), made durable as `commit` says.
    pub(crate) fn create_consumer_in(
        &self,
        consumer: &[u8],
        commit: Commit<'_>,
    ) -> Result<bool, StoreError> {
        self.operate(commit, |state, _, group, now_ms| {
            state.create_consumer(group, consumer, now_ms)
        })
    }

    /// Deletes a consumer; returns how many pending entries it held (they are dropped).
    pub fn delete_consumer(&self, consumer: &[u8]) -> Result<usize, StoreError> {
        self.delete_consumer_in(consumer, Commit::Wait)
    }

    /// [`delete_consumer`](Self::delete_consumer), made durable as `commit` says.
    pub(crate) fn delete_consumer_in(
        &self,
        consumer: &[u8],
        commit: Commit<'_>,
    ) -> Result<usize, StoreError> {
        self.operate(commit, |state, _, group, _| {
            state.delete_consumer(group, consumer)
        })
    }

    /// Moves the group's last-delivered ID (Redis's `XGROUP SETID`, with `ENTRIESREAD`).
    pub fn set_position(
        &self,
        last_delivered: StreamId,
        entries_read: Option<u64>,
    ) -> Result<(), StoreError> {
        self.set_position_in(last_delivered, entries_read, Commit::Wait)
    }

    /// [`set_position`](Self::set_position), made durable as `commit` says.
    pub(crate) fn set_position_in(
        &self,
        last_delivered: StreamId,
        entries_read: Option<u64>,
        commit: Commit<'_>,
    ) -> Result<(), StoreError> {
        self.operate(commit, |state, _, group, _| {
            state.set_id(group, last_delivered, entries_read)
        })
    }

    /// Replaces the group's policy (ack deadline, delivery limit, dead-letter stream, pending
    /// cap).
    pub fn set_policy(&self, policy: GroupPolicy) -> Result<(), StoreError> {
        self.set_policy_in(policy, Commit::Wait)
    }

    /// [`set_policy`](Self::set_policy), made durable as `commit` says.
    pub(crate) fn set_policy_in(
        &self,
        policy: GroupPolicy,
        commit: Commit<'_>,
    ) -> Result<(), StoreError> {
        policy.validate()?;
        self.operate(commit, |state, _, group, _| state.set_policy(group, policy))
    }

    /// Runs one operation on the group's state (with the log, the group's name and the time),
    /// journals its events, and commits them as `commit` says.
    fn operate<T>(
        &self,
        commit: Commit<'_>,
        operation: impl FnOnce(
            &mut GroupsState,
            &LogSource<'_>,
            &[u8],
            u64,
        ) -> Result<Applied<T>, GroupError>,
    ) -> Result<T, StoreError> {
        let stream = &self.stream;
        let now_ms = stream.clock.now_ms();
        let output = stream
            .groups
            .lock()
            .apply(|state| operation(state, &LogSource(&stream.log), &self.name, now_ms))?;
        stream.commit(commit)?;
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[test]
    fn groups_start_with_the_given_read_counter() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stream = store.stream(b"s").unwrap();
        let policy = crate::GroupPolicy {
            max_deliver: Some(3),
            ..Default::default()
        };
        stream
            .create_group_at(b"g", crate::StreamId::new(5, 0), Some(4), policy.clone())
            .unwrap();
        let (read, kept) = stream.inspect_groups(|state, log| {
            let info = state.group_info(log, b"g").unwrap();
            (info.entries_read, info.policy.clone())
        });
        assert_eq!((read, kept), (Some(4), policy));
        assert!(
            stream
                .create_group_at(b"g", crate::StreamId::MIN, None, Default::default())
                .is_err()
        );
    }
}
