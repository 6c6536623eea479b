//! The errors a node answers a request with: its openraft `RaftError`, as a message.

use openraft::error::{Fatal, Infallible, InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::{AnyError, ErrorSubject, ErrorVerb, SnapshotSegmentId, StorageIOError};

use crate::cluster::types::{NodeId, StorageError};
use crate::codec::{CodecError, Decoder, Encoder};

use super::wire::{get_text, malformed};

const STOPPED: u8 = 1;
const PANICKED: u8 = 2;
const STORAGE: u8 = 3;
const SNAPSHOT_MISMATCH: u8 = 4;

/// Why the remote node could not handle a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteFailure {
    /// Its Raft has stopped.
    Stopped,
    /// Its Raft task panicked.
    Panicked,
    /// Its storage failed; the text is the storage error's message.
    Storage(String),
    /// A snapshot chunk arrived out of order.
    SnapshotMismatch {
        /// The segment it expected.
        expect: SnapshotSegmentId,
        /// The segment it got.
        got: SnapshotSegmentId,
    },
}

/// The API errors that travel as a [`RemoteFailure`]: none for AppendEntries and Vote, the
/// snapshot mismatch for InstallSnapshot.
pub trait ApiError: std::error::Error + Sized {
    /// The failure that carries this error.
    fn to_failure(&self) -> RemoteFailure;
    /// This error from a snapshot mismatch, if the request can answer one.
    fn from_mismatch(mismatch: SnapshotMismatch) -> Option<Self>;
}

impl ApiError for Infallible {
    fn to_failure(&self) -> RemoteFailure {
        match *self {}
    }

    fn from_mismatch(_: SnapshotMismatch) -> Option<Self> {
        None
    }
}

impl ApiError for InstallSnapshotError {
    fn to_failure(&self) -> RemoteFailure {
        let InstallSnapshotError::SnapshotMismatch(mismatch) = self;
        RemoteFailure::SnapshotMismatch {
            expect: mismatch.expect.clone(),
            got: mismatch.got.clone(),
        }
    }

    fn from_mismatch(mismatch: SnapshotMismatch) -> Option<Self> {
        Some(InstallSnapshotError::SnapshotMismatch(mismatch))
    }
}

impl RemoteFailure {
    /// The failure that carries `error`.
    pub fn from_raft<E: ApiError>(error: &RaftError<NodeId, E>) -> RemoteFailure {
        match error {
            RaftError::APIError(api) => api.to_failure(),
            RaftError::Fatal(Fatal::Stopped) => RemoteFailure::Stopped,
            RaftError::Fatal(Fatal::Panicked) => RemoteFailure::Panicked,
            RaftError::Fatal(Fatal::StorageError(storage)) => {
                RemoteFailure::Storage(storage.to_string())
            }
        }
    }

    /// The Raft error this failure carries; `None` if a request of this kind cannot answer it.
    pub fn into_raft<E: ApiError>(self) -> Option<RaftError<NodeId, E>> {
        let fatal = match self {
            RemoteFailure::Stopped => Fatal::Stopped,
            RemoteFailure::Panicked => Fatal::Panicked,
            RemoteFailure::Storage(text) => {
                let io =
                    StorageIOError::new(ErrorSubject::None, ErrorVerb::Read, AnyError::error(text));
                Fatal::StorageError(StorageError::from(io))
            }
            RemoteFailure::SnapshotMismatch { expect, got } => {
                return E::from_mismatch(SnapshotMismatch { expect, got }).map(RaftError::APIError);
            }
        };
        Some(RaftError::Fatal(fatal))
    }

    /// Appends the failure: a tag, then the storage error's text or the two segments.
    pub fn put(&self, out: &mut Encoder) {
        match self {
            RemoteFailure::Stopped => {
                out.u8(STOPPED);
            }
            RemoteFailure::Panicked => {
                out.u8(PANICKED);
            }
            RemoteFailure::Storage(text) => {
                out.u8(STORAGE).bytes(text.as_bytes());
            }
            RemoteFailure::SnapshotMismatch { expect, got } => {
                out.u8(SNAPSHOT_MISMATCH);
                put_segment(out, expect);
                put_segment(out, got);
            }
        }
    }

    /// Reads a failure written by [`put`](Self::put).
    pub fn get(input: &mut Decoder<'_>) -> Result<RemoteFailure, CodecError> {
        match input.u8()? {
            STOPPED => Ok(RemoteFailure::Stopped),
            PANICKED => Ok(RemoteFailure::Panicked),
            STORAGE => Ok(RemoteFailure::Storage(get_text(input)?)),
            SNAPSHOT_MISMATCH => Ok(RemoteFailure::SnapshotMismatch {
                expect: get_segment(input)?,
                got: get_segment(input)?,
            }),
            _ => Err(malformed("unknown remote error")),
        }
    }
}

fn put_segment(out: &mut Encoder, segment: &SnapshotSegmentId) {
    out.bytes(segment.id.as_bytes()).u64(segment.offset);
}

fn get_segment(input: &mut Decoder<'_>) -> Result<SnapshotSegmentId, CodecError> {
    Ok(SnapshotSegmentId {
        id: get_text(input)?,
        offset: input.u64()?,
    })
}
