//! The Raft log of a cluster node (`DIR/raft`, storage-format.md 14): its files, vote, commit
//! and purge points, and its last snapshot, read through the log's own read-only scan
//! ([`wal::inspect`]), so that the damage reported is what the node's next open would find.
//! Every problem becomes a [`Finding`]: a hostile file never stops the rest of the inspection.

use std::fs::File;
use std::io::BufReader;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{Finding, Severity, damage, finding, note, read_dir};
use crate::cluster::entry_codec::{payload_kind, to_wal_id};
use crate::cluster::state_machine::StoredSnapshot;
use crate::cluster::wal::{
    self, TermRegression, WalDamage, WalError, WalFileInspection, WalInspection, WalLogId, WalVote,
};
use crate::journal::JournalError;
use crate::names::{
    RAFT_COMMIT_FILE, RAFT_META_FILE, RAFT_SNAPSHOT_BUILDING_FILE, RAFT_SNAPSHOT_FILE,
    RAFT_SNAPSHOT_RECEIVING_FILE, raft_log_first_index, raft_snapshot_data_sequence,
};
use crate::store::check_archive;

/// A node's Raft log directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftReport {
    /// The directory.
    pub dir: PathBuf,
    /// The log files read, oldest first.
    pub files: Vec<WalFileInspection>,
    /// The node's vote.
    pub vote: Option<WalVote>,
    /// The commit point the log goes by: the later of `raft.meta`'s and `raft.commit`'s.
    pub committed: Option<WalLogId>,
    /// The last entry purged: the log starts after it.
    pub purged: Option<WalLogId>,
    /// The last entry held, or the purge point if none is.
    pub last_log_id: Option<WalLogId>,
    /// The last snapshot, if `raft.snapshot` names one.
    pub snapshot: Option<SnapshotReport>,
    /// What is wrong, and what the next open repairs.
    pub findings: Vec<Finding>,
}

/// The state machine's last snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotReport {
    /// The last entry whose effect it holds.
    pub last_log_id: Option<WalLogId>,
    /// Its data file.
    pub data_file: PathBuf,
    /// The data file's length as `raft.snapshot` records it.
    pub data_len: u64,
    /// The data file's length on disk; `None` when it is missing.
    pub data_bytes: Option<u64>,
    /// The files of the store snapshot archive it holds, when it reads whole.
    pub archive_files: Option<u64>,
}

/// One log file read on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftFileReport {
    /// What it holds; `None` when it could not be read at all.
    pub file: Option<WalFileInspection>,
    /// The commit point of its directory, which a torn tail is judged against.
    pub committed: Option<WalLogId>,
    /// What is wrong.
    pub findings: Vec<Finding>,
}

/// One entry of the log, for a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftEntryReport {
    /// The file holding it.
    pub file: PathBuf,
    /// Its index, term and leader.
    pub id: WalLogId,
    /// `blank`, `command`, `membership` or `undecodable`.
    pub kind: &'static str,
    /// Bytes of its payload.
    pub data_len: usize,
}

/// Whether `dir` is a Raft log directory: it holds `raft.meta`, `raft.commit` or a log file.
pub fn is_raft_dir(dir: &Path) -> bool {
    read_dir(dir).is_ok_and(|names| {
        names.iter().any(|name| {
            name == RAFT_META_FILE
                || name == RAFT_COMMIT_FILE
                || raft_log_first_index(name).is_some()
        })
    })
}

/// Whether `path` is named as a Raft log file.
pub fn is_raft_log_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .and_then(raft_log_first_index)
        .is_some()
}

/// Inspects the Raft log directory `dir`, reading every entry and the snapshot's data file.
pub fn inspect_raft(dir: &Path) -> RaftReport {
    let mut report = RaftReport {
        dir: dir.to_path_buf(),
        ..RaftReport::default()
    };
    match wal::inspect(dir) {
        Ok(inspection) => take_log(&mut report, inspection),
        Err(error) => report.findings.push(error_finding(dir, &error)),
    }
    report.snapshot = read_snapshot(dir, &mut report.findings);
    report
        .findings
        .extend(snapshot_leftovers(dir, &report.snapshot));
    report
}

/// Inspects one log file, judging its tail against its directory's commit point.
pub fn inspect_raft_file(path: &Path) -> RaftFileReport {
    match wal::inspect_file(path) {
        Ok(alone) => {
            let mut findings = Vec::new();
            let dir = crate::fs::parent_dir(path);
            findings.extend(alone.damage.iter().map(|found| damage_finding(dir, found)));
            findings.extend(alone.term_regression.iter().map(regression_finding));
            findings.extend(alone.torn_tail.as_ref().map(torn_finding));
            RaftFileReport {
                file: Some(alone.file),
                committed: alone.committed,
                findings,
            }
        }
        Err(error) => RaftFileReport {
            file: None,
            committed: None,
            findings: vec![error_finding(path, &error)],
        },
    }
}

/// The entries of the log in `dir` (or of the one log file `path`) with an index in `range`.
pub fn raft_entries(path: &Path, range: Range<u64>) -> Result<Vec<RaftEntryReport>, WalError> {
    let entries = if path.is_file() {
        wal::inspect_file(path)?.read(range)?
    } else {
        wal::inspect(path)?.read(range)?
    };
    let dir = if path.is_file() {
        crate::fs::parent_dir(path).to_path_buf()
    } else {
        path.to_path_buf()
    };
    let files = log_file_starts(&dir);
    Ok(entries
        .into_iter()
        .map(|entry| RaftEntryReport {
            file: file_holding(&files, entry.id.index).unwrap_or_else(|| dir.clone()),
            id: entry.id,
            kind: payload_kind(&entry.data),
            data_len: entry.data.len(),
        })
        .collect())
}

fn take_log(report: &mut RaftReport, inspection: WalInspection) {
    report.vote = inspection.meta.vote;
    report.committed = inspection.meta.committed;
    report.purged = inspection.meta.purged;
    report.last_log_id = inspection.last_log_id;
    let findings = &mut report.findings;
    let dir = &inspection.dir;
    findings.extend(
        inspection
            .damage
            .iter()
            .map(|found| damage_finding(dir, found)),
    );
    findings.extend(inspection.term_regression.iter().map(regression_finding));
    findings.extend(inspection.torn_tail.as_ref().map(torn_finding));
    for path in &inspection.purged_files {
        findings.push(note(
            path,
            "holds only purged entries (a purge cut short); the next open removes it",
        ));
    }
    for path in &inspection.leftovers {
        findings.push(note(
            path,
            "leftover of a log file creation cut short; the next open removes it",
        ));
    }
    for path in &inspection.unread {
        findings.push(note(path, "not read: it comes after the damage"));
    }
    report.files = inspection.files;
}

/// Damage in the log in `dir`, placed in its file where it has one.
fn damage_finding(dir: &Path, damage_found: &WalDamage) -> Finding {
    let (path, position) = match damage_found {
        WalDamage::BrokenFile { path, position, .. }
        | WalDamage::LostCommitted { path, position, .. }
        | WalDamage::Misplaced { path, position, .. } => (path.clone(), Some(*position)),
        WalDamage::Gap { path, .. } => (path.clone(), None),
        WalDamage::MissingCommitted { .. } => (dir.to_path_buf(), None),
    };
    // The finding names the file already: the damage's own text starts with it.
    let text = damage_found.to_string();
    let detail = text
        .strip_prefix(&format!("{}: ", path.display()))
        .unwrap_or(&text);
    damage(
        &path,
        position,
        format!(
            "{detail}; the node's log accepts no write and no vote while this is so: replace \
             the node (a new one with an empty directory, CLUSTER ADDNODE it, CLUSTER REMOVENODE \
             this one)"
        ),
    )
}

/// An entry whose term is below its predecessor's: the node's open does not look for it, but
/// no Raft leader writes such a log, so the file was altered after it was written.
fn regression_finding(regression: &TermRegression) -> Finding {
    damage(
        &regression.path,
        Some(regression.position),
        format!(
            "entry {} has term {}, below the term {} of the entry before it: no Raft leader \
             writes this, so the file was altered after it was written",
            regression.index, regression.term, regression.previous
        ),
    )
}

fn torn_finding(torn: &crate::JournalDamage) -> Finding {
    finding(
        Severity::Note,
        &torn.path,
        Some(torn.position),
        format!(
            "torn write of {} byte(s) after the last entry, above the commit point ({}): a \
             batch never acknowledged, or one being written now; the next open cuts it",
            torn.dropped_bytes, torn.reason
        ),
    )
}

/// A read that failed: the disk's refusal is unreadable, anything else (a bad header, a
/// `raft.meta` that does not decode) is damage the node's open would stop at too.
fn error_finding(path: &Path, error: &WalError) -> Finding {
    let severity = match error {
        WalError::Io { .. } | WalError::Journal(JournalError::Io { .. }) => Severity::Unreadable,
        _ => Severity::Damage,
    };
    let mut detail = error.to_string();
    if severity == Severity::Damage {
        detail.push_str(
            " (in a cluster node's Raft log, replacing the node is the safe repair: a removed \
             file may hold its vote or entries it acknowledged)",
        );
    }
    finding(severity, path, None, detail)
}

/// How many times the snapshot is read again when the node replaced it meanwhile.
const SNAPSHOT_ATTEMPTS: usize = 3;

/// The last snapshot and what is wrong with it. Beside a live node, a new snapshot may replace
/// `raft.snapshot` and remove the data file it named while that file is checked: the check is
/// then run again on the new one.
fn read_snapshot(dir: &Path, findings: &mut Vec<Finding>) -> Option<SnapshotReport> {
    let mut attempt = 1;
    loop {
        let mut found = Vec::new();
        let report = read_snapshot_once(dir, &mut found);
        let replaced = match (&report, StoredSnapshot::read(dir)) {
            (Some(report), Ok(Some(now))) => now.data_path(dir) != report.data_file,
            _ => false,
        };
        if !replaced || attempt == SNAPSHOT_ATTEMPTS {
            findings.extend(found);
            return report;
        }
        attempt += 1;
    }
}

fn read_snapshot_once(dir: &Path, findings: &mut Vec<Finding>) -> Option<SnapshotReport> {
    let stored = match StoredSnapshot::read(dir) {
        Ok(stored) => stored?,
        Err(error) => {
            let severity = match error {
                JournalError::Io { .. } => Severity::Unreadable,
                _ => Severity::Damage,
            };
            let path = dir.join(RAFT_SNAPSHOT_FILE);
            findings.push(finding(severity, &path, None, error.to_string()));
            return None;
        }
    };
    let data_file = stored.data_path(dir);
    let data_bytes = std::fs::metadata(&data_file).ok().map(|meta| meta.len());
    let mut report = SnapshotReport {
        last_log_id: stored.meta.last_log_id.as_ref().map(to_wal_id),
        data_file,
        data_len: stored.data_len,
        data_bytes,
        archive_files: None,
    };
    findings.extend(check_data_file(&mut report));
    Some(report)
}

/// Checks the snapshot's data file: present, as long as recorded, and a whole archive.
fn check_data_file(report: &mut SnapshotReport) -> Option<Finding> {
    let path = &report.data_file;
    let Some(bytes) = report.data_bytes else {
        return Some(damage(
            path,
            None,
            "missing, yet raft.snapshot names it: the node refuses to start",
        ));
    };
    if bytes != report.data_len {
        return Some(damage(
            path,
            None,
            format!(
                "{bytes} bytes, but raft.snapshot records {}: the snapshot is unusable",
                report.data_len
            ),
        ));
    }
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) => return Some(super::unreadable(path, &error)),
    };
    match check_archive(BufReader::new(file)) {
        Ok(files) => {
            report.archive_files = Some(files);
            None
        }
        Err(error) => Some(damage(
            path,
            None,
            format!("not a whole store snapshot archive: {error}"),
        )),
    }
}

/// Snapshot files other than the one `raft.snapshot` names: what the next open removes.
fn snapshot_leftovers(dir: &Path, snapshot: &Option<SnapshotReport>) -> Vec<Finding> {
    let current = snapshot.as_ref().map(|snapshot| snapshot.data_file.clone());
    read_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|name| dir.join(name))
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or("");
            let stray = raft_snapshot_data_sequence(name).is_some()
                || name == RAFT_SNAPSHOT_BUILDING_FILE
                || name == RAFT_SNAPSHOT_RECEIVING_FILE;
            stray && current.as_ref() != Some(path)
        })
        .map(|path| {
            note(
                &path,
                "a snapshot file raft.snapshot does not name (one replaced, or being written); \
                 the next open removes it",
            )
        })
        .collect()
}

/// The log files in `dir` by first index, ascending.
fn log_file_starts(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut files: Vec<(u64, PathBuf)> = read_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|name| raft_log_first_index(&name).map(|first| (first, dir.join(name))))
        .collect();
    files.sort();
    files
}

fn file_holding(files: &[(u64, PathBuf)], index: u64) -> Option<PathBuf> {
    files
        .iter()
        .rev()
        .find(|(first, _)| *first <= index)
        .map(|(_, path)| path.clone())
}

#[cfg(test)]
mod tests;
