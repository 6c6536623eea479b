//! The sparse index of one segment: every few KiB, the offset, ID and byte position of a record.
//!
//! Offsets and IDs both grow with position, so one index answers "where is offset N" and "where
//! is the first entry with ID >= X" by binary search, followed by a short forward scan. The index
//! is a cache: it is rebuilt from the segment whenever its file is missing or fails its check.
//!
//! Index file layout (little-endian; `storage-format.md` has the normative description):
//!
//! ```text
//! 0   [u8; 8] magic        "WEIRIDX\0"
//! 8   u32     version      1
//! 12  u32     entry_count  N
//! 16  u64     base_offset  of the segment this index describes
//! 24  u64     end_pos      byte position where the segment's records end
//! 32  u64     record_count records in the segment (damaged ones excluded)
//! 40  u64     last_offset  offset of the last record
//! 48  u64     last_id_ms
//! 56  u64     last_id_seq
//! 64  u64     last_timestamp_ms
//! 72  N x 32-byte entries: u64 offset, u64 id_ms, u64 id_seq, u64 position
//! ..  u32     crc          CRC-32 (ISO-HDLC) of every byte before it
//! ```

use crate::codec::{u32_at, u64_at};
use crate::id::StreamId;

/// Magic bytes of an index file.
pub const INDEX_MAGIC: [u8; 8] = *b"WEIRIDX\0";
const INDEX_VERSION: u32 = 1;
const INDEX_HEADER_LEN: usize = 72;
const INDEX_ENTRY_LEN: usize = 32;

/// Byte positions of an index file's fields, for reports that point into the file.
pub mod layout {
    use super::{INDEX_ENTRY_LEN, INDEX_HEADER_LEN};

    /// `end_pos`.
    pub const END_POS: u64 = 24;
    /// `record_count`.
    pub const RECORD_COUNT: u64 = 32;
    /// The last record's offset, ID and timestamp.
    pub const LAST_RECORD: u64 = 40;

    /// The `n`th index point.
    pub fn entry(n: usize) -> u64 {
        (INDEX_HEADER_LEN + n * INDEX_ENTRY_LEN) as u64
    }
}

/// Why an index file was rejected (the engine then rebuilds the index from its segment).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("index file of {len} bytes is too short")]
    TooShort { len: usize },
    #[error("index checksum mismatch: the CRC at byte {crc_at} does not match bytes 0..{crc_at}")]
    Checksum { crc_at: usize },
    #[error("index file has a wrong magic number or version")]
    Header,
    #[error("index file length does not match its entry count")]
    Length,
    #[error("index file belongs to another segment")]
    OtherSegment,
    #[error("index entries are out of order")]
    Disorder,
}

impl IndexError {
    /// The byte position in the index file of the field found wrong.
    pub fn position(&self) -> u64 {
        match self {
            IndexError::TooShort { .. } | IndexError::Header => 0,
            IndexError::Checksum { crc_at } => *crc_at as u64,
            IndexError::Length => 12,
            IndexError::OtherSegment => 16,
            IndexError::Disorder => layout::entry(0),
        }
    }
}

/// One index point: a record's offset, ID and byte position in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub offset: u64,
    pub id: StreamId,
    pub pos: usize,
}

/// The last record of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastRecord {
    pub offset: u64,
    pub id: StreamId,
    pub timestamp_ms: u64,
}

/// What is known about the records of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentIndex {
    entries: Vec<IndexEntry>,
    last: Option<LastRecord>,
    record_count: u64,
    end_pos: usize,
    interval_bytes: usize,
}

impl SegmentIndex {
    /// Bytes the index holds in memory: its points, as allocated.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.entries.capacity() * std::mem::size_of::<IndexEntry>()
    }

    /// An empty index that records a point every `interval_bytes` of log.
    pub fn new(interval_bytes: usize, end_pos: usize) -> Self {
        SegmentIndex {
            interval_bytes: interval_bytes.max(1),
            end_pos,
            ..Self::default()
        }
    }

    /// Notes a record written at `pos` occupying `padded_len` bytes.
    pub fn add(&mut self, pos: usize, padded_len: usize, last: LastRecord) {
        debug_assert!(pos >= self.end_pos, "index positions must grow");
        debug_assert!(
            self.last
                .is_none_or(|l| l.offset < last.offset && l.id < last.id)
        );
        let due = self
            .entries
            .last()
            .is_none_or(|point| pos >= point.pos + self.interval_bytes);
        if due {
            self.entries.push(IndexEntry {
                offset: last.offset,
                id: last.id,
                pos,
            });
        }
        self.last = Some(last);
        self.record_count += 1;
        self.end_pos = pos + padded_len;
    }

    /// The index point to start a scan from to find `offset`: the last point at or before it
    /// (the first point when `offset` comes before all of them).
    pub fn seek_offset(&self, offset: u64) -> Option<IndexEntry> {
        let at = self.entries.partition_point(|e| e.offset <= offset);
        self.entries.get(at.saturating_sub(1)).copied()
    }

    /// The index point to start a scan from to find the first ID >= `id`.
    pub fn seek_id(&self, id: StreamId) -> Option<IndexEntry> {
        let at = self.entries.partition_point(|e| e.id <= id);
        self.entries.get(at.saturating_sub(1)).copied()
    }

    /// The index points, in order.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The first record, if any.
    pub fn first(&self) -> Option<IndexEntry> {
        self.entries.first().copied()
    }

    /// The last record, if any.
    pub fn last(&self) -> Option<LastRecord> {
        self.last
    }

    /// Records in the segment.
    pub fn record_count(&self) -> u64 {
        self.record_count
    }

    /// Where the records end.
    pub fn end_pos(&self) -> usize {
        self.end_pos
    }

    /// The index file's bytes.
    pub fn encode(&self, base_offset: u64) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(INDEX_HEADER_LEN + self.entries.len() * INDEX_ENTRY_LEN + 4);
        let last = self.last.unwrap_or(LastRecord {
            offset: 0,
            id: StreamId::MIN,
            timestamp_ms: 0,
        });
        out.extend_from_slice(&INDEX_MAGIC);
        out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for value in [
            base_offset,
            self.end_pos as u64,
            self.record_count,
            last.offset,
            last.id.ms,
            last.id.seq,
            last.timestamp_ms,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        for entry in &self.entries {
            for value in [entry.offset, entry.id.ms, entry.id.seq, entry.pos as u64] {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses an index file written by [`encode`](Self::encode) for the segment starting at
    /// `base_offset`; the error says why the file cannot be trusted.
    pub fn decode(
        bytes: &[u8],
        base_offset: u64,
        interval_bytes: usize,
    ) -> Result<Self, IndexError> {
        if bytes.len() < INDEX_HEADER_LEN + 4 {
            return Err(IndexError::TooShort { len: bytes.len() });
        }
        let (body, crc_bytes) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
        if crc32fast::hash(body) != stored {
            return Err(IndexError::Checksum { crc_at: body.len() });
        }
        if body[0..8] != INDEX_MAGIC || u32_at(body, 8) != INDEX_VERSION {
            return Err(IndexError::Header);
        }
        let count = u32_at(body, 12) as usize;
        if body.len() != INDEX_HEADER_LEN + count * INDEX_ENTRY_LEN {
            return Err(IndexError::Length);
        }
        if u64_at(body, 16) != base_offset {
            return Err(IndexError::OtherSegment);
        }
        let record_count = u64_at(body, 32);
        let last = (record_count > 0).then(|| LastRecord {
            offset: u64_at(body, 40),
            id: StreamId::new(u64_at(body, 48), u64_at(body, 56)),
            timestamp_ms: u64_at(body, 64),
        });
        let entries = body[INDEX_HEADER_LEN..]
            .chunks_exact(INDEX_ENTRY_LEN)
            .map(|chunk| IndexEntry {
                offset: u64_at(chunk, 0),
                id: StreamId::new(u64_at(chunk, 8), u64_at(chunk, 16)),
                pos: u64_at(chunk, 24) as usize,
            })
            .collect::<Vec<_>>();
        let ordered = entries
            .windows(2)
            .all(|w| w[0].offset < w[1].offset && w[0].id < w[1].id && w[0].pos < w[1].pos);
        if !ordered || (record_count == 0) != entries.is_empty() {
            return Err(IndexError::Disorder);
        }
        Ok(SegmentIndex {
            entries,
            last,
            record_count,
            end_pos: u64_at(body, 24) as usize,
            interval_bytes: interval_bytes.max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last(offset: u64) -> LastRecord {
        LastRecord {
            offset,
            id: StreamId::new(offset + 1, 0),
            timestamp_ms: offset * 10,
        }
    }

    fn sample() -> SegmentIndex {
        let mut index = SegmentIndex::new(100, 64);
        for offset in 0..50u64 {
            index.add(64 + offset as usize * 40, 40, last(offset));
        }
        index
    }

    #[test]
    fn seeks_land_at_or_before_the_target() {
        let index = sample();
        assert!(index.entries().len() < 50, "index must be sparse");
        for offset in 0..50 {
            let point = index.seek_offset(offset).unwrap();
            assert!(point.offset <= offset);
            let point = index.seek_id(StreamId::new(offset + 1, 0)).unwrap();
            assert!(point.id <= StreamId::new(offset + 1, 0));
        }
        assert_eq!(index.seek_id(StreamId::MIN).unwrap().offset, 0);
        assert_eq!(index.record_count(), 50);
        assert_eq!(index.end_pos(), 64 + 50 * 40);
    }

    #[test]
    fn file_round_trip_and_damage_detection() {
        let index = sample();
        let bytes = index.encode(7);
        assert_eq!(SegmentIndex::decode(&bytes, 7, 100).unwrap(), index);
        assert!(SegmentIndex::decode(&bytes, 8, 100).is_err());
        for at in [0, 20, bytes.len() / 2, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(SegmentIndex::decode(&damaged, 7, 100).is_err(), "byte {at}");
        }
        assert!(SegmentIndex::decode(&bytes[..bytes.len() - 5], 7, 100).is_err());
        assert!(SegmentIndex::decode(&[], 7, 100).is_err());
    }
}
