//! A stream's own settings, kept in its log's metadata (the `attributes` of the meta journal and
//! checkpoint), so they change atomically with the log's other metadata and survive restarts.
//!
//! Encoding: a sequence of `(u8 tag, u64 value)` pairs, little-endian; a setting at its default is
//! left out. Tags: 1 = work-queue retention (1 = on), 2 = idempotency window in milliseconds,
//! 3 = idempotency keys kept per producer.

use crate::codec::{CodecError, Decoder, Encoder};

const TAG_WORK_QUEUE: u8 = 1;
const TAG_IDEMPOTENCY_DURATION_MS: u8 = 2;
const TAG_IDEMPOTENCY_MAX_SIZE: u8 = 3;

/// Settings of one stream beyond retention limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamConfig {
    /// Work-queue retention: entries go once every group has acknowledged them.
    pub work_queue: bool,
    /// How long idempotency keys are remembered (`None`: the default).
    pub idempotency_duration_ms: Option<u64>,
    /// How many idempotency keys are remembered per producer (`None`: the default).
    pub idempotency_max_size: Option<u64>,
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
        };
        assert_eq!(StreamConfig::decode(&config.encode()), Ok(config));
        assert!(StreamConfig::decode(&[9, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(StreamConfig::decode(&[1, 0]).is_err());
    }
}
