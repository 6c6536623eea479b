//! XDEL.

use bytes::Bytes;

use super::lookup::existing;
use super::parse::strict_ids;
use super::{Ctx, Outcome, reply, store_error};
use crate::server::resp::Value;

pub(super) fn xdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(xdel_reply(ctx, args))
}

fn xdel_reply(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let store = ctx.store()?;
    // Redis looks the key up before checking the IDs: a missing key answers 0 whatever they are.
    let Some(stream) = existing(ctx, &store, &args[1]) else {
        return Ok(Value::Integer(0));
    };
    let ids = strict_ids(&args[2..])?;
    let deleted = stream
        .delete_in(&ids, ctx.commit())
        .map_err(|e| store_error(&e))?;
    Ok(Value::Integer(i64::try_from(deleted).unwrap_or(i64::MAX)))
}
