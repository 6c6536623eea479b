//! [`GroupEvent`]: every change to consumer-group state, and its binary encoding (the layout is
//! in the [module documentation](super)).

use crate::id::StreamId;

use super::{GroupPolicy, MAX_EVENT_BATCH, MAX_NAME_LEN};

/// When a pending entry becomes eligible for automatic redelivery by
/// [`read_new`](super::GroupsState::read_new).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Due {
    /// No deadline: only a claim, or a read with a claim minimum idle time, hands it out again.
    NotScheduled,
    /// Eligible from this Unix time in milliseconds (an acknowledgement deadline or a nack).
    At(u64),
    /// Delivered `max_deliver` times and the group has no dead-letter stream: it stays pending
    /// and is never handed out automatically again.
    Exhausted,
}

impl Due {
    /// `At(deadline)` when there is a deadline, `NotScheduled` otherwise.
    pub fn from_deadline(deadline_ms: Option<u64>) -> Due {
        deadline_ms.map_or(Due::NotScheduled, Due::At)
    }
}

/// How a claim changes the delivery counters of the entries it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryCount {
    /// One more delivery (a plain `XCLAIM` or `XAUTOCLAIM`).
    Increment,
    /// Unchanged (`JUSTID`).
    Keep,
    /// Set to this value (`RETRYCOUNT`).
    Set(u32),
}

impl DeliveryCount {
    /// The counter after the claim, given the counter before it.
    pub fn after(self, deliveries: u32) -> u32 {
        match self {
            DeliveryCount::Increment => deliveries.saturating_add(1),
            DeliveryCount::Keep => deliveries,
            DeliveryCount::Set(value) => value,
        }
    }
}

/// One pending entry exactly as a snapshot restores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PendingRecord {
    /// The entry's ID.
    pub id: StreamId,
    /// The entry's offset in the log.
    pub offset: u64,
    /// When it was last delivered (Unix milliseconds).
    pub delivered_ms: u64,
    /// How many times it was delivered.
    pub deliveries: u32,
    /// When it becomes due for redelivery.
    pub due: Due,
}

/// One change to the consumer groups of a stream. Every variant names its group first;
/// [`GroupsState::apply`](super::GroupsState::apply) ignores events for groups that do not
/// exist, and creates the consumers events name.
///
/// Times are Unix milliseconds. `due_ms` is when the entries become due for redelivery (`None`:
/// no deadline, see [`Due`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GroupEvent {
    /// A group was created (`XGROUP CREATE`); nothing happens if it exists. The policy travels
    /// in the same event, so that no crash can leave the group without the policy it was
    /// created with.
    GroupCreated {
        /// The group.
        group: Vec<u8>,
        /// Its position: the last ID it has seen.
        last_delivered: StreamId,
        /// Its read counter, if known.
        entries_read: Option<u64>,
        /// Its policy (encoded only when not the default).
        policy: GroupPolicy,
    },
    /// A group was destroyed with its consumers and PEL (`XGROUP DESTROY`).
    GroupDestroyed {
        /// The group.
        group: Vec<u8>,
    },
    /// The position and read counter were replaced (`XGROUP SETID`, `XCLAIM … LASTID`,
    /// recovery).
    GroupIdSet {
        /// The group.
        group: Vec<u8>,
        /// The new position.
        last_delivered: StreamId,
        /// The new read counter.
        entries_read: Option<u64>,
    },
    /// The group's policy was replaced; exhausted entries become due at once (due time 0).
    PolicySet {
        /// The group.
        group: Vec<u8>,
        /// The new policy.
        policy: GroupPolicy,
    },
    /// A consumer was created, or its times set by a snapshot.
    ConsumerCreated {
        /// The group.
        group: Vec<u8>,
        /// The consumer.
        consumer: Vec<u8>,
        /// Its last interaction.
        seen_ms: u64,
        /// The last time it was handed entries, if ever.
        active_ms: Option<u64>,
    },
    /// A consumer and its pending entries were deleted (`XGROUP DELCONSUMER`).
    ConsumerDeleted {
        /// The group.
        group: Vec<u8>,
        /// The consumer.
        consumer: Vec<u8>,
    },
    /// A consumer interacted with the group without being handed anything.
    ConsumerSeen {
        /// The group.
        group: Vec<u8>,
        /// The consumer.
        consumer: Vec<u8>,
        /// When.
        time_ms: u64,
    },
    /// The group moved past new entries and handed them to a consumer. Each listed entry
    /// enters the PEL with one delivery (an entry already pending, after the group was set
    /// back, changes owner and starts over, as in Redis); with `NOACK` none is listed.
    NewDelivered {
        /// The group.
        group: Vec<u8>,
        /// The consumer, seen at `time_ms` (and active, if entries are listed).
        consumer: Vec<u8>,
        /// The delivery time.
        time_ms: u64,
        /// Deadline of the listed entries.
        due_ms: Option<u64>,
        /// The group's new position.
        last_delivered: StreamId,
        /// The group's new read counter.
        entries_read: Option<u64>,
        /// `(id, log offset)` of the entries entering the PEL.
        entries: Vec<(StreamId, u64)>,
    },
    /// Due or idle pending entries were handed to a consumer: new owner, one more delivery.
    Redelivered {
        /// The group.
        group: Vec<u8>,
        /// The new owner, seen and active at `time_ms`.
        consumer: Vec<u8>,
        /// The delivery time.
        time_ms: u64,
        /// The new deadline.
        due_ms: Option<u64>,
        /// The entries.
        ids: Vec<StreamId>,
    },
    /// A consumer re-read its own pending entries: one more delivery each.
    Reread {
        /// The group.
        group: Vec<u8>,
        /// The consumer, seen at `time_ms`.
        consumer: Vec<u8>,
        /// The delivery time.
        time_ms: u64,
        /// The new deadline.
        due_ms: Option<u64>,
        /// The entries.
        ids: Vec<StreamId>,
    },
    /// Entries were claimed (`XCLAIM`, `XAUTOCLAIM`). An entry that was not pending (`FORCE`)
    /// enters the PEL as if delivered once before.
    Claimed {
        /// The group.
        group: Vec<u8>,
        /// The new owner, seen at `time_ms` (and active, if entries are listed).
        consumer: Vec<u8>,
        /// When the claim happened.
        time_ms: u64,
        /// The delivery time recorded (`IDLE` and `TIME` move it back).
        delivered_ms: u64,
        /// The new deadline.
        due_ms: Option<u64>,
        /// How the delivery counters change.
        count: DeliveryCount,
        /// `(id, log offset)` of the claimed entries.
        entries: Vec<(StreamId, u64)>,
    },
    /// Entries were acknowledged and leave the PEL.
    Acked {
        /// The group.
        group: Vec<u8>,
        /// The entries.
        ids: Vec<StreamId>,
    },
    /// Entries were released for redelivery; owners and counters are unchanged.
    Nacked {
        /// The group.
        group: Vec<u8>,
        /// When they become due.
        due_ms: u64,
        /// The entries.
        ids: Vec<StreamId>,
    },
    /// Entries were appended to the dead-letter stream and leave the PEL.
    DeadLettered {
        /// The group.
        group: Vec<u8>,
        /// The entries.
        ids: Vec<StreamId>,
    },
    /// Entries leave the PEL because their log entries no longer exist.
    Dropped {
        /// The group.
        group: Vec<u8>,
        /// The entries.
        ids: Vec<StreamId>,
    },
    /// Entries reached the delivery limit without a dead-letter stream: [`Due::Exhausted`].
    Exhausted {
        /// The group.
        group: Vec<u8>,
        /// The entries.
        ids: Vec<StreamId>,
    },
    /// Pending entries restored by a snapshot, exactly as recorded.
    PendingRestored {
        /// The group.
        group: Vec<u8>,
        /// The owner of every entry listed.
        consumer: Vec<u8>,
        /// The entries.
        entries: Vec<PendingRecord>,
    },
}

/// Why bytes are not a valid [`GroupEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventDecodeError {
    /// The bytes end in the middle of the event.
    #[error("group event is cut short")]
    Truncated,
    /// The tag byte names no event.
    #[error("unknown group event tag {0}")]
    UnknownTag(u8),
    /// A marker byte (option, due time, delivery count) holds a value no encoder writes.
    #[error("invalid {field} marker {value} in group event")]
    BadMarker {
        /// What the marker introduces.
        field: &'static str,
        /// The byte found.
        value: u8,
    },
    /// A name is longer than [`MAX_NAME_LEN`].
    #[error("name of {0} bytes in group event exceeds the {MAX_NAME_LEN}-byte limit")]
    NameTooLong(usize),
    /// A list is longer than [`MAX_EVENT_BATCH`].
    #[error("list of {0} items in group event exceeds the {MAX_EVENT_BATCH}-item limit")]
    BatchTooLarge(usize),
    /// Bytes follow the end of the event.
    #[error("{0} unexpected bytes after the group event")]
    TrailingBytes(usize),
}

const TAG_GROUP_CREATED: u8 = 1;
const TAG_GROUP_DESTROYED: u8 = 2;
const TAG_GROUP_ID_SET: u8 = 3;
const TAG_POLICY_SET: u8 = 4;
const TAG_CONSUMER_CREATED: u8 = 5;
const TAG_CONSUMER_DELETED: u8 = 6;
const TAG_CONSUMER_SEEN: u8 = 7;
const TAG_NEW_DELIVERED: u8 = 8;
const TAG_REDELIVERED: u8 = 9;
const TAG_REREAD: u8 = 10;
const TAG_CLAIMED: u8 = 11;
const TAG_ACKED: u8 = 12;
const TAG_NACKED: u8 = 13;
const TAG_DEAD_LETTERED: u8 = 14;
const TAG_DROPPED: u8 = 15;
const TAG_EXHAUSTED: u8 = 16;
const TAG_PENDING_RESTORED: u8 = 17;
/// A GroupCreated whose policy is not the default: the policy follows the other fields.
const TAG_GROUP_CREATED_WITH_POLICY: u8 = 18;

/// Encoded sizes of list items, used to refuse counts the input cannot hold before allocating.
const ID_LEN: usize = 16;
const ID_OFFSET_LEN: usize = ID_LEN + 8;
const RECORD_MIN_LEN: usize = ID_LEN + 8 + 8 + 4 + 1;

impl GroupEvent {
    /// The group the event changes.
    pub fn group(&self) -> &[u8] {
        match self {
            GroupEvent::GroupCreated { group, .. }
            | GroupEvent::GroupDestroyed { group }
            | GroupEvent::GroupIdSet { group, .. }
            | GroupEvent::PolicySet { group, .. }
            | GroupEvent::ConsumerCreated { group, .. }
            | GroupEvent::ConsumerDeleted { group, .. }
            | GroupEvent::ConsumerSeen { group, .. }
            | GroupEvent::NewDelivered { group, .. }
            | GroupEvent::Redelivered { group, .. }
            | GroupEvent::Reread { group, .. }
            | GroupEvent::Claimed { group, .. }
            | GroupEvent::Acked { group, .. }
            | GroupEvent::Nacked { group, .. }
            | GroupEvent::DeadLettered { group, .. }
            | GroupEvent::Dropped { group, .. }
            | GroupEvent::Exhausted { group, .. }
            | GroupEvent::PendingRestored { group, .. } => group,
        }
    }

    /// Appends the event's encoding to `out`.
    ///
    /// Events built by [`GroupsState`](super::GroupsState) always decode; a hand-built event
    /// with a name over [`MAX_NAME_LEN`] or a list over [`MAX_EVENT_BATCH`] encodes, but its
    /// decoding fails.
    ///
    /// ```
    /// use weir::StreamId;
    /// use weir::group::GroupEvent;
    /// let event = GroupEvent::Acked { group: b"workers".to_vec(), ids: vec![StreamId::new(1, 0)] };
    /// let mut bytes = Vec::new();
    /// event.encode(&mut bytes);
    /// assert_eq!(GroupEvent::decode(&bytes), Ok(event));
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            GroupEvent::GroupCreated {
                group,
                last_delivered,
                entries_read,
                policy,
            } => {
                let with_policy = *policy != GroupPolicy::default();
                out.push(if with_policy {
                    TAG_GROUP_CREATED_WITH_POLICY
                } else {
                    TAG_GROUP_CREATED
                });
                put_bytes(out, group);
                put_id(out, *last_delivered);
                put_opt_u64(out, *entries_read);
                if with_policy {
                    put_policy(out, policy);
                }
            }
            GroupEvent::GroupDestroyed { group } => {
                out.push(TAG_GROUP_DESTROYED);
                put_bytes(out, group);
            }
            GroupEvent::GroupIdSet {
                group,
                last_delivered,
                entries_read,
            } => {
                out.push(TAG_GROUP_ID_SET);
                put_bytes(out, group);
                put_id(out, *last_delivered);
                put_opt_u64(out, *entries_read);
            }
            GroupEvent::PolicySet { group, policy } => {
                out.push(TAG_POLICY_SET);
                put_bytes(out, group);
                put_policy(out, policy);
            }
            GroupEvent::ConsumerCreated {
                group,
                consumer,
                seen_ms,
                active_ms,
            } => {
                out.push(TAG_CONSUMER_CREATED);
                put_bytes(out, group);
                put_bytes(out, consumer);
                put_u64(out, *seen_ms);
                put_opt_u64(out, *active_ms);
            }
            GroupEvent::ConsumerDeleted { group, consumer } => {
                out.push(TAG_CONSUMER_DELETED);
                put_bytes(out, group);
                put_bytes(out, consumer);
            }
            GroupEvent::ConsumerSeen {
                group,
                consumer,
                time_ms,
            } => {
                out.push(TAG_CONSUMER_SEEN);
                put_bytes(out, group);
                put_bytes(out, consumer);
                put_u64(out, *time_ms);
            }
            GroupEvent::NewDelivered {
                group,
                consumer,
                time_ms,
                due_ms,
                last_delivered,
                entries_read,
                entries,
            } => {
                out.push(TAG_NEW_DELIVERED);
                put_bytes(out, group);
                put_bytes(out, consumer);
                put_u64(out, *time_ms);
                put_opt_u64(out, *due_ms);
                put_id(out, *last_delivered);
                put_opt_u64(out, *entries_read);
                put_id_offsets(out, entries);
            }
            GroupEvent::Redelivered {
                group,
                consumer,
                time_ms,
                due_ms,
                ids,
            } => {
                out.push(TAG_REDELIVERED);
                put_redelivery(out, group, consumer, *time_ms, *due_ms, ids);
            }
            GroupEvent::Reread {
                group,
                consumer,
                time_ms,
                due_ms,
                ids,
            } => {
                out.push(TAG_REREAD);
                put_redelivery(out, group, consumer, *time_ms, *due_ms, ids);
            }
            GroupEvent::Claimed {
                group,
                consumer,
                time_ms,
                delivered_ms,
                due_ms,
                count,
                entries,
            } => {
                out.push(TAG_CLAIMED);
                put_bytes(out, group);
                put_bytes(out, consumer);
                put_u64(out, *time_ms);
                put_u64(out, *delivered_ms);
                put_opt_u64(out, *due_ms);
                put_count(out, *count);
                put_id_offsets(out, entries);
            }
            GroupEvent::Acked { group, ids } => put_id_batch(out, TAG_ACKED, group, ids),
            GroupEvent::Nacked { group, due_ms, ids } => {
                out.push(TAG_NACKED);
                put_bytes(out, group);
                put_u64(out, *due_ms);
                put_ids(out, ids);
            }
            GroupEvent::DeadLettered { group, ids } => {
                put_id_batch(out, TAG_DEAD_LETTERED, group, ids);
            }
            GroupEvent::Dropped { group, ids } => put_id_batch(out, TAG_DROPPED, group, ids),
            GroupEvent::Exhausted { group, ids } => put_id_batch(out, TAG_EXHAUSTED, group, ids),
            GroupEvent::PendingRestored {
                group,
                consumer,
                entries,
            } => {
                out.push(TAG_PENDING_RESTORED);
                put_bytes(out, group);
                put_bytes(out, consumer);
                put_len(out, entries.len());
                for record in entries {
                    put_id(out, record.id);
                    put_u64(out, record.offset);
                    put_u64(out, record.delivered_ms);
                    put_u32(out, record.deliveries);
                    put_due(out, record.due);
                }
            }
        }
    }

    /// The encoding as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes exactly one event occupying all of `bytes`. Never panics, whatever the input.
    pub fn decode(bytes: &[u8]) -> Result<GroupEvent, EventDecodeError> {
        let mut reader = Reader { rest: bytes };
        let tag = reader.u8()?;
        let event = match tag {
            TAG_GROUP_CREATED => GroupEvent::GroupCreated {
                group: reader.bytes()?,
                last_delivered: reader.id()?,
                entries_read: reader.opt_u64()?,
                policy: GroupPolicy::default(),
            },
            TAG_GROUP_CREATED_WITH_POLICY => GroupEvent::GroupCreated {
                group: reader.bytes()?,
                last_delivered: reader.id()?,
                entries_read: reader.opt_u64()?,
                policy: reader.created_policy()?,
            },
            TAG_GROUP_DESTROYED => GroupEvent::GroupDestroyed {
                group: reader.bytes()?,
            },
            TAG_GROUP_ID_SET => GroupEvent::GroupIdSet {
                group: reader.bytes()?,
                last_delivered: reader.id()?,
                entries_read: reader.opt_u64()?,
            },
            TAG_POLICY_SET => GroupEvent::PolicySet {
                group: reader.bytes()?,
                policy: reader.policy()?,
            },
            TAG_CONSUMER_CREATED => GroupEvent::ConsumerCreated {
                group: reader.bytes()?,
                consumer: reader.bytes()?,
                seen_ms: reader.u64()?,
                active_ms: reader.opt_u64()?,
            },
            TAG_CONSUMER_DELETED => GroupEvent::ConsumerDeleted {
                group: reader.bytes()?,
                consumer: reader.bytes()?,
            },
            TAG_CONSUMER_SEEN => GroupEvent::ConsumerSeen {
                group: reader.bytes()?,
                consumer: reader.bytes()?,
                time_ms: reader.u64()?,
            },
            TAG_NEW_DELIVERED => GroupEvent::NewDelivered {
                group: reader.bytes()?,
                consumer: reader.bytes()?,
                time_ms: reader.u64()?,
                due_ms: reader.opt_u64()?,
                last_delivered: reader.id()?,
                entries_read: reader.opt_u64()?,
                entries: reader.id_offsets()?,
            },
            TAG_REDELIVERED => GroupEvent::Redelivered {
                group: reader.bytes()?,
                consumer: reader.bytes()?,
                time_ms: reader.u64()?,
                due_ms: reader.opt_u64()?,
                ids: reader.ids()?,
            },
            TAG_REREAD => GroupEvent::Reread {
                group: reader.bytes()?,
                consumer: reader.bytes()?,
                time_ms: reader.u64()?,
                due_ms: reader.opt_u64()?,
                ids: reader.ids()?,
            },
            TAG_CLAIMED => GroupEvent::Claimed {
                group: reader.bytes()?,
                consumer: reader.bytes()?,
                time_ms: reader.u64()?,
                delivered_ms: reader.u64()?,
                due_ms: reader.opt_u64()?,
                count: reader.count()?,
                entries: reader.id_offsets()?,
            },
            TAG_ACKED => GroupEvent::Acked {
                group: reader.bytes()?,
                ids: reader.ids()?,
            },
            TAG_NACKED => GroupEvent::Nacked {
                group: reader.bytes()?,
                due_ms: reader.u64()?,
                ids: reader.ids()?,
            },
            TAG_DEAD_LETTERED => GroupEvent::DeadLettered {
                group: reader.bytes()?,
                ids: reader.ids()?,
            },
            TAG_DROPPED => GroupEvent::Dropped {
                group: reader.bytes()?,
                ids: reader.ids()?,
            },
            TAG_EXHAUSTED => GroupEvent::Exhausted {
                group: reader.bytes()?,
                ids: reader.ids()?,
            },
            TAG_PENDING_RESTORED => GroupEvent::PendingRestored {
                group: reader.bytes()?,
                consumer: reader.bytes()?,
                entries: reader.records()?,
            },
            other => return Err(EventDecodeError::UnknownTag(other)),
        };
        reader.finish()?;
        Ok(event)
    }
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// A length as u32; an impossible length saturates, and decoding then reports the mismatch.
fn put_len(out: &mut Vec<u8>, len: usize) {
    put_u32(out, u32::try_from(len).unwrap_or(u32::MAX));
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn put_id(out: &mut Vec<u8>, id: StreamId) {
    put_u64(out, id.ms);
    put_u64(out, id.seq);
}

fn put_opt_u64(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        Some(value) => {
            out.push(1);
            put_u64(out, value);
        }
        None => out.push(0),
    }
}

fn put_policy(out: &mut Vec<u8>, policy: &GroupPolicy) {
    put_opt_u64(out, policy.ack_wait_ms);
    match policy.max_deliver {
        Some(limit) => {
            out.push(1);
            put_u32(out, limit);
        }
        None => out.push(0),
    }
    match &policy.dead_letter {
        Some(name) => {
            out.push(1);
            put_bytes(out, name);
        }
        None => out.push(0),
    }
    put_opt_u64(out, policy.max_ack_pending);
}

fn put_ids(out: &mut Vec<u8>, ids: &[StreamId]) {
    put_len(out, ids.len());
    for &id in ids {
        put_id(out, id);
    }
}

fn put_id_batch(out: &mut Vec<u8>, tag: u8, group: &[u8], ids: &[StreamId]) {
    out.push(tag);
    put_bytes(out, group);
    put_ids(out, ids);
}

/// The fields shared by `Redelivered` and `Reread`.
fn put_redelivery(
    out: &mut Vec<u8>,
    group: &[u8],
    consumer: &[u8],
    time_ms: u64,
    due_ms: Option<u64>,
    ids: &[StreamId],
) {
    put_bytes(out, group);
    put_bytes(out, consumer);
    put_u64(out, time_ms);
    put_opt_u64(out, due_ms);
    put_ids(out, ids);
}

fn put_id_offsets(out: &mut Vec<u8>, entries: &[(StreamId, u64)]) {
    put_len(out, entries.len());
    for &(id, offset) in entries {
        put_id(out, id);
        put_u64(out, offset);
    }
}

fn put_due(out: &mut Vec<u8>, due: Due) {
    match due {
        Due::NotScheduled => out.push(0),
        Due::At(at_ms) => {
            out.push(1);
            put_u64(out, at_ms);
        }
        Due::Exhausted => out.push(2),
    }
}

fn put_count(out: &mut Vec<u8>, count: DeliveryCount) {
    match count {
        DeliveryCount::Increment => out.push(0),
        DeliveryCount::Keep => out.push(1),
        DeliveryCount::Set(value) => {
            out.push(2);
            put_u32(out, value);
        }
    }
}

/// A cursor over untrusted bytes: every read checks what is left.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], EventDecodeError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(EventDecodeError::Truncated)?;
        self.rest = tail;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, EventDecodeError> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, EventDecodeError> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, EventDecodeError> {
        self.take().map(u64::from_le_bytes)
    }

    fn id(&mut self) -> Result<StreamId, EventDecodeError> {
        Ok(StreamId::new(self.u64()?, self.u64()?))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, EventDecodeError> {
        let len = self.u32()? as usize;
        if len > MAX_NAME_LEN {
            return Err(EventDecodeError::NameTooLong(len));
        }
        if self.rest.len() < len {
            return Err(EventDecodeError::Truncated);
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head.to_vec())
    }

    /// Reads a 0/1 presence marker.
    fn present(&mut self, field: &'static str) -> Result<bool, EventDecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(EventDecodeError::BadMarker { field, value }),
        }
    }

    fn opt_u64(&mut self) -> Result<Option<u64>, EventDecodeError> {
        if self.present("option")? {
            self.u64().map(Some)
        } else {
            Ok(None)
        }
    }

    /// The policy of a group created with one: never the default, which is written with the
    /// plain GroupCreated tag (so every event has one encoding).
    fn created_policy(&mut self) -> Result<GroupPolicy, EventDecodeError> {
        let policy = self.policy()?;
        if policy == GroupPolicy::default() {
            return Err(EventDecodeError::BadMarker {
                field: "policy",
                value: 0,
            });
        }
        Ok(policy)
    }

    fn policy(&mut self) -> Result<GroupPolicy, EventDecodeError> {
        let ack_wait_ms = self.opt_u64()?;
        let max_deliver = if self.present("option")? {
            Some(self.u32()?)
        } else {
            None
        };
        let dead_letter = if self.present("option")? {
            Some(self.bytes()?)
        } else {
            None
        };
        Ok(GroupPolicy {
            ack_wait_ms,
            max_deliver,
            dead_letter,
            max_ack_pending: self.opt_u64()?,
        })
    }

    fn due(&mut self) -> Result<Due, EventDecodeError> {
        match self.u8()? {
            0 => Ok(Due::NotScheduled),
            1 => self.u64().map(Due::At),
            2 => Ok(Due::Exhausted),
            value => Err(EventDecodeError::BadMarker {
                field: "due time",
                value,
            }),
        }
    }

    fn count(&mut self) -> Result<DeliveryCount, EventDecodeError> {
        match self.u8()? {
            0 => Ok(DeliveryCount::Increment),
            1 => Ok(DeliveryCount::Keep),
            2 => self.u32().map(DeliveryCount::Set),
            value => Err(EventDecodeError::BadMarker {
                field: "delivery count",
                value,
            }),
        }
    }

    /// A list length, refused before anything is allocated when over the cap or when the input
    /// cannot hold that many items of at least `item_len` bytes.
    fn list_len(&mut self, item_len: usize) -> Result<usize, EventDecodeError> {
        let count = self.u32()? as usize;
        if count > MAX_EVENT_BATCH {
            return Err(EventDecodeError::BatchTooLarge(count));
        }
        if count.saturating_mul(item_len) > self.rest.len() {
            return Err(EventDecodeError::Truncated);
        }
        Ok(count)
    }

    fn ids(&mut self) -> Result<Vec<StreamId>, EventDecodeError> {
        let count = self.list_len(ID_LEN)?;
        (0..count).map(|_| self.id()).collect()
    }

    fn id_offsets(&mut self) -> Result<Vec<(StreamId, u64)>, EventDecodeError> {
        let count = self.list_len(ID_OFFSET_LEN)?;
        (0..count).map(|_| Ok((self.id()?, self.u64()?))).collect()
    }

    fn records(&mut self) -> Result<Vec<PendingRecord>, EventDecodeError> {
        let count = self.list_len(RECORD_MIN_LEN)?;
        (0..count)
            .map(|_| {
                Ok(PendingRecord {
                    id: self.id()?,
                    offset: self.u64()?,
                    delivered_ms: self.u64()?,
                    deliveries: self.u32()?,
                    due: self.due()?,
                })
            })
            .collect()
    }

    fn finish(self) -> Result<(), EventDecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(EventDecodeError::TrailingBytes(self.rest.len()))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A deterministic xorshift generator for the tests of this module tree.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        pub(crate) fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound.max(1)
        }

        pub(crate) fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    fn sample_events() -> Vec<GroupEvent> {
        let group = b"g".to_vec();
        let consumer = b"alice".to_vec();
        let ids = vec![StreamId::new(1, 2), StreamId::MAX];
        let entries = vec![(StreamId::new(1, 2), 0), (StreamId::new(3, 4), u64::MAX)];
        vec![
            GroupEvent::GroupCreated {
                group: group.clone(),
                last_delivered: StreamId::new(5, 6),
                entries_read: Some(7),
                policy: GroupPolicy::default(),
            },
            GroupEvent::GroupCreated {
                group: group.clone(),
                last_delivered: StreamId::new(5, 6),
                entries_read: None,
                policy: GroupPolicy {
                    ack_wait_ms: Some(9),
                    max_deliver: None,
                    dead_letter: Some(b"dlq".to_vec()),
                    max_ack_pending: Some(3),
                },
            },
            GroupEvent::GroupDestroyed { group: Vec::new() },
            GroupEvent::GroupIdSet {
                group: group.clone(),
                last_delivered: StreamId::MIN,
                entries_read: None,
            },
            GroupEvent::PolicySet {
                group: group.clone(),
                policy: GroupPolicy {
                    ack_wait_ms: Some(30_000),
                    max_deliver: Some(u32::MAX),
                    dead_letter: Some(b"dlq".to_vec()),
                    max_ack_pending: Some(1),
                },
            },
            GroupEvent::PolicySet {
                group: group.clone(),
                policy: GroupPolicy::default(),
            },
            GroupEvent::ConsumerCreated {
                group: group.clone(),
                consumer: consumer.clone(),
                seen_ms: 10,
                active_ms: Some(11),
            },
            GroupEvent::ConsumerDeleted {
                group: group.clone(),
                consumer: vec![0, 255],
            },
            GroupEvent::ConsumerSeen {
                group: group.clone(),
                consumer: consumer.clone(),
                time_ms: 12,
            },
            GroupEvent::NewDelivered {
                group: group.clone(),
                consumer: consumer.clone(),
                time_ms: 13,
                due_ms: Some(14),
                last_delivered: StreamId::new(3, 4),
                entries_read: Some(2),
                entries: entries.clone(),
            },
            GroupEvent::Redelivered {
                group: group.clone(),
                consumer: consumer.clone(),
                time_ms: 15,
                due_ms: None,
                ids: ids.clone(),
            },
            GroupEvent::Reread {
                group: group.clone(),
                consumer: consumer.clone(),
                time_ms: 16,
                due_ms: Some(17),
                ids: ids.clone(),
            },
            GroupEvent::Claimed {
                group: group.clone(),
                consumer: consumer.clone(),
                time_ms: 18,
                delivered_ms: 19,
                due_ms: None,
                count: DeliveryCount::Set(9),
                entries: entries.clone(),
            },
            GroupEvent::Claimed {
                group: group.clone(),
                consumer: consumer.clone(),
                time_ms: 18,
                delivered_ms: 19,
                due_ms: Some(20),
                count: DeliveryCount::Keep,
                entries: Vec::new(),
            },
            GroupEvent::Acked {
                group: group.clone(),
                ids: ids.clone(),
            },
            GroupEvent::Nacked {
                group: group.clone(),
                due_ms: 21,
                ids: ids.clone(),
            },
            GroupEvent::DeadLettered {
                group: group.clone(),
                ids: ids.clone(),
            },
            GroupEvent::Dropped {
                group: group.clone(),
                ids: Vec::new(),
            },
            GroupEvent::Exhausted {
                group: group.clone(),
                ids,
            },
            GroupEvent::PendingRestored {
                group,
                consumer,
                entries: vec![
                    PendingRecord {
                        id: StreamId::new(1, 0),
                        offset: 3,
                        delivered_ms: 4,
                        deliveries: 5,
                        due: Due::At(6),
                    },
                    PendingRecord {
                        id: StreamId::new(2, 0),
                        offset: 7,
                        delivered_ms: 8,
                        deliveries: 0,
                        due: Due::Exhausted,
                    },
                    PendingRecord {
                        id: StreamId::new(3, 0),
                        offset: 9,
                        delivered_ms: 10,
                        deliveries: 1,
                        due: Due::NotScheduled,
                    },
                ],
            },
        ]
    }

    /// The vector of storage-format.md, A.11.
    #[test]
    fn a_group_created_with_a_policy_matches_the_format_document() {
        let event = GroupEvent::GroupCreated {
            group: b"g".to_vec(),
            last_delivered: StreamId::MIN,
            entries_read: None,
            policy: GroupPolicy {
                ack_wait_ms: Some(1000),
                max_deliver: Some(3),
                dead_letter: Some(b"dlq".to_vec()),
                max_ack_pending: None,
            },
        };
        let mut expected = vec![18, 1, 0, 0, 0, b'g'];
        expected.extend([0; 16]);
        expected.extend([0, 1, 0xe8, 3, 0, 0, 0, 0, 0, 0]);
        expected.extend([1, 3, 0, 0, 0, 1, 3, 0, 0, 0, b'd', b'l', b'q', 0]);
        assert_eq!(event.to_bytes(), expected);
        assert_eq!(GroupEvent::decode(&expected), Ok(event));
    }

    #[test]
    fn every_variant_round_trips() {
        let events = sample_events();
        let mut tags = std::collections::BTreeSet::new();
        for event in &events {
            let bytes = event.to_bytes();
            tags.insert(bytes[0]);
            assert_eq!(GroupEvent::decode(&bytes).as_ref(), Ok(event), "{event:?}");
        }
        assert_eq!(tags.len(), 18, "every tag is exercised");
    }

    #[test]
    fn every_strict_prefix_is_truncated_and_extra_bytes_are_refused() {
        for event in sample_events() {
            let bytes = event.to_bytes();
            for cut in 0..bytes.len() {
                assert!(
                    GroupEvent::decode(&bytes[..cut]).is_err(),
                    "{event:?} cut at {cut}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(
                GroupEvent::decode(&longer),
                Err(EventDecodeError::TrailingBytes(1))
            );
        }
    }

    #[test]
    fn bad_tags_markers_and_lengths_are_refused() {
        assert_eq!(
            GroupEvent::decode(&[0]),
            Err(EventDecodeError::UnknownTag(0))
        );
        assert_eq!(
            GroupEvent::decode(&[19]),
            Err(EventDecodeError::UnknownTag(19))
        );
        let mut default_policy = GroupEvent::GroupCreated {
            group: b"g".to_vec(),
            last_delivered: StreamId::MIN,
            entries_read: None,
            policy: GroupPolicy::default(),
        }
        .to_bytes();
        default_policy[0] = TAG_GROUP_CREATED_WITH_POLICY;
        default_policy.extend([0, 0, 0, 0]);
        assert_eq!(
            GroupEvent::decode(&default_policy),
            Err(EventDecodeError::BadMarker {
                field: "policy",
                value: 0
            })
        );
        assert_eq!(GroupEvent::decode(&[]), Err(EventDecodeError::Truncated));

        let mut huge_name = vec![TAG_GROUP_DESTROYED];
        huge_name.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            GroupEvent::decode(&huge_name),
            Err(EventDecodeError::NameTooLong(_))
        ));

        let mut huge_batch = vec![TAG_ACKED];
        put_bytes(&mut huge_batch, b"g");
        huge_batch.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            GroupEvent::decode(&huge_batch),
            Err(EventDecodeError::BatchTooLarge(_))
        ));

        // A count the remaining bytes cannot hold is refused before allocating.
        let mut short_batch = vec![TAG_ACKED];
        put_bytes(&mut short_batch, b"g");
        put_len(&mut short_batch, 1000);
        assert_eq!(
            GroupEvent::decode(&short_batch),
            Err(EventDecodeError::Truncated)
        );

        let mut bad_option = vec![TAG_GROUP_CREATED];
        put_bytes(&mut bad_option, b"g");
        put_id(&mut bad_option, StreamId::MIN);
        bad_option.push(7);
        assert_eq!(
            GroupEvent::decode(&bad_option),
            Err(EventDecodeError::BadMarker {
                field: "option",
                value: 7
            })
        );

        let mut bad_due = vec![TAG_PENDING_RESTORED];
        put_bytes(&mut bad_due, b"g");
        put_bytes(&mut bad_due, b"c");
        put_len(&mut bad_due, 1);
        put_id(&mut bad_due, StreamId::MIN);
        put_u64(&mut bad_due, 0);
        put_u64(&mut bad_due, 0);
        put_u32(&mut bad_due, 1);
        bad_due.push(3);
        assert_eq!(
            GroupEvent::decode(&bad_due),
            Err(EventDecodeError::BadMarker {
                field: "due time",
                value: 3
            })
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let seeds: Vec<Vec<u8>> = sample_events().iter().map(GroupEvent::to_bytes).collect();
        for round in 0..50_000 {
            let mut bytes = if round % 2 == 0 {
                let len = rng.below(64) as usize;
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                seeds[rng.below(seeds.len() as u64) as usize].clone()
            };
            if !bytes.is_empty() {
                for _ in 0..=rng.below(3) {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] = rng.next() as u8;
                }
                if rng.chance(30) {
                    bytes.truncate(rng.below(bytes.len() as u64) as usize);
                }
            }
            if let Ok(event) = GroupEvent::decode(&bytes) {
                assert_eq!(
                    event.to_bytes(),
                    bytes,
                    "a decoded event re-encodes identically"
                );
            }
        }
    }
}
