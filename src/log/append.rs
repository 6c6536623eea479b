//! Appending: IDs resolved and checked, records written into the active segment, and the roll
//! to a new segment when the next record does not fit.

use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use super::{
    Appended, AsEntry, IdSpec, LastRecord, Log, LogError, LogOptions, NewEntry, SegmentIndex, Slot,
    Tip, Writer, segment_file_name,
};
use crate::fs;
use crate::id::StreamId;
use crate::record::NewRecord;
use crate::segment::{self, Segment, SegmentAppender, SegmentHeader};

impl Log {
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
            // Each record written took the next offset and an ID above the one before it.
            debug_assert!(cursor.last_id > start.last_id, "the last ID moves forward");
            writer.tip = Tip {
                next_offset: cursor.next_offset,
                last_id: cursor.last_id,
            };
            *self.tip.write() = writer.tip;
        }
        outcome
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
    pub(super) fn roll(
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
}

/// Creates a segment file (made durable, directory entry included) and its empty index.
pub(super) fn create_slot(
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
/// new segment). Not visible to readers until the caller publishes. Inlined into the append
/// path: the hottest loop of the engine, and a call per run costs a measurable share of a
/// small append.
#[inline]
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

pub(super) fn record_of<'a, H: AsRef<[u8]>>(
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
