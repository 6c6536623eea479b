//! The log as the consumer-group layer sees it, and what a stream flushes.

use std::cell::RefCell;
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::durability::{Flush, FlushError};
use crate::group::{EntrySource, StreamFacts};
use crate::id::StreamId;
use crate::journal::JournalSync;
use crate::log::{Entry, Log, LogError};

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

/// [`LogSource`] that keeps the entries [`entries_after`](EntrySource::entries_after) read: a
/// group read hands out those very entries next, and reading each again by offset would scan
/// from the nearest index point and check every record on the way, for every entry.
pub(crate) struct ReadingSource<'a> {
    log: &'a Log,
    /// In offset order.
    read: RefCell<Vec<Entry>>,
}

impl<'a> ReadingSource<'a> {
    pub(crate) fn new(log: &'a Log) -> Self {
        ReadingSource {
            log,
            read: RefCell::default(),
        }
    }

    /// The entry at `offset`: kept from the planning when it read it, else read now.
    pub(crate) fn take(&self, offset: u64) -> Result<Option<Entry>, LogError> {
        let read = self.read.borrow();
        match read.binary_search_by_key(&offset, |entry| entry.offset) {
            Ok(at) => Ok(Some(read[at].clone())),
            Err(_) => self.log.read(offset),
        }
    }
}

impl EntrySource for ReadingSource<'_> {
    fn entries_after(&self, after: StreamId, max: usize) -> Vec<(StreamId, u64)> {
        match self
            .log
            .range(Bound::Excluded(after), Bound::Unbounded, max)
        {
            Ok(entries) => {
                let found = entries.iter().map(|e| (e.id, e.offset)).collect();
                let mut read = self.read.borrow_mut();
                let sorted = match (read.last(), entries.first()) {
                    (Some(last), Some(first)) => last.offset < first.offset,
                    _ => true,
                };
                read.extend(entries);
                if !sorted {
                    read.sort_by_key(|entry| entry.offset);
                    read.dedup_by_key(|entry| entry.offset);
                }
                found
            }
            Err(error) => {
                tracing::error!(%error, "reading entries for a consumer group failed");
                Vec::new()
            }
        }
    }

    fn lookup(&self, id: StreamId) -> Option<u64> {
        LogSource(self.log).lookup(id)
    }

    fn facts(&self) -> StreamFacts {
        LogSource(self.log).facts()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, Store};

    #[test]
    fn a_reading_source_hands_out_what_it_read_and_reads_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stream = store.stream(b"s").unwrap();
        let messages: Vec<Message> = (0..10).map(|n| Message::new(vec![n; 8])).collect();
        let appended = stream.append_batch(&messages).unwrap();
        let source = ReadingSource::new(&stream.log);
        let planned = source.entries_after(appended[1].id, 3);
        let expected: Vec<(StreamId, u64)> =
            appended[2..5].iter().map(|a| (a.id, a.offset)).collect();
        assert_eq!(planned, expected);
        // A later, earlier read: still found by offset.
        assert_eq!(source.entries_after(StreamId::MIN, 3).len(), 3);
        for offset in [3, 8, 3, 0, 2, 42] {
            let taken = source.take(offset).unwrap();
            let direct = stream.log.read(offset).unwrap();
            assert_eq!(taken.as_ref().map(|e| e.id), direct.as_ref().map(|e| e.id));
            assert_eq!(
                taken.map(|e| e.record().body.to_vec()),
                direct.map(|e| e.record().body.to_vec()),
                "offset {offset}"
            );
        }
        drop(source);
        drop(stream);
        store.close().unwrap();
    }
}
