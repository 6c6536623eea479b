//! Library errors as the stream and group commands word them, Redis's texts included.

use super::replies::text;
use super::store_error;
use crate::group::GroupError;
use crate::group::durable::GroupStoreError;
use crate::log::LogError;
use crate::server::resp::Value;
use crate::store::StoreError;

/// A library error as Redis words the stream errors it corresponds to.
pub(super) fn stream_error(error: &StoreError) -> Value {
    match error {
        StoreError::Log(LogError::IdTooSmall { .. }) => Value::error(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item",
        ),
        StoreError::Log(LogError::IdZero) => {
            Value::error("ERR The ID specified in XADD must be greater than 0-0")
        }
        StoreError::Log(LogError::IdExhausted) => exhausted(),
        StoreError::StreamFull { .. } | StoreError::StreamFullBytes { .. } => {
            Value::error(format!("FULL {error}"))
        }
        StoreError::Log(LogError::Encode(_)) => {
            Value::error("ERR Elements are too large to be stored")
        }
        other => store_error(other),
    }
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
pub(super) fn library_error(error: &StoreError, nogroup: impl FnOnce() -> Value) -> Value {
    match error {
        StoreError::Groups(GroupStoreError::Group(GroupError::NoGroup { .. })) => nogroup(),
        other => store_error(other),
    }
}
