//! XREADGROUP.

use std::time::Instant;

use bytes::Bytes;

use super::errors::{library_error, unbalanced_streams};
use super::lookup::{group_at, stream_at};
use super::parse::{self, Block, Now, Parse, integer_or, is, strict_id, syntax_error};
use super::replies::{deliveries_value, int, streams_reply, text};
use super::{Ctx, Outcome, entry_fields, id_value};
use crate::Error;
use crate::id::StreamId;
use crate::server::resp::Value;
use crate::server::state::unix_ms;
use crate::server::version::RedisVersion;
use crate::stream::ReadNew;
use crate::stream::{Delivery, Group, PendingDelivery};

/// `XREADGROUP` arguments.
#[derive(Debug, PartialEq)]
struct ReadGroupArgs<'a> {
    group: &'a [u8],
    consumer: &'a [u8],
    /// `COUNT`; 0 (no limit) when absent or not positive.
    count: u64,
    /// `BLOCK`.
    block: Option<Block>,
    noack: bool,
    /// Redis 8.4's `CLAIM min-idle-time`.
    claim: Option<u64>,
    keys: &'a [Bytes],
    ids: &'a [Bytes],
}

/// Parses XREADGROUP's options like Redis's `xreadCommand`: options in any order until STREAMS,
/// which takes the rest.
fn parse_readgroup(
    args: &[Bytes],
    now: Now,
    version: RedisVersion,
) -> Result<ReadGroupArgs<'_>, Value> {
    let mut parsed = ReadGroupArgs {
        group: &[],
        consumer: &[],
        count: 0,
        block: None,
        noack: false,
        claim: None,
        keys: &[],
        ids: &[],
    };
    let mut group_given = false;
    let mut parse = Parse::new(args, 1);
    while let Some(option) = parse.next() {
        let more = parse.rest().len();
        if is(option, "BLOCK") && more > 0 {
            parsed.block = Some(parse::block_in_range(parse.value()?, now)?);
        } else if is(option, "COUNT") && more > 0 {
            parsed.count = u64::try_from(parse.integer()?).unwrap_or(0);
        } else if is(option, "STREAMS") && more > 0 {
            let streams = parse.rest();
            if streams.len() % 2 != 0 {
                return Err(unbalanced_streams("xreadgroup", version));
            }
            (parsed.keys, parsed.ids) = streams.split_at(streams.len() / 2);
            break;
        } else if is(option, "GROUP") && more >= 2 {
            parsed.group = parse.value()?;
            parsed.consumer = parse.value()?;
            group_given = true;
        } else if is(option, "NOACK") {
            parsed.noack = true;
        } else if is(option, "CLAIM") && more > 0 {
            parsed.claim = Some(parse_claim(parse.value()?)?);
        } else {
            return Err(syntax_error());
        }
    }
    if parsed.keys.is_empty() {
        return Err(syntax_error());
    }
    if !group_given {
        return Err(Value::error("ERR Missing GROUP option for XREADGROUP"));
    }
    Ok(parsed)
}

/// `CLAIM min-idle-time`, with Redis 8.4's errors.
fn parse_claim(arg: &[u8]) -> Result<u64, Value> {
    let idle = integer_or(arg, "ERR min-idle-time is not an integer")?;
    u64::try_from(idle).map_err(|_| Value::error("ERR min-idle-time must be a positive integer"))
}

/// Where XREADGROUP reads a stream's group: new entries (`>`), or the consumer's own pending
/// entries after an ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadFrom {
    New,
    After(StreamId),
}

fn parse_read_from(arg: &[u8]) -> Result<ReadFrom, Value> {
    match arg {
        b">" => Ok(ReadFrom::New),
        b"$" => Err(Value::error(
            "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
        )),
        _ => strict_id(arg).map(ReadFrom::After),
    }
}

fn nogroup_read(key: &[u8], group: &[u8]) -> Value {
    Value::error(format!(
        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
        text(key),
        text(group)
    ))
}

pub(super) fn xreadgroup(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    let now = Now {
        instant: Instant::now(),
        unix_ms: unix_ms(),
    };
    let version = ctx.server.config.read().redis_version;
    let parsed = match parse_readgroup(args, now, version) {
        Ok(parsed) => parsed,
        Err(error) => return error.into(),
    };
    match read_groups(ctx, &parsed) {
        Err(error) => error.into(),
        Ok(served) if !served.is_empty() => streams_reply(ctx.client.protocol, served).into(),
        Ok(_) => block_or_nil(ctx, args, &parsed),
    }
}

/// The outcome of `args` (an `XREADGROUP`) if it is sure to deliver nothing now: blocking (or,
/// on a blocked read's last look, the null reply), found without reading, so without a write.
/// A node of a cluster asks before it proposes a blocked read again, so that a reader waiting on
/// an idle stream adds nothing to the log. Any doubt answers `None` and the read is proposed:
/// an error to report, history to re-read, a stream or group that is missing, no `BLOCK`.
pub(super) fn nothing_to_deliver(ctx: &Ctx<'_>, args: &[Bytes]) -> Option<Outcome> {
    let now = Now {
        instant: Instant::now(),
        unix_ms: unix_ms(),
    };
    let version = ctx.server.config.read().redis_version;
    let parsed = parse_readgroup(args, now, version).ok()?;
    parsed.block?;
    let idle = parsed.keys.iter().zip(parsed.ids).all(|(key, id)| {
        matches!(parse_read_from(id), Ok(ReadFrom::New))
            && matches!(stream_at(ctx, key), Ok(Some(_)))
            && group_at(ctx, key, parsed.group, || Value::NullArray)
                .is_ok_and(|group| !group.may_deliver(parsed.claim))
    });
    idle.then(|| block_or_nil(ctx, args, &parsed))
}

/// Checks every stream, group and ID before reading any (an error changes nothing), then
/// reads. Returns the streams that have something to say.
fn read_groups(ctx: &Ctx<'_>, parsed: &ReadGroupArgs<'_>) -> Result<Vec<(Bytes, Value)>, Value> {
    if ctx.retry {
        // As Redis 7.2 unblocks a reader whose stream was deleted.
        for key in parsed.keys {
            if stream_at(ctx, key)?.is_none() {
                return Err(Value::error("UNBLOCKED the stream key no longer exists"));
            }
        }
    }
    let mut targets = Vec::with_capacity(parsed.keys.len());
    for (key, id) in parsed.keys.iter().zip(parsed.ids) {
        let group = group_at(ctx, key, parsed.group, || nogroup_read(key, parsed.group))?;
        targets.push((key, group, parse_read_from(id)?));
    }
    // Unbounded unless COUNT is given; a call that blocked reads at most 1000 (Redis's
    // XREAD_BLOCKED_DEFAULT_COUNT), so a low ID cannot make one wake-up serve a whole stream.
    let max = match parsed.count {
        0 if ctx.retry => 1000,
        0 => usize::MAX,
        count => usize::try_from(count).unwrap_or(usize::MAX),
    };
    let mut served = Vec::new();
    for (key, group, from) in targets {
        let nogroup = || nogroup_read(key, parsed.group);
        let entries = read_one(&group, from, max, ctx, parsed)
            .map_err(|error| library_error(&error, nogroup))?;
        if let Some(entries) = entries {
            served.push((key.clone(), entries));
        }
    }
    Ok(served)
}

/// One stream's part of the reply: history always answers (maybe empty), new entries only when
/// there are some.
fn read_one(
    group: &Group,
    from: ReadFrom,
    max: usize,
    ctx: &Ctx<'_>,
    parsed: &ReadGroupArgs<'_>,
) -> Result<Option<Value>, Error> {
    match from {
        // Looking before reading: with nothing to take, Redis 7.0 does not create the consumer,
        // and a blocked reader woken by an unrelated write journals nothing.
        ReadFrom::New if !group.may_deliver(parsed.claim) => Ok(None),
        ReadFrom::New => {
            let request = ReadNew {
                max,
                noack: parsed.noack,
                claim_min_idle_ms: parsed.claim,
            };
            let deliveries = group.read_with_in(parsed.consumer, request, ctx.commit())?;
            Ok((!deliveries.is_empty()).then(|| {
                let claim = parsed.claim.is_some();
                Value::Array(
                    deliveries
                        .iter()
                        .map(|d| delivery_value(d, claim))
                        .collect(),
                )
            }))
        }
        ReadFrom::After(after) => {
            let history = group.read_pending_in(parsed.consumer, after, max, ctx.commit())?;
            Ok(Some(Value::Array(
                history.iter().map(history_value).collect(),
            )))
        }
    }
}

/// A delivered entry. With CLAIM, Redis 8.4 adds the milliseconds since its previous delivery
/// and how many deliveries preceded this one (both 0 for an entry delivered for the first time).
fn delivery_value(delivery: &Delivery, claim: bool) -> Value {
    let mut item = vec![id_value(delivery.id()), entry_fields(delivery.entry())];
    if claim {
        let (idle, before) = match delivery.idle_ms {
            // A saturated counter stays the largest one.
            Some(idle) if delivery.deliveries == u32::MAX => (idle, u32::MAX),
            Some(idle) => (idle, delivery.deliveries.saturating_sub(1)),
            None => (0, 0),
        };
        item.push(int(idle));
        item.push(deliveries_value(before));
    }
    Value::Array(item)
}

/// A re-read pending entry; one deleted from the stream since is `[id, nil]`.
fn history_value(entry: &PendingDelivery) -> Value {
    match entry {
        PendingDelivery::Live(delivery) => delivery_value(delivery, false),
        PendingDelivery::Deleted(id) => Value::Array(vec![id_value(*id), Value::NullArray]),
    }
}

/// Nothing to read: block if asked (never inside MULTI), else the null reply.
fn block_or_nil(ctx: &Ctx<'_>, args: &[Bytes], parsed: &ReadGroupArgs<'_>) -> Outcome {
    let Some(block) = parsed.block else {
        return Value::NullArray.into();
    };
    if ctx.in_exec {
        return Value::NullArray.into();
    }
    // The dispatcher keeps the first call's deadline, so retries may return any.
    Outcome::Block {
        args: args.to_vec(),
        deadline: block.deadline(),
        timeout_reply: Value::NullArray,
        keys: parsed.keys.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::server::commands::parse::invalid_id;
    use crate::server::commands::parse::tests::{args, error_text};
    use crate::server::version::EARLIEST;

    fn now() -> Now {
        Now {
            instant: Instant::now(),
            unix_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn readgroup_options_parse_in_any_order() {
        let a = args("XREADGROUP CLAIM 50 GROUP g c COUNT 2 NOACK STREAMS s t > 0-1");
        let parsed = parse_readgroup(&a, now(), EARLIEST).unwrap();
        assert_eq!((parsed.group, parsed.consumer), (&b"g"[..], &b"c"[..]));
        assert_eq!(
            (parsed.count, parsed.noack, parsed.claim),
            (2, true, Some(50))
        );
        assert_eq!(parsed.keys, &a[10..12]);
        assert_eq!(parsed.ids, &a[12..]);
        assert_eq!(parsed.block, None);
        let negative = args("XREADGROUP GROUP g c COUNT -5 STREAMS s >");
        assert_eq!(
            parse_readgroup(&negative, now(), EARLIEST).unwrap().count,
            0
        );
    }

    #[test]
    fn readgroup_errors_match_redis() {
        let cases = [
            (
                "XREADGROUP GROUP g c STREAMS s > 0",
                "ERR Unbalanced XREAD list",
            ),
            ("XREADGROUP GROUP g c FOO STREAMS s >", "ERR syntax error"),
            (
                "XREADGROUP GROUP g c BLOCK x STREAMS s >",
                "ERR timeout is not an integer",
            ),
            (
                "XREADGROUP GROUP g c BLOCK -1 STREAMS s >",
                "ERR timeout is negative",
            ),
            (
                "XREADGROUP GROUP g c COUNT x STREAMS s >",
                "ERR value is not an integer",
            ),
            (
                "XREADGROUP COUNT 1 NOACK STREAMS s >",
                "ERR Missing GROUP option",
            ),
            (
                "XREADGROUP GROUP g c CLAIM x STREAMS s >",
                "ERR min-idle-time is not an",
            ),
            (
                "XREADGROUP GROUP g c CLAIM -0 STREAMS s >",
                "ERR min-idle-time is not an",
            ),
            (
                "XREADGROUP GROUP g c CLAIM -10 STREAMS s >",
                "ERR min-idle-time must be",
            ),
            (
                "XREADGROUP GROUP g c CLAIM STREAMS s >",
                "ERR min-idle-time is not an",
            ),
            (
                "XREADGROUP GROUP g CLAIM 50 c STREAMS s >",
                "ERR syntax error",
            ),
            ("XREADGROUP GROUP g c COUNT 1 NOACK", "ERR syntax error"),
        ];
        for (command, expected) in cases {
            let error = error_text(parse_readgroup(&args(command), now(), EARLIEST).unwrap_err());
            assert!(error.starts_with(expected), "{command}: {error}");
        }
        let huge = args("XREADGROUP GROUP g c BLOCK 9223372036854775807 STREAMS s >");
        let error = error_text(parse_readgroup(&huge, now(), EARLIEST).unwrap_err());
        assert_eq!(error, "ERR timeout is out of range");
    }

    #[test]
    fn block_timeouts() {
        let start = now();
        let a = args("XREADGROUP GROUP g c BLOCK 100 STREAMS s >");
        let parsed = parse_readgroup(&a, start, EARLIEST).unwrap();
        let deadline = start.instant + Duration::from_millis(100);
        assert_eq!(parsed.block, Some(Block::Until(deadline)));
        let forever = args("XREADGROUP GROUP g c BLOCK 0 STREAMS s >");
        let parsed = parse_readgroup(&forever, start, EARLIEST).unwrap();
        assert_eq!(parsed.block, Some(Block::Forever));
    }

    #[test]
    fn read_positions() {
        assert_eq!(parse_read_from(b">"), Ok(ReadFrom::New));
        assert_eq!(parse_read_from(b"0"), Ok(ReadFrom::After(StreamId::MIN)));
        assert!(error_text(parse_read_from(b"$").unwrap_err()).starts_with("ERR The $ ID"));
        assert_eq!(parse_read_from(b"+"), Err(invalid_id()));
    }
}
