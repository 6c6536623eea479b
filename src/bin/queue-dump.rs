//! `queue-dump`: inspect and verify a weir data directory without writing or locking anything,
//! so it is safe to run beside a live server.
//!
//! * `queue-dump DIR`: every stream with its segments, totals and consumer groups;
//! * `queue-dump --verify DIR`: reads every byte and reports each damaged region with its file
//!   and position; exits 0 when clean, 1 when damage was found, 2 when it could not run;
//! * `queue-dump DIR --stream KEY`: one stream; `--records [--from ID] [--count N] [--hex]`
//!   lists its entries;
//! * `queue-dump DIR --stream KEY --group NAME [--pending]`: one consumer group and its PEL;
//! * `queue-dump FILE`: one segment, group journal or snapshot, meta journal or checkpoint;
//! * `--json` on any form: the same as one JSON document.
//!
//! Reading and checking is the library's (`weir::inspect`); this file only formats.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use weir::group::GroupPolicy;
use weir::inspect::{
    self, FileContent, FileReport, Finding, FrameReport, GroupReport, InspectError, Inspection,
    ScanEvent, SegmentReport, Severity, StreamReport, escape, format_ms, hex_dump, quoted,
    unescape,
};
use weir::log::MetaState;
use weir::record::RecordView;
use weir::{Clock, Retention, StreamConfig, StreamId, SystemClock};

/// Inspect and verify a weir data directory (read-only: safe beside a live server).
#[derive(Debug, Parser)]
#[command(name = "queue-dump", version)]
struct Args {
    /// Data directory, or one file of a stream directory: a segment (`.seg`), `groups.snapshot`,
    /// `groups.N.journal`, `meta.N.journal` or `checkpoint`.
    path: PathBuf,
    /// Read every byte and report damage; exit 0 when clean, 1 when damage was found, 2 when
    /// it could not run.
    #[arg(long, conflicts_with = "stream")]
    verify: bool,
    /// One stream, by name (as is, or escaped as the summary shows it, e.g. `audit\x00log`).
    #[arg(long, value_name = "KEY")]
    stream: Option<OsString>,
    /// With --stream: one consumer group of the stream.
    #[arg(
        long,
        value_name = "NAME",
        requires = "stream",
        conflicts_with = "records"
    )]
    group: Option<OsString>,
    /// With --group: list every pending entry of the group.
    #[arg(long, requires = "group")]
    pending: bool,
    /// With --stream or a segment file: list every entry with its headers and body.
    #[arg(long)]
    records: bool,
    /// With --records: start at the first entry whose ID is at least this one (`ms-seq` or `ms`).
    #[arg(long, value_name = "ID", requires = "records")]
    from: Option<StreamId>,
    /// With --records: list at most this many entries.
    #[arg(long, value_name = "N", requires = "records")]
    count: Option<usize>,
    /// With --records: print bodies as a hex dump instead of escaped text.
    #[arg(long, requires = "records")]
    hex: bool,
    /// Print the same information as one JSON document.
    #[arg(long)]
    json: bool,
}

const EXIT_CLEAN: u8 = 0;
const EXIT_DAMAGE: u8 = 1;
const EXIT_FAILED: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    let result = if args.path.is_file() {
        dump_file(&args)
    } else if let Some(stream) = &args.stream {
        dump_stream(&args, stream.as_bytes())
    } else if args.records {
        Err(Failure::Usage(
            "--records needs --stream KEY, or a segment file instead of a directory".into(),
        ))
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

/// Why a run could not go on (exit code 2).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Inspect(#[from] InspectError),
    /// Arguments that do not fit together or name nothing.
    #[error("{0}")]
    Usage(String),
}

/// The exit code for a run that found these problems.
fn exit_code<'f>(args: &Args, findings: impl Iterator<Item = &'f Finding> + Clone) -> u8 {
    let (damage, unreadable) = severity_counts(findings);
    if unreadable > 0 {
        eprintln!("queue-dump: {unreadable} file(s) could not be read; the check is incomplete");
        EXIT_FAILED
    } else if args.verify && damage > 0 {
        EXIT_DAMAGE
    } else {
        EXIT_CLEAN
    }
}

fn print(text: &str) {
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn print_json(value: &Value) {
    print(&format!(
        "{}\n",
        serde_json::to_string_pretty(value).unwrap_or_default()
    ));
}

/// A progress bar over the bytes of the segments a scan reads, drawn on stderr only when it is
/// a terminal (and, for listings, only when stdout is not that terminal too).
struct Progress {
    bar: ProgressBar,
    done: u64,
}

impl Progress {
    fn new(total: u64, listing: bool) -> Self {
        let shown =
            std::io::stderr().is_terminal() && !(listing && std::io::stdout().is_terminal());
        let target = if shown {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:40}] {binary_bytes}/{binary_total_bytes} ({eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message("reading segments");
        Progress { bar, done: 0 }
    }

    fn on(&mut self, event: &ScanEvent<'_, '_>) {
        match event {
            ScanEvent::Record { pos, .. } => self.bar.set_position(self.done + *pos as u64),
            ScanEvent::Damaged { resume, .. } => self.bar.set_position(self.done + *resume as u64),
            ScanEvent::SegmentDone { bytes, .. } => {
                self.done += bytes;
                self.bar.set_position(self.done);
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn summary_or_verify(args: &Args) -> Result<u8, Failure> {
    let mut progress = Progress::new(inspect::data_bytes(&args.path)?, false);
    let inspection = inspect::inspect(&args.path, &mut |event| {
        progress.on(&event);
        true
    })?;
    drop(progress);
    if args.json {
        print_json(&inspection_json(&inspection, args.verify));
    } else if args.verify {
        print(&verify_text(&inspection));
    } else {
        print(&summary_text(&inspection));
    }
    Ok(exit_code(args, inspection.all_findings()))
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

fn summary_text(inspection: &Inspection) -> String {
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
    out
}

/// A stream's totals, settings, segments, groups and problems.
fn stream_text(stream: &StreamReport) -> String {
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
        out.push_str(&format!("    {}\n", group_line(group)));
        for consumer in &group.consumers {
            out.push_str(&format!("      {}\n", consumer_line(consumer)));
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
fn group_text(group: &GroupReport, pending: bool, now_ms: u64) -> String {
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

fn verify_text(inspection: &Inspection) -> String {
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
        "checked {} stream(s), {segments} segment(s), {records} record(s): ",
        inspection.streams.len()
    ));
    out.push_str(&damage_summary(inspection.all_findings()));
    out
}

fn damage_summary<'f>(findings: impl Iterator<Item = &'f Finding> + Clone) -> String {
    let (damage, unreadable) = severity_counts(findings);
    if damage == 0 && unreadable == 0 {
        "no damage found\n".into()
    } else {
        format!("{damage} damaged region(s) or file(s), {unreadable} unreadable file(s)\n")
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

fn findings_json<'f>(findings: impl Iterator<Item = &'f Finding>) -> Value {
    findings.map(finding_json).collect()
}

fn segment_json(segment: &SegmentReport) -> Value {
    json!({
        "file": segment.file.display().to_string(),
        "base_offset": segment.base_offset,
        "header_ok": segment.header_ok,
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
fn group_json(group: &GroupReport, pending: bool) -> Value {
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
        "retention": {
            "max_age_ms": totals.retention.max_age_ms,
            "max_bytes": totals.retention.max_bytes,
        },
        "settings": stream.settings.map(|s| json!({
            "work_queue": s.work_queue,
            "idempotency_duration_ms": s.idempotency_duration_ms,
            "idempotency_max_size": s.idempotency_max_size,
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

/// Damaged and unreadable findings.
fn severity_counts<'f>(findings: impl Iterator<Item = &'f Finding> + Clone) -> (usize, usize) {
    let count = |severity| findings.clone().filter(|f| f.severity == severity).count();
    (count(Severity::Damage), count(Severity::Unreadable))
}

fn inspection_json(inspection: &Inspection, verify: bool) -> Value {
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

/// How `--records` lists entries: where to start, how many, bodies as hex or text.
struct Listing {
    from: StreamId,
    left: usize,
    hex: bool,
    json: bool,
    listed: usize,
    started: bool,
}

impl Listing {
    fn new(args: &Args) -> Self {
        Listing {
            from: args.from.unwrap_or(StreamId::MIN),
            left: args.count.unwrap_or(usize::MAX),
            hex: args.hex,
            json: args.json,
            listed: 0,
            started: args.from.is_none(),
        }
    }

    /// Prints what the scan met, when it is in the range asked for; `false` once `--count`
    /// entries were listed.
    fn on(&mut self, event: &ScanEvent<'_, '_>) -> bool {
        if self.left == 0 {
            return false;
        }
        match event {
            ScanEvent::Record {
                file,
                pos,
                record,
                state,
            } if record.id >= self.from => {
                self.started = true;
                self.emit(if self.json {
                    record_json(file, *pos, record, state.label(), self.hex).to_string()
                } else {
                    record_text(*pos, record, state.label(), self.hex)
                });
                self.left -= 1;
            }
            ScanEvent::Damaged {
                file,
                pos,
                resume,
                error,
            } if self.started => self.emit(if self.json {
                json!({
                    "file": file.display().to_string(),
                    "pos": pos,
                    "end": resume,
                    "crc": "bad",
                    "error": error,
                })
                .to_string()
            } else {
                format!(
                    "damaged bytes {pos}..{resume} of {}: {error} (no valid record here)\n",
                    file_name(file)
                )
            }),
            _ => {}
        }
        self.left > 0
    }

    /// In JSON each item is one line of the `records` array.
    fn emit(&mut self, item: String) {
        if self.json {
            let separator = if self.listed == 0 { "\n" } else { ",\n" };
            print(&format!("{separator}{item}"));
        } else {
            print(&item);
        }
        self.listed += 1;
    }
}

/// Ends the JSON document whose `records` array [`Listing`] printed: the count, then the
/// fields of `rest` (an object).
fn close_listing_document(listing: &Listing, rest: Value) {
    let mut out = format!("\n],\n\"listed\": {}", listing.listed);
    for (key, value) in rest.as_object().into_iter().flatten() {
        let value = serde_json::to_string_pretty(value).unwrap_or_default();
        out.push_str(&format!(",\n{}: {value}", Value::from(key.as_str())));
    }
    out.push_str("\n}\n");
    print(&out);
}

/// One record: a summary line, then its idempotency key, headers and body.
fn record_text(pos: usize, record: &RecordView<'_>, state: &str, hex: bool) -> String {
    let mut out = format!(
        "offset {}  id {}  time {}  size {} bytes  byte {}  crc ok  {}\n",
        record.offset,
        record.id,
        format_ms(record.timestamp_ms),
        record.padded_len,
        pos,
        state
    );
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

fn record_json(file: &Path, pos: usize, record: &RecordView<'_>, state: &str, hex: bool) -> Value {
    let mut value = json!({
        "file": file.display().to_string(),
        "pos": pos,
        "offset": record.offset,
        "id": record.id.to_string(),
        "timestamp_ms": record.timestamp_ms,
        "size": record.padded_len,
        "crc": "ok",
        "state": state,
        "idempotency": record.idempotency.as_ref().map(|key| json!({
            "producer": escape(key.producer),
            "iid": escape(key.iid),
        })),
        "headers": record.headers().map(|(name, value)| json!([escape(name), escape(value)])).collect::<Vec<_>>(),
        "body": escape(record.body),
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

/// The stream's name as given, or unescaped when only that form names a stream.
fn resolve_stream(dir: &Path, name: &[u8]) -> Result<(Vec<u8>, PathBuf), InspectError> {
    match inspect::find_stream(dir, name) {
        Ok(stream_dir) => Ok((name.to_vec(), stream_dir)),
        Err(InspectError::NoSuchStream { .. }) if unescape(name) != name => {
            let name = unescape(name);
            let stream_dir = inspect::find_stream(dir, &name)?;
            Ok((name, stream_dir))
        }
        Err(error) => Err(error),
    }
}

fn dump_stream(args: &Args, raw_name: &[u8]) -> Result<u8, Failure> {
    let (name, stream_dir) = resolve_stream(&args.path, raw_name)?;
    let mut progress = Progress::new(inspect::segment_bytes(&stream_dir), args.records);
    let mut listing = Listing::new(args);
    if args.records && args.json {
        print("{\"records\": [");
    }
    let report = inspect::walk_stream(&args.path, &name, &mut |event| {
        progress.on(&event);
        !args.records || listing.on(&event)
    })?;
    drop(progress);
    let code = exit_code(args, report.findings.iter());
    if let Some(group) = &args.group {
        return dump_group(args, &report, group.as_bytes()).map(|()| code);
    }
    if args.records {
        finish_listing(args, &listing, &report);
    } else if args.json {
        print_json(&stream_json(&report));
    } else {
        print(&stream_text(&report));
    }
    Ok(code)
}

/// After the entries: in JSON the rest of the document, in text a count and the problems on
/// stderr.
fn finish_listing(args: &Args, listing: &Listing, report: &StreamReport) {
    if args.json {
        // A listing stopped by --count read only part of the stream: no totals, only what
        // the part read found.
        close_listing_document(
            listing,
            json!({
                "stream": report.name.as_deref().map(escape),
                "findings": findings_json(report.findings.iter()),
            }),
        );
        return;
    }
    for finding in report
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Note)
    {
        eprintln!("queue-dump: {finding}");
    }
    eprintln!(
        "{} entries listed from stream {}",
        listing.listed,
        stream_label(report)
    );
}

fn dump_group(args: &Args, report: &StreamReport, raw_name: &[u8]) -> Result<(), Failure> {
    let unescaped = unescape(raw_name);
    let group = report
        .groups
        .iter()
        .find(|g| g.name == raw_name)
        .or_else(|| report.groups.iter().find(|g| g.name == unescaped))
        .ok_or_else(|| {
            Failure::Usage(format!(
                "stream {} has no group named {} (its groups: {})",
                stream_label(report),
                quoted(raw_name),
                report
                    .groups
                    .iter()
                    .map(|g| quoted(&g.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    if args.json {
        print_json(&json!({
            "stream": report.name.as_deref().map(escape),
            "group": group_json(group, args.pending),
            "findings": findings_json(report.findings.iter()),
        }));
    } else {
        let now_ms = SystemClock::new().now_ms();
        let mut out = format!("stream {}\n", stream_label(report));
        out.push_str(&group_text(group, args.pending, now_ms));
        print(&out);
    }
    Ok(())
}

fn dump_file(args: &Args) -> Result<u8, Failure> {
    if args.stream.is_some() {
        return Err(Failure::Usage(format!(
            "{}: --stream needs a data directory, not a file",
            args.path.display()
        )));
    }
    let is_segment = args.path.extension().is_some_and(|e| e == "seg");
    if args.records && !is_segment {
        return Err(Failure::Usage(format!(
            "{}: --records lists the entries of a segment (`.seg`) file; journals always list their frames",
            args.path.display()
        )));
    }
    let total = std::fs::metadata(&args.path).map_or(0, |m| m.len());
    let mut progress = Progress::new(total, args.records);
    let mut listing = Listing::new(args);
    if args.records && args.json {
        print("{\"records\": [");
    }
    let report = inspect::inspect_file(&args.path, &mut |event| {
        progress.on(&event);
        !args.records || listing.on(&event)
    })?;
    drop(progress);
    if args.records && args.json {
        close_listing_document(&listing, file_json(&report));
    } else if args.json {
        print_json(&file_json(&report));
    } else {
        if args.records {
            eprintln!("{} entries listed", listing.listed);
        }
        print(&file_text(&report));
    }
    Ok(exit_code(args, report.findings.iter()))
}

fn frame_line(frame: &FrameReport) -> String {
    format!(
        "byte {}  {} bytes  {}  {}",
        frame.pos, frame.len, frame.event, frame.detail
    )
}

fn meta_text(meta: &MetaState) -> String {
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

fn file_text(report: &FileReport) -> String {
    let mut out = format!("{} {}\n", report.content.kind(), report.file.display());
    match &report.content {
        FileContent::Segment(segment) => out.push_str(&format!("  {}\n", segment_line(segment))),
        FileContent::GroupJournal {
            generation,
            frames,
            groups,
        } => {
            out.push_str(&format!(
                "  generation {generation}, {} frame(s):\n",
                frames.len()
            ));
            for frame in frames {
                out.push_str(&format!("    {}\n", frame_line(frame)));
            }
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
            out.push_str(&format!(
                "  generation {generation}, {} frame(s):\n",
                frames.len()
            ));
            for frame in frames {
                out.push_str(&format!("    {}\n", frame_line(frame)));
            }
            out.push_str("the metadata these frames change (over the checkpoint's):\n");
            out.push_str(&meta_text(meta));
        }
        FileContent::Checkpoint { checkpoint, meta } => {
            if let Some(c) = checkpoint {
                out.push_str(&format!(
                    "  {}, meta journal generation {}, recovery point segment {} byte {} next offset {} last ID {}\n",
                    if c.clean { "clean" } else { "not clean" },
                    c.journal_generation,
                    c.segment_base,
                    c.pos,
                    c.next_offset,
                    c.last_id
                ));
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

fn meta_json(meta: &MetaState) -> Value {
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

fn file_json(report: &FileReport) -> Value {
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
