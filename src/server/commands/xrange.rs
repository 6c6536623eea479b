//! XRANGE and XREVRANGE.

use std::ops::Bound;

use bytes::Bytes;

use super::lookup::existing;
use super::parse::{Parse, is, range_end, range_start, syntax_error};
use super::replies::entries_value;
use super::{Ctx, Outcome, reply, store_error};
use crate::server::resp::Value;

pub(super) fn xrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(range_reply(ctx, args, false))
}

pub(super) fn xrevrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
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
        stream.commit(ctx.commit()).map_err(|e| store_error(&e))?;
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
