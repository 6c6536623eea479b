//! The log's vocabulary: its options and errors, what an append takes and returns, and the
//! entries a read hands out.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::id::StreamId;
use crate::journal::JournalError;
use crate::record::{self, EncodeError, IdempotencyKey, RecordView};
use crate::segment::{Segment, SegmentError};
use crate::undo::UndoError;

/// Sizing of a log's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Segments grow by doubling from `initial_segment_bytes` up to this size.
    pub max_segment_bytes: u64,
    /// Size of a new log's first segment: small, so that many small streams stay cheap.
    pub initial_segment_bytes: u64,
    /// One index point per this many bytes of records.
    pub index_interval_bytes: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            max_segment_bytes: 64 << 20,
            initial_segment_bytes: 256 << 10,
            index_interval_bytes: 4096,
        }
    }
}

/// Errors of the log layer.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A segment file failed.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// The meta journal or the checkpoint failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// An entry cannot be encoded (too large, too many headers).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Writing down how to undo a transaction's changes failed.
    #[error(transparent)]
    Undo(#[from] UndoError),
    /// An operating-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The call, as a verb ("open", "rename", ...).
        op: &'static str,
        /// The file or directory it was made on.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// An explicit ID is not greater than the stream's last ID.
    #[error("the ID specified is equal or smaller than the stream's last ID {last}")]
    IdTooSmall {
        /// The stream's last ID.
        last: StreamId,
    },
    /// Lowering the last ID of an empty stream removes its segment files, which a transaction
    /// cannot undo.
    #[error(
        "moving an empty stream's last ID below {last} removes its files and cannot run inside \
         MULTI/EXEC: send XSETID on its own"
    )]
    LowerIdInTransaction {
        /// The stream's last ID.
        last: StreamId,
    },
    /// `0-0` was given as an entry ID.
    #[error("the ID specified must be greater than 0-0")]
    IdZero,
    /// The stream's last ID is the maximum ID: no automatic ID is left.
    #[error("the stream has exhausted the last possible ID, unable to add more items")]
    IdExhausted,
    /// The files on disk contradict each other in a way recovery cannot repair alone.
    #[error("{path}: {detail}")]
    Corrupt {
        /// The file or directory at fault.
        path: PathBuf,
        /// What contradicts what, and what to do.
        detail: String,
    },
}

impl LogError {
    pub(super) fn io<'a>(
        op: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> LogError + 'a {
        move |source| LogError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How an appended entry gets its ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSpec {
    /// Generated from the clock, as Redis's `*`.
    Auto,
    /// Exactly this ID; it must exceed the stream's last ID.
    Explicit(StreamId),
    /// `ms-*`: this millisecond with the next free sequence number.
    AutoSeq(u64),
}

/// An entry to append.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a, H: AsRef<[u8]>> {
    pub id: IdSpec,
    pub headers: &'a [(H, H)],
    pub body: &'a [u8],
    pub idempotency: Option<IdempotencyKey<'a>>,
}

/// Something that can be appended as an entry: a [`NewEntry`], or a higher layer's message
/// lending its parts, so that appending a batch of messages builds no vector of entries first.
pub trait AsEntry {
    /// The type of header names and values.
    type Field: AsRef<[u8]>;
    /// The entry's parts, borrowed.
    fn as_entry(&self) -> NewEntry<'_, Self::Field>;
}

impl<H: AsRef<[u8]>> AsEntry for NewEntry<'_, H> {
    type Field = H;

    fn as_entry(&self) -> NewEntry<'_, H> {
        NewEntry {
            id: self.id,
            headers: self.headers,
            body: self.body,
            idempotency: self.idempotency,
        }
    }
}

/// Where an appended entry went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The entry's offset.
    pub offset: u64,
    /// The entry's ID.
    pub id: StreamId,
}

/// An entry read from the log. Holds its segment alive; the bytes are read in place, not copied.
#[derive(Clone)]
pub struct Entry {
    pub(super) segment: Arc<Segment>,
    pub(super) pos: usize,
    /// The entry's offset.
    pub offset: u64,
    /// The entry's ID.
    pub id: StreamId,
    /// When it was appended (Unix milliseconds).
    pub timestamp_ms: u64,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("offset", &self.offset)
            .field("id", &self.id)
            .field("timestamp_ms", &self.timestamp_ms)
            .finish()
    }
}

impl Entry {
    /// The record, borrowed from the segment's memory map.
    pub fn record(&self) -> RecordView<'_> {
        let bytes = &self.segment.bytes()[self.pos..];
        match record::decode_verified(bytes) {
            Ok(view) => view,
            Err(error) => unreachable!("record at {} verified when read: {error}", self.pos),
        }
    }

    /// The entry's body.
    pub fn body(&self) -> &[u8] {
        self.record().body
    }

    /// The entry's headers, in order.
    pub fn headers(&self) -> record::Headers<'_> {
        self.record().headers()
    }

    /// The whole record as [`Bytes`] over the segment's memory map: no copy is made, and the
    /// segment stays mapped while any clone or slice of it lives.
    pub fn record_bytes(&self) -> Bytes {
        let len = self.record().padded_len;
        Bytes::from_owner(RecordSlice {
            segment: Arc::clone(&self.segment),
            start: self.pos,
            len,
        })
    }

    /// The headers as shared slices of [`record_bytes`](Self::record_bytes), in order.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = weir::Store::open(dir.path()).unwrap();
    /// let stream = store.stream(b"s").unwrap();
    /// stream.append(weir::Message::new("body").header("field", "value")).unwrap();
    /// let entry = stream.read(0).unwrap().unwrap();
    /// let headers = entry.header_bytes();
    /// assert_eq!(headers, vec![("field".into(), "value".into())]);
    /// // The value is the entry's own bytes in the map, not a copy.
    /// let (_, in_map) = entry.headers().next().unwrap();
    /// assert_eq!(headers[0].1.as_ptr(), in_map.as_ptr());
    /// assert_eq!(entry.body_bytes(), "body");
    /// ```
    pub fn header_bytes(&self) -> Vec<(Bytes, Bytes)> {
        let whole = self.record_bytes();
        let record = self.record();
        record
            .headers()
            .map(|(name, value)| (slice_of(&whole, name), slice_of(&whole, value)))
            .collect()
    }

    /// The body as a shared slice of [`record_bytes`](Self::record_bytes).
    pub fn body_bytes(&self) -> Bytes {
        slice_of(&self.record_bytes(), self.record().body)
    }
}

/// A record's bytes inside a mapped segment, owned by reference count.
struct RecordSlice {
    segment: Arc<Segment>,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for RecordSlice {
    fn as_ref(&self) -> &[u8] {
        &self.segment.bytes()[self.start..self.start + self.len]
    }
}

/// `part` (a sub-slice of the bytes `whole` shares) as a slice of `whole`.
fn slice_of(whole: &Bytes, part: &[u8]) -> Bytes {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    debug_assert!(
        start + part.len() <= whole.len(),
        "part is not inside the record"
    );
    whole.slice(start..start + part.len())
}

/// Where a range read starts or ends.
pub type IdBound = Bound<StreamId>;
