//! Consumer groups of one stream: the pure state machine behind `XGROUP`, `XREADGROUP`, `XACK`,
//! `XCLAIM`, `XAUTOCLAIM`, `XPENDING` and `XINFO GROUPS|CONSUMERS` with Redis 7 semantics, plus
//! what Redis lacks: acknowledgement deadlines, negative acknowledgements, a delivery limit with
//! an optional dead-letter stream, a cap on unacknowledged entries and a retention floor.
//!
//! Nothing here touches files, threads or clocks: the log is seen through [`EntrySource`], and
//! time arrives as `now_ms` arguments (idle time is `now - delivery time`, saturating at zero).
//!
//! # Event sourcing
//!
//! Every change is a [`GroupEvent`], and [`GroupsState::apply`] is the only code that changes a
//! [`GroupsState`]. An operation validates its arguments, computes its events, applies them and
//! returns them in an [`Applied`] next to its result; the caller journals the events in order. An
//! operation that returns an error has changed nothing. Replaying a journal through `apply` on an
//! empty state rebuilds an equal state, and [`GroupsState::snapshot_events`] writes the whole
//! state as events for compaction.
//!
//! Facts that live outside the state are resolved when the operation runs and recorded in its
//! events, so replay needs no log: `NewDelivered` carries the resulting last-delivered ID and read
//! counter, and pending entries whose log entry vanished are removed by an explicit `Dropped`.
//! `apply` never fails: an event naming an unknown group is ignored and one naming an unknown
//! consumer creates it, so any journal replays.
//!
//! # Automatic redelivery
//!
//! Every pending entry has a [`Due`] time. With an `ack_wait_ms` policy a delivery makes the entry
//! due at delivery time + `ack_wait_ms` (a policy change affects later deliveries only), and
//! [`GroupsState::nack`] makes it due at now + delay. [`GroupsState::read_new`] hands out due
//! entries first (with a claim minimum idle time, as Redis 8.4's `XREADGROUP … CLAIM`, also
//! entries idle that long), in the order they became eligible, then new entries.
//!
//! # Delivery limit and dead letters: plan, then commit
//!
//! With `max_deliver = n`, an entry already delivered `n` times is never handed out automatically
//! again. When `read_new` meets one (because it is due, or idle enough):
//!
//! * without a dead-letter stream it is marked [`Due::Exhausted`] by an `Exhausted` event: it
//!   stays pending until acknowledged or explicitly claimed, and is counted in
//!   [`GroupInfo::exhausted`];
//! * with a dead-letter stream it is returned in [`ReadOutcome::dead_letters`] and left
//!   untouched. The caller, still holding the stream's lock, then
//!   1. journals the events `read_new` returned;
//!   2. appends each dead letter to the dead-letter stream, durably;
//!   3. calls [`GroupsState::commit_dead_letters`] with the IDs it appended and journals the
//!      returned `DeadLettered` event, which removes them from the PEL;
//!   4. if the dead-letter stream refused some (it is full), calls [`GroupsState::nack`] for
//!      them with a short delay: they stay pending unchanged (a refusal is not a delivery)
//!      and a later read tries again, while the read that met them still succeeds.
//!
//!   A crash between steps 2 and 3 leaves the entries pending, so recovery dead-letters them
//!   again: the dead-letter stream is at-least-once. Until step 3, another `read_new` on the
//!   group returns the same candidates again.
//!
//! [`GroupsState::claim`] (an explicit `XCLAIM`) and [`GroupsState::read_pending`] (a consumer
//! re-reading its own history) ignore the limit; [`GroupsState::auto_claim`] skips entries that
//! reached it. Changing the policy makes every exhausted entry due at once, so the next read
//! judges it against the new policy (for instance, sends it to a newly configured dead-letter
//! stream).
//!
//! # Event encoding
//!
//! [`GroupEvent::encode`] and [`GroupEvent::decode`] use this layout; integers are
//! little-endian, and one encoded event is exactly one tag and its fields (no length prefix: the
//! journal frames events).
//!
//! ```text
//! bytes    u32 length (at most MAX_NAME_LEN), then that many bytes
//! id       u64 ms, u64 seq
//! opt<T>   u8 0 (absent) | u8 1, T
//! list<T>  u32 count (at most MAX_EVENT_BATCH), then count x T
//! due      u8 0 (not scheduled) | u8 1, u64 at_ms | u8 2 (exhausted)
//! count    u8 0 (increment) | u8 1 (keep) | u8 2, u32 value (set)
//!
//! tag event           fields after the tag byte
//!  1  GroupCreated    bytes group, id last_delivered, opt<u64> entries_read
//!  2  GroupDestroyed  bytes group
//!  3  GroupIdSet      bytes group, id last_delivered, opt<u64> entries_read
//!  4  PolicySet       bytes group, opt<u64> ack_wait_ms, opt<u32> max_deliver,
//!                     opt<bytes> dead_letter, opt<u64> max_ack_pending
//!  5  ConsumerCreated bytes group, bytes consumer, u64 seen_ms, opt<u64> active_ms
//!  6  ConsumerDeleted bytes group, bytes consumer
//!  7  ConsumerSeen    bytes group, bytes consumer, u64 time_ms
//!  8  NewDelivered    bytes group, bytes consumer, u64 time_ms, opt<u64> due_ms,
//!                     id last_delivered, opt<u64> entries_read, list<(id, u64 offset)>
//!  9  Redelivered     bytes group, bytes consumer, u64 time_ms, opt<u64> due_ms, list<id>
//! 10  Reread          bytes group, bytes consumer, u64 time_ms, opt<u64> due_ms, list<id>
//! 11  Claimed         bytes group, bytes consumer, u64 time_ms, u64 delivered_ms,
//!                     opt<u64> due_ms, count, list<(id, u64 offset)>
//! 12  Acked           bytes group, list<id>
//! 13  Nacked          bytes group, u64 due_ms, list<id>
//! 14  DeadLettered    bytes group, list<id>
//! 15  Dropped         bytes group, list<id>
//! 16  Exhausted       bytes group, list<id>
//! 17  PendingRestored bytes group, bytes consumer,
//!                     list<(id, u64 offset, u64 delivered_ms, u32 deliveries, due)>
//! 18  GroupCreated    GroupCreated's fields, then PolicySet's fields after the group name
//!     (with policy)   (a group created with a policy other than the default, in one event)
//! ```
//!
//! Tag 0 is never used, so zeroed bytes never decode as an event. Decoding rejects unknown tags
//! and markers, lengths over the caps, short input and trailing bytes.

pub(crate) mod analysis;
mod consumers;
pub mod durable;
mod event;
mod nack;
mod ops;
mod pel;
mod progress;
mod query;
mod state;
#[cfg(test)]
mod test_log;
#[cfg(test)]
mod tests;

pub use event::{DeliveryCount, Due, EventDecodeError, GroupEvent, PendingRecord};
pub use nack::{NackMode, Release};
pub use ops::{
    AutoClaim, AutoClaimOutcome, ClaimOptions, ClaimOutcome, DeadLetter, Handout, HistoryEntry,
    ReadNew, ReadOutcome,
};
pub use query::{ConsumerInfo, GroupInfo, PendingQuery, PendingRow, PendingSummary};
pub use state::{ClampedGroup, GroupsState};

use crate::id::StreamId;

/// Longest group, consumer or dead-letter stream name, in bytes.
pub const MAX_NAME_LEN: usize = 64 * 1024;

/// Most entries one event carries; operations split larger batches into several events.
pub const MAX_EVENT_BATCH: usize = 64 * 1024;

/// What the log says about the stream, as Redis keeps it in its `stream` struct.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamFacts {
    /// Entries ever appended, deleted and trimmed ones included.
    pub entries_added: u64,
    /// Live entries.
    pub length: u64,
    /// ID of the first live entry; [`StreamId::MIN`] when the stream is empty.
    pub first_id: StreamId,
    /// The last ID the stream ever generated.
    pub last_id: StreamId,
    /// The largest ID ever deleted by `XDEL`; [`StreamId::MIN`] when none was.
    pub max_deleted_id: StreamId,
}

/// The log, as consumer groups need to see it. Implemented by the storage layer.
pub trait EntrySource {
    /// Up to `max` live entries with an ID strictly greater than `after`, in ID order, as
    /// `(id, offset)`.
    fn entries_after(&self, after: StreamId, max: usize) -> Vec<(StreamId, u64)>;
    /// The offset of the live entry with exactly this ID; `None` if it never existed, was
    /// deleted or was trimmed.
    fn lookup(&self, id: StreamId) -> Option<u64>;
    /// The stream's counters.
    fn facts(&self) -> StreamFacts;
}

/// How a group hands out entries beyond Redis's rules. The default is plain Redis behaviour.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupPolicy {
    /// Milliseconds a delivered entry may stay unacknowledged before it is due for redelivery.
    pub ack_wait_ms: Option<u64>,
    /// Deliveries after which an entry is no longer handed out automatically.
    pub max_deliver: Option<u32>,
    /// Stream that receives the entries that reached `max_deliver`.
    pub dead_letter: Option<Vec<u8>>,
    /// Pending entries at which the group stops handing out new entries.
    pub max_ack_pending: Option<u64>,
}

impl GroupPolicy {
    /// Checks that every limit is usable: zero limits and oversized names are rejected.
    ///
    /// ```
    /// use weir::group::GroupPolicy;
    /// let policy = GroupPolicy { max_deliver: Some(0), ..GroupPolicy::default() };
    /// assert!(policy.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), GroupError> {
        if self.ack_wait_ms == Some(0) {
            return Err(GroupError::InvalidPolicy("ack_wait_ms must be at least 1"));
        }
        if self.max_deliver == Some(0) {
            return Err(GroupError::InvalidPolicy("max_deliver must be at least 1"));
        }
        if self.max_ack_pending == Some(0) {
            return Err(GroupError::InvalidPolicy(
                "max_ack_pending must be at least 1",
            ));
        }
        match &self.dead_letter {
            Some(name) if name.is_empty() => Err(GroupError::InvalidPolicy(
                "the dead-letter stream name must not be empty",
            )),
            Some(name) => check_name(name),
            None => Ok(()),
        }
    }

    /// Whether an entry delivered `deliveries` times may no longer be handed out automatically.
    pub(crate) fn is_exhausted(&self, deliveries: u32) -> bool {
        self.max_deliver.is_some_and(|limit| deliveries >= limit)
    }

    /// When an entry delivered at `delivered_ms` becomes due, if the group has a deadline.
    pub(crate) fn deadline(&self, delivered_ms: u64) -> Option<u64> {
        self.ack_wait_ms
            .map(|wait| delivered_ms.saturating_add(wait))
    }
}

/// An operation's events, already applied, and its result.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "the events must be journaled"]
pub struct Applied<T> {
    /// The events the operation applied, in order: journal them.
    pub events: Vec<GroupEvent>,
    /// What the operation returns.
    pub output: T,
}

impl<T> Applied<T> {
    /// A result that changed nothing.
    pub(crate) fn unchanged(output: T) -> Self {
        Applied {
            events: Vec::new(),
            output,
        }
    }
}

/// Why a consumer-group operation was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The stream has no group by that name (Redis replies `NOGROUP`).
    #[error("the stream has no consumer group named {:?}", String::from_utf8_lossy(.group))]
    NoGroup {
        /// The group asked for.
        group: Vec<u8>,
    },
    /// A group by that name already exists (Redis replies `BUSYGROUP`).
    #[error("consumer group {:?} already exists", String::from_utf8_lossy(.group))]
    GroupExists {
        /// The group asked for.
        group: Vec<u8>,
    },
    /// A group, consumer or stream name is longer than [`MAX_NAME_LEN`].
    #[error("a name of {len} bytes exceeds the {MAX_NAME_LEN}-byte limit")]
    NameTooLong {
        /// The name's length in bytes.
        len: usize,
    },
    /// A policy limit is unusable.
    #[error("invalid group policy: {0}")]
    InvalidPolicy(&'static str),
    /// `XAUTOCLAIM` was asked for zero entries.
    #[error("COUNT must be greater than 0")]
    ZeroCount,
    /// The group's consumer table is full (over a billion consumers).
    #[error("the consumer group cannot hold another consumer")]
    TooManyConsumers,
}

/// Refuses names that could not be journaled.
pub(crate) fn check_name(name: &[u8]) -> Result<(), GroupError> {
    if name.len() > MAX_NAME_LEN {
        return Err(GroupError::NameTooLong { len: name.len() });
    }
    Ok(())
}
