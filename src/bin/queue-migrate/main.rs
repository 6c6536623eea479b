//! `queue-migrate`: copies the streams of a running Redis server into a running queue-server,
//! through the Redis protocol alone, then verifies the copy.
//!
//! Each stream goes with its entries and IDs, `entries-added`, `max-deleted-entry-id`, and every
//! consumer group with its last-delivered ID, entries-read, consumers and full pending list
//! (owner, delivery count, delivery time). The source is only read (`SCAN … TYPE stream`,
//! `XRANGE`, `XINFO`); the target is written with standard stream commands, so this binary
//! knows nothing of weir's files. `docs/migration.md` says what cannot be copied exactly.
//!
//! Exit status: 0 when the copy (or `--verify-only`) found no difference, 1 when verification
//! found differences, 2 when it could not run.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use redis::Cmd;

mod conn;
mod copy;
mod describe;
mod keys;
mod pages;
mod reply;
mod verify;

use conn::{Conn, Side, redacted};
use copy::Copied;

/// Copy the streams of a Redis server into a queue-server, with their consumer groups and
/// pending entries, then verify the copy entry by entry and group by group.
#[derive(Debug, Parser)]
#[command(name = "queue-migrate", version)]
struct Args {
    /// The Redis server to copy from, e.g. `redis://:PASSWORD@HOST:6379/0` (only read).
    #[arg(long, value_name = "URL")]
    from: String,
    /// The queue-server to copy into, e.g. `redis://:PASSWORD@HOST:6380/0`.
    #[arg(long, value_name = "URL")]
    to: String,
    /// Copy the streams whose names match this glob pattern (Redis's `SCAN … MATCH` syntax);
    /// may be repeated.
    #[arg(long = "match", value_name = "PATTERN")]
    patterns: Vec<String>,
    /// Streams to copy, by name. With neither these nor --match, every stream of the source.
    #[arg(value_name = "KEY")]
    keys: Vec<String>,
    /// Copy nothing: compare the selected streams on both servers.
    #[arg(long, conflicts_with_all = ["dry_run", "replace"])]
    verify_only: bool,
    /// Write nothing: list what would be copied and check that the target can take it.
    #[arg(long)]
    dry_run: bool,
    /// Delete a selected stream that already exists in the target before copying it (without
    /// this, such a stream stops the run before anything is written).
    #[arg(long)]
    replace: bool,
    /// Entries per XRANGE page and XADD pipeline.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    page_size: u64,
}

const EXIT_SAME: u8 = 0;
const EXIT_DIFFERENT: u8 = 1;
const EXIT_FAILED: u8 = 2;

/// Progress lines for a long stream: one every this many entries.
const PROGRESS_EVERY: u64 = 100_000;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("queue-migrate: {error}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Why a run could not go on (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("cannot connect to the {side} at {url}: {source}")]
    Connect {
        side: &'static str,
        url: String,
        source: redis::RedisError,
    },
    #[error("lost the connection to the {side}: {source}")]
    Io {
        side: &'static str,
        source: redis::RedisError,
    },
    #[error("the {side} refused `{command}`: {reply}")]
    Refused {
        side: &'static str,
        command: String,
        reply: String,
    },
    /// A reply of an unexpected shape.
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Usage(String),
    #[error(
        "the target already has {} of the selected keys ({}): pass --replace to delete them \
         and copy them again, or --verify-only to compare them with the source",
        .0.len(), shown_keys(.0)
    )]
    Conflict(Vec<Vec<u8>>),
}

fn shown_keys(keys: &[Vec<u8>]) -> String {
    const SHOWN: usize = 10;
    let mut text = keys
        .iter()
        .take(SHOWN)
        .map(|key| shown(key))
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        text.push_str(&format!(", and {} more", keys.len() - SHOWN));
    }
    text
}

/// A key for messages: printable bytes as they are, others escaped.
fn shown(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

fn run(args: &Args) -> Result<u8, Failure> {
    let mut source = Conn::open(&args.from, Side::Source)?;
    let mut target = Conn::open(&args.to, Side::Target)?;
    let keys = keys::select(&mut source, &args.patterns, &args.keys)?;
    eprintln!(
        "queue-migrate: {} stream(s) selected in {}",
        keys.len(),
        redacted(&args.from)
    );
    let page_size = usize::try_from(args.page_size).unwrap_or(usize::MAX);
    if !args.verify_only {
        let existing = existing_in(&mut target, &keys)?;
        if !existing.is_empty() && !args.replace {
            return Err(Failure::Conflict(existing));
        }
        if args.dry_run {
            plan(&mut source, &keys, &existing)?;
            return Ok(EXIT_SAME);
        }
        copy_all(&mut source, &mut target, &keys, &existing, page_size)?;
    }
    verify_all(&mut source, &mut target, &keys, page_size)
}

/// The keys that exist in the target already.
fn existing_in(target: &mut Conn, keys: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, Failure> {
    let mut existing = Vec::new();
    for chunk in keys.chunks(1000) {
        let checks: Vec<Cmd> = chunk
            .iter()
            .map(|key| {
                let mut cmd = Cmd::new();
                cmd.arg("EXISTS").arg(key.as_slice());
                cmd
            })
            .collect();
        for (key, reply) in chunk.iter().zip(target.pipeline(&checks)?) {
            if reply::int(&reply)? > 0 {
                existing.push(key.clone());
            }
        }
    }
    Ok(existing)
}

/// `--dry-run`: what a copy would write, stream by stream.
fn plan(source: &mut Conn, keys: &[Vec<u8>], existing: &[Vec<u8>]) -> Result<(), Failure> {
    for key in keys {
        let state = describe::describe(source, key)?;
        let pending: usize = state.groups.iter().map(|g| g.pending.len()).sum();
        let consumers: usize = state.groups.iter().map(|g| g.consumers.len()).sum();
        let replaced = if existing.contains(key) {
            " (replacing the target's)"
        } else {
            ""
        };
        println!(
            "{}: {} entries, last ID {}, {} group(s), {consumers} consumer(s), {pending} \
             pending entries{replaced}",
            shown(key),
            state.length,
            state.last_generated_id,
            state.groups.len(),
        );
    }
    eprintln!("queue-migrate: dry run, nothing was written");
    Ok(())
}

fn copy_all(
    source: &mut Conn,
    target: &mut Conn,
    keys: &[Vec<u8>],
    existing: &[Vec<u8>],
    page_size: usize,
) -> Result<(), Failure> {
    let started = Instant::now();
    let mut total = Copied::default();
    for key in keys {
        if existing.contains(key) {
            target.call(Cmd::new().arg("DEL").arg(key.as_slice()))?;
        }
        let state = describe::describe(source, key)?;
        eprintln!(
            "queue-migrate: copying {} ({} entries, {} group(s))",
            shown(key),
            state.length,
            state.groups.len()
        );
        let mut reported = 0;
        let mut progress = |copied: u64| {
            if copied / PROGRESS_EVERY > reported / PROGRESS_EVERY {
                eprintln!(
                    "queue-migrate:   {}: {copied} of {} entries",
                    shown(key),
                    state.length
                );
            }
            reported = copied;
        };
        let copied = copy::copy_stream(source, target, key, &state, page_size, &mut progress)?;
        total.entries += copied.entries;
        total.groups += copied.groups;
        total.consumers += copied.consumers;
        total.pending += copied.pending;
        total.placeholders += copied.placeholders;
    }
    eprintln!(
        "queue-migrate: copied {} stream(s): {} entries, {} group(s), {} consumer(s), {} \
         pending entries ({} of them without their deleted entry) in {:.1} s",
        keys.len(),
        total.entries,
        total.groups,
        total.consumers,
        total.pending,
        total.placeholders,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn verify_all(
    source: &mut Conn,
    target: &mut Conn,
    keys: &[Vec<u8>],
    page_size: usize,
) -> Result<u8, Failure> {
    let mut differing = 0;
    let mut total = 0;
    for key in keys {
        let differences = verify::verify_stream(source, target, key, page_size)?;
        if differences.total == 0 {
            continue;
        }
        differing += 1;
        total += differences.total;
        for difference in &differences.listed {
            println!("{}: {difference}", shown(key));
        }
        let unlisted = differences.total - differences.listed.len();
        if unlisted > 0 {
            println!("{}: and {unlisted} more differences", shown(key));
        }
    }
    if total == 0 {
        eprintln!(
            "queue-migrate: verified {} stream(s): the target matches the source",
            keys.len()
        );
        Ok(EXIT_SAME)
    } else {
        eprintln!(
            "queue-migrate: verification found {total} difference(s) in {differing} of {} \
             stream(s) (listed on stdout); stop writers and consumers of the source, then run \
             again with --replace",
            keys.len()
        );
        Ok(EXIT_DIFFERENT)
    }
}
