//! Stream entry IDs: `ms-seq`, two unsigned 64-bit integers ordered lexicographically.
//!
//! Every entry appended to a stream gets an ID strictly greater than the last one the stream ever
//! generated (deletions never let the ID go back), and `0-0` is never a valid entry ID.

use std::fmt;
use std::str::FromStr;

/// The identity of a stream entry: milliseconds and a sequence number within that millisecond.
///
/// ```
/// use weir::StreamId;
/// let id: StreamId = "1700000000000-3".parse().unwrap();
/// assert_eq!(id, StreamId::new(1_700_000_000_000, 3));
/// assert!(id < StreamId::new(1_700_000_000_001, 0));
/// assert_eq!(id.to_string(), "1700000000000-3");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    /// Milliseconds part (usually a Unix time in milliseconds).
    pub ms: u64,
    /// Sequence number within the millisecond.
    pub seq: u64,
}

impl StreamId {
    /// The smallest ID, `0-0`. Never a valid entry ID; used as "before everything".
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest ID, `18446744073709551615-18446744073709551615`.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// Builds an ID from its two parts.
    pub const fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// The smallest ID strictly greater than this one, or `None` at [`StreamId::MAX`].
    pub fn successor(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The largest ID strictly smaller than this one, or `None` at [`StreamId::MIN`].
    pub fn predecessor(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    /// The ID Redis generates for `*`: `max(now_ms, last.ms)` with a bumped sequence when the
    /// millisecond has not moved. `None` when `last` is already the maximum ID.
    ///
    /// ```
    /// use weir::StreamId;
    /// assert_eq!(StreamId::new(5, 7).next_auto(5), Some(StreamId::new(5, 8)));
    /// assert_eq!(StreamId::new(5, 7).next_auto(9), Some(StreamId::new(9, 0)));
    /// // A clock that went backwards never produces a smaller ID.
    /// assert_eq!(StreamId::new(5, 7).next_auto(1), Some(StreamId::new(5, 8)));
    /// ```
    pub fn next_auto(self, now_ms: u64) -> Option<StreamId> {
        if now_ms > self.ms {
            Some(StreamId::new(now_ms, 0))
        } else {
            self.successor()
        }
    }

    /// The ID for `ms-*`: `ms-(last.seq+1)` when `ms` equals the last millisecond, `ms-0` when it
    /// is greater, `None` when that would not exceed `last`.
    pub fn next_with_ms(self, ms: u64) -> Option<StreamId> {
        match ms.cmp(&self.ms) {
            std::cmp::Ordering::Greater => Some(StreamId::new(ms, 0)),
            std::cmp::Ordering::Equal => self.seq.checked_add(1).map(|seq| StreamId::new(ms, seq)),
            std::cmp::Ordering::Less => None,
        }
    }
}

/// Longest `ms-seq` text: two 20-digit numbers and the dash.
const MAX_TEXT_LEN: usize = 41;

impl StreamId {
    /// The `ms-seq` text, formatted by hand on the stack: every XADD reply and every entry a
    /// read returns carries an ID, and the general formatting machinery cost more instructions
    /// than the rest of an XADD's reply.
    pub fn text(&self) -> IdText {
        let mut bytes = [0u8; MAX_TEXT_LEN];
        let mut start = decimal_before(&mut bytes, MAX_TEXT_LEN, self.seq) - 1;
        bytes[start] = b'-';
        start = decimal_before(&mut bytes, start, self.ms);
        IdText { bytes, start }
    }
}

/// A [`StreamId`]'s `ms-seq` text (ASCII digits and a dash), see [`StreamId::text`].
#[derive(Clone, Copy, Debug)]
pub struct IdText {
    bytes: [u8; MAX_TEXT_LEN],
    start: usize,
}

impl IdText {
    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text();
        f.write_str(std::str::from_utf8(text.as_bytes()).map_err(|_| fmt::Error)?)
    }
}

/// The two-digit decimal texts of 0 to 99, back to back: formatting two digits per division
/// halves the divisions an ID's text costs.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut n = 0;
    while n < 100 {
        pairs[2 * n] = b'0' + (n / 10) as u8;
        pairs[2 * n + 1] = b'0' + (n % 10) as u8;
        n += 1;
    }
    pairs
};

/// Writes `value`'s decimal digits so they end just before `end`; returns where they start.
fn decimal_before(buf: &mut [u8], end: usize, mut value: u64) -> usize {
    let mut start = end;
    while value >= 10 {
        let pair = (value % 100) as usize * 2;
        start -= 2;
        buf[start..start + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        value /= 100;
    }
    // One digit is left over when the count is odd, and a lone zero is still a digit.
    if value > 0 || start == end {
        start -= 1;
        buf[start] = b'0' + value as u8;
    }
    start
}

/// Why a string is not a valid `ms-seq` ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid stream ID {text:?}: expected `ms-seq` or `ms` with unsigned 64-bit integers")]
pub struct ParseIdError {
    text: String,
}

impl FromStr for StreamId {
    type Err = ParseIdError;

    /// Parses `ms-seq`, or a bare `ms` meaning `ms-0`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseIdError {
            text: text.chars().take(64).collect(),
        };
        let parse_part = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            part.parse::<u64>().map_err(|_| invalid())
        };
        match text.split_once('-') {
            Some((ms, seq)) => Ok(StreamId::new(parse_part(ms)?, parse_part(seq)?)),
            None => Ok(StreamId::new(parse_part(text)?, 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_every_digit_of_both_parts() {
        let edges = (0..20).map(|power| 10_u64.pow(power));
        let values: Vec<u64> = edges
            .flat_map(|edge| [edge - 1, edge, edge + 1, edge.saturating_mul(5)])
            .chain([99, 100, 101, 12_345, u64::MAX - 1, u64::MAX])
            .collect();
        for &ms in &values {
            for &seq in &values {
                let text = StreamId::new(ms, seq).text();
                assert_eq!(text.as_bytes(), format!("{ms}-{seq}").as_bytes());
            }
        }
    }

    #[test]
    fn parses_and_formats() {
        assert_eq!("0-1".parse::<StreamId>().unwrap(), StreamId::new(0, 1));
        assert_eq!("42".parse::<StreamId>().unwrap(), StreamId::new(42, 0));
        let max = "18446744073709551615-18446744073709551615";
        assert_eq!(max.parse::<StreamId>().unwrap(), StreamId::MAX);
        assert_eq!(StreamId::MAX.to_string(), max);
        assert_eq!(StreamId::MIN.to_string(), "0-0");
        assert_eq!(StreamId::new(10, 9).to_string(), "10-9");
        assert_eq!(
            StreamId::new(1_700_000_000_123, 100).to_string(),
            "1700000000123-100"
        );
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "a-1",
            "1-b",
            "1-2-3",
            "+1-2",
            "18446744073709551616-0",
        ] {
            assert!(bad.parse::<StreamId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn successor_and_predecessor_wrap_at_the_edges() {
        assert_eq!(
            StreamId::new(1, u64::MAX).successor(),
            Some(StreamId::new(2, 0))
        );
        assert_eq!(StreamId::MAX.successor(), None);
        assert_eq!(
            StreamId::new(2, 0).predecessor(),
            Some(StreamId::new(1, u64::MAX))
        );
        assert_eq!(StreamId::MIN.predecessor(), None);
    }

    #[test]
    fn explicit_ms_star_follows_redis() {
        let last = StreamId::new(10, 4);
        assert_eq!(last.next_with_ms(10), Some(StreamId::new(10, 5)));
        assert_eq!(last.next_with_ms(11), Some(StreamId::new(11, 0)));
        assert_eq!(last.next_with_ms(9), None);
        assert_eq!(StreamId::new(10, u64::MAX).next_with_ms(10), None);
        assert_eq!(StreamId::MAX.next_auto(u64::MAX), None);
    }
}
