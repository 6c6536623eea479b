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

//! The code is split by job, as the struct's methods are: `append` (appends, rolls, new
//! segments), `read` (reads, ranges, scans), `trim` (deletes, trims, retention, dropping
//! segments), `flush` (flushes, checkpoints, index files, close), `recovery` (open) and `types`
//! (what callers pass and get back). This file holds the struct and what they all share.

pub(crate) mod analysis;
mod append;
#[cfg(test)]
mod fault_tests;
mod flush;
mod index;
mod meta;
pub(crate) mod meta_analysis;
mod prefault;
mod read;
mod recovery;
mod rollback;
mod stored;
mod trim;
mod types;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub use index::{IndexEntry, LastRecord, SegmentIndex, layout as index_layout};
pub use meta::{Checkpoint, MetaEvent, MetaState, RecoveryPoint, Retention};
pub use recovery::{LostRange, RebuiltHeader, RecoveryReport, TornTail};
pub(crate) use rollback::roll_back;
pub use types::{Appended, AsEntry, Entry, IdBound, IdSpec, LogError, LogOptions, NewEntry};

pub use crate::fs::names::{
    CHECKPOINT_FILE, index_file_name, meta_journal_name, segment_file_name,
};

use crate::id::StreamId;
use crate::journal::{FileKind, Journal, JournalSync};
use crate::segment::{Segment, SegmentAppender};
use crate::undo::{self, Target, Undo};
use append::{create_slot, record_of};
use prefault::Prefaulted;

/// Kind tag of meta journals.
pub const META_JOURNAL_KIND: FileKind = FileKind(*b"LMET");

/// Kind tag of checkpoint snapshots.
pub const CHECKPOINT_KIND: FileKind = FileKind(*b"LCKP");

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

impl Log {
    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The offset the next entry will get.
    pub fn next_offset(&self) -> u64 {
        self.tip.read().next_offset
    }

    /// The stream's last ID: the larger of the last entry's ID and one set by [`set_last_id`](Self::set_last_id).
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

    /// Bytes the log holds in memory besides its mapped segments: the segments' indexes and the
    /// set of deleted offsets (elements only; allocator and tree-node overhead not included).
    pub fn resident_bytes(&self) -> u64 {
        let indexes: usize = self
            .slots
            .read()
            .iter()
            .map(|slot| std::mem::size_of::<Slot>() + slot.index.read().heap_bytes())
            .sum();
        let meta = self.meta.read();
        let deleted = meta.deleted.len() * std::mem::size_of::<u64>();
        (indexes + deleted + meta.attributes.capacity()) as u64
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
}
