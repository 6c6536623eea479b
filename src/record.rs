//! Record encoding: the bytes of one stream entry. Pure: no I/O, no allocation when decoding.
//!
//! Layout (every integer little-endian; `storage-format.md` is the normative description):
//!
//! ```text
//! 0   u32 length          bytes from 0 to the end of the body (padding excluded), >= 64
//! 4   u32 crc             CRC-32 (ISO-HDLC, as crc32fast) of bytes 0..4 then bytes 8..length
//! 8   u8  kind            1 = entry; 0 never starts a record, so zeroed space reads as "end"
//! 9   u8  flags           bit 0: an idempotency block is present; other bits zero
//! 10  u16 reserved        zero
//! 12  u32 header_count    number of (name, value) pairs
//! 16  u64 offset          dense position of the entry in its stream, from 0
//! 24  u64 id_ms           stream ID, milliseconds part
//! 32  u64 id_seq          stream ID, sequence part
//! 40  u64 timestamp_ms    wall time of the append, Unix milliseconds
//! 48  u32 headers_len     bytes of the header block
//! 52  u32 idempotency_len bytes of the idempotency block (0 when flag bit 0 is clear)
//! 56  u32 body_len        bytes of the body
//! 60  u32 reserved        zero
//! 64  header block        header_count x (u32 name_len, name, u32 value_len, value)
//! ..  idempotency block   u32 producer_len, producer, u32 iid_len, iid
//! ..  body
//! ..  zero padding up to the next multiple of 8 (not covered by the CRC)
//! ```
//!
//! The CRC covers the length and the identity (offset and ID), so a torn record, a flipped bit
//! and a valid record written at the wrong place are all detected.

use std::sync::OnceLock;

use crate::codec::{put_u32_at, put_u64_at, u16_at, u32_at, u64_at};
use crate::id::StreamId;

/// Bytes of the fixed part of a record.
pub const FIXED_LEN: usize = 64;
/// Records start at multiples of this many bytes within a segment.
pub const ALIGN: usize = 8;
/// The only record kind so far: a stream entry.
pub const KIND_ENTRY: u8 = 1;
/// Flag bit: the record carries an idempotency block.
pub const FLAG_IDEMPOTENCY: u8 = 1;
/// The largest record accepted, fixed part included (Redis's `proto-max-bulk-len` is 512 MiB).
pub const MAX_RECORD_LEN: usize = 512 * 1024 * 1024;

const LEN_AT: usize = 0;
const CRC_AT: usize = 4;
const KIND_AT: usize = 8;
const FLAGS_AT: usize = 9;
const RESERVED16_AT: usize = 10;
const HEADER_COUNT_AT: usize = 12;
const OFFSET_AT: usize = 16;
const ID_MS_AT: usize = 24;
const ID_SEQ_AT: usize = 32;
const TIMESTAMP_AT: usize = 40;
const HEADERS_LEN_AT: usize = 48;
const IDEMPOTENCY_LEN_AT: usize = 52;
const BODY_LEN_AT: usize = 56;
const RESERVED32_AT: usize = 60;

// The fixed part of storage-format.md 4.1, each field after the one before it.
const _: () = assert!(LEN_AT + 4 == CRC_AT && CRC_AT + 4 == KIND_AT);
const _: () = assert!(KIND_AT + 1 == FLAGS_AT && FLAGS_AT + 1 == RESERVED16_AT);
const _: () = assert!(RESERVED16_AT + 2 == HEADER_COUNT_AT && HEADER_COUNT_AT + 4 == OFFSET_AT);
const _: () = assert!(OFFSET_AT + 8 == ID_MS_AT && ID_MS_AT + 8 == ID_SEQ_AT);
const _: () = assert!(ID_SEQ_AT + 8 == TIMESTAMP_AT && TIMESTAMP_AT + 8 == HEADERS_LEN_AT);
const _: () = assert!(HEADERS_LEN_AT + 4 == IDEMPOTENCY_LEN_AT);
const _: () = assert!(IDEMPOTENCY_LEN_AT + 4 == BODY_LEN_AT && BODY_LEN_AT + 4 == RESERVED32_AT);
const _: () = assert!(RESERVED32_AT + 4 == FIXED_LEN && FIXED_LEN % ALIGN == 0);
const _: () = assert!(MAX_RECORD_LEN <= u32::MAX as usize);

/// Why bytes are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The first bytes are zero: no record was ever written here (the normal end of a log).
    #[error("no record here: the space is zeroed")]
    Empty,
    /// Fewer bytes are available than the record needs.
    #[error("record is cut short: it needs {needed} bytes, {available} are there")]
    Truncated { needed: usize, available: usize },
    /// The length field is impossible.
    #[error("record length {0} is out of range")]
    BadLength(u32),
    /// The kind, flags or reserved fields hold values no writer produces.
    #[error("record has an unknown kind {kind} or flags {flags:#x}, or non-zero reserved bytes")]
    BadFields { kind: u8, flags: u8 },
    /// The section lengths do not add up to the record length, or a header overruns its block.
    #[error("record sections are inconsistent with its length")]
    Inconsistent,
    /// The checksum does not match the content.
    #[error("record checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
}

/// Why a record cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The entry is larger than [`MAX_RECORD_LEN`].
    #[error(
        "entry of {0} bytes exceeds the {MAX_RECORD_LEN}-byte limit: split it into smaller entries"
    )]
    TooLarge(usize),
    /// The destination buffer is not exactly [`NewRecord::padded_len`] bytes.
    #[error("destination of {got} bytes does not match the record's padded length {expected}")]
    WrongDestination { expected: usize, got: usize },
}

/// A (producer, idempotency id) pair that makes an append idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyKey<'a> {
    /// The producer that sent the entry.
    pub producer: &'a [u8],
    /// The producer's identifier for this entry.
    pub iid: &'a [u8],
}

/// An entry about to be encoded.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a, H: AsRef<[u8]>> {
    pub offset: u64,
    pub id: StreamId,
    pub timestamp_ms: u64,
    pub headers: &'a [(H, H)],
    pub idempotency: Option<IdempotencyKey<'a>>,
    pub body: &'a [u8],
}

/// The lengths of a record's variable sections, computed once per encoding.
#[derive(Debug, Clone, Copy)]
struct Sections {
    headers_len: usize,
    idempotency_len: usize,
    len: usize,
}

impl<H: AsRef<[u8]>> NewRecord<'_, H> {
    fn sections(&self) -> Sections {
        let headers_len = self
            .headers
            .iter()
            .map(|(name, value)| 8 + name.as_ref().len() + value.as_ref().len())
            .sum();
        let idempotency_len = self
            .idempotency
            .map_or(0, |key| 8 + key.producer.len() + key.iid.len());
        Sections {
            headers_len,
            idempotency_len,
            len: FIXED_LEN + headers_len + idempotency_len + self.body.len(),
        }
    }

    /// Bytes of the record without padding.
    pub fn len(&self) -> usize {
        self.sections().len
    }

    /// Always false: a record has at least its fixed part.
    #[cfg(any(test, feature = "internals"))]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Bytes the record occupies in a segment, padding included.
    pub fn padded_len(&self) -> usize {
        padded(self.len())
    }

    /// Checks that the record can be encoded, returning its padded length.
    pub fn check(&self) -> Result<usize, EncodeError> {
        self.checked_sections().map(|sections| padded(sections.len))
    }

    fn checked_sections(&self) -> Result<Sections, EncodeError> {
        let sections = self.sections();
        if sections.len > MAX_RECORD_LEN || self.headers.len() > u32::MAX as usize {
            return Err(EncodeError::TooLarge(sections.len));
        }
        Ok(sections)
    }

    /// Writes the record and its padding into `dst`, which must be exactly
    /// [`padded_len`](Self::padded_len) bytes.
    pub fn encode_into(&self, dst: &mut [u8]) -> Result<(), EncodeError> {
        let sections = self.checked_sections()?;
        let len = sections.len;
        if dst.len() != padded(len) {
            return Err(EncodeError::WrongDestination {
                expected: padded(len),
                got: dst.len(),
            });
        }
        let mut fixed = [0u8; FIXED_LEN];
        put_u32_at(&mut fixed, LEN_AT, len as u32);
        fixed[KIND_AT] = KIND_ENTRY;
        fixed[FLAGS_AT] = if self.idempotency.is_some() {
            FLAG_IDEMPOTENCY
        } else {
            0
        };
        put_u32_at(&mut fixed, HEADER_COUNT_AT, self.headers.len() as u32);
        put_u64_at(&mut fixed, OFFSET_AT, self.offset);
        put_u64_at(&mut fixed, ID_MS_AT, self.id.ms);
        put_u64_at(&mut fixed, ID_SEQ_AT, self.id.seq);
        put_u64_at(&mut fixed, TIMESTAMP_AT, self.timestamp_ms);
        put_u32_at(&mut fixed, HEADERS_LEN_AT, sections.headers_len as u32);
        put_u32_at(
            &mut fixed,
            IDEMPOTENCY_LEN_AT,
            sections.idempotency_len as u32,
        );
        put_u32_at(&mut fixed, BODY_LEN_AT, self.body.len() as u32);
        dst[..FIXED_LEN].copy_from_slice(&fixed);
        let mut at = FIXED_LEN;
        for (name, value) in self.headers {
            at = put_bytes(dst, at, name.as_ref());
            at = put_bytes(dst, at, value.as_ref());
        }
        if let Some(key) = self.idempotency {
            at = put_bytes(dst, at, key.producer);
            at = put_bytes(dst, at, key.iid);
        }
        dst[at..len].copy_from_slice(self.body);
        dst[len..].fill(0);
        let crc = checksum(&dst[..len]);
        put_u32_at(dst, CRC_AT, crc);
        Ok(())
    }

    /// Encodes into a new vector (padding included).
    #[cfg(any(test, feature = "internals"))]
    pub fn to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = vec![0; self.check()?];
        self.encode_into(&mut out)?;
        Ok(out)
    }
}

/// A decoded record borrowing the bytes it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset: u64,
    pub id: StreamId,
    pub timestamp_ms: u64,
    /// Bytes the record occupies, padding included: where the next record starts.
    pub padded_len: usize,
    header_count: u32,
    header_block: &'a [u8],
    pub idempotency: Option<IdempotencyKey<'a>>,
    pub body: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// The (name, value) headers in the order they were written.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            rest: self.header_block,
            remaining: self.header_count,
        }
    }

    /// Number of headers.
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }
}

/// Iterator over a record's headers.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
    remaining: u32,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        // Validated by `decode`: the block holds exactly `remaining` well-formed pairs.
        let (name, rest) = take_bytes(self.rest)?;
        let (value, rest) = take_bytes(rest)?;
        self.rest = rest;
        self.remaining -= 1;
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

/// What the fixed part of a record says, read without checking the CRC. Used to resynchronise
/// after damage: a candidate is only believed once [`decode`] accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peek {
    pub len: usize,
    pub offset: u64,
    pub id: StreamId,
}

/// Reads the length and identity at the start of `buf` if it looks like a record header.
pub fn peek(buf: &[u8]) -> Option<Peek> {
    if buf.len() < FIXED_LEN || buf[KIND_AT] != KIND_ENTRY {
        return None;
    }
    let len = u32_at(buf, LEN_AT) as usize;
    if !(FIXED_LEN..=MAX_RECORD_LEN).contains(&len) {
        return None;
    }
    Some(Peek {
        len,
        offset: u64_at(buf, OFFSET_AT),
        id: StreamId::new(u64_at(buf, ID_MS_AT), u64_at(buf, ID_SEQ_AT)),
    })
}

/// Decodes the record at the start of `buf`, checking every field and the CRC.
///
/// `buf` may extend past the record; bytes after it are not read. Padding bytes are not checked.
pub fn decode(buf: &[u8]) -> Result<RecordView<'_>, DecodeError> {
    if buf.len() < FIXED_LEN {
        if buf.iter().all(|&b| b == 0) {
            return Err(DecodeError::Empty);
        }
        return Err(DecodeError::Truncated {
            needed: FIXED_LEN,
            available: buf.len(),
        });
    }
    let raw_len = u32_at(buf, LEN_AT);
    if raw_len == 0 && u32_at(buf, CRC_AT) == 0 && buf[KIND_AT] == 0 {
        return Err(DecodeError::Empty);
    }
    let len = raw_len as usize;
    if !(FIXED_LEN..=MAX_RECORD_LEN).contains(&len) {
        return Err(DecodeError::BadLength(raw_len));
    }
    let kind = buf[KIND_AT];
    let flags = buf[FLAGS_AT];
    if kind != KIND_ENTRY
        || flags & !FLAG_IDEMPOTENCY != 0
        || u16_at(buf, RESERVED16_AT) != 0
        || u32_at(buf, RESERVED32_AT) != 0
    {
        return Err(DecodeError::BadFields { kind, flags });
    }
    if buf.len() < len {
        return Err(DecodeError::Truncated {
            needed: len,
            available: buf.len(),
        });
    }
    let record = &buf[..len];
    let stored = u32_at(record, CRC_AT);
    let computed = checksum(record);
    if stored != computed {
        return Err(DecodeError::CrcMismatch { stored, computed });
    }
    parse_sections(record, flags)
}

/// Parses a record that was already verified by [`decode`] when it was read from the same,
/// immutable bytes: the structure is checked again (so this never panics), the CRC is not.
pub fn decode_verified(buf: &[u8]) -> Result<RecordView<'_>, DecodeError> {
    let len = peek(buf).ok_or(DecodeError::Inconsistent)?.len;
    let record = buf.get(..len).ok_or(DecodeError::Truncated {
        needed: len,
        available: buf.len(),
    })?;
    parse_sections(record, record[FLAGS_AT])
}

fn parse_sections(record: &[u8], flags: u8) -> Result<RecordView<'_>, DecodeError> {
    let headers_len = u32_at(record, HEADERS_LEN_AT) as usize;
    let idempotency_len = u32_at(record, IDEMPOTENCY_LEN_AT) as usize;
    let body_len = u32_at(record, BODY_LEN_AT) as usize;
    let total = FIXED_LEN
        .checked_add(headers_len)
        .and_then(|n| n.checked_add(idempotency_len))
        .and_then(|n| n.checked_add(body_len));
    if total != Some(record.len()) || (flags & FLAG_IDEMPOTENCY == 0) != (idempotency_len == 0) {
        return Err(DecodeError::Inconsistent);
    }
    let header_count = u32_at(record, HEADER_COUNT_AT);
    let header_end = FIXED_LEN + headers_len;
    let header_block = &record[FIXED_LEN..header_end];
    check_header_block(header_block, header_count)?;
    let idempotency_block = &record[header_end..header_end + idempotency_len];
    let idempotency = if idempotency_len == 0 {
        None
    } else {
        let (producer, rest) = take_bytes(idempotency_block).ok_or(DecodeError::Inconsistent)?;
        let (iid, rest) = take_bytes(rest).ok_or(DecodeError::Inconsistent)?;
        if !rest.is_empty() {
            return Err(DecodeError::Inconsistent);
        }
        Some(IdempotencyKey { producer, iid })
    };
    Ok(RecordView {
        offset: u64_at(record, OFFSET_AT),
        id: StreamId::new(u64_at(record, ID_MS_AT), u64_at(record, ID_SEQ_AT)),
        timestamp_ms: u64_at(record, TIMESTAMP_AT),
        padded_len: padded(record.len()),
        header_count,
        header_block,
        idempotency,
        body: &record[header_end + idempotency_len..],
    })
}

fn check_header_block(mut block: &[u8], count: u32) -> Result<(), DecodeError> {
    for _ in 0..count {
        let (_, rest) = take_bytes(block).ok_or(DecodeError::Inconsistent)?;
        let (_, rest) = take_bytes(rest).ok_or(DecodeError::Inconsistent)?;
        block = rest;
    }
    if block.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::Inconsistent)
    }
}

/// The CRC of a whole unpadded record: its bytes 0..4, then 8..end (the CRC field is skipped).
pub fn checksum(record: &[u8]) -> u32 {
    // `Hasher::new` probes the CPU's features on every call, a tenth of the cost of checksumming
    // a small record: clone one that has probed them already.
    static PROBED: OnceLock<crc32fast::Hasher> = OnceLock::new();
    let mut hasher = PROBED.get_or_init(crc32fast::Hasher::new).clone();
    hasher.update(&record[..CRC_AT]);
    hasher.update(&record[CRC_AT + 4..]);
    hasher.finalize()
}

/// `len` rounded up to a multiple of [`ALIGN`].
pub const fn padded(len: usize) -> usize {
    len.div_ceil(ALIGN) * ALIGN
}

fn take_bytes(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let len_bytes = buf.get(..4)?;
    let len = u32::from_le_bytes(len_bytes.try_into().ok()?) as usize;
    let rest = &buf[4..];
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

fn put_bytes(dst: &mut [u8], at: usize, bytes: &[u8]) -> usize {
    put_u32_at(dst, at, bytes.len() as u32);
    dst[at + 4..at + 4 + bytes.len()].copy_from_slice(bytes);
    at + 4 + bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(headers: &'a [(&'a [u8], &'a [u8])], body: &'a [u8]) -> NewRecord<'a, &'a [u8]> {
        NewRecord {
            offset: 7,
            id: StreamId::new(1_700_000_000_000, 2),
            timestamp_ms: 1_700_000_000_123,
            headers,
            idempotency: Some(IdempotencyKey {
                producer: b"p1",
                iid: b"42",
            }),
            body,
        }
    }

    #[test]
    fn round_trips_every_field() {
        let headers: [(&[u8], &[u8]); 2] = [(b"name", b"value"), (b"", b"\0\xff")];
        let record = sample(&headers, b"hello body");
        let bytes = record.to_vec().unwrap();
        assert_eq!(bytes.len() % ALIGN, 0);
        let view = decode(&bytes).unwrap();
        assert_eq!(view.offset, 7);
        assert_eq!(view.id, record.id);
        assert_eq!(view.timestamp_ms, record.timestamp_ms);
        assert_eq!(view.padded_len, bytes.len());
        assert_eq!(view.headers().collect::<Vec<_>>(), headers.to_vec());
        assert_eq!(view.idempotency, record.idempotency);
        assert_eq!(view.body, b"hello body");
    }

    #[test]
    fn an_empty_entry_is_just_the_fixed_part() {
        let record: NewRecord<'_, &[u8]> = NewRecord {
            offset: 0,
            id: StreamId::new(1, 1),
            timestamp_ms: 0,
            headers: &[],
            idempotency: None,
            body: &[],
        };
        let bytes = record.to_vec().unwrap();
        assert_eq!(bytes.len(), FIXED_LEN);
        let view = decode(&bytes).unwrap();
        assert_eq!(view.headers().count(), 0);
        assert!(view.body.is_empty());
        assert!(view.idempotency.is_none());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let headers: [(&[u8], &[u8]); 1] = [(b"k", b"v")];
        let bytes = sample(&headers, b"payload").to_vec().unwrap();
        let len = sample(&headers, b"payload").len();
        for byte in 0..len {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[byte] ^= 1 << bit;
                assert!(
                    decode(&damaged).is_err(),
                    "flip at byte {byte} bit {bit} passed"
                );
            }
        }
    }

    #[test]
    fn zeroes_read_as_empty_and_short_buffers_as_truncated() {
        assert_eq!(decode(&[0; 100]), Err(DecodeError::Empty));
        assert_eq!(decode(&[0; 10]), Err(DecodeError::Empty));
        let headers: [(&[u8], &[u8]); 0] = [];
        let bytes = sample(&headers, b"abc").to_vec().unwrap();
        assert!(matches!(
            decode(&bytes[..bytes.len() - 8]),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn a_record_moved_to_another_offset_fails_its_crc() {
        let headers: [(&[u8], &[u8]); 0] = [];
        let mut bytes = sample(&headers, b"abc").to_vec().unwrap();
        bytes[OFFSET_AT] = 8;
        assert!(matches!(
            decode(&bytes),
            Err(DecodeError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn peek_reads_identity_without_checking() {
        let headers: [(&[u8], &[u8]); 0] = [];
        let record = sample(&headers, b"abc");
        let bytes = record.to_vec().unwrap();
        let peeked = peek(&bytes).unwrap();
        assert_eq!(peeked.len, record.len());
        assert_eq!(peeked.offset, 7);
        assert_eq!(peeked.id, record.id);
        assert_eq!(peek(&[0; 64]), None);
    }

    #[test]
    fn rejects_a_wrong_destination() {
        let headers: [(&[u8], &[u8]); 0] = [];
        let record = sample(&headers, b"abc");
        let mut dst = vec![0; record.padded_len() + 8];
        assert!(matches!(
            record.encode_into(&mut dst),
            Err(EncodeError::WrongDestination { .. })
        ));
    }
}
