//! XACKDEL (Redis 8.2).

use bytes::Bytes;

use super::errors::{library_error, nogroup};
use super::lookup::existing;
use super::xdelex::{all_missing, deletions_value, parse_delete};
use super::{Ctx, Outcome, reply};

/// `XACKDEL key group [KEEPREF | DELREF | ACKED] IDS numids id…`: acknowledges the IDs in the
/// group, then deletes them as XDELEX does. A key that does not exist answers -1 per ID; a
/// group that does not exist is an error.
pub(super) fn xackdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply((|| {
        let parsed = parse_delete(&args[3..])?;
        let store = ctx.store()?;
        let Some(stream) = existing(ctx, &store, &args[1]) else {
            return Ok(all_missing(&parsed.ids));
        };
        let missing = || nogroup(&args[1], &args[2]);
        let group = stream
            .group(&args[2])
            .map_err(|error| library_error(&error, missing))?;
        let results = group
            .ack_and_delete_in(&parsed.ids, parsed.references, ctx.commit())
            .map_err(|error| library_error(&error, missing))?;
        Ok(deletions_value(&results))
    })())
}
