//! A key's hash slot, as Redis Cluster computes it: CRC16 (XMODEM) of the key, or of its hash
//! tag, modulo 16,384. Every Redis Cluster client computes the same, so the slot decides which
//! node a client sends a key to.

/// The number of hash slots.
pub(crate) const SLOTS: u16 = 16_384;

/// The hash slot of `key`. With a hash tag (the bytes between the first `{` and the first `}`
/// after it, if there are any) only the tag is hashed, so that keys sharing a tag share a slot.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key).unwrap_or(key)) % SLOTS
}

/// The key's non-empty hash tag, by Redis's rule: `{}` before a later `{tag}` makes no tag.
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&byte| byte == b'{')?;
    let after = &key[open + 1..];
    let close = after.iter().position(|&byte| byte == b'}')?;
    (close > 0).then(|| &after[..close])
}

/// CRC16-CCITT as XMODEM computes it (polynomial 0x1021, initial value 0, no reflection): the
/// checksum of Redis's `crc16.c`.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &byte| {
        let index = usize::from((crc >> 8) as u8 ^ byte);
        (crc << 8) ^ CRC16_TABLE[index]
    })
}

/// The CRC of each byte value, as the checksum looks it up a byte at a time.
const CRC16_TABLE: [u16; 256] = crc16_table();

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_is_xmodem() {
        // The check value of CRC-16/XMODEM, also the test vector in Redis's crc16.c.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    /// Each slot as `CLUSTER KEYSLOT` of a real Redis 7.0 answers it.
    #[test]
    fn slots_match_redis() {
        let cases: [(&[u8], u16); 14] = [
            (b"foo", 12182),
            (b"bar", 5061),
            (b"123456789", 12739),
            (b"", 0),
            (b"{user1000}.following", 3443),
            (b"{user1000}.followers", 3443),
            (b"user1000", 3443),
            (b"foo{}{bar}", 8363),
            (b"foo{{bar}}", 4015),
            (b"{bar", 4015),
            (b"foo{bar}{zap}", 5061),
            (b"{}", 15257),
            (b"a{b", 13340),
            (b"\xff\x00\x80", 7915),
        ];
        for (key, slot) in cases {
            assert_eq!(key_slot(key), slot, "{:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn a_tag_is_the_first_brace_pair_and_must_not_be_empty() {
        assert_eq!(hash_tag(b"{a}b"), Some(&b"a"[..]));
        assert_eq!(hash_tag(b"x{a}{b}"), Some(&b"a"[..]));
        assert_eq!(hash_tag(b"{}{a}"), None);
        assert_eq!(hash_tag(b"{{a}}"), Some(&b"{a"[..]));
        assert_eq!(hash_tag(b"a}{b"), None);
        assert_eq!(hash_tag(b"{"), None);
    }
}
