//! Making the log durable: flushes, checkpoints (with the active segment's index file), the
//! sealed segments' index files, and the clean close.

use std::path::Path;
use std::sync::Arc;

use super::{
    CHECKPOINT_FILE, CHECKPOINT_KIND, Checkpoint, Log, LogError, META_JOURNAL_KIND, RecoveryPoint,
    Segment, Slot, index_file_name, meta_journal_name,
};
use crate::durability::{Flush, FlushError};
use crate::fs::{self, WriteSync, names};
use crate::journal::{self, Journal};

/// Durable bytes of the active segment beyond the last checkpoint after which another is due,
/// bounding what a crash recovery rescans; a checkpoint costs a few small-file fsyncs, so at
/// most two a second (the store's maintenance pace) while a stream takes writes.
pub const CHECKPOINT_AFTER_BYTES: u64 = 4 << 20;

impl Log {
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

    /// Syncs the directory if a segment file was created since its last sync, so that the
    /// segment's name survives a power loss; a flush calls it before reporting anything durable.
    pub(super) fn sync_names(&self) -> Result<(), LogError> {
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
    /// whenever it is missing or damaged, so unlike every other file placed under its name it is
    /// neither fsynced (nor its directory) nor allowed to fail the caller.
    pub(super) fn write_index_file(&self, slot: &Slot) {
        let bytes = slot.index.read().encode(slot.base());
        let path = self.dir.join(index_file_name(slot.base()));
        let tmp = names::tmp_path(&path);
        let write = || fs::write_file(&tmp, &bytes, WriteSync::Cache);
        if let Err(error) = fs::place(&tmp, &path, write, |error| error) {
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
        let tmp = self.dir.join(names::active_index_tmp_name(base));
        // Not `fs::place`: the rename is skipped if the segment was sealed meanwhile.
        let written = fs::write_file(&tmp, bytes, WriteSync::Data)
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
