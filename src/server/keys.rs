//! Redis keys to stream names: each of the 16 databases is its own namespace, so a stream's name
//! in the store is the database number as one byte followed by the key.

use bytes::Bytes;

/// Number of databases (`SELECT 0` to `SELECT 15`).
pub const DATABASES: u8 = 16;

/// The store name of `key` in database `db`.
pub fn stream_name(db: u8, key: &[u8]) -> Vec<u8> {
    let mut name = Vec::with_capacity(key.len() + 1);
    name.push(db);
    name.extend_from_slice(key);
    name
}

/// The longest store name [`with_stream_name`] builds on the stack.
const STACK_NAME_LEN: usize = 128;

/// Calls `f` with the store name of `key` in database `db`, built without an allocation when it
/// is of a usual length: nearly every command looks a stream up by name.
pub fn with_stream_name<R>(db: u8, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    let mut buffer = [0u8; STACK_NAME_LEN];
    match buffer.get_mut(..=key.len()) {
        Some(name) => {
            name[0] = db;
            name[1..].copy_from_slice(key);
            f(name)
        }
        None => f(&stream_name(db, key)),
    }
}

/// The key of a store name in database `db`, if the name belongs to it.
pub fn key_of(db: u8, name: &[u8]) -> Option<Bytes> {
    match name.split_first() {
        Some((&first, key)) if first == db => Some(Bytes::copy_from_slice(key)),
        _ => None,
    }
}

/// The key part of a store name, whatever its database.
pub fn key_part(name: &[u8]) -> &[u8] {
    name.get(1..).unwrap_or_default()
}

/// Redis glob matching (`KEYS`, `SCAN MATCH`): `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob_match(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob_match(rest, &text[1..]),
        Some((b'[', rest)) => match (text.split_first(), class_end(rest)) {
            (Some((&c, text_rest)), Some(end)) => {
                class_matches(&rest[..end], c) && glob_match(&rest[end + 1..], text_rest)
            }
            (Some((&c, text_rest)), None) => c == b'[' && glob_match(rest, text_rest),
            (None, _) => false,
        },
        Some((b'\\', rest)) if !rest.is_empty() => {
            text.first() == Some(&rest[0]) && glob_match(&rest[1..], &text[1..])
        }
        Some((&p, rest)) => text.first() == Some(&p) && glob_match(rest, &text[1..]),
    }
}

fn class_end(class: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < class.len() {
        match class[i] {
            b'\\' => i += 2,
            b']' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn class_matches(class: &[u8], c: u8) -> bool {
    let (negate, class) = match class.split_first() {
        Some((b'^', rest)) => (true, rest),
        _ => (false, class),
    };
    let mut matched = false;
    let mut i = 0;
    while i < class.len() {
        if class[i] == b'\\' && i + 1 < class.len() {
            matched |= class[i + 1] == c;
            i += 2;
        } else if i + 2 < class.len() && class[i + 1] == b'-' {
            let (low, high) = (class[i].min(class[i + 2]), class[i].max(class[i + 2]));
            matched |= (low..=high).contains(&c);
            i += 3;
        } else {
            matched |= class[i] == c;
            i += 1;
        }
    }
    matched != negate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_are_separate_namespaces() {
        let name = stream_name(3, b"orders");
        assert_eq!(key_of(3, &name).as_deref(), Some(&b"orders"[..]));
        assert_eq!(key_of(4, &name), None);
    }

    #[test]
    fn globs_follow_redis() {
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"h?llo", b"hello"));
        assert!(glob_match(b"h*llo", b"heeeello"));
        assert!(glob_match(b"h[ae]llo", b"hallo"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-b]llo", b"hbllo"));
        assert!(glob_match(b"a\\*", b"a*"));
        assert!(!glob_match(b"a\\*", b"ab"));
        assert!(!glob_match(b"orders:*", b"users:1"));
    }
}
