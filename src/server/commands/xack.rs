//! XACK.

use bytes::Bytes;

use super::errors::library_error;
use super::lookup::group_at;
use super::parse::strict_ids;
use super::replies::int;
use super::{Ctx, Outcome, reply};
use crate::server::resp::Value;

pub(super) fn xack(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply((|| {
        // A missing stream or group acknowledges nothing, whatever the IDs.
        let Ok(group) = group_at(ctx, &args[1], &args[2], || Value::Null) else {
            return Ok(Value::Integer(0));
        };
        let ids = strict_ids(&args[3..])?;
        let acked = group
            .ack_in(&ids, ctx.commit())
            .map_err(|error| library_error(&error, || Value::Integer(0)))?;
        Ok(int(acked as u64))
    })())
}
