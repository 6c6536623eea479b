//! JSON output. Field names are part of the tool's interface (README, "JSON documents"):
//! add fields, never rename or remove one.

use std::path::Path;

use serde_json::{Value, json};
use weir::group::GroupPolicy;
use weir::inspect::{
    self, FileContent, FileReport, Finding, FrameReport, GroupReport, Inspection, MetaReport,
    RecordReport, SegmentReport, Severity, StreamReport,
};

use super::severity_counts;
use crate::format::escape;
#[cfg(feature = "cluster")]
use weir::cluster::wal::{WalFileInspection, WalLogId};
#[cfg(feature = "cluster")]
use weir::inspect::{RaftEntryReport, RaftFileReport, RaftReport};

fn finding_json(finding: &Finding) -> Value {
    json!({
        "severity": finding.severity.label(),
        "file": finding.file.display().to_string(),
        "position": finding.position,
        "detail": finding.detail,
    })
}

pub(crate) fn findings_json<'f>(findings: impl Iterator<Item = &'f Finding>) -> Value {
    findings.map(finding_json).collect()
}

fn segment_json(segment: &SegmentReport) -> Value {
    json!({
        "file": segment.file.display().to_string(),
        "base_offset": segment.base_offset,
        "header_ok": segment.header_ok,
        "header_rebuildable": segment.header_rebuildable,
        "active": segment.active,
        "records": segment.records,
        "deleted": segment.deleted,
        "first_offset": segment.first.map(|(o, _)| o),
        "first_id": segment.first.map(|(_, id)| id.to_string()),
        "last_offset": segment.last.map(|(o, _)| o),
        "last_id": segment.last.map(|(_, id)| id.to_string()),
        "used_bytes": segment.used_bytes,
        "allocated_bytes": segment.allocated_bytes,
        "damaged_regions": segment.damaged_regions,
        "index": segment.index,
    })
}

fn policy_json(policy: &GroupPolicy) -> Value {
    json!({
        "ack_wait_ms": policy.ack_wait_ms,
        "max_deliver": policy.max_deliver,
        "dead_letter": policy.dead_letter.as_deref().map(escape),
        "max_ack_pending": policy.max_ack_pending,
    })
}

/// A group; with `pending`, its PEL under `pending_entries`.
pub(crate) fn group_json(group: &GroupReport, pending: bool) -> Value {
    let mut value = json!({
        "name": escape(&group.name),
        "last_delivered": group.last_delivered.to_string(),
        "entries_read": group.entries_read,
        "lag": group.lag,
        "pending": group.pending,
        "exhausted": group.exhausted,
        "oldest_delivery_ms": group.oldest_delivery_ms,
        "policy": policy_json(&group.policy),
        "consumers": group.consumers.iter().map(|c| json!({
            "name": escape(&c.name),
            "pending": c.pending,
            "seen_ms": c.seen_ms,
            "active_ms": c.active_ms,
        })).collect::<Vec<_>>(),
    });
    if pending {
        value["pending_entries"] = group
            .pel
            .iter()
            .map(|entry| {
                json!({
                    "id": entry.id.to_string(),
                    "consumer": escape(&entry.consumer),
                    "delivered_ms": entry.delivered_ms,
                    "deliveries": entry.deliveries,
                })
            })
            .collect();
    }
    value
}

pub(crate) fn stream_json(stream: &StreamReport) -> Value {
    let totals = &stream.totals;
    json!({
        "name": stream.name.as_deref().map(escape),
        "directory": stream.dir.display().to_string(),
        "length": totals.length,
        "entries_added": totals.entries_added,
        "first_offset": totals.first_offset,
        "next_offset": totals.next_offset,
        "first_id": totals.first_id.map(|id| id.to_string()),
        "last_id": totals.last_id.to_string(),
        "max_deleted_id": totals.max_deleted_id.to_string(),
        "deleted": totals.deleted,
        "retention": {
            "max_age_ms": totals.retention.max_age_ms,
            "max_bytes": totals.retention.max_bytes,
        },
        "settings": stream.settings.map(|s| json!({
            "work_queue": s.work_queue,
            "idempotency_duration_ms": s.idempotency_duration_ms,
            "idempotency_max_size": s.idempotency_max_size,
            "max_len": s.max_len,
            "max_bytes": s.max_bytes,
            "discard": s.discard.as_str(),
            "expire_idle_ms": s.expire_idle_ms,
        })),
        "idempotency": stream.idempotency.map(|(producers, keys)| json!({
            "producers": producers,
            "keys": keys,
        })),
        "checkpoint": stream.checkpoint.map(|c| checkpoint_json(&c)),
        "segments": stream.segments.iter().map(segment_json).collect::<Vec<_>>(),
        "groups": stream.groups.iter().map(|g| group_json(g, false)).collect::<Vec<_>>(),
        "findings": findings_json(stream.findings.iter()),
    })
}

fn checkpoint_json(c: &inspect::CheckpointReport) -> Value {
    json!({
        "clean": c.clean,
        "journal_generation": c.journal_generation,
        "segment_base": c.segment_base,
        "pos": c.pos,
        "next_offset": c.next_offset,
        "last_id": c.last_id.to_string(),
    })
}

pub(crate) fn inspection_json(inspection: &Inspection, verify: bool) -> Value {
    let value = json!({
        "directory": inspection.dir.display().to_string(),
        "closed_cleanly": inspection.closed_cleanly,
        "verified": verify,
        "damage": inspection.count(Severity::Damage),
        "unreadable": inspection.count(Severity::Unreadable),
        "streams": inspection.streams.iter().map(stream_json).collect::<Vec<_>>(),
        "findings": findings_json(inspection.findings.iter()),
    });
    with_raft(value, inspection)
}

/// The summary with its `raft` field: the node's Raft log, or null.
#[cfg(feature = "cluster")]
fn with_raft(mut value: Value, inspection: &Inspection) -> Value {
    value["raft"] = inspection.raft.as_ref().map_or(Value::Null, raft_json);
    value
}

/// A build without the cluster layer reads no Raft log (a finding says so).
#[cfg(not(feature = "cluster"))]
fn with_raft(value: Value, _inspection: &Inspection) -> Value {
    value
}

/// An entry's position: index, term, leader.
#[cfg(feature = "cluster")]
fn log_id_json(id: Option<WalLogId>) -> Value {
    id.map_or(
        Value::Null,
        |id| json!({ "index": id.index, "term": id.term, "leader": id.leader }),
    )
}

#[cfg(feature = "cluster")]
fn raft_file_json(file: &WalFileInspection) -> Value {
    json!({
        "file": file.path.display().to_string(),
        "first_index": file.first_index,
        "last_index": file.last.map(|last| last.index),
        "entries": file.entries,
        "used_bytes": file.used_bytes,
        "bytes": file.bytes,
    })
}

/// A node's Raft log: files, vote, commit and purge points, last log id, snapshot, findings.
#[cfg(feature = "cluster")]
pub(crate) fn raft_json(raft: &RaftReport) -> Value {
    json!({
        "directory": raft.dir.display().to_string(),
        "files": raft.files.iter().map(raft_file_json).collect::<Vec<_>>(),
        "vote": raft.vote.map(|vote| json!({
            "term": vote.term,
            "node": vote.node,
            "committed": vote.committed,
        })),
        "committed": log_id_json(raft.committed),
        "purged": log_id_json(raft.purged),
        "last_log_id": log_id_json(raft.last_log_id),
        "snapshot": raft.snapshot.as_ref().map(|snapshot| json!({
            "last_log_id": log_id_json(snapshot.last_log_id),
            "data_file": snapshot.data_file.display().to_string(),
            "data_len": snapshot.data_len,
            "data_bytes": snapshot.data_bytes,
            "archive_files": snapshot.archive_files,
        })),
        "findings": findings_json(raft.findings.iter()),
    })
}

/// `DIR/raft` given as the path: the log alone.
#[cfg(feature = "cluster")]
pub(crate) fn raft_dir_json(raft: &RaftReport, verify: bool) -> Value {
    let (damage, unreadable) = severity_counts(raft.findings.iter());
    json!({
        "directory": raft.dir.display().to_string(),
        "verified": verify,
        "damage": damage,
        "unreadable": unreadable,
        "raft": raft_json(raft),
    })
}

/// One Raft log file given as the path.
#[cfg(feature = "cluster")]
pub(crate) fn raft_log_file_json(path: &Path, report: &RaftFileReport) -> Value {
    let (damage, unreadable) = severity_counts(report.findings.iter());
    json!({
        "file": path.display().to_string(),
        "kind": "raft log",
        "damage": damage,
        "unreadable": unreadable,
        "findings": findings_json(report.findings.iter()),
        "raft_file": report.file.as_ref().map(raft_file_json),
        "committed": log_id_json(report.committed),
    })
}

/// One entry of a Raft log listing.
#[cfg(feature = "cluster")]
pub(crate) fn raft_entry_json(entry: &RaftEntryReport) -> Value {
    json!({
        "file": entry.file.display().to_string(),
        "index": entry.id.index,
        "term": entry.id.term,
        "leader": entry.id.leader,
        "kind": entry.kind,
        "data_len": entry.data_len,
    })
}

pub(crate) fn record_json(
    file: &Path,
    pos: usize,
    record: &RecordReport,
    state: &str,
    hex: bool,
) -> Value {
    let mut value = json!({
        "file": file.display().to_string(),
        "pos": pos,
        "offset": record.offset,
        "id": record.id.to_string(),
        "timestamp_ms": record.timestamp_ms,
        "size": record.size,
        "crc": "ok",
        "state": state,
        "idempotency": record.idempotency.as_ref().map(|key| json!({
            "producer": escape(&key.producer),
            "iid": escape(&key.iid),
        })),
        "headers": record.headers.iter().map(|(name, value)| json!([escape(name), escape(value)])).collect::<Vec<_>>(),
        "body": escape(&record.body),
    });
    if hex {
        value["body_hex"] = record
            .body
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into();
    }
    value
}

/// A damaged region met while listing records.
pub(crate) fn damaged_json(file: &Path, pos: usize, end: usize, error: &str) -> Value {
    json!({
        "file": file.display().to_string(),
        "pos": pos,
        "end": end,
        "crc": "bad",
        "error": error,
    })
}

fn meta_json(meta: &MetaReport) -> Value {
    json!({
        "first_offset": meta.first_offset,
        "deleted_offsets": meta.deleted.iter().collect::<Vec<_>>(),
        "max_deleted_id": meta.max_deleted_id.to_string(),
        "last_id_floor": meta.last_id_floor.to_string(),
        "entries_added": meta.entries_added.map(|(value, at)| json!({
            "value": value,
            "at_next_offset": at,
        })),
        "retention": {
            "max_age_ms": meta.retention.max_age_ms,
            "max_bytes": meta.retention.max_bytes,
        },
    })
}

fn frames_json(frames: &[FrameReport]) -> Value {
    frames
        .iter()
        .map(|frame| {
            json!({
                "pos": frame.pos,
                "len": frame.len,
                "event": frame.event,
                "detail": frame.detail,
            })
        })
        .collect()
}

pub(crate) fn file_json(report: &FileReport) -> Value {
    let (damage, unreadable) = severity_counts(report.findings.iter());
    let mut value = json!({
        "file": report.file.display().to_string(),
        "kind": report.content.kind(),
        "damage": damage,
        "unreadable": unreadable,
        "findings": findings_json(report.findings.iter()),
    });
    let groups =
        |groups: &[GroupReport]| -> Value { groups.iter().map(|g| group_json(g, true)).collect() };
    match &report.content {
        FileContent::Segment(segment) => value["segment"] = segment_json(segment),
        FileContent::GroupJournal {
            generation,
            frames,
            groups: built,
        } => {
            value["generation"] = (*generation).into();
            value["frames"] = frames_json(frames);
            value["groups"] = groups(built);
        }
        FileContent::GroupSnapshot {
            generation,
            groups: held,
        } => {
            value["generation"] = (*generation).into();
            value["groups"] = groups(held);
        }
        FileContent::MetaJournal {
            generation,
            frames,
            meta,
        } => {
            value["generation"] = (*generation).into();
            value["frames"] = frames_json(frames);
            value["meta"] = meta_json(meta);
        }
        FileContent::Checkpoint { checkpoint, meta } => {
            value["checkpoint"] = checkpoint.as_ref().map_or(Value::Null, checkpoint_json);
            value["meta"] = meta_json(meta);
        }
    }
    value
}
