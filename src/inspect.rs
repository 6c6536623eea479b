//! Read-only inspection of a data directory, for the `queue-dump` tool.
//!
//! Segments are checked by the same analysis that recovery repairs from (their headers, every
//! record's checksum, the offsets each damaged region held, torn tails and the continuity
//! between segments), so what is reported here is what the next open would find. Index files,
//! checkpoints, journals and snapshots are read through the engine's own decoders. Nothing here
//! writes, creates, truncates or locks anything, so it is safe to run beside a live server. The
//! state it rebuilds follows `recovery.md`, section 1.14 ("Reading the files without the
//! engine").
//!
//! A run produces an [`Inspection`]: for every stream, its segments, totals and consumer groups
//! (each with its PEL), plus every problem found, each naming the file and, where it has one, the
//! byte position. While segments are scanned, a [`Visitor`] sees every record with its
//! [`EntryState`], every damaged region and the end of every segment ([`ScanEvent`]): that is how
//! entries are listed and progress is followed without a second pass. [`inspect_file`] reads one
//! file of a stream directory on its own.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::codec::{CodecError, Decoder};
use crate::group::analysis::{group_events, read_group_snapshot};
use crate::group::durable::{GROUP_JOURNAL_KIND, GROUP_SNAPSHOT_FILE, group_journal_name};
use crate::group::{EntrySource, GroupPolicy, GroupsState, PendingQuery, StreamFacts};
use crate::id::StreamId;
use crate::idempotency::IdempotencyWindows;
use crate::journal::{self, Journal, JournalError, JournalEvents, Replay};
use crate::log::analysis::{
    Continuity, Found, OpenFailure, OpenedSegment, SegmentAnalysis, continuity,
    missing_before_point, open_segment, unfinished_creation,
};
use crate::log::meta_analysis::{self, meta_events, meta_journal_generation, replay_meta};
use crate::log::{
    CHECKPOINT_FILE, Checkpoint, IndexEntry, LastRecord, LogOptions, META_JOURNAL_KIND, MetaState,
    Retention, SegmentIndex, index_file_name, index_layout, meta_journal_name,
};
use crate::names::{self, CLEAN_FILE, NAME_FILE, STREAMS_DIR};
use crate::record::RecordView;
use crate::segment::{HEADER_LEN, SegmentError};
use crate::stream::{IDEMPOTENCY_SNAPSHOT_FILE, IDEMPOTENCY_SNAPSHOT_KIND, StreamConfig};

mod file;
#[cfg(feature = "cluster")]
mod raft;
mod values;

pub use file::{FileContent, FileReport, FrameReport, inspect_file};
#[cfg(feature = "cluster")]
pub use raft::{
    RaftEntryReport, RaftFileReport, RaftReport, SnapshotReport, inspect_raft, inspect_raft_file,
    is_raft_dir, is_raft_log_file, raft_entries,
};
pub use values::{MetaReport, ProducerKey, RecordRef, RecordReport};

/// Why an inspection could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The path is not a weir data directory.
    #[error("{}: {detail}", .path.display())]
    NotADataDirectory {
        /// The path given.
        path: PathBuf,
        /// What it is instead.
        detail: String,
    },
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// No stream of that name exists.
    #[error("no stream named {name} in {}", .dir.display())]
    NoSuchStream {
        /// The data directory.
        dir: PathBuf,
        /// The name looked for, quoted.
        name: String,
    },
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Bytes that are not what the format says: data or metadata is lost or unusable.
    Damage,
    /// A file that could not be read at all (permissions, I/O error).
    Unreadable,
    /// Worth knowing, but normal (leftover temporary files, a live writer's unfinished record).
    Note,
}

impl Severity {
    /// A lower-case word for reports.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Damage => "damage",
            Severity::Unreadable => "unreadable",
            Severity::Note => "note",
        }
    }
}

/// One problem or remark, with the file it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// The file it concerns.
    pub file: PathBuf,
    /// Byte position in the file, when the problem has one.
    pub position: Option<u64>,
    /// What was found, and what the engine does about it.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity.label(), self.file.display())?;
        if let Some(position) = self.position {
            write!(f, " at byte {position}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// What one segment file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentReport {
    /// The segment file.
    pub file: PathBuf,
    /// Base offset from the header (from the file name when the header is unreadable).
    pub base_offset: u64,
    /// Whether the header passed every check.
    pub header_ok: bool,
    /// The header is damaged, but the records show which offsets the segment holds: the next
    /// open rebuilds it from the file name and size (recovery.md, 1.8), and the records were read.
    pub header_rebuildable: bool,
    /// Valid records.
    pub records: u64,
    /// Valid records whose entries were deleted (`XDEL`, or recorded as lost).
    pub deleted: u64,
    /// Whether this is the newest segment of its stream, the one appends go to (the others
    /// are sealed); `None` for a segment file read on its own.
    pub active: Option<bool>,
    /// Offset and ID of the first valid record.
    pub first: Option<(u64, StreamId)>,
    /// Offset and ID of the last valid record.
    pub last: Option<(u64, StreamId)>,
    /// Bytes from the start of the file to the end of the last valid record.
    pub used_bytes: u64,
    /// The file's size.
    pub allocated_bytes: u64,
    /// Damaged regions skipped inside the records.
    pub damaged_regions: u64,
    /// What the index file check concluded ("ok", "missing", ...).
    pub index: String,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerReport {
    /// The consumer's name.
    pub name: Vec<u8>,
    /// Entries it has pending.
    pub pending: usize,
    /// When it was last seen (Unix milliseconds).
    pub seen_ms: u64,
    /// When it last read or claimed successfully (Unix milliseconds).
    pub active_ms: Option<u64>,
}

/// One entry of a group's PEL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReport {
    /// The entry's ID.
    pub id: StreamId,
    /// The consumer that owns it.
    pub consumer: Vec<u8>,
    /// Its last delivery (Unix milliseconds).
    pub delivered_ms: u64,
    /// Times delivered.
    pub deliveries: u32,
}

/// A consumer group as the snapshot and journal rebuild it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReport {
    /// The group's name.
    pub name: Vec<u8>,
    /// The last ID delivered to it.
    pub last_delivered: StreamId,
    /// Entries it has read, when known.
    pub entries_read: Option<u64>,
    /// `None` when unknown (or when the group was read without its stream).
    pub lag: Option<u64>,
    /// Entries pending in its PEL.
    pub pending: usize,
    /// Pending entries that reached max-deliver and are no longer handed out automatically.
    pub exhausted: usize,
    /// The oldest last-delivery time among pending entries.
    pub oldest_delivery_ms: Option<u64>,
    /// Its consumers.
    pub consumers: Vec<ConsumerReport>,
    /// Its delivery policy.
    pub policy: GroupPolicy,
    /// The PEL, in ID order.
    pub pel: Vec<PendingReport>,
}

/// The stream's counters, as the engine would compute them at open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Live entries.
    pub length: u64,
    /// Redis's `entries-added`.
    pub entries_added: u64,
    /// Every offset below this is trimmed.
    pub first_offset: u64,
    /// The offset the next entry gets.
    pub next_offset: u64,
    /// ID of the first live entry.
    pub first_id: Option<StreamId>,
    /// The stream's last ID.
    pub last_id: StreamId,
    /// Redis's `max-deleted-entry-id`.
    pub max_deleted_id: StreamId,
    /// Offsets recorded as deleted (or lost) in the metadata.
    pub deleted: u64,
    /// The stream's retention limits.
    pub retention: Retention,
}

/// The checkpoint's main fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointReport {
    /// The store was closed cleanly after it was written.
    pub clean: bool,
    /// Generation of the meta journal that follows it.
    pub journal_generation: u64,
    /// Base offset of the segment holding the recovery point.
    pub segment_base: u64,
    /// Byte position of the recovery point in that segment.
    pub pos: u64,
    /// The offset after the last record before the recovery point.
    pub next_offset: u64,
    /// The last ID before the recovery point.
    pub last_id: StreamId,
}

impl CheckpointReport {
    fn of(checkpoint: &Checkpoint) -> Self {
        let point = &checkpoint.recovery_point;
        CheckpointReport {
            clean: checkpoint.clean,
            journal_generation: checkpoint.journal_generation,
            segment_base: point.segment_base,
            pos: point.pos,
            next_offset: point.next_offset,
            last_id: point.last_id,
        }
    }
}

/// One stream directory.
#[derive(Debug, Clone, Default)]
pub struct StreamReport {
    /// The stream directory.
    pub dir: PathBuf,
    /// The name from `NAME`; `None` when it could not be read.
    pub name: Option<Vec<u8>>,
    /// The checkpoint's main fields; `None` when there is none or it does not read.
    pub checkpoint: Option<CheckpointReport>,
    /// Its segments, in offset order.
    pub segments: Vec<SegmentReport>,
    /// Its counters.
    pub totals: Totals,
    /// Its consumer groups.
    pub groups: Vec<GroupReport>,
    /// The stream's settings (section 11); `None` when they do not decode.
    pub settings: Option<StreamConfig>,
    /// Producers and keys held by the idempotency snapshot, when there is one.
    pub idempotency: Option<(usize, usize)>,
    /// What is wrong in the stream directory.
    pub findings: Vec<Finding>,
}

/// A whole data directory.
#[derive(Debug, Clone, Default)]
pub struct Inspection {
    /// The data directory.
    pub dir: PathBuf,
    /// Whether `DIR/CLEAN` is present (the store was closed cleanly and not opened since).
    pub closed_cleanly: bool,
    /// Every stream, in stream number order.
    pub streams: Vec<StreamReport>,
    /// The Raft log of a cluster node (`DIR/raft`), when the directory has one.
    #[cfg(feature = "cluster")]
    pub raft: Option<RaftReport>,
    /// Findings that belong to no stream.
    pub findings: Vec<Finding>,
}

impl Inspection {
    /// Every finding, the store's, the streams' and the Raft log's.
    pub fn all_findings(&self) -> impl Iterator<Item = &Finding> + Clone {
        self.findings
            .iter()
            .chain(self.streams.iter().flat_map(|s| s.findings.iter()))
            .chain(self.raft_findings())
    }

    #[cfg(feature = "cluster")]
    fn raft_findings(&self) -> std::slice::Iter<'_, Finding> {
        self.raft
            .as_ref()
            .map_or(&[][..], |raft| &raft.findings)
            .iter()
    }

    #[cfg(not(feature = "cluster"))]
    fn raft_findings(&self) -> std::slice::Iter<'_, Finding> {
        [].iter()
    }

    /// Findings of a given severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.all_findings()
            .filter(|f| f.severity == severity)
            .count()
    }
}

/// Whether a record read from a segment is still part of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// A live entry.
    Live,
    /// Removed by `XDEL` (or recorded as lost to damage): the bytes stay until retention.
    Deleted,
    /// Below the stream's first offset: trimmed, waiting for its segment to be removed.
    Trimmed,
}

impl EntryState {
    /// A lower-case word for reports.
    pub fn label(self) -> &'static str {
        match self {
            EntryState::Live => "live",
            EntryState::Deleted => "deleted",
            EntryState::Trimmed => "trimmed",
        }
    }

    fn of(meta: &MetaState, offset: u64) -> EntryState {
        if offset < meta.first_offset {
            EntryState::Trimmed
        } else if meta.is_gone(offset) {
            EntryState::Deleted
        } else {
            EntryState::Live
        }
    }
}

/// What a walk over a stream's segments meets, in file order.
#[derive(Debug)]
pub enum ScanEvent<'a, 'r> {
    /// A record whose checksum matches.
    Record {
        /// The segment file.
        file: &'a Path,
        /// Byte position of the record in the file.
        pos: usize,
        /// The record.
        record: RecordRef<'a, 'r>,
        /// Whether it is still part of its stream.
        state: EntryState,
    },
    /// Bytes from `pos` to `resume` that are not a valid record (checksum mismatch or a
    /// malformed record); the scan goes on at `resume`.
    Damaged {
        /// The segment file.
        file: &'a Path,
        /// Byte position where the damage starts.
        pos: usize,
        /// Byte position of the next valid record.
        resume: usize,
        /// Why the bytes at `pos` are not a valid record.
        error: &'a str,
    },
    /// A segment file was read to its end.
    SegmentDone {
        /// The segment file.
        file: &'a Path,
        /// Its size.
        bytes: u64,
    },
}

/// Called for each [`ScanEvent`]; returning `false` stops the walk.
pub type Visitor<'v> = dyn FnMut(ScanEvent<'_, '_>) -> bool + 'v;

/// Checks that `dir` looks like a data directory and lists its stream directories in stream
/// number order (leftovers and strays are noted in `findings`).
fn stream_dirs(dir: &Path, findings: &mut Vec<Finding>) -> Result<Vec<PathBuf>, InspectError> {
    let meta = fs::metadata(dir).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => InspectError::NotADataDirectory {
            path: dir.to_path_buf(),
            detail: "no such file or directory".into(),
        },
        _ => InspectError::Io {
            path: dir.to_path_buf(),
            source,
        },
    })?;
    if !meta.is_dir() {
        return Err(InspectError::NotADataDirectory {
            path: dir.to_path_buf(),
            detail: "not a directory (give a data directory, or a .seg file)".into(),
        });
    }
    let streams = dir.join(STREAMS_DIR);
    if !streams.is_dir() {
        let shards = dir.join(names::SHARDS_DIR);
        let detail = if shards.is_dir() {
            format!(
                "a sharded cluster node's data directory: each shard's store is a data directory of its own, inspect {}/<n>",
                shards.display()
            )
        } else {
            format!("not a weir data directory: it has no `{STREAMS_DIR}` directory")
        };
        return Err(InspectError::NotADataDirectory {
            path: dir.to_path_buf(),
            detail,
        });
    }
    let mut found = Vec::new();
    for entry in read_dir(&streams)? {
        let path = streams.join(&entry);
        if names::is_stream_leftover(&entry) {
            findings.push(note(
                &path,
                "leftover of an interrupted stream creation or deletion (removed at the next open)",
            ));
            continue;
        }
        match names::directory_number(&entry) {
            Some(number) if path.is_dir() => found.push((number, path)),
            _ => findings.push(note(&path, "not a stream directory; ignored")),
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

/// Names in a directory, sorted; names that are not UTF-8 are skipped (no weir file has one).
fn read_dir(dir: &Path) -> Result<Vec<String>, InspectError> {
    let io_err = |source| InspectError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn finding(severity: Severity, file: &Path, position: Option<u64>, detail: String) -> Finding {
    Finding {
        severity,
        file: file.to_path_buf(),
        position,
        detail,
    }
}

fn damage(file: &Path, position: Option<u64>, detail: impl Into<String>) -> Finding {
    finding(Severity::Damage, file, position, detail.into())
}

fn note(file: &Path, detail: impl Into<String>) -> Finding {
    finding(Severity::Note, file, None, detail.into())
}

/// Inspects every stream of the data directory `dir`, reading every byte of every file and
/// calling `visit` for what the segment scans meet (a progress display, say).
pub fn inspect(dir: &Path, visit: &mut Visitor<'_>) -> Result<Inspection, InspectError> {
    let mut inspection = Inspection {
        dir: dir.to_path_buf(),
        ..Inspection::default()
    };
    let dirs = stream_dirs(dir, &mut inspection.findings)?;
    inspection.closed_cleanly = dir.join(CLEAN_FILE).exists();
    for stream_dir in dirs {
        let report = inspect_stream(&stream_dir, inspection.closed_cleanly, visit);
        inspection.streams.push(report);
    }
    inspect_raft_dir(&mut inspection);
    Ok(inspection)
}

/// Adds the node's Raft log, if the directory has one.
#[cfg(feature = "cluster")]
fn inspect_raft_dir(inspection: &mut Inspection) {
    let raft_dir = inspection.dir.join(names::RAFT_DIR);
    if raft_dir.is_dir() {
        inspection.raft = Some(inspect_raft(&raft_dir));
    }
}

/// A build without the cluster layer cannot read a Raft log: says so rather than pass over it.
#[cfg(not(feature = "cluster"))]
fn inspect_raft_dir(inspection: &mut Inspection) {
    let raft_dir = inspection.dir.join(names::RAFT_DIR);
    if raft_dir.is_dir() {
        inspection.findings.push(note(
            &raft_dir,
            "a cluster node's Raft log, not read: this build has no cluster support (feature `cluster`)",
        ));
    }
}

/// Walks the records of the stream called `name`, calling `visit` for each valid record in
/// offset order until it returns `false`. Returns the stream's report (complete only when the
/// walk was not stopped).
pub fn walk_stream(
    dir: &Path,
    name: &[u8],
    visit: &mut Visitor<'_>,
) -> Result<StreamReport, InspectError> {
    let stream_dir = find_stream(dir, name)?;
    let closed_cleanly = dir.join(CLEAN_FILE).exists();
    Ok(inspect_stream(&stream_dir, closed_cleanly, visit))
}

/// The directory of the stream called `name` in the data directory `dir`.
pub fn find_stream(dir: &Path, name: &[u8]) -> Result<PathBuf, InspectError> {
    let mut ignored = Vec::new();
    stream_dirs(dir, &mut ignored)?
        .into_iter()
        .find(|stream_dir| fs::read(stream_dir.join(NAME_FILE)).is_ok_and(|n| n == name))
        .ok_or_else(|| InspectError::NoSuchStream {
            dir: dir.to_path_buf(),
            name: quoted(name),
        })
}

/// The bytes of the segment files a walk of the data directory `dir` reads (the total a
/// progress display counts [`ScanEvent::SegmentDone`] towards).
pub fn data_bytes(dir: &Path) -> Result<u64, InspectError> {
    let mut ignored = Vec::new();
    Ok(stream_dirs(dir, &mut ignored)?
        .iter()
        .map(|stream_dir| segment_bytes(stream_dir))
        .sum())
}

/// The bytes of the segment files of one stream directory.
pub fn segment_bytes(stream_dir: &Path) -> u64 {
    read_dir(stream_dir)
        .unwrap_or_default()
        .iter()
        .filter(|file| names::segment_base(file).is_some())
        .filter_map(|file| fs::metadata(stream_dir.join(file)).ok())
        .map(|meta| meta.len())
        .sum()
}

/// Inspects one stream directory.
pub fn inspect_stream(dir: &Path, closed_cleanly: bool, visit: &mut Visitor<'_>) -> StreamReport {
    let mut report = StreamReport {
        dir: dir.to_path_buf(),
        ..StreamReport::default()
    };
    let findings = &mut report.findings;
    let name_path = dir.join(NAME_FILE);
    match fs::read(&name_path) {
        Ok(name) => report.name = Some(name),
        Err(error) if error.kind() == io::ErrorKind::NotFound => findings.push(damage(
            &name_path,
            None,
            "missing: the stream's name is lost (the engine refuses to open the store)",
        )),
        Err(error) => findings.push(unreadable(&name_path, &error)),
    }
    let files = match read_dir(dir) {
        Ok(files) => files,
        Err(error) => {
            findings.push(finding(Severity::Unreadable, dir, None, error.to_string()));
            return report;
        }
    };

    // Checkpoint and meta journal: the log's metadata.
    let (checkpoint, checkpoint_damaged) = read_checkpoint(dir, findings);
    report.checkpoint = checkpoint.as_ref().map(CheckpointReport::of);
    let checkpoint = checkpoint.unwrap_or_default();
    let newest_meta_journal = files
        .iter()
        .filter_map(|f| names::meta_journal_generation(f))
        .max();
    let generation = match newest_meta_journal {
        // Without a readable checkpoint the engine refuses to open; the newest journal is the
        // best guess at the metadata.
        Some(newest) if checkpoint_damaged => newest,
        _ => meta_journal_generation(&checkpoint),
    };
    let meta = replay_meta_journal(
        &dir.join(meta_journal_name(generation)),
        &checkpoint.meta,
        closed_cleanly,
        findings,
    );
    let point = checkpoint.recovery_point;
    match StreamConfig::decode(&meta.attributes) {
        Ok(settings) => report.settings = Some(settings),
        Err(error) => findings.push(damage(
            &dir.join(CHECKPOINT_FILE),
            None,
            format!(
                "the stream settings (metadata attributes, from the checkpoint and meta journal) do not decode: {error}"
            ),
        )),
    }

    // Other files: leftovers and strays.
    let mut bases = Vec::new();
    for file in &files {
        let path = dir.join(file);
        if let Some(base) = names::segment_base(file) {
            bases.push(base);
        } else if file.ends_with(names::TMP_SUFFIX) {
            findings.push(note(&path, "leftover temporary file; ignored"));
        } else if names::is_meta_journal(file) {
            if *file != meta_journal_name(generation) {
                findings.push(note(
                    &path,
                    "meta journal of another generation than the checkpoint's; ignored (removed at the next open)",
                ));
            }
        } else if let Some(segment) = names::index_segment_name(file) {
            if names::segment_base(&segment).is_none() || !files.contains(&segment) {
                findings.push(note(&path, "index file without its segment; ignored"));
            }
        } else if !(file == NAME_FILE
            || file == CHECKPOINT_FILE
            || file == GROUP_SNAPSHOT_FILE
            || file == IDEMPOTENCY_SNAPSHOT_FILE
            || names::is_group_journal(file))
        {
            findings.push(note(&path, "not a weir file; ignored"));
        }
    }

    // Segments.
    let mut live = Live::default();
    let mut previous_next: Option<(u64, PathBuf)> = None;
    let mut stopped = false;
    for (i, &base) in bases.iter().enumerate() {
        let path = dir.join(names::segment_file_name(base));
        let is_last = i + 1 == bases.len();
        let context = ScanContext {
            name_base: Some(base),
            next_base: bases.get(i + 1).copied(),
            is_last,
            name_in_stream: true,
            closed_cleanly,
            meta: &meta,
            rp_segment_base: Some(point.segment_base),
        };
        let outcome = scan_segment(&path, &context, findings, &mut live, visit);
        let stopped_inside = outcome.stopped;
        if !stopped_inside {
            let bytes = outcome.report.allocated_bytes;
            stopped = !visit(ScanEvent::SegmentDone { file: &path, bytes });
        }
        let records_read = outcome.report.header_ok || outcome.report.header_rebuildable;
        if let Some((expected, previous)) = &previous_next
            && records_read
        {
            check_continuity(*expected, base, previous, &path, &meta, findings);
        }
        if records_read {
            let next = outcome.report.last.map_or(base, |(offset, _)| offset + 1);
            previous_next = Some((next, path.clone()));
        }
        report.segments.push(outcome.report);
        if stopped_inside || stopped {
            stopped = true;
            break;
        }
    }
    if stopped {
        return report;
    }

    // Totals (9.14 steps 6 and 7).
    let records_end = previous_next.as_ref().map_or(0, |(next, _)| *next);
    if let Some(missing) = missing_before_point(records_end, &point) {
        if !meta.all_gone(missing.clone()) {
            findings.push(damage(
                &dir.join(CHECKPOINT_FILE),
                None,
                format!(
                    "the checkpoint says offsets up to {} were on disk, but the segments end at offset {}: offsets {}..{} are lost",
                    point.next_offset, records_end, missing.start, missing.end
                ),
            ));
        }
    }
    let next_offset = records_end.max(point.next_offset);
    let last_record_id = live.last_id.unwrap_or(StreamId::MIN);
    report.totals = Totals {
        length: live.length,
        entries_added: meta.entries_added(next_offset),
        first_offset: meta.first_offset,
        next_offset,
        first_id: live.first_id,
        last_id: last_record_id.max(point.last_id).max(meta.last_id_floor),
        max_deleted_id: meta.max_deleted_id,
        deleted: meta.deleted.len() as u64,
        retention: meta.retention,
    };

    // Consumer groups (recovery.md, 2) and the idempotency snapshot's container
    // (storage-format.md, 12).
    let facts = StreamFacts {
        entries_added: report.totals.entries_added,
        length: report.totals.length,
        first_id: report.totals.first_id.unwrap_or(StreamId::MIN),
        last_id: report.totals.last_id,
        max_deleted_id: report.totals.max_deleted_id,
    };
    let source = FactsOnly(facts);
    report.groups = read_groups(dir, &files, &source, closed_cleanly, findings);
    let idempotency = dir.join(IDEMPOTENCY_SNAPSHOT_FILE);
    match journal::read_snapshot(&idempotency, IDEMPOTENCY_SNAPSHOT_KIND) {
        Ok(Some(snapshot)) => match decode_idempotency(&snapshot.payload) {
            Ok(windows) => report.idempotency = Some((windows.producers(), windows.tracked())),
            Err(error) => findings.push(damage(
                &idempotency,
                Some(journal::HEADER_LEN as u64),
                format!("payload does not decode: {error}"),
            )),
        },
        Ok(None) => {}
        Err(error) => findings.push(container_error(&idempotency, &error)),
    }
    report
}

/// The idempotency snapshot's payload (12.1): the next offset it covers, then the windows.
fn decode_idempotency(payload: &[u8]) -> Result<IdempotencyWindows, CodecError> {
    let mut input = Decoder::new(payload, "idempotency snapshot");
    input.u64()?;
    let windows = input.bytes()?;
    input.finish()?;
    IdempotencyWindows::decode(windows)
}

/// Live-entry counters accumulated over a stream's segments.
#[derive(Debug, Default)]
struct Live {
    length: u64,
    first_id: Option<StreamId>,
    last_id: Option<StreamId>,
}

/// What a segment scan needs to know about its surroundings.
struct ScanContext<'a> {
    /// Base offset from the file name, when the file is part of a stream directory.
    name_base: Option<u64>,
    /// Base offset of the next segment of the stream, if any.
    next_base: Option<u64>,
    /// The newest segment of its stream: the one a live server may be writing.
    is_last: bool,
    /// Read as part of its stream directory, not on its own.
    name_in_stream: bool,
    closed_cleanly: bool,
    meta: &'a MetaState,
    rp_segment_base: Option<u64>,
}

struct SegmentOutcome {
    report: SegmentReport,
    stopped: bool,
}

/// Checks a segment's header, every record's CRC (through the library's [`Scanner`]) and its
/// index file, reporting each damaged region with its position and the offsets it held.
fn scan_segment(
    path: &Path,
    context: &ScanContext<'_>,
    findings: &mut Vec<Finding>,
    live: &mut Live,
    visit: &mut Visitor<'_>,
) -> SegmentOutcome {
    let mut report = SegmentReport {
        file: path.to_path_buf(),
        base_offset: context.name_base.unwrap_or(0),
        allocated_bytes: fs::metadata(path).map_or(0, |m| m.len()),
        active: context.name_in_stream.then_some(context.is_last),
        index: "not checked".into(),
        ..SegmentReport::default()
    };
    let offsets = context
        .name_base
        .map(|base| base..context.next_base.unwrap_or(u64::MAX));
    let mut segment = match open_segment(path, offsets, false) {
        Ok(OpenedSegment::Sound(segment)) => segment,
        Ok(OpenedSegment::Rebuilt { segment, reason }) => {
            findings.push(damage(
                path,
                Some(0),
                format!(
                    "bad segment header: {reason}; its records show which offsets it holds: the next open rebuilds the header from the file name and size and loses no record"
                ),
            ));
            report.header_rebuildable = true;
            segment
        }
        Err(
            OpenFailure::BadHeader {
                found: SegmentError::BadHeader { detail, .. },
                ..
            }
            | OpenFailure::Unreadable(SegmentError::BadHeader { detail, .. }),
        ) => {
            let unfinished = context
                .name_base
                .zip(context.rp_segment_base)
                .is_some_and(|(base, rp)| unfinished_creation(base, context.is_last, rp));
            let detail = format!("bad segment header: {detail}");
            if unfinished && !context.closed_cleanly {
                findings.push(finding(
                    Severity::Note,
                    path,
                    Some(0),
                    format!(
                        "{detail} (the newest segment, past the recovery point: a segment creation that never finished; the next open removes it)"
                    ),
                ));
            } else {
                findings.push(damage(path, Some(0), detail));
            }
            return SegmentOutcome {
                report,
                stopped: false,
            };
        }
        Err(OpenFailure::BadHeader { found: error, .. } | OpenFailure::Unreadable(error)) => {
            findings.push(finding(Severity::Unreadable, path, None, error.to_string()));
            return SegmentOutcome {
                report,
                stopped: false,
            };
        }
    };
    let base = segment.base_offset();
    report.base_offset = base;
    if let Some(name_base) = context.name_base
        && name_base != base
    {
        findings.push(damage(
            path,
            Some(16),
            format!("header says base offset {base}, the file name says {name_base}"),
        ));
        return SegmentOutcome {
            report,
            stopped: false,
        };
    }
    report.header_ok = !report.header_rebuildable;
    let index = read_index(path, base, findings);
    let mut index_check = index.as_ref().map(IndexCheck::new);
    let bytes = segment.recovery_bytes();
    let mut analysis = SegmentAnalysis::new(bytes, HEADER_LEN, base, None);
    let mut stopped = false;
    for found in analysis.by_ref() {
        match found {
            Found::Record {
                pos,
                record,
                missing_before,
            } => {
                if let Some(missing) = missing_before
                    && !context.meta.all_gone(missing.clone())
                {
                    // Offsets jump without a damaged region: records were lost before `pos`.
                    findings.push(damage(
                        path,
                        Some(pos as u64),
                        format!(
                            "offsets jump from {} to {}: {}",
                            missing.start - 1,
                            missing.end,
                            lost_offsets(missing.start, missing.end)
                        ),
                    ));
                }
                report.records += 1;
                report.first.get_or_insert((record.offset, record.id));
                report.last = Some((record.offset, record.id));
                report.used_bytes = (pos + record.padded_len) as u64;
                if let Some(check) = index_check.as_mut() {
                    check.record(pos, &record);
                }
                let state = EntryState::of(context.meta, record.offset);
                match state {
                    EntryState::Live => {
                        live.length += 1;
                        live.first_id.get_or_insert(record.id);
                    }
                    EntryState::Deleted => report.deleted += 1,
                    EntryState::Trimmed => {}
                }
                live.last_id = Some(record.id);
                let event = ScanEvent::Record {
                    file: path,
                    pos,
                    record: RecordRef(&record),
                    state,
                };
                if !visit(event) {
                    stopped = true;
                    break;
                }
            }
            Found::Damaged {
                pos,
                resume,
                lost,
                error,
            } => {
                report.damaged_regions += 1;
                let error = error.to_string();
                let event = ScanEvent::Damaged {
                    file: path,
                    pos,
                    resume,
                    error: &error,
                };
                if !visit(event) {
                    stopped = true;
                    break;
                }
                findings.push(damage(
                    path,
                    Some(pos as u64),
                    format!(
                        "{} damaged bytes ({error}): {}; the scan resumes at byte {resume}",
                        resume - pos,
                        lost_offsets(lost.start, lost.end)
                    ),
                ));
            }
        }
    }
    if stopped {
        return SegmentOutcome {
            report,
            stopped: true,
        };
    }
    if report.records == 0 {
        report.used_bytes = HEADER_LEN as u64;
    }
    if let Some(end) = analysis.end() {
        report.used_bytes = end.end as u64;
        if end.dirty_end > end.end {
            let garbage = end.dirty_end - end.end;
            if context.is_last {
                let detail = format!(
                    "torn tail: {garbage} bytes after the last record are not a complete record ({}); a record being written by a live server, or a torn write the next open cuts",
                    end.reason
                );
                findings.push(finding(
                    if context.closed_cleanly {
                        Severity::Damage
                    } else {
                        Severity::Note
                    },
                    path,
                    Some(end.end as u64),
                    detail,
                ));
            } else {
                findings.push(damage(
                    path,
                    Some(end.end as u64),
                    format!(
                        "{garbage} bytes after the last valid record are not a valid record ({}): the record(s) from offset {} on in this segment are lost",
                        end.reason,
                        analysis.next_offset()
                    ),
                ));
            }
        }
        if let (Some(index), Some(check)) = (&index, index_check) {
            let index_file = index_path(path, base);
            report.index = check.finish(index, &index_file, end.end, context.is_last, findings);
        }
    }
    if index.is_none() && report.index == "not checked" {
        report.index = if index_file_present(path, base) {
            "unreadable".into()
        } else {
            "none".into()
        };
    }
    SegmentOutcome {
        report,
        stopped: false,
    }
}

fn lost_offsets(from: u64, to: u64) -> String {
    match to.saturating_sub(from) {
        0 => "no offset is lost (the damaged bytes held no record that was kept)".into(),
        1 => format!("offset {from} is lost"),
        _ => format!("offsets {from}..{to} are lost ({} records)", to - from),
    }
}

fn index_path(segment: &Path, base: u64) -> PathBuf {
    segment.with_file_name(index_file_name(base))
}

fn index_file_present(segment: &Path, base: u64) -> bool {
    index_path(segment, base).exists()
}

/// Reads and decodes a segment's index file; `None` when absent or bad (reported).
fn read_index(segment: &Path, base: u64, findings: &mut Vec<Finding>) -> Option<SegmentIndex> {
    let path = index_path(segment, base);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
        Err(error) => {
            findings.push(unreadable(&path, &error));
            return None;
        }
    };
    match SegmentIndex::decode(&bytes, base, LogOptions::default().index_interval_bytes) {
        Ok(index) => Some(index),
        Err(error) => {
            findings.push(damage(
                &path,
                Some(error.position()),
                format!("{error} (an index is a cache: the engine ignores it and rebuilds it)"),
            ));
            None
        }
    }
}

/// Compares an index file with the records a scan meets.
struct IndexCheck {
    points: Vec<IndexEntry>,
    next_point: usize,
    end_pos: usize,
    /// What disagrees, with the byte position of the index field that says it.
    mismatches: Vec<(u64, String)>,
    records_before_end: u64,
    last_before_end: Option<LastRecord>,
    boundary_at_end: bool,
}

impl IndexCheck {
    fn new(index: &SegmentIndex) -> Self {
        IndexCheck {
            points: index.entries().to_vec(),
            next_point: 0,
            end_pos: index.end_pos(),
            mismatches: Vec::new(),
            records_before_end: 0,
            last_before_end: None,
            boundary_at_end: false,
        }
    }

    fn record(&mut self, pos: usize, record: &RecordView<'_>) {
        while let Some(point) = self.points.get(self.next_point)
            && point.pos < pos
        {
            self.mismatches.push((
                index_layout::entry(self.next_point),
                format!(
                    "index point for offset {} names byte {}, where no record starts",
                    point.offset, point.pos
                ),
            ));
            self.next_point += 1;
        }
        if let Some(point) = self.points.get(self.next_point)
            && point.pos == pos
        {
            if point.offset != record.offset || point.id != record.id {
                self.mismatches.push((
                    index_layout::entry(self.next_point),
                    format!(
                        "index point at byte {pos} says offset {} ID {}, the record there has offset {} ID {}",
                        point.offset, point.id, record.offset, record.id
                    ),
                ));
            }
            self.next_point += 1;
        }
        if pos == self.end_pos {
            self.boundary_at_end = true;
        }
        if pos < self.end_pos {
            self.records_before_end += 1;
            self.last_before_end = Some(LastRecord {
                offset: record.offset,
                id: record.id,
                timestamp_ms: record.timestamp_ms,
            });
        }
    }

    fn finish(
        mut self,
        index: &SegmentIndex,
        path: &Path,
        scan_end: usize,
        is_last: bool,
        findings: &mut Vec<Finding>,
    ) -> String {
        for (n, point) in self.points.iter().enumerate().skip(self.next_point) {
            if point.pos < self.end_pos {
                self.mismatches.push((
                    index_layout::entry(n),
                    format!(
                        "index point for offset {} names byte {}, where no valid record starts",
                        point.offset, point.pos
                    ),
                ));
            }
        }
        let stale = self.end_pos < scan_end && self.boundary_at_end;
        if self.end_pos != scan_end && !stale {
            self.mismatches.push((
                index_layout::END_POS,
                format!(
                    "index says the records end at byte {}, the segment's records end at byte {scan_end}",
                    self.end_pos
                ),
            ));
        }
        if index.record_count() != self.records_before_end {
            self.mismatches.push((
                index_layout::RECORD_COUNT,
                format!(
                    "index counts {} records, the segment holds {} before byte {}",
                    index.record_count(),
                    self.records_before_end,
                    self.end_pos
                ),
            ));
        }
        if index.last() != self.last_before_end {
            let describe = |last: Option<LastRecord>| {
                last.map_or("none".to_owned(), |l| {
                    format!("offset {} ID {} time {}", l.offset, l.id, l.timestamp_ms)
                })
            };
            self.mismatches.push((
                index_layout::LAST_RECORD,
                format!(
                    "index's last record is {}, the segment's is {}",
                    describe(index.last()),
                    describe(self.last_before_end)
                ),
            ));
        }
        if !self.mismatches.is_empty() {
            for (position, detail) in &self.mismatches {
                findings.push(damage(
                    path,
                    Some(*position),
                    format!(
                        "{detail} (an index is a cache: the engine rejects it and rebuilds it)"
                    ),
                ));
            }
            return "mismatch".into();
        }
        if stale {
            let detail = format!(
                "index describes the segment up to byte {}; records were written after it (stale)",
                self.end_pos
            );
            if is_last {
                findings.push(note(
                    path,
                    format!("{detail}: normal for the active segment, whose index every checkpoint writes"),
                ));
            } else {
                findings.push(damage(
                    path,
                    None,
                    format!("{detail} (the engine rejects it and rebuilds it)"),
                ));
            }
            return "stale".into();
        }
        "ok".into()
    }
}

/// Reports offsets between two segments that no segment holds and that are not gone.
fn check_continuity(
    expected: u64,
    base: u64,
    previous: &Path,
    path: &Path,
    meta: &MetaState,
    findings: &mut Vec<Finding>,
) {
    let lost = match continuity(expected, base, meta) {
        Continuity::Continues => return,
        Continuity::Overlaps { .. } => "the segments overlap".to_owned(),
        Continuity::Missing(missing) => lost_offsets(missing.start, missing.end),
    };
    findings.push(damage(
        path,
        Some(16),
        format!(
            "segment starts at offset {base} but {} ends at offset {expected}: {lost}",
            previous.display()
        ),
    ));
}

fn unreadable(path: &Path, error: &io::Error) -> Finding {
    finding(Severity::Unreadable, path, None, error.to_string())
}

/// A journal that does not open: a damaged header (one whose checksum fails), which the next
/// open rebuilds from the file name, or what the container error says.
fn journal_header_finding(path: &Path, error: &JournalError) -> Finding {
    let first_bytes = std::fs::read(path).map(|mut bytes| {
        bytes.truncate(journal::HEADER_LEN);
        bytes
    });
    match first_bytes.ok().as_deref().and_then(journal::header_damage) {
        Some(detail) => damage(
            path,
            Some(0),
            format!(
                "damaged header ({detail}): the next open rebuilds it from the file name and replays the frames"
            ),
        ),
        None => container_error(path, error),
    }
}

/// A container error as a finding: damage with its position when the error has one.
fn container_error(path: &Path, error: &JournalError) -> Finding {
    match error {
        JournalError::Io { source, .. } => unreadable(path, source),
        JournalError::BadHeader { detail, .. } => {
            damage(path, Some(0), format!("bad header: {detail}"))
        }
        JournalError::SnapshotCorrupt { detail, .. } => damage(path, None, detail.clone()),
        other => damage(path, Some(0), other.to_string()),
    }
}

/// The checkpoint, and whether it exists but could not be read.
fn read_checkpoint(dir: &Path, findings: &mut Vec<Finding>) -> (Option<Checkpoint>, bool) {
    read_checkpoint_file(&dir.join(CHECKPOINT_FILE), findings)
}

/// [`read_checkpoint`] for a checkpoint file at any path.
fn read_checkpoint_file(path: &Path, findings: &mut Vec<Finding>) -> (Option<Checkpoint>, bool) {
    match meta_analysis::read_checkpoint(path) {
        Ok(Some(Ok(checkpoint))) => (Some(checkpoint), false),
        Ok(Some(Err(error))) => {
            findings.push(damage(
                path,
                Some(journal::HEADER_LEN as u64),
                format!("payload does not decode: {error}"),
            ));
            (None, true)
        }
        Ok(None) => {
            findings.push(note(
                path,
                "no checkpoint: the engine scans every segment and starts from empty metadata",
            ));
            (None, false)
        }
        Err(error) => {
            findings.push(container_error(path, &error));
            (None, true)
        }
    }
}

/// Reads a journal read-only and decodes its events as the engine's open does (`decode`).
/// A frame that does not decode is damage, and no later frame is applied. Bad bytes at the end
/// are damage after a clean close, and only a note otherwise: a live writer may be appending
/// that frame, and after a crash the next open cuts them as a normal part of recovery. `None`
/// when the journal does not open (reported) or is missing (noted as `when_missing` says).
fn read_journal<E>(
    path: &Path,
    kind: journal::FileKind,
    decode: fn(Replay) -> JournalEvents<E>,
    closed_cleanly: bool,
    when_missing: Option<&str>,
    findings: &mut Vec<Finding>,
) -> Option<JournalEvents<E>> {
    let replay = match Journal::read(path, kind) {
        Ok(replay) => replay,
        Err(JournalError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            if let Some(detail) = when_missing {
                findings.push(note(path, detail));
            }
            return None;
        }
        Err(error) => {
            findings.push(journal_header_finding(path, &error));
            return None;
        }
    };
    let events = decode(replay);
    if let Some(undecodable) = &events.undecodable {
        findings.push(damage(
            path,
            Some(undecodable.pos),
            format!(
                "frame passes its checksum but does not decode ({}); later frames are not applied",
                undecodable.detail
            ),
        ));
    } else if let Some(cut) = &events.damage {
        let severity = if closed_cleanly {
            Severity::Damage
        } else {
            Severity::Note
        };
        findings.push(finding(
            severity,
            path,
            Some(cut.position),
            format!(
                "{}: the last {} bytes are not good frames (a frame being written by a live server, or damage: the next open cuts them and the changes in them are lost)",
                cut.reason, cut.dropped_bytes
            ),
        ));
    }
    Some(events)
}

/// The metadata `saved` (the checkpoint's) becomes with the events of the meta journal at
/// `path`.
fn replay_meta_journal(
    path: &Path,
    saved: &MetaState,
    closed_cleanly: bool,
    findings: &mut Vec<Finding>,
) -> MetaState {
    let events = read_journal(
        path,
        META_JOURNAL_KIND,
        meta_events,
        closed_cleanly,
        Some(
            "the meta journal named by the checkpoint is missing (the next open creates it empty)",
        ),
        findings,
    );
    match events {
        Some(events) => replay_meta(saved, &events),
        None => saved.clone(),
    }
}

/// Stream counters for the group queries, which need no entry.
struct FactsOnly(StreamFacts);

impl EntrySource for FactsOnly {
    fn entries_after(&self, _after: StreamId, _max: usize) -> Vec<(StreamId, u64)> {
        Vec::new()
    }

    fn lookup(&self, _id: StreamId) -> Option<u64> {
        None
    }

    fn facts(&self) -> StreamFacts {
        self.0
    }
}

/// Rebuilds the groups from snapshot and journal (recovery.md, 2), in memory only, clamped to
/// the log.
fn read_groups(
    dir: &Path,
    files: &[String],
    source: &FactsOnly,
    closed_cleanly: bool,
    findings: &mut Vec<Finding>,
) -> Vec<GroupReport> {
    let snapshot_path = dir.join(GROUP_SNAPSHOT_FILE);
    let (mut state, snapshot_generation) = read_group_snapshot_state(&snapshot_path, findings);
    let generation = snapshot_generation.unwrap_or(1);
    let journal_name = group_journal_name(generation);
    for file in files {
        if names::is_group_journal(file) && *file != journal_name {
            let path = dir.join(file);
            if !snapshot_path.exists() && generation == 1 {
                findings.push(damage(
                    &path,
                    None,
                    "a group journal of a later generation without the groups.snapshot that names it: the engine refuses to open the stream",
                ));
            } else {
                findings.push(note(
                    &path,
                    "group journal of another generation than the snapshot's; ignored (removed at the next open)",
                ));
            }
        }
    }
    let journal_path = dir.join(&journal_name);
    let events = read_journal(
        &journal_path,
        GROUP_JOURNAL_KIND,
        group_events,
        closed_cleanly,
        None,
        findings,
    );
    events
        .iter()
        .flat_map(JournalEvents::iter)
        .for_each(|event| state.apply(event));
    let clamped = state.clamp_to_log(source).output;
    for clamp in clamped {
        findings.push(note(
            &journal_path,
            format!(
                "group {} reaches past the log: {} pending entries dropped{} (the next open journals this clamp)",
                quoted(&clamp.group),
                clamp.dropped.len(),
                clamp
                    .rewound
                    .map(|(from, to)| format!(", last-delivered rewound from {from} to {to}"))
                    .unwrap_or_default()
            ),
        ));
    }
    group_reports(&state, source)
}

/// The state the group snapshot at `path` holds, and its generation: `None` when there is no
/// snapshot, or it could not be read (reported in `findings`).
fn read_group_snapshot_state(
    path: &Path,
    findings: &mut Vec<Finding>,
) -> (GroupsState, Option<u64>) {
    let mut state = GroupsState::new();
    match read_group_snapshot(path) {
        Ok(Some(snapshot)) => {
            match &snapshot.events {
                Ok(events) => events.iter().for_each(|event| state.apply(event)),
                Err(error) => findings.push(damage(
                    path,
                    Some(journal::HEADER_LEN as u64),
                    format!("payload does not decode: {error}"),
                )),
            }
            (state, Some(snapshot.generation))
        }
        Ok(None) => (state, None),
        Err(error) => {
            findings.push(container_error(path, &error));
            (state, None)
        }
    }
}

/// Reports every group of `state`, each with its consumers and PEL.
fn group_reports(state: &GroupsState, source: &FactsOnly) -> Vec<GroupReport> {
    // Only absolute times are reported, so the idle times computed against it do not matter.
    let now_ms = 0;
    let everything = PendingQuery {
        start: StreamId::MIN,
        end: StreamId::MAX,
        count: usize::MAX,
        consumer: None,
        min_idle_ms: None,
    };
    state
        .groups_info(source)
        .into_iter()
        .map(|info| GroupReport {
            name: info.name.to_vec(),
            last_delivered: info.last_delivered,
            entries_read: info.entries_read,
            lag: info.lag,
            pending: info.pending,
            exhausted: info.exhausted,
            oldest_delivery_ms: info.oldest_delivery_ms,
            consumers: state
                .consumers_info(info.name, now_ms)
                .unwrap_or_default()
                .into_iter()
                .map(|c| ConsumerReport {
                    name: c.name.to_vec(),
                    pending: c.pending,
                    seen_ms: c.seen_ms,
                    active_ms: c.active_ms,
                })
                .collect(),
            policy: info.policy.clone(),
            pel: state
                .pending_range(info.name, &everything, now_ms)
                .unwrap_or_default()
                .into_iter()
                .map(|row| PendingReport {
                    id: row.id,
                    consumer: row.consumer.to_vec(),
                    delivered_ms: row.delivered_ms,
                    deliveries: row.deliveries,
                })
                .collect(),
        })
        .collect()
}

/// Bytes as text: printable characters as they are, `\\`, `\n`, `\r`, `\t`, other control
/// characters and bytes that are not UTF-8 as `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Bytes as a double-quoted, escaped string.
pub fn quoted(bytes: &[u8]) -> String {
    format!("\"{}\"", escape(bytes).replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape(b"hi\x00\xff\n\\"), "hi\\x00\\xff\\n\\\\");
        assert_eq!(escape("héllo".as_bytes()), "héllo");
        assert_eq!(quoted(b"a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn a_missing_directory_is_not_a_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            inspect(&dir.path().join("nope"), &mut |_| true),
            Err(InspectError::NotADataDirectory { .. })
        ));
        assert!(matches!(
            inspect(dir.path(), &mut |_| true),
            Err(InspectError::NotADataDirectory { .. })
        ));
    }
}
