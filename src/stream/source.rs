//! The log as the consumer-group layer sees it, and what a stream flushes.

use std::ops::Bound;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::durability::{Flush, FlushError};
use crate::group::{EntrySource, StreamFacts};
use crate::id::StreamId;
use crate::journal::JournalSync;
use crate::log::Log;

/// [`EntrySource`] over a log.
pub(crate) struct LogSource<'a>(pub(crate) &'a Log);

impl EntrySource for LogSource<'_> {
    fn entries_after(&self, after: StreamId, max: usize) -> Vec<(StreamId, u64)> {
        match self.0.range(Bound::Excluded(after), Bound::Unbounded, max) {
            Ok(entries) => entries.iter().map(|e| (e.id, e.offset)).collect(),
            Err(error) => {
                tracing::error!(%error, "reading entries for a consumer group failed");
                Vec::new()
            }
        }
    }

    fn lookup(&self, id: StreamId) -> Option<u64> {
        self.0.lookup(id).ok().flatten()
    }

    fn facts(&self) -> StreamFacts {
        let first_id = self
            .0
            .range(Bound::Unbounded, Bound::Unbounded, 1)
            .ok()
            .and_then(|entries| entries.first().map(|e| e.id))
            .unwrap_or(StreamId::MIN);
        StreamFacts {
            entries_added: self.0.entries_added(),
            length: self.0.len(),
            first_id,
            last_id: self.0.last_id(),
            max_deleted_id: self.0.max_deleted_id(),
        }
    }
}

/// Flushes a stream's log, then its group journal. Holds the journal's sync handle in a slot of
/// its own, never the group state's lock: a group operation that waits for a flush while holding
/// that lock (a dead letter appended durably) must not block the flusher.
pub(crate) struct StreamFlush {
    pub(crate) log: Arc<Log>,
    pub(crate) groups_sync: Mutex<JournalSync>,
}

impl Flush for StreamFlush {
    fn flush(&self) -> Result<(), FlushError> {
        self.log.flush().map_err(|e| FlushError::from_error(&e))?;
        let sync = self.groups_sync.lock().clone();
        sync.sync().map_err(|e| FlushError::from_error(&e))
    }
}
