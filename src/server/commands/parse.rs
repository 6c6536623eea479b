//! Arguments as Redis reads them, shared by every stream and group command: a cursor over a
//! command's arguments ([`Parse`]), integers (`util.c`'s `string2ll` and `string2ull`), stream
//! IDs (`t_stream.c`'s `streamGenericParseIDOrReply`) and `BLOCK` timeouts, each with Redis's
//! exact error text. Redis's rules are stricter than Rust's in places (`+5`, `01` as integers)
//! and looser in others (` 7` as an ID part); one copy of them keeps every command in step.
//! Commands check their arguments in the order Redis checks them, so a client sees the same
//! first error.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::id::StreamId;
use crate::server::resp::Value;

// ---------------------------------------------------------------------------------------------
// The cursor.

/// A cursor over a command's arguments, from a given one on.
#[derive(Debug, Clone)]
pub(crate) struct Parse<'a> {
    args: &'a [Bytes],
    next: usize,
}

impl<'a> Parse<'a> {
    /// Starts at `args[from]`.
    pub(crate) fn new(args: &'a [Bytes], from: usize) -> Self {
        Parse { args, next: from }
    }

    /// The next argument, without consuming it.
    pub(crate) fn peek(&self) -> Option<&'a Bytes> {
        self.args.get(self.next)
    }

    /// Where the next argument is in the command.
    pub(crate) fn position(&self) -> usize {
        self.next
    }

    /// How many arguments follow the next one (Redis's `moreargs` for the option at hand).
    pub(crate) fn more_after_next(&self) -> usize {
        self.args.len().saturating_sub(self.next + 1)
    }

    /// The arguments not consumed yet.
    pub(crate) fn rest(&self) -> &'a [Bytes] {
        self.args.get(self.next..).unwrap_or_default()
    }

    /// An option's value: `ERR syntax error` when the command ends first.
    pub(crate) fn value(&mut self) -> Result<&'a Bytes, Value> {
        self.next().ok_or_else(syntax_error)
    }

    /// An option's integer value.
    pub(crate) fn integer(&mut self) -> Result<i64, Value> {
        integer(self.value()?)
    }
}

impl<'a> Iterator for Parse<'a> {
    type Item = &'a Bytes;

    fn next(&mut self) -> Option<&'a Bytes> {
        let arg = self.args.get(self.next)?;
        self.next += 1;
        Some(arg)
    }
}

/// Case-insensitive comparison of an argument with a keyword.
pub(crate) fn is(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}

/// `ERR syntax error`.
pub(crate) fn syntax_error() -> Value {
    Value::error("ERR syntax error")
}

// ---------------------------------------------------------------------------------------------
// Integers.

/// Longest integer argument `string2ll` accepts.
const MAX_INTEGER_LEN: usize = 20;

/// Redis's reply to an argument that is not an integer.
const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";

/// An integer argument, with Redis's generic error.
pub(crate) fn integer(arg: &[u8]) -> Result<i64, Value> {
    integer_or(arg, NOT_AN_INTEGER)
}

/// An integer argument, or `error` as the reply.
pub(crate) fn integer_or(arg: &[u8], error: &str) -> Result<i64, Value> {
    string2ll(arg).ok_or_else(|| Value::error(error))
}

/// A non-negative integer argument.
pub(crate) fn non_negative(arg: &[u8]) -> Result<u64, Value> {
    u64::try_from(integer(arg)?)
        .map_err(|_| Value::error("ERR value is out of range, must be positive"))
}

/// `string2ll`: an optional `-`, then `0` alone or digits without a leading zero, in range. No
/// `+`, no spaces.
pub(crate) fn string2ll(arg: &[u8]) -> Option<i64> {
    if arg.is_empty() || arg.len() > MAX_INTEGER_LEN {
        return None;
    }
    if arg == b"0" {
        return Some(0);
    }
    let (negative, digits) = match arg.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, arg),
    };
    if !matches!(digits.first(), Some(b'1'..=b'9')) {
        return None;
    }
    let magnitude = decimal(digits)?;
    if negative {
        0_i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// `string2ull`, which reads stream ID parts: a negative `string2ll` value is refused, anything
/// else goes to C's `strtoull`, which skips leading white space, takes a sign (a `-` negates
/// modulo 2^64) and must consume everything.
pub(crate) fn string2ull(arg: &[u8]) -> Option<u64> {
    if let Some(value) = string2ll(arg) {
        return u64::try_from(value).ok();
    }
    let start = arg
        .iter()
        .position(|&b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))?;
    let rest = &arg[start..];
    let (negative, digits) = match rest.split_first() {
        Some((b'-', digits)) => (true, digits),
        Some((b'+', digits)) => (false, digits),
        _ => (false, rest),
    };
    let value = decimal(digits)?;
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// Digits only, at least one, without overflow.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0_u64, |value, &byte| {
        if !byte.is_ascii_digit() {
            return None;
        }
        value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))
    })
}

// ---------------------------------------------------------------------------------------------
// Stream IDs.

/// Longest ID argument Redis accepts (its parse buffer is 128 bytes).
const MAX_ID_LEN: usize = 127;

/// The argument as C code sees it: up to its first NUL byte. Redis compares IDs and the
/// one-character tokens (`*`, `~`, `$`, ...) as C strings.
pub(crate) fn c_str(arg: &[u8]) -> &[u8] {
    arg.iter()
        .position(|&b| b == 0)
        .map_or(arg, |end| &arg[..end])
}

/// A parsed ID argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParsedId {
    Exact(StreamId),
    /// `ms-*` (XADD only): this millisecond, next free sequence.
    MsStar(u64),
}

/// How an ID argument is read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdRules {
    /// The sequence of a bare `ms`: 0 for a start, the maximum for an end.
    pub(crate) missing_seq: u64,
    /// `-` and `+` are refused (everywhere but range bounds).
    pub(crate) strict: bool,
    /// `ms-*` is accepted.
    pub(crate) ms_star: bool,
}

/// An entry ID: no `-`, `+` or `ms-*`; a bare `ms` is `ms-0`.
pub(crate) const STRICT: IdRules = IdRules {
    missing_seq: 0,
    strict: true,
    ms_star: false,
};

/// Redis's `streamGenericParseIDOrReply`.
pub(crate) fn parse_id(arg: &[u8], rules: IdRules) -> Option<ParsedId> {
    if arg.len() > MAX_ID_LEN {
        return None;
    }
    let text = c_str(arg);
    match text {
        b"-" | b"+" if rules.strict => return None,
        b"-" => return Some(ParsedId::Exact(StreamId::MIN)),
        b"+" => return Some(ParsedId::Exact(StreamId::MAX)),
        _ => {}
    }
    let Some(dash) = text.iter().position(|&b| b == b'-') else {
        return Some(ParsedId::Exact(StreamId::new(
            string2ull(text)?,
            rules.missing_seq,
        )));
    };
    let ms = string2ull(&text[..dash])?;
    let seq = &text[dash + 1..];
    if rules.ms_star && seq == b"*" {
        return Some(ParsedId::MsStar(ms));
    }
    Some(ParsedId::Exact(StreamId::new(ms, string2ull(seq)?)))
}

/// A strict ID, or `None`: where an argument that is not an ID ends a list of IDs.
pub(crate) fn maybe_strict_id(arg: &[u8]) -> Option<StreamId> {
    match parse_id(arg, STRICT)? {
        ParsedId::Exact(id) => Some(id),
        ParsedId::MsStar(_) => None,
    }
}

pub(crate) fn invalid_id() -> Value {
    Value::error("ERR Invalid stream ID specified as stream command argument")
}

/// A strict ID: no `-`, `+` or `ms-*`; a bare `ms` is `ms-0`.
pub(crate) fn strict_id(arg: &[u8]) -> Result<StreamId, Value> {
    maybe_strict_id(arg).ok_or_else(invalid_id)
}

/// Every argument a strict ID, or the first error.
pub(crate) fn strict_ids(args: &[Bytes]) -> Result<Vec<StreamId>, Value> {
    args.iter().map(|arg| strict_id(arg)).collect()
}

/// A range start: `-`, `ms` (`ms-0`), `ms-seq`, or a strict ID after `(` to exclude it, which
/// moves the start to the next ID. Returns the inclusive start.
pub(crate) fn range_start(arg: &[u8]) -> Result<StreamId, Value> {
    match range_bound(arg, 0)? {
        (id, true) => id
            .successor()
            .ok_or_else(|| Value::error("ERR invalid start ID for the interval")),
        (id, false) => Ok(id),
    }
}

/// A range end: `+`, `ms` (`ms-max`), `ms-seq`, or a strict ID after `(` to exclude it, which
/// moves the end to the previous ID. Returns the inclusive end.
pub(crate) fn range_end(arg: &[u8]) -> Result<StreamId, Value> {
    match range_bound(arg, u64::MAX)? {
        (id, true) => id
            .predecessor()
            .ok_or_else(|| Value::error("ERR invalid end ID for the interval")),
        (id, false) => Ok(id),
    }
}

/// A range bound and whether it is excluded.
fn range_bound(arg: &[u8], missing_seq: u64) -> Result<(StreamId, bool), Value> {
    let (text, exclusive) = match arg.split_first() {
        Some((b'(', rest)) if !rest.is_empty() => (rest, true),
        _ => (arg, false),
    };
    let rules = IdRules {
        missing_seq,
        strict: exclusive,
        ms_star: false,
    };
    match parse_id(text, rules) {
        Some(ParsedId::Exact(id)) => Ok((id, exclusive)),
        _ => Err(invalid_id()),
    }
}

// ---------------------------------------------------------------------------------------------
// BLOCK.

/// How long a blocking read waits when it finds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Block {
    Forever,
    Until(Instant),
}

impl Block {
    /// The deadline; `None` waits forever.
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Block::Forever => None,
            Block::Until(deadline) => Some(deadline),
        }
    }
}

/// The moment a command is parsed, on both clocks a timeout is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub(crate) instant: Instant,
    pub(crate) unix_ms: u64,
}

/// `BLOCK ms` with Redis's checks; 0 blocks forever. A deadline past what an `Instant` can
/// hold is forever in practice.
pub(crate) fn block(arg: &[u8], now: Instant) -> Result<Block, Value> {
    let ms = block_ms(arg)?;
    if ms == 0 {
        return Ok(Block::Forever);
    }
    Ok(now
        .checked_add(Duration::from_millis(ms))
        .map_or(Block::Forever, Block::Until))
}

/// [`block`], also refusing as Redis's `getTimeoutFromObjectOrReply` does a timeout whose end
/// is past the largest Unix time in milliseconds.
pub(crate) fn block_in_range(arg: &[u8], now: Now) -> Result<Block, Value> {
    let ms = block_ms(arg)?;
    if ms > (i64::MAX as u64).saturating_sub(now.unix_ms) {
        return Err(Value::error("ERR timeout is out of range"));
    }
    block(arg, now.instant)
}

/// BLOCK's milliseconds.
fn block_ms(arg: &[u8]) -> Result<u64, Value> {
    let ms = integer_or(arg, "ERR timeout is not an integer or out of range")?;
    u64::try_from(ms).map_err(|_| Value::error("ERR timeout is negative"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A command's arguments, split at spaces.
    pub(crate) fn args(text: &str) -> Vec<Bytes> {
        text.split(' ')
            .map(|word| Bytes::copy_from_slice(word.as_bytes()))
            .collect()
    }

    /// The text of an error reply.
    pub(crate) fn error_text(value: Value) -> String {
        match value {
            Value::Error(text) => text,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn string2ll_is_strict() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"-12"), Some(-12));
        assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            "",
            "-",
            "+1",
            "+5",
            "01",
            "00",
            "007",
            "-0",
            " 1",
            "1 ",
            "1.5",
            "1e3",
            "0x10",
            "9223372036854775808",
        ] {
            assert_eq!(string2ll(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn string2ull_follows_strtoull() {
        assert_eq!(string2ull(b"42"), Some(42));
        assert_eq!(string2ull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(string2ull(b" +7"), Some(7));
        assert_eq!(string2ull(b" 5"), Some(5));
        assert_eq!(string2ull(b"+5"), Some(5));
        assert_eq!(string2ull(b"007"), Some(7));
        assert_eq!(string2ull(b"0012"), Some(12));
        assert_eq!(string2ull(b"-0"), Some(0));
        assert_eq!(string2ull(b"-1"), None, "a negative integer is refused");
        // strtoull negates modulo 2^64 what string2ll refused.
        assert_eq!(string2ull(b" -1"), Some(u64::MAX));
        assert_eq!(string2ull(b"-05"), Some(5_u64.wrapping_neg()));
        for bad in [
            "",
            " ",
            "   ",
            "+",
            "-5",
            "5 ",
            "1x",
            "18446744073709551616",
            "0x1",
            "1.0",
        ] {
            assert_eq!(string2ull(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn ids_parse_like_redis() {
        const RANGE_START: IdRules = IdRules {
            missing_seq: 0,
            strict: false,
            ms_star: false,
        };
        let exact = |ms, seq| Some(ParsedId::Exact(StreamId::new(ms, seq)));
        assert_eq!(parse_id(b"5-3", STRICT), exact(5, 3));
        assert_eq!(parse_id(b"5", STRICT), exact(5, 0));
        assert_eq!(parse_id(b"00012-0001", STRICT), exact(12, 1));
        assert_eq!(parse_id(b"+5-+3", STRICT), exact(5, 3));
        let end = IdRules {
            missing_seq: u64::MAX,
            ..RANGE_START
        };
        assert_eq!(parse_id(b"5", end), exact(5, u64::MAX));
        assert_eq!(parse_id(b"-", RANGE_START), exact(0, 0));
        assert_eq!(parse_id(b"+", RANGE_START), exact(u64::MAX, u64::MAX));
        let xadd = IdRules {
            ms_star: true,
            ..STRICT
        };
        assert_eq!(parse_id(b"5-*", xadd), Some(ParsedId::MsStar(5)));
        assert_eq!(parse_id(b"*", xadd), None);
        assert_eq!(parse_id(b"5-3\0junk", STRICT), exact(5, 3));
        for bad in [
            "-",
            "+",
            "-0",
            "-1",
            "1-*",
            "5-",
            "x",
            "1-2-3",
            "18446744073709551616",
        ] {
            assert_eq!(parse_id(bad.as_bytes(), STRICT), None, "{bad:?}");
        }
        assert_eq!(parse_id(&[b'1'; 128], STRICT), None);
        assert_eq!(parse_id(&[b'1'; 128], RANGE_START), None);
    }

    #[test]
    fn range_bounds_exclude_with_a_parenthesis() {
        assert_eq!(range_start(b"-"), Ok(StreamId::MIN));
        assert_eq!(range_end(b"+"), Ok(StreamId::MAX));
        assert_eq!(range_start(b"7"), Ok(StreamId::new(7, 0)));
        assert_eq!(range_end(b"7"), Ok(StreamId::new(7, u64::MAX)));
        assert_eq!(range_start(b"(7-1"), Ok(StreamId::new(7, 2)));
        assert_eq!(range_end(b"(7"), Ok(StreamId::new(7, u64::MAX - 1)));
        assert_eq!(range_end(b"(7-0"), Ok(StreamId::new(6, u64::MAX)));
        assert_eq!(range_start(b"(1-0"), Ok(StreamId::new(1, 1)));
        assert_eq!(range_end(b"(1-0"), Ok(StreamId::new(0, u64::MAX)));
        assert!(range_start(b"(-").is_err());
        assert!(range_end(b"(+").is_err());
        assert!(range_start(b"(").is_err());
        let max = "(18446744073709551615-18446744073709551615";
        assert_eq!(
            error_text(range_start(max.as_bytes()).unwrap_err()),
            "ERR invalid start ID for the interval"
        );
        assert_eq!(
            error_text(range_end(b"(0-0").unwrap_err()),
            "ERR invalid end ID for the interval"
        );
    }

    #[test]
    fn block_timeouts() {
        let now = Now {
            instant: Instant::now(),
            unix_ms: 1_700_000_000_000,
        };
        assert_eq!(block(b"0", now.instant), Ok(Block::Forever));
        assert_eq!(
            block(b"100", now.instant),
            Ok(Block::Until(now.instant + Duration::from_millis(100)))
        );
        let cases = [
            ("-1", "ERR timeout is negative"),
            ("1.5", "ERR timeout is not an integer or out of range"),
            ("@5", "ERR timeout is not an integer or out of range"),
        ];
        for (arg, expected) in cases {
            let error = block(arg.as_bytes(), now.instant).unwrap_err();
            assert_eq!(error_text(error), expected, "{arg}");
        }
        let huge = b"9223372036854775807";
        assert_eq!(
            error_text(block_in_range(huge, now).unwrap_err()),
            "ERR timeout is out of range"
        );
        assert!(
            block(huge, now.instant).is_ok(),
            "only the range check refuses it"
        );
    }

    #[test]
    fn the_cursor_reads_options_and_values() {
        let command = args("XRANGE s - + COUNT 5 COUNT x");
        let mut parse = Parse::new(&command, 4);
        assert_eq!(parse.more_after_next(), 3);
        assert_eq!(parse.next().map(|arg| &arg[..]), Some(&b"COUNT"[..]));
        assert_eq!(parse.integer(), Ok(5));
        assert_eq!(parse.position(), 6);
        assert_eq!(parse.rest(), &command[6..]);
        assert!(parse.next().is_some());
        assert_eq!(
            error_text(parse.integer().unwrap_err()),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(parse.peek(), None);
        assert_eq!(error_text(parse.value().unwrap_err()), "ERR syntax error");
        assert_eq!(parse.rest(), &[] as &[Bytes]);
    }
}
