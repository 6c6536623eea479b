//! Library errors as the stream and group commands word them, Redis's texts included.

use super::replies::text;
use super::store_error;
use crate::server::resp::Value;
use crate::server::version::RedisVersion;
use crate::{Error, ErrorKind};

/// A library error as Redis words the stream errors it corresponds to.
pub(super) fn stream_error(error: &Error) -> Value {
    match error.kind() {
        ErrorKind::IdTooSmall => Value::error(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item",
        ),
        ErrorKind::IdZero => id_zero(),
        ErrorKind::IdExhausted => exhausted(),
        ErrorKind::StreamFull => Value::error(format!("FULL {error}")),
        ErrorKind::EntryTooLarge => Value::error("ERR Elements are too large to be stored"),
        _ => store_error(error),
    }
}

/// XADD's reply to the ID 0-0.
pub(super) fn id_zero() -> Value {
    Value::error("ERR The ID specified in XADD must be greater than 0-0")
}

pub(super) fn exhausted() -> Value {
    Value::error("ERR The stream has exhausted the last possible ID, unable to add more items")
}

/// `NOGROUP` as XPENDING, XCLAIM, XAUTOCLAIM and XNACK word it.
pub(super) fn nogroup(key: &[u8], group: &[u8]) -> Value {
    Value::error(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        text(key),
        text(group)
    ))
}

/// `NOGROUP` as XGROUP and XINFO CONSUMERS word it.
pub(super) fn nogroup_for_key(key: &[u8], group: &[u8]) -> Value {
    Value::error(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        text(group),
        text(key)
    ))
}

/// A library error as a reply: a group that vanished meanwhile (another client destroyed it)
/// gets the command's own `NOGROUP` reply.
pub(super) fn library_error(error: &Error, nogroup: impl FnOnce() -> Value) -> Value {
    match error.kind() {
        ErrorKind::NoGroup => nogroup(),
        _ => store_error(error),
    }
}

/// The error for a `STREAMS` list without one ID per key, as the Redis version the server
/// reports words it: 7.0 names XREAD for both commands, 7.2 names the command called and the
/// special ID it takes, 7.4 adds XREAD's `+`.
pub(super) fn unbalanced_streams(command: &str, version: RedisVersion) -> Value {
    if !version.at_least(7, 2) {
        return Value::error(
            "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
        );
    }
    let ids = match command {
        "xreadgroup" => "ID or '>'",
        _ if version.at_least(7, 4) => "ID, '+', or '$'",
        _ => "ID or '$'",
    };
    Value::error(format!(
        "ERR Unbalanced '{command}' list of streams: for each stream key an {ids} must be specified."
    ))
}
