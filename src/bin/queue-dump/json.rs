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
    json!({
        "directory": inspection.dir.display().to_string(),
        "closed_cleanly": inspection.closed_cleanly,
        "verified": verify,
        "damage": inspection.count(Severity::Damage),
        "unreadable": inspection.count(Severity::Unreadable),
        "streams": inspection.streams.iter().map(stream_json).collect::<Vec<_>>(),
        "findings": findings_json(inspection.findings.iter()),
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
