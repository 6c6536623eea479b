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

/// Redis gives up on a pattern past this many nested stars.
const MAX_STAR_RUNS: usize = 1000;

/// Whether `pattern` is the one that lists every key: `KEYS` and `SCAN` skip matching for it,
/// as Redis does, which also lists an empty key.
pub fn matches_everything(pattern: &[u8]) -> bool {
    pattern == b"*"
}

/// Redis glob matching (`KEYS`, `SCAN MATCH`, `CONFIG GET`): `*`, `?`, `[abc]`, `[^a]`,
/// `[a-z]`, `\x`, with the edge cases of Redis's `stringmatchlen`: an unterminated class runs to
/// the end of the pattern, nothing but an empty pattern matches an empty text (`KEYS *` lists
/// an empty key by a shortcut of its own), and a pattern whose 1001st run of stars is not its
/// last never matches (Redis's bound on its recursion).
///
/// Iterative, keeping only the latest star to fall back to: every other token matches exactly
/// one byte, so letting an earlier star take more bytes can never help once a later one exists.
/// That bounds the work by the product of the two lengths and the stack by a constant, whatever
/// the pattern (a recursive matcher overflows the stack on many stars and takes exponential time
/// on patterns like `*a*a*a*…b`).
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    if text.is_empty() {
        return pattern.is_empty();
    }
    let (mut p, mut t) = (0, 0);
    // Where the pattern resumes after the latest run of stars, and the first text byte that run
    // has not taken yet.
    let mut fallback: Option<(usize, usize)> = None;
    let mut star_runs = 0;
    loop {
        if pattern.get(p) == Some(&b'*') {
            while pattern.get(p) == Some(&b'*') {
                p += 1;
            }
            if p == pattern.len() {
                return true;
            }
            star_runs += 1;
            if star_runs > MAX_STAR_RUNS {
                return false;
            }
            fallback = Some((p, t));
            continue;
        }
        let Some(&c) = text.get(t) else {
            // The text is used up: only stars may remain, and letting a star take more text
            // cannot help.
            return pattern[p..].iter().all(|&b| b == b'*');
        };
        if p < pattern.len() {
            let (matched, next) = match_token(pattern, p, c);
            if matched {
                p = next;
                t += 1;
                continue;
            }
        }
        match fallback {
            Some((resume, taken)) => {
                fallback = Some((resume, taken + 1));
                p = resume;
                t = taken + 1;
            }
            None => return false,
        }
    }
}

/// Whether the token at `pattern[at]` (not a star) matches byte `c`, and where the next token
/// starts.
fn match_token(pattern: &[u8], at: usize, c: u8) -> (bool, usize) {
    match pattern[at] {
        b'?' => (true, at + 1),
        b'[' => match_class(pattern, at + 1, c),
        b'\\' if at + 1 < pattern.len() => (pattern[at + 1] == c, at + 2),
        literal => (literal == c, at + 1),
    }
}

/// Matches `c` against the class whose body starts at `pattern[at]` (just after `[`); returns
/// the position after its `]`, or the pattern's end when the class is not closed.
fn match_class(pattern: &[u8], mut at: usize, c: u8) -> (bool, usize) {
    let negate = pattern.get(at) == Some(&b'^');
    if negate {
        at += 1;
    }
    let mut matched = false;
    loop {
        let rest = &pattern[at.min(pattern.len())..];
        match rest {
            [] => break,
            [b'\\', escaped, ..] => {
                matched |= *escaped == c;
                at += 2;
            }
            [b']', ..] => {
                at += 1;
                break;
            }
            [low, b'-', high, ..] => {
                matched |= (*low.min(high)..=*low.max(high)).contains(&c);
                at += 3;
            }
            [single, ..] => {
                matched |= *single == c;
                at += 1;
            }
        }
    }
    (matched != negate, at.min(pattern.len()))
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
        assert!(glob_match(b"*", b"x"));
        assert!(
            !glob_match(b"*", b""),
            "Redis matches an empty key only by KEYS *'s shortcut"
        );
        assert!(matches_everything(b"*"));
        assert!(glob_match(b"h?llo", b"hello"));
        assert!(glob_match(b"h*llo", b"heeeello"));
        assert!(glob_match(b"h[ae]llo", b"hallo"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-b]llo", b"hbllo"));
        assert!(glob_match(b"h[b-a]llo", b"hallo"), "a reversed range");
        assert!(glob_match(b"a\\*", b"a*"));
        assert!(!glob_match(b"a\\*", b"ab"));
        assert!(!glob_match(b"orders:*", b"users:1"));
        assert!(
            glob_match(b"a[bc", b"ac"),
            "an unterminated class runs to the end"
        );
        assert!(!glob_match(b"[", b"["));
        assert!(glob_match(b"[^", b"x"));
        assert!(
            glob_match(b"x\\", b"x\\"),
            "a trailing backslash is literal"
        );
    }

    #[test]
    fn sixty_thousand_stars_match_without_recursion() {
        let pattern = vec![b'*'; 60_000];
        assert!(glob_match(&pattern, b"anything"));
        let mut starred_a: Vec<u8> = b"*a".repeat(30_000);
        starred_a.push(b'*');
        assert!(
            !glob_match(&starred_a, &[b'a'; 40_000]),
            "past 1000 runs of stars Redis gives up"
        );
    }

    #[test]
    fn a_backtracking_pattern_takes_linear_time() {
        let key = [b'a'; 50];
        assert!(!glob_match(b"*a*a*a*a*a*a*a*a*a*a*a*ab", &key));
        let long = [b'a'; 100_000];
        assert!(!glob_match(b"*a*a*a*a*a*a*a*a*a*a*a*ab", &long));
    }

    /// Redis's `stringmatchlen`, transcribed: the reference the iterative matcher must agree
    /// with on every pattern and text.
    fn redis_match(pattern: &[u8], text: &[u8]) -> bool {
        let mut skip_longer = false;
        redis_match_impl(pattern, text, &mut skip_longer, 0)
    }

    fn redis_match_impl(
        mut pattern: &[u8],
        mut text: &[u8],
        skip_longer: &mut bool,
        nesting: usize,
    ) -> bool {
        if nesting > MAX_STAR_RUNS {
            return false;
        }
        while !pattern.is_empty() && !text.is_empty() {
            match pattern[0] {
                b'*' => {
                    while pattern.get(1) == Some(&b'*') {
                        pattern = &pattern[1..];
                    }
                    if pattern.len() == 1 {
                        return true;
                    }
                    while !text.is_empty() {
                        if redis_match_impl(&pattern[1..], text, skip_longer, nesting + 1) {
                            return true;
                        }
                        if *skip_longer {
                            return false;
                        }
                        text = &text[1..];
                    }
                    *skip_longer = true;
                    return false;
                }
                b'?' => text = &text[1..],
                b'[' => {
                    pattern = &pattern[1..];
                    let negate = pattern.first() == Some(&b'^');
                    if negate {
                        pattern = &pattern[1..];
                    }
                    let mut matched = false;
                    loop {
                        if pattern.first() == Some(&b'\\') && pattern.len() >= 2 {
                            pattern = &pattern[1..];
                            matched |= pattern[0] == text[0];
                        } else if pattern.first() == Some(&b']') {
                            break;
                        } else if pattern.is_empty() {
                            // Redis steps back so that the step below lands on the end.
                            pattern = &[0];
                            break;
                        } else if pattern.len() >= 3 && pattern[1] == b'-' {
                            let (low, high) =
                                (pattern[0].min(pattern[2]), pattern[0].max(pattern[2]));
                            matched |= (low..=high).contains(&text[0]);
                            pattern = &pattern[2..];
                        } else {
                            matched |= pattern[0] == text[0];
                        }
                        pattern = &pattern[1..];
                    }
                    if matched == negate {
                        return false;
                    }
                    text = &text[1..];
                }
                b'\\' if pattern.len() >= 2 => {
                    pattern = &pattern[1..];
                    if pattern[0] != text[0] {
                        return false;
                    }
                    text = &text[1..];
                }
                literal => {
                    if literal != text[0] {
                        return false;
                    }
                    text = &text[1..];
                }
            }
            pattern = &pattern[1..];
            if text.is_empty() {
                while pattern.first() == Some(&b'*') {
                    pattern = &pattern[1..];
                }
                break;
            }
        }
        pattern.is_empty() && text.is_empty()
    }

    #[test]
    fn the_iterative_matcher_agrees_with_redis_on_random_patterns() {
        // A small alphabet with every special byte, so that random patterns hit classes,
        // ranges, escapes and unterminated brackets often.
        const PATTERN_BYTES: &[u8] = b"ab*?[]^-\\";
        const TEXT_BYTES: &[u8] = b"ab[]^-\\*";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        for _ in 0..200_000 {
            let pattern: Vec<u8> = (0..next(9))
                .map(|_| PATTERN_BYTES[next(PATTERN_BYTES.len())])
                .collect();
            let text: Vec<u8> = (0..next(7))
                .map(|_| TEXT_BYTES[next(TEXT_BYTES.len())])
                .collect();
            assert_eq!(
                glob_match(&pattern, &text),
                redis_match(&pattern, &text),
                "pattern {:?} text {:?}",
                String::from_utf8_lossy(&pattern),
                String::from_utf8_lossy(&text)
            );
        }
    }
}
