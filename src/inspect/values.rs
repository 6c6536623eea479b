//! What inspection hands out of a record or of a stream's metadata, as values of its own, so
//! that a reader of the reports needs none of the engine's internal types.

use crate::id::StreamId;
use crate::log::{MetaState, Retention};
use crate::record::RecordView;

/// A valid record met by a walk, still in the segment's bytes: cheap to look at, and turned
/// into a [`RecordReport`] only when it is to be shown.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a, 'r>(pub(super) &'a RecordView<'r>);

impl RecordRef<'_, '_> {
    /// The record's offset.
    pub fn offset(&self) -> u64 {
        self.0.offset
    }

    /// The record's ID.
    pub fn id(&self) -> StreamId {
        self.0.id
    }

    /// Bytes the record occupies, padding included.
    pub fn size(&self) -> usize {
        self.0.padded_len
    }

    /// A copy of everything the record holds.
    pub fn to_report(&self) -> RecordReport {
        let record = self.0;
        RecordReport {
            offset: record.offset,
            id: record.id,
            timestamp_ms: record.timestamp_ms,
            size: record.padded_len,
            idempotency: record.idempotency.as_ref().map(|key| ProducerKey {
                producer: key.producer.to_vec(),
                iid: key.iid.to_vec(),
            }),
            headers: record
                .headers()
                .map(|(name, value)| (name.to_vec(), value.to_vec()))
                .collect(),
            body: record.body.to_vec(),
        }
    }
}

/// The idempotency key an entry was appended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerKey {
    /// The producer that sent the entry.
    pub producer: Vec<u8>,
    /// The producer's identifier for this entry.
    pub iid: Vec<u8>,
}

/// One record of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordReport {
    /// The entry's offset in its stream.
    pub offset: u64,
    /// The entry's ID.
    pub id: StreamId,
    /// When it was appended (Unix milliseconds).
    pub timestamp_ms: u64,
    /// Bytes the record occupies, padding included.
    pub size: usize,
    /// The key it was appended with, when it was appended idempotently.
    pub idempotency: Option<ProducerKey>,
    /// Its (name, value) headers, in the order they were written.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Its body.
    pub body: Vec<u8>,
}

/// A stream's metadata: what was trimmed and deleted, and the counters and limits kept beside
/// the records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaReport {
    /// Every offset below this is trimmed.
    pub first_offset: u64,
    /// Offsets deleted (or recorded as lost) at or after the first offset, in order.
    pub deleted: Vec<u64>,
    /// Redis's `max-deleted-entry-id`.
    pub max_deleted_id: StreamId,
    /// The last ID set by `XSETID`, below which no new entry may go.
    pub last_id_floor: StreamId,
    /// Redis's `entries-added` when set explicitly: the value and the next offset it was set at.
    pub entries_added: Option<(u64, u64)>,
    /// The stream's retention limits.
    pub retention: Retention,
}

impl From<&MetaState> for MetaReport {
    fn from(meta: &MetaState) -> Self {
        MetaReport {
            first_offset: meta.first_offset,
            deleted: meta.deleted.iter().copied().collect(),
            max_deleted_id: meta.max_deleted_id,
            last_id_floor: meta.last_id_floor,
            entries_added: meta.entries_added,
            retention: meta.retention,
        }
    }
}
