//! Reading the Raft log without owning it, for a tool beside a live node: the scan recovery runs
//! ([`recovery::scan`] in [`Mode::Inspect`]), so the damage reported is the damage the next open
//! would find, and nothing is created, removed, cut or opened for writing.
//!
//! Besides what recovery checks, the inspection checks that the entries' terms never go down
//! (Raft only ever appends entries of the current term after older ones): recovery has no need
//! to, as a frame's checksum already vouches for what was written.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::journal::{self, FRAME_HEADER_LEN, HEADER_LEN, Journal, JournalDamage, JournalError};
use crate::names::raft_log_first_index;

use super::commit_file::CommitFile;
use super::file::{LogFile, RAFT_LOG_KIND};
use super::meta::LaterByIndex;
use super::recovery::{self, Mode, index_frames, tail_damage};
use super::{WalDamage, WalEntry, WalError, WalLogId, WalMeta, io_error};

/// What the log in a directory holds, and what is wrong with it.
#[derive(Debug)]
pub struct WalInspection {
    /// The log's directory.
    pub dir: PathBuf,
    /// The vote and purge point of `raft.meta`, and the commit point the log goes by: the later
    /// of `raft.meta`'s and `raft.commit`'s.
    pub meta: WalMeta,
    /// The files read, oldest first.
    pub files: Vec<WalFileInspection>,
    /// The last entry held, or the purge point if none is.
    pub last_log_id: Option<WalLogId>,
    /// A torn write at the end of the last file: a batch never acknowledged, which the next
    /// open cuts.
    pub torn_tail: Option<JournalDamage>,
    /// Damage the next open would find and leave in place, refusing every write.
    pub damage: Option<WalDamage>,
    /// The first entry whose term is below the one before it.
    pub term_regression: Option<TermRegression>,
    /// Files holding only purged entries, which the next open removes.
    pub purged_files: Vec<PathBuf>,
    /// Temporary files of a file creation cut short, which the next open removes.
    pub leftovers: Vec<PathBuf>,
    /// Files after the damage, not read.
    pub unread: Vec<PathBuf>,
    log: Vec<LogFile>,
}

/// One log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalFileInspection {
    /// The file.
    pub path: PathBuf,
    /// The index its name gives its first entry.
    pub first_index: u64,
    /// Its good entries.
    pub entries: u64,
    /// Its last good entry.
    pub last: Option<WalLogId>,
    /// Bytes from the start of the file to the end of its last good entry.
    pub used_bytes: u64,
    /// The file's length (zeros are written ahead of the entries).
    pub bytes: u64,
}

/// An entry whose term is below its predecessor's: no leader writes that, as Raft only ever
/// appends entries of the current term after those of older ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermRegression {
    /// The file holding the entry.
    pub path: PathBuf,
    /// The byte offset of its frame.
    pub position: u64,
    /// Its index.
    pub index: u64,
    /// Its term.
    pub term: u64,
    /// The term of the entry before it.
    pub previous: u64,
}

/// One log file read on its own, judged against its directory's commit point.
#[derive(Debug)]
pub struct WalFileAlone {
    /// What the file holds.
    pub file: WalFileInspection,
    /// The commit point of the file's directory.
    pub committed: Option<WalLogId>,
    /// A torn write at its end (only the directory's last file may have one, above the commit
    /// point).
    pub torn_tail: Option<JournalDamage>,
    /// Damage in the file.
    pub damage: Option<WalDamage>,
    /// The first entry whose term is below the one before it.
    pub term_regression: Option<TermRegression>,
    log: LogFile,
}

/// How many times [`inspect`] reads the log again when its owner purged or truncated it
/// meanwhile.
const ATTEMPTS: usize = 3;

/// Reads the log in `dir` as [`Wal::open`](super::Wal::open) would recover it, writing nothing.
///
/// Beside a live node, a purge between reading `raft.meta` and reading the files would look
/// like a gap (the first file starting after the stale purge point), and a file removed by a
/// purge or a truncation would not read: the log is then read again, from `raft.meta` on.
pub fn inspect(dir: &Path) -> Result<WalInspection, WalError> {
    let mut attempt = 1;
    loop {
        let meta = read_meta(dir)?;
        let scanned = recovery::scan(dir, &meta, Mode::Inspect);
        let settled = WalMeta::read(dir)?.purged == meta.purged;
        match scanned {
            Ok(scanned) if settled || attempt == ATTEMPTS => return inspection(dir, meta, scanned),
            Err(error) if !vanished(&error) || attempt == ATTEMPTS => return Err(error),
            _ => attempt += 1,
        }
    }
}

/// Whether `error` is a file that was there when the directory was listed and no longer is.
fn vanished(error: &WalError) -> bool {
    match error {
        WalError::Io { source, .. } | WalError::Journal(JournalError::Io { source, .. }) => {
            source.kind() == std::io::ErrorKind::NotFound
        }
        _ => false,
    }
}

fn inspection(
    dir: &Path,
    meta: WalMeta,
    scanned: recovery::Scanned,
) -> Result<WalInspection, WalError> {
    let files = scanned
        .files
        .iter()
        .map(file_inspection)
        .collect::<Result<Vec<_>, _>>()?;
    let last_log_id = scanned
        .files
        .iter()
        .rev()
        .find_map(LogFile::last_log_id)
        .filter(|last| meta.purged.is_none_or(|purged| last.index > purged.index))
        .or(meta.purged);
    Ok(WalInspection {
        dir: dir.to_path_buf(),
        meta,
        files,
        last_log_id,
        torn_tail: scanned.recovery.torn_tail,
        damage: scanned.recovery.damage,
        term_regression: term_regression(&scanned.files),
        purged_files: scanned.purged_files,
        leftovers: scanned.leftovers,
        unread: scanned.unread,
        log: scanned.files,
    })
}

/// Reads one log file: its frames, and whether a bad one after them is a torn write (the file
/// is its directory's last, and the bad frame above the commit point) or damage.
pub fn inspect_file(path: &Path) -> Result<WalFileAlone, WalError> {
    let first_index = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(raft_log_first_index)
        .ok_or_else(|| WalError::NotALogFile {
            path: path.to_path_buf(),
        })?;
    let dir = crate::fs::parent_dir(path);
    let meta = read_meta(dir)?;
    let (names, _) = recovery::log_files(dir, Mode::Inspect)?;
    let is_last = names.iter().all(|(first, _)| *first <= first_index);
    let replay = Journal::read(path, RAFT_LOG_KIND)?;
    let reader = std::fs::File::open(path).map_err(io_error(path))?;
    let mut log = LogFile {
        first_index,
        path: path.to_path_buf(),
        reader,
        slots: Vec::new(),
    };
    let committed = meta.committed.map(|committed| committed.index);
    let damage = index_frames(&mut log, &replay).or_else(|| {
        replay
            .damage
            .as_ref()
            .and_then(|torn| tail_damage(&log, torn, is_last, committed))
    });
    let torn_tail = replay.damage.filter(|_| damage.is_none());
    Ok(WalFileAlone {
        file: file_inspection(&log)?,
        committed: meta.committed,
        torn_tail,
        damage,
        term_regression: term_regression(std::slice::from_ref(&log)),
        log,
    })
}

impl WalInspection {
    /// The good entries with an index in `range`, in order, read back from the files; not
    /// those at or below the purge point, which the log no longer holds.
    pub fn read(&self, range: Range<u64>) -> Result<Vec<WalEntry>, WalError> {
        let after_purge = self.meta.purged.map_or(0, |purged| purged.index + 1);
        read_entries(&self.log, range.start.max(after_purge)..range.end)
    }
}

impl WalFileAlone {
    /// The file's good entries with an index in `range`, in order.
    pub fn read(&self, range: Range<u64>) -> Result<Vec<WalEntry>, WalError> {
        read_entries(std::slice::from_ref(&self.log), range)
    }
}

/// `raft.meta`, its commit point replaced by `raft.commit`'s when that one is later.
fn read_meta(dir: &Path) -> Result<WalMeta, WalError> {
    let mut meta = WalMeta::read(dir)?;
    meta.committed = meta.committed.max_by_index(CommitFile::read(dir)?);
    Ok(meta)
}

fn file_inspection(file: &LogFile) -> Result<WalFileInspection, WalError> {
    let bytes = file.reader.metadata().map_err(io_error(&file.path))?.len();
    Ok(WalFileInspection {
        path: file.path.clone(),
        first_index: file.first_index,
        entries: file.slots.len() as u64,
        last: file.last_log_id(),
        used_bytes: used_bytes(file)?,
        bytes,
    })
}

/// Where the file's good frames end: after its last one, read again for its length.
fn used_bytes(file: &LogFile) -> Result<u64, WalError> {
    let Some(last) = file.slots.last() else {
        return Ok(HEADER_LEN as u64);
    };
    let number = file.slots.len() as u64 - 1;
    let payload = journal::read_frame_at(&file.reader, &file.path, last.position, number)?;
    Ok(last.position + (FRAME_HEADER_LEN + payload.len()) as u64)
}

/// The first entry of `files` (consecutive, oldest first) whose term is below its predecessor's.
fn term_regression(files: &[LogFile]) -> Option<TermRegression> {
    let mut previous: Option<u64> = None;
    for file in files {
        for (number, slot) in file.slots.iter().enumerate() {
            if let Some(before) = previous.filter(|&before| slot.term < before) {
                return Some(TermRegression {
                    path: file.path.clone(),
                    position: slot.position,
                    index: file.first_index + number as u64,
                    term: slot.term,
                    previous: before,
                });
            }
            previous = Some(slot.term);
        }
    }
    None
}

fn read_entries(files: &[LogFile], range: Range<u64>) -> Result<Vec<WalEntry>, WalError> {
    let mut entries = Vec::new();
    for file in files {
        let start = range.start.max(file.first_index);
        let end = range.end.min(file.next_index());
        for index in start..end {
            entries.push(file.read(index)?);
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests;
