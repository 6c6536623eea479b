//! Reading: single entries, offset and ID ranges both ways, and the damage a read meets.

use std::ops::{Bound, ControlFlow, Range};
use std::sync::Arc;

use super::{Entry, IdBound, Log, LogError, LostRange, MetaEvent, MetaState, Slot, Tip};
use crate::id::StreamId;
use crate::record;
use crate::segment::{self, ScanItem};

impl Log {
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

    /// Up to `max` entries from `offset` on that were not trimmed, deleted ones included (their
    /// records stay in the segments until a trim passes them), in offset order.
    pub fn read_from_with_deleted(&self, offset: u64, max: usize) -> Result<Vec<Entry>, LogError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        let scanned =
            self.scan_forward_under_locks(Start::Offset(offset), Deleted::Include, |entry| {
                out.push(entry);
                if out.len() >= max {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
        self.record_read_damage();
        scanned?;
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
        let scanned = self.scan_forward_under_locks(start, Deleted::Skip, visit);
        self.record_read_damage();
        scanned
    }

    fn scan_forward_under_locks(
        &self,
        start: Start,
        deleted: Deleted,
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
            self.scan_slot_with(slot, pos, expect, &visible, &meta, deleted, |entry| {
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
    pub(super) fn scan_slot(
        &self,
        slot: &Slot,
        pos: usize,
        expect_offset: u64,
        visible: &Tip,
        meta: &MetaState,
        visit: impl FnMut(Entry) -> ControlFlow<()>,
    ) {
        self.scan_slot_with(
            slot,
            pos,
            expect_offset,
            visible,
            meta,
            Deleted::Skip,
            visit,
        );
    }

    /// [`scan_slot`](Self::scan_slot), visiting deleted records too when asked.
    #[allow(clippy::too_many_arguments)]
    fn scan_slot_with(
        &self,
        slot: &Slot,
        pos: usize,
        expect_offset: u64,
        visible: &Tip,
        meta: &MetaState,
        deleted: Deleted,
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
                    let hidden = match deleted {
                        Deleted::Skip => meta.is_gone(record.offset),
                        Deleted::Include => record.offset < meta.first_offset,
                    };
                    if hidden {
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

/// Whether a scan visits deleted (not trimmed) records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deleted {
    Skip,
    Include,
}
