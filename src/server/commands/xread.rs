//! XREAD.

use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::errors::unbalanced_streams;
use super::lookup::existing;
use super::parse::{self, Parse, c_str, is, strict_id, syntax_error};
use super::replies::{entries_value, streams_reply};
use super::{Ctx, Outcome, store_error};
use crate::id::StreamId;
use crate::server::resp::Value;
use crate::server::version::RedisVersion;
use crate::store::Store;
use crate::stream::Stream;

/// XREAD's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReadArgs {
    /// Most entries per stream; 0: all.
    count: u64,
    /// `None`: no BLOCK; `Some(None)`: forever; `Some(Some(deadline))`.
    block: Option<Option<Instant>>,
    /// Index of the first key; as many IDs follow the keys.
    keys_at: usize,
    streams: usize,
}

/// Parses XREAD's options.
fn parse_read(args: &[Bytes], version: RedisVersion) -> Result<ReadArgs, Value> {
    let mut read = ReadArgs {
        count: 0,
        block: None,
        keys_at: 0,
        streams: 0,
    };
    let mut parse = Parse::new(args, 1);
    while let Some(option) = parse.next() {
        let more = parse.rest().len();
        if is(option, "BLOCK") && more > 0 {
            // The dispatcher keeps the first call's deadline across retries, so unrelated
            // writes never extend the wait.
            read.block = Some(parse::block(parse.value()?, Instant::now())?.deadline());
        } else if is(option, "COUNT") && more > 0 {
            read.count = u64::try_from(parse.integer()?).unwrap_or(0);
        } else if is(option, "STREAMS") && more > 0 {
            read.keys_at = parse.position();
            let listed = parse.rest().len();
            if listed % 2 != 0 {
                return Err(unbalanced_streams("xread", version));
            }
            read.streams = listed / 2;
            return Ok(read);
        } else {
            return Err(syntax_error());
        }
    }
    // STREAMS is mandatory.
    Err(syntax_error())
}

pub(super) fn xread(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    match xread_outcome(ctx, args) {
        Ok(outcome) => outcome,
        Err(error) => Outcome::Reply(error),
    }
}

/// One stream XREAD looks at: its key and the ID after which entries are wanted.
struct ReadTarget {
    key: Bytes,
    stream: Option<Arc<Stream>>,
    after: StreamId,
    /// The ID argument was `$` or `+`: a blocked retry must use `after` instead.
    resolved: bool,
}

fn xread_outcome(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<Outcome, Value> {
    let read = parse_read(args, ctx.server.config.read().redis_version)?;
    let store = ctx.store()?;
    let targets = read_targets(ctx, &store, args, &read)?;
    let max = usize::try_from(read.count)
        .ok()
        .filter(|&count| count > 0)
        .unwrap_or(usize::MAX);
    let mut served = Vec::new();
    for target in &targets {
        let Some(stream) = &target.stream else {
            continue;
        };
        let entries = stream
            .range(Bound::Excluded(target.after), Bound::Unbounded, max)
            .map_err(|e| store_error(&e))?;
        if !entries.is_empty() {
            stream.commit(ctx.commit()).map_err(|e| store_error(&e))?;
            served.push((target.key.clone(), entries_value(&entries)));
        }
    }
    if !served.is_empty() {
        return Ok(Outcome::Reply(streams_reply(ctx.client.protocol, served)));
    }
    match read.block {
        // Inside MULTI a read never blocks: it answers as if it timed out.
        Some(deadline) if !ctx.in_exec => Ok(Outcome::Block {
            args: blocked_args(args, &read, &targets),
            deadline,
            timeout_reply: Value::NullArray,
            keys: targets.iter().map(|target| target.key.clone()).collect(),
        }),
        _ => Ok(Outcome::Reply(Value::NullArray)),
    }
}

/// Resolves each key's ID: `$` is the stream's last ID (0-0 for a missing key), `+` is just
/// before the last entry (Redis 7.4), anything else a strict ID.
fn read_targets(
    ctx: &Ctx<'_>,
    store: &Store,
    args: &[Bytes],
    read: &ReadArgs,
) -> Result<Vec<ReadTarget>, Value> {
    let keys = &args[read.keys_at..read.keys_at + read.streams];
    let ids = &args[read.keys_at + read.streams..];
    keys.iter()
        .zip(ids)
        .map(|(key, id)| {
            let stream = existing(ctx, store, key);
            let (after, resolved) = match c_str(id) {
                b"$" => (stream.as_ref().map_or(StreamId::MIN, |s| s.last_id()), true),
                b"+" => (before_last_entry(stream.as_deref())?, true),
                b">" => return Err(Value::error(
                    "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                )),
                _ => (strict_id(id)?, false),
            };
            Ok(ReadTarget {
                key: key.clone(),
                stream,
                after,
                resolved,
            })
        })
        .collect()
}

/// The ID after which only the last live entry comes; without entries, the stream's last ID
/// (so a blocked read waits for new ones).
fn before_last_entry(stream: Option<&Stream>) -> Result<StreamId, Value> {
    let Some(stream) = stream else {
        return Ok(StreamId::MIN);
    };
    let newest = stream.last_entry().map_err(|e| store_error(&e))?;
    Ok(match newest {
        Some(entry) => entry.id.predecessor().unwrap_or(StreamId::MIN),
        None => stream.last_id(),
    })
}

/// The arguments a blocked XREAD runs again with: `$` and `+` resolved to the IDs of this call.
fn blocked_args(args: &[Bytes], read: &ReadArgs, targets: &[ReadTarget]) -> Vec<Bytes> {
    let mut again = args.to_vec();
    let ids_at = read.keys_at + read.streams;
    for (slot, target) in again[ids_at..].iter_mut().zip(targets) {
        if target.resolved {
            *slot = Bytes::from(target.after.to_string());
        }
    }
    again
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::commands::parse::tests::{args, error_text};
    use crate::server::version::{EARLIEST, LATEST};

    #[test]
    fn xread_options() {
        let read = parse_read(&args("XREAD COUNT -3 STREAMS a b 0 $"), EARLIEST).unwrap();
        assert_eq!(
            (read.count, read.block, read.keys_at, read.streams),
            (0, None, 4, 2)
        );
        let read = parse_read(&args("XREAD BLOCK 0 COUNT 2 STREAMS a 0"), EARLIEST).unwrap();
        assert_eq!((read.count, read.block), (2, Some(None)));
        let read = parse_read(&args("XREAD BLOCK 100 STREAMS a 0"), EARLIEST).unwrap();
        assert!(matches!(read.block, Some(Some(_))));
        let cases = [
            (
                "XREAD STREAMS a b 0",
                "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
            ),
            ("XREAD BLOCK -1 STREAMS a 0", "ERR timeout is negative"),
            (
                "XREAD BLOCK 1.5 STREAMS a 0",
                "ERR timeout is not an integer or out of range",
            ),
            (
                "XREAD BLOCK @5 STREAMS a 0",
                "ERR timeout is not an integer or out of range",
            ),
            ("XREAD FOO STREAMS a 0", "ERR syntax error"),
            ("XREAD COUNT 1 BLOCK", "ERR syntax error"),
        ];
        for (command, expected) in cases {
            let error = parse_read(&args(command), EARLIEST).unwrap_err();
            assert_eq!(error_text(error), expected, "{command}");
        }
    }

    #[test]
    fn an_unbalanced_stream_list_is_worded_as_the_reported_version_words_it() {
        let unbalanced = |command: &str, version| {
            let request = args(command);
            let error = match command {
                c if c.starts_with("XREADGROUP") => unbalanced_streams("xreadgroup", version),
                _ => parse_read(&request, version).unwrap_err(),
            };
            error_text(error)
        };
        let v7_2 = RedisVersion::new(7, 2, 0);
        assert_eq!(
            unbalanced("XREAD STREAMS a b 0", v7_2),
            "ERR Unbalanced 'xread' list of streams: for each stream key an ID or '$' must be specified."
        );
        assert_eq!(
            unbalanced("XREAD STREAMS a b 0", LATEST),
            "ERR Unbalanced 'xread' list of streams: for each stream key an ID, '+', or '$' must be specified."
        );
        assert_eq!(
            unbalanced("XREADGROUP", LATEST),
            "ERR Unbalanced 'xreadgroup' list of streams: for each stream key an ID or '>' must be specified."
        );
        assert!(unbalanced("XREAD STREAMS a b 0", EARLIEST).contains("Unbalanced XREAD list"));
    }
}
