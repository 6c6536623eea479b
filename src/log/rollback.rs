//! Taking a log back to where it was before a store transaction that a crash interrupted (see
//! [`undo`](crate::undo)): its records from an offset on and its meta journal's frames from a
//! length on are dropped, on the files alone, before the log is opened.

use std::path::Path;

use super::recovery::segment_bases;
use super::{LogError, index_file_name, meta_journal_name, segment_file_name};
use crate::fs;
use crate::journal;
use crate::segment::{self, ScanItem, Segment};

/// Drops the records at `next_offset` and after, and cuts the meta journal of generation
/// `meta_generation` back to `meta_len` bytes. Idempotent: a crash while it runs is repaired
/// by running it again. A missing directory is left alone.
pub(crate) fn roll_back(
    dir: &Path,
    next_offset: u64,
    meta_generation: u64,
    meta_len: u64,
) -> Result<(), LogError> {
    if !dir.is_dir() {
        return Ok(());
    }
    journal::cut(&dir.join(meta_journal_name(meta_generation)), meta_len)?;
    let bases = segment_bases(dir)?;
    for (i, &base) in bases.iter().enumerate().rev() {
        let whole_file_is_newer = base > next_offset || (base == next_offset && i > 0);
        if whole_file_is_newer {
            remove_segment(dir, base)?;
            continue;
        }
        cut_segment(dir, base, next_offset)?;
        break;
    }
    fs::sync_dir(dir).map_err(LogError::io("sync directory", dir))
}

fn remove_segment(dir: &Path, base: u64) -> Result<(), LogError> {
    let path = dir.join(segment_file_name(base));
    fs::remove_if_exists(&path).map_err(LogError::io("remove", &path))?;
    let index = dir.join(index_file_name(base));
    fs::remove_if_exists(&index).map_err(LogError::io("remove", &index))
}

/// Zeroes the records of the segment at `base` from the first one at `next_offset` or after,
/// so that recovery finds the segment ending before them, and removes its index (a cache that
/// may name them; recovery rebuilds it).
fn cut_segment(dir: &Path, base: u64, next_offset: u64) -> Result<(), LogError> {
    let path = dir.join(segment_file_name(base));
    let mut segment = Segment::open(&path)?;
    let base_offset = segment.base_offset();
    let (cut_at, dirty_end) = {
        let mut scanner =
            segment::Scanner::new(segment.recovery_bytes(), segment::HEADER_LEN, base_offset);
        let cut_at = scanner.by_ref().find_map(|item| match item {
            ScanItem::Record { pos, record } if record.offset >= next_offset => Some(pos),
            _ => None,
        });
        scanner.by_ref().for_each(drop);
        let dirty_end = scanner
            .end()
            .map_or(segment::HEADER_LEN, |end| end.dirty_end);
        (cut_at, dirty_end)
    };
    let Some(cut_at) = cut_at else {
        return Ok(());
    };
    segment.recover_appender(cut_at, dirty_end.max(cut_at))?;
    let index = dir.join(index_file_name(base));
    fs::remove_if_exists(&index).map_err(LogError::io("remove", &index))
}
