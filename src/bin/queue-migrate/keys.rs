//! Which streams to copy: every stream of the source (`SCAN … TYPE stream`), those matching
//! patterns, and keys named one by one.

use std::collections::BTreeSet;

use redis::Cmd;

use crate::Failure;
use crate::conn::Conn;
use crate::reply::{bytes, items, text};

/// How many keys one `SCAN` call looks at.
const SCAN_COUNT: u64 = 1000;

/// The streams selected, sorted and without repeats. With neither patterns nor keys, every
/// stream. A named key must be a stream.
pub fn select(
    source: &mut Conn,
    patterns: &[String],
    keys: &[String],
) -> Result<Vec<Vec<u8>>, Failure> {
    let mut selected = BTreeSet::new();
    let everything = ["*".to_string()];
    let patterns = if patterns.is_empty() && keys.is_empty() {
        &everything[..]
    } else {
        patterns
    };
    for pattern in patterns {
        selected.extend(scan_streams(source, pattern)?);
    }
    for key in keys {
        let kind = text(&source.call(Cmd::new().arg("TYPE").arg(key))?)?;
        if kind != "stream" {
            return Err(Failure::Usage(format!(
                "{key:?} is not a stream in the source (its type is {kind}); name only streams"
            )));
        }
        selected.insert(key.as_bytes().to_vec());
    }
    Ok(selected.into_iter().collect())
}

fn scan_streams(source: &mut Conn, pattern: &str) -> Result<Vec<Vec<u8>>, Failure> {
    let mut found = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let mut cmd = Cmd::new();
        cmd.arg("SCAN")
            .arg(&cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .arg("TYPE")
            .arg("stream");
        let reply = source.call(&cmd)?;
        let [next, keys] = items(&reply)? else {
            return Err(Failure::Protocol(format!(
                "expected a SCAN reply, got {reply:?}"
            )));
        };
        for key in items(keys)? {
            found.push(bytes(key)?);
        }
        cursor = text(next)?;
        if cursor == "0" {
            return Ok(found);
        }
    }
}
