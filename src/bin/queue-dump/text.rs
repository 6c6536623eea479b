//! Text output: one line per segment, group, consumer, record or finding.

use std::path::Path;

use weir::group::GroupPolicy;
use weir::inspect::{
    self, FileContent, FileReport, Finding, FrameReport, GroupReport, Inspection, MetaReport,
    RecordReport, SegmentReport, Severity, StreamReport,
};
use weir::{Clock, Retention, StreamConfig, StreamId, SystemClock};

use super::severity_counts;
use crate::format::{format_ms, hex_dump, quoted};
#[cfg(feature = "cluster")]
use weir::cluster::wal::{WalFileInspection, WalLogId};
#[cfg(feature = "cluster")]
use weir::inspect::{RaftEntryReport, RaftFileReport, RaftReport, SnapshotReport};

pub(crate) fn stream_label(stream: &StreamReport) -> String {
    match &stream.name {
        Some(name) => quoted(name),
        None => "(name unreadable)".into(),
    }
}

pub(crate) fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn opt_id(id: Option<StreamId>) -> String {
    id.map_or_else(|| "-".into(), |id| id.to_string())
}

fn opt_u64(value: Option<u64>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

fn policy_text(policy: &GroupPolicy) -> String {
    if *policy == GroupPolicy::default() {
        return "default".into();
    }
    let mut parts = Vec::new();
    if let Some(ms) = policy.ack_wait_ms {
        parts.push(format!("ack-wait {ms} ms"));
    }
    if let Some(max) = policy.max_deliver {
        parts.push(format!("max-deliver {max}"));
    }
    if let Some(stream) = &policy.dead_letter {
        parts.push(format!("dead-letter {}", quoted(stream)));
    }
    if let Some(max) = policy.max_ack_pending {
        parts.push(format!("max-ack-pending {max}"));
    }
    parts.join(", ")
}

fn retention_text(retention: &Retention) -> String {
    format!(
        "max-age {}, max-bytes {}",
        retention
            .max_age_ms
            .map_or_else(|| "none".into(), |ms| format!("{ms} ms")),
        retention
            .max_bytes
            .map_or_else(|| "none".into(), |bytes| bytes.to_string())
    )
}

fn settings_text(settings: &StreamConfig) -> String {
    let limit = |value: Option<u64>, unit: &str| {
        value.map_or_else(|| "none".into(), |n| format!("{n}{unit}"))
    };
    format!(
        "work-queue {}, idempotency window {}, {}, max-len {}, max-bytes {}, discard {}, expire-idle {}",
        if settings.work_queue { "on" } else { "off" },
        settings
            .idempotency_duration_ms
            .map_or_else(|| "default duration".into(), |ms| format!("{ms} ms")),
        settings
            .idempotency_max_size
            .map_or_else(|| "default size".into(), |n| format!("{n} keys")),
        limit(settings.max_len, ""),
        limit(settings.max_bytes, ""),
        settings.discard.as_str(),
        settings
            .expire_idle_ms
            .map_or_else(|| "never".into(), |ms| format!("{ms} ms")),
    )
}

fn segment_line(segment: &SegmentReport) -> String {
    if !segment.header_ok && !segment.header_rebuildable {
        return format!(
            "{}  bad header, {} bytes",
            file_name(&segment.file),
            segment.allocated_bytes
        );
    }
    let range = match (segment.first, segment.last) {
        (Some((first_offset, first_id)), Some((last_offset, last_id))) => {
            format!("offsets {first_offset}..={last_offset}  IDs {first_id}..={last_id}")
        }
        _ => "no records".into(),
    };
    let mut line = format!(
        "{}  base {}  {}  records {}  deleted {}  bytes {}/{}{}  index {}",
        file_name(&segment.file),
        segment.base_offset,
        range,
        segment.records,
        segment.deleted,
        segment.used_bytes,
        segment.allocated_bytes,
        match segment.active {
            Some(true) => "  active",
            Some(false) => "  sealed",
            None => "",
        },
        segment.index
    );
    if segment.damaged_regions > 0 {
        line.push_str(&format!("  damaged regions {}", segment.damaged_regions));
    }
    line
}

pub(crate) fn summary_text(inspection: &Inspection) -> String {
    let mut out = format!(
        "data directory {} ({}), {} stream(s)\n",
        inspection.dir.display(),
        if inspection.closed_cleanly {
            "closed cleanly"
        } else {
            "no clean-close marker: open now, or not closed cleanly"
        },
        inspection.streams.len()
    );
    for stream in &inspection.streams {
        out.push('\n');
        out.push_str(&stream_text(stream));
    }
    #[cfg(feature = "cluster")]
    if let Some(raft) = &inspection.raft {
        out.push('\n');
        out.push_str(&raft_text(raft));
    }
    out
}

/// A stream's totals, settings, segments, groups and problems.
pub(crate) fn stream_text(stream: &StreamReport) -> String {
    let totals = &stream.totals;
    let mut out = format!(
        "stream {}  (directory {})\n",
        stream_label(stream),
        file_name(&stream.dir)
    );
    out.push_str(&format!(
        "  length {}  entries-added {}  first-id {}  last-id {}  max-deleted-id {}\n",
        totals.length,
        totals.entries_added,
        opt_id(totals.first_id),
        totals.last_id,
        totals.max_deleted_id
    ));
    out.push_str(&format!(
        "  offsets {}..{}  deleted {}\n",
        totals.first_offset, totals.next_offset, totals.deleted
    ));
    out.push_str(&format!(
        "  retention: {}\n",
        retention_text(&totals.retention)
    ));
    if let Some(settings) = &stream.settings {
        out.push_str(&format!("  settings: {}\n", settings_text(settings)));
    }
    if let Some((producers, keys)) = stream.idempotency {
        out.push_str(&format!(
            "  idempotency snapshot: {producers} producer(s), {keys} key(s)\n"
        ));
    }
    if let Some(c) = &stream.checkpoint {
        out.push_str(&format!("  checkpoint: {}\n", checkpoint_text(c)));
    }
    out.push_str(&format!("  segments ({}):\n", stream.segments.len()));
    for segment in &stream.segments {
        out.push_str(&format!("    {}\n", segment_line(segment)));
    }
    out.push_str(&format!("  groups ({}):\n", stream.groups.len()));
    for group in &stream.groups {
        out.push_str(&format!("    {}\n", group_line(group)));
        for consumer in &group.consumers {
            out.push_str(&format!("      {}\n", consumer_line(consumer)));
        }
    }
    out.push_str(&problems_text(&stream.findings));
    out
}

/// The findings that are not notes, one a line under a count.
fn problems_text(findings: &[Finding]) -> String {
    let problems: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity != Severity::Note)
        .collect();
    let mut out = String::new();
    if !problems.is_empty() {
        out.push_str(&format!(
            "  problems ({}; run --verify for every detail):\n",
            problems.len()
        ));
        for finding in problems {
            out.push_str(&format!("    {finding}\n"));
        }
    }
    out
}

fn group_line(group: &GroupReport) -> String {
    format!(
        "{}  last-delivered {}  entries-read {}  lag {}  pending {}  policy {}",
        quoted(&group.name),
        group.last_delivered,
        opt_u64(group.entries_read),
        opt_u64(group.lag),
        group.pending,
        policy_text(&group.policy)
    )
}

fn consumer_line(consumer: &inspect::ConsumerReport) -> String {
    format!(
        "consumer {}  pending {}  seen {}  active {}",
        quoted(&consumer.name),
        consumer.pending,
        format_ms(consumer.seen_ms),
        consumer.active_ms.map_or_else(|| "never".into(), format_ms)
    )
}

/// One group in full: counters, policy, consumers and, with `pending`, the PEL.
pub(crate) fn group_text(group: &GroupReport, pending: bool, now_ms: u64) -> String {
    let mut out = format!("group {}\n", quoted(&group.name));
    out.push_str(&format!(
        "  last-delivered {}  entries-read {}  lag {}\n",
        group.last_delivered,
        opt_u64(group.entries_read),
        opt_u64(group.lag)
    ));
    out.push_str(&format!(
        "  pending {}  exhausted {}  oldest delivery {}\n",
        group.pending,
        group.exhausted,
        group
            .oldest_delivery_ms
            .map_or_else(|| "-".into(), format_ms)
    ));
    out.push_str(&format!("  policy: {}\n", policy_text(&group.policy)));
    out.push_str(&format!("  consumers ({}):\n", group.consumers.len()));
    for consumer in &group.consumers {
        out.push_str(&format!("    {}\n", consumer_line(consumer)));
    }
    if pending {
        out.push_str(&format!("  pending entries ({}):\n", group.pel.len()));
        for entry in &group.pel {
            out.push_str(&format!(
                "    {}  consumer {}  delivered {}  idle {} ms  deliveries {}\n",
                entry.id,
                quoted(&entry.consumer),
                format_ms(entry.delivered_ms),
                now_ms.saturating_sub(entry.delivered_ms),
                entry.deliveries
            ));
        }
    }
    out
}

pub(crate) fn verify_text(inspection: &Inspection) -> String {
    let mut out = String::new();
    let segments: usize = inspection.streams.iter().map(|s| s.segments.len()).sum();
    let records: u64 = inspection
        .streams
        .iter()
        .flat_map(|s| &s.segments)
        .map(|s| s.records)
        .sum();
    for finding in inspection.all_findings() {
        out.push_str(&format!("{finding}\n"));
    }
    out.push_str(&format!(
        "checked {} stream(s), {segments} segment(s), {records} record(s)",
        inspection.streams.len()
    ));
    #[cfg(feature = "cluster")]
    if let Some(raft) = &inspection.raft {
        out.push_str(&format!(", {}", raft_checked(raft)));
    }
    out.push_str(": ");
    out.push_str(&damage_summary(inspection.all_findings()));
    out
}

/// What a check of the Raft log read: its files and entries.
#[cfg(feature = "cluster")]
fn raft_checked(raft: &RaftReport) -> String {
    let entries: u64 = raft.files.iter().map(|file| file.entries).sum();
    format!(
        "the Raft log's {} file(s) and {entries} entries",
        raft.files.len()
    )
}

/// `--verify` of `DIR/raft` given as the path.
#[cfg(feature = "cluster")]
pub(crate) fn raft_verify_text(raft: &RaftReport) -> String {
    let mut out = String::new();
    for finding in &raft.findings {
        out.push_str(&format!("{finding}\n"));
    }
    out.push_str(&format!("checked {}: ", raft_checked(raft)));
    out.push_str(&damage_summary(raft.findings.iter()));
    out
}

/// An entry's position: `index (term T, leader L)`, or `none`.
#[cfg(feature = "cluster")]
fn log_id_text(id: Option<WalLogId>) -> String {
    id.map_or_else(
        || "none".into(),
        |id| format!("{} (term {}, leader {})", id.index, id.term, id.leader),
    )
}

#[cfg(feature = "cluster")]
fn raft_file_line(file: &WalFileInspection) -> String {
    let range = match file.last {
        Some(last) => format!(
            "entries {}..={} ({})",
            file.first_index, last.index, file.entries
        ),
        None => format!("no entries (first index {})", file.first_index),
    };
    format!(
        "{}  {range}  bytes {}/{}",
        file_name(&file.path),
        file.used_bytes,
        file.bytes
    )
}

#[cfg(feature = "cluster")]
fn snapshot_text(snapshot: &SnapshotReport) -> String {
    format!(
        "last log id {}, data {} {} bytes{}",
        log_id_text(snapshot.last_log_id),
        file_name(&snapshot.data_file),
        snapshot
            .data_bytes
            .map_or_else(|| "missing".into(), |bytes| bytes.to_string()),
        snapshot
            .archive_files
            .map_or_else(String::new, |files| format!(
                ", a store archive of {files} file(s)"
            ))
    )
}

/// A node's Raft log: vote, commit and purge points, last log id, snapshot, files, problems.
#[cfg(feature = "cluster")]
pub(crate) fn raft_text(raft: &RaftReport) -> String {
    let mut out = format!("raft log {}\n", raft.dir.display());
    let vote = raft.vote.map_or_else(
        || "none".into(),
        |vote| {
            format!(
                "term {}, node {}, {}",
                vote.term,
                vote.node,
                if vote.committed {
                    "committed"
                } else {
                    "not committed"
                }
            )
        },
    );
    out.push_str(&format!("  vote: {vote}\n"));
    out.push_str(&format!(
        "  commit point: {}\n",
        log_id_text(raft.committed)
    ));
    out.push_str(&format!("  purge point: {}\n", log_id_text(raft.purged)));
    out.push_str(&format!(
        "  last log id: {}\n",
        log_id_text(raft.last_log_id)
    ));
    out.push_str(&format!(
        "  snapshot: {}\n",
        raft.snapshot
            .as_ref()
            .map_or_else(|| "none".into(), snapshot_text)
    ));
    out.push_str(&format!("  files ({}):\n", raft.files.len()));
    for file in &raft.files {
        out.push_str(&format!("    {}\n", raft_file_line(file)));
    }
    out.push_str(&problems_text(&raft.findings));
    out
}

/// One Raft log file given as the path.
#[cfg(feature = "cluster")]
pub(crate) fn raft_log_file_text(path: &Path, report: &RaftFileReport) -> String {
    let mut out = format!("raft log file {}\n", path.display());
    if let Some(file) = &report.file {
        out.push_str(&format!("  {}\n", raft_file_line(file)));
    }
    out.push_str(&format!(
        "  commit point of its directory: {}\n",
        log_id_text(report.committed)
    ));
    for finding in &report.findings {
        out.push_str(&format!("{finding}\n"));
    }
    out.push_str("checked the raft log file: ");
    out.push_str(&damage_summary(report.findings.iter()));
    out
}

/// One entry of a Raft log listing.
#[cfg(feature = "cluster")]
pub(crate) fn raft_entry_text(entry: &RaftEntryReport) -> String {
    format!(
        "index {}  term {}  leader {}  {}  data {} bytes  {}\n",
        entry.id.index,
        entry.id.term,
        entry.id.leader,
        entry.kind,
        entry.data_len,
        file_name(&entry.file)
    )
}

fn damage_summary<'f>(findings: impl Iterator<Item = &'f Finding> + Clone) -> String {
    let (damage, unreadable) = severity_counts(findings);
    if damage == 0 && unreadable == 0 {
        "no damage found\n".into()
    } else {
        format!("{damage} damaged region(s) or file(s), {unreadable} unreadable file(s)\n")
    }
}

/// One record: a summary line, then its idempotency key, headers and body.
pub(crate) fn record_text(pos: usize, record: &RecordReport, state: &str, hex: bool) -> String {
    let mut out = format!(
        "offset {}  id {}  time {}  size {} bytes  byte {}  crc ok  {}\n",
        record.offset,
        record.id,
        format_ms(record.timestamp_ms),
        record.size,
        pos,
        state
    );
    if let Some(key) = &record.idempotency {
        out.push_str(&format!(
            "  idempotency: producer {} iid {}\n",
            quoted(&key.producer),
            quoted(&key.iid)
        ));
    }
    for (name, value) in &record.headers {
        out.push_str(&format!("  header {} = {}\n", quoted(name), quoted(value)));
    }
    if hex {
        out.push_str(&format!("  body ({} bytes):\n", record.body.len()));
        out.push_str(&hex_dump(&record.body, "    "));
    } else {
        out.push_str(&format!("  body {}\n", quoted(&record.body)));
    }
    out
}

/// A damaged region met while listing records.
pub(crate) fn damaged_text(file: &Path, pos: usize, end: usize, error: &str) -> String {
    format!(
        "damaged bytes {pos}..{end} of {}: {error} (no valid record here)\n",
        file_name(file)
    )
}

fn frame_line(frame: &FrameReport) -> String {
    format!(
        "byte {}  {} bytes  {}  {}",
        frame.pos, frame.len, frame.event, frame.detail
    )
}

fn meta_text(meta: &MetaReport) -> String {
    format!(
        "  first offset {}  deleted {}  max-deleted-id {}  last-id floor {}  entries-added {}\n  retention: {}\n",
        meta.first_offset,
        meta.deleted.len(),
        meta.max_deleted_id,
        meta.last_id_floor,
        meta.entries_added.map_or_else(
            || "-".into(),
            |(value, at)| format!("{value} at next offset {at}")
        ),
        retention_text(&meta.retention)
    )
}

fn groups_text(groups: &[GroupReport]) -> String {
    let now_ms = SystemClock::new().now_ms();
    groups
        .iter()
        .map(|group| group_text(group, true, now_ms))
        .collect()
}

/// A journal's generation and each of its frames, one a line.
fn frames_text(generation: u64, frames: &[FrameReport]) -> String {
    let mut out = format!("  generation {generation}, {} frame(s):\n", frames.len());
    for frame in frames {
        out.push_str(&format!("    {}\n", frame_line(frame)));
    }
    out
}

pub(crate) fn file_text(report: &FileReport) -> String {
    let mut out = format!("{} {}\n", report.content.kind(), report.file.display());
    match &report.content {
        FileContent::Segment(segment) => out.push_str(&format!("  {}\n", segment_line(segment))),
        FileContent::GroupJournal {
            generation,
            frames,
            groups,
        } => {
            out.push_str(&frames_text(*generation, frames));
            out.push_str(
                "the groups these frames build alone (the snapshot of the same generation holds the rest):\n",
            );
            out.push_str(&groups_text(groups));
        }
        FileContent::GroupSnapshot { generation, groups } => {
            out.push_str(&format!(
                "  generation {generation}, {} group(s):\n",
                groups.len()
            ));
            out.push_str(&groups_text(groups));
        }
        FileContent::MetaJournal {
            generation,
            frames,
            meta,
        } => {
            out.push_str(&frames_text(*generation, frames));
            out.push_str("the metadata these frames change (over the checkpoint's):\n");
            out.push_str(&meta_text(meta));
        }
        FileContent::Checkpoint { checkpoint, meta } => {
            if let Some(c) = checkpoint {
                out.push_str(&format!("  {}\n", checkpoint_text(c)));
                out.push_str(&meta_text(meta));
            }
        }
    }
    for finding in &report.findings {
        out.push_str(&format!("{finding}\n"));
    }
    out.push_str(&format!("checked the {}: ", report.content.kind()));
    out.push_str(&damage_summary(report.findings.iter()));
    out
}

/// A checkpoint's cleanliness, journal generation and recovery point, on one line.
fn checkpoint_text(c: &inspect::CheckpointReport) -> String {
    format!(
        "{}, meta journal generation {}, recovery point segment {} byte {} next offset {} last ID {}",
        if c.clean { "clean" } else { "not clean" },
        c.journal_generation,
        c.segment_base,
        c.pos,
        c.next_offset,
        c.last_id
    )
}
