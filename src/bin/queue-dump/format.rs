//! Presentation helpers: bytes given back from escaped text, bodies as hex dumps, times as
//! ISO 8601.

pub(crate) use weir::inspect::{escape, quoted};

/// The reverse of [`escape`]: `\\`, `\n`, `\r`, `\t`, `\"` and `\xNN` become the bytes they
/// stand for; anything else, a malformed escape included, is kept as it is.
pub(crate) fn unescape(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let (byte, used) = match (text[i], text.get(i + 1)) {
            (b'\\', Some(b'\\')) => (b'\\', 2),
            (b'\\', Some(b'n')) => (b'\n', 2),
            (b'\\', Some(b'r')) => (b'\r', 2),
            (b'\\', Some(b't')) => (b'\t', 2),
            (b'\\', Some(b'"')) => (b'"', 2),
            (b'\\', Some(b'x')) => match text
                .get(i + 2..i + 4)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                Some(byte) => (byte, 4),
                None => (b'\\', 1),
            },
            (byte, _) => (byte, 1),
        };
        out.push(byte);
        i += used;
    }
    out
}

/// A classic hex dump: offset, 16 bytes in hex, and the printable ASCII.
pub(crate) fn hex_dump(bytes: &[u8], indent: &str) -> String {
    let mut out = String::new();
    for (line, chunk) in bytes.chunks(16).enumerate() {
        out.push_str(&format!("{indent}{:08x} ", line * 16));
        for i in 0..16 {
            match chunk.get(i) {
                Some(b) => out.push_str(&format!(" {b:02x}")),
                None => out.push_str("   "),
            }
            if i == 7 {
                out.push(' ');
            }
        }
        out.push_str("  |");
        for &b in chunk {
            out.push(if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '.'
            });
        }
        out.push_str("|\n");
    }
    out
}

/// Unix milliseconds as an ISO 8601 UTC time (`1970-01-01T00:00:00.000Z`).
pub(crate) fn format_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm), in i128 so that no
    // u64 value can overflow.
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip_and_times() {
        for sample in [
            &b"hi\x00\xff\n\\ \"q\""[..],
            "héllo".as_bytes(),
            b"\\x4",
            b"\\xzz",
        ] {
            assert_eq!(unescape(escape(sample).as_bytes()), sample);
        }
        assert_eq!(unescape(br"a\x41\q"), b"aA\\q");
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert!(!format_ms(u64::MAX).is_empty());
        assert!(hex_dump(b"hello, world! 0123456789", "").contains("|hello, world! 01|"));
    }
}
