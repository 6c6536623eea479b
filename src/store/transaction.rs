//! Store transactions: several changes, across streams and consumer groups, that a crash leaves
//! all in or all out.
//!
//! The store's transaction journal (`DIR/transaction.journal`, a journal of kind `STXN`) holds
//! the undo records (see [`undo`](crate::undo)) of the transaction in progress, and nothing when
//! none is: a transaction writes each record before the change it undoes, and commits by
//! clearing the journal once its changes are flushed. Opening the store finds the journal
//! empty after a commit, or undoes what it holds, newest first, then clears it.
//!
//! Durability: under `Always` each undo record is synced before its change, the changes are
//! flushed before the commit, and the commit (the cleared journal) is synced before
//! [`Store::transaction`] returns, so that a power loss too leaves all or nothing. Under the
//! other policies nothing is synced on the way: a crash of the process still leaves all or
//! nothing (written bytes survive it in the page cache), a power loss may not.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Store, StoreError, io_error};
use crate::durability::Durability;
use crate::fs::{self, names};
use crate::group::durable as group_durable;
use crate::journal::{FileKind, Journal, JournalError};
use crate::log;
use crate::names::{NAME_FILE, TRANSACTION_FILE};
use crate::undo::{self, Recorder, Undo, UndoError};

use super::replication_mark::{MarkFile, ReplicationMark};

/// Kind tag of the transaction journal.
pub(crate) const TRANSACTION_KIND: FileKind = FileKind(*b"STXN");

/// The transaction journal and what the transaction in progress touched.
#[derive(Debug)]
pub(crate) struct Transactions {
    journal: Journal,
    streams_dir: PathBuf,
    always: bool,
    /// Stream directories whose log or groups the transaction changed: flushed at commit.
    touched: Vec<PathBuf>,
    /// Deleted streams' directories, moved aside: removed for good at commit.
    trash: Vec<PathBuf>,
    /// The replication mark, written at the commit of a marked transaction.
    marks: MarkFile,
}

/// Writes a transaction's undo records to the journal.
struct JournalRecorder(Arc<Mutex<Transactions>>);

impl Recorder for JournalRecorder {
    fn record(&mut self, undo: &Undo) -> Result<(), UndoError> {
        let mut transactions = self.0.lock();
        if !undo
            .dir()
            .is_some_and(|dir| dir.starts_with(&transactions.streams_dir))
        {
            // Another store's file, changed inside this transaction's work: not part of it.
            return Ok(());
        }
        let bytes = undo.encode(&transactions.streams_dir);
        let failed = |error: JournalError| UndoError(error.to_string());
        transactions.journal.append(&bytes).map_err(failed)?;
        if transactions.always {
            transactions.journal.sync().map_err(failed)?;
        }
        match undo {
            Undo::Log { dir, .. } | Undo::Groups { dir, .. } => {
                if !transactions.touched.contains(dir) {
                    transactions.touched.push(dir.clone());
                }
            }
            Undo::Deleted { trash, .. } => transactions.trash.push(trash.clone()),
            Undo::Created { .. } | Undo::Renamed { .. } | Undo::Mark { .. } => {}
        }
        Ok(())
    }
}

impl Transactions {
    /// Opens the store's transaction journal, undoing the transaction a crash interrupted, if
    /// any; returns how many undo records that took.
    pub(crate) fn open(
        dir: &Path,
        streams_dir: &Path,
        durability: Durability,
    ) -> Result<(Transactions, usize), StoreError> {
        let path = dir.join(TRANSACTION_FILE);
        let mut marks = MarkFile::open(dir).map_err(io_error("open", dir))?;
        if !path.exists() {
            let journal = Journal::create(&path, TRANSACTION_KIND, 1)?;
            return Ok((
                Transactions::new(journal, streams_dir, durability, marks),
                0,
            ));
        }
        let (journal, replay, _) = Journal::open_repairing(&path, TRANSACTION_KIND, 1)?;
        let undone = replay.frames.len();
        if undone > 0 {
            tracing::warn!(
                records = undone,
                "undoing the changes of a transaction that a crash interrupted"
            );
        }
        for frame in replay.frames.iter().rev() {
            let undo = Undo::decode(frame, streams_dir).map_err(|error| {
                StoreError::BadTransactionJournal {
                    path: path.clone(),
                    detail: error.to_string(),
                }
            })?;
            roll_back(&undo, &mut marks)?;
        }
        let mut transactions = Transactions::new(journal, streams_dir, durability, marks);
        if undone > 0 {
            transactions.journal.clear()?;
            transactions.journal.sync()?;
        }
        Ok((transactions, undone))
    }

    fn new(
        journal: Journal,
        streams_dir: &Path,
        durability: Durability,
        marks: MarkFile,
    ) -> Transactions {
        Transactions {
            journal,
            streams_dir: streams_dir.to_path_buf(),
            always: durability == Durability::Always,
            touched: Vec::new(),
            trash: Vec::new(),
            marks,
        }
    }

    /// The replication mark the store holds now.
    pub(crate) fn mark(&self) -> Option<ReplicationMark> {
        self.marks.mark()
    }

    /// Writes down how to restore the current mark, first in the transaction.
    fn record_mark(&mut self) -> Result<(), StoreError> {
        let undo = Undo::Mark {
            previous: self.marks.mark(),
        };
        self.journal.append(&undo.encode(&self.streams_dir))?;
        if self.always {
            self.journal.sync()?;
        }
        Ok(())
    }

    /// Writes the transaction's new mark, before the commit clears the journal.
    fn write_mark(&mut self, mark: ReplicationMark) -> Result<(), StoreError> {
        let dir = fs::parent_dir(&self.streams_dir).to_path_buf();
        let failed = |source| StoreError::Io {
            op: "write the replication mark in",
            path: dir.clone(),
            source,
        };
        self.marks.write(Some(mark)).map_err(failed)?;
        if self.always {
            self.marks.sync().map_err(failed)?;
        }
        Ok(())
    }
}

/// Takes back one change of an interrupted transaction. Each step is idempotent, so a crash
/// during the undo is repaired by the next open undoing again.
fn roll_back(undo: &Undo, marks: &mut MarkFile) -> Result<(), StoreError> {
    match undo {
        Undo::Mark { previous } => {
            let restore = |error| StoreError::Io {
                op: "restore the replication mark",
                path: PathBuf::from(crate::names::REPLICATION_MARK_FILE),
                source: error,
            };
            marks.write(*previous).map_err(restore)?;
            marks.sync().map_err(restore)?;
        }
        Undo::Log {
            dir,
            next_offset,
            meta_generation,
            meta_len,
        } => log::roll_back(dir, *next_offset, *meta_generation, *meta_len)?,
        Undo::Groups {
            dir,
            generation,
            len,
        } => group_durable::roll_back(dir, *generation, *len)?,
        Undo::Created { dir } => {
            if dir.exists() {
                fs::remove_dir_all(dir).map_err(io_error("remove", dir))?;
                sync_parent(dir)?;
            }
        }
        Undo::Deleted { dir, trash } => {
            if trash.exists() && !dir.exists() {
                fs::rename(trash, dir).map_err(io_error("rename", trash))?;
                sync_parent(dir)?;
            }
        }
        Undo::Renamed { dir, name } => {
            if dir.exists() {
                let path = dir.join(NAME_FILE);
                fs::replace_durably(&path, &names::tmp_path(&path), name)
                    .map_err(io_error("replace", &path))?;
            }
        }
    }
    Ok(())
}

fn sync_parent(dir: &Path) -> Result<(), StoreError> {
    let parent = fs::parent_dir(dir);
    fs::sync_dir(parent).map_err(io_error("sync directory", parent))
}

impl Store {
    /// Runs `work` as one transaction: a crash while it runs, or before this returns, leaves
    /// none of the changes it made to the store (appends, deletions, trims, consumer-group
    /// changes, streams created, deleted or renamed, in any number of streams); once this
    /// returns `Ok`, all of them are in, and durable under [`Durability::Always`]. It does not
    /// undo anything while the process runs: an error inside `work` is `work`'s to handle, as
    /// in a Redis `MULTI`/`EXEC`.
    ///
    /// Only what `work` does on the calling thread is part of the transaction. Transactions
    /// run one at a time, and the store's maintenance (checkpoints, compactions, retention,
    /// idle expiry) waits for them. Streams a transaction deletes keep their files until it
    /// commits. `Err` means the commit failed: the changes may be in memory, and the next open
    /// undoes them. A transaction started inside another's work joins it; changes to another
    /// store inside it are not part of it.
    pub fn transaction<T>(&self, work: impl FnOnce() -> T) -> Result<T, StoreError> {
        if undo::recording() {
            return Ok(work());
        }
        let shared = &self.shared;
        let _one_at_a_time = shared.transaction_lock.lock();
        let _no_maintenance = shared.maintenance_pass.lock();
        let recorder = JournalRecorder(Arc::clone(&shared.transactions));
        let (output, recorded) = undo::recording_with(recorder, work);
        if recorded > 0 {
            self.commit_transaction(None)?;
        }
        Ok(output)
    }

    /// Runs `work` as one [transaction](Self::transaction) that also records `mark` as the
    /// store's [replication mark](Self::replication_mark): after a crash, either the changes of
    /// `work` and `mark` are both in, or neither is. A replicated log's state machine applies
    /// each batch of commands this way, with the batch's last index, so that after a restart it
    /// knows exactly which commands the store holds. Called inside another transaction's work,
    /// it is refused: the mark must cover a whole transaction.
    pub fn transaction_marked<T>(
        &self,
        mark: ReplicationMark,
        work: impl FnOnce() -> T,
    ) -> Result<T, StoreError> {
        if undo::recording() {
            return Err(StoreError::MarkInsideTransaction);
        }
        let shared = &self.shared;
        let _one_at_a_time = shared.transaction_lock.lock();
        let _no_maintenance = shared.maintenance_pass.lock();
        shared.transactions.lock().record_mark()?;
        let recorder = JournalRecorder(Arc::clone(&shared.transactions));
        let (output, _) = undo::recording_with(recorder, work);
        self.commit_transaction(Some(mark))?;
        Ok(output)
    }

    /// The position of the last replicated command the store applied, as the last
    /// [`transaction_marked`](Self::transaction_marked) recorded it; `None` if none ever did.
    pub fn replication_mark(&self) -> Option<ReplicationMark> {
        self.shared.transactions.lock().mark()
    }

    fn commit_transaction(&self, mark: Option<ReplicationMark>) -> Result<(), StoreError> {
        let shared = &self.shared;
        let (touched, trash, always) = {
            let mut transactions = shared.transactions.lock();
            (
                std::mem::take(&mut transactions.touched),
                std::mem::take(&mut transactions.trash),
                transactions.always,
            )
        };
        if always {
            for stream in self.streams_in(&touched) {
                stream.flush()?;
            }
        }
        {
            let mut transactions = shared.transactions.lock();
            if let Some(mark) = mark {
                transactions.write_mark(mark)?;
            }
            transactions.journal.clear()?;
            if always {
                transactions.journal.sync()?;
            }
        }
        for dir in trash {
            if let Err(error) = fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), %error, "could not remove a deleted stream's files; the next open removes them");
            }
        }
        Ok(())
    }

    /// The open streams whose directories are among `dirs`.
    fn streams_in(&self, dirs: &[PathBuf]) -> Vec<Arc<crate::Stream>> {
        self.shared
            .streams
            .read()
            .values()
            .filter(|(_, path)| dirs.contains(path))
            .map(|(stream, _)| Arc::clone(stream))
            .collect()
    }
}
