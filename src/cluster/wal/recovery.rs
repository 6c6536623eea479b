//! Opening the Raft log: which files it has, what they hold, and what was damaged.
//!
//! The rules (storage-format.md 14.4): files wholly at or below the purge point are removed;
//! every other file is read frame by frame; only the last file may end in a torn write, which is
//! cut, and only if it lies above the commit point. Anything else that is wrong is a
//! [`WalDamage`]: the files are left as they are, the entries before the damage stay readable,
//! and the log refuses writes.
//!
//! The same scan serves a read-only inspection ([`Mode::Inspect`]): it reaches the same
//! conclusions, but removes, cuts and opens for writing nothing, so that it can run beside a
//! live node.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::fs;
use crate::journal::{FRAME_HEADER_LEN, HEADER_LEN, Journal, JournalDamage, Replay};
use crate::names::{TMP_SUFFIX, raft_log_first_index};

use super::file::{LogFile, RAFT_LOG_KIND, Slot, decode_entry};
use super::{WalDamage, WalError, WalMeta, WalRecovery, io_error};

/// Whether the scan repairs what recovery repairs, or only reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Opening the log: leftovers and purged files are removed, a torn tail is cut, and the
    /// last file is opened for appending.
    Recover,
    /// Reading the log beside its owner: nothing is written; the torn tail is reported.
    Inspect,
}

/// The log as recovery left it (or, inspecting, would leave it).
pub(super) struct Scanned {
    pub files: Vec<LogFile>,
    /// The last file, open for appending; `None` if there is no file, there is damage, or the
    /// scan only inspected.
    pub writer: Option<Journal>,
    pub recovery: WalRecovery,
    /// Files holding only purged entries: removed, or, inspecting, that recovery would remove.
    pub purged_files: Vec<PathBuf>,
    /// Temporary files of a file creation cut short: removed, or that recovery would remove.
    pub leftovers: Vec<PathBuf>,
    /// Files after the damage, which the scan did not read.
    pub unread: Vec<PathBuf>,
}

pub(super) fn scan(dir: &Path, meta: &WalMeta, mode: Mode) -> Result<Scanned, WalError> {
    let (mut names, leftovers) = log_files(dir, mode)?;
    let mut recovery = WalRecovery::default();
    let purged = meta.purged.map(|purged| purged.index);
    let mut purged_files = remove_purged(dir, &mut names, purged, mode)?;
    let committed = meta.committed.map(|committed| committed.index);
    let mut files: Vec<LogFile> = Vec::new();
    let mut writer = None;
    let count = names.len();
    let mut names = names.into_iter().enumerate();
    for (number, (first_index, path)) in names.by_ref() {
        // A later file starts exactly where the one before it ends; the first one at or before
        // the entry after the purge point.
        let out_of_place = match files.last() {
            Some(previous) => Some(previous.next_index()).filter(|&next| first_index != next),
            None => purged
                .map(|purged| purged + 1)
                .filter(|&next| first_index > next),
        };
        if let Some(expected) = out_of_place {
            recovery.damage = Some(WalDamage::Gap {
                path,
                expected,
                found: first_index,
            });
            break;
        }
        let replay = Journal::read(&path, RAFT_LOG_KIND)?;
        let reader = File::open(&path).map_err(io_error(&path))?;
        let mut file = LogFile {
            first_index,
            path,
            reader,
            slots: Vec::new(),
        };
        if let Some(damage) = index_frames(&mut file, &replay) {
            recovery.damage = Some(damage);
            files.push(file);
            break;
        }
        let is_last = number + 1 == count;
        if let Some(damage) = replay
            .damage
            .as_ref()
            .and_then(|torn| tail_damage(&file, torn, is_last, committed))
        {
            recovery.damage = Some(damage);
            files.push(file);
            break;
        }
        if is_last {
            if purged.is_some_and(|purged| file.next_index() <= purged + 1) {
                // Everything it holds is purged; what a torn tail held was never acknowledged.
                if mode == Mode::Recover {
                    fs::remove_file(&file.path).map_err(io_error(&file.path))?;
                    fs::sync_dir(dir).map_err(io_error(dir))?;
                }
                purged_files.push(file.path);
                continue;
            }
            match mode {
                Mode::Recover => {
                    let (journal, opened) = Journal::open(&file.path, RAFT_LOG_KIND)?;
                    debug_assert_eq!(opened.frames.len(), file.slots.len());
                    recovery.torn_tail = opened.damage;
                    writer = Some(journal);
                }
                Mode::Inspect => recovery.torn_tail = replay.damage,
            }
        }
        files.push(file);
    }
    let unread = names.map(|(_, (_, path))| path).collect();
    if recovery.damage.is_none() {
        recovery.damage = missing_committed(&files, meta);
    }
    if recovery.damage.is_some() {
        writer = None;
    }
    recovery.purged_files_removed = match mode {
        Mode::Recover => purged_files.len(),
        Mode::Inspect => 0,
    };
    Ok(Scanned {
        files,
        writer,
        recovery,
        purged_files,
        leftovers,
        unread,
    })
}

/// The damage a bad frame after the good ones of `file` is, if it is not a torn write: in any
/// file but the last, or at or below the commit point.
pub(super) fn tail_damage(
    file: &LogFile,
    torn: &JournalDamage,
    is_last: bool,
    committed: Option<u64>,
) -> Option<WalDamage> {
    let index = file.next_index();
    if !is_last {
        return Some(WalDamage::BrokenFile {
            path: file.path.clone(),
            index,
            position: torn.position,
            reason: torn.reason.clone(),
        });
    }
    let committed = committed.filter(|&committed| index <= committed)?;
    Some(WalDamage::LostCommitted {
        path: file.path.clone(),
        index,
        position: torn.position,
        committed,
        reason: torn.reason.clone(),
    })
}

/// The log files in `dir` by first index, ascending, and the leftover temporary files of a
/// file creation cut short (removed when recovering).
pub(super) fn log_files(dir: &Path, mode: Mode) -> Result<LogFileNames, WalError> {
    let mut names = Vec::new();
    let mut leftovers = Vec::new();
    for item in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let item = item.map_err(io_error(dir))?;
        let name = item.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if let Some(first_index) = raft_log_first_index(name) {
            names.push((first_index, item.path()));
        } else if name
            .strip_suffix(TMP_SUFFIX)
            .and_then(raft_log_first_index)
            .is_some()
        {
            if mode == Mode::Recover {
                fs::remove_file(&item.path()).map_err(io_error(&item.path()))?;
            }
            leftovers.push(item.path());
        }
    }
    names.sort();
    leftovers.sort();
    Ok((names, leftovers))
}

/// The log files by first index, and the leftover temporary files.
pub(super) type LogFileNames = (Vec<(u64, PathBuf)>, Vec<PathBuf>);

/// Takes out of `names` the files every entry of which is at or below the purge point: those
/// followed by a file that starts at or before the entry after it (the last file is judged once
/// read), and, when recovering, removes them.
fn remove_purged(
    dir: &Path,
    names: &mut Vec<(u64, PathBuf)>,
    purged: Option<u64>,
    mode: Mode,
) -> Result<Vec<PathBuf>, WalError> {
    let Some(purged) = purged else {
        return Ok(Vec::new());
    };
    let wholly_purged = names
        .windows(2)
        .take_while(|pair| pair[1].0 <= purged + 1)
        .count();
    let removed: Vec<PathBuf> = names.drain(..wholly_purged).map(|(_, path)| path).collect();
    if mode == Mode::Recover && !removed.is_empty() {
        for path in &removed {
            fs::remove_file(path).map_err(io_error(path))?;
        }
        fs::sync_dir(dir).map_err(io_error(dir))?;
    }
    Ok(removed)
}

/// Records where each good frame of `replay` starts and which entry it holds; damage if a frame
/// holds an entry other than the one its place calls for.
pub(super) fn index_frames(file: &mut LogFile, replay: &Replay) -> Option<WalDamage> {
    let mut position = HEADER_LEN as u64;
    for frame in &replay.frames {
        let expected = file.next_index();
        let misplaced = |detail: String| WalDamage::Misplaced {
            path: file.path.clone(),
            position,
            detail,
        };
        let entry = match decode_entry(frame) {
            Ok(entry) => entry,
            Err(error) => return Some(misplaced(error.to_string())),
        };
        if entry.id.index != expected {
            return Some(misplaced(format!(
                "the frame holds entry {}, entry {expected} belongs there",
                entry.id.index
            )));
        }
        file.slots.push(Slot {
            term: entry.id.term,
            leader: entry.id.leader,
            position,
        });
        position += (FRAME_HEADER_LEN + frame.len()) as u64;
    }
    None
}

/// Damage if the log, as recovered, ends before the commit point.
fn missing_committed(files: &[LogFile], meta: &WalMeta) -> Option<WalDamage> {
    let committed = meta.committed?.index;
    let last = files
        .iter()
        .rev()
        .find_map(LogFile::last_log_id)
        .map(|id| id.index)
        .max(meta.purged.map(|purged| purged.index));
    let whole = last.is_some_and(|last| last >= committed);
    (!whole).then_some(WalDamage::MissingCommitted { last, committed })
}
