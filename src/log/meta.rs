//! A log's metadata: what is deleted or trimmed, the counters Redis reports, and retention.
//!
//! It changes through [`MetaEvent`]s appended to the meta journal, and is saved whole in every
//! checkpoint. Byte layouts are in `storage-format.md` ("Meta journal" and "Checkpoint").

use std::collections::BTreeSet;

use crate::codec::{CodecError, Decoder, Encoder};
use crate::id::StreamId;

/// Retention limits that remove whole sealed segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Remove a sealed segment once its newest entry is older than this.
    pub max_age_ms: Option<u64>,
    /// Remove the oldest sealed segments while the log's files exceed this many bytes.
    pub max_bytes: Option<u64>,
}

/// The metadata of one log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaState {
    /// Entries with smaller offsets are trimmed away.
    pub first_offset: u64,
    /// Offsets at or after `first_offset` that were deleted (or lost to damage).
    pub deleted: BTreeSet<u64>,
    /// The largest ID ever deleted (Redis's `max-deleted-entry-id`).
    pub max_deleted_id: StreamId,
    /// Set by XSETID: the stream's last ID is the larger of this and its last entry's ID.
    pub last_id_floor: StreamId,
    /// Set by XSETID ENTRIESADDED: `(value, next_offset at the time)`.
    pub entries_added: Option<(u64, u64)>,
    /// Retention limits.
    pub retention: Retention,
    /// Opaque settings of the layer above (stream configuration).
    pub attributes: Vec<u8>,
}

/// One change to a log's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaEvent {
    /// Entries deleted (XDEL) or lost to damage.
    Delete {
        offsets: Vec<u64>,
        max_deleted_id: StreamId,
    },
    /// Every entry before `first_offset` is gone.
    Trim { first_offset: u64 },
    /// XSETID's new last ID.
    SetLastId { id: StreamId },
    /// XSETID ENTRIESADDED.
    SetEntriesAdded { value: u64, at_next_offset: u64 },
    /// XSETID MAXDELETEDID.
    SetMaxDeletedId { id: StreamId },
    /// New retention limits.
    SetRetention(Retention),
    /// New settings of the layer above.
    SetAttributes(Vec<u8>),
}

const TAG_DELETE: u8 = 1;
const TAG_TRIM: u8 = 2;
const TAG_SET_LAST_ID: u8 = 3;
const TAG_SET_ENTRIES_ADDED: u8 = 4;
const TAG_SET_MAX_DELETED_ID: u8 = 5;
const TAG_SET_RETENTION: u8 = 6;
const TAG_SET_ATTRIBUTES: u8 = 7;

impl MetaState {
    /// Applies one event.
    pub fn apply(&mut self, event: &MetaEvent) {
        match event {
            MetaEvent::Delete {
                offsets,
                max_deleted_id,
            } => {
                let first = self.first_offset;
                self.deleted.extend(offsets.iter().filter(|&&o| o >= first));
                self.max_deleted_id = self.max_deleted_id.max(*max_deleted_id);
            }
            MetaEvent::Trim { first_offset } => {
                if *first_offset > self.first_offset {
                    self.first_offset = *first_offset;
                    self.deleted = self.deleted.split_off(first_offset);
                }
            }
            MetaEvent::SetLastId { id } => self.last_id_floor = *id,
            MetaEvent::SetEntriesAdded {
                value,
                at_next_offset,
            } => self.entries_added = Some((*value, *at_next_offset)),
            MetaEvent::SetMaxDeletedId { id } => self.max_deleted_id = *id,
            MetaEvent::SetRetention(retention) => self.retention = *retention,
            MetaEvent::SetAttributes(attributes) => self.attributes.clone_from(attributes),
        }
    }

    /// Entries ever appended, as Redis counts them (`entries-added`).
    pub fn entries_added(&self, next_offset: u64) -> u64 {
        match self.entries_added {
            Some((value, at)) => value + next_offset.saturating_sub(at),
            None => next_offset,
        }
    }

    /// Deleted offsets in `[from, to)`.
    pub fn deleted_between(&self, from: u64, to: u64) -> usize {
        if from >= to {
            return 0;
        }
        self.deleted.range(from..to).count()
    }

    /// Whether every offset in `offsets` is trimmed or deleted.
    pub fn all_gone(&self, offsets: std::ops::Range<u64>) -> bool {
        let from = offsets.start.max(self.first_offset);
        from >= offsets.end || self.deleted_between(from, offsets.end) as u64 == offsets.end - from
    }

    /// Whether the entry at `offset` is gone (trimmed or deleted).
    pub fn is_gone(&self, offset: u64) -> bool {
        offset < self.first_offset || self.deleted.contains(&offset)
    }

    pub(crate) fn encode(&self, out: &mut Encoder) {
        out.u64(self.first_offset)
            .id(self.max_deleted_id)
            .id(self.last_id_floor);
        match self.entries_added {
            Some((value, at)) => out.u8(1).u64(value).u64(at),
            None => out.u8(0),
        };
        encode_retention(out, &self.retention);
        out.bytes(&self.attributes);
        out.u64(self.deleted.len() as u64);
        for &offset in &self.deleted {
            out.u64(offset);
        }
    }

    pub(crate) fn decode(input: &mut Decoder<'_>) -> Result<MetaState, CodecError> {
        let first_offset = input.u64()?;
        let max_deleted_id = input.id()?;
        let last_id_floor = input.id()?;
        let entries_added = match input.u8()? {
            0 => None,
            _ => Some((input.u64()?, input.u64()?)),
        };
        let retention = decode_retention(input)?;
        let attributes = input.bytes()?.to_vec();
        let count = input.count(8)?;
        let mut deleted = BTreeSet::new();
        for _ in 0..count {
            deleted.insert(input.u64()?);
        }
        Ok(MetaState {
            first_offset,
            deleted,
            max_deleted_id,
            last_id_floor,
            entries_added,
            retention,
            attributes,
        })
    }
}

fn encode_retention(out: &mut Encoder, retention: &Retention) {
    out.u64(retention.max_age_ms.unwrap_or(0))
        .u64(retention.max_bytes.unwrap_or(0));
}

fn decode_retention(input: &mut Decoder<'_>) -> Result<Retention, CodecError> {
    let nonzero = |v: u64| (v != 0).then_some(v);
    Ok(Retention {
        max_age_ms: nonzero(input.u64()?),
        max_bytes: nonzero(input.u64()?),
    })
}

impl MetaEvent {
    /// The event's journal payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Encoder::new();
        match self {
            MetaEvent::Delete {
                offsets,
                max_deleted_id,
            } => {
                out.u8(TAG_DELETE)
                    .id(*max_deleted_id)
                    .u64(offsets.len() as u64);
                for &offset in offsets {
                    out.u64(offset);
                }
            }
            MetaEvent::Trim { first_offset } => {
                out.u8(TAG_TRIM).u64(*first_offset);
            }
            MetaEvent::SetLastId { id } => {
                out.u8(TAG_SET_LAST_ID).id(*id);
            }
            MetaEvent::SetEntriesAdded {
                value,
                at_next_offset,
            } => {
                out.u8(TAG_SET_ENTRIES_ADDED)
                    .u64(*value)
                    .u64(*at_next_offset);
            }
            MetaEvent::SetMaxDeletedId { id } => {
                out.u8(TAG_SET_MAX_DELETED_ID).id(*id);
            }
            MetaEvent::SetRetention(retention) => {
                out.u8(TAG_SET_RETENTION);
                encode_retention(&mut out, retention);
            }
            MetaEvent::SetAttributes(attributes) => {
                out.u8(TAG_SET_ATTRIBUTES).bytes(attributes);
            }
        }
        out.finish()
    }

    /// Parses a journal payload.
    pub fn decode(bytes: &[u8]) -> Result<MetaEvent, CodecError> {
        let mut input = Decoder::new(bytes, "meta event");
        let event = match input.u8()? {
            TAG_DELETE => {
                let max_deleted_id = input.id()?;
                let count = input.count(8)?;
                let offsets = (0..count).map(|_| input.u64()).collect::<Result<_, _>>()?;
                MetaEvent::Delete {
                    offsets,
                    max_deleted_id,
                }
            }
            TAG_TRIM => MetaEvent::Trim {
                first_offset: input.u64()?,
            },
            TAG_SET_LAST_ID => MetaEvent::SetLastId { id: input.id()? },
            TAG_SET_ENTRIES_ADDED => MetaEvent::SetEntriesAdded {
                value: input.u64()?,
                at_next_offset: input.u64()?,
            },
            TAG_SET_MAX_DELETED_ID => MetaEvent::SetMaxDeletedId { id: input.id()? },
            TAG_SET_RETENTION => MetaEvent::SetRetention(decode_retention(&mut input)?),
            TAG_SET_ATTRIBUTES => MetaEvent::SetAttributes(input.bytes()?.to_vec()),
            _ => {
                return Err(CodecError {
                    what: "meta event",
                    detail: "unknown tag",
                });
            }
        };
        input.finish()?;
        Ok(event)
    }
}

/// The point up to which the log is known to be on disk: recovery scans only what follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryPoint {
    /// Base offset of the segment holding the point.
    pub segment_base: u64,
    /// Byte position in that segment where the durable records end.
    pub pos: u64,
    /// Offset the next record gets.
    pub next_offset: u64,
    /// ID of the last record before the point (`0-0` when none).
    pub last_id: StreamId,
}

/// The contents of a checkpoint file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Written by a clean shutdown: the recovery point is the exact end of the log and nothing
    /// needs scanning.
    pub clean: bool,
    /// Generation of the meta journal that holds the events after this checkpoint.
    pub journal_generation: u64,
    pub recovery_point: RecoveryPoint,
    pub meta: MetaState,
}

impl Checkpoint {
    /// The snapshot payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Encoder::new();
        let point = &self.recovery_point;
        out.u8(u8::from(self.clean))
            .u64(self.journal_generation)
            .u64(point.segment_base)
            .u64(point.pos)
            .u64(point.next_offset)
            .id(point.last_id);
        self.meta.encode(&mut out);
        out.finish()
    }

    /// Parses a snapshot payload.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CodecError> {
        let mut input = Decoder::new(bytes, "checkpoint");
        let clean = input.u8()? == 1;
        let journal_generation = input.u64()?;
        let recovery_point = RecoveryPoint {
            segment_base: input.u64()?,
            pos: input.u64()?,
            next_offset: input.u64()?,
            last_id: input.id()?,
        };
        let meta = MetaState::decode(&mut input)?;
        input.finish()?;
        Ok(Checkpoint {
            clean,
            journal_generation,
            recovery_point,
            meta,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<MetaEvent> {
        vec![
            MetaEvent::Delete {
                offsets: vec![3, 5, 9],
                max_deleted_id: StreamId::new(9, 1),
            },
            MetaEvent::Trim { first_offset: 4 },
            MetaEvent::SetLastId {
                id: StreamId::new(100, 0),
            },
            MetaEvent::SetEntriesAdded {
                value: 50,
                at_next_offset: 10,
            },
            MetaEvent::SetMaxDeletedId {
                id: StreamId::new(9, 2),
            },
            MetaEvent::SetRetention(Retention {
                max_age_ms: Some(1000),
                max_bytes: None,
            }),
            MetaEvent::SetAttributes(b"attrs".to_vec()),
        ]
    }

    #[test]
    fn events_round_trip_and_apply() {
        let mut state = MetaState::default();
        for event in events() {
            assert_eq!(MetaEvent::decode(&event.encode()).unwrap(), event);
            state.apply(&event);
        }
        assert_eq!(state.first_offset, 4);
        assert_eq!(
            state.deleted.iter().copied().collect::<Vec<_>>(),
            vec![5, 9]
        );
        assert!(state.is_gone(3) && state.is_gone(5) && !state.is_gone(6));
        assert_eq!(state.entries_added(12), 52);
        assert_eq!(state.deleted_between(0, 20), 2);
        let checkpoint = Checkpoint {
            clean: true,
            journal_generation: 3,
            recovery_point: RecoveryPoint {
                segment_base: 0,
                pos: 640,
                next_offset: 12,
                last_id: StreamId::new(11, 0),
            },
            meta: state,
        };
        assert_eq!(
            Checkpoint::decode(&checkpoint.encode()).unwrap(),
            checkpoint
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = MetaEvent::decode(&bytes);
            let _ = Checkpoint::decode(&bytes);
        }
    }
}
