//! Keyspace commands: every key is a stream. DEL, UNLINK, EXISTS, TYPE, KEYS, SCAN, RENAME,
//! RENAMENX, DBSIZE, FLUSHDB, FLUSHALL.

use bytes::Bytes;

use super::describe::{About, Group, KeySpec};
use super::parse::{self, is, syntax_error};
use super::{CommandSpec, Ctx, Outcome, off_worker, reply};
use crate::server::keys::{glob_match, key_of, matches_everything, stream_name};
use crate::server::resp::Value;

pub(super) fn commands() -> Vec<CommandSpec> {
    let spec = |name, arity, flags, first_key, last_key, handler| {
        let step = i32::from(first_key != 0);
        CommandSpec::new(name, arity, flags, (first_key, last_key, step), handler)
    };
    let generic = |since, summary| About {
        categories: &["@keyspace"],
        ..About::new(Group::Generic, since, summary)
    };
    let dangerous = |since, summary| About {
        categories: &["@keyspace", "@dangerous"],
        ..generic(since, summary)
    };
    const EVERY_SHARD_SUM: &[&str] = &["request_policy:all_shards", "response_policy:agg_sum"];
    const MULTI_SHARD_SUM: &[&str] = &["request_policy:multi_shard", "response_policy:agg_sum"];
    const EVERY_SHARD_OK: &[&str] = &["request_policy:all_shards", "response_policy:all_succeeded"];
    const REMOVED: &[KeySpec] = &[KeySpec::rest(1, &["RM", "delete"])];
    vec![
        spec("del", -2, &["write"], 1, -1, del).about(About {
            tips: MULTI_SHARD_SUM,
            key_specs: REMOVED,
            ..generic("1.0.0", "Deletes streams.")
        }),
        spec("unlink", -2, &["write", "fast"], 1, -1, del).about(About {
            tips: MULTI_SHARD_SUM,
            key_specs: REMOVED,
            ..generic("4.0.0", "Deletes streams.")
        }),
        spec("exists", -2, &["readonly", "fast"], 1, -1, exists).about(About {
            tips: MULTI_SHARD_SUM,
            key_specs: const { &[KeySpec::rest(1, &["RO"])] },
            ..generic("1.0.0", "Counts the keys given that exist.")
        }),
        spec("type", 2, &["readonly", "fast"], 1, 1, key_type).about(About {
            key_specs: const { &[KeySpec::at(1, &["RO"])] },
            ..generic("1.0.0", "Names the type of a key: stream, or none.")
        }),
        spec("keys", 2, &["readonly"], 0, 0, keys).about(About {
            tips: &["request_policy:all_shards", "nondeterministic_output_order"],
            ..dangerous("1.0.0", "Lists the keys that match a pattern.")
        }),
        spec("scan", -2, &["readonly"], 0, 0, scan).about(About {
            tips: &["nondeterministic_output", "request_policy:special"],
            ..generic("2.8.0", "Walks the keys, a batch per call.")
        }),
        spec("rename", 3, &["write"], 1, 2, rename).about(About {
            key_specs: const {
                &[
                    KeySpec::at(1, &["RW", "access", "delete"]),
                    KeySpec::at(2, &["OW", "update"]),
                ]
            },
            ..generic("1.0.0", "Renames a stream, replacing the target.")
        }),
        spec("renamenx", 3, &["write", "fast"], 1, 2, renamenx).about(About {
            key_specs: const {
                &[
                    KeySpec::at(1, &["RW", "access", "delete"]),
                    KeySpec::at(2, &["OW", "insert"]),
                ]
            },
            ..generic("1.0.0", "Renames a stream unless the target exists.")
        }),
        spec("dbsize", 1, &["readonly", "fast"], 0, 0, dbsize).about(About {
            tips: EVERY_SHARD_SUM,
            ..About {
                categories: &["@keyspace"],
                ..About::new(Group::Server, "1.0.0", "Counts the keys of the database.")
            }
        }),
        spec("flushdb", -1, &["write"], 0, 0, flushdb).about(About {
            tips: EVERY_SHARD_OK,
            ..About {
                categories: &["@keyspace", "@dangerous"],
                ..About::new(
                    Group::Server,
                    "1.0.0",
                    "Deletes every stream of the database.",
                )
            }
        }),
        spec("flushall", -1, &["write"], 0, 0, flushall).about(About {
            tips: EVERY_SHARD_OK,
            ..About {
                categories: &["@keyspace", "@dangerous"],
                ..About::new(
                    Group::Server,
                    "1.0.0",
                    "Deletes every stream of every database.",
                )
            }
        }),
    ]
}

fn del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply((|| {
        let store = ctx.store()?;
        let mut removed = 0;
        for key in &args[1..] {
            let deleted = store
                .delete_stream(stream_name(ctx.client.db, key))
                .map_err(|e| super::store_error(&e))?;
            removed += i64::from(deleted);
        }
        Ok(Value::Integer(removed))
    })())
}

fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(ctx.store().map(|store| {
        let count = args[1..]
            .iter()
            .filter(|key| store.get(stream_name(ctx.client.db, key)).is_some())
            .count();
        Value::Integer(count as i64)
    }))
}

fn key_type(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(ctx.store().map(|store| {
        let kind = if store.get(stream_name(ctx.client.db, &args[1])).is_some() {
            "stream"
        } else {
            "none"
        };
        Value::Simple(kind.into())
    }))
}

/// The keys of the client's database, in byte order.
fn db_keys(ctx: &Ctx<'_>) -> Result<Vec<Bytes>, Value> {
    let mut keys: Vec<Bytes> = ctx
        .stores()?
        .iter()
        .flat_map(|store| store.stream_names())
        .filter_map(|name| key_of(ctx.client.db, &name))
        .collect();
    keys.sort_unstable();
    Ok(keys)
}

/// How many keys are matched between two looks at whether the server is stopping.
const KEYS_PER_SHUTDOWN_CHECK: usize = 1024;

/// The keys among `keys` that `pattern` matches. A walk over millions of keys takes a while: it
/// leaves its worker thread to the other clients meanwhile, and gives up when the server
/// begins to stop rather than hold the shutdown up.
fn matching_keys(ctx: &Ctx<'_>, keys: Vec<Bytes>, pattern: &[u8]) -> Result<Vec<Bytes>, Value> {
    if matches_everything(pattern) {
        return Ok(keys);
    }
    off_worker(|| {
        let mut matching = Vec::new();
        for (index, key) in keys.into_iter().enumerate() {
            if index % KEYS_PER_SHUTDOWN_CHECK == 0 && *ctx.server.shutdown.borrow() {
                return Err(Value::error("ERR the server is shutting down"));
            }
            if glob_match(pattern, &key) {
                matching.push(key);
            }
        }
        Ok(matching)
    })
}

fn keys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(
        db_keys(ctx)
            .and_then(|keys| matching_keys(ctx, keys, &args[1]))
            .map(|keys| Value::Array(keys.into_iter().map(Value::Bulk).collect())),
    )
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`. The cursor is the position in the
/// byte-ordered key list, so keys that exist for the whole scan are returned exactly once.
fn scan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply((|| {
        let cursor =
            parse::non_negative(&args[1]).map_err(|_| Value::error("ERR invalid cursor"))?;
        let mut pattern: Option<Bytes> = None;
        let mut count = 10u64;
        let mut only_streams = true;
        let mut rest = &args[2..];
        while let [option, value, tail @ ..] = rest {
            if is(option, "MATCH") {
                pattern = Some(value.clone());
            } else if is(option, "COUNT") {
                count = parse::non_negative(value)?;
                if count == 0 {
                    return Err(syntax_error());
                }
            } else if is(option, "TYPE") {
                only_streams = is(value, "stream");
            } else {
                return Err(syntax_error());
            }
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(syntax_error());
        }
        let keys = if only_streams {
            db_keys(ctx)?
        } else {
            Vec::new()
        };
        let start = usize::try_from(cursor)
            .unwrap_or(usize::MAX)
            .min(keys.len());
        let end = start
            .saturating_add(usize::try_from(count).unwrap_or(usize::MAX))
            .min(keys.len());
        let next = if end >= keys.len() { 0 } else { end };
        let page = keys[start..end].to_vec();
        let page = match &pattern {
            Some(pattern) => matching_keys(ctx, page, pattern)?,
            None => page,
        };
        Ok(Value::Array(vec![
            Value::bulk(next.to_string()),
            Value::Array(page.into_iter().map(Value::Bulk).collect()),
        ]))
    })())
}

fn rename(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(rename_reply(ctx, args, true))
}

fn renamenx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(rename_reply(ctx, args, false))
}

fn rename_reply(ctx: &Ctx<'_>, args: &[Bytes], overwrite: bool) -> Result<Value, Value> {
    let store = ctx.store()?;
    let from = stream_name(ctx.client.db, &args[1]);
    let to = stream_name(ctx.client.db, &args[2]);
    if store.get(&from).is_none() {
        return Err(Value::error("ERR no such key"));
    }
    if !overwrite && from != to && store.get(&to).is_some() {
        return Ok(Value::Integer(0));
    }
    store
        .rename_stream(&from, &to)
        .map_err(|e| super::store_error(&e))?;
    Ok(if overwrite {
        Value::ok()
    } else {
        Value::Integer(1)
    })
}

fn dbsize(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Outcome {
    reply(db_keys(ctx).map(|keys| Value::Integer(keys.len() as i64)))
}

fn flush_option_ok(args: &[Bytes]) -> bool {
    args[1..]
        .iter()
        .all(|arg| is(arg, "SYNC") || is(arg, "ASYNC"))
        && args.len() <= 2
}

fn flushdb(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    if !flush_option_ok(args) {
        return syntax_error().into();
    }
    reply((|| {
        for store in ctx.stores()? {
            for name in store.stream_names() {
                if key_of(ctx.client.db, &name).is_some() {
                    store
                        .delete_stream(&name)
                        .map_err(|e| super::store_error(&e))?;
                }
            }
        }
        Ok(Value::ok())
    })())
}

fn flushall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    if !flush_option_ok(args) {
        return syntax_error().into();
    }
    reply((|| {
        for store in ctx.stores()? {
            for name in store.stream_names() {
                store
                    .delete_stream(&name)
                    .map_err(|e| super::store_error(&e))?;
            }
        }
        Ok(Value::ok())
    })())
}
