//! Reply encoding for the Redis protocol (RESP2 and RESP3): whole replies, and the part-by-part
//! [`ReplyEncoder`] that lets a connection write a large reply without building all of it.

use bytes::{Bytes, BytesMut};

use crate::Entry;
use crate::id::StreamId;

/// The protocol version a client speaks, chosen with `HELLO`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// RESP2, what every connection starts with.
    #[default]
    Resp2,
    /// RESP3, with maps, sets, doubles, booleans, verbatim strings and pushes.
    Resp3,
}

/// The field name under which an entry's body (written through the library) is shown.
pub const BODY_FIELD: &str = "$body";

/// The entry behind a [`Value::Fields`]; equal to another with the same fields.
#[derive(Debug, Clone)]
pub struct EntryFields(pub Entry);

impl PartialEq for EntryFields {
    fn eq(&self, other: &EntryFields) -> bool {
        let (mine, theirs) = (self.0.record(), other.0.record());
        mine.headers().eq(theirs.headers()) && mine.body == theirs.body
    }
}

/// A reply. Types RESP2 lacks are sent the way Redis sends them to RESP2 clients.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `+text`; any CR or LF is sent as a space.
    Simple(Bytes),
    /// `-text`, the full text with its code, like `ERR unknown command` or `NOGROUP ...`; any
    /// CR or LF is sent as a space.
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$len` then the bytes.
    Bulk(Bytes),
    /// A stream ID, sent as the bulk string of its `ms-seq` text: IDs fill most stream replies,
    /// and held this way they cost no allocation.
    Id(StreamId),
    /// An entry's fields as an array of bulk strings: its headers in order, then its body (if
    /// any) under [`BODY_FIELD`]. Encoded straight from the record in the segment's memory
    /// map, so a read allocates and copies nothing for them before the reply is written.
    Fields(EntryFields),
    /// A missing value: RESP2 `$-1`, RESP3 `_`.
    Null,
    /// A missing array: RESP2 `*-1`, RESP3 `_`.
    NullArray,
    /// `*n` then the items.
    Array(Vec<Value>),
    /// RESP3 `%n` then key, value, ...; RESP2 a flat array of twice the length.
    Map(Vec<(Value, Value)>),
    /// RESP3 `~n`; RESP2 an array.
    Set(Vec<Value>),
    /// RESP3 `,number`; RESP2 the same text as a bulk string.
    Double(f64),
    /// RESP3 `#t` or `#f`; RESP2 the integer 1 or 0.
    Boolean(bool),
    /// RESP3 `=len` then `fmt:text`; RESP2 the text as a bulk string.
    Verbatim {
        /// Three bytes naming the format, like `txt` or `mkd`.
        format: [u8; 3],
        /// The text, without the format prefix.
        text: Bytes,
    },
    /// RESP3 `>n` (out-of-band data); RESP2 an array.
    Push(Vec<Value>),
    /// RESP3 `(digits`; RESP2 the digits as a bulk string.
    BigNumber(String),
}

impl Value {
    /// `+OK`.
    pub fn ok() -> Value {
        Value::Simple(Bytes::from_static(b"OK"))
    }

    /// A simple string.
    pub fn simple(text: impl Into<Bytes>) -> Value {
        Value::Simple(text.into())
    }

    /// An error with its full text, code included: `error("NOGROUP No such key")`.
    pub fn error(text: impl Into<String>) -> Value {
        Value::Error(text.into())
    }

    /// An `ERR` error: `err("syntax error")` is `-ERR syntax error`.
    pub fn err(message: impl std::fmt::Display) -> Value {
        Value::Error(format!("ERR {message}"))
    }

    /// A bulk string.
    pub fn bulk(bytes: impl Into<Bytes>) -> Value {
        Value::Bulk(bytes.into())
    }

    /// Appends the reply as `protocol` encodes it.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Value::Simple(text) => put_line(out, b'+', text),
            Value::Error(text) => put_line(out, b'-', text.as_bytes()),
            Value::Integer(n) => put_number(out, b':', *n),
            Value::Bulk(bytes) => put_bulk(out, bytes),
            Value::Id(id) => put_bulk(out, id.text().as_bytes()),
            Value::Fields(EntryFields(entry)) => put_fields(out, entry),
            Value::Null if resp3 => out.extend_from_slice(b"_\r\n"),
            Value::Null => out.extend_from_slice(b"$-1\r\n"),
            Value::NullArray if resp3 => out.extend_from_slice(b"_\r\n"),
            Value::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Value::Array(items) => put_aggregate(out, protocol, b'*', items),
            Value::Set(items) => {
                put_aggregate(out, protocol, if resp3 { b'~' } else { b'*' }, items)
            }
            Value::Push(items) => {
                put_aggregate(out, protocol, if resp3 { b'>' } else { b'*' }, items)
            }
            Value::Map(pairs) => {
                if resp3 {
                    put_len(out, b'%', pairs.len());
                } else {
                    put_len(out, b'*', pairs.len().saturating_mul(2));
                }
                for (key, value) in pairs {
                    key.encode(protocol, out);
                    value.encode(protocol, out);
                }
            }
            Value::Double(d) => {
                let text = format_double(*d);
                if resp3 {
                    put_line(out, b',', text.as_bytes());
                } else {
                    put_bulk(out, text.as_bytes());
                }
            }
            Value::Boolean(b) => out.extend_from_slice(match (resp3, b) {
                (true, true) => b"#t\r\n",
                (true, false) => b"#f\r\n",
                (false, true) => b":1\r\n",
                (false, false) => b":0\r\n",
            }),
            Value::Verbatim { format, text } if resp3 => {
                put_len(out, b'=', text.len().saturating_add(4));
                out.extend_from_slice(format);
                out.extend_from_slice(b":");
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
            Value::Verbatim { text, .. } => put_bulk(out, text),
            Value::BigNumber(digits) if resp3 => put_line(out, b'(', digits.as_bytes()),
            Value::BigNumber(digits) => put_bulk(out, digits.as_bytes()),
        }
    }
}

/// Encodes a reply a part at a time, so that a connection can write a reply of any size while
/// holding only about one part of its encoding: the rest stays in the reply's values, which
/// refer to the entries in the segments' memory maps rather than copy them.
#[derive(Debug, Default)]
pub struct ReplyEncoder {
    protocol: Protocol,
    /// The aggregates being encoded, innermost last, each with the items it has left.
    open: Vec<Remaining>,
}

/// What is left of an aggregate being encoded.
#[derive(Debug)]
enum Remaining {
    Items(std::vec::IntoIter<Value>),
    /// A map's pairs, and the value of the pair whose key was just encoded.
    Pairs {
        pairs: std::vec::IntoIter<(Value, Value)>,
        value: Option<Value>,
    },
}

impl ReplyEncoder {
    /// Whether a reply is partly encoded: [`resume`](Self::resume) encodes more of it.
    pub fn is_encoding(&self) -> bool {
        !self.open.is_empty()
    }

    /// Starts encoding `reply` as `protocol` encodes it (the previous reply must be done), and
    /// encodes until `out` holds at least `until` bytes or the reply is done. Returns whether
    /// it is done.
    pub fn start(
        &mut self,
        reply: Value,
        protocol: Protocol,
        out: &mut BytesMut,
        until: usize,
    ) -> bool {
        debug_assert!(
            self.open.is_empty(),
            "a reply started before the last one ended"
        );
        self.protocol = protocol;
        self.open_value(reply, out);
        self.resume(out, until)
    }

    /// Encodes more of the current reply, until `out` holds at least `until` bytes or the reply
    /// is done. Returns whether it is done.
    pub fn resume(&mut self, out: &mut BytesMut, until: usize) -> bool {
        while out.len() < until {
            let Some(innermost) = self.open.last_mut() else {
                return true;
            };
            let next = match innermost {
                Remaining::Items(items) => items.next(),
                Remaining::Pairs { pairs, value } => value.take().or_else(|| {
                    let (key, next_value) = pairs.next()?;
                    *value = Some(next_value);
                    Some(key)
                }),
            };
            match next {
                Some(item) => self.open_value(item, out),
                None => {
                    self.open.pop();
                }
            }
        }
        self.open.is_empty()
    }

    /// Encodes a scalar whole, or an aggregate's header, leaving its items for later.
    fn open_value(&mut self, value: Value, out: &mut BytesMut) {
        let resp3 = self.protocol == Protocol::Resp3;
        let (prefix, items) = match value {
            Value::Array(items) => (b'*', items),
            Value::Set(items) => (if resp3 { b'~' } else { b'*' }, items),
            Value::Push(items) => (if resp3 { b'>' } else { b'*' }, items),
            Value::Map(pairs) => {
                if resp3 {
                    put_len(out, b'%', pairs.len());
                } else {
                    put_len(out, b'*', pairs.len().saturating_mul(2));
                }
                self.open.push(Remaining::Pairs {
                    pairs: pairs.into_iter(),
                    value: None,
                });
                return;
            }
            scalar => {
                scalar.encode(self.protocol, out);
                return;
            }
        };
        put_len(out, prefix, items.len());
        self.open.push(Remaining::Items(items.into_iter()));
    }
}

/// `<prefix><text>\r\n` with CR and LF in `text` turned into spaces, as Redis does for
/// errors, so a message can never break the framing.
fn put_line(out: &mut BytesMut, prefix: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.extend_from_slice(&[prefix]);
    let mut rest = text;
    while let Some(at) = rest.iter().position(|&b| b == b'\r' || b == b'\n') {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(b" ");
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out.extend_from_slice(b"\r\n");
}

fn put_fields(out: &mut BytesMut, entry: &Entry) {
    let record = entry.record();
    let body = !record.body.is_empty();
    put_len(out, b'*', 2 * (record.header_count() + usize::from(body)));
    for (name, value) in record.headers() {
        put_bulk(out, name);
        put_bulk(out, value);
    }
    if body {
        put_bulk(out, BODY_FIELD.as_bytes());
        put_bulk(out, record.body);
    }
}

fn put_bulk(out: &mut BytesMut, bytes: &[u8]) {
    put_len(out, b'$', bytes.len());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

fn put_aggregate(out: &mut BytesMut, protocol: Protocol, prefix: u8, items: &[Value]) {
    put_len(out, prefix, items.len());
    for item in items {
        item.encode(protocol, out);
    }
}

fn put_len(out: &mut BytesMut, prefix: u8, len: usize) {
    put_decimal(out, prefix, false, len as u64);
}

fn put_number(out: &mut BytesMut, prefix: u8, n: i64) {
    put_decimal(out, prefix, n < 0, n.unsigned_abs());
}

/// `<prefix>[-]<digits>\r\n`, formatted on the stack: integers and lengths are most of what
/// a server writes.
fn put_decimal(out: &mut BytesMut, prefix: u8, negative: bool, mut value: u64) {
    // Prefix, sign, the 20 digits of u64::MAX, CR, LF.
    let mut text = [0_u8; 24];
    let mut at = text.len();
    for &b in b"\n\r" {
        at -= 1;
        text[at] = b;
    }
    loop {
        at -= 1;
        text[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        text[at] = b'-';
    }
    at -= 1;
    text[at] = prefix;
    out.extend_from_slice(&text[at..]);
}

/// Formats a double as Redis 7.2+ does (`d2string`): `nan`, `inf`, `-inf`, `0`, `-0`; an
/// integral value within ±2^62 as an integer; anything else with the shortest digits that
/// read back exactly, laid out by the rules of the `fpconv_dtoa` Redis uses (plain up to a
/// few leading or trailing zeros, else `d.ddde±x`).
fn format_double(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value < 0.0 { "-inf" } else { "inf" }.to_owned();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // 2^62: the range Redis's `double2ll` accepts.
    const INTEGRAL_LIMIT: f64 = 4_611_686_018_427_387_904.0;
    if value.fract() == 0.0 && value.abs() <= INTEGRAL_LIMIT {
        return (value as i64).to_string();
    }
    // `{:e}` gives the shortest round-trip digits as `d.ddd` and a decimal exponent.
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let count = digits.len() as i64;
    // value = digits * 10^k
    let k = exponent - (count - 1);
    let mut out = String::with_capacity(32);
    if value < 0.0 {
        out.push('-');
    }
    if k >= 0 && exponent < count + 7 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', k as usize));
    } else if k < 0 && (k > -7 || exponent.abs() < 4) {
        let whole = count + k;
        if whole <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', whole.unsigned_abs() as usize));
            out.push_str(&digits);
        } else {
            let (int_part, frac_part) = digits.split_at(whole as usize);
            out.push_str(int_part);
            out.push('.');
            out.push_str(frac_part);
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        out.push_str(&exponent.unsigned_abs().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_encoded_in_parts_is_the_whole_encoding() {
        let entry_like = |n: i64| {
            Value::Array(vec![
                Value::bulk(format!("{n}-0")),
                Value::Array(vec![
                    Value::bulk("field"),
                    Value::bulk("x".repeat(n as usize)),
                ]),
            ])
        };
        let reply = Value::Array(vec![
            Value::Map(vec![
                (
                    Value::bulk("orders"),
                    Value::Array((0..50).map(entry_like).collect()),
                ),
                (
                    Value::Array(Vec::new()),
                    Value::Set(vec![Value::Integer(1), Value::Null]),
                ),
            ]),
            Value::Push(vec![Value::Boolean(true), Value::Double(1.5)]),
            Value::Array(Vec::new()),
            Value::Integer(7),
        ]);
        for protocol in [Protocol::Resp2, Protocol::Resp3] {
            let whole = encoded(&reply, protocol);
            for part in [1, 7, 64, 1000, usize::MAX] {
                let mut encoder = ReplyEncoder::default();
                let mut out = BytesMut::new();
                let mut parts = Vec::new();
                let mut done = encoder.start(reply.clone(), protocol, &mut out, part);
                loop {
                    parts.extend_from_slice(&out);
                    out.clear();
                    if done {
                        break;
                    }
                    assert!(encoder.is_encoding());
                    done = encoder.resume(&mut out, part);
                }
                assert!(!encoder.is_encoding());
                assert_eq!(parts, whole, "{protocol:?} in parts of {part}");
            }
        }
    }

    fn encoded(value: &Value, protocol: Protocol) -> Vec<u8> {
        let mut out = BytesMut::new();
        value.encode(protocol, &mut out);
        out.to_vec()
    }

    /// Checks the RESP2 and RESP3 encodings of `value`.
    #[track_caller]
    fn check(value: Value, resp2: &[u8], resp3: &[u8]) {
        assert_eq!(
            String::from_utf8_lossy(&encoded(&value, Protocol::Resp2)),
            String::from_utf8_lossy(resp2),
            "RESP2 {value:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&encoded(&value, Protocol::Resp3)),
            String::from_utf8_lossy(resp3),
            "RESP3 {value:?}"
        );
    }

    #[test]
    fn scalar_replies() {
        check(Value::ok(), b"+OK\r\n", b"+OK\r\n");
        check(Value::simple("PONG"), b"+PONG\r\n", b"+PONG\r\n");
        check(Value::simple("a\r\nb\nc"), b"+a  b c\r\n", b"+a  b c\r\n");
        check(
            Value::error("NOGROUP No such key 'k'"),
            b"-NOGROUP No such key 'k'\r\n",
            b"-NOGROUP No such key 'k'\r\n",
        );
        check(
            Value::err("syntax error"),
            b"-ERR syntax error\r\n",
            b"-ERR syntax error\r\n",
        );
        check(
            Value::error("ERR a\r\nb"),
            b"-ERR a  b\r\n",
            b"-ERR a  b\r\n",
        );
        check(Value::Integer(0), b":0\r\n", b":0\r\n");
        check(Value::Integer(-42), b":-42\r\n", b":-42\r\n");
        check(
            Value::Integer(i64::MAX),
            b":9223372036854775807\r\n",
            b":9223372036854775807\r\n",
        );
        check(
            Value::Integer(i64::MIN),
            b":-9223372036854775808\r\n",
            b":-9223372036854775808\r\n",
        );
        check(Value::bulk("hello"), b"$5\r\nhello\r\n", b"$5\r\nhello\r\n");
        check(Value::bulk(""), b"$0\r\n\r\n", b"$0\r\n\r\n");
        check(
            Value::bulk(&b"a\r\nb"[..]),
            b"$4\r\na\r\nb\r\n",
            b"$4\r\na\r\nb\r\n",
        );
        check(Value::Null, b"$-1\r\n", b"_\r\n");
        check(Value::NullArray, b"*-1\r\n", b"_\r\n");
        check(Value::Boolean(true), b":1\r\n", b"#t\r\n");
        check(Value::Boolean(false), b":0\r\n", b"#f\r\n");
        check(Value::Double(3.5), b"$3\r\n3.5\r\n", b",3.5\r\n");
        check(Value::Double(f64::INFINITY), b"$3\r\ninf\r\n", b",inf\r\n");
        check(
            Value::Verbatim {
                format: *b"txt",
                text: Bytes::from("Some string"),
            },
            b"$11\r\nSome string\r\n",
            b"=15\r\ntxt:Some string\r\n",
        );
        check(
            Value::BigNumber("3492890328409238509324850943850943825024385".into()),
            b"$43\r\n3492890328409238509324850943850943825024385\r\n",
            b"(3492890328409238509324850943850943825024385\r\n",
        );
    }

    #[test]
    fn aggregate_replies() {
        check(Value::Array(vec![]), b"*0\r\n", b"*0\r\n");
        check(
            Value::Array(vec![Value::bulk("a"), Value::Integer(1), Value::Null]),
            b"*3\r\n$1\r\na\r\n:1\r\n$-1\r\n",
            b"*3\r\n$1\r\na\r\n:1\r\n_\r\n",
        );
        check(
            Value::Map(vec![
                (Value::bulk("proto"), Value::Integer(3)),
                (Value::bulk("modules"), Value::Array(vec![])),
            ]),
            b"*4\r\n$5\r\nproto\r\n:3\r\n$7\r\nmodules\r\n*0\r\n",
            b"%2\r\n$5\r\nproto\r\n:3\r\n$7\r\nmodules\r\n*0\r\n",
        );
        check(
            Value::Set(vec![Value::simple("write"), Value::simple("fast")]),
            b"*2\r\n+write\r\n+fast\r\n",
            b"~2\r\n+write\r\n+fast\r\n",
        );
        check(
            Value::Push(vec![
                Value::bulk("message"),
                Value::bulk("ch"),
                Value::bulk("hi"),
            ]),
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
        );
        // XREAD's reply: a map of stream name to entries, each an ID and its fields.
        let entry = Value::Array(vec![
            Value::bulk("1-0"),
            Value::Array(vec![Value::bulk("f"), Value::bulk("v")]),
        ]);
        check(
            Value::Map(vec![(Value::bulk("s"), Value::Array(vec![entry]))]),
            b"*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
            b"%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
        );
        // Encoding appends.
        let mut out = BytesMut::from(&b"+OK\r\n"[..]);
        Value::Integer(7).encode(Protocol::Resp2, &mut out);
        assert_eq!(&out[..], b"+OK\r\n:7\r\n");
        assert_eq!(Protocol::default(), Protocol::Resp2);
    }

    #[test]
    fn doubles_format_like_redis() {
        let cases: &[(f64, &str)] = &[
            (3.5, "3.5"),
            (-2.25, "-2.25"),
            (1.0, "1"),
            (-7.0, "-7"),
            (0.0, "0"),
            (-0.0, "-0"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (0.0001, "0.0001"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (123_456_789.125, "123456789.125"),
            (4_611_686_018_427_387_904.0, "4611686018427387904"),
            (9_223_372_036_854_775_808.0, "9223372036854776000"),
            (1e20, "1e+20"),
            (1.5e22, "1.5e+22"),
            (1e23, "1e+23"),
            (1.5e300, "1.5e+300"),
            (-1e100, "-1e+100"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ];
        for &(value, text) in cases {
            assert_eq!(format_double(value), text, "{value:e}");
            if value.is_finite() {
                assert_eq!(text.parse::<f64>().ok(), Some(value), "{text} reads back");
            }
        }
    }
}
