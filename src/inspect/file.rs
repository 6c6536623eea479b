//! One file of a stream directory read on its own: a segment, a group journal or snapshot, a
//! meta journal or a checkpoint, recognised by its name (section 2 of `storage-format.md`).
//!
//! A file read alone has no clean-close marker to go by, so bytes at its end that are not a
//! complete record or frame count as damage (they are a write in progress only when a live
//! server is appending to that very file).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{
    CheckpointReport, FactsOnly, Finding, InspectError, Live, MetaReport, ScanContext,
    SegmentReport, Visitor, damage, group_reports, quoted, read_checkpoint_file,
    read_group_snapshot_state, read_journal, scan_segment,
};
use crate::group::analysis::group_events;
use crate::group::durable::{GROUP_JOURNAL_KIND, GROUP_SNAPSHOT_FILE};
use crate::group::{GroupEvent, GroupsState, StreamFacts};
use crate::id::StreamId;
use crate::journal::JournalEvents;
use crate::log::meta_analysis::{meta_events, replay_meta};
use crate::log::{CHECKPOINT_FILE, META_JOURNAL_KIND, MetaEvent, MetaState};
use crate::names;

/// What one file holds.
#[derive(Debug, Clone)]
pub enum FileContent {
    /// A segment file.
    Segment(SegmentReport),
    /// A consumer-group journal: its frames, and the groups they build on an empty state (the
    /// changes since the snapshot of the same generation, not the whole state).
    GroupJournal {
        /// The generation in the file name.
        generation: u64,
        /// Its good frames, in order.
        frames: Vec<FrameReport>,
        /// The groups its frames build.
        groups: Vec<super::GroupReport>,
    },
    /// A consumer-group snapshot: every group with its consumers and PEL.
    GroupSnapshot {
        /// The generation in its header (0 when it does not read).
        generation: u64,
        /// Every group it holds.
        groups: Vec<super::GroupReport>,
    },
    /// A meta journal: its frames, and the metadata they build on an empty state.
    MetaJournal {
        /// The generation in the file name.
        generation: u64,
        /// Its good frames, in order.
        frames: Vec<FrameReport>,
        /// The metadata its frames build.
        meta: MetaReport,
    },
    /// A checkpoint: the recovery point and the metadata it holds (`None` and empty when it
    /// does not read).
    Checkpoint {
        /// Its main fields.
        checkpoint: Option<CheckpointReport>,
        /// The metadata it holds.
        meta: MetaReport,
    },
}

impl FileContent {
    /// A short name for the kind of file.
    pub fn kind(&self) -> &'static str {
        match self {
            FileContent::Segment(_) => "segment",
            FileContent::GroupJournal { .. } => "group journal",
            FileContent::GroupSnapshot { .. } => "group snapshot",
            FileContent::MetaJournal { .. } => "meta journal",
            FileContent::Checkpoint { .. } => "checkpoint",
        }
    }
}

/// One good frame of a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameReport {
    /// Byte position of the frame in the file.
    pub pos: u64,
    /// Payload bytes.
    pub len: usize,
    /// The event's name, as `storage-format.md` calls it.
    pub event: &'static str,
    /// What the event says, in a line.
    pub detail: String,
}

/// A file read alone.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file.
    pub file: PathBuf,
    /// What it holds.
    pub content: FileContent,
    /// What is wrong with it.
    pub findings: Vec<Finding>,
}

/// Reads one file of a stream directory on its own, recognising it by its name; for a segment,
/// calls `visit` for every record and damaged region.
pub fn inspect_file(path: &Path, visit: &mut Visitor<'_>) -> Result<FileReport, InspectError> {
    if let Err(source) = std::fs::metadata(path) {
        return Err(InspectError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    let mut findings = Vec::new();
    let content = if name.ends_with(&format!(".{}", names::SEGMENT_EXTENSION)) {
        segment(path, name, visit, &mut findings)
    } else if name == GROUP_SNAPSHOT_FILE {
        group_snapshot(path, &mut findings)
    } else if let Some(generation) = names::group_journal_generation(name) {
        group_journal(path, generation, &mut findings)
    } else if let Some(generation) = names::meta_journal_generation(name) {
        meta_journal(path, generation, &mut findings)
    } else if name == CHECKPOINT_FILE {
        checkpoint(path, &mut findings)
    } else {
        return Err(InspectError::NotADataDirectory {
            path: path.to_path_buf(),
            detail: format!(
                "not a file queue-dump reads on its own: give a data directory, a segment (`.seg`), \
                 `{GROUP_SNAPSHOT_FILE}`, `groups.N.journal`, `meta.N.journal` or `{CHECKPOINT_FILE}`"
            ),
        });
    };
    Ok(FileReport {
        file: path.to_path_buf(),
        content,
        findings,
    })
}

fn segment(
    path: &Path,
    name: &str,
    visit: &mut Visitor<'_>,
    findings: &mut Vec<Finding>,
) -> FileContent {
    let meta = MetaState::default();
    let context = ScanContext {
        name_base: names::segment_base(name),
        next_base: None,
        is_last: true,
        name_in_stream: false,
        closed_cleanly: true,
        meta: &meta,
        rp_segment_base: None,
    };
    let mut live = Live::default();
    let outcome = scan_segment(path, &context, findings, &mut live, visit);
    if !outcome.stopped {
        let bytes = outcome.report.allocated_bytes;
        visit(super::ScanEvent::SegmentDone { file: path, bytes });
    }
    FileContent::Segment(outcome.report)
}

/// Group reports for a state read without its stream: lags are unknown.
fn groups_alone(state: &GroupsState) -> Vec<super::GroupReport> {
    let mut groups = group_reports(state, &FactsOnly(StreamFacts::default()));
    for group in &mut groups {
        group.lag = None;
    }
    groups
}

fn group_snapshot(path: &Path, findings: &mut Vec<Finding>) -> FileContent {
    // No generation when the snapshot does not read (reported) or was replaced meanwhile.
    let (state, generation) = read_group_snapshot_state(path, findings);
    FileContent::GroupSnapshot {
        generation: generation.unwrap_or(0),
        groups: groups_alone(&state),
    }
}

/// Each good frame of a journal as a report line, with `describe` naming its event.
fn frame_reports<E>(
    events: &JournalEvents<E>,
    describe: impl Fn(&E) -> (&'static str, String),
) -> Vec<FrameReport> {
    events
        .events
        .iter()
        .map(|logged| {
            let (event, detail) = describe(&logged.event);
            FrameReport {
                pos: logged.pos,
                len: logged.len,
                event,
                detail,
            }
        })
        .collect()
}

fn group_journal(path: &Path, generation: u64, findings: &mut Vec<Finding>) -> FileContent {
    let events = read_journal(path, GROUP_JOURNAL_KIND, group_events, true, None, findings);
    let mut state = GroupsState::new();
    let frames = match &events {
        Some(events) => {
            events.iter().for_each(|event| state.apply(event));
            frame_reports(events, |event| {
                (group_event_name(event), group_event_detail(event))
            })
        }
        None => Vec::new(),
    };
    let header_generation = events.map_or(0, |events| events.generation);
    check_generation(path, generation, header_generation, findings);
    FileContent::GroupJournal {
        generation,
        frames,
        groups: groups_alone(&state),
    }
}

fn meta_journal(path: &Path, generation: u64, findings: &mut Vec<Finding>) -> FileContent {
    let events = read_journal(path, META_JOURNAL_KIND, meta_events, true, None, findings);
    let (frames, meta) = match &events {
        Some(events) => (
            frame_reports(events, meta_event_text),
            replay_meta(&MetaState::default(), events),
        ),
        None => (Vec::new(), MetaState::default()),
    };
    let header_generation = events.map_or(0, |events| events.generation);
    check_generation(path, generation, header_generation, findings);
    FileContent::MetaJournal {
        generation,
        frames,
        meta: MetaReport::from(&meta),
    }
}

/// A journal whose header disagrees with its name is not the one the engine would read.
fn check_generation(path: &Path, named: u64, header: u64, findings: &mut Vec<Finding>) {
    if header != 0 && header != named {
        findings.push(damage(
            path,
            Some(16),
            format!("the header says generation {header}, the file name says {named}"),
        ));
    }
}

fn checkpoint(path: &Path, findings: &mut Vec<Finding>) -> FileContent {
    let (checkpoint, _) = read_checkpoint_file(path, findings);
    FileContent::Checkpoint {
        checkpoint: checkpoint.as_ref().map(CheckpointReport::of),
        meta: checkpoint.map_or_else(MetaReport::default, |c| MetaReport::from(&c.meta)),
    }
}

fn group_event_name(event: &GroupEvent) -> &'static str {
    match event {
        GroupEvent::GroupCreated { .. } => "group-created",
        GroupEvent::GroupDestroyed { .. } => "group-destroyed",
        GroupEvent::GroupIdSet { .. } => "group-id-set",
        GroupEvent::PolicySet { .. } => "policy-set",
        GroupEvent::ConsumerCreated { .. } => "consumer-created",
        GroupEvent::ConsumerDeleted { .. } => "consumer-deleted",
        GroupEvent::ConsumerSeen { .. } => "consumer-seen",
        GroupEvent::NewDelivered { .. } => "new-delivered",
        GroupEvent::Redelivered { .. } => "redelivered",
        GroupEvent::Reread { .. } => "reread",
        GroupEvent::Claimed { .. } => "claimed",
        GroupEvent::Acked { .. } => "acked",
        GroupEvent::Nacked { .. } => "nacked",
        GroupEvent::DeadLettered { .. } => "dead-lettered",
        GroupEvent::Dropped { .. } => "dropped",
        GroupEvent::Exhausted { .. } => "exhausted",
        GroupEvent::PendingRestored { .. } => "pending-restored",
    }
}

fn ids_text(ids: impl IntoIterator<Item = StreamId>) -> String {
    let mut out = String::new();
    for (i, id) in ids.into_iter().enumerate() {
        let _ = write!(out, "{}{id}", if i == 0 { "" } else { " " });
    }
    out
}

/// The group, the consumer when the event names one, and the IDs it concerns.
fn group_event_detail(event: &GroupEvent) -> String {
    let mut out = format!("group {}", quoted(event.group()));
    let (consumer, ids) = match event {
        GroupEvent::GroupCreated { last_delivered, .. }
        | GroupEvent::GroupIdSet { last_delivered, .. } => {
            (None, format!("last-delivered {last_delivered}"))
        }
        GroupEvent::GroupDestroyed { .. } | GroupEvent::PolicySet { .. } => (None, String::new()),
        GroupEvent::ConsumerCreated { consumer, .. }
        | GroupEvent::ConsumerDeleted { consumer, .. }
        | GroupEvent::ConsumerSeen { consumer, .. } => (Some(consumer), String::new()),
        GroupEvent::NewDelivered {
            consumer, entries, ..
        }
        | GroupEvent::Claimed {
            consumer, entries, ..
        } => (Some(consumer), ids_text(entries.iter().map(|&(id, _)| id))),
        GroupEvent::Redelivered { consumer, ids, .. }
        | GroupEvent::Reread { consumer, ids, .. } => {
            (Some(consumer), ids_text(ids.iter().copied()))
        }
        GroupEvent::Acked { ids, .. }
        | GroupEvent::Nacked { ids, .. }
        | GroupEvent::DeadLettered { ids, .. }
        | GroupEvent::Dropped { ids, .. }
        | GroupEvent::Exhausted { ids, .. } => (None, ids_text(ids.iter().copied())),
        GroupEvent::PendingRestored {
            consumer, entries, ..
        } => (Some(consumer), ids_text(entries.iter().map(|e| e.id))),
    };
    if let Some(consumer) = consumer {
        let _ = write!(out, " consumer {}", quoted(consumer));
    }
    if !ids.is_empty() {
        let _ = write!(out, " {ids}");
    }
    out
}

fn meta_event_text(event: &MetaEvent) -> (&'static str, String) {
    match event {
        MetaEvent::Delete {
            offsets,
            max_deleted_id,
        } => (
            "delete",
            format!("offsets {offsets:?} max-deleted-id {max_deleted_id}"),
        ),
        MetaEvent::Trim { first_offset } => ("trim", format!("first offset {first_offset}")),
        MetaEvent::SetLastId { id } => ("set-last-id", format!("last ID {id}")),
        MetaEvent::SetEntriesAdded {
            value,
            at_next_offset,
        } => (
            "set-entries-added",
            format!("entries-added {value} at next offset {at_next_offset}"),
        ),
        MetaEvent::SetMaxDeletedId { id } => ("set-max-deleted-id", format!("max-deleted-id {id}")),
        MetaEvent::SetRetention(retention) => (
            "set-retention",
            format!(
                "max-age {} max-bytes {}",
                retention
                    .max_age_ms
                    .map_or_else(|| "none".into(), |ms| format!("{ms} ms")),
                retention
                    .max_bytes
                    .map_or_else(|| "none".into(), |b| b.to_string())
            ),
        ),
        MetaEvent::SetAttributes(attributes) => (
            "set-attributes",
            format!("{} bytes of stream settings", attributes.len()),
        ),
    }
}
