//! Removing entries: deletes, trims by length or ID, retention, and the segment files a trim
//! leaves holding nothing live.

use std::ops::Bound;

use super::{Log, LogError, MetaEvent, Slot, index_file_name};
use crate::fs;
use crate::id::StreamId;
use crate::undo;

impl Log {
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

    /// Trims to at most `max_len` live entries, removing at most `limit` of them when one is
    /// given. With `approximate`, only whole segments go; returns how many entries were removed.
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

    /// Removes every entry before `offset` (the log's trim point moves there); returns how many
    /// live entries went.
    pub fn trim_before(&self, offset: u64) -> Result<u64, LogError> {
        self.trim_to(offset, false, None)
    }

    pub(super) fn trim_to(
        &self,
        target: u64,
        approximate: bool,
        limit: Option<u64>,
    ) -> Result<u64, LogError> {
        let (first, next) = (self.meta.read().first_offset, self.next_offset());
        let mut target = target.min(next);
        if let (false, Some(limit)) = (approximate, limit) {
            target = target.min(self.offset_after_live(first, limit));
        }
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

    /// XSETID: moves the last ID. Below the last entry's ID only while the log holds no live
    /// entry, as Redis allows: the files that hold the (deleted or trimmed) entries with higher
    /// IDs are removed first, so that no record on disk ever has an ID above the last ID and
    /// IDs stay in order across the files. Durable when it returns in that case; otherwise at
    /// the next flush, like any metadata change.
    pub fn set_last_id(&self, id: StreamId, now_ms: u64) -> Result<(), LogError> {
        let last_entry = self.tip.read().last_id;
        if id >= last_entry {
            return self.record_meta(MetaEvent::SetLastId { id });
        }
        if !self.is_empty() {
            return Err(LogError::IdTooSmall { last: last_entry });
        }
        if undo::recording() {
            return Err(LogError::LowerIdInTransaction { last: last_entry });
        }
        self.lower_last_id(id, now_ms)
    }

    /// Lowers the last ID of an empty log. Each step leaves a log that recovery opens with
    /// the old last ID or, once the checkpoint is written, the new one:
    ///
    /// 1. the active segment, if it holds records, is sealed and a new one started;
    /// 2. the trim point moves to the end (past entries deleted one by one) and every sealed
    ///    segment is removed, the trim and the old last ID synced to the metadata journal
    ///    first, as any trim does;
    /// 3. the new last ID is recorded, then a checkpoint is written whose recovery point
    ///    carries it: until then, recovery takes the old checkpoint's higher last ID.
    fn lower_last_id(&self, id: StreamId, now_ms: u64) -> Result<(), LogError> {
        let previous = {
            // Held until the new last ID is in place: no append may make the log non-empty
            // meanwhile, nor take an ID from the old last one.
            let mut writer = self.writer.lock();
            let last_entry = writer.tip.last_id;
            if !self.is_empty() {
                return Err(LogError::IdTooSmall { last: last_entry });
            }
            if writer.slot.index.read().record_count() > 0 {
                let next_offset = writer.tip.next_offset;
                self.roll(&mut writer, 0, next_offset, now_ms)?;
            }
            // Entries deleted one by one leave the trim point behind them: moved past them
            // all, every sealed segment holds only trimmed entries.
            self.trim_before(writer.tip.next_offset)?;
            self.drop_trimmed_segments()?;
            assert_eq!(
                self.slots.read().len(),
                1,
                "every segment but the new active one is gone"
            );
            self.record_meta(MetaEvent::SetLastId { id })?;
            self.set_tip_last_id(&mut writer, id);
            last_entry
        };
        if let Err(error) = self.checkpoint() {
            // Recovery takes the old checkpoint's last ID until a new checkpoint is written:
            // the log goes on with it, as a reopen would.
            let mut writer = self.writer.lock();
            let restored = previous.max(writer.tip.last_id);
            self.set_tip_last_id(&mut writer, restored);
            return Err(error);
        }
        Ok(())
    }

    fn set_tip_last_id(&self, writer: &mut super::Writer, id: StreamId) {
        writer.tip.last_id = id;
        *self.tip.write() = writer.tip;
    }
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
