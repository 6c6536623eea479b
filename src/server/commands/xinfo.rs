//! XINFO: STREAM, GROUPS, CONSUMERS and HELP.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::errors::nogroup_for_key;
use super::lookup::stream_at;
use super::parse::{integer, is};
use super::replies::{bulk, deliveries_value, field, int, opt_int};
use super::subcommands::{Subcommand, dispatch, help, subcommand_syntax};
use super::{Ctx, Outcome, entry_value, id_value, store_error};
use crate::server::keys::key_of;
use crate::server::resp::Value;
use crate::stream::{ConsumerDetails, GroupDetails, PendingEntry, Stream};

pub(super) fn xinfo(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
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
    let consumers = stream
        .consumers(&args[3], stream.now_ms())
        .map_err(|_| nogroup_for_key(&args[2], &args[3]))?;
    let maps = consumers.iter().map(|consumer| {
        Value::Map(vec![
            field("name", bulk(&consumer.name)),
            field("pending", int(consumer.pending as u64)),
            field("idle", int(consumer.idle_ms)),
            field(
                "inactive",
                consumer.inactive_ms.map_or(Value::Integer(-1), int),
            ),
        ])
    });
    Ok(Value::Array(maps.collect()))
}

fn xinfo_groups(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let stream = xinfo_stream_at(ctx, &args[2])?;
    let db = ctx.client.db;
    let groups = stream.group_details();
    Ok(Value::Array(
        groups
            .iter()
            .map(|group| group_info_value(db, group))
            .collect(),
    ))
}

/// Redis 7's fields, then weir's, so clients that read fields by name keep working.
fn group_info_value(db: u8, info: &GroupDetails) -> Value {
    let (policy, backlog) = (&info.policy, &info.backlog);
    let dead_letter = policy.dead_letter.as_deref().map_or(Value::Null, |name| {
        key_of(db, name).map_or_else(|| bulk(name), Value::Bulk)
    });
    Value::Map(vec![
        field("name", bulk(&info.name)),
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
    let facts = stream.facts();
    // weir keeps no radix tree: a segment plays the part of one of its nodes.
    let keys = if facts.length == 0 {
        0
    } else {
        stream.segment_count() as u64
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
    // Redis shows when each pending entry was delivered, as the clock read now less its idle
    // time.
    let delivered_ms = |row: &PendingEntry| int(now_ms.saturating_sub(row.idle_ms));
    let groups = stream.groups_in_full(limit, now_ms);
    let maps = groups.iter().map(|group| {
        let rows = group.pending.iter().map(|row| {
            Value::Array(vec![
                id_value(row.id),
                bulk(&row.consumer),
                delivered_ms(row),
                deliveries_value(row.deliveries),
            ])
        });
        Value::Map(vec![
            field("name", bulk(&group.name)),
            field("last-delivered-id", id_value(group.last_delivered)),
            field("entries-read", opt_int(group.entries_read)),
            field("lag", opt_int(group.lag)),
            field("pel-count", int(group.pending_count as u64)),
            field("pending", Value::Array(rows.collect())),
            field("consumers", full_consumers(&group.consumers, &delivered_ms)),
        ])
    });
    Value::Array(maps.collect())
}

fn full_consumers(
    consumers: &[(ConsumerDetails, Vec<PendingEntry>)],
    delivered_ms: &dyn Fn(&PendingEntry) -> Value,
) -> Value {
    let maps = consumers.iter().map(|(consumer, pending)| {
        let rows = pending
            .iter()
            .map(|row| {
                Value::Array(vec![
                    id_value(row.id),
                    delivered_ms(row),
                    deliveries_value(row.deliveries),
                ])
            })
            .collect();
        Value::Map(vec![
            field("name", bulk(&consumer.name)),
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
    use crate::server::commands::parse::tests::{args, error_text};

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
}
