//! XINFO: STREAM, GROUPS, CONSUMERS and HELP.
//!
//! The replies are Redis's, field for field, for the version the server reports (its
//! `redis-version`, [`LATEST`](crate::server::version::LATEST) by default): a field a later
//! Redis added appears only when that version or a later one is reported. weir's own fields (a group's policy and backlog, a stream's size
//! and limits) come only when asked for with a trailing `WEIR` argument, such as
//! `XINFO GROUPS key WEIR`, so that clients comparing whole replies see Redis's.

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
use crate::server::version::RedisVersion;
use crate::stream::{ConsumerDetails, GroupDetails, PendingEntry, Stream};

/// What a reply holds: Redis's fields for a version, and weir's own when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    version: RedisVersion,
    weir: bool,
}

impl Shape {
    /// Redis's fields for the version the server reports, and weir's when `weir` is set.
    fn of(ctx: &Ctx<'_>, weir: bool) -> Shape {
        Shape {
            version: ctx.server.config.read().redis_version,
            weir,
        }
    }

    /// Whether fields Redis added in `major.minor` belong in the reply.
    fn since(self, major: u16, minor: u16) -> bool {
        self.version.at_least(major, minor)
    }
}

pub(super) fn xinfo(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    const TABLE: &[Subcommand] = &[
        ("consumers", 4, |ctx, args| {
            xinfo_consumers(ctx, args, false)
        }),
        ("groups", 3, |ctx, args| xinfo_groups(ctx, args, false)),
        ("stream", -3, |ctx, args| xinfo_stream(ctx, args, false)),
        ("help", 2, xinfo_help),
    ];
    const WITH_WEIR: &[Subcommand] = &[
        ("consumers", 4, |ctx, args| xinfo_consumers(ctx, args, true)),
        ("groups", 3, |ctx, args| xinfo_groups(ctx, args, true)),
        ("stream", -3, |ctx, args| xinfo_stream(ctx, args, true)),
    ];
    if asks_for_weir_fields(args) {
        dispatch(ctx, &args[..args.len() - 1], "xinfo", WITH_WEIR)
    } else {
        dispatch(ctx, args, "xinfo", TABLE)
    }
}

/// Whether the last argument is `WEIR` after all that the subcommand needs (a key named
/// `WEIR` stays a key).
fn asks_for_weir_fields(args: &[Bytes]) -> bool {
    let needed = match args.get(1) {
        Some(sub) if is(sub, "consumers") => 4,
        Some(sub) if is(sub, "groups") || is(sub, "stream") => 3,
        _ => return false,
    };
    args.len() > needed && args.last().is_some_and(|last| is(last, "weir"))
}

const XINFO_HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "(a trailing WEIR adds weir's own fields to CONSUMERS, GROUPS and STREAM)",
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

fn xinfo_consumers(ctx: &mut Ctx<'_>, args: &[Bytes], weir: bool) -> Result<Value, Value> {
    let shape = Shape::of(ctx, weir);
    let stream = xinfo_stream_at(ctx, &args[2])?;
    let consumers = stream
        .consumers(&args[3], stream.now_ms())
        .map_err(|_| nogroup_for_key(&args[2], &args[3]))?;
    Ok(consumers_value(&consumers, shape))
}

fn consumers_value(consumers: &[ConsumerDetails], shape: Shape) -> Value {
    let maps = consumers.iter().map(|consumer| {
        let mut fields = vec![
            field("name", bulk(&consumer.name)),
            field("pending", int(consumer.pending as u64)),
            field("idle", int(consumer.idle_ms)),
        ];
        if shape.since(7, 2) {
            let inactive = consumer.inactive_ms.map_or(Value::Integer(-1), int);
            fields.push(field("inactive", inactive));
        }
        Value::Map(fields)
    });
    Value::Array(maps.collect())
}

fn xinfo_groups(ctx: &mut Ctx<'_>, args: &[Bytes], weir: bool) -> Result<Value, Value> {
    let shape = Shape::of(ctx, weir);
    let stream = xinfo_stream_at(ctx, &args[2])?;
    let db = ctx.client.db;
    let groups = stream.group_details();
    Ok(Value::Array(
        groups
            .iter()
            .map(|group| group_info_value(db, group, shape))
            .collect(),
    ))
}

/// A lag as Redis shows it: possibly negative, nil when unknown.
fn lag_value(lag: Option<i64>) -> Value {
    lag.map_or(Value::Null, Value::Integer)
}

/// Redis's fields, then (when asked) weir's.
fn group_info_value(db: u8, info: &GroupDetails, shape: Shape) -> Value {
    let mut fields = vec![
        field("name", bulk(&info.name)),
        field("consumers", int(info.consumers as u64)),
        field("pending", int(info.pending as u64)),
        field("last-delivered-id", id_value(info.last_delivered)),
        field("entries-read", opt_int(info.entries_read)),
        field("lag", lag_value(info.redis_lag)),
    ];
    if shape.weir {
        fields.extend(group_weir_fields(db, info));
    }
    Value::Map(fields)
}

/// A group's policy and backlog.
fn group_weir_fields(db: u8, info: &GroupDetails) -> Vec<(Value, Value)> {
    let (policy, backlog) = (&info.policy, &info.backlog);
    let dead_letter = policy.dead_letter.as_deref().map_or(Value::Null, |name| {
        key_of(db, name).map_or_else(|| bulk(name), Value::Bulk)
    });
    vec![
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
    ]
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

fn xinfo_stream(ctx: &mut Ctx<'_>, args: &[Bytes], weir: bool) -> Result<Value, Value> {
    let shape = Shape::of(ctx, weir);
    let stream = xinfo_stream_at(ctx, &args[2])?;
    let full = parse_stream_info(args)?;
    let mut fields = stream_fields(&stream)?;
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
            fields.push(field("groups", full_groups(&stream, limit, shape)));
        }
    }
    if shape.weir {
        fields.extend(limit_fields(&stream)?);
    }
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
fn stream_fields(stream: &Stream) -> Result<Vec<(Value, Value)>, Value> {
    let facts = stream.facts();
    // The radix tree Redis would keep: exact for streams built by appends, deletions and trims
    // since the model was built (see `Stream::radix_tree`), close after a restart.
    let tree = stream.radix_tree().map_err(|e| store_error(&e))?;
    Ok(vec![
        field("length", int(facts.length)),
        field("radix-tree-keys", int(tree.keys)),
        field("radix-tree-nodes", int(tree.nodes)),
        field("last-generated-id", id_value(facts.last_id)),
        field("max-deleted-entry-id", id_value(facts.max_deleted_id)),
        field("entries-added", int(facts.entries_added)),
        field("recorded-first-entry-id", id_value(facts.first_id)),
    ])
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
fn full_groups(stream: &Stream, limit: usize, shape: Shape) -> Value {
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
            field("lag", lag_value(group.redis_lag)),
            field("pel-count", int(group.pending_count as u64)),
            field("pending", Value::Array(rows.collect())),
            field(
                "consumers",
                full_consumers(&group.consumers, &delivered_ms, shape),
            ),
        ])
    });
    Value::Array(maps.collect())
}

fn full_consumers(
    consumers: &[(ConsumerDetails, Vec<PendingEntry>)],
    delivered_ms: &dyn Fn(&PendingEntry) -> Value,
    shape: Shape,
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
        let mut fields = vec![
            field("name", bulk(&consumer.name)),
            field("seen-time", int(consumer.seen_ms)),
        ];
        if shape.since(7, 2) {
            let active = consumer.active_ms.map_or(Value::Integer(-1), int);
            fields.push(field("active-time", active));
        }
        fields.push(field("pel-count", int(consumer.pending as u64)));
        fields.push(field("pending", Value::Array(rows)));
        Value::Map(fields)
    });
    Value::Array(maps.collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::StreamId;
    use crate::server::commands::parse::tests::{args, error_text};
    use crate::store::Store;
    use crate::stream::Message;

    const V7_0: Shape = Shape {
        version: RedisVersion::new(7, 0, 0),
        weir: false,
    };
    const V7_2: Shape = Shape {
        version: RedisVersion::new(7, 2, 0),
        weir: false,
    };

    fn names(map: &Value) -> Vec<String> {
        let Value::Map(pairs) = map else {
            panic!("not a map: {map:?}");
        };
        pairs
            .iter()
            .map(|(name, _)| match name {
                Value::Bulk(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                other => panic!("not a name: {other:?}"),
            })
            .collect()
    }

    fn bulk_str(text: &str) -> Value {
        Value::bulk(text.to_string())
    }

    /// A store with `f`: entries 1-0…3-0 (`a b`), group `g` whose consumer `c` read two.
    fn three_entries_two_read(dir: &std::path::Path) -> (Store, Arc<Stream>) {
        let store = Store::open(dir).unwrap();
        let stream = store.stream(b"f").unwrap();
        for ms in 1..=3 {
            let message = Message::new(Bytes::new())
                .header("a", "b")
                .id(StreamId::new(ms, 0));
            stream.append(message).unwrap();
        }
        let group = stream
            .create_group_at(b"g", StreamId::MIN, Some(0), Default::default())
            .unwrap();
        group.read(b"c", 2).unwrap();
        (store, stream)
    }

    /// Redis 7.0.15's `XINFO GROUPS f` on that stream, whole.
    #[test]
    fn groups_reply_is_redis_whole_and_weir_fields_follow_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, stream) = three_entries_two_read(dir.path());
        let details = stream.group_details();
        let expected = Value::Map(vec![
            field("name", bulk_str("g")),
            field("consumers", Value::Integer(1)),
            field("pending", Value::Integer(2)),
            field("last-delivered-id", id_value(StreamId::new(2, 0))),
            field("entries-read", Value::Integer(2)),
            field("lag", Value::Integer(1)),
        ]);
        assert_eq!(group_info_value(0, &details[0], V7_0), expected);
        let with_weir = Shape { weir: true, ..V7_0 };
        let extended = names(&group_info_value(0, &details[0], with_weir));
        assert_eq!(extended.len(), 6 + 8);
        assert_eq!(extended[6], "ack-wait");
    }

    /// Redis 7.0.15 after `XADD u 1-0 a b`, `XGROUP CREATE u g 0`, `XGROUP SETID u g 1-0
    /// ENTRIESREAD 2`.
    #[test]
    fn a_read_counter_past_the_end_shows_a_negative_lag() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stream = store.stream(b"u").unwrap();
        let one = Message::new(Bytes::new())
            .header("a", "b")
            .id(StreamId::new(1, 0));
        stream.append(one).unwrap();
        stream
            .create_group_at(b"g", StreamId::new(1, 0), Some(2), Default::default())
            .unwrap();
        let expected = Value::Map(vec![
            field("name", bulk_str("g")),
            field("consumers", Value::Integer(0)),
            field("pending", Value::Integer(0)),
            field("last-delivered-id", id_value(StreamId::new(1, 0))),
            field("entries-read", Value::Integer(2)),
            field("lag", Value::Integer(-1)),
        ]);
        assert_eq!(
            group_info_value(0, &stream.group_details()[0], V7_0),
            expected
        );
    }

    #[test]
    fn consumer_fields_follow_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, stream) = three_entries_two_read(dir.path());
        let consumers = stream.consumers(b"g", stream.now_ms()).unwrap();
        let Value::Array(v70) = consumers_value(&consumers, V7_0) else {
            panic!("not an array");
        };
        assert_eq!(names(&v70[0]), ["name", "pending", "idle"]);
        let Value::Array(v72) = consumers_value(&consumers, V7_2) else {
            panic!("not an array");
        };
        assert_eq!(names(&v72[0]), ["name", "pending", "idle", "inactive"]);

        let full = stream.groups_in_full(10, stream.now_ms());
        let delivered = |_: &PendingEntry| Value::Integer(0);
        let in_full = |shape| match full_consumers(&full[0].consumers, &delivered, shape) {
            Value::Array(maps) => names(&maps[0]),
            other => panic!("not an array: {other:?}"),
        };
        assert_eq!(in_full(V7_0), ["name", "seen-time", "pel-count", "pending"]);
        assert_eq!(
            in_full(V7_2),
            ["name", "seen-time", "active-time", "pel-count", "pending"]
        );
    }

    /// Redis 7.0.15's `XINFO STREAM f` starts with these, and `XADD e MAXLEN 0 5-0 a b` leaves
    /// a stream whose tree is its root alone.
    #[test]
    fn stream_fields_report_redis_radix_tree() {
        let dir = tempfile::tempdir().unwrap();
        let (store, stream) = three_entries_two_read(dir.path());
        let expected = vec![
            field("length", Value::Integer(3)),
            field("radix-tree-keys", Value::Integer(1)),
            field("radix-tree-nodes", Value::Integer(2)),
            field("last-generated-id", id_value(StreamId::new(3, 0))),
            field("max-deleted-entry-id", id_value(StreamId::new(0, 0))),
            field("entries-added", Value::Integer(3)),
            field("recorded-first-entry-id", id_value(StreamId::new(1, 0))),
        ];
        assert_eq!(stream_fields(&stream).unwrap(), expected);

        let emptied = store.stream(b"e").unwrap();
        let five = Message::new(Bytes::new())
            .header("a", "b")
            .id(StreamId::new(5, 0));
        emptied.append(five).unwrap();
        emptied.trim_max_len(0, false, None).unwrap();
        let expected = vec![
            field("length", Value::Integer(0)),
            field("radix-tree-keys", Value::Integer(0)),
            field("radix-tree-nodes", Value::Integer(1)),
            field("last-generated-id", id_value(StreamId::new(5, 0))),
            field("max-deleted-entry-id", id_value(StreamId::new(0, 0))),
            field("entries-added", Value::Integer(1)),
            field("recorded-first-entry-id", id_value(StreamId::new(0, 0))),
        ];
        assert_eq!(stream_fields(&emptied).unwrap(), expected);
    }

    #[test]
    fn weir_fields_are_asked_for_after_the_arguments() {
        assert!(asks_for_weir_fields(&args("XINFO GROUPS s WEIR")));
        assert!(asks_for_weir_fields(&args("XINFO consumers s g weir")));
        assert!(asks_for_weir_fields(&args(
            "XINFO STREAM s FULL COUNT 5 WEIR"
        )));
        assert!(!asks_for_weir_fields(&args("XINFO GROUPS WEIR")), "a key");
        assert!(
            !asks_for_weir_fields(&args("XINFO CONSUMERS s WEIR")),
            "a group"
        );
        assert!(!asks_for_weir_fields(&args("XINFO HELP WEIR")));
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
}
