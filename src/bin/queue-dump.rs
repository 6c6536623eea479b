//! `queue-dump`: inspect and verify a weir data directory without writing or locking anything,
//! so it is safe to run beside a live server.
//!
//! * `queue-dump DIR`: every stream with its segments, totals and consumer groups;
//! * `queue-dump --verify DIR`: reads every byte and reports each damaged region with its file
//!   and position; exits 0 when clean, 1 when damage was found, 2 when it could not run;
//! * `queue-dump DIR --stream KEY [--from ID] [--count N] [--hex]`: a stream's entries;
//! * `queue-dump FILE.seg [--records] [--hex]`: one segment file on its own.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use serde_json::{Value, json};
use weir::group::GroupPolicy;
use weir::inspect::{
    self, Finding, InspectError, Inspection, SegmentReport, Severity, StreamReport, escape,
    format_ms, hex_dump, quoted, unescape,
};
use weir::record::RecordView;
use weir::{StreamConfig, StreamId};

/// Inspect and verify a weir data directory (read-only: safe beside a live server).
#[derive(Debug, Parser)]
#[command(name = "queue-dump", version)]
struct Args {
    /// Data directory, or a single `.seg` segment file.
    path: PathBuf,
    /// Read every byte and report damage; exit 0 when clean, 1 when damage was found.
    #[arg(long, conflicts_with = "stream")]
    verify: bool,
    /// List the entries of the stream with this name (as is, or escaped as the summary shows
    /// it, e.g. `audit\x00log`).
    #[arg(long, value_name = "KEY")]
    stream: Option<OsString>,
    /// With --stream: start at the first entry whose ID is at least this one (`ms-seq` or `ms`).
    #[arg(long, value_name = "ID", requires = "stream")]
    from: Option<StreamId>,
    /// With --stream: list at most this many entries.
    #[arg(long, value_name = "N", requires = "stream")]
    count: Option<usize>,
    /// With a .seg file: print each record with its headers and body (--stream always does).
    #[arg(long)]
    records: bool,
    /// Print bodies as a hex dump instead of escaped text.
    #[arg(long)]
    hex: bool,
    /// Print the summary or the verification as JSON.
    #[arg(long, conflicts_with = "stream")]
    json: bool,
}

const EXIT_CLEAN: u8 = 0;
const EXIT_DAMAGE: u8 = 1;
const EXIT_FAILED: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    let result = if args.path.is_file() {
        dump_segment_file(&args)
    } else if let Some(stream) = &args.stream {
        dump_stream(&args, stream.as_bytes())
    } else if args.records {
        Err(InspectError::NotADataDirectory {
            path: args.path.clone(),
            detail: "--records needs --stream KEY, or a .seg file instead of a directory".into(),
        })
    } else {
        summary_or_verify(&args)
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("queue-dump: {error}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn summary_or_verify(args: &Args) -> Result<u8, InspectError> {
    let inspection = inspect::inspect(&args.path)?;
    let damage = inspection.count(Severity::Damage);
    let unreadable = inspection.count(Severity::Unreadable);
    let mut out = String::new();
    if args.json {
        let value = inspection_json(&inspection, args.verify);
        out.push_str(&serde_json::to_string_pretty(&value).unwrap_or_default());
        out.push('\n');
    } else if args.verify {
        verify_text(&inspection, &mut out);
    } else {
        summary_text(&inspection, &mut out);
    }
    print(&out);
    if unreadable > 0 {
        eprintln!("queue-dump: {unreadable} file(s) could not be read; the check is incomplete");
        return Ok(EXIT_FAILED);
    }
    Ok(if args.verify && damage > 0 {
        EXIT_DAMAGE
    } else {
        EXIT_CLEAN
    })
}

fn print(text: &str) {
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn stream_label(stream: &StreamReport) -> String {
    match &stream.name {
        Some(name) => quoted(name),
        None => "(name unreadable)".into(),
    }
}

fn file_name(path: &Path) -> String {
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

fn settings_text(settings: &StreamConfig) -> String {
    format!(
        "work-queue {}, idempotency window {}, {}",
        if settings.work_queue { "on" } else { "off" },
        settings
            .idempotency_duration_ms
            .map_or_else(|| "default duration".into(), |ms| format!("{ms} ms")),
        settings
            .idempotency_max_size
            .map_or_else(|| "default size".into(), |n| format!("{n} keys"))
    )
}

fn segment_line(segment: &SegmentReport) -> String {
    if !segment.header_ok {
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
        "{}  base {}  {}  records {}  bytes {}/{}  index {}",
        file_name(&segment.file),
        segment.base_offset,
        range,
        segment.records,
        segment.used_bytes,
        segment.allocated_bytes,
        segment.index
    );
    if segment.damaged_regions > 0 {
        line.push_str(&format!("  damaged regions {}", segment.damaged_regions));
    }
    line
}

fn summary_text(inspection: &Inspection, out: &mut String) {
    out.push_str(&format!(
        "data directory {} ({}), {} stream(s)\n",
        inspection.dir.display(),
        if inspection.closed_cleanly {
            "closed cleanly"
        } else {
            "no clean-close marker: open now, or not closed cleanly"
        },
        inspection.streams.len()
    ));
    for stream in &inspection.streams {
        let totals = &stream.totals;
        out.push_str(&format!(
            "\nstream {}  (directory {})\n",
            stream_label(stream),
            file_name(&stream.dir)
        ));
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
        if let Some(settings) = &stream.settings {
            out.push_str(&format!("  settings: {}\n", settings_text(settings)));
        }
        if let Some((producers, keys)) = stream.idempotency {
            out.push_str(&format!(
                "  idempotency snapshot: {producers} producer(s), {keys} key(s)\n"
            ));
        }
        if let Some(c) = &stream.checkpoint {
            out.push_str(&format!(
                "  checkpoint: {}, meta journal generation {}, recovery point segment {} byte {} next offset {} last ID {}\n",
                if c.clean { "clean" } else { "not clean" },
                c.journal_generation,
                c.segment_base,
                c.pos,
                c.next_offset,
                c.last_id
            ));
        }
        out.push_str(&format!("  segments ({}):\n", stream.segments.len()));
        for segment in &stream.segments {
            out.push_str(&format!("    {}\n", segment_line(segment)));
        }
        out.push_str(&format!("  groups ({}):\n", stream.groups.len()));
        for group in &stream.groups {
            out.push_str(&format!(
                "    {}  last-delivered {}  entries-read {}  lag {}  pending {}  policy {}\n",
                quoted(&group.name),
                group.last_delivered,
                opt_u64(group.entries_read),
                opt_u64(group.lag),
                group.pending,
                policy_text(&group.policy)
            ));
            for consumer in &group.consumers {
                out.push_str(&format!(
                    "      consumer {}  pending {}  seen {}  active {}\n",
                    quoted(&consumer.name),
                    consumer.pending,
                    format_ms(consumer.seen_ms),
                    consumer.active_ms.map_or_else(|| "never".into(), format_ms)
                ));
            }
        }
        let problems: Vec<&Finding> = stream
            .findings
            .iter()
            .filter(|f| f.severity != Severity::Note)
            .collect();
        if !problems.is_empty() {
            out.push_str(&format!(
                "  problems ({}; run --verify for every detail):\n",
                problems.len()
            ));
            for finding in problems {
                out.push_str(&format!("    {finding}\n"));
            }
        }
    }
}

fn verify_text(inspection: &Inspection, out: &mut String) {
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
    let damage = inspection.count(Severity::Damage);
    let unreadable = inspection.count(Severity::Unreadable);
    out.push_str(&format!(
        "checked {} stream(s), {segments} segment(s), {records} record(s): ",
        inspection.streams.len()
    ));
    if damage == 0 && unreadable == 0 {
        out.push_str("no damage found\n");
    } else {
        out.push_str(&format!(
            "{damage} damaged region(s) or file(s), {unreadable} unreadable file(s)\n"
        ));
    }
}

fn finding_json(finding: &Finding) -> Value {
    json!({
        "severity": finding.severity.label(),
        "file": finding.file.display().to_string(),
        "position": finding.position,
        "detail": finding.detail,
    })
}

fn segment_json(segment: &SegmentReport) -> Value {
    json!({
        "file": segment.file.display().to_string(),
        "base_offset": segment.base_offset,
        "header_ok": segment.header_ok,
        "records": segment.records,
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

fn stream_json(stream: &StreamReport) -> Value {
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
        "settings": stream.settings.map(|s| json!({
            "work_queue": s.work_queue,
            "idempotency_duration_ms": s.idempotency_duration_ms,
            "idempotency_max_size": s.idempotency_max_size,
        })),
        "idempotency": stream.idempotency.map(|(producers, keys)| json!({
            "producers": producers,
            "keys": keys,
        })),
        "checkpoint": stream.checkpoint.map(|c| json!({
            "clean": c.clean,
            "journal_generation": c.journal_generation,
            "segment_base": c.segment_base,
            "pos": c.pos,
            "next_offset": c.next_offset,
            "last_id": c.last_id.to_string(),
        })),
        "segments": stream.segments.iter().map(segment_json).collect::<Vec<_>>(),
        "groups": stream.groups.iter().map(|g| json!({
            "name": escape(&g.name),
            "last_delivered": g.last_delivered.to_string(),
            "entries_read": g.entries_read,
            "lag": g.lag,
            "pending": g.pending,
            "policy": {
                "ack_wait_ms": g.policy.ack_wait_ms,
                "max_deliver": g.policy.max_deliver,
                "dead_letter": g.policy.dead_letter.as_deref().map(escape),
                "max_ack_pending": g.policy.max_ack_pending,
            },
            "consumers": g.consumers.iter().map(|c| json!({
                "name": escape(&c.name),
                "pending": c.pending,
                "seen_ms": c.seen_ms,
                "active_ms": c.active_ms,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "findings": stream.findings.iter().map(finding_json).collect::<Vec<_>>(),
    })
}

fn inspection_json(inspection: &Inspection, verify: bool) -> Value {
    json!({
        "directory": inspection.dir.display().to_string(),
        "closed_cleanly": inspection.closed_cleanly,
        "verified": verify,
        "damage": inspection.count(Severity::Damage),
        "unreadable": inspection.count(Severity::Unreadable),
        "streams": inspection.streams.iter().map(stream_json).collect::<Vec<_>>(),
        "findings": inspection.findings.iter().map(finding_json).collect::<Vec<_>>(),
    })
}

/// Formats one record: a summary line, then its headers and body when `full`.
fn record_text(pos: usize, record: &RecordView<'_>, live: bool, full: bool, hex: bool) -> String {
    let mut out = format!(
        "offset {}  id {}  time {}  size {} bytes  byte {}{}\n",
        record.offset,
        record.id,
        format_ms(record.timestamp_ms),
        record.padded_len,
        pos,
        if live { "" } else { "  (deleted or trimmed)" }
    );
    if !full {
        return out;
    }
    if let Some(key) = &record.idempotency {
        out.push_str(&format!(
            "  idempotency: producer {} iid {}\n",
            quoted(key.producer),
            quoted(key.iid)
        ));
    }
    for (name, value) in record.headers() {
        out.push_str(&format!("  header {} = {}\n", quoted(name), quoted(value)));
    }
    if hex {
        out.push_str(&format!("  body ({} bytes):\n", record.body.len()));
        out.push_str(&hex_dump(record.body, "    "));
    } else {
        out.push_str(&format!("  body {}\n", quoted(record.body)));
    }
    out
}

fn dump_stream(args: &Args, name: &[u8]) -> Result<u8, InspectError> {
    let from = args.from.unwrap_or(StreamId::MIN);
    let mut left = args.count.unwrap_or(usize::MAX);
    let hex = args.hex;
    let mut listed = 0usize;
    let mut visit = |_: &Path, pos: usize, record: &RecordView<'_>, live: bool| {
        if left == 0 {
            return false;
        }
        if live && record.id >= from {
            print(&record_text(pos, record, live, true, hex));
            left -= 1;
            listed += 1;
        }
        left > 0
    };
    // Names are shown escaped (`\x00`); the escaped form finds the stream too.
    let report = match inspect::walk_stream(&args.path, name, &mut visit) {
        Err(InspectError::NoSuchStream { .. }) if unescape(name) != name => {
            inspect::walk_stream(&args.path, &unescape(name), &mut visit)?
        }
        other => other?,
    };
    let problems: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Note)
        .collect();
    for finding in &problems {
        eprintln!("queue-dump: {finding}");
    }
    eprintln!(
        "{listed} entries listed from stream {}",
        stream_label(&report)
    );
    Ok(EXIT_CLEAN)
}

fn dump_segment_file(args: &Args) -> Result<u8, InspectError> {
    if args.stream.is_some() {
        return Err(InspectError::NotADataDirectory {
            path: args.path.clone(),
            detail: "--stream needs a data directory, not a file".into(),
        });
    }
    let full = args.records;
    let hex = args.hex;
    let mut visit = |_: &Path, pos: usize, record: &RecordView<'_>, _: bool| {
        if full {
            print(&record_text(pos, record, true, true, hex));
        }
        true
    };
    let (segment, findings) = inspect::inspect_segment_file(&args.path, &mut visit)?;
    let damage = findings
        .iter()
        .filter(|f| f.severity == Severity::Damage)
        .count();
    if args.json {
        let value = json!({
            "segment": segment_json(&segment),
            "findings": findings.iter().map(finding_json).collect::<Vec<_>>(),
        });
        print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        ));
    } else {
        let mut out = format!("{}\n", segment_line(&segment));
        for finding in &findings {
            out.push_str(&format!("{finding}\n"));
        }
        print(&out);
    }
    Ok(if args.verify && damage > 0 {
        EXIT_DAMAGE
    } else {
        EXIT_CLEAN
    })
}
