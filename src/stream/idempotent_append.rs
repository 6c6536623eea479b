//! Idempotent appends: an entry carrying a (producer, idempotency id) pair that was already
//! appended within the window is not appended again; the original entry's ID is returned.
//!
//! The key travels inside the record (its idempotency block), so it is durable exactly when the
//! entry is. The windows are rebuilt at open from `idempotency.snapshot` (kind `IDMP`: a `u64`
//! next offset it covers, then [`IdempotencyWindows::encode`]'s bytes) plus the keys of the
//! entries after that offset. The snapshot is rewritten at every clean close and after every
//! checkpoint, so a restart reads only the newest entries. The windows themselves, a pure data
//! structure, are [`crate::idempotency`]'s.

use std::path::Path;

use bytes::Bytes;

use super::Stream;
use crate::codec::{Decoder, Encoder};
use crate::durability::Commit;
use crate::error::StoreError;
use crate::id::StreamId;
use crate::idempotency::{IdempotencyConfig, IdempotencyWindows};
use crate::journal::{self, FileKind, JournalError};
use crate::log::{Appended, Log};
use crate::stream::{Message, StreamConfig};

/// Kind tag of idempotency snapshots.
pub const IDEMPOTENCY_SNAPSHOT_KIND: FileKind = FileKind(*b"IDMP");
pub use crate::fs::names::IDEMPOTENCY_SNAPSHOT_FILE;
const ENTRIES_PER_READ: usize = 4096;

/// What an idempotent append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotentAppend {
    /// The entry was new and was appended.
    Appended(Appended),
    /// The same key was appended within the window: nothing was appended; this is the ID the
    /// first append got.
    Duplicate(StreamId),
}

impl IdempotentAppend {
    /// The entry's ID, whether it was appended now or before.
    pub fn id(&self) -> StreamId {
        match self {
            IdempotentAppend::Appended(appended) => appended.id,
            IdempotentAppend::Duplicate(id) => *id,
        }
    }
}

/// The window settings a stream's configuration asks for.
pub(crate) fn window_config(config: &StreamConfig) -> IdempotencyConfig {
    let defaults = IdempotencyConfig::default();
    IdempotencyConfig {
        duration_ms: config
            .idempotency_duration_ms
            .unwrap_or(defaults.duration_ms),
        max_size: config
            .idempotency_max_size
            .and_then(|size| usize::try_from(size).ok())
            .unwrap_or(defaults.max_size),
    }
}

/// Rebuilds the windows: the snapshot, then the keys of every entry it does not cover.
pub(crate) fn recover_windows(
    log: &Log,
    config: IdempotencyConfig,
    now_ms: u64,
) -> Result<IdempotencyWindows, StoreError> {
    let path = log.dir().join(IDEMPOTENCY_SNAPSHOT_FILE);
    let saved = match journal::read_snapshot(&path, IDEMPOTENCY_SNAPSHOT_KIND) {
        Ok(snapshot) => snapshot.map(|snapshot| decode_snapshot(&snapshot.payload)),
        Err(JournalError::SnapshotCorrupt { detail, .. }) => Some(Err(detail)),
        Err(error) => return Err(error.into()),
    };
    let (mut windows, mut offset) = match saved {
        Some(Ok(saved)) => saved,
        Some(Err(detail)) => {
            // The windows are a cache of the keys in the log: only keys of entries no longer
            // in it are lost, so a retry of such an old append may be stored twice.
            tracing::error!(path = %path.display(), %detail, "idempotency snapshot damaged; rebuilding the windows from the entries still in the stream");
            (IdempotencyWindows::new(config), 0)
        }
        None => (IdempotencyWindows::new(config), 0),
    };
    if offset > log.next_offset() {
        // The log lost entries the snapshot saw: some keys may name entries that are gone, and
        // a retry must append again rather than be told it is a duplicate.
        tracing::warn!(path = %path.display(), covered = offset, next_offset = log.next_offset(), "idempotency snapshot is ahead of the recovered log; rebuilding it from the log");
        windows = IdempotencyWindows::new(config);
        offset = 0;
    }
    windows.set_config(config, now_ms);
    loop {
        let entries = log.read_from(offset, ENTRIES_PER_READ)?;
        let Some(last) = entries.last() else { break };
        offset = last.offset + 1;
        for entry in &entries {
            if let Some(key) = entry.record().idempotency {
                windows.remember(key.producer, key.iid, entry.id, entry.timestamp_ms, now_ms);
            }
        }
    }
    Ok(windows)
}

fn decode_snapshot(payload: &[u8]) -> Result<(IdempotencyWindows, u64), String> {
    let mut input = Decoder::new(payload, "idempotency snapshot");
    let covered = input.u64().map_err(|e| e.to_string())?;
    let windows = input.bytes().map_err(|e| e.to_string())?;
    input.finish().map_err(|e| e.to_string())?;
    let windows = IdempotencyWindows::decode(windows).map_err(|e| e.to_string())?;
    Ok((windows, covered))
}

/// Saves the windows with the next offset they cover.
pub(crate) fn save_windows(
    dir: &Path,
    windows: &IdempotencyWindows,
    covered_next_offset: u64,
) -> Result<(), StoreError> {
    let mut out = Encoder::new();
    out.u64(covered_next_offset).bytes(&windows.encode());
    journal::write_snapshot(
        dir,
        IDEMPOTENCY_SNAPSHOT_FILE,
        IDEMPOTENCY_SNAPSHOT_KIND,
        1,
        &out.finish(),
    )?;
    Ok(())
}

impl Stream {
    /// Appends `message` unless an entry with the same `(producer, iid)` was appended within
    /// the stream's idempotency window (Redis 8.6's `XADD … IDMP`).
    ///
    /// ```
    /// use weir::{IdempotentAppend, Message};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = weir::Store::open(dir.path()).unwrap();
    /// let orders = store.stream(b"orders").unwrap();
    /// let first = orders.append_idempotent(Message::new("pay 10"), b"shop-1", b"order-77").unwrap();
    /// let again = orders.append_idempotent(Message::new("pay 10"), b"shop-1", b"order-77").unwrap();
    /// assert!(matches!(first, IdempotentAppend::Appended(_)));
    /// assert_eq!(again, IdempotentAppend::Duplicate(first.id()));
    /// assert_eq!(orders.len(), 1);
    /// ```
    pub fn append_idempotent(
        &self,
        message: Message,
        producer: &[u8],
        iid: &[u8],
    ) -> Result<IdempotentAppend, StoreError> {
        self.append_idempotent_in(message, producer, iid, Commit::Wait)
    }

    /// [`append_idempotent`](Self::append_idempotent), made durable as `commit` says.
    pub(crate) fn append_idempotent_in(
        &self,
        mut message: Message,
        producer: &[u8],
        iid: &[u8],
        commit: Commit<'_>,
    ) -> Result<IdempotentAppend, StoreError> {
        let mut windows = self.idempotency.lock();
        let now_ms = self.clock.now_ms();
        if let Some(id) = windows.lookup(producer, iid, now_ms) {
            drop(windows);
            // The original may have been appended a moment ago and not be durable yet.
            self.commit(commit)?;
            return Ok(IdempotentAppend::Duplicate(id));
        }
        message.idempotency = Some((
            Bytes::copy_from_slice(producer),
            Bytes::copy_from_slice(iid),
        ));
        let appended = self.write_one(&message)?;
        windows.remember(producer, iid, appended.id, now_ms, now_ms);
        drop(windows);
        self.commit(commit)?;
        Ok(IdempotentAppend::Appended(appended))
    }

    /// Keys remembered by the idempotency windows (for monitoring).
    pub fn idempotency_keys(&self) -> usize {
        self.idempotency.lock().tracked()
    }

    /// Saves the windows. The entries they name are flushed first, under the windows' lock (no
    /// keyed append can slip in between), so the snapshot never names an entry the disk lacks.
    pub(crate) fn save_idempotency(&self) -> Result<(), StoreError> {
        let mut windows = self.idempotency.lock();
        let covered = self.log.next_offset();
        self.log.flush()?;
        windows.expire(self.clock.now_ms());
        save_windows(self.log.dir(), &windows, covered)
    }
}
