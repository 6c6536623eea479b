//! Reply shapes the stream and group commands share: numbers, names, entries, and the
//! per-stream map XREAD and XREADGROUP answer with.
//!
//! An entry replies as `[id, [field, value, …]]`: a Redis entry's field/value pairs are the
//! record's headers, in order, with an empty body; an entry written through the library with a
//! body shows it as one more field, `$body`, last.

use std::borrow::Cow;

use bytes::Bytes;

use super::entry_value;
use crate::Entry;
use crate::server::resp::{Protocol, Value};

pub(super) fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

pub(super) fn bulk(bytes: &[u8]) -> Value {
    Value::Bulk(Bytes::copy_from_slice(bytes))
}

pub(super) fn int(value: u64) -> Value {
    Value::Integer(i64::try_from(value).unwrap_or(i64::MAX))
}

pub(super) fn opt_int(value: Option<u64>) -> Value {
    value.map_or(Value::Null, int)
}

pub(super) fn field(name: &'static str, value: Value) -> (Value, Value) {
    (Value::bulk(name), value)
}

/// A delivery counter. weir's counters stop at `u32::MAX`, which stands for Redis's largest
/// counter (what `XNACK … FATAL` sets), so that clients comparing with it keep working.
pub(super) fn deliveries_value(deliveries: u32) -> Value {
    if deliveries == u32::MAX {
        Value::Integer(i64::MAX)
    } else {
        Value::Integer(i64::from(deliveries))
    }
}

pub(super) fn entries_value(entries: &[Entry]) -> Value {
    Value::Array(entries.iter().map(entry_value).collect())
}

/// XREAD's reply shape: a map of stream to entries in RESP3, pairs in RESP2.
pub(super) fn streams_reply(protocol: Protocol, served: Vec<(Bytes, Value)>) -> Value {
    match protocol {
        Protocol::Resp3 => Value::Map(
            served
                .into_iter()
                .map(|(key, entries)| (Value::Bulk(key), entries))
                .collect(),
        ),
        Protocol::Resp2 => Value::Array(
            served
                .into_iter()
                .map(|(key, entries)| Value::Array(vec![Value::Bulk(key), entries]))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::commands::entry_fields;

    #[test]
    fn entries_show_headers_then_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(dir.path()).unwrap();
        let stream = store.stream(b"s").unwrap();
        let message = crate::Message::new("payload")
            .header("a", "1")
            .header("b", "2");
        let with_body = stream.append(message).unwrap().offset;
        let fields_only = crate::Message::new(Bytes::new()).header("f", "v");
        let without_body = stream.append(fields_only).unwrap().offset;
        // Compared as sent: the fields are encoded from the record itself.
        let wire = |value: Value| {
            let mut out = bytes::BytesMut::new();
            value.encode(Protocol::Resp2, &mut out);
            out
        };
        let fields = |offset| wire(entry_fields(&stream.read(offset).unwrap().unwrap()));
        let bulks = |items: &[&str]| {
            wire(Value::Array(
                items.iter().map(|item| bulk(item.as_bytes())).collect(),
            ))
        };
        assert_eq!(
            fields(with_body),
            bulks(&["a", "1", "b", "2", "$body", "payload"])
        );
        assert_eq!(fields(without_body), bulks(&["f", "v"]));
    }

    #[test]
    fn saturated_counters_read_as_redis_largest() {
        assert_eq!(deliveries_value(3), Value::Integer(3));
        assert_eq!(deliveries_value(u32::MAX), Value::Integer(i64::MAX));
    }

    #[test]
    fn replies_take_the_protocol_shape() {
        let served = vec![(Bytes::from_static(b"s"), Value::Array(Vec::new()))];
        assert!(matches!(
            streams_reply(Protocol::Resp3, served.clone()),
            Value::Map(_)
        ));
        let Value::Array(pairs) = streams_reply(Protocol::Resp2, served) else {
            panic!("not an array");
        };
        assert!(matches!(&pairs[0], Value::Array(pair) if pair.len() == 2));
    }
}
