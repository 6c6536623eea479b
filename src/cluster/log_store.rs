//! openraft's log storage over the Raft log ([`Wal`]): entries, the vote and the commit point.
//!
//! The append callback fires from one completion task, in append order, once the batch's
//! fdatasync is done (group commit: a batch written while another's flush is pending joins the
//! next flush round), or at once when the node's durability policy says not to wait.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, OptionalSend, RaftLogReader, StorageIOError};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::codec::CodecError;
use crate::durability::PendingFlush;

use super::entry_codec::{decode_payload, encode_payload, from_wal_id, to_wal_id};
use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use super::wal::{Wal, WalEntry, WalError, WalOptions, WalRecovery, WalVote};

/// A batch written, waiting for its flush before openraft hears of it.
type Completion = (PendingFlush, LogFlushed<TypeConfig>);

/// The Raft log storage of one node.
pub struct LogStore {
    wal: Arc<Mutex<Wal>>,
    /// Sends written batches to the task that completes them in order; started at the first
    /// append, inside the runtime openraft runs on.
    completions: Option<mpsc::UnboundedSender<Completion>>,
}

/// Reads the log beside the storage (openraft's replication tasks hold one each).
#[derive(Clone)]
pub struct LogReader {
    wal: Arc<Mutex<Wal>>,
}

impl LogStore {
    /// Opens (creating if needed) the Raft log in `dir`. What recovery found comes back with
    /// it: a log that is not [whole](WalRecovery::is_whole) refuses every write and vote.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(LogStore, WalRecovery), WalError> {
        let (wal, recovery) = Wal::open(dir, options)?;
        let store = LogStore {
            wal: Arc::new(Mutex::new(wal)),
            completions: None,
        };
        Ok((store, recovery))
    }

    /// Records the vote of a node that led, `node`, as not granted by a quorum, durably, so
    /// that openraft does not restore it as the leader of its old term when it starts again.
    /// A leader that comes back knows only the commit point it last saved (at most once per
    /// interval), and after a power loss its log may lack the tail it had not synced; leading
    /// again in the same term, it would take that older commit point for a read index (a read
    /// missing writes already acknowledged), and could append new entries under log ids the
    /// others already hold for different ones. Not granted, the vote keeps the node from voting
    /// for another in that term, and the node leads again only by winning a new election,
    /// which a node missing committed entries cannot win.
    pub fn forget_leadership(&self, node: u64) -> Result<(), WalError> {
        let mut wal = self.wal.lock();
        match wal.meta().vote {
            Some(vote) if vote.committed && vote.node == node => wal.save_vote(WalVote {
                committed: false,
                ..vote
            }),
            _ => Ok(()),
        }
    }

    fn completer(&mut self) -> &mpsc::UnboundedSender<Completion> {
        self.completions.get_or_insert_with(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(complete_in_order(receiver));
            sender
        })
    }
}

/// Tells openraft of each batch once its flush is done, in the order the batches were written:
/// flush rounds end in request order, so waiting for each in turn loses no sharing.
async fn complete_in_order(mut receiver: mpsc::UnboundedReceiver<Completion>) {
    while let Some((flush, callback)) = receiver.recv().await {
        let flushed = flush.wait().await.map_err(io::Error::other);
        callback.log_io_completed(flushed);
    }
}

fn to_wal_entry(entry: &Entry) -> WalEntry {
    WalEntry {
        id: to_wal_id(&entry.log_id),
        data: encode_payload(&entry.payload),
    }
}

/// Why entries could not be read back.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Log(#[from] WalError),
    #[error("entry {index} of the Raft log does not decode: {source}")]
    Payload {
        index: u64,
        #[source]
        source: CodecError,
    },
}

impl From<ReadError> for StorageError {
    fn from(error: ReadError) -> StorageError {
        match &error {
            ReadError::Log(_) => StorageIOError::read_logs(AnyError::new(&error)),
            ReadError::Payload { index, .. } => {
                StorageIOError::read_log_at_index(*index, AnyError::new(&error))
            }
        }
        .into()
    }
}

fn from_wal_entry(entry: WalEntry) -> Result<Entry, ReadError> {
    let payload = decode_payload(&entry.data).map_err(|source| ReadError::Payload {
        index: entry.id.index,
        source,
    })?;
    Ok(Entry {
        log_id: from_wal_id(entry.id),
        payload,
    })
}

fn write_error(error: WalError) -> StorageError {
    StorageIOError::write_logs(AnyError::new(&error)).into()
}

fn read_range(wal: &Mutex<Wal>, range: impl RangeBounds<u64>) -> Result<Vec<Entry>, ReadError> {
    let start = match range.start_bound() {
        Bound::Included(&start) => start,
        Bound::Excluded(&start) => start.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&end) => end.saturating_add(1),
        Bound::Excluded(&end) => end,
        Bound::Unbounded => u64::MAX,
    };
    let entries = wal.lock().read(start..end)?;
    entries.into_iter().map(from_wal_entry).collect()
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read_range(&self.wal, range)?)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read_range(&self.wal, range)?)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let wal = self.wal.lock();
        Ok(LogState {
            last_purged_log_id: wal.meta().purged.map(from_wal_id),
            last_log_id: wal.last_log_id().map(from_wal_id),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            wal: Arc::clone(&self.wal),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = WalVote {
            term: vote.leader_id.term,
            node: vote.leader_id.node_id,
            committed: vote.committed,
        };
        self.wal
            .lock()
            .save_vote(vote)
            .map_err(|error| StorageIOError::write_vote(AnyError::new(&error)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let vote = self.wal.lock().meta().vote;
        Ok(vote.map(|vote| {
            let mut read = Vote::new(vote.term, vote.node);
            read.committed = vote.committed;
            read
        }))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        match committed {
            Some(committed) => self
                .wal
                .lock()
                .save_committed(to_wal_id(&committed))
                .map_err(write_error),
            None => Ok(()),
        }
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.wal.lock().meta().committed.map(from_wal_id))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<WalEntry> = entries.into_iter().map(|e| to_wal_entry(&e)).collect();
        let written = self.wal.lock().append(&entries).map_err(write_error)?;
        match written {
            Some(flush) => {
                if let Err(mpsc::error::SendError((_, callback))) =
                    self.completer().send((flush, callback))
                {
                    callback.log_io_completed(Err(io::Error::other(
                        "the Raft log's completion task has stopped",
                    )));
                }
            }
            None => callback.log_io_completed(Ok(())),
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.wal
            .lock()
            .truncate_from(log_id.index)
            .map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.wal
            .lock()
            .purge_to(to_wal_id(&log_id))
            .map_err(write_error)
    }
}
