//! `SLOWLOG GET/LEN/RESET/HELP`, with Redis 7.0's replies.

use bytes::Bytes;

use super::parse::integer_or;
use super::replies::int;
use super::subcommands::{Subcommand, dispatch, help};
use super::{Ctx, Outcome};
use crate::server::diagnostics::SlowEntry;
use crate::server::resp::Value;

/// How many entries `SLOWLOG GET` returns without a count.
const DEFAULT_COUNT: usize = 10;

pub(super) fn slowlog(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    const TABLE: &[Subcommand] = &[
        ("get", -2, get),
        ("len", 2, len),
        ("reset", 2, reset),
        ("help", 2, slowlog_help),
    ];
    dispatch(ctx, args, "slowlog", TABLE)
}

/// `SLOWLOG GET [count]`: the newest entries first; a count of -1 returns them all.
fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    if args.len() > 3 {
        return Err(super::subcommands::subcommand_syntax("slowlog", &args[1]));
    }
    const BAD_COUNT: &str = "ERR count should be greater than or equal to -1";
    let count = match args.get(2) {
        None => Some(DEFAULT_COUNT),
        Some(arg) => match integer_or(arg, BAD_COUNT)? {
            -1 => None,
            count => Some(usize::try_from(count).map_err(|_| Value::error(BAD_COUNT))?),
        },
    };
    let entries = ctx.server.diagnostics.slowlog.newest(count);
    Ok(Value::Array(entries.iter().map(entry_value).collect()))
}

/// `[id, unix time, microseconds, [arguments], "ip:port", client name]`.
fn entry_value(entry: &SlowEntry) -> Value {
    Value::Array(vec![
        int(entry.id),
        int(entry.unix_secs),
        int(entry.usec),
        Value::Array(entry.args.iter().cloned().map(Value::Bulk).collect()),
        Value::bulk(entry.client.clone()),
        Value::Bulk(entry.client_name.clone()),
    ])
}

fn len(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    let len = ctx.server.diagnostics.slowlog.len();
    Ok(int(u64::try_from(len).unwrap_or(u64::MAX)))
}

fn reset(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    ctx.server.diagnostics.slowlog.reset();
    Ok(Value::ok())
}

const SLOWLOG_HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    The newest <count> entries of the slow log (10 by default, -1 for all), each:",
    "    id, Unix time, run time in microseconds, arguments, client address, client name.",
    "LEN",
    "    How many entries the slow log holds.",
    "RESET",
    "    Empties the slow log.",
    "HELP",
    "    Prints this help.",
];

fn slowlog_help(_: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(help(SLOWLOG_HELP))
}
