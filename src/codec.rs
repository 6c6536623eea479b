//! Little-endian encoding helpers for the small binary structures written to journals and
//! snapshots. Decoding never panics: every read checks the remaining length.

use crate::id::StreamId;

/// The little-endian `u16` at `at`; the caller has checked that 2 bytes are there.
#[inline]
pub fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// The little-endian `u32` at `at`; the caller has checked that 4 bytes are there.
#[inline]
pub fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut out = [0; 4];
    out.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(out)
}

/// The little-endian `u64` at `at`; the caller has checked that 8 bytes are there.
#[inline]
pub fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut out = [0; 8];
    out.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(out)
}

/// Writes `value` little-endian at `at`; the caller has checked that 4 bytes are there.
#[inline]
pub fn put_u32_at(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// Writes `value` little-endian at `at`; the caller has checked that 8 bytes are there.
#[inline]
pub fn put_u64_at(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Why a buffer does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {detail}")]
pub struct CodecError {
    pub what: &'static str,
    pub detail: &'static str,
}

/// Appends little-endian values to a byte vector.
#[derive(Debug, Default)]
pub struct Encoder {
    out: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty encoder with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        Encoder {
            out: Vec::with_capacity(bytes),
        }
    }

    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.out.push(value);
        self
    }

    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.out.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.out.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn id(&mut self, id: StreamId) -> &mut Self {
        self.u64(id.ms).u64(id.seq)
    }

    /// A `u32` length followed by the bytes.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.u32(bytes.len() as u32);
        self.out.extend_from_slice(bytes);
        self
    }

    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Reads little-endian values from a byte slice.
#[derive(Debug)]
pub struct Decoder<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Decoder<'a> {
    /// Reads `bytes`, naming them `what` in errors.
    pub fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Decoder { rest: bytes, what }
    }

    fn error(&self, detail: &'static str) -> CodecError {
        CodecError {
            what: self.what,
            detail,
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], CodecError> {
        if self.rest.len() < len {
            return Err(self.error("ends too early"));
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, CodecError> {
        let mut out = [0; 4];
        out.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(out))
    }

    pub fn u64(&mut self) -> Result<u64, CodecError> {
        let mut out = [0; 8];
        out.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(out))
    }

    pub fn id(&mut self) -> Result<StreamId, CodecError> {
        Ok(StreamId::new(self.u64()?, self.u64()?))
    }

    /// A `u32` length followed by that many bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// A count of items that are each at least `min_item_len` bytes: rejects counts the
    /// remaining bytes cannot hold, so garbage cannot make the caller allocate much.
    pub fn count(&mut self, min_item_len: usize) -> Result<usize, CodecError> {
        let count = self.u64()?;
        let fits = usize::try_from(count)
            .ok()
            .filter(|&n| n.saturating_mul(min_item_len.max(1)) <= self.rest.len());
        fits.ok_or_else(|| self.error("count exceeds the remaining bytes"))
    }

    /// Whether every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), CodecError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.error("has trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let mut encoder = Encoder::new();
        encoder
            .u8(1)
            .u32(2)
            .u64(3)
            .id(StreamId::new(4, 5))
            .bytes(b"six");
        let bytes = encoder.finish();
        let mut decoder = Decoder::new(&bytes, "sample");
        assert_eq!(decoder.u8().unwrap(), 1);
        assert_eq!(decoder.u32().unwrap(), 2);
        assert_eq!(decoder.u64().unwrap(), 3);
        assert_eq!(decoder.id().unwrap(), StreamId::new(4, 5));
        assert_eq!(decoder.bytes().unwrap(), b"six");
        decoder.finish().unwrap();
        let mut short = Decoder::new(&bytes[..3], "sample");
        assert!(short.u32().is_err());
        let mut huge = Decoder::new(&[0xff; 8], "sample");
        assert!(huge.count(1).is_err());
    }
}
