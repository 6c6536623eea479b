//! Finding the stream or group a command names, in the client's database.

use std::sync::Arc;

use super::Ctx;
use super::errors::library_error;
use crate::server::keys::with_stream_name;
use crate::server::resp::Value;
use crate::store::Store;
use crate::stream::{Group, Stream};

/// The stream of `key` in the client's database, if it exists.
pub(super) fn existing(ctx: &Ctx<'_>, store: &Store, key: &[u8]) -> Option<Arc<Stream>> {
    with_stream_name(ctx.client.db, key, |name| store.get(name))
}

/// The stream under `key` in the client's database, if it exists.
pub(super) fn stream_at(ctx: &Ctx<'_>, key: &[u8]) -> Result<Option<Arc<Stream>>, Value> {
    Ok(existing(ctx, &*ctx.store()?, key))
}

/// The group of the stream under `key`; `missing` is the reply when either does not exist.
pub(super) fn group_at(
    ctx: &Ctx<'_>,
    key: &[u8],
    group: &[u8],
    missing: impl Fn() -> Value,
) -> Result<Group, Value> {
    let stream = stream_at(ctx, key)?.ok_or_else(&missing)?;
    stream
        .group(group)
        .map_err(|error| library_error(&error, &missing))
}
