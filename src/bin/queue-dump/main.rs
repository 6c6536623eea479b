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
//! * `queue-dump DIR/raft` or `queue-dump DIR/raft/raft.N.wal`: a cluster node's Raft log, or one
//!   of its files (the summary of `DIR` includes the log too); `--records [--from INDEX]
//!   [--count N]` lists its entries;
//! * `--json` on any form: the same as one JSON document.
//!
//! Reading and checking is the library's (`weir::inspect`); this binary only formats, as text
//! (`text.rs`) or JSON (`json.rs`).

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use format::{escape, quoted, unescape};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use weir::inspect::{self, Finding, InspectError, ScanEvent, Severity, StreamReport};
use weir::{Clock, StreamId, SystemClock, names};

mod format;
mod json;
#[cfg(feature = "cluster")]
mod raft;
mod text;

/// Inspect and verify a weir data directory (read-only: safe beside a live server).
#[derive(Debug, Parser)]
#[command(name = "queue-dump", version)]
struct Args {
    /// Data directory, or one file of a stream directory: a segment (`.seg`), `groups.snapshot`,
    /// `groups.N.journal`, `meta.N.journal` or `checkpoint`; or a cluster node's Raft log
    /// (`DIR/raft`) or one of its files (`raft.N.wal`).
    path: PathBuf,
    /// Read every byte and report damage; exit 0 when clean, 1 when damage was found, 2 when
    /// it could not run.
    #[arg(long, conflicts_with = "stream")]
    verify: bool,
    /// One stream, by name (as is, or escaped as the summary shows it, e.g. `audit\x00log`).
    /// In a queue-server's directory a key of database 0 can be given as is (`orders` for
    /// `\x00orders`); a key of database N is `\xNN` then the key (`\x03orders`).
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
    /// With --stream or a segment file: list every entry with its headers and body; on a Raft
    /// log, every entry's index, term, leader, kind and data length.
    #[arg(long)]
    records: bool,
    /// With --records: start at the first entry whose ID is at least this one (`ms-seq` or `ms`);
    /// on a Raft log, at this entry index.
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
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("queue-dump: {error}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn run(args: &Args) -> Result<u8, Failure> {
    #[cfg(feature = "cluster")]
    if let Some(form) = raft::form(&args.path) {
        return raft::dump(args, form);
    }
    if args.path.is_file() {
        dump_file(args)
    } else if let Some(stream) = &args.stream {
        dump_stream(args, stream.as_bytes())
    } else if args.records {
        Err(Failure::Usage(
            "--records needs --stream KEY, a segment file, or a Raft log (DIR/raft or a \
             raft.N.wal file) instead of a data directory"
                .into(),
        ))
    } else {
        summary_or_verify(args)
    }
}

/// Why a run could not go on (exit code 2).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Inspect(#[from] InspectError),
    /// The Raft log could not be read for a listing.
    #[cfg(feature = "cluster")]
    #[error(transparent)]
    Raft(#[from] weir::cluster::wal::WalError),
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
        print_json(&json::inspection_json(&inspection, args.verify));
    } else if args.verify {
        print(&text::verify_text(&inspection));
    } else {
        print(&text::summary_text(&inspection));
    }
    Ok(exit_code(args, inspection.all_findings()))
}

/// Damaged and unreadable findings.
fn severity_counts<'f>(findings: impl Iterator<Item = &'f Finding> + Clone) -> (usize, usize) {
    let count = |severity| findings.clone().filter(|f| f.severity == severity).count();
    (count(Severity::Damage), count(Severity::Unreadable))
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
            } if record.id() >= self.from => {
                self.started = true;
                let record = record.to_report();
                self.emit(if self.json {
                    json::record_json(file, *pos, &record, state.label(), self.hex).to_string()
                } else {
                    text::record_text(*pos, &record, state.label(), self.hex)
                });
                self.left -= 1;
            }
            ScanEvent::Damaged {
                file,
                pos,
                resume,
                error,
            } if self.started => self.emit(if self.json {
                json::damaged_json(file, *pos, *resume, error).to_string()
            } else {
                text::damaged_text(file, *pos, *resume, error)
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

/// `queue-server` stores the key `K` of database `N` as the stream named by the byte `N`
/// followed by `K` (`src/server/keys.rs`), so a plain key names a stream of database 0 by this
/// prefix.
const SERVER_DATABASE_0: u8 = 0;

/// The stream a name given on the command line means, trying in order: the name as given, its
/// unescaped form (`audit\x00log`, as the summary prints names), and the server's key of that
/// name in database 0 (so `--stream orders` finds what `XADD orders` wrote).
fn resolve_stream(dir: &Path, name: &[u8]) -> Result<(Vec<u8>, PathBuf), InspectError> {
    let unescaped = unescape(name);
    let mut server_key = vec![SERVER_DATABASE_0];
    server_key.extend_from_slice(&unescaped);
    for candidate in [name.to_vec(), unescaped, server_key] {
        match inspect::find_stream(dir, &candidate) {
            Ok(stream_dir) => return Ok((candidate, stream_dir)),
            Err(InspectError::NoSuchStream { .. }) => continue,
            Err(error) => return Err(error),
        }
    }
    Err(InspectError::NoSuchStream {
        dir: dir.to_path_buf(),
        name: quoted(name),
    })
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
        print_json(&json::stream_json(&report));
    } else {
        print(&text::stream_text(&report));
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
                "findings": json::findings_json(report.findings.iter()),
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
        text::stream_label(report)
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
                text::stream_label(report),
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
            "group": json::group_json(group, args.pending),
            "findings": json::findings_json(report.findings.iter()),
        }));
    } else {
        let now_ms = SystemClock::new().now_ms();
        let mut out = format!("stream {}\n", text::stream_label(report));
        out.push_str(&text::group_text(group, args.pending, now_ms));
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
    let is_segment = args
        .path
        .extension()
        .is_some_and(|e| e == names::SEGMENT_EXTENSION);
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
        close_listing_document(&listing, json::file_json(&report));
    } else if args.json {
        print_json(&json::file_json(&report));
    } else {
        if args.records {
            eprintln!("{} entries listed", listing.listed);
        }
        print(&text::file_text(&report));
    }
    Ok(exit_code(args, report.findings.iter()))
}
