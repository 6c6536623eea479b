//! Consumer-group commands: XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM, XNACK and
//! XINFO.
//!
//! Arguments are checked in the order Redis checks them, with Redis's error texts, so a client
//! sees the same first error; then they become calls on the library's groups. Numbers and IDs are
//! parsed with Redis's own rules (`string2ll`, `string2ull`), which are stricter than Rust's in
//! places (`+5`, `007`) and looser in others (` 5` as an ID part).
//!
//! An entry replies as `[id, [field, value, …]]`: the fields are the record's headers, in order,
//! and a non-empty body (an entry appended through the library) follows as a last field named
//! `$body`.

use std::borrow::Cow;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::parse::{
    self, Block, IdRules, Now, Parse, ParsedId, STRICT, integer, integer_or, invalid_id, is,
    maybe_strict_id, parse_id, range_end, range_start, strict_id, strict_ids, syntax_error,
};
use super::{
    CommandSpec, Ctx, Flags, Outcome, entry_fields, entry_value, id_value, reply, store_error,
};
use crate::StreamId;
use crate::group::durable::GroupStoreError;
use crate::group::{AutoClaim, ClaimOptions, GroupError, GroupPolicy, PendingQuery, ReadNew};
use crate::server::keys::{key_of, stream_name, with_stream_name};
use crate::server::resp::{Protocol, Value};
use crate::server::state::unix_ms;
use crate::store::StoreError;
use crate::stream::{Backlog, Delivery, Group, PendingDelivery, Stream};

pub(super) fn commands() -> Vec<CommandSpec> {
    let spec = |name, arity, flags, first_key, handler| CommandSpec {
        name,
        arity,
        flags: Flags::new(flags),
        first_key,
        last_key: first_key,
        step: i32::from(first_key != 0),
        handler,
    };
    vec![
        spec("xgroup", -2, &["write"], 2, xgroup),
        spec("xinfo", -2, &["readonly"], 2, xinfo),
        // The keys follow STREAMS, wherever that is.
        spec(
            "xreadgroup",
            -7,
            &["write", "blocking", "movablekeys"],
            0,
            xreadgroup,
        ),
        spec("xack", -4, &["write", "fast"], 1, xack),
        spec("xpending", -3, &["readonly"], 1, xpending),
        spec("xclaim", -6, &["write", "fast"], 1, xclaim),
        spec("xautoclaim", -6, &["write", "fast"], 1, xautoclaim),
        spec("xnack", -7, &["write", "fast"], 1, xnack),
    ]
}

// ---------------------------------------------------------------------------------------------
// Replies and lookups shared by the commands.

fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

fn bulk(bytes: &[u8]) -> Value {
    Value::Bulk(Bytes::copy_from_slice(bytes))
}

fn int(value: u64) -> Value {
    Value::Integer(i64::try_from(value).unwrap_or(i64::MAX))
}

fn opt_int(value: Option<u64>) -> Value {
    value.map_or(Value::Null, int)
}

fn field(name: &'static str, value: Value) -> (Value, Value) {
    (Value::bulk(name), value)
}

/// A delivery counter. weir's counters stop at `u32::MAX`, which stands for Redis's largest
/// counter (what `XNACK … FATAL` sets), so that clients comparing with it keep working.
fn deliveries_value(deliveries: u32) -> Value {
    if deliveries == u32::MAX {
        Value::Integer(i64::MAX)
    } else {
        Value::Integer(i64::from(deliveries))
    }
}

/// `NOGROUP` as XPENDING, XCLAIM, XAUTOCLAIM and XNACK word it.
fn nogroup(key: &[u8], group: &[u8]) -> Value {
    Value::error(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        text(key),
        text(group)
    ))
}

/// `NOGROUP` as XGROUP and XINFO CONSUMERS word it.
fn nogroup_for_key(key: &[u8], group: &[u8]) -> Value {
    Value::error(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        text(group),
        text(key)
    ))
}

/// A library error as a reply: a group that vanished meanwhile (another client destroyed it)
/// gets the command's own `NOGROUP` reply.
fn library_error(error: &StoreError, nogroup: impl FnOnce() -> Value) -> Value {
    match error {
        StoreError::Groups(GroupStoreError::Group(GroupError::NoGroup { .. })) => nogroup(),
        other => store_error(other),
    }
}

/// The stream under `key` in the client's database, if it exists.
fn stream_at(ctx: &Ctx<'_>, key: &[u8]) -> Result<Option<Arc<Stream>>, Value> {
    let store = ctx.store()?;
    Ok(with_stream_name(ctx.client.db, key, |name| store.get(name)))
}

/// The group of the stream under `key`; `missing` is the reply when either does not exist.
fn group_at(
    ctx: &Ctx<'_>,
    key: &[u8],
    group: &[u8],
    missing: impl Fn() -> Value,
) -> Result<Group, Value> {
    let stream = stream_at(ctx, key)?.ok_or_else(&missing)?;
    stream
        .group(group)
        .map_err(|error| library_error(&error, &missing))
}

/// A container command's table entry: name, Redis arity (the container's name counts), handler.
type Subcommand = (
    &'static str,
    i32,
    fn(&mut Ctx<'_>, &[Bytes]) -> Result<Value, Value>,
);

/// Runs the subcommand `args[1]` of `container`, with Redis's errors for an unknown subcommand
/// and a wrong argument count.
fn dispatch(ctx: &mut Ctx<'_>, args: &[Bytes], container: &str, table: &[Subcommand]) -> Outcome {
    let Some(name) = args.get(1) else {
        return Value::error(super::wrong_arity(container)).into();
    };
    let Some(&(sub, arity, handler)) = table.iter().find(|(sub, ..)| is(name, sub)) else {
        return Value::error(format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            text(name),
            container.to_ascii_uppercase()
        ))
        .into();
    };
    let count = i64::try_from(args.len()).unwrap_or(i64::MAX);
    let arity = i64::from(arity);
    let fits = if arity >= 0 {
        count == arity
    } else {
        count >= -arity
    };
    if !fits {
        return Value::error(super::wrong_arity(&format!("{container}|{sub}"))).into();
    }
    reply(handler(ctx, args))
}

/// Redis's `addReplySubcommandSyntaxError`.
fn subcommand_syntax(container: &str, sub: &[u8]) -> Value {
    Value::error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        text(sub),
        container.to_ascii_uppercase()
    ))
}

fn help(lines: &[&str]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|line| Value::simple(line.to_string()))
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// XGROUP

fn xgroup(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    const TABLE: &[Subcommand] = &[
        ("create", -5, xgroup_create),
        ("createconsumer", 5, xgroup_createconsumer),
        ("delconsumer", 5, xgroup_delconsumer),
        ("destroy", 4, xgroup_destroy),
        ("setid", -5, xgroup_setid),
        ("setpolicy", -4, xgroup_setpolicy),
        ("help", 2, xgroup_help),
    ];
    dispatch(ctx, args, "xgroup", TABLE)
}

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "    * ACKWAIT <ms>, MAXDELIVER <count>, DEADLETTER <key>, MAXACKPENDING <count>",
    "      Set the group's delivery policy (see SETPOLICY).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "SETPOLICY <key> <groupname> [ACKWAIT <ms>] [MAXDELIVER <count>] [DEADLETTER <key>] [MAXACKPENDING <count>]",
    "    Replace the group's delivery policy; options not given are turned off:",
    "    * ACKWAIT: an entry unacknowledged this long is delivered again by XREADGROUP >.",
    "    * MAXDELIVER: entries delivered this many times are no longer handed out.",
    "    * DEADLETTER: such entries are moved to this stream instead.",
    "    * MAXACKPENDING: no new entries are handed out while this many are pending.",
    "HELP",
    "    Prints this help.",
];

fn xgroup_help(_: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(help(XGROUP_HELP))
}

/// `XGROUP CREATE` options.
#[derive(Debug, Default, PartialEq)]
struct CreateOptions {
    mkstream: bool,
    entries_read: Option<u64>,
    policy: GroupPolicy,
}

/// Parses `XGROUP CREATE` options (`args` starts after the ID).
fn parse_create_options(db: u8, sub: &[u8], args: &[Bytes]) -> Result<CreateOptions, Value> {
    let mut options = CreateOptions::default();
    let mut parse = Parse::new(args, 0);
    while let Some(option) = parse.next() {
        if is(option, "MKSTREAM") {
            options.mkstream = true;
            continue;
        }
        let Some(value) = parse.next() else {
            return Err(subcommand_syntax("xgroup", sub));
        };
        if is(option, "ENTRIESREAD") {
            options.entries_read = parse_entries_read(value)?;
        } else if !policy_option(db, &mut options.policy, option, value)? {
            return Err(subcommand_syntax("xgroup", sub));
        }
    }
    Ok(options)
}

/// `ENTRIESREAD n`: a count, or -1 for unknown.
fn parse_entries_read(arg: &[u8]) -> Result<Option<u64>, Value> {
    match integer(arg)? {
        -1 => Ok(None),
        read => u64::try_from(read)
            .map(Some)
            .map_err(|_| Value::error("ERR value for ENTRIESREAD must be positive or -1")),
    }
}

/// Applies one of weir's policy options; `false` if `option` is not one.
fn policy_option(
    db: u8,
    policy: &mut GroupPolicy,
    option: &[u8],
    value: &[u8],
) -> Result<bool, Value> {
    if is(option, "ACKWAIT") {
        policy.ack_wait_ms = Some(positive(value, "ACKWAIT")?);
    } else if is(option, "MAXDELIVER") {
        let limit = positive(value, "MAXDELIVER")?;
        policy.max_deliver = Some(
            u32::try_from(limit)
                .map_err(|_| Value::error("ERR MAXDELIVER must be between 1 and 4294967295"))?,
        );
    } else if is(option, "DEADLETTER") {
        policy.dead_letter = Some(stream_name(db, value));
    } else if is(option, "MAXACKPENDING") {
        policy.max_ack_pending = Some(positive(value, "MAXACKPENDING")?);
    } else {
        return Ok(false);
    }
    Ok(true)
}

/// A policy limit: an integer of at least 1.
fn positive(arg: &[u8], option: &str) -> Result<u64, Value> {
    u64::try_from(integer(arg)?)
        .ok()
        .filter(|&value| value >= 1)
        .ok_or_else(|| Value::error(format!("ERR {option} must be a positive integer")))
}

/// What every XGROUP subcommand but HELP checks first, as Redis does: the key must exist, and
/// for all but CREATE and DESTROY the group too.
fn xgroup_target(
    ctx: &Ctx<'_>,
    args: &[Bytes],
    needs_group: bool,
) -> Result<(Arc<Stream>, Option<Group>), Value> {
    let stream = stream_at(ctx, &args[2])?.ok_or_else(key_required)?;
    match stream.group(&args[3]) {
        Ok(group) => Ok((stream, Some(group))),
        Err(_) if needs_group => Err(nogroup_for_key(&args[2], &args[3])),
        Err(_) => Ok((stream, None)),
    }
}

fn key_required() -> Value {
    Value::error(
        "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
    )
}

/// The group `xgroup_target` found when it had to.
fn required(group: Option<Group>, args: &[Bytes]) -> Result<Group, Value> {
    group.ok_or_else(|| nogroup_for_key(&args[2], &args[3]))
}

fn xgroup_create(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let options = parse_create_options(ctx.client.db, &args[1], &args[5..])?;
    let name = stream_name(ctx.client.db, &args[2]);
    let existing = ctx.store()?.get(&name);
    if existing.is_none() && !options.mkstream {
        return Err(key_required());
    }
    let position = if &args[4][..] == b"$" {
        existing
            .as_ref()
            .map_or(StreamId::MIN, |stream| stream.last_id())
    } else {
        strict_id(&args[4])?
    };
    // MKSTREAM creates the stream only once nothing can fail any more, as in Redis.
    let stream = match existing {
        Some(stream) => stream,
        None => ctx.store()?.stream(&name).map_err(|e| store_error(&e))?,
    };
    match stream.create_group_at(&args[3], position, options.entries_read, options.policy) {
        Ok(_) => Ok(Value::ok()),
        Err(StoreError::Groups(GroupStoreError::Group(GroupError::GroupExists { .. }))) => {
            Err(Value::error("BUSYGROUP Consumer Group name already exists"))
        }
        Err(error) => Err(store_error(&error)),
    }
}

fn xgroup_setid(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let (stream, group) = xgroup_target(ctx, args, true)?;
    let group = required(group, args)?;
    if args.len() != 5 && args.len() != 7 {
        return Err(subcommand_syntax("xgroup", &args[1]));
    }
    let position = if &args[4][..] == b"$" {
        stream.last_id()
    } else {
        let rules = IdRules {
            strict: false,
            ..STRICT
        };
        match parse_id(&args[4], rules) {
            Some(ParsedId::Exact(id)) => id,
            _ => return Err(invalid_id()),
        }
    };
    let mut entries_read = None;
    if args.len() == 7 {
        if !is(&args[5], "ENTRIESREAD") {
            return Err(subcommand_syntax("xgroup", &args[1]));
        }
        entries_read = parse_entries_read(&args[6])?;
    }
    group
        .set_position(position, entries_read)
        .map_err(|error| library_error(&error, || nogroup_for_key(&args[2], &args[3])))?;
    Ok(Value::ok())
}

fn xgroup_setpolicy(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let mut policy = GroupPolicy::default();
    for pair in args[4..].chunks(2) {
        let [option, value] = pair else {
            return Err(subcommand_syntax("xgroup", &args[1]));
        };
        if !policy_option(ctx.client.db, &mut policy, option, value)? {
            return Err(subcommand_syntax("xgroup", &args[1]));
        }
    }
    let (_, group) = xgroup_target(ctx, args, true)?;
    required(group, args)?
        .set_policy(policy)
        .map_err(|error| library_error(&error, || nogroup_for_key(&args[2], &args[3])))?;
    Ok(Value::ok())
}

fn xgroup_destroy(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let (stream, _) = xgroup_target(ctx, args, false)?;
    let existed = stream
        .destroy_group(&args[3])
        .map_err(|e| store_error(&e))?;
    Ok(Value::Integer(i64::from(existed)))
}

fn xgroup_createconsumer(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let (_, group) = xgroup_target(ctx, args, true)?;
    let created = required(group, args)?
        .create_consumer(&args[4])
        .map_err(|error| library_error(&error, || nogroup_for_key(&args[2], &args[3])))?;
    Ok(Value::Integer(i64::from(created)))
}

fn xgroup_delconsumer(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let (_, group) = xgroup_target(ctx, args, true)?;
    let dropped = required(group, args)?
        .delete_consumer(&args[4])
        .map_err(|error| library_error(&error, || nogroup_for_key(&args[2], &args[3])))?;
    Ok(int(dropped as u64))
}

// ---------------------------------------------------------------------------------------------
// XREADGROUP

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
fn parse_readgroup(args: &[Bytes], now: Now) -> Result<ReadGroupArgs<'_>, Value> {
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
                return Err(Value::error(
                    "ERR Unbalanced 'xreadgroup' list of streams: for each stream key an ID or '>' must be specified.",
                ));
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

fn xreadgroup(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    let now = Now {
        instant: Instant::now(),
        unix_ms: unix_ms(),
    };
    let parsed = match parse_readgroup(args, now) {
        Ok(parsed) => parsed,
        Err(error) => return error.into(),
    };
    match read_groups(ctx, &parsed) {
        Err(error) => error.into(),
        Ok(served) if !served.is_empty() => streams_reply(ctx.client.protocol, served).into(),
        Ok(_) => block_or_nil(ctx, args, &parsed),
    }
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
        let entries = read_one(&group, from, max, ctx.retry, parsed)
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
    retry: bool,
    parsed: &ReadGroupArgs<'_>,
) -> Result<Option<Value>, StoreError> {
    match from {
        // Waking up for an unrelated write, a blocked reader looks before it reads, so that it
        // journals nothing when there is nothing to take.
        ReadFrom::New if retry && !group.may_deliver(parsed.claim) => Ok(None),
        ReadFrom::New => {
            let request = ReadNew {
                max,
                noack: parsed.noack,
                claim_min_idle_ms: parsed.claim,
            };
            let deliveries = group.read_with(parsed.consumer, request)?;
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
            let history = group.read_pending(parsed.consumer, after, max)?;
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

/// XREAD's reply shape: a map of stream to entries in RESP3, pairs in RESP2.
fn streams_reply(protocol: Protocol, served: Vec<(Bytes, Value)>) -> Value {
    match protocol {
        Protocol::Resp3 => Value::Map(
            served
                .into_iter()
                .map(|(key, entries)| (Value::Bulk(key), entries))
                .collect(),
        ),
        Protocol::Resp2 => Value::Array(
            served
                .into_iter()
                .map(|(key, entries)| Value::Array(vec![Value::Bulk(key), entries]))
                .collect(),
        ),
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

// ---------------------------------------------------------------------------------------------
// XACK

fn xack(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply((|| {
        // A missing stream or group acknowledges nothing, whatever the IDs.
        let Ok(group) = group_at(ctx, &args[1], &args[2], || Value::Null) else {
            return Ok(Value::Integer(0));
        };
        let ids = strict_ids(&args[3..])?;
        let acked = group
            .ack(&ids)
            .map_err(|error| library_error(&error, || Value::Integer(0)))?;
        Ok(int(acked as u64))
    })())
}

// ---------------------------------------------------------------------------------------------
// XPENDING

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

fn xpending(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply((|| {
        let range = parse_pending(args)?;
        let missing = || nogroup(&args[1], &args[2]);
        let stream = stream_at(ctx, &args[1])?.ok_or_else(missing)?;
        let name = &args[2][..];
        let result = match range {
            None => stream.inspect_groups(|state, _| {
                state.pending_summary(name).map(|summary| {
                    summary_value(
                        summary.count,
                        summary.first,
                        summary.last,
                        &summary.consumers,
                    )
                })
            }),
            Some(range) => {
                let now_ms = stream.now_ms();
                let query = PendingQuery {
                    start: range.start,
                    end: range.end,
                    count: range.count,
                    consumer: range.consumer,
                    min_idle_ms: range.min_idle_ms,
                };
                stream.inspect_groups(|state, _| {
                    state
                        .pending_range(name, &query, now_ms)
                        .map(|rows| Value::Array(rows.iter().map(pending_row).collect()))
                })
            }
        };
        result.map_err(|_| missing())
    })())
}

/// `[count, first, last, [[consumer, count]…]]`, or `[0, nil, nil, nil]` for an empty PEL.
fn summary_value(
    count: usize,
    first: Option<StreamId>,
    last: Option<StreamId>,
    consumers: &[(&[u8], usize)],
) -> Value {
    let (Some(first), Some(last)) = (first, last) else {
        return Value::Array(vec![
            Value::Integer(0),
            Value::Null,
            Value::Null,
            Value::NullArray,
        ]);
    };
    let owners = consumers
        .iter()
        .map(|(name, held)| Value::Array(vec![bulk(name), Value::bulk(held.to_string())]))
        .collect();
    Value::Array(vec![
        int(count as u64),
        id_value(first),
        id_value(last),
        Value::Array(owners),
    ])
}

fn pending_row(row: &crate::group::PendingRow<'_>) -> Value {
    Value::Array(vec![
        id_value(row.id),
        bulk(row.consumer),
        int(row.idle_ms),
        deliveries_value(row.deliveries),
    ])
}

// ---------------------------------------------------------------------------------------------
// XCLAIM

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

fn xclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply((|| {
        let missing = || nogroup(&args[1], &args[2]);
        let group = group_at(ctx, &args[1], &args[2], missing)?;
        let claim = parse_claim_args(&args[4..])?;
        let claimed = group
            .claim(&args[3], &claim.ids, claim.options)
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

// ---------------------------------------------------------------------------------------------
// XAUTOCLAIM

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

fn xautoclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply((|| {
        let request = parse_autoclaim(&args[4..])?;
        let missing = || nogroup(&args[1], &args[2]);
        let group = group_at(ctx, &args[1], &args[2], missing)?;
        let claimed = group
            .auto_claim(&args[3], request)
            .map_err(|error| library_error(&error, missing))?;
        Ok(Value::Array(vec![
            id_value(claimed.next),
            claimed_value(&claimed.deliveries, request.justid),
            Value::Array(claimed.deleted.iter().map(|&id| id_value(id)).collect()),
        ]))
    })())
}

// ---------------------------------------------------------------------------------------------
// XNACK

/// How XNACK changes the delivery counters of the entries it releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NackMode {
    /// The delivery does not count: one less.
    Silent,
    /// Unchanged.
    Fail,
    /// Never to be delivered again: the largest counter.
    Fatal,
}

/// `XNACK key group mode IDS numids id… [RETRYCOUNT count] [FORCE] [DELAY ms]`; DELAY is
/// weir's: the entries become deliverable again only after it.
#[derive(Debug, PartialEq)]
struct NackArgs {
    mode: NackMode,
    ids: Vec<StreamId>,
    retry_count: Option<u32>,
    force: bool,
    delay: Duration,
}

/// Parses from the mode on.
fn parse_nack(args: &[Bytes]) -> Result<NackArgs, Value> {
    let mode = match &args[0] {
        mode if is(mode, "SILENT") => NackMode::Silent,
        mode if is(mode, "FAIL") => NackMode::Fail,
        mode if is(mode, "FATAL") => NackMode::Fatal,
        _ => return Err(syntax_error()),
    };
    if !is(&args[1], "IDS") {
        return Err(syntax_error());
    }
    let numids = parse::string2ll(&args[2])
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| Value::error("ERR Number of IDs must be a positive integer"))?;
    let listed = &args[3..];
    if numids > listed.len() {
        return Err(Value::error(
            "ERR The `numids` parameter must match the number of arguments",
        ));
    }
    let (ids, options) = listed.split_at(numids);
    let mut parsed = NackArgs {
        mode,
        ids: Vec::new(),
        retry_count: None,
        force: false,
        delay: Duration::ZERO,
    };
    parse_nack_options(options, &mut parsed)?;
    parsed.ids = strict_ids(ids)?;
    Ok(parsed)
}

fn parse_nack_options(options: &[Bytes], parsed: &mut NackArgs) -> Result<(), Value> {
    let mut parse = Parse::new(options, 0);
    while let Some(option) = parse.next() {
        if is(option, "FORCE") {
            parsed.force = true;
            continue;
        }
        let value = parse.value()?;
        if is(option, "RETRYCOUNT") {
            let count = u64::try_from(integer(value)?)
                .map_err(|_| Value::error("ERR RETRYCOUNT must be a non-negative integer"))?;
            parsed.retry_count = Some(u32::try_from(count).unwrap_or(u32::MAX));
        } else if is(option, "DELAY") {
            let ms = u64::try_from(integer(value)?)
                .map_err(|_| Value::error("ERR DELAY must be a non-negative integer"))?;
            parsed.delay = Duration::from_millis(ms);
        } else {
            return Err(syntax_error());
        }
    }
    Ok(())
}

/// The counter a released entry gets: from its current one (`None` for an entry FORCE adds,
/// which Redis starts at 0, or at the largest value for FATAL).
fn nack_counter(mode: NackMode, retry_count: Option<u32>, current: Option<u32>) -> u32 {
    if let Some(count) = retry_count {
        return count;
    }
    match (mode, current) {
        (NackMode::Fatal, _) => u32::MAX,
        (NackMode::Silent, Some(count)) => count.saturating_sub(1),
        (NackMode::Fail, Some(count)) => count,
        (_, None) => 0,
    }
}

fn xnack(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply((|| {
        let nack = parse_nack(&args[3..])?;
        let missing = || nogroup(&args[1], &args[2]);
        let group = group_at(ctx, &args[1], &args[2], missing)?;
        let counter = |current| nack_counter(nack.mode, nack.retry_count, current);
        let released = group
            .release(&nack.ids, counter, nack.force, nack.delay)
            .map_err(|error| library_error(&error, missing))?;
        Ok(int(released as u64))
    })())
}

// ---------------------------------------------------------------------------------------------
// XINFO

fn xinfo(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    const TABLE: &[Subcommand] = &[
        ("consumers", 4, xinfo_consumers),
        ("groups", 3, xinfo_groups),
        ("stream", -3, xinfo_stream),
        ("help", 2, xinfo_help),
    ];
    dispatch(ctx, args, "xinfo", TABLE)
}

const XINFO_HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

fn xinfo_help(_: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(help(XINFO_HELP))
}

/// Every XINFO subcommand but HELP needs the stream.
fn xinfo_stream_at(ctx: &Ctx<'_>, key: &[u8]) -> Result<Arc<Stream>, Value> {
    stream_at(ctx, key)?.ok_or_else(|| Value::error("ERR no such key"))
}

fn xinfo_consumers(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let stream = xinfo_stream_at(ctx, &args[2])?;
    let now_ms = stream.now_ms();
    stream
        .inspect_groups(|state, _| {
            state.consumers_info(&args[3], now_ms).map(|consumers| {
                let maps = consumers.iter().map(|consumer| {
                    Value::Map(vec![
                        field("name", bulk(consumer.name)),
                        field("pending", int(consumer.pending as u64)),
                        field("idle", int(consumer.idle_ms)),
                        field(
                            "inactive",
                            consumer.inactive_ms.map_or(Value::Integer(-1), int),
                        ),
                    ])
                });
                Value::Array(maps.collect())
            })
        })
        .map_err(|_| nogroup_for_key(&args[2], &args[3]))
}

fn xinfo_groups(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let stream = xinfo_stream_at(ctx, &args[2])?;
    let db = ctx.client.db;
    Ok(Value::Array(stream.inspect_backlog(|info, backlog| {
        group_info_value(db, info, &backlog)
    })))
}

/// Redis 7's fields, then weir's, so clients that read fields by name keep working.
fn group_info_value(db: u8, info: &crate::group::GroupInfo<'_>, backlog: &Backlog) -> Value {
    let policy = info.policy;
    let dead_letter = policy.dead_letter.as_deref().map_or(Value::Null, |name| {
        key_of(db, name).map_or_else(|| bulk(name), Value::Bulk)
    });
    Value::Map(vec![
        field("name", bulk(info.name)),
        field("consumers", int(info.consumers as u64)),
        field("pending", int(info.pending as u64)),
        field("last-delivered-id", id_value(info.last_delivered)),
        field("entries-read", opt_int(info.entries_read)),
        field("lag", opt_int(info.lag)),
        field("ack-wait", opt_int(policy.ack_wait_ms)),
        field("max-deliver", opt_int(policy.max_deliver.map(u64::from))),
        field("dead-letter", dead_letter),
        field("max-ack-pending", opt_int(policy.max_ack_pending)),
        field("exhausted", int(info.exhausted as u64)),
        // How long the longest-waiting pending entry has waited since its last delivery.
        field("oldest-pending-ms", opt_int(backlog.oldest_pending_ms)),
        // How long the oldest entry not yet delivered has waited since it was appended.
        field(
            "oldest-undelivered-ms",
            opt_int(backlog.oldest_undelivered_ms),
        ),
        // Why the dead-letter stream refused the last dead letters (they stay pending).
        field(
            "dead-letter-refused",
            backlog
                .dead_letter_refused
                .as_deref()
                .map_or(Value::Null, |reason| bulk(reason.as_bytes())),
        ),
    ])
}

/// `XINFO STREAM key [FULL [COUNT count]]`: `None` for the short form, else how many entries
/// and pending entries to list (0: all).
fn parse_stream_info(args: &[Bytes]) -> Result<Option<usize>, Value> {
    if args.len() <= 3 {
        return Ok(None);
    }
    if !is(&args[3], "FULL") {
        return Err(subcommand_syntax("xinfo", &args[1]));
    }
    if args.len() == 4 {
        return Ok(Some(10));
    }
    if args.len() != 6 || !is(&args[4], "COUNT") {
        return Err(subcommand_syntax("xinfo", &args[1]));
    }
    let count = integer(&args[5])?;
    Ok(Some(usize::try_from(count).unwrap_or(10)))
}

fn xinfo_stream(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let stream = xinfo_stream_at(ctx, &args[2])?;
    let full = parse_stream_info(args)?;
    let mut fields = stream_fields(&stream);
    match full {
        None => {
            let groups = stream.group_names().len();
            fields.push(field("groups", int(groups as u64)));
            fields.push(field("first-entry", edge_entry(&stream, false)?));
            fields.push(field("last-entry", edge_entry(&stream, true)?));
        }
        Some(count) => {
            let limit = if count == 0 { usize::MAX } else { count };
            let entries = stream
                .range(Bound::Unbounded, Bound::Unbounded, limit)
                .map_err(|e| store_error(&e))?;
            fields.push(field(
                "entries",
                Value::Array(entries.iter().map(entry_value).collect()),
            ));
            fields.push(field("groups", full_groups(&stream, limit)));
        }
    }
    fields.extend(limit_fields(&stream)?);
    Ok(Value::Map(fields))
}

/// weir's own fields, after Redis's: the stream's size and limits, what an operator compares.
fn limit_fields(stream: &Stream) -> Result<Vec<(Value, Value)>, Value> {
    let config = stream.config();
    let limit = |value: Option<u64>| value.map_or(Value::Null, int);
    let stored = stream.stored_bytes().map_err(|e| store_error(&e))?;
    Ok(vec![
        field("stored-bytes", int(stored)),
        field("max-len", limit(config.max_len)),
        field("max-bytes", limit(config.max_bytes)),
        field("discard", Value::bulk(config.discard.as_str())),
    ])
}

/// The fields both forms of XINFO STREAM start with.
fn stream_fields(stream: &Stream) -> Vec<(Value, Value)> {
    let facts = stream.inspect_groups(|_, log| log.facts());
    // weir keeps no radix tree: a segment plays the part of one of its nodes.
    let keys = if facts.length == 0 {
        0
    } else {
        stream.log().segment_count() as u64
    };
    vec![
        field("length", int(facts.length)),
        field("radix-tree-keys", int(keys)),
        field("radix-tree-nodes", int(keys + 1)),
        field("last-generated-id", id_value(facts.last_id)),
        field("max-deleted-entry-id", id_value(facts.max_deleted_id)),
        field("entries-added", int(facts.entries_added)),
        field("recorded-first-entry-id", id_value(facts.first_id)),
    ]
}

/// The first or last entry, or nil.
fn edge_entry(stream: &Stream, last: bool) -> Result<Value, Value> {
    let entries = if last {
        stream.range_rev(Bound::Unbounded, Bound::Unbounded, 1)
    } else {
        stream.range(Bound::Unbounded, Bound::Unbounded, 1)
    }
    .map_err(|e| store_error(&e))?;
    Ok(entries.first().map_or(Value::Null, entry_value))
}

/// XINFO STREAM FULL's groups: each with its PEL and consumers, `limit` pending entries each.
fn full_groups(stream: &Stream, limit: usize) -> Value {
    let now_ms = stream.now_ms();
    stream.inspect_groups(|state, log| {
        let infos = state.groups_info(log);
        let groups = infos.iter().map(|info| {
            let all = pending_query(None, limit);
            let pending = state
                .pending_range(info.name, &all, now_ms)
                .unwrap_or_default();
            let rows = pending.iter().map(|row| {
                Value::Array(vec![
                    id_value(row.id),
                    bulk(row.consumer),
                    int(now_ms.saturating_sub(row.idle_ms)),
                    deliveries_value(row.deliveries),
                ])
            });
            Value::Map(vec![
                field("name", bulk(info.name)),
                field("last-delivered-id", id_value(info.last_delivered)),
                field("entries-read", opt_int(info.entries_read)),
                field("lag", opt_int(info.lag)),
                field("pel-count", int(info.pending as u64)),
                field("pending", Value::Array(rows.collect())),
                field("consumers", full_consumers(state, info.name, limit, now_ms)),
            ])
        });
        Value::Array(groups.collect())
    })
}

fn pending_query(consumer: Option<&[u8]>, limit: usize) -> PendingQuery<'_> {
    PendingQuery {
        start: StreamId::MIN,
        end: StreamId::MAX,
        count: limit,
        consumer,
        min_idle_ms: None,
    }
}

fn full_consumers(
    state: &crate::group::GroupsState,
    group: &[u8],
    limit: usize,
    now_ms: u64,
) -> Value {
    let consumers = state.consumers_info(group, now_ms).unwrap_or_default();
    let maps = consumers.iter().map(|consumer| {
        let mine = pending_query(Some(consumer.name), limit);
        let rows = state
            .pending_range(group, &mine, now_ms)
            .unwrap_or_default()
            .iter()
            .map(|row| {
                Value::Array(vec![
                    id_value(row.id),
                    int(now_ms.saturating_sub(row.idle_ms)),
                    deliveries_value(row.deliveries),
                ])
            })
            .collect();
        Value::Map(vec![
            field("name", bulk(consumer.name)),
            field("seen-time", int(consumer.seen_ms)),
            field(
                "active-time",
                consumer.active_ms.map_or(Value::Integer(-1), int),
            ),
            field("pel-count", int(consumer.pending as u64)),
            field("pending", Value::Array(rows)),
        ])
    });
    Value::Array(maps.collect())
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

    fn now() -> Now {
        Now {
            instant: Instant::now(),
            unix_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn readgroup_options_parse_in_any_order() {
        let a = args("XREADGROUP CLAIM 50 GROUP g c COUNT 2 NOACK STREAMS s t > 0-1");
        let parsed = parse_readgroup(&a, now()).unwrap();
        assert_eq!((parsed.group, parsed.consumer), (&b"g"[..], &b"c"[..]));
        assert_eq!(
            (parsed.count, parsed.noack, parsed.claim),
            (2, true, Some(50))
        );
        assert_eq!(parsed.keys, &a[10..12]);
        assert_eq!(parsed.ids, &a[12..]);
        assert_eq!(parsed.block, None);
        let negative = args("XREADGROUP GROUP g c COUNT -5 STREAMS s >");
        assert_eq!(parse_readgroup(&negative, now()).unwrap().count, 0);
    }

    #[test]
    fn readgroup_errors_match_redis() {
        let cases = [
            (
                "XREADGROUP GROUP g c STREAMS s > 0",
                "ERR Unbalanced 'xreadgroup'",
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
            let error = error_text(parse_readgroup(&args(command), now()).unwrap_err());
            assert!(error.starts_with(expected), "{command}: {error}");
        }
        let huge = args("XREADGROUP GROUP g c BLOCK 9223372036854775807 STREAMS s >");
        let error = error_text(parse_readgroup(&huge, now()).unwrap_err());
        assert_eq!(error, "ERR timeout is out of range");
    }

    #[test]
    fn block_timeouts() {
        let start = now();
        let a = args("XREADGROUP GROUP g c BLOCK 100 STREAMS s >");
        let parsed = parse_readgroup(&a, start).unwrap();
        let deadline = start.instant + Duration::from_millis(100);
        assert_eq!(parsed.block, Some(Block::Until(deadline)));
        let forever = args("XREADGROUP GROUP g c BLOCK 0 STREAMS s >");
        let parsed = parse_readgroup(&forever, start).unwrap();
        assert_eq!(parsed.block, Some(Block::Forever));
    }

    #[test]
    fn read_positions() {
        assert_eq!(parse_read_from(b">"), Ok(ReadFrom::New));
        assert_eq!(parse_read_from(b"0"), Ok(ReadFrom::After(StreamId::MIN)));
        assert!(error_text(parse_read_from(b"$").unwrap_err()).starts_with("ERR The $ ID"));
        assert_eq!(parse_read_from(b"+"), Err(invalid_id()));
    }

    #[test]
    fn create_options_and_policies() {
        let a =
            args("MKSTREAM ENTRIESREAD 3 ACKWAIT 500 MAXDELIVER 4 DEADLETTER dlq MAXACKPENDING 9");
        let options = parse_create_options(2, b"create", &a).unwrap();
        assert!(options.mkstream);
        assert_eq!(options.entries_read, Some(3));
        assert_eq!(
            options.policy,
            GroupPolicy {
                ack_wait_ms: Some(500),
                max_deliver: Some(4),
                dead_letter: Some(stream_name(2, b"dlq")),
                max_ack_pending: Some(9),
            }
        );
        let unknown = parse_create_options(0, b"Create", &args("MKSTREAM bad")).unwrap_err();
        assert_eq!(
            error_text(unknown),
            "ERR unknown subcommand or wrong number of arguments for 'Create'. Try XGROUP HELP."
        );
        let dangling = parse_create_options(0, b"create", &args("ENTRIESREAD"));
        assert!(error_text(dangling.unwrap_err()).starts_with("ERR unknown subcommand"));
        let negative = parse_create_options(0, b"create", &args("ENTRIESREAD -3"));
        assert_eq!(
            error_text(negative.unwrap_err()),
            "ERR value for ENTRIESREAD must be positive or -1"
        );
        let unknown_read = parse_create_options(0, b"create", &args("ENTRIESREAD -1")).unwrap();
        assert_eq!(unknown_read.entries_read, None);
        let zero = parse_create_options(0, b"create", &args("ACKWAIT 0"));
        assert_eq!(
            error_text(zero.unwrap_err()),
            "ERR ACKWAIT must be a positive integer"
        );
        let big = parse_create_options(0, b"create", &args("MAXDELIVER 4294967296"));
        assert!(error_text(big.unwrap_err()).starts_with("ERR MAXDELIVER must be between"));
    }

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

    #[test]
    fn nack_arguments() {
        let parsed = parse_nack(&args("fatal IDS 2 1-0 2-0 RETRYCOUNT 3 FORCE DELAY 250")).unwrap();
        assert_eq!(
            parsed,
            NackArgs {
                mode: NackMode::Fatal,
                ids: vec![StreamId::new(1, 0), StreamId::new(2, 0)],
                retry_count: Some(3),
                force: true,
                delay: Duration::from_millis(250),
            }
        );
        for (command, expected) in [
            ("LOUD IDS 1 1-0", "ERR syntax error"),
            ("FAIL ID 1 1-0", "ERR syntax error"),
            (
                "FAIL IDS 0 1-0",
                "ERR Number of IDs must be a positive integer",
            ),
            (
                "FAIL IDS x 1-0",
                "ERR Number of IDs must be a positive integer",
            ),
            (
                "FAIL IDS 2 1-0",
                "ERR The `numids` parameter must match the number of arguments",
            ),
            (
                "FAIL IDS 1 x",
                "ERR Invalid stream ID specified as stream command argument",
            ),
            ("FAIL IDS 1 1-0 BOGUS", "ERR syntax error"),
            (
                "FAIL IDS 1 1-0 RETRYCOUNT -1",
                "ERR RETRYCOUNT must be a non-negative integer",
            ),
            (
                "FAIL IDS 1 1-0 DELAY -1",
                "ERR DELAY must be a non-negative integer",
            ),
        ] {
            assert_eq!(
                error_text(parse_nack(&args(command)).unwrap_err()),
                expected,
                "{command}"
            );
        }
    }

    #[test]
    fn nack_counters_follow_the_mode() {
        assert_eq!(nack_counter(NackMode::Silent, None, Some(3)), 2);
        assert_eq!(nack_counter(NackMode::Silent, None, Some(0)), 0);
        assert_eq!(nack_counter(NackMode::Fail, None, Some(3)), 3);
        assert_eq!(nack_counter(NackMode::Fatal, None, Some(3)), u32::MAX);
        assert_eq!(nack_counter(NackMode::Fatal, None, None), u32::MAX);
        assert_eq!(nack_counter(NackMode::Fail, None, None), 0);
        assert_eq!(nack_counter(NackMode::Fatal, Some(5), Some(3)), 5);
    }

    #[test]
    fn stream_info_forms() {
        assert_eq!(parse_stream_info(&args("XINFO STREAM s")), Ok(None));
        assert_eq!(
            parse_stream_info(&args("XINFO STREAM s FULL")),
            Ok(Some(10))
        );
        assert_eq!(
            parse_stream_info(&args("XINFO STREAM s full count 0")),
            Ok(Some(0))
        );
        assert_eq!(
            parse_stream_info(&args("XINFO STREAM s FULL COUNT -3")),
            Ok(Some(10))
        );
        let wrong = parse_stream_info(&args("XINFO stream s FULL COUNT"));
        assert_eq!(
            error_text(wrong.unwrap_err()),
            "ERR unknown subcommand or wrong number of arguments for 'stream'. Try XINFO HELP."
        );
        assert!(parse_stream_info(&args("XINFO STREAM s FOO")).is_err());
        assert!(parse_stream_info(&args("XINFO STREAM s FULL COUNT x")).is_err());
    }

    #[test]
    fn entries_show_headers_then_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(dir.path()).unwrap();
        let stream = store.stream(b"s").unwrap();
        let message = crate::Message::new("payload")
            .header("a", "1")
            .header("b", "2");
        let with_body = stream.append(message).unwrap().offset;
        let fields_only = crate::Message::new(Bytes::new()).header("f", "v");
        let without_body = stream.append(fields_only).unwrap().offset;
        // Compared as sent: the fields are encoded from the record itself.
        let wire = |value: Value| {
            let mut out = bytes::BytesMut::new();
            value.encode(Protocol::Resp2, &mut out);
            out
        };
        let fields = |offset| wire(entry_fields(&stream.read(offset).unwrap().unwrap()));
        let bulks = |items: &[&str]| {
            wire(Value::Array(
                items.iter().map(|item| bulk(item.as_bytes())).collect(),
            ))
        };
        assert_eq!(
            fields(with_body),
            bulks(&["a", "1", "b", "2", "$body", "payload"])
        );
        assert_eq!(fields(without_body), bulks(&["f", "v"]));
    }

    #[test]
    fn saturated_counters_read_as_redis_largest() {
        assert_eq!(deliveries_value(3), Value::Integer(3));
        assert_eq!(deliveries_value(u32::MAX), Value::Integer(i64::MAX));
    }

    #[test]
    fn replies_take_the_protocol_shape() {
        let served = vec![(Bytes::from_static(b"s"), Value::Array(Vec::new()))];
        assert!(matches!(
            streams_reply(Protocol::Resp3, served.clone()),
            Value::Map(_)
        ));
        let Value::Array(pairs) = streams_reply(Protocol::Resp2, served) else {
            panic!("not an array");
        };
        assert!(matches!(&pairs[0], Value::Array(pair) if pair.len() == 2));
        let empty = summary_value(0, None, None, &[]);
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
