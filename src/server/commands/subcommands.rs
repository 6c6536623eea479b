//! Container commands (XGROUP, XINFO): a table of subcommands, with Redis's errors for
//! an unknown one or a wrong argument count.

use bytes::Bytes;

use super::parse::is;
use super::replies::text;
use super::{Ctx, Outcome, reply};
use crate::server::resp::Value;

/// A container command's table entry: name, Redis arity (the container's name counts), handler.
pub(super) type Subcommand = (
    &'static str,
    i32,
    fn(&mut Ctx<'_>, &[Bytes]) -> Result<Value, Value>,
);

/// Runs the subcommand `args[1]` of `container`, with Redis's errors for an unknown subcommand
/// and a wrong argument count.
pub(super) fn dispatch(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    container: &str,
    table: &[Subcommand],
) -> Outcome {
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
pub(super) fn subcommand_syntax(container: &str, sub: &[u8]) -> Value {
    Value::error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        text(sub),
        container.to_ascii_uppercase()
    ))
}

pub(super) fn help(lines: &[&str]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|line| Value::simple(line.to_string()))
            .collect(),
    )
}
