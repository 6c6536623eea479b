//! XLEN.

use bytes::Bytes;

use super::lookup::existing;
use super::{Ctx, Outcome, reply};
use crate::server::resp::Value;

pub(super) fn xlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(ctx.store().map(|store| {
        let len = existing(ctx, &store, &args[1]).map_or(0, |stream| stream.len());
        Value::Integer(i64::try_from(len).unwrap_or(i64::MAX))
    }))
}
