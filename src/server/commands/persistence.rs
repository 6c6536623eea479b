//! What Redis clients and tools ask of persistence before they use streams: `BGSAVE` and
//! `BGREWRITEAOF` (here a checkpoint of every stream and a compaction of its journals), and
//! the `CONFIG` names about stream nodes and the append-only file.

use bytes::Bytes;

use super::describe::Group;
use super::replies::text;
use super::{About, CommandSpec, Ctx, Outcome, reply, store_error};
use crate::server::config::{ServerConfig, parse_memory, parse_node_entries};
use crate::server::resp::Value;

pub(super) fn commands() -> Vec<CommandSpec> {
    let spec = |name, arity, handler, summary| {
        CommandSpec::new(name, arity, &["admin", "noscript"], (0, 0, 0), handler).about(About {
            categories: &["@dangerous"],
            ..About::new(Group::Server, "1.0.0", summary)
        })
    };
    vec![
        spec(
            "bgsave",
            -1,
            bgsave,
            "Checkpoints every stream and compacts its journals.",
        ),
        spec(
            "bgrewriteaof",
            1,
            bgrewriteaof,
            "Checkpoints every stream and compacts its journals.",
        ),
    ]
}

/// `BGSAVE [SCHEDULE]`: the journals are the data, so saving them is a checkpoint.
fn bgsave(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    if args.len() > 2
        || args
            .get(1)
            .is_some_and(|arg| !arg.eq_ignore_ascii_case(b"schedule"))
    {
        return Value::error("ERR syntax error").into();
    }
    reply(compact(ctx).map(|()| Value::simple("Background saving started")))
}

/// `BGREWRITEAOF`: rewriting the append-only file is compacting the journals.
fn bgrewriteaof(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Outcome {
    reply(compact(ctx).map(|()| Value::simple("Background append only file rewriting started")))
}

fn compact(ctx: &Ctx<'_>) -> Result<(), Value> {
    ctx.stores()?
        .iter()
        .try_for_each(|store| store.compact())
        .map_err(|e| store_error(&e))
}

/// The `CONFIG` names answered here. `aof-use-rdb-preamble` is accepted and ignored: the
/// journals have no preamble.
pub(super) const NAMES: &[&str] = &[
    "stream-node-max-entries",
    "stream-node-max-bytes",
    "aof-use-rdb-preamble",
];

/// `CONFIG GET`'s value of one of [`NAMES`].
pub(super) fn value(config: &ServerConfig, name: &str) -> Option<String> {
    let limits = config.node_limits;
    match name {
        "stream-node-max-entries" => Some(limits.max_entries.to_string()),
        "stream-node-max-bytes" => Some(limits.max_bytes.to_string()),
        "aof-use-rdb-preamble" => Some("yes".into()),
        _ => None,
    }
}

/// `CONFIG SET` of one of [`NAMES`]; `None` for another name.
pub(super) fn set(ctx: &Ctx<'_>, name: &str, value: &[u8]) -> Option<Result<(), Value>> {
    let invalid = |reason: &str| {
        Value::error(format!(
            "ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}"
        ))
    };
    let value = text(value);
    let mut limits = ctx.server.config.read().node_limits;
    match name {
        "stream-node-max-entries" => match parse_node_entries(&value) {
            Some(entries) => limits.max_entries = entries,
            None => return Some(Err(invalid("argument couldn't be parsed into an integer"))),
        },
        "stream-node-max-bytes" => match parse_memory(&value) {
            Some(bytes) => limits.max_bytes = bytes,
            None => return Some(Err(invalid("argument must be a memory value"))),
        },
        "aof-use-rdb-preamble" => {
            let yes_or_no = value.eq_ignore_ascii_case("yes") || value.eq_ignore_ascii_case("no");
            return Some(if yes_or_no {
                Ok(())
            } else {
                Err(invalid("argument must be 'yes' or 'no'"))
            });
        }
        _ => return None,
    }
    ctx.server.config.write().node_limits = limits;
    Some(ctx.stores().map(|stores| {
        for store in stores {
            store.set_node_limits(limits);
        }
    }))
}
