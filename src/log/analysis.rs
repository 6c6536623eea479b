//! The read-only analysis of a log's files: what is wrong with a segment's header, which of its
//! bytes are damaged and which offsets they held, where its records end, and whether one segment
//! continues the one before it.
//!
//! Nothing here writes or decides what to do: [`Log::open`](super::Log::open) repairs from these
//! findings (recovery.md, section 1) and `queue-dump` reports them (section 1.14), so the two can
//! never disagree on what a directory holds.

use std::ops::Range;
use std::path::Path;

use super::{MetaState, RecoveryPoint};
use crate::id::StreamId;
use crate::record::RecordView;
use crate::segment::{ScanEnd, ScanItem, Scanner, Segment, SegmentError};

/// A segment file whose header was checked, and rebuilt when it was damaged.
#[derive(Debug)]
pub(crate) enum OpenedSegment {
    /// The header passed every check.
    Sound(Segment),
    /// The header was damaged (`reason`), and the records showed which offsets the segment
    /// holds, so it was rebuilt from the file name and size (recovery.md, section 1.8).
    Rebuilt { segment: Segment, reason: String },
}

/// Why a segment could not be opened.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    /// The file could not be read, or its header is not damage (another version's).
    Unreadable(SegmentError),
    /// The header is bad (`found`) and the rebuild was refused (`rebuild`).
    BadHeader {
        found: SegmentError,
        rebuild: SegmentError,
    },
}

/// Opens the segment at `path`, rebuilding a damaged header when `offsets` (from the file name
/// up to the next segment's base) is given and the records agree with it. A writable open
/// writes the rebuilt header back; a read-only one never writes.
pub(crate) fn open_segment(
    path: &Path,
    offsets: Option<Range<u64>>,
    writable: bool,
) -> Result<OpenedSegment, OpenFailure> {
    let opened = if writable {
        Segment::open(path)
    } else {
        Segment::open_read_only(path)
    };
    let found = match opened {
        Ok(segment) => return Ok(OpenedSegment::Sound(segment)),
        Err(error @ SegmentError::BadHeader { .. }) => error,
        Err(error) => return Err(OpenFailure::Unreadable(error)),
    };
    let Some(offsets) = offsets else {
        return Err(OpenFailure::Unreadable(found));
    };
    match Segment::open_rebuilding_header(path, offsets, writable) {
        Ok((segment, reason)) => Ok(OpenedSegment::Rebuilt { segment, reason }),
        Err(rebuild) => Err(OpenFailure::BadHeader { found, rebuild }),
    }
}

/// Whether a segment with an unreadable header is a creation that never finished: the newest
/// segment, past the recovery point, so it never held a record anyone was told about.
pub(crate) fn unfinished_creation(base: u64, is_last: bool, point_segment_base: u64) -> bool {
    is_last && base > point_segment_base
}

/// One step of a segment's analysis, in file order.
#[derive(Debug)]
pub(crate) enum Found<'b> {
    /// A valid record. `missing_before` names offsets that no byte of the segment holds
    /// between it and the valid record before it (no damaged bytes in between).
    Record {
        pos: usize,
        record: RecordView<'b>,
        missing_before: Option<Range<u64>>,
    },
    /// Bytes `pos..resume` are not a valid record; they held the offsets `lost` (empty when
    /// the damaged bytes held no record that was kept). A valid record starts at `resume`.
    Damaged {
        pos: usize,
        resume: usize,
        lost: Range<u64>,
        error: crate::record::DecodeError,
    },
}

/// Walks a segment's records from a record boundary, naming the offsets each damaged region
/// and each jump between valid records lost.
#[derive(Debug)]
pub(crate) struct SegmentAnalysis<'b> {
    bytes: &'b [u8],
    scanner: Scanner<'b>,
    from: usize,
    expected: u64,
    seen_record: bool,
}

impl<'b> SegmentAnalysis<'b> {
    /// The analysis of `bytes` (a whole segment file) from `from`, where a record with offset
    /// `expected` or more belongs. `after` is the record before `from` when the analysis
    /// continues an index: its ID bounds the next one, and offsets missing right after it are
    /// a jump between valid records.
    pub(crate) fn new(
        bytes: &'b [u8],
        from: usize,
        expected: u64,
        after: Option<StreamId>,
    ) -> Self {
        let mut scanner = Scanner::new(bytes, from, expected);
        if let Some(id) = after {
            scanner = scanner.after_id(id);
        }
        SegmentAnalysis {
            bytes,
            scanner,
            from,
            expected,
            seen_record: after.is_some(),
        }
    }

    /// Where the records end and what follows them; `None` until the walk has ended.
    pub(crate) fn end(&self) -> Option<ScanEnd> {
        self.scanner.end()
    }

    /// Bytes walked, from the start to the end of the records.
    pub(crate) fn walked_bytes(&self) -> Option<u64> {
        self.end().map(|end| (end.end - self.from) as u64)
    }

    /// The offset the next record would have had: after the last valid record, or the start.
    pub(crate) fn next_offset(&self) -> u64 {
        self.expected
    }
}

impl<'b> Iterator for SegmentAnalysis<'b> {
    type Item = Found<'b>;

    fn next(&mut self) -> Option<Found<'b>> {
        match self.scanner.next()? {
            ScanItem::Record { pos, record } => {
                let missing_before = (record.offset > self.expected && self.seen_record)
                    .then_some(self.expected..record.offset);
                self.expected = record.offset + 1;
                self.seen_record = true;
                Some(Found::Record {
                    pos,
                    record,
                    missing_before,
                })
            }
            ScanItem::Damaged { pos, resume, error } => {
                // The scanner resumes only at a record it accepts, which continues the offsets:
                // everything from the expected offset up to that record's is lost.
                let resumed = crate::record::peek(&self.bytes[resume..])
                    .map_or(self.expected, |peek| peek.offset);
                let lost = self.expected..resumed;
                self.expected = resumed;
                Some(Found::Damaged {
                    pos,
                    resume,
                    lost,
                    error,
                })
            }
        }
    }
}

/// How a segment follows the one before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Continuity {
    /// It starts where the previous one ends, or after offsets that are all trimmed or
    /// deleted (an earlier open recorded them as lost).
    Continues,
    /// It starts at an offset the previous segment already holds.
    Overlaps { previous_next: u64 },
    /// Offsets between the two are held by no segment and not gone.
    Missing(Range<u64>),
}

/// How the segment whose base offset is `base` follows a segment whose records end before
/// `previous_next`.
pub(crate) fn continuity(previous_next: u64, base: u64, meta: &MetaState) -> Continuity {
    if base < previous_next {
        Continuity::Overlaps { previous_next }
    } else if base > previous_next && !meta.all_gone(previous_next..base) {
        Continuity::Missing(previous_next..base)
    } else {
        Continuity::Continues
    }
}

/// Offsets the checkpoint says were on disk but no segment holds, when the segments' records
/// end (`records_end`) before its recovery point.
pub(crate) fn missing_before_point(records_end: u64, point: &RecoveryPoint) -> Option<Range<u64>> {
    (records_end < point.next_offset).then_some(records_end..point.next_offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NewRecord;

    fn segment_bytes(offsets: &[u64]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = vec![0u8; crate::segment::HEADER_LEN];
        let mut positions = Vec::new();
        for &offset in offsets {
            positions.push(bytes.len());
            let headers: [(&[u8], &[u8]); 0] = [];
            let record = NewRecord {
                offset,
                id: StreamId::new(offset + 1, 0),
                timestamp_ms: offset,
                headers: &headers,
                idempotency: None,
                body: b"body of a record",
            };
            bytes.extend(record.to_vec().unwrap());
        }
        bytes.resize(bytes.len() + 4096, 0);
        (bytes, positions)
    }

    #[test]
    fn damaged_bytes_lose_the_offsets_up_to_the_record_that_resumes() {
        let (mut bytes, positions) = segment_bytes(&[0, 1, 2, 3]);
        bytes[positions[1] + 40] ^= 0xff;
        let found: Vec<_> = SegmentAnalysis::new(&bytes, positions[0], 0, None).collect();
        assert!(matches!(
            &found[1],
            Found::Damaged { pos, resume, lost, .. }
                if *pos == positions[1] && *resume == positions[2] && *lost == (1..2)
        ));
        assert_eq!(found.len(), 4);
    }

    #[test]
    fn a_jump_between_valid_records_is_missing_offsets() {
        let (bytes, positions) = segment_bytes(&[0, 1, 5]);
        let mut analysis = SegmentAnalysis::new(&bytes, positions[0], 0, None);
        let missing: Vec<_> = analysis
            .by_ref()
            .map(|found| match found {
                Found::Record { missing_before, .. } => missing_before,
                Found::Damaged { .. } => panic!("no damage"),
            })
            .collect();
        assert_eq!(missing, vec![None, None, Some(2..5)]);
        assert_eq!(analysis.next_offset(), 6);
        let end = analysis.end().unwrap();
        assert_eq!(end.end, end.dirty_end);
        assert_eq!(
            analysis.walked_bytes(),
            Some((end.end - positions[0]) as u64)
        );
    }

    #[test]
    fn the_first_record_of_a_fresh_walk_is_no_jump() {
        let (bytes, positions) = segment_bytes(&[7, 8]);
        let found: Vec<_> = SegmentAnalysis::new(&bytes, positions[0], 0, None).collect();
        assert!(matches!(
            &found[0],
            Found::Record {
                missing_before: None,
                ..
            }
        ));
        let continued = SegmentAnalysis::new(&bytes, positions[0], 0, Some(StreamId::MIN))
            .next()
            .unwrap();
        assert!(matches!(
            continued,
            Found::Record { missing_before: Some(missing), .. } if missing == (0..7)
        ));
    }

    #[test]
    fn continuity_ignores_gaps_that_are_gone() {
        let mut meta = MetaState::default();
        assert_eq!(continuity(10, 10, &meta), Continuity::Continues);
        assert_eq!(
            continuity(10, 8, &meta),
            Continuity::Overlaps { previous_next: 10 }
        );
        assert_eq!(continuity(10, 12, &meta), Continuity::Missing(10..12));
        meta.deleted.extend([10, 11]);
        assert_eq!(continuity(10, 12, &meta), Continuity::Continues);
        let point = RecoveryPoint {
            segment_base: 0,
            pos: 64,
            next_offset: 12,
            last_id: StreamId::MIN,
        };
        assert_eq!(missing_before_point(9, &point), Some(9..12));
        assert_eq!(missing_before_point(12, &point), None);
    }
}
