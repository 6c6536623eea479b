//! The sizes of Redis's listpack elements: what a Redis stream node (a listpack) of given
//! entries weighs, so that [`nodes`](super::nodes) can tell where Redis would close a node
//! under `stream-node-max-bytes`. Only sizes are computed; nothing is encoded.

/// Bytes of a listpack's header (total bytes and element count) and its end marker.
pub(super) const EMPTY_LISTPACK: usize = 6 + 1;

/// Bytes an integer element takes, its back-length included.
pub(super) fn integer_len(value: i64) -> usize {
    let encoded = match value {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32_768..=32_767 => 3,
        -8_388_608..=8_388_607 => 4,
        -2_147_483_648..=2_147_483_647 => 5,
        _ => 9,
    };
    encoded + back_len(encoded)
}

/// Bytes a string element takes, its back-length included. A string that spells an integer is
/// stored as that integer, as Redis does.
pub(super) fn string_len(bytes: &[u8]) -> usize {
    if let Some(value) = as_integer(bytes) {
        return integer_len(value);
    }
    let size = bytes.len();
    let encoded = match size {
        0..=63 => 1 + size,
        64..=4095 => 2 + size,
        _ => 5 + size,
    };
    encoded + back_len(encoded)
}

/// Bytes of the back-length that follows an element of `encoded` bytes.
fn back_len(encoded: usize) -> usize {
    match encoded {
        0..=127 => 1,
        128..=16_382 => 2,
        16_383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// The integer `bytes` spells in canonical form (no sign but `-`, no leading zero, fits in 64
/// bits), as Redis's `lpStringToInt64` accepts it.
fn as_integer(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    if bytes == b"0" {
        return Some(0);
    }
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical =
        matches!(digits.first(), Some(b'1'..=b'9')) && digits.iter().all(u8::is_ascii_digit);
    if !canonical {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_take_the_smallest_encoding_that_holds_them() {
        assert_eq!(integer_len(0), 2);
        assert_eq!(integer_len(127), 2);
        assert_eq!(integer_len(128), 3);
        assert_eq!(integer_len(-1), 3);
        assert_eq!(integer_len(4096), 4);
        assert_eq!(integer_len(40_000), 5);
        assert_eq!(integer_len(10_000_000), 6);
        assert_eq!(integer_len(1 << 40), 10);
    }

    #[test]
    fn strings_that_spell_integers_are_integers() {
        assert_eq!(string_len(b"v"), 3);
        assert_eq!(string_len(b"12"), 2);
        assert_eq!(string_len(b"-5"), 3);
        assert_eq!(string_len(b"012"), 5, "a leading zero keeps it a string");
        assert_eq!(string_len(b"-0"), 4);
        assert_eq!(string_len(b"99999999999999999999"), 22, "past 64 bits");
        assert_eq!(string_len(&[b'x'; 64]), 67);
        assert_eq!(string_len(&[b'x'; 200]), 204);
    }
}
