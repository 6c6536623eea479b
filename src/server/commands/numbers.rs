//! Numbers as Redis reads them from arguments (`util.c`'s `string2ll` and `string2ull`), shared
//! by every command so that `+5`, `01` or ` 7` are accepted or refused exactly where Redis does.

/// Longest integer argument `string2ll` accepts.
const MAX_INTEGER_LEN: usize = 20;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string2ll_is_strict() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"-12"), Some(-12));
        assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"+5",
            b"01",
            b"-0",
            b"00",
            b" 1",
            b"1.5",
            b"-",
            b"9223372036854775808",
        ] {
            assert_eq!(string2ll(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn string2ull_follows_strtoull() {
        assert_eq!(string2ull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(string2ull(b" +7"), Some(7));
        assert_eq!(string2ull(b"007"), Some(7));
        assert_eq!(string2ull(b"-1"), None, "a negative integer is refused");
        assert_eq!(
            string2ull(b" -1"),
            Some(u64::MAX),
            "strtoull negates modulo 2^64"
        );
        assert_eq!(string2ull(b"   "), None);
        assert_eq!(string2ull(b"1x"), None);
    }
}
