//! A stream's own settings, kept in its log's metadata (the `attributes` of the meta journal and
//! checkpoint), so they change atomically with the log's other metadata and survive restarts.
//!
//! Encoding: a sequence of `(u8 tag, u64 value)` pairs, little-endian; a setting at its default is
//! left out. Tags: 1 = work-queue retention (1 = on), 2 = idempotency window in milliseconds,
//! 3 = idempotency keys kept per producer, 4 = length limit in entries, 5 = discard policy at the
//! limits (1 = refuse new entries), 6 = idle expiry in milliseconds, 7 = size limit in stored
//! bytes. storage-format.md, section 11, has the byte layout.

use crate::codec::{CodecError, Decoder, Encoder};

const TAG_WORK_QUEUE: u8 = 1;
const TAG_IDEMPOTENCY_DURATION_MS: u8 = 2;
const TAG_IDEMPOTENCY_MAX_SIZE: u8 = 3;
const TAG_MAX_LEN: u8 = 4;
const TAG_DISCARD: u8 = 5;
const TAG_EXPIRE_IDLE_MS: u8 = 6;
const TAG_MAX_BYTES: u8 = 7;

/// What a stream does when an append would take it past its length or size limit. Age limits
/// (retention by age) always drop the oldest entries, as in NATS JetStream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Discard {
    /// Drop the oldest entries to make room, as `XADD … MAXLEN` does.
    #[default]
    Old,
    /// Refuse the append ([`StoreError::StreamFull`](crate::StoreError::StreamFull)): producers
    /// feel backpressure until consumers catch up (NATS's `DiscardNew`).
    New,
}

impl Discard {
    /// The policy as `XCFGSET … DISCARD` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Discard::Old => "old",
            Discard::New => "new",
        }
    }
}

/// Settings of one stream beyond retention limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamConfig {
    /// Work-queue retention: entries go once every group has acknowledged them.
    pub work_queue: bool,
    /// How long idempotency keys are remembered (`None`: the default).
    pub idempotency_duration_ms: Option<u64>,
    /// How many idempotency keys are remembered per producer (`None`: the default).
    pub idempotency_max_size: Option<u64>,
    /// Most live entries the stream holds (`None`: unlimited); what happens at the limit is
    /// [`discard`](Self::discard).
    pub max_len: Option<u64>,
    /// Most bytes the live entries store (`None`: unlimited): the sum of their records' sizes in
    /// the segments, as `Log::stored_bytes` counts them; what
    /// happens at the limit is [`discard`](Self::discard).
    pub max_bytes: Option<u64>,
    /// The policy at [`max_len`](Self::max_len) and [`max_bytes`](Self::max_bytes).
    pub discard: Discard,
    /// Delete the whole stream once nothing was appended to it for this long and no handle to it
    /// is held in the process (`None`: never). Reply streams use it so that abandoned ones do
    /// not accumulate.
    pub expire_idle_ms: Option<u64>,
}

impl StreamConfig {
    /// The attribute bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Encoder::new();
        if self.work_queue {
            out.u8(TAG_WORK_QUEUE).u64(1);
        }
        if let Some(ms) = self.idempotency_duration_ms {
            out.u8(TAG_IDEMPOTENCY_DURATION_MS).u64(ms);
        }
        if let Some(size) = self.idempotency_max_size {
            out.u8(TAG_IDEMPOTENCY_MAX_SIZE).u64(size);
        }
        if let Some(max_len) = self.max_len {
            out.u8(TAG_MAX_LEN).u64(max_len);
        }
        if self.discard == Discard::New {
            out.u8(TAG_DISCARD).u64(1);
        }
        if let Some(ms) = self.expire_idle_ms {
            out.u8(TAG_EXPIRE_IDLE_MS).u64(ms);
        }
        if let Some(max_bytes) = self.max_bytes {
            out.u8(TAG_MAX_BYTES).u64(max_bytes);
        }
        out.finish()
    }

    /// Parses attribute bytes (empty bytes are the defaults).
    pub fn decode(bytes: &[u8]) -> Result<StreamConfig, CodecError> {
        let mut input = Decoder::new(bytes, "stream configuration");
        let mut config = StreamConfig::default();
        while !input.is_empty() {
            let tag = input.u8()?;
            let value = input.u64()?;
            match tag {
                TAG_WORK_QUEUE => config.work_queue = value == 1,
                TAG_IDEMPOTENCY_DURATION_MS => config.idempotency_duration_ms = Some(value),
                TAG_IDEMPOTENCY_MAX_SIZE => config.idempotency_max_size = Some(value),
                TAG_MAX_LEN => config.max_len = Some(value),
                TAG_DISCARD if value == 1 => config.discard = Discard::New,
                TAG_DISCARD => config.discard = Discard::Old,
                TAG_EXPIRE_IDLE_MS => config.expire_idle_ms = Some(value),
                TAG_MAX_BYTES => config.max_bytes = Some(value),
                _ => {
                    return Err(CodecError {
                        what: "stream configuration",
                        detail: "unknown setting",
                    });
                }
            }
        }
        Ok(config)
    }

    /// Whether an append of `batch` to a stream now at `current` must be refused, and which
    /// limit refuses it. `current.bytes` is only looked at when
    /// [`refuses_by_bytes`](Self::refuses_by_bytes).
    pub(crate) fn admit(&self, current: Usage, batch: Usage) -> Result<(), Refusal> {
        if self.max_bytes.is_some_and(|max| batch.bytes > max) {
            // Under `Old`, the append would drop itself: nothing could be kept.
            return Err(Refusal::LargerThanLimit);
        }
        if self.discard == Discard::Old {
            return Ok(());
        }
        let over = |limit: Option<u64>, now: u64, adding: u64| {
            limit.is_some_and(|max| now.saturating_add(adding) > max)
        };
        if over(self.max_len, current.entries, batch.entries) {
            return Err(Refusal::Length);
        }
        if self.refuses_by_bytes() && over(self.max_bytes, current.bytes, batch.bytes) {
            return Err(Refusal::Bytes);
        }
        Ok(())
    }

    /// Whether appends are checked against the stream's stored bytes.
    pub(crate) fn refuses_by_bytes(&self) -> bool {
        self.discard == Discard::New && self.max_bytes.is_some()
    }

    /// Whether appends must be serialized with the check of a limit or the trim after them.
    pub(crate) fn has_limits(&self) -> bool {
        self.max_len.is_some() || self.max_bytes.is_some()
    }
}

/// A stream's size, or an append's, in entries and stored bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) entries: u64,
    pub(crate) bytes: u64,
}

/// Which limit refused an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `MAXLEN` with `DISCARD new`.
    Length,
    /// `MAXBYTES` with `DISCARD new`.
    Bytes,
    /// The append alone needs more than `MAXBYTES`, under either policy.
    LargerThanLimit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_defaults_are_empty() {
        assert!(StreamConfig::default().encode().is_empty());
        assert_eq!(StreamConfig::decode(&[]), Ok(StreamConfig::default()));
        let config = StreamConfig {
            work_queue: true,
            idempotency_duration_ms: Some(60_000),
            idempotency_max_size: Some(500),
            max_len: Some(3),
            max_bytes: Some(4096),
            discard: Discard::New,
            expire_idle_ms: Some(1_000),
        };
        assert_eq!(StreamConfig::decode(&config.encode()), Ok(config));
        assert!(StreamConfig::decode(&[9, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(StreamConfig::decode(&[1, 0]).is_err());
    }

    #[test]
    fn settings_written_before_limits_existed_still_decode() {
        // Work-queue retention and a 60 000 ms idempotency window, as storage-format.md A.10.
        let old = [
            0x01, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x60, 0xea, 0, 0, 0, 0, 0, 0,
        ];
        let config = StreamConfig::decode(&old).unwrap();
        assert!(config.work_queue);
        assert_eq!(config.idempotency_duration_ms, Some(60_000));
        assert_eq!((config.max_len, config.discard), (None, Discard::Old));
    }

    #[test]
    fn a_limit_with_discard_new_encodes_as_storage_format_shows() {
        let config = StreamConfig {
            max_len: Some(3),
            discard: Discard::New,
            ..StreamConfig::default()
        };
        let expected = [
            0x04, 0x03, 0, 0, 0, 0, 0, 0, 0, 0x05, 0x01, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(config.encode(), expected);
    }

    #[test]
    fn a_size_limit_with_discard_new_encodes_as_storage_format_shows() {
        let config = StreamConfig {
            max_bytes: Some(1 << 20),
            discard: Discard::New,
            ..StreamConfig::default()
        };
        let expected = [
            0x05, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x07, 0x00, 0x00, 0x10, 0, 0, 0, 0, 0,
        ];
        assert_eq!(config.encode(), expected);
        assert_eq!(StreamConfig::decode(&expected), Ok(config));
    }

    #[test]
    fn only_discard_new_at_the_limit_refuses() {
        let usage = |entries, bytes| Usage { entries, bytes };
        let limited = StreamConfig {
            max_len: Some(3),
            max_bytes: Some(100),
            discard: Discard::New,
            ..StreamConfig::default()
        };
        assert_eq!(limited.admit(usage(2, 60), usage(1, 40)), Ok(()));
        assert_eq!(
            limited.admit(usage(3, 0), usage(1, 8)),
            Err(Refusal::Length)
        );
        assert_eq!(
            limited.admit(usage(2, 0), usage(2, 8)),
            Err(Refusal::Length)
        );
        assert_eq!(
            limited.admit(usage(1, 61), usage(1, 40)),
            Err(Refusal::Bytes)
        );
        assert_eq!(
            limited.admit(usage(0, 0), usage(1, 101)),
            Err(Refusal::LargerThanLimit)
        );
        let dropping = StreamConfig {
            discard: Discard::Old,
            ..limited
        };
        assert_eq!(dropping.admit(usage(3, 100), usage(1, 100)), Ok(()));
        assert_eq!(
            dropping.admit(usage(0, 0), usage(1, 101)),
            Err(Refusal::LargerThanLimit)
        );
        let unlimited = StreamConfig::default();
        assert_eq!(
            unlimited.admit(usage(u64::MAX, u64::MAX), usage(1, 1)),
            Ok(())
        );
        assert!(!unlimited.has_limits() && !dropping.refuses_by_bytes());
    }
}
