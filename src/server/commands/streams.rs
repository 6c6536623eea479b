//! Stream commands: XADD, XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XSETID, XREAD and XCFGSET.
//!
//! A Redis entry's field/value pairs are the record's headers, in order, with an empty body. An
//! entry written through the library with a body shows it as one more field, `$body`, last.
//!
//! Arguments are parsed as Redis 7.0's `t_stream.c` parses them, quirks included (IDs read with
//! `strtoull`, integers with `string2ll`), so that replies and errors match byte for byte.

use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::parse::{
    self, IdRules, Parse, ParsedId, STRICT, c_str, integer, invalid_id, is, range_end, range_start,
    strict_id, strict_ids, syntax_error,
};
use super::{
    CommandSpec, Ctx, Flags, Outcome, entry_value, id_value, reply, store_error, wrong_arity,
};
use crate::id::StreamId;
use crate::log::{Entry, IdSpec, LogError, Retention};
use crate::server::keys::{stream_name, with_stream_name};
use crate::server::resp::{Protocol, Value};
use crate::store::{Store, StoreError};
use crate::stream::{Discard, IdempotentAppend, Message, Stream};

/// Redis's default `LIMIT` for `~` trimming: 100 times `stream-node-max-entries` (100).
const DEFAULT_APPROX_LIMIT: u64 = 10_000;
/// `XCFGSET IDMP-DURATION` range, in seconds.
const IDMP_DURATION_RANGE: std::ops::RangeInclusive<i64> = 1..=86_400;
/// `XCFGSET IDMP-MAXSIZE` range.
const IDMP_MAXSIZE_RANGE: std::ops::RangeInclusive<i64> = 1..=10_000;

pub(super) fn commands() -> Vec<CommandSpec> {
    let spec = |name, arity, flags, first_key, handler| CommandSpec {
        name,
        arity,
        flags: Flags::new(flags),
        first_key,
        last_key: first_key,
        step: first_key,
        handler,
    };
    vec![
        spec("xadd", -5, &["write", "denyoom", "fast"], 1, xadd),
        spec("xlen", 2, &["readonly", "fast"], 1, xlen),
        spec("xrange", -4, &["readonly"], 1, xrange),
        spec("xrevrange", -4, &["readonly"], 1, xrevrange),
        spec("xdel", -3, &["write", "fast"], 1, xdel),
        spec("xtrim", -4, &["write"], 1, xtrim),
        spec("xsetid", -3, &["write", "denyoom", "fast"], 1, xsetid),
        spec(
            "xread",
            -4,
            &["readonly", "blocking", "movablekeys"],
            0,
            xread,
        ),
        spec("xcfgset", -2, &["write", "fast"], 1, xcfgset),
    ]
}

// ---------------------------------------------------------------------------------------------
// Argument parsing: pure functions, unit tested below.
// ---------------------------------------------------------------------------------------------

/// What XADD and XTRIM trim by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Threshold {
    MaxLen(u64),
    MinId(StreamId),
}

/// A trimming request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Trim {
    threshold: Threshold,
    approximate: bool,
    /// Most entries removed (only with `~`); `None`: no limit.
    limit: Option<u64>,
}

/// XADD's idempotency option (Redis 8.6).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Idempotency {
    Explicit { producer: Bytes, iid: Bytes },
    Auto { producer: Bytes },
}

/// The options of XADD or XTRIM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct AddTrimArgs {
    trim: Option<Trim>,
    no_mkstream: bool,
    idempotency: Option<Idempotency>,
    /// XADD's ID (`None`: `*`) and where it is; the fields follow it.
    id: Option<ParsedId>,
    id_at: Option<usize>,
}

/// The options gathered while parsing, before they are checked together.
#[derive(Debug, Default)]
struct OptionScan {
    args: AddTrimArgs,
    threshold: Option<Threshold>,
    approximate: bool,
    limit: Option<u64>,
}

/// Redis's `streamParseAddOrTrimArgsOrReply`: the options of XADD (`xadd`) or XTRIM.
fn parse_add_or_trim(args: &[Bytes], xadd: bool) -> Result<AddTrimArgs, Value> {
    let mut scan = OptionScan::default();
    let mut parse = Parse::new(args, 2);
    while let Some(option) = parse.peek() {
        let at = parse.position();
        let more = parse.more_after_next();
        if xadd && c_str(option) == b"*" {
            scan.args.id_at = Some(at);
            break;
        }
        parse.next();
        if (is(option, "MAXLEN") || is(option, "MINID")) && more > 0 {
            parse_threshold(&mut parse, option, &mut scan)?;
        } else if is(option, "LIMIT") && more > 0 {
            let limit = u64::try_from(parse.integer()?)
                .map_err(|_| Value::error("ERR The LIMIT argument must be >= 0."))?;
            scan.limit = Some(limit);
        } else if xadd && is(option, "NOMKSTREAM") {
            scan.args.no_mkstream = true;
        } else if xadd && is(option, "IDMP") && more >= 2 {
            let (producer, iid) = (parse.value()?, parse.value()?);
            set_idempotency(&mut scan.args, explicit_idempotency(producer, iid)?)?;
        } else if xadd && is(option, "IDMPAUTO") && more >= 1 {
            set_idempotency(&mut scan.args, auto_idempotency(parse.value()?)?)?;
        } else if xadd {
            let rules = IdRules {
                ms_star: true,
                ..STRICT
            };
            scan.args.id = Some(parse::parse_id(option, rules).ok_or_else(invalid_id)?);
            scan.args.id_at = Some(at);
            break;
        } else {
            return Err(syntax_error());
        }
    }
    finish_options(scan, xadd)
}

/// `[=|~] threshold` after `MAXLEN` or `MINID` (the `option`, already read).
fn parse_threshold(
    parse: &mut Parse<'_>,
    option: &[u8],
    scan: &mut OptionScan,
) -> Result<(), Value> {
    if scan.threshold.is_some() {
        return Err(Value::error(
            "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
        ));
    }
    let by_id = is(option, "MINID");
    let more = parse.rest().len();
    scan.approximate = false;
    match parse.peek().map(|arg| c_str(arg)) {
        Some(b"~") if more >= 2 => {
            scan.approximate = true;
            parse.next();
        }
        Some(b"=") if more >= 2 => {
            parse.next();
        }
        _ => {}
    }
    let value = parse.value()?;
    scan.threshold = Some(if by_id {
        Threshold::MinId(strict_id(value)?)
    } else {
        let max_len = integer(value)?;
        Threshold::MaxLen(
            u64::try_from(max_len)
                .map_err(|_| Value::error("ERR The MAXLEN argument must be >= 0."))?,
        )
    });
    Ok(())
}

fn explicit_idempotency(producer: &Bytes, iid: &Bytes) -> Result<Idempotency, Value> {
    if producer.is_empty() {
        return Err(Value::error("ERR IDMP requires a non-empty producer ID"));
    }
    if iid.is_empty() {
        return Err(Value::error("ERR IDMP requires a non-empty idempotent ID"));
    }
    Ok(Idempotency::Explicit {
        producer: producer.clone(),
        iid: iid.clone(),
    })
}

fn auto_idempotency(producer: &Bytes) -> Result<Idempotency, Value> {
    if producer.is_empty() {
        return Err(Value::error(
            "ERR IDMPAUTO requires a non-empty producer ID",
        ));
    }
    Ok(Idempotency::Auto {
        producer: producer.clone(),
    })
}

fn set_idempotency(args: &mut AddTrimArgs, idempotency: Idempotency) -> Result<(), Value> {
    if args.idempotency.is_some() {
        return Err(Value::error("ERR IDMP/IDMPAUTO specified multiple times"));
    }
    args.idempotency = Some(idempotency);
    Ok(())
}

/// The checks Redis makes once every option is read, in its order.
fn finish_options(scan: OptionScan, xadd: bool) -> Result<AddTrimArgs, Value> {
    let OptionScan {
        mut args,
        threshold,
        approximate,
        limit,
    } = scan;
    if limit.is_some_and(|limit| limit > 0) && threshold.is_none() {
        return Err(Value::error(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if threshold.is_none() && !xadd {
        return Err(Value::error(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit.is_some() && !approximate {
        return Err(Value::error(
            "ERR syntax error, LIMIT cannot be used without the special ~ option",
        ));
    }
    let Some(threshold) = threshold else {
        return Ok(args);
    };
    let limit = match limit {
        // `LIMIT 0` lifts the limit.
        Some(limit) => (limit > 0).then_some(limit),
        None => approximate.then_some(DEFAULT_APPROX_LIMIT),
    };
    args.trim = Some(Trim {
        threshold,
        approximate,
        limit,
    });
    Ok(args)
}

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
fn parse_read(args: &[Bytes]) -> Result<ReadArgs, Value> {
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
                return Err(Value::error(
                    "ERR Unbalanced 'xread' list of streams: for each stream key an ID or '$' must be specified.",
                ));
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

/// What `XCFGSET … RETENTION` asks for (weir's own option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetentionPolicy {
    /// Work queue: entries go once every group acknowledged them.
    Acked,
    /// Age and size limits (`None`: unlimited).
    Limits {
        max_age_ms: Option<u64>,
        max_bytes: Option<u64>,
    },
}

/// XCFGSET's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ConfigArgs {
    duration_secs: Option<u64>,
    max_size: Option<u64>,
    retention: Option<RetentionPolicy>,
    /// `MAXLEN n`: `Some(None)` (n = 0) removes the limit.
    max_len: Option<Option<u64>>,
    /// `MAXBYTES n` outside `RETENTION LIMITS`: `Some(None)` (n = 0) removes the limit.
    max_bytes: Option<Option<u64>>,
    discard: Option<Discard>,
    /// `EXPIRE-IDLE ms`: `Some(None)` (ms = 0) keeps the stream for good.
    expire_idle_ms: Option<Option<u64>>,
}

/// `XCFGSET key [IDMP-DURATION s] [IDMP-MAXSIZE n] [RETENTION ACKED | RETENTION LIMITS [MAXAGE
/// ms] [MAXBYTES n]] [DISCARD OLD|NEW] [MAXLEN n] [MAXBYTES n] [EXPIRE-IDLE ms]`. A `MAXBYTES`
/// right after `RETENTION LIMITS` (or its `MAXAGE`) is the whole-segment retention size; anywhere
/// else it is the stream's size limit, which `DISCARD` applies to.
fn parse_config(args: &[Bytes]) -> Result<ConfigArgs, Value> {
    if args.len() <= 2 {
        return Err(Value::error(
            "ERR At least one parameter must be specified: IDMP-DURATION or IDMP-MAXSIZE",
        ));
    }
    let mut config = ConfigArgs::default();
    let mut parse = Parse::new(args, 2);
    while let Some(option) = parse.next() {
        let value = parse.value()?;
        if is(option, "IDMP-DURATION") {
            let secs = ranged(value, IDMP_DURATION_RANGE, "IDMP-DURATION", "seconds")?;
            config.duration_secs = Some(secs);
        } else if is(option, "IDMP-MAXSIZE") {
            let size = ranged(value, IDMP_MAXSIZE_RANGE, "IDMP-MAXSIZE", "entries")?;
            config.max_size = Some(size);
        } else if is(option, "RETENTION") && is(value, "ACKED") {
            config.retention = Some(RetentionPolicy::Acked);
        } else if is(option, "RETENTION") && is(value, "LIMITS") {
            config.retention = Some(parse_limits(&mut parse)?);
        } else if is(option, "DISCARD") && is(value, "OLD") {
            config.discard = Some(Discard::Old);
        } else if is(option, "DISCARD") && is(value, "NEW") {
            config.discard = Some(Discard::New);
        } else if is(option, "MAXLEN") {
            config.max_len = Some(limit(value)?);
        } else if is(option, "MAXBYTES") {
            config.max_bytes = Some(limit(value)?);
        } else if is(option, "EXPIRE-IDLE") {
            config.expire_idle_ms = Some(limit(value)?);
        } else {
            return Err(syntax_error());
        }
    }
    Ok(config)
}

/// A non-negative integer where 0 means no limit.
fn limit(arg: &[u8]) -> Result<Option<u64>, Value> {
    let value = parse::non_negative(arg)?;
    Ok((value > 0).then_some(value))
}

/// An integer within `range`, with XCFGSET's error.
fn ranged(
    arg: &[u8],
    range: std::ops::RangeInclusive<i64>,
    name: &str,
    unit: &str,
) -> Result<u64, Value> {
    let value = integer(arg)?;
    if !range.contains(&value) {
        return Err(Value::error(format!(
            "ERR {name} must be between {} and {} {unit}",
            range.start(),
            range.end()
        )));
    }
    u64::try_from(value).map_err(|_| syntax_error())
}

/// `[MAXAGE ms] [MAXBYTES n]` after `RETENTION LIMITS`. 0 means no limit.
fn parse_limits(parse: &mut Parse<'_>) -> Result<RetentionPolicy, Value> {
    let (mut max_age_ms, mut max_bytes) = (None, None);
    while let [option, value, ..] = parse.rest() {
        let slot = if is(option, "MAXAGE") {
            &mut max_age_ms
        } else if is(option, "MAXBYTES") {
            &mut max_bytes
        } else {
            break;
        };
        *slot = limit(value)?;
        // Past the option and its value.
        parse.nth(1);
    }
    Ok(RetentionPolicy::Limits {
        max_age_ms,
        max_bytes,
    })
}

// ---------------------------------------------------------------------------------------------
// Replies.
// ---------------------------------------------------------------------------------------------

fn entries_value(entries: &[Entry]) -> Value {
    Value::Array(entries.iter().map(entry_value).collect())
}

/// A library error as Redis words the stream errors it corresponds to.
fn stream_error(error: &StoreError) -> Value {
    match error {
        StoreError::Log(LogError::IdTooSmall { .. }) => Value::error(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item",
        ),
        StoreError::Log(LogError::IdZero) => {
            Value::error("ERR The ID specified in XADD must be greater than 0-0")
        }
        StoreError::Log(LogError::IdExhausted) => exhausted(),
        StoreError::StreamFull { .. } | StoreError::StreamFullBytes { .. } => {
            Value::error(format!("FULL {error}"))
        }
        StoreError::Log(LogError::Encode(_)) => {
            Value::error("ERR Elements are too large to be stored")
        }
        other => store_error(other),
    }
}

fn exhausted() -> Value {
    Value::error("ERR The stream has exhausted the last possible ID, unable to add more items")
}

// ---------------------------------------------------------------------------------------------
// Handlers.
// ---------------------------------------------------------------------------------------------

/// The stream of `key` in the client's database, if it exists.
fn existing(ctx: &Ctx<'_>, store: &Store, key: &[u8]) -> Option<Arc<Stream>> {
    with_stream_name(ctx.client.db, key, |name| store.get(name))
}

fn xadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(xadd_reply(ctx, args))
}

fn xadd_reply(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let parsed = parse_add_or_trim(args, true)?;
    if parsed.idempotency.is_some() && parsed.id.is_some() {
        return Err(Value::error(
            "ERR IDMP/IDMPAUTO can be used only with auto-generated IDs",
        ));
    }
    let fields = parsed.id_at.map_or(&[][..], |at| &args[at + 1..]);
    if fields.len() < 2 || fields.len() % 2 != 0 {
        return Err(Value::error(wrong_arity("xadd")));
    }
    let id = match parsed.id {
        None => IdSpec::Auto,
        Some(ParsedId::Exact(StreamId::MIN)) => {
            return Err(stream_error(&StoreError::Log(LogError::IdZero)));
        }
        Some(ParsedId::Exact(id)) => IdSpec::Explicit(id),
        Some(ParsedId::MsStar(ms)) => IdSpec::AutoSeq(ms),
    };
    let store = ctx.store()?;
    let stream = match existing(ctx, &store, &args[1]) {
        Some(stream) => stream,
        None if parsed.no_mkstream => return Ok(Value::Null),
        None => store
            .stream(&stream_name(ctx.client.db, &args[1]))
            .map_err(|e| store_error(&e))?,
    };
    if stream.last_id() == StreamId::MAX {
        return Err(exhausted());
    }
    let message = message_of(fields, id);
    let (added, appended) = append(&stream, message, parsed.idempotency)?;
    if appended && let Some(trim) = parsed.trim {
        apply_trim(&stream, trim)?;
    }
    Ok(id_value(added))
}

/// A message whose headers are the field/value pairs, with an empty body.
fn message_of(fields: &[Bytes], id: IdSpec) -> Message {
    let mut message = Message::new(Bytes::new()).id_spec(id);
    message.headers = fields
        .chunks_exact(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    message
}

/// Appends, idempotently when asked; returns the entry's ID and whether it is new.
fn append(
    stream: &Stream,
    message: Message,
    idempotency: Option<Idempotency>,
) -> Result<(StreamId, bool), Value> {
    let outcome = match idempotency {
        None => stream.append(message).map(IdempotentAppend::Appended),
        Some(Idempotency::Explicit { producer, iid }) => {
            stream.append_idempotent(message, &producer, &iid)
        }
        Some(Idempotency::Auto { producer }) => {
            let iid = auto_iid(&message.headers);
            stream.append_idempotent(message, &producer, &iid)
        }
    };
    match outcome.map_err(|e| stream_error(&e))? {
        IdempotentAppend::Appended(appended) => Ok((appended.id, true)),
        IdempotentAppend::Duplicate(id) => Ok((id, false)),
    }
}

/// IDMPAUTO's iid: a hash of the field/value pairs. Redis treats the same pairs in another
/// order as the same message, so they are hashed sorted.
fn auto_iid(headers: &[(Bytes, Bytes)]) -> Vec<u8> {
    let mut pairs = headers.to_vec();
    pairs.sort();
    crate::idempotency::content_iid(&pairs, b"")
}

fn apply_trim(stream: &Stream, trim: Trim) -> Result<u64, Value> {
    let removed = match trim.threshold {
        Threshold::MaxLen(max_len) => stream.trim_max_len(max_len, trim.approximate, trim.limit),
        Threshold::MinId(min_id) => stream.trim_min_id(min_id, trim.approximate, trim.limit),
    };
    removed.map_err(|e| store_error(&e))
}

fn xlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(ctx.store().map(|store| {
        let len = existing(ctx, &store, &args[1]).map_or(0, |stream| stream.len());
        Value::Integer(i64::try_from(len).unwrap_or(i64::MAX))
    }))
}

fn xrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(range_reply(ctx, args, false))
}

fn xrevrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(range_reply(ctx, args, true))
}

/// XRANGE key start end [COUNT n] and XREVRANGE key end start [COUNT n].
fn range_reply(ctx: &Ctx<'_>, args: &[Bytes], reverse: bool) -> Result<Value, Value> {
    let (start_arg, end_arg) = if reverse {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let start = range_start(start_arg)?;
    let end = range_end(end_arg)?;
    let count = parse_range_count(&args[4..])?;
    let store = ctx.store()?;
    let Some(stream) = existing(ctx, &store, &args[1]) else {
        return Ok(Value::Array(Vec::new()));
    };
    let max = match count {
        // Redis answers a zero or negative COUNT with a null array.
        Some(count) if count <= 0 => return Ok(Value::NullArray),
        Some(count) => usize::try_from(count).unwrap_or(usize::MAX),
        None => usize::MAX,
    };
    let entries = if reverse {
        stream.range_rev(Bound::Included(end), Bound::Included(start), max)
    } else {
        stream.range(Bound::Included(start), Bound::Included(end), max)
    };
    let entries = entries.map_err(|e| store_error(&e))?;
    if !entries.is_empty() {
        stream.ensure_durable().map_err(|e| store_error(&e))?;
    }
    Ok(entries_value(&entries))
}

/// `[COUNT n]`, repeatable (the last wins).
fn parse_range_count(options: &[Bytes]) -> Result<Option<i64>, Value> {
    let mut count = None;
    let mut parse = Parse::new(options, 0);
    while let Some(option) = parse.next() {
        if !is(option, "COUNT") {
            return Err(syntax_error());
        }
        count = Some(parse.integer()?);
    }
    Ok(count)
}

fn xdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(xdel_reply(ctx, args))
}

fn xdel_reply(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let store = ctx.store()?;
    // Redis looks the key up before checking the IDs: a missing key answers 0 whatever they are.
    let Some(stream) = existing(ctx, &store, &args[1]) else {
        return Ok(Value::Integer(0));
    };
    let ids = strict_ids(&args[2..])?;
    let deleted = stream.delete(&ids).map_err(|e| store_error(&e))?;
    Ok(Value::Integer(i64::try_from(deleted).unwrap_or(i64::MAX)))
}

fn xtrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(xtrim_reply(ctx, args))
}

fn xtrim_reply(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let parsed = parse_add_or_trim(args, false)?;
    let store = ctx.store()?;
    let (Some(stream), Some(trim)) = (existing(ctx, &store, &args[1]), parsed.trim) else {
        return Ok(Value::Integer(0));
    };
    let removed = apply_trim(&stream, trim)?;
    Ok(Value::Integer(i64::try_from(removed).unwrap_or(i64::MAX)))
}

/// XSETID's options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SetIdArgs {
    entries_added: Option<u64>,
    max_deleted_id: Option<StreamId>,
}

fn parse_setid_options(id: StreamId, options: &[Bytes]) -> Result<SetIdArgs, Value> {
    let mut parsed = SetIdArgs::default();
    let mut parse = Parse::new(options, 0);
    while let Some(option) = parse.next() {
        let value = parse.value()?;
        if is(option, "ENTRIESADDED") {
            let added = u64::try_from(integer(value)?)
                .map_err(|_| Value::error("ERR entries_added must be positive"))?;
            parsed.entries_added = Some(added);
        } else if is(option, "MAXDELETEDID") {
            let max_deleted = strict_id(value)?;
            if id < max_deleted {
                return Err(Value::error(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
            parsed.max_deleted_id = Some(max_deleted);
        } else {
            return Err(syntax_error());
        }
    }
    Ok(parsed)
}

fn xsetid(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(xsetid_reply(ctx, args))
}

fn xsetid_reply(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let id = strict_id(&args[2])?;
    let options = parse_setid_options(id, &args[3..])?;
    let store = ctx.store()?;
    let stream = existing(ctx, &store, &args[1]).ok_or_else(|| Value::error("ERR no such key"))?;
    check_setid(&stream, id, options)?;
    // Redis leaves the largest deleted ID alone when given 0-0.
    let max_deleted = options.max_deleted_id.filter(|&id| id != StreamId::MIN);
    match stream.set_last_id(id, options.entries_added, max_deleted) {
        Ok(()) => Ok(Value::ok()),
        Err(StoreError::Log(LogError::IdTooSmall { .. })) => Err(setid_too_small()),
        Err(error) => Err(store_error(&error)),
    }
}

/// Redis's checks against the stream's content: the new last ID may not be below the last live
/// entry, and the entries added may not be fewer than the live entries.
fn check_setid(stream: &Stream, id: StreamId, options: SetIdArgs) -> Result<(), Value> {
    let len = stream.len();
    if len == 0 {
        return Ok(());
    }
    let newest = stream.last_entry().map_err(|e| store_error(&e))?;
    if newest.is_some_and(|entry| id < entry.id) {
        return Err(setid_too_small());
    }
    if options.entries_added.is_some_and(|added| added < len) {
        return Err(Value::error(
            "ERR The entries_added specified in XSETID is smaller than the target stream length",
        ));
    }
    Ok(())
}

fn setid_too_small() -> Value {
    Value::error("ERR The ID specified in XSETID is smaller than the target stream top item")
}

fn xcfgset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(xcfgset_reply(ctx, args))
}

fn xcfgset_reply(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let settings = parse_config(args)?;
    let store = ctx.store()?;
    let stream = existing(ctx, &store, &args[1]).ok_or_else(|| Value::error("ERR no such key"))?;
    apply_config(&stream, settings).map_err(|e| store_error(&e))?;
    Ok(Value::ok())
}

fn apply_config(stream: &Stream, settings: ConfigArgs) -> Result<(), StoreError> {
    let mut config = stream.config();
    if let Some(secs) = settings.duration_secs {
        config.idempotency_duration_ms = Some(secs.saturating_mul(1000));
    }
    if let Some(size) = settings.max_size {
        config.idempotency_max_size = Some(size);
    }
    match settings.retention {
        Some(RetentionPolicy::Acked) => config.work_queue = true,
        Some(RetentionPolicy::Limits {
            max_age_ms,
            max_bytes,
        }) => {
            config.work_queue = false;
            stream.set_retention(Retention {
                max_age_ms,
                max_bytes,
            })?;
        }
        None => {}
    }
    if let Some(max_len) = settings.max_len {
        config.max_len = max_len;
    }
    if let Some(max_bytes) = settings.max_bytes {
        config.max_bytes = max_bytes;
    }
    if let Some(discard) = settings.discard {
        config.discard = discard;
    }
    if let Some(expire_idle_ms) = settings.expire_idle_ms {
        config.expire_idle_ms = expire_idle_ms;
    }
    stream.set_config(config)?;
    if settings.duration_secs.is_some() || settings.max_size.is_some() {
        // Redis's XCFGSET forgets every producer's keys when it changes the window.
        stream.clear_idempotency()?;
    }
    Ok(())
}

fn xread(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
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
    let read = parse_read(args)?;
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
            stream.ensure_durable().map_err(|e| store_error(&e))?;
            served.push((Value::Bulk(target.key.clone()), entries_value(&entries)));
        }
    }
    if !served.is_empty() {
        return Ok(Outcome::Reply(read_reply(ctx.client.protocol, served)));
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

/// RESP3: a map of key to entries; RESP2: an array of `[key, entries]`.
fn read_reply(protocol: Protocol, served: Vec<(Value, Value)>) -> Value {
    match protocol {
        Protocol::Resp3 => Value::Map(served),
        Protocol::Resp2 => Value::Array(
            served
                .into_iter()
                .map(|(key, entries)| Value::Array(vec![key, entries]))
                .collect(),
        ),
    }
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

    fn args(text: &str) -> Vec<Bytes> {
        text.split(' ')
            .map(|word| Bytes::copy_from_slice(word.as_bytes()))
            .collect()
    }

    fn error_text(value: Value) -> String {
        match value {
            Value::Error(text) => text,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn xadd_options() {
        let parsed =
            parse_add_or_trim(&args("XADD s NOMKSTREAM MAXLEN ~ 10 5-* f v"), true).unwrap();
        assert!(parsed.no_mkstream);
        assert_eq!(parsed.id, Some(ParsedId::MsStar(5)));
        assert_eq!(parsed.id_at, Some(6));
        assert_eq!(
            parsed.trim,
            Some(Trim {
                threshold: Threshold::MaxLen(10),
                approximate: true,
                limit: Some(DEFAULT_APPROX_LIMIT),
            })
        );
        let parsed = parse_add_or_trim(&args("XADD s MINID = 3-1 * f v"), true).unwrap();
        assert_eq!(parsed.id, None);
        assert_eq!(parsed.id_at, Some(5));
        assert_eq!(
            parsed.trim,
            Some(Trim {
                threshold: Threshold::MinId(StreamId::new(3, 1)),
                approximate: false,
                limit: None,
            })
        );
        let parsed = parse_add_or_trim(&args("XADD s IDMP p i * f v"), true).unwrap();
        assert_eq!(
            parsed.idempotency,
            Some(Idempotency::Explicit {
                producer: Bytes::from_static(b"p"),
                iid: Bytes::from_static(b"i"),
            })
        );
        let parsed = parse_add_or_trim(&args("XADD s IDMPAUTO p * f v"), true).unwrap();
        assert_eq!(
            parsed.idempotency,
            Some(Idempotency::Auto {
                producer: Bytes::from_static(b"p")
            })
        );
    }

    #[test]
    fn trim_options() {
        let parsed = parse_add_or_trim(&args("XTRIM s MAXLEN ~ 5 LIMIT 0"), false).unwrap();
        let trim = parsed.trim.unwrap();
        assert_eq!(trim.limit, None);
        let parsed = parse_add_or_trim(&args("XTRIM s MINID ~ 5 LIMIT 7"), false).unwrap();
        assert_eq!(parsed.trim.unwrap().limit, Some(7));
        assert_eq!(
            parsed.trim.unwrap().threshold,
            Threshold::MinId(StreamId::new(5, 0))
        );
        let parsed = parse_add_or_trim(&args("XTRIM s MAXLEN 3"), false).unwrap();
        assert_eq!(parsed.trim.unwrap().threshold, Threshold::MaxLen(3));
        // With nothing after it, `~` is read as the threshold.
        let error = parse_add_or_trim(&args("XTRIM s MAXLEN ~"), false).unwrap_err();
        assert_eq!(
            error_text(error),
            "ERR value is not an integer or out of range"
        );
    }

    #[test]
    fn option_errors_match_redis() {
        let cases = [
            (
                "XADD s LIMIT 5 * f v",
                "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
            ),
            (
                "XADD s LIMIT 0 * f v",
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ),
            (
                "XADD s MAXLEN 5 LIMIT 5 * f v",
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ),
            (
                "XADD s MAXLEN -1 * f v",
                "ERR The MAXLEN argument must be >= 0.",
            ),
            (
                "XADD s MAXLEN ~ 1 LIMIT -1 * f v",
                "ERR The LIMIT argument must be >= 0.",
            ),
            (
                "XADD s MAXLEN 1 MINID 5 * f v",
                "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
            ),
            (
                "XADD s MAXLEN ~ * f v",
                "ERR value is not an integer or out of range",
            ),
            (
                "XADD s MINID + * f v",
                "ERR Invalid stream ID specified as stream command argument",
            ),
            (
                "XADD s - f v",
                "ERR Invalid stream ID specified as stream command argument",
            ),
            (
                "XADD s IDMP p i IDMP q j * f v",
                "ERR IDMP/IDMPAUTO specified multiple times",
            ),
            (
                "XADD s IDMPAUTO p IDMP q j * f v",
                "ERR IDMP/IDMPAUTO specified multiple times",
            ),
            (
                "XADD s IDMP  i * f v",
                "ERR IDMP requires a non-empty producer ID",
            ),
            (
                "XADD s IDMP p  * f v",
                "ERR IDMP requires a non-empty idempotent ID",
            ),
            (
                "XADD s IDMPAUTO  * f v",
                "ERR IDMPAUTO requires a non-empty producer ID",
            ),
            (
                "XADD s IDMP p * f v",
                "ERR Invalid stream ID specified as stream command argument",
            ),
        ];
        for (command, expected) in cases {
            let error = parse_add_or_trim(&args(command), true).unwrap_err();
            assert_eq!(error_text(error), expected, "{command}");
        }
        let cases = [
            (
                "XTRIM s LIMIT 0",
                "ERR syntax error, XTRIM must be called with a trimming strategy",
            ),
            ("XTRIM s FOO 1", "ERR syntax error"),
            ("XTRIM s NOMKSTREAM MAXLEN 1", "ERR syntax error"),
            (
                "XTRIM s MAXLEN = 1 LIMIT 1",
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ),
            ("XTRIM s MAXLEN 100 extra", "ERR syntax error"),
        ];
        for (command, expected) in cases {
            let error = parse_add_or_trim(&args(command), false).unwrap_err();
            assert_eq!(error_text(error), expected, "{command}");
        }
    }

    #[test]
    fn xread_options() {
        let read = parse_read(&args("XREAD COUNT -3 STREAMS a b 0 $")).unwrap();
        assert_eq!(
            (read.count, read.block, read.keys_at, read.streams),
            (0, None, 4, 2)
        );
        let read = parse_read(&args("XREAD BLOCK 0 COUNT 2 STREAMS a 0")).unwrap();
        assert_eq!((read.count, read.block), (2, Some(None)));
        let read = parse_read(&args("XREAD BLOCK 100 STREAMS a 0")).unwrap();
        assert!(matches!(read.block, Some(Some(_))));
        let cases = [
            (
                "XREAD STREAMS a b 0",
                "ERR Unbalanced 'xread' list of streams: for each stream key an ID or '$' must be specified.",
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
            let error = parse_read(&args(command)).unwrap_err();
            assert_eq!(error_text(error), expected, "{command}");
        }
    }

    #[test]
    fn xcfgset_options() {
        let config = parse_config(&args("XCFGSET s IDMP-DURATION 5 IDMP-MAXSIZE 10")).unwrap();
        assert_eq!((config.duration_secs, config.max_size), (Some(5), Some(10)));
        let config = parse_config(&args("XCFGSET s RETENTION acked")).unwrap();
        assert_eq!(config.retention, Some(RetentionPolicy::Acked));
        let config =
            parse_config(&args("XCFGSET s RETENTION limits MAXAGE 60000 MAXBYTES 0")).unwrap();
        assert_eq!(
            config.retention,
            Some(RetentionPolicy::Limits {
                max_age_ms: Some(60_000),
                max_bytes: None
            })
        );
        let config = parse_config(&args("XCFGSET s RETENTION LIMITS IDMP-MAXSIZE 3")).unwrap();
        assert_eq!(config.max_size, Some(3));
        let config = parse_config(&args(
            "XCFGSET s RETENTION LIMITS MAXAGE 5 DISCARD new MAXLEN 3 EXPIRE-IDLE 0",
        ))
        .unwrap();
        assert_eq!(
            (config.discard, config.max_len, config.expire_idle_ms),
            (Some(Discard::New), Some(Some(3)), Some(None))
        );
        let config = parse_config(&args(
            "XCFGSET s RETENTION LIMITS MAXBYTES 9 DISCARD new MAXBYTES 4096",
        ))
        .unwrap();
        assert_eq!(
            (config.retention, config.max_bytes),
            (
                Some(RetentionPolicy::Limits {
                    max_age_ms: None,
                    max_bytes: Some(9)
                }),
                Some(Some(4096))
            )
        );
        assert_eq!(
            parse_config(&args("XCFGSET s MAXBYTES 0"))
                .unwrap()
                .max_bytes,
            Some(None)
        );
        let config = parse_config(&args("XCFGSET s DISCARD OLD MAXLEN 0")).unwrap();
        assert_eq!(
            (config.discard, config.max_len),
            (Some(Discard::Old), Some(None))
        );
        let cases = [
            ("XCFGSET s IDMP-DURATION", "ERR syntax error"),
            ("XCFGSET s INVALID", "ERR syntax error"),
            (
                "XCFGSET s IDMP-DURATION 0",
                "ERR IDMP-DURATION must be between 1 and 86400 seconds",
            ),
            (
                "XCFGSET s IDMP-MAXSIZE 10001",
                "ERR IDMP-MAXSIZE must be between 1 and 10000 entries",
            ),
            (
                "XCFGSET s IDMP-DURATION 000",
                "ERR value is not an integer or out of range",
            ),
            (
                "XCFGSET s IDMP-MAXSIZE INVALID IDMP-DURATION",
                "ERR value is not an integer or out of range",
            ),
            ("XCFGSET s RETENTION forever", "ERR syntax error"),
            ("XCFGSET s DISCARD sometimes", "ERR syntax error"),
            (
                "XCFGSET s MAXLEN -1",
                "ERR value is out of range, must be positive",
            ),
        ];
        for (command, expected) in cases {
            let error = parse_config(&args(command)).unwrap_err();
            assert_eq!(error_text(error), expected, "{command}");
        }
        assert!(parse_config(&args("XCFGSET s")).is_err());
    }

    #[test]
    fn setid_options() {
        let id = StreamId::new(5, 0);
        let parsed = parse_setid_options(id, &args("ENTRIESADDED 3 MAXDELETEDID 4-0")).unwrap();
        assert_eq!(parsed.entries_added, Some(3));
        assert_eq!(parsed.max_deleted_id, Some(StreamId::new(4, 0)));
        let cases = [
            ("ENTRIESADDED -1", "ERR entries_added must be positive"),
            (
                "MAXDELETEDID 6-0",
                "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
            ),
            (
                "MAXDELETEDID -",
                "ERR Invalid stream ID specified as stream command argument",
            ),
            ("ENTRIESADDED", "ERR syntax error"),
            ("FOO 1", "ERR syntax error"),
        ];
        for (options, expected) in cases {
            let error = parse_setid_options(id, &args(options)).unwrap_err();
            assert_eq!(error_text(error), expected, "{options}");
        }
    }

    #[test]
    fn entries_show_fields_then_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stream = store.stream(b"s").unwrap();
        let with_body = Message::new("payload")
            .header("k", "v")
            .id(StreamId::new(1, 1));
        stream.append(with_body).unwrap();
        let fields = args("f v g ");
        stream
            .append(message_of(&fields, IdSpec::Explicit(StreamId::new(2, 0))))
            .unwrap();
        let entries = stream
            .range(Bound::Unbounded, Bound::Unbounded, 10)
            .unwrap();
        let bulks = |items: &[&'static str]| {
            Value::Array(items.iter().map(|item| Value::bulk(*item)).collect())
        };
        // Compared as sent: the fields are encoded from the records themselves.
        let wire = |value: Value| {
            let mut out = bytes::BytesMut::new();
            value.encode(Protocol::Resp2, &mut out);
            out
        };
        assert_eq!(
            wire(entries_value(&entries)),
            wire(Value::Array(vec![
                Value::Array(vec![
                    Value::bulk("1-1"),
                    bulks(&["k", "v", "$body", "payload"])
                ]),
                Value::Array(vec![Value::bulk("2-0"), bulks(&["f", "v", "g", ""])]),
            ]))
        );
        drop((entries, stream));
        store.close().unwrap();
    }

    #[test]
    fn auto_iid_ignores_field_order() {
        let pairs = |list: &[(&'static str, &'static str)]| -> Vec<(Bytes, Bytes)> {
            list.iter()
                .map(|(f, v)| {
                    (
                        Bytes::from_static(f.as_bytes()),
                        Bytes::from_static(v.as_bytes()),
                    )
                })
                .collect()
        };
        let a = auto_iid(&pairs(&[("a", "1"), ("b", "2")]));
        let b = auto_iid(&pairs(&[("b", "2"), ("a", "1")]));
        let c = auto_iid(&pairs(&[("a", "2"), ("b", "1")]));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
