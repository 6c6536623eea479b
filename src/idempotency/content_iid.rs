//! Idempotency ids made from an entry's content, for producers that have none of their own.

/// Bytes of an id made by [`content_iid`].
pub const CONTENT_IID_LEN: usize = 16;

/// FNV-1a with a 128-bit state, as published by Fowler, Noll and Vo.
struct Fnv1a128(u128);

impl Fnv1a128 {
    const OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    fn new() -> Self {
        Fnv1a128(Self::OFFSET_BASIS)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u128::from(byte)).wrapping_mul(Self::PRIME);
        }
    }

    /// A length or count as a little-endian `u64`.
    fn write_len(&mut self, len: usize) {
        self.write(&(len as u64).to_le_bytes());
    }
}

/// An idempotency id derived from an entry's content, for producers that have none of their own
/// (Redis's `XADD ... IDMPAUTO producer-id`): equal content gives equal ids.
///
/// The id is the 128-bit FNV-1a hash, as [`CONTENT_IID_LEN`] big-endian bytes, of this
/// unambiguous framing of the content (every length and count a little-endian `u64`):
///
/// ```text
/// header count, then per header: name length, name, value length, value
/// body length, body
/// ```
///
/// so moving bytes between fields (`("ab", "c")` against `("a", "bc")`), reordering headers or
/// moving a header into the body all change the id. Ids made this way are stored in records as
/// their iid, so this function must give the same bytes for the same content in every version;
/// a test pins one value.
pub fn content_iid(headers: &[(impl AsRef<[u8]>, impl AsRef<[u8]>)], body: &[u8]) -> Vec<u8> {
    let mut hash = Fnv1a128::new();
    hash.write_len(headers.len());
    for (name, value) in headers {
        let (name, value) = (name.as_ref(), value.as_ref());
        hash.write_len(name.len());
        hash.write(name);
        hash.write_len(value.len());
        hash.write(value);
    }
    hash.write_len(body.len());
    hash.write(body);
    hash.0.to_be_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_128_matches_the_published_vectors() {
        let hash = |bytes: &[u8]| {
            let mut hash = Fnv1a128::new();
            hash.write(bytes);
            hash.0
        };
        assert_eq!(hash(b""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(hash(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
        assert_eq!(hash(b"foobar"), 0x343e1662793c64bf6f0d3597ba446f18);
    }

    #[test]
    fn content_iid_is_stable_and_respects_field_boundaries() {
        let none: &[(&str, &str)] = &[];
        let iid = content_iid(&[("kind", "order")], b"hello");
        assert_eq!(iid.len(), CONTENT_IID_LEN);
        assert_eq!(iid, content_iid(&[("kind", "order")], b"hello"));
        assert_eq!(
            iid,
            content_iid(&[(b"kind".to_vec(), b"order".to_vec())], b"hello")
        );
        // Pinned: the id is persisted in records, so it must never change.
        let hex: String = iid.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(hex, "28a9070fbeeae5dab6cf5b8558f63744");

        let distinct = [
            content_iid(&[("ab", "c")], b""),
            content_iid(&[("a", "bc")], b""),
            content_iid(&[("a", "b"), ("c", "d")], b""),
            content_iid(&[("c", "d"), ("a", "b")], b""),
            content_iid(&[("a", "")], b""),
            content_iid(&[("", "a")], b""),
            content_iid(none, b"a"),
            content_iid(none, b""),
            content_iid(&[("", "")], b""),
        ];
        for (i, a) in distinct.iter().enumerate() {
            for b in &distinct[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
