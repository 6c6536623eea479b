//! XTRIM.

use bytes::Bytes;

use super::lookup::existing;
use super::xadd::{apply_trim, parse_add_or_trim};
use super::{Ctx, Outcome, reply};
use crate::server::resp::Value;

pub(super) fn xtrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(xtrim_reply(ctx, args))
}

fn xtrim_reply(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let parsed = parse_add_or_trim(args, false)?;
    let store = ctx.store()?;
    let (Some(stream), Some(trim)) = (existing(ctx, &store, &args[1]), parsed.trim) else {
        return Ok(Value::Integer(0));
    };
    let removed = apply_trim(ctx, &stream, trim, ctx.commit())?;
    Ok(Value::Integer(i64::try_from(removed).unwrap_or(i64::MAX)))
}
