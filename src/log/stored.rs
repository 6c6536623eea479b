//! How many bytes the live part of a log stores, and trimming it to a byte limit.
//!
//! A log's stored bytes are the bytes of its records (headers, fields, body and padding, as
//! [`NewRecord::padded_len`] counts them) from its first live entry through its last one. An
//! entry deleted in between still counts: its record stays in the segment until a trim passes
//! it. Segment headers and the unused tail of the newest segment do not count. Both queries read
//! only the segment indexes and a short scan from one index point, so they stay cheap enough to
//! run on every append to a stream with a byte limit.

use std::ops::ControlFlow;
use std::sync::Arc;

use super::{Appended, Log, LogError, NewEntry, Slot, record_of};
use crate::segment;

impl Log {
    /// Bytes `entry` will take in a segment once appended.
    pub fn stored_len<H: AsRef<[u8]>>(entry: &NewEntry<'_, H>) -> u64 {
        let placement = Appended {
            offset: 0,
            id: crate::id::StreamId::MIN,
        };
        // Offsets, IDs and timestamps are fixed-width: the length depends on the content only.
        record_of(entry, placement, 0).padded_len() as u64
    }

    /// The stored bytes of the live entries (see the module documentation).
    pub fn stored_bytes(&self) -> Result<u64, LogError> {
        loop {
            // Segments first: a trim in between only drops segments from the front of this
            // list, so the oldest entry read next is in it unless the log also rolled.
            let slots = self.slots.read().clone();
            let first = self.meta.read().first_offset;
            let Some(oldest) = self.read_from(first, 1)?.pop() else {
                return Ok(0);
            };
            let Some(at) = slots
                .iter()
                .position(|slot| Arc::ptr_eq(&slot.segment, &oldest.segment))
            else {
                // Every older segment was trimmed away and a new one started meanwhile.
                continue;
            };
            let in_oldest = end_pos(&slots[at]).saturating_sub(oldest.pos);
            let newer: usize = slots[at + 1..].iter().map(records_bytes).sum();
            return Ok((in_oldest + newer) as u64);
        }
    }

    /// Trims the oldest entries until the live ones store at most `max_bytes`; returns how many
    /// entries were removed. Every entry goes when the newest alone is larger than the limit.
    pub fn trim_max_bytes(&self, max_bytes: u64) -> Result<u64, LogError> {
        let target = self.first_offset_within(max_bytes)?;
        self.trim_to(target, false, None)
    }

    /// The offset of the oldest live entry from which the records to the end take at most
    /// `max_bytes` (the next offset when not even the newest entry fits).
    fn first_offset_within(&self, max_bytes: u64) -> Result<u64, LogError> {
        let slots = self.slots.read().clone();
        let mut newer_bytes = 0u64;
        for (i, slot) in slots.iter().enumerate().rev() {
            let with_slot = newer_bytes + records_bytes(slot) as u64;
            if with_slot <= max_bytes {
                newer_bytes = with_slot;
                continue;
            }
            let budget = max_bytes - newer_bytes;
            let end = end_pos(slot) as u64;
            let fits = self.first_live_in(slot, |pos| end - pos as u64 <= budget);
            let after_slot = slots
                .get(i + 1)
                .map_or_else(|| self.next_offset(), Slot::base);
            return Ok(fits.unwrap_or(after_slot));
        }
        Ok(self.meta.read().first_offset)
    }

    /// The offset of the first live entry of `slot` whose record position satisfies `wanted`.
    /// The scan starts at the index point before the first live entry, so trimming a little
    /// after each append costs what it trims, not the whole segment.
    fn first_live_in(&self, slot: &Slot, wanted: impl Fn(usize) -> bool) -> Option<u64> {
        let mut found = None;
        let visible = *self.tip.read();
        let meta = self.meta.read();
        let point = slot.index.read().seek_offset(meta.first_offset);
        let (pos, expect) = point.map_or((segment::HEADER_LEN, slot.base()), |p| (p.pos, p.offset));
        self.scan_slot(slot, pos, expect, &visible, &meta, |entry| {
            if wanted(entry.pos) {
                found = Some(entry.offset);
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        found
    }
}

/// Where `slot`'s records end.
fn end_pos(slot: &Slot) -> usize {
    slot.index.read().end_pos()
}

/// Bytes of all of `slot`'s records.
fn records_bytes(slot: &Slot) -> usize {
    end_pos(slot).saturating_sub(segment::HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::StreamId;
    use crate::log::{IdSpec, LogOptions};

    fn entry(body: &[u8]) -> NewEntry<'_, &'static [u8]> {
        NewEntry {
            id: IdSpec::Auto,
            headers: &[],
            body,
            idempotency: None,
        }
    }

    /// A log whose segments hold a few records each, so that limits cross segment boundaries.
    fn small_log(dir: &std::path::Path) -> Log {
        let options = LogOptions {
            max_segment_bytes: 512,
            initial_segment_bytes: 256,
            index_interval_bytes: 64,
        };
        Log::open(dir, options, false, 1).unwrap().0
    }

    fn append_bodies(log: &Log, count: usize) -> u64 {
        let body = [7u8; 40];
        for _ in 0..count {
            log.append(&[entry(&body)], 1).unwrap();
        }
        Log::stored_len(&entry(&body))
    }

    #[test]
    fn stored_bytes_sum_the_live_records_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let log = small_log(dir.path());
        assert_eq!(log.stored_bytes().unwrap(), 0);
        let each = append_bodies(&log, 20);
        assert!(log.segment_count() > 2, "the records span several segments");
        assert_eq!(log.stored_bytes().unwrap(), 20 * each);
        log.trim_max_len(5, false, None).unwrap();
        assert_eq!(log.stored_bytes().unwrap(), 5 * each);
    }

    #[test]
    fn a_deleted_record_counts_until_a_trim_passes_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = small_log(dir.path());
        let each = append_bodies(&log, 4);
        let second = log.read(1).unwrap().unwrap().id;
        log.delete(&[second]).unwrap();
        assert_eq!(log.stored_bytes().unwrap(), 4 * each);
        let first = log.read(0).unwrap().unwrap().id;
        log.delete(&[first]).unwrap();
        assert_eq!(
            log.stored_bytes().unwrap(),
            2 * each,
            "counted from the first live entry"
        );
    }

    #[test]
    fn trimming_to_a_byte_limit_keeps_the_newest_that_fit() {
        let dir = tempfile::tempdir().unwrap();
        let log = small_log(dir.path());
        let each = append_bodies(&log, 20);
        assert_eq!(log.trim_max_bytes(20 * each).unwrap(), 0);
        assert_eq!(log.trim_max_bytes(7 * each + each / 2).unwrap(), 13);
        assert_eq!((log.len(), log.stored_bytes().unwrap()), (7, 7 * each));
        assert_eq!(log.read(13).unwrap().map(|e| e.offset), Some(13));
        assert_eq!(log.trim_max_bytes(each - 1).unwrap(), 7);
        assert!(log.is_empty());
        assert_eq!(log.last_id(), StreamId::new(1, 19), "the last ID stays");
    }

    #[test]
    fn trimming_after_every_append_keeps_a_sliding_window_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let log = small_log(dir.path());
        let each = append_bodies(&log, 1);
        for appended in 2..=60u64 {
            append_bodies(&log, 1);
            log.trim_max_bytes(5 * each).unwrap();
            let kept = appended.min(5);
            assert_eq!(
                (log.len(), log.stored_bytes().unwrap()),
                (kept, kept * each)
            );
            assert_eq!(
                log.read(appended - kept).unwrap().map(|e| e.offset),
                Some(appended - kept)
            );
        }
        assert!(
            log.segment_count() < 5,
            "segments behind the window were dropped"
        );
    }

    #[test]
    fn stored_len_is_the_padded_record_length_as_storage_format_shows() {
        let headers: [(&[u8], &[u8]); 1] = [(b"kind", b"job")];
        let with_header = NewEntry {
            headers: &headers,
            ..entry(b"12345")
        };
        // storage-format.md, section 11: padded(64 + (8 + 4 + 3) + 5).
        assert_eq!(Log::stored_len(&with_header), 88);
        assert_eq!(Log::stored_len(&entry(b"")), 64);
        assert_eq!(Log::stored_len(&entry(b"1")), 72);
    }
}
