//! `LATENCY LATEST/HISTORY/RESET/HELP`, with Redis 7.0's replies.

use bytes::Bytes;

use super::replies::int;
use super::subcommands::{Subcommand, dispatch, help};
use super::{Ctx, Outcome};
use crate::server::diagnostics::LatencyEvent;
use crate::server::resp::Value;

pub(super) fn latency(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    const TABLE: &[Subcommand] = &[
        ("latest", 2, latest),
        ("history", 3, history),
        ("reset", -2, reset),
        ("help", 2, latency_help),
    ];
    dispatch(ctx, args, "latency", TABLE)
}

/// `LATENCY LATEST`: each event with samples as `[name, unix time, latest ms, largest ms]`.
fn latest(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    let events = ctx.server.diagnostics.latency.events();
    Ok(Value::Array(
        events
            .iter()
            .filter_map(|(event, history)| {
                let (at, ms) = history.latest()?;
                Some(Value::Array(vec![
                    Value::bulk(event.name()),
                    int(at),
                    int(ms),
                    int(history.max_ms),
                ]))
            })
            .collect(),
    ))
}

/// `LATENCY HISTORY event`: `[unix time, ms]` samples, oldest first; none for an event never
/// sampled or unknown.
fn history(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let samples = LatencyEvent::named(&args[2])
        .and_then(|event| ctx.server.diagnostics.latency.history(event))
        .map(|history| history.samples)
        .unwrap_or_default();
    Ok(Value::Array(
        samples
            .iter()
            .map(|&(at, ms)| Value::Array(vec![int(at), int(ms)]))
            .collect(),
    ))
}

/// `LATENCY RESET [event …]`: how many of the events (all without names) had samples.
fn reset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let named: Vec<LatencyEvent> = args[2..]
        .iter()
        .filter_map(|name| LatencyEvent::named(name))
        .collect();
    if named.is_empty() && args.len() > 2 {
        return Ok(Value::Integer(0));
    }
    let reset = ctx.server.diagnostics.latency.reset(&named);
    Ok(int(u64::try_from(reset).unwrap_or(u64::MAX)))
}

const LATENCY_HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "HISTORY <event>",
    "    The samples of <event> (command or fast-command): Unix time and milliseconds.",
    "LATEST",
    "    Each event's latest sample and its largest.",
    "RESET [<event> ...]",
    "    Forgets the samples of the events named, or of all events.",
    "HELP",
    "    Prints this help.",
];

fn latency_help(_: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(help(LATENCY_HELP))
}
