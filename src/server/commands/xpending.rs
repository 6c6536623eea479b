//! XPENDING, summary and range forms.

use bytes::Bytes;

use super::errors::nogroup;
use super::lookup::stream_at;
use super::parse::{integer, is, range_end, range_start, syntax_error};
use super::replies::{bulk, deliveries_value, int};
use super::{Ctx, Outcome, id_value, reply};
use crate::id::StreamId;
use crate::server::resp::Value;
use crate::stream::{PendingEntry, PendingOverview, PendingQuery};

/// `XPENDING key group [[IDLE min-idle] start end count [consumer]]`, range form.
#[derive(Debug, PartialEq)]
struct PendingRange<'a> {
    min_idle_ms: Option<u64>,
    start: StreamId,
    end: StreamId,
    count: usize,
    consumer: Option<&'a [u8]>,
}

/// Parses the range form in Redis's order, so syntax errors come before a missing key; `None`
/// for the summary form.
fn parse_pending(args: &[Bytes]) -> Result<Option<PendingRange<'_>>, Value> {
    if args.len() == 3 {
        return Ok(None);
    }
    if !(6..=9).contains(&args.len()) {
        return Err(syntax_error());
    }
    let mut at = 3;
    let mut min_idle = 0;
    if is(&args[3], "IDLE") {
        min_idle = integer(&args[4])?;
        if args.len() < 8 {
            return Err(syntax_error());
        }
        at += 2;
    }
    let count = u64::try_from(integer(&args[at + 2])?).unwrap_or(0);
    let start = range_start(&args[at])?;
    let end = range_end(&args[at + 1])?;
    Ok(Some(PendingRange {
        // Only a positive minimum filters, as in Redis.
        min_idle_ms: u64::try_from(min_idle).ok().filter(|&idle| idle > 0),
        start,
        end,
        count: usize::try_from(count).unwrap_or(usize::MAX),
        consumer: args.get(at + 3).map(|consumer| &consumer[..]),
    }))
}

pub(super) fn xpending(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply((|| {
        let range = parse_pending(args)?;
        let missing = || nogroup(&args[1], &args[2]);
        let stream = stream_at(ctx, &args[1])?.ok_or_else(missing)?;
        let name = &args[2][..];
        let result = match range {
            None => stream
                .pending_overview(name)
                .map(|overview| summary_value(&overview)),
            Some(range) => {
                let now_ms = stream.now_ms();
                let query = PendingQuery {
                    start: range.start,
                    end: range.end,
                    count: range.count,
                    consumer: range.consumer,
                    min_idle_ms: range.min_idle_ms,
                };
                stream
                    .pending_entries(name, &query, now_ms)
                    .map(|rows| Value::Array(rows.iter().map(pending_row).collect()))
            }
        };
        result.map_err(|_| missing())
    })())
}

/// `[count, first, last, [[consumer, count]…]]`, or `[0, nil, nil, nil]` for an empty PEL.
fn summary_value(overview: &PendingOverview) -> Value {
    let (Some(first), Some(last)) = (overview.first, overview.last) else {
        return Value::Array(vec![
            Value::Integer(0),
            Value::Null,
            Value::Null,
            Value::NullArray,
        ]);
    };
    let owners = overview
        .consumers
        .iter()
        .map(|(name, held)| Value::Array(vec![bulk(name), Value::bulk(held.to_string())]))
        .collect();
    Value::Array(vec![
        int(overview.count as u64),
        id_value(first),
        id_value(last),
        Value::Array(owners),
    ])
}

fn pending_row(row: &PendingEntry) -> Value {
    Value::Array(vec![
        id_value(row.id),
        bulk(&row.consumer),
        int(row.idle_ms),
        deliveries_value(row.deliveries),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::commands::parse::tests::{args, error_text};

    #[test]
    fn pending_forms() {
        assert_eq!(parse_pending(&args("XPENDING s g")), Ok(None));
        let idle_form = args("XPENDING s g IDLE 50 (1-0 + 10 alice");
        let range = parse_pending(&idle_form).unwrap().unwrap();
        assert_eq!(
            range,
            PendingRange {
                min_idle_ms: Some(50),
                start: StreamId::new(1, 1),
                end: StreamId::MAX,
                count: 10,
                consumer: Some(&b"alice"[..]),
            }
        );
        // Redis ignores what follows the consumer, and a negative count lists nothing.
        let loose_form = args("XPENDING s g - + -5 c extra");
        let loose = parse_pending(&loose_form).unwrap().unwrap();
        assert_eq!((loose.count, loose.consumer), (0, Some(&b"c"[..])));
        let negative_form = args("XPENDING s g IDLE -5 - + 1");
        let negative_idle = parse_pending(&negative_form).unwrap().unwrap();
        assert_eq!(negative_idle.min_idle_ms, None);
        for (command, expected) in [
            ("XPENDING s g -", "ERR syntax error"),
            ("XPENDING s g IDLE 10 - +", "ERR syntax error"),
            (
                "XPENDING s g IDLE x - + 10",
                "ERR value is not an integer or out of range",
            ),
            (
                "XPENDING s g x + 1",
                "ERR Invalid stream ID specified as stream command argument",
            ),
            (
                "XPENDING s g - + x",
                "ERR value is not an integer or out of range",
            ),
            ("XPENDING s g - + 1 c d e f", "ERR syntax error"),
        ] {
            assert_eq!(
                error_text(parse_pending(&args(command)).unwrap_err()),
                expected
            );
        }
    }

    #[test]
    fn an_empty_summary_has_redis_shape() {
        let empty = summary_value(&PendingOverview {
            count: 0,
            first: None,
            last: None,
            consumers: Vec::new(),
        });
        assert_eq!(
            empty,
            Value::Array(vec![
                Value::Integer(0),
                Value::Null,
                Value::Null,
                Value::NullArray
            ])
        );
    }
}
