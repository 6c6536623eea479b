//! Reading the replies of a Redis server (RESP2 or RESP3) as the values queue-migrate needs:
//! text, numbers, stream IDs, field maps and entries. A reply of another shape is a
//! [`Failure::Protocol`], never a panic.

use std::fmt;
use std::str::FromStr;

use redis::Value;

use crate::Failure;

/// A stream entry ID, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id {
    pub ms: u64,
    pub seq: u64,
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for Id {
    type Err = Failure;

    fn from_str(text: &str) -> Result<Id, Failure> {
        let bad = || Failure::Protocol(format!("{text:?} is not a stream ID"));
        let (ms, seq) = text.split_once('-').ok_or_else(bad)?;
        Ok(Id {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// An entry: its ID and its field-value pairs, as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: Id,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

fn unexpected(what: &str, value: &Value) -> Failure {
    Failure::Protocol(format!("expected {what}, got {value:?}"))
}

/// A bulk, simple or verbatim string as bytes.
pub fn bytes(value: &Value) -> Result<Vec<u8>, Failure> {
    match value {
        Value::BulkString(bytes) => Ok(bytes.clone()),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => {
            Ok(text.as_bytes().to_vec())
        }
        Value::Okay => Ok(b"OK".to_vec()),
        other => Err(unexpected("a string", other)),
    }
}

/// A string reply as text (lossy: only names and numbers are read this way).
pub fn text(value: &Value) -> Result<String, Failure> {
    Ok(String::from_utf8_lossy(&bytes(value)?).into_owned())
}

/// An integer, sent as one or as text.
pub fn int(value: &Value) -> Result<i64, Failure> {
    match value {
        Value::Int(n) => Ok(*n),
        other => text(other)?
            .parse()
            .map_err(|_| unexpected("an integer", other)),
    }
}

/// A count that cannot be negative.
pub fn count(value: &Value) -> Result<u64, Failure> {
    u64::try_from(int(value)?).map_err(|_| unexpected("a count", value))
}

/// A stream ID.
pub fn id(value: &Value) -> Result<Id, Failure> {
    text(value)?.parse()
}

/// An array's items (a RESP3 set too).
pub fn items(value: &Value) -> Result<&[Value], Failure> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        other => Err(unexpected("an array", other)),
    }
}

/// A map (RESP3) or a flat array of pairs (RESP2) as pairs of a text key and a value.
pub fn pairs(value: &Value) -> Result<Vec<(String, &Value)>, Failure> {
    match value {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| Ok((text(k)?, v))).collect(),
        Value::Array(flat) if flat.len() % 2 == 0 => flat
            .chunks(2)
            .map(|pair| Ok((text(&pair[0])?, &pair[1])))
            .collect(),
        other => Err(unexpected("a map", other)),
    }
}

/// The value of `name` in a map reply.
pub fn field<'v>(map: &[(String, &'v Value)], name: &str) -> Result<&'v Value, Failure> {
    map.iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| *value)
        .ok_or_else(|| Failure::Protocol(format!("the reply has no field {name:?}")))
}

/// An entry reply `[id, [field, value, …]]`.
pub fn entry(value: &Value) -> Result<Entry, Failure> {
    let parts = items(value)?;
    let [id_part, fields_part] = parts else {
        return Err(unexpected("an entry", value));
    };
    let fields = match fields_part {
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| Ok((bytes(k)?, bytes(v)?)))
            .collect::<Result<_, Failure>>()?,
        Value::Array(flat) if flat.len() % 2 == 0 => flat
            .chunks(2)
            .map(|pair| Ok((bytes(&pair[0])?, bytes(&pair[1])?)))
            .collect::<Result<_, Failure>>()?,
        other => return Err(unexpected("an entry's fields", other)),
    };
    Ok(Entry {
        id: id(id_part)?,
        fields,
    })
}

/// A list of entries (an XRANGE reply).
pub fn entries(value: &Value) -> Result<Vec<Entry>, Failure> {
    items(value)?.iter().map(entry).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn ids_parse_and_order() {
        let id: Id = "12-3".parse().unwrap();
        assert_eq!(id, Id { ms: 12, seq: 3 });
        assert_eq!(id.to_string(), "12-3");
        assert!(Id { ms: 1, seq: 9 } < Id { ms: 2, seq: 0 });
        for bad in ["12", "a-1", "1-", "-1-2"] {
            assert!(bad.parse::<Id>().is_err(), "{bad}");
        }
    }

    #[test]
    fn maps_from_both_protocols() {
        let flat = Value::Array(vec![bulk("a"), Value::Int(1), bulk("b"), bulk("x")]);
        let map = Value::Map(vec![(bulk("a"), Value::Int(1)), (bulk("b"), bulk("x"))]);
        for value in [flat, map] {
            let pairs = pairs(&value).unwrap();
            assert_eq!(int(field(&pairs, "a").unwrap()).unwrap(), 1);
            assert_eq!(text(field(&pairs, "b").unwrap()).unwrap(), "x");
            assert!(field(&pairs, "c").is_err());
        }
        assert!(pairs(&Value::Array(vec![bulk("odd")])).is_err());
    }

    #[test]
    fn entries_keep_binary_fields() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("5-1"),
            Value::Array(vec![bulk("f"), Value::BulkString(vec![0, 255])]),
        ])]);
        let parsed = entries(&reply).unwrap();
        assert_eq!(parsed[0].id, Id { ms: 5, seq: 1 });
        assert_eq!(parsed[0].fields, [(b"f".to_vec(), vec![0, 255])]);
        assert!(entry(&bulk("x")).is_err());
        assert!(count(&Value::Int(-1)).is_err());
    }
}
