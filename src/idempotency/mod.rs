//! Idempotency keys: per-producer windows of recently appended idempotency keys, after Redis
//! 8.6's `XADD ... IDMP producer-id idempotent-id` and NATS JetStream's `Nats-Msg-Id`.
//!
//! An append may carry a key made of a producer id and an idempotency id (iid), both arbitrary
//! bytes. While a key is in its producer's window, appending it again appends nothing and answers
//! with the [`StreamId`](crate::StreamId) the first append got. A window is bounded twice, as Redis bounds it:
//!
//! - by time: a key is kept while `now_ms - appended_ms < duration_ms`, so it is never forgotten
//!   before the duration has elapsed (unless the size bound pushes it out first);
//! - by size: each producer keeps at most `max_size` keys; remembering one more forgets that
//!   producer's oldest.
//!
//! Pure: no I/O and no clock reads. Time comes in as `now_ms` and never goes backwards here: the
//! windows keep the largest `now_ms` they were given and measure every age against it, so a wall
//! clock that steps back neither revives forgotten keys nor shortens anyone's window.
//!
//! The windows do not know about deletions: a key can keep answering with the ID of an entry that
//! was deleted since, as in Redis.
//!
//! This module is the pure data structure ([`IdempotencyWindows`], in `window.rs`) and the ids
//! derived from content ([`content_iid`]); the stream's append that consults the windows and
//! keeps them durable is [`Stream::append_idempotent`](crate::Stream::append_idempotent), in
//! `stream/idempotent_append.rs`.

mod content_iid;
mod window;

pub use content_iid::{CONTENT_IID_LEN, content_iid};
pub use window::{
    DEFAULT_DURATION_MS, DEFAULT_MAX_SIZE, IdempotencyConfig, IdempotencyError, IdempotencyWindows,
    MAX_DURATION_MS, MAX_MAX_SIZE, MIN_DURATION_MS, MIN_MAX_SIZE,
};
