//! Mapping arbitrary stream names (any bytes: Redis keys) to directory names that can never
//! escape the data directory or collide, even on case-insensitive file systems.
//!
//! A stream directory is named `<n>-<escaped prefix>`: `n` is a number unique in the store, the
//! prefix only makes listings readable. Bytes `a-z` and `0-9` are kept; every other byte,
//! upper-case letters included, becomes `_` and two lower-case hex digits. The real name is kept
//! verbatim in the directory's `NAME` file, so the directory name is never parsed back.

/// Longest escaped prefix kept in a directory name.
pub const MAX_PREFIX_BYTES: usize = 48;

/// The directory name for stream number `number` called `name`.
///
/// ```
/// use weir::names::directory_name;
/// assert_eq!(directory_name(7, b"orders:EU"), "7-orders_3a_45_55");
/// assert_eq!(directory_name(8, b"../../x"), "8-_2e_2e_2f_2e_2e_2fx");
/// ```
pub fn directory_name(number: u64, name: &[u8]) -> String {
    let mut out = format!("{number}-");
    let start = out.len();
    for &byte in name {
        let piece_len = if byte.is_ascii_lowercase() || byte.is_ascii_digit() {
            1
        } else {
            3
        };
        if out.len() - start + piece_len > MAX_PREFIX_BYTES {
            break;
        }
        if piece_len == 1 {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("_{byte:02x}"));
        }
    }
    out
}

/// The number at the start of a stream directory's name.
pub fn directory_number(dir_name: &str) -> Option<u64> {
    dir_name.split_once('-')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_stay_inside_one_safe_component() {
        let long = vec![b'A'; 10_000];
        let names: [&[u8]; 9] = [
            b"../x", b"/", b"\0", b"..", b".", b"a/b", b"Orders", b"orders", &long,
        ];
        let mut seen = std::collections::HashSet::new();
        for (number, name) in names.iter().enumerate() {
            let dir = directory_name(number as u64, name);
            assert!(dir.len() <= 20 + 1 + MAX_PREFIX_BYTES, "{dir}");
            assert!(
                dir.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || b == b'-'),
                "{dir}"
            );
            assert!(seen.insert(dir.to_ascii_lowercase()), "collision for {dir}");
            assert_eq!(directory_number(&dir), Some(number as u64));
        }
    }
}
