//! The Raft log: a write-ahead log of replicated commands, in its own files beside the node's
//! streams (storage-format.md section 14).
//!
//! Entries are frames of journal containers (`raft.<first index>.wal`), one write per batch;
//! a batch is durable once the group-commit flusher has run an fdatasync of the file after the
//! write, and concurrent batches share that fdatasync. Unlike a stream's segments, the log can
//! lose its uncommitted tail ([`Wal::truncate_from`], when a new leader overrules entries this
//! node accepted from an old one) and its applied head ([`Wal::purge_to`], whole files, once a
//! snapshot holds their effect). The vote, the commit point and the purge point live in
//! `raft.meta`, replaced atomically and durably at each change.
//!
//! Invariants the files keep, which recovery relies on:
//! * every file but the last is durable in full before the next one is created, so only the last
//!   file can end in a torn write;
//! * the files' entries are consecutive: each file starts where the one before it ends, and the
//!   first starts at or before the entry after the purge point;
//! * no entry at or below the commit point is ever truncated, and recovery never cuts one.
//!
//! Damage that breaks these (a bad frame in an older file, a missing file, a committed entry
//! lost from the last file) is not repaired: [`Wal::open`] reports it as a [`WalDamage`] and the
//! log refuses every write, its vote included, until an operator acts, because the node may
//! have acknowledged entries it no longer holds.

mod commit_file;
mod file;
mod inspect;
pub mod meta;
mod recovery;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::durability::{Durability, Flush, FlushError, PendingFlush, Syncer};
use crate::fs;
use crate::journal::{self, Journal, JournalDamage, JournalError, JournalSync};
use crate::names::raft_log_file_name;

pub use file::{ENTRY_HEADER_LEN, RAFT_LOG_KIND, decode_entry, encode_entry};
use file::{LogFile, Slot, frame_len};
pub use inspect::{
    TermRegression, WalFileAlone, WalFileInspection, WalInspection, inspect, inspect_file,
};
pub use meta::{RAFT_META_KIND, WalLogId, WalMeta, WalVote};

use commit_file::CommitFile;
use meta::LaterByIndex;

/// One entry of the log: its position, and data the log does not look into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalEntry {
    /// The entry's term and index.
    pub id: WalLogId,
    /// The encoded entry, opaque to the log.
    pub data: Vec<u8>,
}

/// How the log writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// A file that has reached this many bytes gets no more batches: the next one starts a new
    /// file, so purging frees space file by file. A file exceeds it by at most one batch.
    pub max_file_bytes: u64,
    /// When an appended batch counts as durable: after its fdatasync under
    /// [`Durability::Always`], at once (the flush runs later) under the others.
    pub durability: Durability,
    /// How often a new commit point is saved in `raft.commit`: `None`, at every
    /// [`Wal::save_committed`]; `Some(interval)`, at most once per interval (a newer one is
    /// kept in memory meanwhile and written with the next vote, or the first save once the
    /// interval has passed). openraft needs the commit point only to apply sooner after a
    /// restart, and recovery uses it as a lower bound of what must be intact, so a stale one is
    /// safe; saving it at every commit costs an `fdatasync` per commit.
    pub commit_save_interval: Option<std::time::Duration>,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            max_file_bytes: 64 * 1024 * 1024,
            durability: Durability::Always,
            commit_save_interval: None,
        }
    }
}

/// Damage that recovery found and did not repair, because repairing it could drop an entry the
/// node acknowledged. A log with damage accepts no write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalDamage {
    /// A file before the last one holds a bad frame: only the last file may end in a torn write.
    #[error(
        "{}: the entry at index {index} (byte {position}) is unreadable ({reason}), yet later \
         files go on",
        .path.display()
    )]
    BrokenFile {
        /// The file concerned.
        path: PathBuf,
        /// The Raft index concerned.
        index: u64,
        /// The byte offset in the file.
        position: u64,
        /// Why the frame is unreadable.
        reason: String,
    },
    /// The last file's tail is bad at or below the commit point: an acknowledged entry is gone.
    #[error(
        "{}: the entry at index {index} (byte {position}) is unreadable ({reason}), but entries \
         up to {committed} were committed",
        .path.display()
    )]
    LostCommitted {
        /// The file concerned.
        path: PathBuf,
        /// The Raft index concerned.
        index: u64,
        /// The byte offset in the file.
        position: u64,
        /// The commit point the log recorded.
        committed: u64,
        /// Why the frame is unreadable.
        reason: String,
    },
    /// Entries are missing: a file starts after the index the log expected next.
    #[error(
        "{}: the log expected entry {expected} next but the file starts at {found}",
        .path.display()
    )]
    Gap {
        /// The file concerned.
        path: PathBuf,
        /// The index the log expected.
        expected: u64,
        /// The index found instead.
        found: u64,
    },
    /// A frame that checks holds an entry that does not belong at its place.
    #[error("{}: byte {position}: {detail}", .path.display())]
    Misplaced {
        /// The file concerned.
        path: PathBuf,
        /// The byte offset in the file.
        position: u64,
        /// What is wrong.
        detail: String,
    },
    /// The log ends before the commit point.
    #[error("the log ends at {last:?} but entries up to {committed} were committed")]
    MissingCommitted {
        /// The last index the log holds.
        last: Option<u64>,
        /// The commit point the log recorded.
        committed: u64,
    },
}

/// What opening the log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalRecovery {
    /// A torn write cut from the end of the last file: a batch whose flush never completed, so
    /// no node was told it was durable.
    pub torn_tail: Option<JournalDamage>,
    /// Damage left in place; the log accepts no write while it is there.
    pub damage: Option<WalDamage>,
    /// Files removed because every entry in them was purged (a purge cut short by a crash).
    pub purged_files_removed: usize,
}

impl WalRecovery {
    /// Whether the log holds everything the node may have acknowledged, so that it can vote.
    pub fn is_whole(&self) -> bool {
        self.damage.is_none()
    }
}

/// Why an operation on the log failed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A log file could not be read or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The operating system refused an operation.
    #[error("I/O error on {}: {source}; check the disk, free space and permissions", .path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The log was opened with damage and accepts no writes.
    #[error(
        "the Raft log in {} is damaged and accepts no writes: {damage}; this node may have \
         lost entries it acknowledged, so it must not vote: replace the node: start a new \
         one (a new --node-id, an empty directory, --join), then CLUSTER ADDNODE it and \
         CLUSTER REMOVENODE this one on the leader",
        .dir.display()
    )]
    Damaged {
        /// The log's directory.
        dir: PathBuf,
        /// The damage found at open.
        damage: WalDamage,
    },
    /// An append whose first entry does not follow the log's last one.
    #[error(
        "the Raft log in {} expects entry {expected} next, not {found}: entries are appended \
         in order, without gaps",
        .dir.display()
    )]
    NotContiguous {
        /// The directory concerned.
        dir: PathBuf,
        /// The index the log expected.
        expected: u64,
        /// The index found instead.
        found: u64,
    },
    /// A truncation that would drop a committed or purged entry.
    #[error(
        "refusing to truncate the Raft log in {} from index {index}: entries up to {kept} are \
         committed and must be kept; this is a bug in the caller",
        .dir.display()
    )]
    TruncateCommitted {
        /// The log's directory.
        dir: PathBuf,
        /// Where the truncation would start.
        index: u64,
        /// The last index that must be kept.
        kept: u64,
    },
    /// A file given as a log file whose name is not one.
    #[error(
        "{}: not a Raft log file: its name must be raft.<first index, 20 digits>.wal",
        .path.display()
    )]
    NotALogFile {
        /// The file concerned.
        path: PathBuf,
    },
    /// A frame that checks but does not decode as the entry written there.
    #[error("{}: entry {index} is malformed: {detail}", .path.display())]
    BadEntry {
        /// The file concerned.
        path: PathBuf,
        /// The Raft index concerned.
        index: u64,
        /// What is wrong.
        detail: String,
    },
}

/// The file being appended to, and what syncs it.
struct Writer {
    journal: Journal,
    flush: Arc<dyn Flush>,
}

impl Writer {
    /// Appends go into zeros written ahead of them, so that a flush's `fdatasync` writes the
    /// entries alone, not also the file's new size.
    fn new(mut journal: Journal) -> Writer {
        journal.preallocate_ahead();
        let flush: Arc<dyn Flush> = Arc::new(FileFlush(journal.sync_handle()));
        Writer { journal, flush }
    }
}

/// Syncs a log file for the group-commit flusher.
struct FileFlush(JournalSync);

impl Flush for FileFlush {
    fn flush(&self) -> Result<(), FlushError> {
        self.0
            .sync()
            .map_err(|error| FlushError::from_error(&error))
    }
}

/// The Raft log of one node, open for reading and writing.
pub struct Wal {
    /// The log's (or state's) directory.
    dir: PathBuf,
    options: WalOptions,
    /// Oldest first; the last one is the one being appended to.
    files: Vec<LogFile>,
    /// The last file open for appending; `None` when there is no file, or damage.
    writer: Option<Writer>,
    meta: WalMeta,
    /// Where the commit point is saved at each commit.
    commit_file: CommitFile,
    /// When the commit point was last saved.
    commit_saved: Option<std::time::Instant>,
    syncer: Arc<Syncer>,
    damage: Option<WalDamage>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("files", &self.files.len())
            .field("meta", &self.meta)
            .field("damage", &self.damage)
            .finish()
    }
}

impl Wal {
    /// Opens the log in `dir`, creating the directory if needed, and recovers it: a torn write
    /// at the end of the last file is cut; any other damage is reported and left in place.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Wal, WalRecovery), WalError> {
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(io_error(dir))?;
            // The directory's own name is durable only once its parent is synced: without this,
            // a power loss could take the whole log, the vote included, even after its files
            // were synced.
            let parent = fs::parent_dir(dir);
            fs::sync_dir(parent).map_err(io_error(parent))?;
        }
        let mut meta = WalMeta::read(dir)?;
        let commit_file = CommitFile::open(dir)?;
        // The later of the two: `raft.meta` carries the commit point too, written with each
        // vote and purge (and, by an older release, at each commit).
        meta.committed = meta.committed.max_by_index(commit_file.committed());
        let scanned = recovery::scan(dir, &meta, recovery::Mode::Recover)?;
        let syncer = Syncer::start(options.durability).map_err(io_error(dir))?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            options,
            files: scanned.files,
            writer: scanned.writer.map(Writer::new),
            meta,
            commit_file,
            commit_saved: None,
            syncer: Arc::new(syncer),
            damage: scanned.recovery.damage.clone(),
        };
        Ok((wal, scanned.recovery))
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The vote, the commit point and the purge point.
    pub fn meta(&self) -> WalMeta {
        self.meta
    }

    /// The last entry's position: the last entry held, or the last purged if none is.
    pub fn last_log_id(&self) -> Option<WalLogId> {
        self.files
            .iter()
            .rev()
            .find_map(LogFile::last_log_id)
            .filter(|last| {
                self.meta
                    .purged
                    .is_none_or(|purged| last.index > purged.index)
            })
            .or(self.meta.purged)
    }

    /// The index of the first entry held.
    fn first_index(&self) -> u64 {
        let after_purge = self.meta.purged.map_or(0, |purged| purged.index + 1);
        let first_file = self.files.first().map_or(0, |file| file.first_index);
        after_purge.max(first_file)
    }

    /// The index the next appended entry must have; `None` when any will do (nothing was ever
    /// kept or purged).
    fn next_index(&self) -> Option<u64> {
        match self.files.last() {
            Some(file) => Some(file.next_index().max(self.first_index())),
            None => self.meta.purged.map(|purged| purged.index + 1),
        }
    }

    /// Writes `entries`, which must follow the last entry held, with one write. They are read
    /// back at once, but durable only when the returned flush completes; `None` when nothing is
    /// written. Entries at or below the purge point are skipped: a snapshot already holds them,
    /// and the log never returns them.
    pub fn append(&mut self, entries: &[WalEntry]) -> Result<Option<PendingFlush>, WalError> {
        self.check_writable()?;
        let purged = self.meta.purged.map(|purged| purged.index);
        let skipped = entries
            .iter()
            .take_while(|entry| purged.is_some_and(|purged| entry.id.index <= purged))
            .count();
        let entries = &entries[skipped..];
        let Some(first) = entries.first() else {
            return Ok(None);
        };
        let expected = self.next_index().unwrap_or(first.id.index)..;
        for (expected, entry) in expected.zip(entries) {
            if entry.id.index != expected {
                return Err(WalError::NotContiguous {
                    dir: self.dir.clone(),
                    expected,
                    found: entry.id.index,
                });
            }
        }
        self.ensure_room(first.id.index)?;
        let (Some(writer), Some(file)) = (self.writer.as_mut(), self.files.last_mut()) else {
            unreachable!("ensure_room leaves a file open for appending");
        };
        let mut position = writer.journal.len_bytes();
        writer.journal.append_each(entries, encode_entry)?;
        for entry in entries {
            file.slots.push(Slot {
                term: entry.id.term,
                leader: entry.id.leader,
                position,
            });
            position += frame_len(entry);
        }
        debug_assert_eq!(position, writer.journal.len_bytes());
        Ok(Some(self.syncer.request_flush(&writer.flush)))
    }

    /// Makes sure a file is open for appending entries from `first_index` on: the last one, or
    /// a new one when there is none or the last is full. A full file is synced before the new
    /// one exists, so that only the last file can ever end in a torn write.
    fn ensure_room(&mut self, first_index: u64) -> Result<(), WalError> {
        if let Some(writer) = &self.writer {
            if writer.journal.len_bytes() < self.options.max_file_bytes {
                return Ok(());
            }
            writer.journal.sync()?;
        }
        let path = self.dir.join(raft_log_file_name(first_index));
        let journal = Journal::create(&path, RAFT_LOG_KIND, first_index)?;
        let reader = std::fs::File::open(&path).map_err(io_error(&path))?;
        self.files.push(LogFile {
            first_index,
            path,
            reader,
            slots: Vec::new(),
        });
        self.writer = Some(Writer::new(journal));
        Ok(())
    }

    /// The entries held with an index in `range`, in order (those purged or not yet written are
    /// not there).
    pub fn read(&self, range: Range<u64>) -> Result<Vec<WalEntry>, WalError> {
        let start = range.start.max(self.first_index());
        let end = range.end.min(self.next_index().unwrap_or(0));
        (start..end)
            .map(|index| {
                let file = self.file_holding(index);
                file.read(index)
            })
            .collect()
    }

    fn file_holding(&self, index: u64) -> &LogFile {
        let after = self.files.partition_point(|file| file.first_index <= index);
        &self.files[after - 1]
    }

    /// Drops every entry from `index` on (an uncommitted tail that a new leader overrules), and
    /// makes the cut durable before returning: files wholly past it are removed newest first,
    /// each removal synced, so a crash leaves the log a prefix of what it was; the file holding
    /// `index` is cut and synced.
    pub fn truncate_from(&mut self, index: u64) -> Result<(), WalError> {
        self.check_writable()?;
        let kept = [self.meta.committed, self.meta.purged]
            .into_iter()
            .flatten()
            .map(|id| id.index)
            .max();
        if let Some(kept) = kept.filter(|&kept| index <= kept) {
            return Err(WalError::TruncateCommitted {
                dir: self.dir.clone(),
                index,
                kept,
            });
        }
        while let Some(file) = self.files.last() {
            if file.first_index >= index {
                self.writer = None;
                fs::remove_file(&file.path).map_err(io_error(&file.path))?;
                journal::sync_dir(&self.dir)?;
                self.files.pop();
                continue;
            }
            if file.next_index() > index {
                self.writer = None;
                let cut_at = file.slots[(index - file.first_index) as usize].position;
                journal::cut(&file.path, cut_at)?;
                if let Some(file) = self.files.last_mut() {
                    file.slots.truncate((index - file.first_index) as usize);
                }
            }
            break;
        }
        self.remove_purged_tail()?;
        self.reopen_writer()
    }

    /// Removes the last files while every entry left in them is purged: a truncation can leave
    /// such a file behind (its later entries cut), which recovery would otherwise remove at the
    /// next open. Appends then start a new file.
    fn remove_purged_tail(&mut self) -> Result<(), WalError> {
        let Some(purged) = self.meta.purged.map(|purged| purged.index) else {
            return Ok(());
        };
        while let Some(file) = self.files.last() {
            if file.next_index() > purged + 1 {
                break;
            }
            self.writer = None;
            fs::remove_file(&file.path).map_err(io_error(&file.path))?;
            journal::sync_dir(&self.dir)?;
            self.files.pop();
        }
        Ok(())
    }

    /// Opens the last file for appending if it is not open.
    fn reopen_writer(&mut self) -> Result<(), WalError> {
        if self.writer.is_some() {
            return Ok(());
        }
        if let Some(file) = self.files.last() {
            let (journal, replay) = Journal::open(&file.path, RAFT_LOG_KIND)?;
            debug_assert!(replay.damage.is_none(), "{:?}", replay.damage);
            debug_assert_eq!(replay.frames.len(), file.slots.len());
            self.writer = Some(Writer::new(journal));
        }
        Ok(())
    }

    /// Forgets every entry up to `last` (whose effect a snapshot now holds): the purge point is
    /// saved durably first, then the files holding nothing after it are removed, oldest first.
    /// `last` may be past the last entry held (a snapshot installed from the leader): the log is
    /// then empty, and continues after `last`.
    pub fn purge_to(&mut self, last: WalLogId) -> Result<(), WalError> {
        self.check_writable()?;
        if self
            .meta
            .purged
            .is_some_and(|purged| purged.index >= last.index)
        {
            return Ok(());
        }
        self.meta.purged = Some(last);
        self.write_meta()?;
        self.remove_purged_files(last.index)
    }

    fn remove_purged_files(&mut self, purged: u64) -> Result<(), WalError> {
        let mut removed = false;
        while let Some(file) = self.files.first() {
            let next_start = match self.files.get(1) {
                Some(next) => next.first_index,
                None => file.next_index(),
            };
            if next_start > purged + 1 {
                break;
            }
            if self.files.len() == 1 {
                self.writer = None;
            }
            fs::remove_file(&file.path).map_err(io_error(&file.path))?;
            self.files.remove(0);
            removed = true;
        }
        if removed {
            journal::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Saves the vote durably before returning.
    pub fn save_vote(&mut self, vote: WalVote) -> Result<(), WalError> {
        self.check_writable()?;
        self.meta.vote = Some(vote);
        self.write_meta()
    }

    /// Saves the commit point in `raft.commit`: durably before returning, or, with a
    /// [`commit_save_interval`](WalOptions::commit_save_interval), once that interval has
    /// passed since the last save. From the save on, recovery treats losing an entry up to it
    /// as damage.
    pub fn save_committed(&mut self, committed: WalLogId) -> Result<(), WalError> {
        self.check_writable()?;
        if self.meta.committed == Some(committed) {
            return Ok(());
        }
        self.meta.committed = Some(committed);
        let due = match (self.options.commit_save_interval, self.commit_saved) {
            (Some(interval), Some(saved)) => saved.elapsed() >= interval,
            _ => true,
        };
        if due {
            self.commit_file.save(committed, &self.dir)?;
            self.commit_saved = Some(std::time::Instant::now());
        }
        Ok(())
    }

    fn write_meta(&mut self) -> Result<(), WalError> {
        self.meta.write(&self.dir)?;
        Ok(())
    }

    fn check_writable(&self) -> Result<(), WalError> {
        match &self.damage {
            Some(damage) => Err(WalError::Damaged {
                dir: self.dir.clone(),
                damage: damage.clone(),
            }),
            None => Ok(()),
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> WalError {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests;
