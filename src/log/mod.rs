//! The log of one stream: a sequence of segments, their sparse indexes, the metadata of what was
//! deleted or trimmed, recovery, retention and flushing.
//!
//! Files in a log's directory (byte layouts in `storage-format.md`):
//!
//! * `<20-digit base offset>.seg`: segments, created by [`Segment::create`];
//! * `<20-digit base offset>.index`: the sparse index of a sealed segment, and of the active one
//!   up to the recovery point of the last checkpoint (a cache: rebuilt from the segment when
//!   missing, damaged or stale; only the active segment's is synced, so that a crash recovery
//!   can start its scan at the recovery point);
//! * `checkpoint`: a snapshot of the metadata plus the recovery point (everything before it is
//!   known to be on disk), replaced atomically;
//! * `meta.<generation>.journal`: metadata changes since the checkpoint.
//!
//! Concurrency: one writer at a time (a mutex) appends and publishes; readers take the tip
//! (next offset, last ID) and only read records below it, from segments they hold by `Arc`, so a
//! reader never waits for the writer's I/O and the writer never waits for readers.

#[cfg(test)]
mod fault_tests;
mod index;
mod meta;
mod prefault;
mod recovery;
mod rollback;
mod stored;

use std::ops::{Bound, ControlFlow, Range};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

pub use index::{IndexEntry, IndexError, LastRecord, SegmentIndex, layout as index_layout};
pub use meta::{Checkpoint, MetaEvent, MetaState, RecoveryPoint, Retention};
pub use recovery::{LostRange, RebuiltHeader, RecoveryReport, TornTail};
pub(crate) use rollback::roll_back;

use crate::durability::{Flush, FlushError};
use crate::fs;
use crate::id::StreamId;
use crate::journal::{self, FileKind, Journal, JournalError, JournalSync};
use crate::record::{self, EncodeError, IdempotencyKey, NewRecord, RecordView};
use crate::segment::{self, ScanItem, Segment, SegmentAppender, SegmentError, SegmentHeader};
use crate::undo::{self, Target, Undo, UndoError};
use prefault::Prefaulted;

/// Kind tag of meta journals.
pub const META_JOURNAL_KIND: FileKind = FileKind(*b"LMET");
/// Kind tag of checkpoint snapshots.
pub const CHECKPOINT_KIND: FileKind = FileKind(*b"LCKP");
/// File name of a log's checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// Durable bytes of the active segment beyond the last checkpoint after which another is due,
/// bounding what a crash recovery rescans; a checkpoint costs a few small-file fsyncs, so at
/// most two a second (the store's maintenance pace) while a stream takes writes.
pub const CHECKPOINT_AFTER_BYTES: u64 = 4 << 20;

/// Sizing of a log's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Segments grow by doubling from `initial_segment_bytes` up to this size.
    pub max_segment_bytes: u64,
    /// Size of a new log's first segment: small, so that many small streams stay cheap.
    pub initial_segment_bytes: u64,
    /// One index point per this many bytes of records.
    pub index_interval_bytes: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            max_segment_bytes: 64 << 20,
            initial_segment_bytes: 256 << 10,
            index_interval_bytes: 4096,
        }
    }
}

/// Errors of the log layer.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Undo(#[from] UndoError),
    /// An operating-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An explicit ID is not greater than the stream's last ID.
    #[error("the ID specified is equal or smaller than the stream's last ID {last}")]
    IdTooSmall { last: StreamId },
    /// `0-0` was given as an entry ID.
    #[error("the ID specified must be greater than 0-0")]
    IdZero,
    /// The stream's last ID is the maximum ID: no automatic ID is left.
    #[error("the stream has exhausted the last possible ID, unable to add more items")]
    IdExhausted,
    /// The files on disk contradict each other in a way recovery cannot repair alone.
    #[error("{path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

impl LogError {
    fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LogError + 'a {
        move |source| LogError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How an appended entry gets its ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSpec {
    /// Generated from the clock, as Redis's `*`.
    Auto,
    /// Exactly this ID; it must exceed the stream's last ID.
    Explicit(StreamId),
    /// `ms-*`: this millisecond with the next free sequence number.
    AutoSeq(u64),
}

/// An entry to append.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a, H: AsRef<[u8]>> {
    pub id: IdSpec,
    pub headers: &'a [(H, H)],
    pub body: &'a [u8],
    pub idempotency: Option<IdempotencyKey<'a>>,
}

/// Something that can be appended as an entry: a [`NewEntry`], or a higher layer's message
/// lending its parts, so that appending a batch of messages builds no vector of entries first.
pub trait AsEntry {
    /// The type of header names and values.
    type Field: AsRef<[u8]>;
    /// The entry's parts, borrowed.
    fn as_entry(&self) -> NewEntry<'_, Self::Field>;
}

impl<H: AsRef<[u8]>> AsEntry for NewEntry<'_, H> {
    type Field = H;

    fn as_entry(&self) -> NewEntry<'_, H> {
        NewEntry {
            id: self.id,
            headers: self.headers,
            body: self.body,
            idempotency: self.idempotency,
        }
    }
}

/// Where an appended entry went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub offset: u64,
    pub id: StreamId,
}

/// An entry read from the log. Holds its segment alive; the bytes are read in place, not copied.
#[derive(Clone)]
pub struct Entry {
    segment: Arc<Segment>,
    pos: usize,
    pub offset: u64,
    pub id: StreamId,
    pub timestamp_ms: u64,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("offset", &self.offset)
            .field("id", &self.id)
            .field("timestamp_ms", &self.timestamp_ms)
            .finish()
    }
}

impl Entry {
    /// The record, borrowed from the segment's memory map.
    pub fn record(&self) -> RecordView<'_> {
        let bytes = &self.segment.bytes()[self.pos..];
        match record::decode_verified(bytes) {
            Ok(view) => view,
            Err(error) => unreachable!("record at {} verified when read: {error}", self.pos),
        }
    }

    /// The entry's body.
    pub fn body(&self) -> &[u8] {
        self.record().body
    }

    /// The entry's headers, in order.
    pub fn headers(&self) -> record::Headers<'_> {
        self.record().headers()
    }

    /// The whole record as [`Bytes`] over the segment's memory map: no copy is made, and the
    /// segment stays mapped while any clone or slice of it lives.
    pub fn record_bytes(&self) -> Bytes {
        let len = self.record().padded_len;
        Bytes::from_owner(RecordSlice {
            segment: Arc::clone(&self.segment),
            start: self.pos,
            len,
        })
    }

    /// The headers as shared slices of [`record_bytes`](Self::record_bytes), in order.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = weir::Store::open(dir.path()).unwrap();
    /// let stream = store.stream(b"s").unwrap();
    /// stream.append(weir::Message::new("body").header("field", "value")).unwrap();
    /// let entry = stream.read(0).unwrap().unwrap();
    /// let headers = entry.header_bytes();
    /// assert_eq!(headers, vec![("field".into(), "value".into())]);
    /// // The value is the entry's own bytes in the map, not a copy.
    /// let (_, in_map) = entry.headers().next().unwrap();
    /// assert_eq!(headers[0].1.as_ptr(), in_map.as_ptr());
    /// assert_eq!(entry.body_bytes(), "body");
    /// ```
    pub fn header_bytes(&self) -> Vec<(Bytes, Bytes)> {
        let whole = self.record_bytes();
        let record = self.record();
        record
            .headers()
            .map(|(name, value)| (slice_of(&whole, name), slice_of(&whole, value)))
            .collect()
    }

    /// The body as a shared slice of [`record_bytes`](Self::record_bytes).
    pub fn body_bytes(&self) -> Bytes {
        slice_of(&self.record_bytes(), self.record().body)
    }
}

/// A record's bytes inside a mapped segment, owned by reference count.
struct RecordSlice {
    segment: Arc<Segment>,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for RecordSlice {
    fn as_ref(&self) -> &[u8] {
        &self.segment.bytes()[self.start..self.start + self.len]
    }
}

/// `part` (a sub-slice of the bytes `whole` shares) as a slice of `whole`.
fn slice_of(whole: &Bytes, part: &[u8]) -> Bytes {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    debug_assert!(
        start + part.len() <= whole.len(),
        "part is not inside the record"
    );
    whole.slice(start..start + part.len())
}

#[derive(Debug, Clone)]
struct Slot {
    segment: Arc<Segment>,
    index: Arc<RwLock<SegmentIndex>>,
}

impl Slot {
    fn base(&self) -> u64 {
        self.segment.base_offset()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tip {
    next_offset: u64,
    last_id: StreamId,
}

impl Tip {
    /// The tip of a log that never had an entry.
    const EMPTY: Tip = Tip {
        next_offset: 0,
        last_id: StreamId::MIN,
    };
}

#[derive(Debug)]
struct Writer {
    slot: Slot,
    appender: SegmentAppender,
    unflushed: Vec<(Arc<Segment>, usize)>,
    /// What was asked to be faulted in ahead of the appender in the active segment.
    prefaulted: Prefaulted,
    /// The tip as this writer last published it, read without taking `Log::tip`'s lock: only
    /// the writer changes the tip.
    tip: Tip,
}

#[derive(Debug)]
struct MetaJournal {
    journal: Journal,
    sync: JournalSync,
}

/// The log of one stream.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    options: LogOptions,
    slots: RwLock<Vec<Slot>>,
    writer: Mutex<Writer>,
    tip: RwLock<Tip>,
    meta: RwLock<MetaState>,
    journal: Mutex<MetaJournal>,
    durable: Mutex<RecoveryPoint>,
    damage_seen: Mutex<Vec<LostRange>>,
    /// Offsets reads found lost to damage and not yet recorded as deleted: recorded once the
    /// read has let go of the metadata ([`record_read_damage`](Self::record_read_damage)).
    damage_unrecorded: Mutex<Vec<Range<u64>>>,
    checkpoint_due: std::sync::atomic::AtomicBool,
    /// The recovery point of the last checkpoint written (or recovered from at open).
    checkpointed: Mutex<RecoveryPoint>,
    /// Held for a whole flush: a second flusher must not return while the first is still
    /// writing out ranges the second found already taken.
    flush_lock: Mutex<()>,
    /// A segment was created since the directory was last synced: its name is not durable yet.
    names_unsynced: std::sync::atomic::AtomicBool,
}

/// Where a range read starts or ends.
pub type IdBound = Bound<StreamId>;

impl Log {
    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The offset the next entry will get.
    pub fn next_offset(&self) -> u64 {
        self.tip.read().next_offset
    }

    /// The stream's last ID: the larger of the last entry's ID and one set by [`set_last_id`].
    pub fn last_id(&self) -> StreamId {
        let tip = *self.tip.read();
        tip.last_id.max(self.meta.read().last_id_floor)
    }

    /// The largest ID ever deleted (Redis's `max-deleted-entry-id`).
    pub fn max_deleted_id(&self) -> StreamId {
        self.meta.read().max_deleted_id
    }

    /// A copy of the metadata.
    pub fn meta(&self) -> MetaState {
        self.meta.read().clone()
    }

    /// Live entries (appended, not trimmed or deleted).
    pub fn len(&self) -> u64 {
        let next = self.next_offset();
        let meta = self.meta.read();
        next.saturating_sub(meta.first_offset) - meta.deleted.len() as u64
    }

    /// Whether the log has no live entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries ever appended (Redis's `entries-added`).
    pub fn entries_added(&self) -> u64 {
        let next = self.next_offset();
        self.meta.read().entries_added(next)
    }

    /// Bytes of the log's segment files.
    pub fn disk_bytes(&self) -> u64 {
        self.slots
            .read()
            .iter()
            .map(|slot| slot.segment.capacity() as u64)
            .sum()
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.slots.read().len()
    }

    /// The newest recovery point known to be on disk: the one the last [`flush`](Self::flush)
    /// returned, or at open the point recovery started from. Records before it survive any
    /// crash; those after it may not (crash tests damage only what lies beyond it).
    pub fn durable_point(&self) -> RecoveryPoint {
        *self.durable.lock()
    }

    /// Damaged records met by reads since open (bit rot found after recovery).
    pub fn damage_seen(&self) -> Vec<LostRange> {
        self.damage_seen.lock().clone()
    }

    /// Appends entries as one batch: IDs are checked for the whole batch before anything is
    /// written, so a rejected batch changes nothing. Not durable until flushed.
    pub fn append<E: AsEntry>(
        &self,
        entries: &[E],
        now_ms: u64,
    ) -> Result<Vec<Appended>, LogError> {
        let mut placed = Vec::with_capacity(entries.len());
        self.append_with(entries, now_ms, |appended| placed.push(appended))?;
        Ok(placed)
    }

    /// [`append`](Self::append), handing each entry's place to `on_placed` as it is written
    /// instead of collecting them: a caller appending one entry needs no vector. On an error,
    /// the places already handed over are still taken (a full disk at a segment roll keeps the
    /// records before it). `on_placed` runs under the log's writer lock: keep it short.
    pub fn append_with<E: AsEntry>(
        &self,
        entries: &[E],
        now_ms: u64,
        mut on_placed: impl FnMut(Appended),
    ) -> Result<(), LogError> {
        self.before_change()?;
        let mut guard = self.writer.lock();
        let writer = &mut *guard;
        let tip = writer.tip;
        debug_assert_eq!(tip, *self.tip.read(), "only the writer moves the tip");
        let start = Cursor {
            next_offset: tip.next_offset,
            last_id: tip.last_id.max(self.meta.read().last_id_floor),
        };
        if entries.len() > 1 {
            // A single entry is refused before any of its bytes are written; a batch is
            // checked whole first, so that its last entry cannot be refused after the first
            // ones are in.
            check_batch(entries, start, now_ms)?;
        }
        let mut cursor = start;
        let outcome = self.write_entries(writer, entries, &mut cursor, now_ms, &mut on_placed);
        writer.appender.publish(&writer.slot.segment);
        writer
            .prefaulted
            .advance(&writer.slot.segment, writer.appender.write_pos());
        // Records already written are valid and take their offsets even when a later one of the
        // batch failed (a full disk at a segment roll): the tip must cover them.
        if cursor.next_offset > start.next_offset {
            writer.tip = Tip {
                next_offset: cursor.next_offset,
                last_id: cursor.last_id,
            };
            *self.tip.write() = writer.tip;
        }
        outcome
    }

    /// Whether a segment was sealed since the last call, or [`CHECKPOINT_AFTER_BYTES`] more of
    /// the active one became durable since the last checkpoint: the caller should checkpoint
    /// soon, so that recovery after a crash scans only what the checkpoint does not cover.
    pub fn take_checkpoint_due(&self) -> bool {
        let sealed = self
            .checkpoint_due
            .swap(false, std::sync::atomic::Ordering::AcqRel);
        sealed || self.durable_past_checkpoint() >= CHECKPOINT_AFTER_BYTES
    }

    /// Durable bytes of the active segment after the last checkpoint's recovery point.
    fn durable_past_checkpoint(&self) -> u64 {
        let durable = *self.durable.lock();
        let checkpointed = *self.checkpointed.lock();
        if durable.segment_base == checkpointed.segment_base {
            durable.pos.saturating_sub(checkpointed.pos)
        } else {
            u64::MAX
        }
    }

    /// Writes `entries` from `cursor` on, rolling to a new segment whenever the next record
    /// does not fit in the active one.
    fn write_entries<E: AsEntry>(
        &self,
        writer: &mut Writer,
        entries: &[E],
        cursor: &mut Cursor,
        now_ms: u64,
        on_placed: &mut impl FnMut(Appended),
    ) -> Result<(), LogError> {
        let mut rest = entries;
        loop {
            let written = write_run(writer, rest, cursor, now_ms, on_placed)?;
            rest = &rest[written..];
            let Some(next) = rest.first() else {
                return Ok(());
            };
            let needed = record_of(&next.as_entry(), cursor.placement(), now_ms).check()?;
            self.roll(writer, needed, cursor.next_offset, now_ms)?;
        }
    }

    /// Seals the active segment and starts a new one whose first record is `base_offset`.
    fn roll(
        &self,
        writer: &mut Writer,
        needed: usize,
        base_offset: u64,
        now_ms: u64,
    ) -> Result<(), LogError> {
        writer.appender.publish(&writer.slot.segment);
        let sealed = writer.slot.clone();
        sealed.segment.expect_reads();
        let grown = (sealed.segment.capacity() as u64 * 2).min(self.options.max_segment_bytes);
        let file_len = grown.max((needed + segment::HEADER_LEN) as u64);
        let sealed_is_empty = sealed.index.read().record_count() == 0;
        // A record too large for an empty segment: replace the segment with a larger one at the
        // same base offset instead of leaving an empty file behind. The old file keeps its name
        // until the new one is renamed over it, so if creating the new one fails, appends that
        // fit go on into a file that is still in the directory.
        let (slot, appender) = new_slot(
            &self.dir,
            &self.options,
            base_offset,
            file_len,
            now_ms,
            sealed_is_empty,
        )?;
        if sealed_is_empty {
            writer
                .unflushed
                .retain(|(segment, _)| !Arc::ptr_eq(segment, &sealed.segment));
        }
        {
            let mut slots = self.slots.write();
            if sealed_is_empty {
                slots.pop();
            }
            slots.push(slot.clone());
        }
        writer
            .unflushed
            .push((Arc::clone(&slot.segment), segment::HEADER_LEN));
        writer.slot = slot;
        writer.appender = appender;
        writer.prefaulted = writer.prefaulted.next_segment();
        // The new file is in the directory (and, replacing, the old one no longer is): the
        // writer has moved to it whatever happens now. Its name becomes durable with the
        // directory's sync, here or, if that fails, at the next flush, before anything written
        // to it is reported durable.
        self.names_unsynced
            .store(true, std::sync::atomic::Ordering::Release);
        if let Err(error) = self.sync_names() {
            tracing::warn!(dir = %self.dir.display(), %error, "could not sync the directory after creating a segment; the next flush retries");
        }
        if !sealed_is_empty {
            self.write_index_file(&sealed);
            self.checkpoint_due
                .store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(())
    }

    /// Inside a store transaction, writes down how to undo this log's changes before the first
    /// of them (see [`undo`]). Takes the journal lock: call it holding no other lock of the log.
    #[inline]
    fn before_change(&self) -> Result<(), LogError> {
        undo::before_change(&self.dir, Target::Log, || {
            let journal = self.journal.lock();
            Undo::Log {
                dir: self.dir.clone(),
                next_offset: self.tip.read().next_offset,
                meta_generation: journal.journal.generation(),
                meta_len: journal.journal.len_bytes(),
            }
        })?;
        Ok(())
    }

    /// Syncs the directory if a segment file was created since its last sync, so that the
    /// segment's name survives a power loss; a flush calls it before reporting anything durable.
    fn sync_names(&self) -> Result<(), LogError> {
        use std::sync::atomic::Ordering;
        if self.names_unsynced.swap(false, Ordering::AcqRel)
            && let Err(error) = fs::sync_dir(&self.dir)
        {
            self.names_unsynced.store(true, Ordering::Release);
            return Err(LogError::io("sync directory", &self.dir)(error));
        }
        Ok(())
    }

    /// Writes a sealed segment's index next to it. The index is a cache, rebuilt from the segment
    /// whenever it is missing or damaged, so it is neither fsynced nor allowed to fail the caller.
    fn write_index_file(&self, slot: &Slot) {
        let bytes = slot.index.read().encode(slot.base());
        let path = self.dir.join(index_file_name(slot.base()));
        let tmp = path.with_extension("index.tmp");
        let written = fs::create_truncate(&tmp)
            .and_then(|file| fs::write_all(&file, &tmp, &bytes))
            .and_then(|()| fs::rename(&tmp, &path));
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "could not write segment index; it will be rebuilt on open");
        }
    }

    /// Writes the active segment's index as of a recovery point whose bytes are already durable,
    /// so that recovery after a crash scans only what follows the point: the file is synced,
    /// renamed into place, and the directory synced, all before the checkpoint naming that point
    /// is written. It is still a cache (recovery checks it against the checkpoint and the
    /// segment), so a failure costs only a full scan at the next crash recovery; the older index
    /// is then removed so that no file describing another state of the segment is left.
    fn write_active_index_file(&self, base: u64, bytes: &[u8]) {
        let path = self.dir.join(index_file_name(base));
        // A temporary name of its own: a roll writes the sealed segment's full index through
        // `<base>.index.tmp` meanwhile, and the fdatasync below runs without the writer lock, so
        // that appends do not wait for it.
        let tmp = self.dir.join(format!("{base:020}.active.index.tmp"));
        let written = fs::create_truncate(&tmp)
            .and_then(|file| {
                fs::write_all(&file, &tmp, bytes)?;
                fs::sync_data(&file, &tmp)
            })
            .and_then(|()| self.rename_if_active(base, &tmp, &path))
            .and_then(|()| fs::sync_dir(&self.dir));
        if let Err(error) = written {
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(&path);
            tracing::warn!(path = %path.display(), %error, "could not write the active segment's index; the next crash recovery scans the whole segment");
        }
    }

    /// Renames the active segment's new index into place, unless the segment was sealed
    /// meanwhile: its roll wrote the full index, which this shorter one must not replace. Under
    /// the writer lock, which rolls hold.
    fn rename_if_active(&self, base: u64, tmp: &Path, path: &Path) -> std::io::Result<()> {
        let writer = self.writer.lock();
        if writer.slot.base() == base {
            return fs::rename(tmp, path);
        }
        drop(writer);
        fs::remove_file(tmp)
    }

    /// Reads the entry at `offset`, if it is live.
    pub fn read(&self, offset: u64) -> Result<Option<Entry>, LogError> {
        let mut found = None;
        self.scan_forward(Start::Offset(offset), |entry| {
            if entry.offset == offset {
                found = Some(entry);
            }
            ControlFlow::Break(())
        })?;
        Ok(found)
    }

    /// Up to `max` live entries from `offset` on, in offset order.
    pub fn read_from(&self, offset: u64, max: usize) -> Result<Vec<Entry>, LogError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        self.scan_forward(Start::Offset(offset), |entry| {
            out.push(entry);
            if out.len() >= max {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(out)
    }

    /// The offset of the live entry with exactly this ID.
    pub fn lookup(&self, id: StreamId) -> Result<Option<u64>, LogError> {
        let found = self.range(Bound::Included(id), Bound::Included(id), 1)?;
        Ok(found.first().map(|entry| entry.offset))
    }

    /// Up to `max` live entries with IDs in `[from, to]`, oldest first.
    pub fn range(&self, from: IdBound, to: IdBound, max: usize) -> Result<Vec<Entry>, LogError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        let start = match from {
            Bound::Included(id) | Bound::Excluded(id) => Start::Id(id),
            Bound::Unbounded => Start::Offset(0),
        };
        self.scan_forward(start, |entry| {
            if !after_lower(entry.id, from) {
                return ControlFlow::Continue(());
            }
            if !before_upper(entry.id, to) {
                return ControlFlow::Break(());
            }
            out.push(entry);
            if out.len() >= max {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(out)
    }

    /// Up to `max` live entries with IDs in `[low, high]`, newest first.
    pub fn range_rev(
        &self,
        high: IdBound,
        low: IdBound,
        max: usize,
    ) -> Result<Vec<Entry>, LogError> {
        let found = self.range_rev_under_locks(high, low, max);
        self.record_read_damage();
        found
    }

    fn range_rev_under_locks(
        &self,
        high: IdBound,
        low: IdBound,
        max: usize,
    ) -> Result<Vec<Entry>, LogError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        let visible = *self.tip.read();
        let meta = self.meta.read();
        let slots = self.slots.read().clone();
        for slot in slots.iter().rev() {
            let index = slot.index.read().clone();
            let points = index.entries();
            let Some(first) = index.first() else { continue };
            if let Bound::Included(id) | Bound::Excluded(id) = low
                && index.last().is_some_and(|last| last.id < id)
            {
                break;
            }
            if let Bound::Included(id) | Bound::Excluded(id) = high
                && first.id > id
            {
                continue;
            }
            for (k, point) in points.iter().enumerate().rev() {
                let until = points.get(k + 1).map_or(usize::MAX, |next| next.pos);
                let mut chunk = Vec::new();
                self.scan_slot(slot, point.pos, point.offset, &visible, &meta, |entry| {
                    if entry.offset >= visible.next_offset || entry.pos >= until {
                        return ControlFlow::Break(());
                    }
                    chunk.push(entry);
                    ControlFlow::Continue(())
                });
                for entry in chunk.into_iter().rev() {
                    if !before_upper(entry.id, high) {
                        continue;
                    }
                    if !after_lower(entry.id, low) {
                        return Ok(out);
                    }
                    out.push(entry);
                    if out.len() >= max {
                        return Ok(out);
                    }
                }
                if let Bound::Included(id) | Bound::Excluded(id) = low
                    && point.id < id
                {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// Visits live entries in offset order from `start` until `visit` breaks or the tip.
    fn scan_forward(
        &self,
        start: Start,
        visit: impl FnMut(Entry) -> ControlFlow<()>,
    ) -> Result<(), LogError> {
        let scanned = self.scan_forward_under_locks(start, visit);
        self.record_read_damage();
        scanned
    }

    fn scan_forward_under_locks(
        &self,
        start: Start,
        mut visit: impl FnMut(Entry) -> ControlFlow<()>,
    ) -> Result<(), LogError> {
        let visible = *self.tip.read();
        let meta = self.meta.read();
        let slots = self.slots.read().clone();
        let first_slot = match start {
            Start::Offset(offset) => slots
                .partition_point(|s| s.base() <= offset)
                .saturating_sub(1),
            Start::Id(id) => slots
                .partition_point(|s| s.index.read().first().is_some_and(|f| f.id <= id))
                .saturating_sub(1),
        };
        for slot in &slots[first_slot.min(slots.len())..] {
            let point = {
                let index = slot.index.read();
                match start {
                    Start::Offset(offset) => index.seek_offset(offset),
                    Start::Id(id) => index.seek_id(id),
                }
            };
            let (pos, expect) =
                point.map_or((segment::HEADER_LEN, slot.base()), |p| (p.pos, p.offset));
            let mut stopped = false;
            self.scan_slot(slot, pos, expect, &visible, &meta, |entry| {
                if let Start::Offset(offset) = start
                    && entry.offset < offset
                {
                    return ControlFlow::Continue(());
                }
                let flow = visit(entry);
                stopped = flow.is_break();
                flow
            });
            if stopped {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Visits the live records of one segment from byte `pos`; stops at the visible tip.
    fn scan_slot(
        &self,
        slot: &Slot,
        pos: usize,
        expect_offset: u64,
        visible: &Tip,
        meta: &MetaState,
        mut visit: impl FnMut(Entry) -> ControlFlow<()>,
    ) {
        let mut scanner = slot.segment.scan_from(pos, expect_offset);
        let mut expected = expect_offset;
        for item in scanner.by_ref() {
            match item {
                ScanItem::Record { pos, record } => {
                    expected = record.offset + 1;
                    if record.offset >= visible.next_offset {
                        return;
                    }
                    if meta.is_gone(record.offset) {
                        continue;
                    }
                    let entry = Entry {
                        segment: Arc::clone(&slot.segment),
                        pos,
                        offset: record.offset,
                        id: record.id,
                        timestamp_ms: record.timestamp_ms,
                    };
                    if visit(entry).is_break() {
                        return;
                    }
                }
                ScanItem::Damaged { pos, resume, error } => {
                    let resumed_offset = slot
                        .segment
                        .bytes()
                        .get(resume..)
                        .and_then(record::peek)
                        .map_or(expected, |p| p.offset);
                    self.note_read_damage(slot, pos, expected..resumed_offset, &error, meta);
                }
            }
        }
        // The scan ran out of records: damage (not zeroed space) where they end means the
        // records up to the next segment, or up to the tip in the last one, are lost.
        if let Some(end) = scanner.end()
            && (end.reason != record::DecodeError::Empty || end.dirty_end > end.end)
        {
            let upper = self.next_base_after(slot).unwrap_or(visible.next_offset);
            self.note_read_damage(slot, end.end, expected..upper, &end.reason, meta);
        }
    }

    /// The base offset of the segment after `slot`; `None` for the last one.
    fn next_base_after(&self, slot: &Slot) -> Option<u64> {
        let base = slot.base();
        self.slots
            .read()
            .iter()
            .map(Slot::base)
            .find(|&next| next > base)
    }

    /// Reports damage a read skipped (once per place), and queues the offsets it lost that are
    /// not already gone, to be recorded as deleted.
    fn note_read_damage(
        &self,
        slot: &Slot,
        pos: usize,
        offsets: Range<u64>,
        error: &record::DecodeError,
        meta: &MetaState,
    ) {
        if offsets.clone().all(|offset| meta.is_gone(offset)) {
            return;
        }
        let lost = LostRange {
            file: slot.segment.path().to_path_buf(),
            pos: pos as u64,
            offsets,
            reason: error.to_string(),
        };
        let mut seen = self.damage_seen.lock();
        if !seen.contains(&lost) {
            tracing::error!(file = %lost.file.display(), pos, offsets = ?lost.offsets, %error, "damaged record skipped while reading; its entries are recorded as deleted");
            self.damage_unrecorded.lock().push(lost.offsets.clone());
            seen.push(lost);
        }
    }

    /// Records as deleted the offsets reads found lost to damage (recovery.md, 1.12),
    /// so that the length, and what is derived from it, stops counting them, now and after a
    /// reopen. Called by reads once they let go of the metadata.
    fn record_read_damage(&self) {
        let found = std::mem::take(&mut *self.damage_unrecorded.lock());
        if found.is_empty() {
            return;
        }
        let next_offset = self.next_offset();
        let offsets: Vec<u64> = {
            let meta = self.meta.read();
            found
                .into_iter()
                .flatten()
                .filter(|&offset| offset < next_offset && !meta.is_gone(offset))
                .collect()
        };
        if offsets.is_empty() {
            return;
        }
        let event = MetaEvent::Delete {
            offsets,
            max_deleted_id: StreamId::MIN,
        };
        if let Err(error) = self.record_meta(event) {
            tracing::error!(%error, "could not record entries lost to damage as deleted: the stream's length counts them until an open scans their segment");
        }
    }

    /// Deletes the live entries with these IDs; returns how many there were.
    pub fn delete(&self, ids: &[StreamId]) -> Result<usize, LogError> {
        let mut found = Vec::new();
        let mut max_deleted = StreamId::MIN;
        for &id in ids {
            if let Some(offset) = self.lookup(id)?
                && !found.contains(&offset)
            {
                found.push(offset);
                max_deleted = max_deleted.max(id);
            }
        }
        if found.is_empty() {
            return Ok(0);
        }
        let count = found.len();
        self.record_meta(MetaEvent::Delete {
            offsets: found,
            max_deleted_id: max_deleted,
        })?;
        Ok(count)
    }

    /// Appends a metadata change to the journal and applies it.
    pub fn record_meta(&self, event: MetaEvent) -> Result<(), LogError> {
        self.before_change()?;
        let mut journal = self.journal.lock();
        journal.journal.append(&event.encode())?;
        self.meta.write().apply(&event);
        drop(journal);
        if let MetaEvent::Trim { .. } = event
            && let Err(error) = self.drop_trimmed_segments()
        {
            // The trim is done (journaled and applied); the files it made useless are removed
            // at the next retention pass, or by the next open.
            tracing::warn!(dir = %self.dir.display(), %error, "could not remove trimmed segments yet");
        }
        Ok(())
    }

    /// Trims to at most `max_len` live entries. With `approximate`, only whole segments go (and
    /// at most `limit` entries); returns how many entries were removed.
    pub fn trim_max_len(
        &self,
        max_len: u64,
        approximate: bool,
        limit: Option<u64>,
    ) -> Result<u64, LogError> {
        let len = self.len();
        if len <= max_len {
            return Ok(0);
        }
        let target = {
            let meta = self.meta.read();
            let mut candidate = meta.first_offset + (len - max_len);
            for &deleted in meta.deleted.range(meta.first_offset..) {
                if deleted < candidate {
                    candidate += 1;
                } else {
                    break;
                }
            }
            candidate
        };
        self.trim_to(target, approximate, limit)
    }

    /// Removes every entry with an ID below `min_id`; see [`trim_max_len`](Self::trim_max_len).
    pub fn trim_min_id(
        &self,
        min_id: StreamId,
        approximate: bool,
        limit: Option<u64>,
    ) -> Result<u64, LogError> {
        let first_kept = self.range(Bound::Included(min_id), Bound::Unbounded, 1)?;
        let target = first_kept
            .first()
            .map_or(self.next_offset(), |entry| entry.offset);
        self.trim_to(target, approximate, limit)
    }

    fn trim_to(&self, target: u64, approximate: bool, limit: Option<u64>) -> Result<u64, LogError> {
        let (first, next) = (self.meta.read().first_offset, self.next_offset());
        let mut target = target.min(next);
        if approximate {
            let bases: Vec<u64> = self.slots.read().iter().map(Slot::base).collect();
            target = bases
                .into_iter()
                .filter(|&base| base <= target)
                .max()
                .unwrap_or(first);
            if let Some(limit) = limit {
                let bounded = self.offset_after_live(first, limit);
                if bounded < target {
                    let bases: Vec<u64> = self.slots.read().iter().map(Slot::base).collect();
                    target = bases
                        .into_iter()
                        .filter(|&base| base <= bounded)
                        .max()
                        .unwrap_or(first);
                }
            }
        }
        if target <= first {
            return Ok(0);
        }
        let removed = {
            let meta = self.meta.read();
            (target - first) - meta.deleted_between(first, target) as u64
        };
        self.record_meta(MetaEvent::Trim {
            first_offset: target,
        })?;
        Ok(removed)
    }

    /// The offset just after `count` live entries starting at `from`.
    fn offset_after_live(&self, from: u64, count: u64) -> u64 {
        let meta = self.meta.read();
        let mut candidate = from + count;
        for &deleted in meta.deleted.range(from..) {
            if deleted < candidate {
                candidate += 1;
            } else {
                break;
            }
        }
        candidate
    }

    /// Removes sealed segments that hold only trimmed entries, and applies retention limits.
    /// Returns the number of segment files removed.
    pub fn enforce_retention(&self, now_ms: u64) -> Result<usize, LogError> {
        let retention = self.meta.read().retention;
        let slots = self.slots.read().clone();
        let sealed = &slots[..slots.len().saturating_sub(1)];
        let mut total: u64 = slots.iter().map(|s| s.segment.capacity() as u64).sum();
        let mut new_first = None;
        for (i, slot) in sealed.iter().enumerate() {
            let newest_ms = slot.index.read().last().map_or(0, |last| last.timestamp_ms);
            let too_old = retention
                .max_age_ms
                .is_some_and(|age| newest_ms.saturating_add(age) < now_ms);
            let too_big = retention.max_bytes.is_some_and(|max| total > max);
            if !(too_old || too_big) {
                break;
            }
            total -= slot.segment.capacity() as u64;
            new_first = Some(slots[i + 1].base());
        }
        match new_first {
            Some(first) if first > self.meta.read().first_offset => {
                self.record_meta(MetaEvent::Trim {
                    first_offset: first,
                })?;
            }
            _ => self.drop_trimmed_segments()?,
        }
        Ok(slots.len() - self.slots.read().len())
    }

    /// Deletes sealed segment files whose every entry is before the first offset.
    fn drop_trimmed_segments(&self) -> Result<(), LogError> {
        if undo::recording() {
            // A transaction cannot undo a removal: the files go at a later retention pass.
            return Ok(());
        }
        let first = self.meta.read().first_offset;
        if self.trimmed_slot_count(first) == 0 {
            return Ok(());
        }
        let last_id = self.tip.read().last_id;
        if last_id > self.meta.read().last_id_floor {
            // The last entry's segment may be among those removed: keep its ID in the metadata,
            // since a stream's last ID never goes back.
            let mut journal = self.journal.lock();
            let event = MetaEvent::SetLastId { id: last_id };
            journal.journal.append(&event.encode())?;
            self.meta.write().apply(&event);
        }
        // The trim (and last ID) must be on disk before the files go, or a crash could bring
        // back a log whose first segments are missing and whose last ID went backwards.
        let sync = self.journal.lock().sync.clone();
        sync.sync()?;
        let doomed: Vec<Slot> = {
            let mut slots = self.slots.write();
            let count = trimmed_count(&slots, first);
            slots.drain(..count).collect()
        };
        for slot in &doomed {
            let path = slot.segment.path().to_path_buf();
            fs::remove_file(&path).map_err(LogError::io("remove", &path))?;
            let _ = fs::remove_file(&self.dir.join(index_file_name(slot.base())));
        }
        fs::sync_dir(&self.dir).map_err(LogError::io("sync directory", &self.dir))?;
        Ok(())
    }

    /// Sealed segments at the front whose every entry is before `first`.
    fn trimmed_slot_count(&self, first: u64) -> usize {
        trimmed_count(&self.slots.read(), first)
    }

    /// XSETID: moves the last ID (never below the last entry's ID).
    pub fn set_last_id(&self, id: StreamId) -> Result<(), LogError> {
        let last_entry = self.tip.read().last_id;
        if id < last_entry {
            return Err(LogError::IdTooSmall { last: last_entry });
        }
        self.record_meta(MetaEvent::SetLastId { id })
    }

    /// Makes everything written so far durable: the segments' new bytes (msync) and the meta
    /// journal (fdatasync). Returns the new recovery point.
    pub fn flush(&self) -> Result<RecoveryPoint, LogError> {
        self.flush_capturing(false).map(|(point, _)| point)
    }

    /// [`flush`](Self::flush); with `capture_index`, also returns the active segment's index
    /// file bytes as of the recovery point, taken under the same writer lock as the point so
    /// that both describe exactly the same records.
    fn flush_capturing(
        &self,
        capture_index: bool,
    ) -> Result<(RecoveryPoint, Option<Vec<u8>>), LogError> {
        let _flushing = self.flush_lock.lock();
        let (ranges, point, index) = {
            let mut writer = self.writer.lock();
            let active = Arc::clone(&writer.slot.segment);
            let end = active.committed_len();
            // The list always ends with the active segment; sealed ones before it are final.
            let ranges: Vec<(Arc<Segment>, usize, usize)> = writer
                .unflushed
                .drain(..)
                .map(|(segment, start)| {
                    let end = segment.committed_len();
                    (segment, start, end)
                })
                .collect();
            writer.unflushed.push((Arc::clone(&active), end));
            let tip = *self.tip.read();
            let point = RecoveryPoint {
                segment_base: active.base_offset(),
                pos: end as u64,
                next_offset: tip.next_offset,
                last_id: tip.last_id,
            };
            let index = capture_index.then(|| {
                let index = writer.slot.index.read();
                debug_assert_eq!(index.end_pos(), end, "the index ends where the records do");
                index.encode(point.segment_base)
            });
            (ranges, point, index)
        };
        for (segment, start, end) in &ranges {
            // Written for good: below `end`, the appender never writes again.
            segment.release_written(*start, *end);
            segment.flush_range(*start, *end)?;
        }
        self.sync_names()?;
        let sync = self.journal.lock().sync.clone();
        sync.sync()?;
        let mut durable = self.durable.lock();
        if point.next_offset >= durable.next_offset {
            *durable = point;
        }
        Ok((point, index))
    }

    /// Flushes, then saves the metadata and the recovery point in a new checkpoint, so that
    /// recovery scans only what is written after it.
    pub fn checkpoint(&self) -> Result<RecoveryPoint, LogError> {
        self.write_checkpoint(false)
    }

    fn write_checkpoint(&self, clean: bool) -> Result<RecoveryPoint, LogError> {
        let (point, index) = self.flush_capturing(true)?;
        let mut journal = self.journal.lock();
        // Under the journal lock, so that concurrent checkpoints write index and checkpoint as
        // pairs; the index's bytes are durable since the flush above.
        if let Some(bytes) = index {
            self.write_active_index_file(point.segment_base, &bytes);
        }
        let generation = journal.journal.generation() + 1;
        let new_path = self.dir.join(meta_journal_name(generation));
        // A journal of this generation is named by no checkpoint: one left by an attempt that
        // failed halfway holds nothing.
        fs::remove_if_exists(&new_path).map_err(LogError::io("remove", &new_path))?;
        let new_journal = Journal::create(&new_path, META_JOURNAL_KIND, generation)?;
        let checkpoint = Checkpoint {
            clean,
            journal_generation: generation,
            recovery_point: point,
            meta: self.meta.read().clone(),
        };
        let placed = journal::place_snapshot(
            &self.dir,
            CHECKPOINT_FILE,
            CHECKPOINT_KIND,
            generation,
            &checkpoint.encode(),
        );
        if let Err(error) = placed {
            // The old checkpoint and journal stay in force; the new journal, named by no
            // checkpoint, would make the next attempt fail as already existing.
            drop(new_journal);
            let _ = fs::remove_file(&new_path);
            return Err(error.into());
        }
        // The checkpoint in the directory names the new journal: changes go there from now on,
        // and until the directory is synced a flush syncs it before reporting them durable.
        let old_path = journal.journal.path().to_path_buf();
        journal.sync = new_journal.sync_handle();
        journal.journal = new_journal;
        self.names_unsynced
            .store(true, std::sync::atomic::Ordering::Release);
        drop(journal);
        self.sync_names()?;
        *self.checkpointed.lock() = point;
        // Best effort: the checkpoint names the new journal, and opening removes any other.
        let _ = fs::remove_file(&old_path);
        Ok(point)
    }

    /// Writes a checkpoint marked clean (with the active segment's index), whose recovery point
    /// is the exact end of the log, so that a clean reopen scans nothing.
    pub fn close(&self) -> Result<(), LogError> {
        let point = self.write_checkpoint(true)?;
        debug_assert_eq!(
            self.writer.lock().slot.segment.committed_len() as u64,
            point.pos
        );
        Ok(())
    }
}

impl Flush for Log {
    fn flush(&self) -> Result<(), FlushError> {
        Log::flush(self)
            .map(|_| ())
            .map_err(|e| FlushError::from_error(&e))
    }
}

/// Creates a segment file (made durable, directory entry included) and its empty index.
fn create_slot(
    dir: &Path,
    options: &LogOptions,
    base_offset: u64,
    file_len: u64,
    now_ms: u64,
) -> Result<(Slot, SegmentAppender), LogError> {
    let created = new_slot(dir, options, base_offset, file_len, now_ms, false)?;
    fs::sync_dir(dir).map_err(LogError::io("sync directory", dir))?;
    Ok(created)
}

/// Creates a durable segment file under its name, not yet synced into the directory, and its
/// empty index; with `replacing`, in place of the (empty) segment file at that base offset.
fn new_slot(
    dir: &Path,
    options: &LogOptions,
    base_offset: u64,
    file_len: u64,
    now_ms: u64,
    replacing: bool,
) -> Result<(Slot, SegmentAppender), LogError> {
    let path = dir.join(segment_file_name(base_offset));
    let header = SegmentHeader {
        base_offset,
        file_len,
        created_ms: now_ms,
    };
    let (segment, appender) = if replacing {
        Segment::create_in_place_of(&path, header)?
    } else {
        Segment::create(&path, header)?
    };
    let slot = Slot {
        segment: Arc::new(segment),
        index: Arc::new(RwLock::new(SegmentIndex::new(
            options.index_interval_bytes,
            segment::HEADER_LEN,
        ))),
    };
    Ok((slot, appender))
}

/// How many slots at the front of `slots` hold only entries before `first`; never the last
/// (active) one.
fn trimmed_count(slots: &[Slot], first: u64) -> usize {
    slots
        .iter()
        .position(|slot| {
            let next_base = slot
                .index
                .read()
                .last()
                .map_or(slot.base(), |l| l.offset + 1);
            next_base > first
        })
        .unwrap_or(slots.len())
        .min(slots.len().saturating_sub(1))
}

#[derive(Debug, Clone, Copy)]
enum Start {
    Offset(u64),
    Id(StreamId),
}

fn after_lower(id: StreamId, bound: IdBound) -> bool {
    match bound {
        Bound::Included(low) => id >= low,
        Bound::Excluded(low) => id > low,
        Bound::Unbounded => true,
    }
}

fn before_upper(id: StreamId, bound: IdBound) -> bool {
    match bound {
        Bound::Included(high) => id <= high,
        Bound::Excluded(high) => id < high,
        Bound::Unbounded => true,
    }
}

fn resolve_id(spec: IdSpec, last: StreamId, now_ms: u64) -> Result<StreamId, LogError> {
    match spec {
        IdSpec::Auto => last.next_auto(now_ms).ok_or(LogError::IdExhausted),
        IdSpec::Explicit(id) if id == StreamId::MIN => Err(LogError::IdZero),
        IdSpec::Explicit(id) if id <= last => Err(LogError::IdTooSmall { last }),
        IdSpec::Explicit(id) => Ok(id),
        IdSpec::AutoSeq(ms) => last.next_with_ms(ms).ok_or(LogError::IdTooSmall { last }),
    }
}

/// Where the next entry of a batch goes: its offset, and the ID its own must exceed.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    next_offset: u64,
    last_id: StreamId,
}

impl Cursor {
    /// A placement of the next entry, for measuring its record (IDs are fixed-width).
    fn placement(&self) -> Appended {
        Appended {
            offset: self.next_offset,
            id: self.last_id,
        }
    }
}

/// Resolves every ID of a batch and checks every record's size, writing nothing.
fn check_batch<E: AsEntry>(entries: &[E], start: Cursor, now_ms: u64) -> Result<(), LogError> {
    let mut last = start.last_id;
    for entry in entries {
        let entry = entry.as_entry();
        last = resolve_id(entry.id, last, now_ms)?;
        record_of(&entry, start.placement(), now_ms).check()?;
    }
    Ok(())
}

/// Writes the entries that fit in the active segment, with one lock of its index for all of
/// them; returns how many were written (fewer than `entries.len()` when the next one needs a
/// new segment). Not visible to readers until the caller publishes.
fn write_run<E: AsEntry>(
    writer: &mut Writer,
    entries: &[E],
    cursor: &mut Cursor,
    now_ms: u64,
    on_placed: &mut impl FnMut(Appended),
) -> Result<usize, LogError> {
    let Writer { slot, appender, .. } = writer;
    let mut index = slot.index.write();
    for (written, entry) in entries.iter().enumerate() {
        let entry = entry.as_entry();
        let placed = Appended {
            offset: cursor.next_offset,
            id: resolve_id(entry.id, cursor.last_id, now_ms)?,
        };
        let record = record_of(&entry, placed, now_ms);
        let len = record.check()?;
        if len > appender.remaining(&slot.segment) {
            return Ok(written);
        }
        let pos = appender.append(&slot.segment, len, |dst| record.encode_into(dst))??;
        index.add(
            pos,
            len,
            LastRecord {
                offset: placed.offset,
                id: placed.id,
                timestamp_ms: now_ms,
            },
        );
        cursor.next_offset += 1;
        cursor.last_id = placed.id;
        on_placed(placed);
    }
    Ok(entries.len())
}

fn record_of<'a, H: AsRef<[u8]>>(
    entry: &NewEntry<'a, H>,
    at: Appended,
    now_ms: u64,
) -> NewRecord<'a, H> {
    NewRecord {
        offset: at.offset,
        id: at.id,
        timestamp_ms: now_ms,
        headers: entry.headers,
        idempotency: entry.idempotency,
        body: entry.body,
    }
}

/// File name of the segment whose first offset is `base_offset`.
pub fn segment_file_name(base_offset: u64) -> String {
    format!("{base_offset:020}.seg")
}

/// File name of that segment's index.
pub fn index_file_name(base_offset: u64) -> String {
    format!("{base_offset:020}.index")
}

/// File name of the meta journal of a generation.
pub fn meta_journal_name(generation: u64) -> String {
    format!("meta.{generation:020}.journal")
}
