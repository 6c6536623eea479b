//! `MEMORY USAGE` and `MEMORY STATS`, with Redis 7.0's replies and the server's own figures:
//! a stream's usage is what the stream layer holds in memory for it (see
//! [`StreamMemory`](crate::stream::StreamMemory)); the process figures are those of `INFO
//! memory`.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::lookup::existing;
use super::parse::{integer, is, syntax_error};
use super::replies::int;
use super::subcommands::{Subcommand, dispatch, help};
use super::{Ctx, Outcome};
use crate::server::keys::{DATABASES, key_of};
use crate::server::process;
use crate::server::resp::Value;

pub(super) fn memory(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    const TABLE: &[Subcommand] = &[
        ("usage", -3, usage),
        ("stats", 2, stats),
        ("help", 2, memory_help),
    ];
    dispatch(ctx, args, "memory", TABLE)
}

/// `MEMORY USAGE key [SAMPLES count]`: the stream's bytes in memory, or nil without one. Every
/// part is measured, so the sample count only needs to be a number.
fn usage(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let mut options = args[3..].chunks(2);
    for option in &mut options {
        match option {
            [keyword, count] if is(keyword, "SAMPLES") => {
                if integer(count)? < 0 {
                    return Err(syntax_error());
                }
            }
            _ => return Err(syntax_error()),
        }
    }
    let store = ctx.store()?;
    Ok(existing(ctx, &store, &args[2]).map_or(Value::Null, |stream| int(stream.memory().total())))
}

/// The process's memory as `INFO memory` reports it.
struct Figures {
    used: u64,
    peak: u64,
    startup: u64,
    rss: u64,
}

impl Figures {
    fn now(ctx: &Ctx<'_>) -> Figures {
        let memory = process::memory();
        let used = memory.heap;
        let stats = &ctx.server.stats;
        let peak = stats
            .peak_memory
            .fetch_max(used, Ordering::Relaxed)
            .max(used);
        Figures {
            used,
            peak,
            startup: ctx.server.startup_memory.min(used),
            rss: memory.rss,
        }
    }
}

/// `MEMORY STATS`: Redis's fields in Redis's order.
fn stats(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    let figures = Figures::now(ctx);
    let names: Vec<Vec<u8>> = ctx
        .stores()?
        .iter()
        .flat_map(|store| store.stream_names())
        .collect();
    let dataset = figures.used - figures.startup;
    let keys = names.len() as u64;
    let ratio = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    let field = |name: &str, value: Value| (Value::bulk(name.to_owned()), value);
    let mut fields = vec![
        field("peak.allocated", int(figures.peak)),
        field("total.allocated", int(figures.used)),
        field("startup.allocated", int(figures.startup)),
    ];
    fields.extend(
        [
            "replication.backlog",
            "clients.slaves",
            "clients.normal",
            "cluster.links",
            "aof.buffer",
            "lua.caches",
            "functions.caches",
        ]
        .map(|name| field(name, Value::Integer(0))),
    );
    fields.extend(
        databases(&names)
            .into_iter()
            .map(|db| field(&format!("db.{db}"), db_overhead())),
    );
    let rss_overhead = figures.rss.saturating_sub(figures.used);
    fields.extend([
        field("overhead.total", int(figures.startup)),
        field("keys.count", int(keys)),
        field(
            "keys.bytes-per-key",
            int(dataset.checked_div(keys).unwrap_or(0)),
        ),
        field("dataset.bytes", int(dataset)),
        field(
            "dataset.percentage",
            Value::Double(100.0 * ratio(dataset, dataset)),
        ),
        field(
            "peak.percentage",
            Value::Double(100.0 * ratio(figures.used, figures.peak)),
        ),
        field("allocator.allocated", int(figures.used)),
        field("allocator.active", int(figures.used)),
        field("allocator.resident", int(figures.used)),
        field("allocator-fragmentation.ratio", Value::Double(1.0)),
        field("allocator-fragmentation.bytes", Value::Integer(0)),
        field("allocator-rss.ratio", Value::Double(1.0)),
        field("allocator-rss.bytes", Value::Integer(0)),
        field(
            "rss-overhead.ratio",
            Value::Double(ratio(figures.rss, figures.used)),
        ),
        field("rss-overhead.bytes", int(rss_overhead)),
        field(
            "fragmentation",
            Value::Double(ratio(figures.rss, figures.used)),
        ),
        field("fragmentation.bytes", int(rss_overhead)),
    ]);
    Ok(Value::Map(fields))
}

/// The databases that hold streams, in order.
fn databases(names: &[Vec<u8>]) -> Vec<u8> {
    (0..DATABASES)
        .filter(|&db| names.iter().any(|name| key_of(db, name).is_some()))
        .collect()
}

/// A database's hash-table overhead: weir keeps no table per database (the store's one map of
/// streams is part of the dataset), so none.
fn db_overhead() -> Value {
    Value::Map(
        [
            "overhead.hashtable.main",
            "overhead.hashtable.expires",
            "overhead.hashtable.slot-to-keys",
        ]
        .map(|name| (Value::bulk(name), Value::Integer(0)))
        .to_vec(),
    )
}

const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "STATS",
    "    The process's memory by kind, with Redis's field names.",
    "USAGE <key> [SAMPLES <count>]",
    "    Bytes the stream under <key> holds in memory: indexes, groups, idempotency keys",
    "    (its entries are in mapped segment files, not counted). Every part is measured,",
    "    so SAMPLES changes nothing.",
    "HELP",
    "    Prints this help.",
];

fn memory_help(_: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(help(MEMORY_HELP))
}
