//! XGROUP and its subcommands.

use std::sync::Arc;

use bytes::Bytes;

use super::errors::{library_error, nogroup_for_key};
use super::lookup::stream_at;
use super::parse::{
    IdRules, Parse, ParsedId, STRICT, integer, invalid_id, is, parse_id, strict_id,
};
use super::replies::int;
use super::subcommands::{Subcommand, dispatch, help, subcommand_syntax};
use super::{Ctx, Outcome, store_error};
use crate::ErrorKind;
use crate::id::StreamId;
use crate::server::keys::stream_name;
use crate::server::resp::Value;
use crate::stream::GroupPolicy;
use crate::stream::{Group, Stream};

pub(super) fn xgroup(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
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
    match stream.create_group_at_in(
        &args[3],
        position,
        options.entries_read,
        options.policy,
        ctx.commit(),
    ) {
        Ok(_) => Ok(Value::ok()),
        Err(error) if error.kind() == ErrorKind::GroupExists => {
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
        .set_position_in(position, entries_read, ctx.commit())
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
        .set_policy_in(policy, ctx.commit())
        .map_err(|error| library_error(&error, || nogroup_for_key(&args[2], &args[3])))?;
    Ok(Value::ok())
}

fn xgroup_destroy(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let (stream, _) = xgroup_target(ctx, args, false)?;
    let existed = stream
        .destroy_group_in(&args[3], ctx.commit())
        .map_err(|e| store_error(&e))?;
    Ok(Value::Integer(i64::from(existed)))
}

fn xgroup_createconsumer(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let (_, group) = xgroup_target(ctx, args, true)?;
    let created = required(group, args)?
        .create_consumer_in(&args[4], ctx.commit())
        .map_err(|error| library_error(&error, || nogroup_for_key(&args[2], &args[3])))?;
    Ok(Value::Integer(i64::from(created)))
}

fn xgroup_delconsumer(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let (_, group) = xgroup_target(ctx, args, true)?;
    let dropped = required(group, args)?
        .delete_consumer_in(&args[4], ctx.commit())
        .map_err(|error| library_error(&error, || nogroup_for_key(&args[2], &args[3])))?;
    Ok(int(dropped as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::commands::parse::tests::{args, error_text};

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
}
