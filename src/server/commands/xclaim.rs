//! XCLAIM and XAUTOCLAIM.

use bytes::Bytes;

use super::errors::{library_error, nogroup};
use super::lookup::group_at;
use super::parse::{Parse, integer_or, is, maybe_strict_id, range_start, strict_id, syntax_error};
use super::replies::text;
use super::{Ctx, Outcome, entry_value, id_value, reply};
use crate::id::StreamId;
use crate::server::resp::Value;
use crate::stream::Delivery;
use crate::stream::{AutoClaim, ClaimOptions};

/// XCLAIM's delivery-time options: the last one given wins, as in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeliveryTime {
    Idle(i64),
    Time(i64),
}

/// `XCLAIM key group consumer min-idle-time id… [options]`, after the group check.
#[derive(Debug, PartialEq)]
struct ClaimArgs {
    ids: Vec<StreamId>,
    options: ClaimOptions,
}

/// Parses from `min-idle-time` on: IDs until the first argument that is not one, then options.
fn parse_claim_args(args: &[Bytes]) -> Result<ClaimArgs, Value> {
    let min_idle = integer_or(&args[0], "ERR Invalid min-idle-time argument for XCLAIM")?;
    let mut options = ClaimOptions {
        min_idle_ms: u64::try_from(min_idle).unwrap_or(0),
        ..ClaimOptions::default()
    };
    let ids: Vec<StreamId> = args[1..]
        .iter()
        .map_while(|arg| maybe_strict_id(arg))
        .collect();
    let mut time = None;
    let mut parse = Parse::new(args, 1 + ids.len());
    while let Some(option) = parse.next() {
        if is(option, "FORCE") {
            options.force = true;
            continue;
        }
        if is(option, "JUSTID") {
            options.justid = true;
            continue;
        }
        let Some(value) = parse.peek().filter(|_| claim_option_takes_value(option)) else {
            return Err(Value::error(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                text(option)
            )));
        };
        parse.next();
        claim_option(option, value, &mut options, &mut time)?;
    }
    apply_delivery_time(&mut options, time);
    Ok(ClaimArgs { ids, options })
}

fn claim_option_takes_value(option: &[u8]) -> bool {
    ["IDLE", "TIME", "RETRYCOUNT", "LASTID"]
        .iter()
        .any(|name| is(option, name))
}

fn claim_option(
    option: &[u8],
    value: &[u8],
    options: &mut ClaimOptions,
    time: &mut Option<DeliveryTime>,
) -> Result<(), Value> {
    if is(option, "IDLE") {
        let idle = integer_or(value, "ERR Invalid IDLE option argument for XCLAIM")?;
        *time = Some(DeliveryTime::Idle(idle));
    } else if is(option, "TIME") {
        let at = integer_or(value, "ERR Invalid TIME option argument for XCLAIM")?;
        *time = Some(DeliveryTime::Time(at));
    } else if is(option, "RETRYCOUNT") {
        let count = integer_or(value, "ERR Invalid RETRYCOUNT option argument for XCLAIM")?;
        // Redis ignores a negative count; weir's counters stop at u32::MAX.
        options.retry_count = u64::try_from(count)
            .ok()
            .map(|count| u32::try_from(count).unwrap_or(u32::MAX));
    } else {
        options.last_id = Some(strict_id(value)?);
    }
    Ok(())
}

/// A negative idle time or delivery time means "now" in Redis, as no option does.
fn apply_delivery_time(options: &mut ClaimOptions, time: Option<DeliveryTime>) {
    match time {
        Some(DeliveryTime::Idle(idle)) => options.idle_ms = Some(u64::try_from(idle).unwrap_or(0)),
        Some(DeliveryTime::Time(at)) => options.time_ms = u64::try_from(at).ok(),
        None => {}
    }
}

pub(super) fn xclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply((|| {
        let missing = || nogroup(&args[1], &args[2]);
        let group = group_at(ctx, &args[1], &args[2], missing)?;
        let claim = parse_claim_args(&args[4..])?;
        let claimed = group
            .claim_in(&args[3], &claim.ids, claim.options, ctx.commit())
            .map_err(|error| library_error(&error, missing))?;
        Ok(claimed_value(&claimed.deliveries, claim.options.justid))
    })())
}

/// Claimed entries, or only their IDs with JUSTID.
fn claimed_value(deliveries: &[Delivery], justid: bool) -> Value {
    Value::Array(
        deliveries
            .iter()
            .map(|d| {
                if justid {
                    id_value(d.id())
                } else {
                    entry_value(d.entry())
                }
            })
            .collect(),
    )
}

/// Redis caps COUNT so that COUNT × 10 attempts cannot overflow.
const AUTOCLAIM_MAX_COUNT: i64 = i64::MAX / 16;

/// Parses `min-idle-time start [COUNT count] [JUSTID]`.
fn parse_autoclaim(args: &[Bytes]) -> Result<AutoClaim, Value> {
    let min_idle = integer_or(
        &args[0],
        "ERR Invalid min-idle-time argument for XAUTOCLAIM",
    )?;
    let start = range_start(&args[1])?;
    let mut request = AutoClaim::new(u64::try_from(min_idle).unwrap_or(0), start);
    let mut parse = Parse::new(args, 2);
    while let Some(option) = parse.next() {
        if is(option, "JUSTID") {
            request.justid = true;
        } else if let (true, Some(value)) = (is(option, "COUNT"), parse.peek()) {
            parse.next();
            let count = integer_or(value, "ERR COUNT must be > 0")?;
            if !(1..=AUTOCLAIM_MAX_COUNT).contains(&count) {
                return Err(Value::error("ERR COUNT must be > 0"));
            }
            request.count = usize::try_from(count).unwrap_or(usize::MAX);
        } else {
            return Err(syntax_error());
        }
    }
    Ok(request)
}

pub(super) fn xautoclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply((|| {
        let request = parse_autoclaim(&args[4..])?;
        let missing = || nogroup(&args[1], &args[2]);
        let group = group_at(ctx, &args[1], &args[2], missing)?;
        let claimed = group
            .auto_claim_in(&args[3], request, ctx.commit())
            .map_err(|error| library_error(&error, missing))?;
        Ok(Value::Array(vec![
            id_value(claimed.next),
            claimed_value(&claimed.deliveries, request.justid),
            Value::Array(claimed.deleted.iter().map(|&id| id_value(id)).collect()),
        ]))
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::commands::parse::tests::{args, error_text};

    #[test]
    fn claim_options() {
        let parsed = parse_claim_args(&args(
            "-5 1-0 2 JUSTID RETRYCOUNT 7 IDLE 1000 TIME 5 LASTID 9-0 force",
        ))
        .unwrap();
        assert_eq!(parsed.ids, [StreamId::new(1, 0), StreamId::new(2, 0)]);
        assert_eq!(
            parsed.options,
            ClaimOptions {
                min_idle_ms: 0,
                idle_ms: None,
                time_ms: Some(5),
                retry_count: Some(7),
                force: true,
                justid: true,
                last_id: Some(StreamId::new(9, 0)),
            }
        );
        // The last of IDLE and TIME wins; a negative one means now.
        let idle = parse_claim_args(&args("0 1-0 TIME 5 IDLE -3")).unwrap();
        assert_eq!(
            (idle.options.idle_ms, idle.options.time_ms),
            (Some(0), None)
        );
        let huge_retry = parse_claim_args(&args("0 1-0 RETRYCOUNT 99999999999")).unwrap();
        assert_eq!(huge_retry.options.retry_count, Some(u32::MAX));
        let no_ids = parse_claim_args(&args("0 JUSTID")).unwrap();
        assert!(no_ids.ids.is_empty());
        for (command, expected) in [
            ("x 1-0", "ERR Invalid min-idle-time argument for XCLAIM"),
            ("0 1-0 FOO", "ERR Unrecognized XCLAIM option 'FOO'"),
            ("0 1-0 IDLE", "ERR Unrecognized XCLAIM option 'IDLE'"),
            (
                "0 1-0 IDLE x",
                "ERR Invalid IDLE option argument for XCLAIM",
            ),
            (
                "0 1-0 TIME x",
                "ERR Invalid TIME option argument for XCLAIM",
            ),
            (
                "0 1-0 RETRYCOUNT x",
                "ERR Invalid RETRYCOUNT option argument for XCLAIM",
            ),
            (
                "0 1-0 LASTID x",
                "ERR Invalid stream ID specified as stream command argument",
            ),
            ("0 1-0 JUSTID 2-0", "ERR Unrecognized XCLAIM option '2-0'"),
        ] {
            assert_eq!(
                error_text(parse_claim_args(&args(command)).unwrap_err()),
                expected
            );
        }
    }

    #[test]
    fn autoclaim_options() {
        let request = parse_autoclaim(&args("-1 (5-0 COUNT 3 JUSTID")).unwrap();
        assert_eq!(request.min_idle_ms, 0);
        assert_eq!(request.start, StreamId::new(5, 1));
        assert_eq!((request.count, request.justid), (3, true));
        assert_eq!(parse_autoclaim(&args("0 0")).unwrap().count, 100);
        for (command, expected) in [
            ("x 0", "ERR Invalid min-idle-time argument for XAUTOCLAIM"),
            (
                "0 x",
                "ERR Invalid stream ID specified as stream command argument",
            ),
            ("0 0 COUNT 0", "ERR COUNT must be > 0"),
            ("0 0 COUNT x", "ERR COUNT must be > 0"),
            ("0 0 COUNT 576460752303423488", "ERR COUNT must be > 0"),
            ("0 0 COUNT", "ERR syntax error"),
            ("0 0 FOO", "ERR syntax error"),
        ] {
            assert_eq!(
                error_text(parse_autoclaim(&args(command)).unwrap_err()),
                expected
            );
        }
    }
}
