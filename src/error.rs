//! The crate's error: [`StoreError`], which every layer's error converts into, and the
//! [`ErrorKind`] callers match on instead of the layer an error came from.
//!
//! Its own module, below both the store and the streams: a stream reports errors without
//! depending on the store that holds it.

use std::path::PathBuf;

use crate::durability::FlushError;
use crate::group::GroupError;
use crate::group::durable::GroupStoreError;
use crate::id::StreamId;
use crate::journal::JournalError;
use crate::log::LogError;
use crate::undo::UndoError;

/// Errors of every layer, as the store and its streams report them (`weir::Error`).
#[derive(thiserror::Error)]
pub enum StoreError {
    /// A stream's log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A journal or snapshot file failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Writing changes out to disk failed.
    #[error(transparent)]
    Flush(#[from] FlushError),
    /// A stream's consumer groups failed.
    #[error(transparent)]
    Groups(#[from] GroupStoreError),
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
    /// Another process (or another `Store` in this one) has the directory open.
    #[error(
        "data directory {0} is in use by another process: stop it, or choose another directory"
    )]
    Locked(PathBuf),
    /// A store snapshot is damaged, cut short, or names a file outside a store: nothing of it
    /// was installed.
    #[error(
        "the store snapshot is damaged ({detail}); it was not installed and the store is unchanged: send or build the snapshot again"
    )]
    BadSnapshot {
        /// What is wrong with it.
        detail: String,
    },
    /// A stream directory has no readable name.
    #[error("stream directory {path} is damaged: {detail}")]
    BadStreamDir {
        /// The stream directory.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The data directory was made for another number of cluster shards.
    #[error(
        "data directory {dir} holds a cluster node of {found} shard(s), but --cluster-shards is {wanted}: start the node with --cluster-shards {found}, as every node of its cluster"
    )]
    ShardCount {
        /// The data directory.
        dir: PathBuf,
        /// The shards it holds.
        found: usize,
        /// The shards asked for.
        wanted: usize,
    },
    /// A setting is out of its allowed range.
    #[error("invalid stream setting: {0}")]
    InvalidConfig(String),
    /// A stream with `DISCARD new` is at its length limit: the append was refused and changed
    /// nothing.
    #[error(
        "stream {stream:?} is full: it holds {len} entries and its limit is MAXLEN {max_len} with DISCARD new; retry once consumers have caught up, or raise the limit"
    )]
    StreamFull {
        /// The stream's name.
        stream: String,
        /// Entries it holds.
        len: u64,
        /// Its length limit.
        max_len: u64,
    },
    /// A stream with `DISCARD new` is at its size limit: the append was refused and changed
    /// nothing.
    #[error(
        "stream {stream:?} is full: it stores {stored} bytes, the append needs {adding} more and its limit is MAXBYTES {max_bytes} with DISCARD new; retry once consumers have caught up, or raise the limit"
    )]
    StreamFullBytes {
        /// The stream's name.
        stream: String,
        /// Bytes it stores.
        stored: u64,
        /// Bytes the append needs.
        adding: u64,
        /// Its size limit.
        max_bytes: u64,
    },
    /// An append needs more bytes than the stream's size limit allows at all: it was refused
    /// and changed nothing, whatever the discard policy.
    #[error(
        "the append needs {adding} bytes but stream {stream:?} stores at most MAXBYTES {max_bytes}: send smaller entries or fewer at once, or raise the limit"
    )]
    LargerThanStream {
        /// The stream's name.
        stream: String,
        /// Bytes the append needs.
        adding: u64,
        /// Its size limit.
        max_bytes: u64,
    },
    /// [`Delivery::reply`](crate::Delivery::reply) was called on an entry that is not a
    /// request.
    #[error(
        "entry {id} is not a request: it has no {header} header; reply only to entries sent by a Requester or carrying reply-to and correlation-id"
    )]
    NotARequest {
        /// The entry's ID.
        id: StreamId,
        /// The header it lacks.
        header: &'static str,
    },
    /// An append was given no entries.
    #[error("nothing to append: the batch is empty")]
    EmptyBatch,
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// Writing down how to undo a transaction's changes failed.
    #[error(transparent)]
    Undo(#[from] UndoError),
    /// The transaction journal holds a record this version cannot read.
    #[error(
        "{path}: {detail}: the transaction journal holds a record this version cannot read; run the version that wrote it"
    )]
    BadTransactionJournal {
        /// The transaction journal.
        path: PathBuf,
        /// What does not read.
        detail: String,
    },
    /// A marked transaction was started inside another transaction's work.
    #[error(
        "a marked transaction cannot run inside another transaction: start it at the top level"
    )]
    MarkInsideTransaction,
}

impl From<GroupError> for StoreError {
    fn from(error: GroupError) -> Self {
        StoreError::Groups(GroupStoreError::Group(error))
    }
}

/// What went wrong, whatever layer noticed it: the cases a caller tells apart (a server
/// answers each with its own reply), then everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The stream has no consumer group by that name.
    NoGroup,
    /// A consumer group by that name already exists.
    GroupExists,
    /// An explicit ID is not above the stream's last ID.
    IdTooSmall,
    /// An explicit ID of 0-0.
    IdZero,
    /// The stream's last ID is the largest one: no ID is left to give.
    IdExhausted,
    /// A stream with `DISCARD new` is at its length or size limit.
    StreamFull,
    /// An entry too large to be encoded.
    EntryTooLarge,
    /// The store was closed.
    Closed,
    /// Anything else.
    Other,
}

/// The kind and the message: what `?` in a `main` returning `Result<(), weir::Error>` prints,
/// with names as text rather than the byte arrays a derived `Debug` would show.
impl std::fmt::Debug for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {self}", self.kind())
    }
}

impl StoreError {
    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Groups(GroupStoreError::Group(error)) => group_error_kind(error),
            StoreError::Log(error) => log_error_kind(error),
            StoreError::StreamFull { .. } | StoreError::StreamFullBytes { .. } => {
                ErrorKind::StreamFull
            }
            StoreError::Closed => ErrorKind::Closed,
            _ => ErrorKind::Other,
        }
    }
}

impl StoreError {
    /// Whether the error comes from this machine (its disk, its files, the store being
    /// closed) rather than from the request and the data it met. The same request on the same
    /// data fails the same way anywhere when this is `false`; when it is `true`, another
    /// machine holding the same data would have succeeded, so a replicated state machine must
    /// stop rather than answer it, or it would differ from the other replicas.
    pub fn is_local(&self) -> bool {
        match self {
            StoreError::Log(error) => log_error_is_local(error),
            StoreError::Groups(error) => !matches!(error, GroupStoreError::Group(_)),
            StoreError::Journal(_)
            | StoreError::Flush(_)
            | StoreError::Io { .. }
            | StoreError::Locked(_)
            | StoreError::ShardCount { .. }
            | StoreError::BadStreamDir { .. }
            | StoreError::BadSnapshot { .. }
            | StoreError::Closed
            | StoreError::Undo(_)
            | StoreError::BadTransactionJournal { .. } => true,
            StoreError::InvalidConfig(_)
            | StoreError::StreamFull { .. }
            | StoreError::StreamFullBytes { .. }
            | StoreError::LargerThanStream { .. }
            | StoreError::NotARequest { .. }
            | StoreError::EmptyBatch
            | StoreError::MarkInsideTransaction => false,
        }
    }
}

fn log_error_is_local(error: &LogError) -> bool {
    match error {
        LogError::Segment(_)
        | LogError::Journal(_)
        | LogError::Undo(_)
        | LogError::Io { .. }
        | LogError::Corrupt { .. } => true,
        LogError::Encode(_)
        | LogError::IdTooSmall { .. }
        | LogError::LowerIdInTransaction { .. }
        | LogError::IdZero
        | LogError::IdExhausted => false,
    }
}

fn group_error_kind(error: &GroupError) -> ErrorKind {
    match error {
        GroupError::NoGroup { .. } => ErrorKind::NoGroup,
        GroupError::GroupExists { .. } => ErrorKind::GroupExists,
        _ => ErrorKind::Other,
    }
}

fn log_error_kind(error: &LogError) -> ErrorKind {
    match error {
        LogError::IdTooSmall { .. } => ErrorKind::IdTooSmall,
        LogError::IdZero => ErrorKind::IdZero,
        LogError::IdExhausted => ErrorKind::IdExhausted,
        LogError::Encode(_) => ErrorKind::EntryTooLarge,
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_look_through_the_layers() {
        let no_group = StoreError::from(GroupError::NoGroup {
            group: b"g".to_vec(),
        });
        assert_eq!(no_group.kind(), ErrorKind::NoGroup);
        let exists = StoreError::from(GroupError::GroupExists {
            group: b"g".to_vec(),
        });
        assert_eq!(exists.kind(), ErrorKind::GroupExists);
        assert_eq!(StoreError::from(LogError::IdZero).kind(), ErrorKind::IdZero);
        let full = StoreError::StreamFull {
            stream: "s".into(),
            len: 1,
            max_len: 1,
        };
        assert_eq!(full.kind(), ErrorKind::StreamFull);
        assert_eq!(StoreError::Closed.kind(), ErrorKind::Closed);
        assert_eq!(StoreError::EmptyBatch.kind(), ErrorKind::Other);
    }
}
