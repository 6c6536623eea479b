//! Comparing a stream on both servers: entry by entry (both read page by page in step), then
//! its counters, then group by group (last-delivered ID, entries-read, consumers, and every
//! pending entry with its owner, delivery count and delivery time).

use std::cmp::Ordering;

use crate::Failure;
use crate::conn::Conn;
use crate::describe::{GroupState, Pending, StreamState, describe};
use crate::pages::Pages;
use crate::reply::Entry;

/// How many differences are listed for one stream; the rest are counted.
const LISTED_DIFFERENCES: usize = 20;

/// The differences found in one stream, as sentences.
#[derive(Debug, Default)]
pub struct Differences {
    pub listed: Vec<String>,
    pub total: usize,
}

impl Differences {
    fn add(&mut self, difference: String) {
        self.total += 1;
        if self.listed.len() < LISTED_DIFFERENCES {
            self.listed.push(difference);
        }
    }
}

/// Compares `key` on the source and the target.
pub fn verify_stream(
    source: &mut Conn,
    target: &mut Conn,
    key: &[u8],
    page_size: usize,
) -> Result<Differences, Failure> {
    let mut differences = Differences::default();
    if !exists(target, key)? {
        differences.add("the target has no such stream".into());
        return Ok(differences);
    }
    let expected = describe(source, key)?;
    let found = describe(target, key)?;
    compare_entries(source, target, key, page_size, &mut differences)?;
    compare_states(&expected, &found, &mut differences);
    Ok(differences)
}

fn exists(con: &mut Conn, key: &[u8]) -> Result<bool, Failure> {
    let reply = con.call(redis::Cmd::new().arg("EXISTS").arg(key))?;
    Ok(crate::reply::int(&reply)? == 1)
}

fn compare_entries(
    source: &mut Conn,
    target: &mut Conn,
    key: &[u8],
    page_size: usize,
    differences: &mut Differences,
) -> Result<(), Failure> {
    let mut expected_pages = Pages::new(key, page_size);
    let mut found_pages = Pages::new(key, page_size);
    loop {
        let expected = expected_pages.next(source)?;
        let found = found_pages.next(target)?;
        if expected.is_empty() && found.is_empty() {
            return Ok(());
        }
        for at in 0..expected.len().max(found.len()) {
            if let Some(difference) = entry_difference(expected.get(at), found.get(at)) {
                differences.add(difference);
                // Once the two lists are out of step, every later entry differs too.
                return Ok(());
            }
        }
    }
}

fn entry_difference(expected: Option<&Entry>, found: Option<&Entry>) -> Option<String> {
    match (expected, found) {
        (Some(expected), Some(found)) if expected == found => None,
        (Some(expected), Some(found)) if expected.id != found.id => Some(format!(
            "entry {} of the source is missing; the target has {} in its place",
            expected.id, found.id
        )),
        (Some(expected), Some(_)) => Some(format!("entry {} has other fields", expected.id)),
        (Some(expected), None) => Some(format!(
            "the target ends before entry {} of the source",
            expected.id
        )),
        (None, Some(found)) => Some(format!(
            "the target has entry {} after the source's last",
            found.id
        )),
        (None, None) => None,
    }
}

/// The counters and groups, as the two servers report them.
pub fn compare_states(expected: &StreamState, found: &StreamState, differences: &mut Differences) {
    let counters = [
        (
            "length",
            expected.length.to_string(),
            found.length.to_string(),
        ),
        (
            "last-generated-id",
            expected.last_generated_id.to_string(),
            found.last_generated_id.to_string(),
        ),
        (
            "max-deleted-entry-id",
            expected.max_deleted_id.to_string(),
            found.max_deleted_id.to_string(),
        ),
        (
            "entries-added",
            expected.entries_added.to_string(),
            found.entries_added.to_string(),
        ),
    ];
    for (name, expected, found) in counters {
        if expected != found {
            differences.add(format!("{name} is {found}, not {expected}"));
        }
    }
    for group in &expected.groups {
        match found.groups.iter().find(|other| other.name == group.name) {
            Some(other) => compare_groups(group, other, differences),
            None => differences.add(format!("group {} is missing", group.name.escape_ascii())),
        }
    }
    for group in &found.groups {
        if !expected.groups.iter().any(|other| other.name == group.name) {
            differences.add(format!(
                "group {} is not in the source",
                group.name.escape_ascii()
            ));
        }
    }
}

fn compare_groups(expected: &GroupState, found: &GroupState, differences: &mut Differences) {
    let name = expected.name.escape_ascii();
    if expected.last_delivered_id != found.last_delivered_id {
        differences.add(format!(
            "group {name}: last-delivered-id is {}, not {}",
            found.last_delivered_id, expected.last_delivered_id
        ));
    }
    if expected.entries_read != found.entries_read {
        let show = |read: Option<u64>| read.map_or_else(|| "nil".to_string(), |n| n.to_string());
        differences.add(format!(
            "group {name}: entries-read is {}, not {}",
            show(found.entries_read),
            show(expected.entries_read)
        ));
    }
    if expected.consumers != found.consumers {
        let list = |names: &[Vec<u8>]| {
            names
                .iter()
                .map(|name| name.escape_ascii().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        differences.add(format!(
            "group {name}: the consumers are [{}], not [{}]",
            list(&found.consumers),
            list(&expected.consumers)
        ));
    }
    compare_pending(
        &name.to_string(),
        &expected.pending,
        &found.pending,
        differences,
    );
}

/// Both pending lists, merged by ID (both are sorted).
fn compare_pending(
    group: &str,
    expected: &[Pending],
    found: &[Pending],
    differences: &mut Differences,
) {
    let (mut expected, mut found) = (expected.iter().peekable(), found.iter().peekable());
    loop {
        let order = match (expected.peek(), found.peek()) {
            (None, None) => return,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(want), Some(have)) => want.id.cmp(&have.id),
        };
        match order {
            Ordering::Equal => {
                if let (Some(want), Some(have)) = (expected.next(), found.next())
                    && want != have
                {
                    differences.add(format!(
                        "group {group}: pending entry {} is {}, not {}",
                        want.id,
                        shown_pending(have),
                        shown_pending(want)
                    ));
                }
            }
            Ordering::Less => {
                if let Some(want) = expected.next() {
                    differences.add(format!(
                        "group {group}: {} is not pending in the target",
                        want.id
                    ));
                }
            }
            Ordering::Greater => {
                if let Some(have) = found.next() {
                    differences.add(format!(
                        "group {group}: {} is pending in the target only",
                        have.id
                    ));
                }
            }
        }
    }
}

fn shown_pending(row: &Pending) -> String {
    format!(
        "(owner {}, deliveries {}, delivered at {} ms)",
        row.consumer.escape_ascii(),
        row.deliveries,
        row.delivered_ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::Id;

    fn state() -> StreamState {
        StreamState {
            length: 2,
            last_generated_id: Id { ms: 9, seq: 0 },
            max_deleted_id: Id { ms: 3, seq: 0 },
            entries_added: 4,
            first_entry: Some(Id { ms: 1, seq: 0 }),
            groups: vec![GroupState {
                name: b"g".to_vec(),
                last_delivered_id: Id { ms: 2, seq: 0 },
                entries_read: Some(2),
                consumers: vec![b"c1".to_vec(), b"c2".to_vec()],
                pending: vec![Pending {
                    id: Id { ms: 1, seq: 0 },
                    consumer: b"c1".to_vec(),
                    delivered_ms: 1000,
                    deliveries: 3,
                }],
            }],
        }
    }

    fn differences(found: &StreamState) -> Vec<String> {
        let mut differences = Differences::default();
        compare_states(&state(), found, &mut differences);
        differences.listed
    }

    #[test]
    fn equal_states_have_no_differences() {
        assert!(differences(&state()).is_empty());
    }

    #[test]
    fn every_copied_fact_is_compared() {
        let mut found = state();
        found.entries_added = 5;
        found.max_deleted_id = Id { ms: 0, seq: 0 };
        found.groups[0].entries_read = None;
        found.groups[0].consumers.pop();
        found.groups[0].pending[0].deliveries = 1;
        found.groups[0].pending[0].delivered_ms = 999;
        assert_eq!(
            differences(&found),
            [
                "max-deleted-entry-id is 0-0, not 3-0",
                "entries-added is 5, not 4",
                "group g: entries-read is nil, not 2",
                "group g: the consumers are [c1], not [c1, c2]",
                "group g: pending entry 1-0 is (owner c1, deliveries 1, delivered at 999 ms), \
                 not (owner c1, deliveries 3, delivered at 1000 ms)",
            ]
        );
        let mut renamed = state();
        renamed.groups[0].name = b"h".to_vec();
        assert_eq!(
            differences(&renamed),
            ["group g is missing", "group h is not in the source"]
        );
    }

    #[test]
    fn pending_lists_are_merged_by_id() {
        let row = |ms, consumer: &[u8]| Pending {
            id: Id { ms, seq: 0 },
            consumer: consumer.to_vec(),
            delivered_ms: 5,
            deliveries: 1,
        };
        let mut differences = Differences::default();
        compare_pending(
            "g",
            &[row(1, b"a"), row(2, b"a"), row(3, b"a")],
            &[row(2, b"b"), row(3, b"a"), row(4, b"a")],
            &mut differences,
        );
        assert_eq!(
            differences.listed,
            [
                "group g: 1-0 is not pending in the target",
                "group g: pending entry 2-0 is (owner b, deliveries 1, delivered at 5 ms), \
                 not (owner a, deliveries 1, delivered at 5 ms)",
                "group g: 4-0 is pending in the target only",
            ]
        );
    }

    #[test]
    fn entries_out_of_step() {
        let entry = |ms, value: &[u8]| Entry {
            id: Id { ms, seq: 0 },
            fields: vec![(b"f".to_vec(), value.to_vec())],
        };
        assert_eq!(
            entry_difference(Some(&entry(1, b"a")), Some(&entry(1, b"a"))),
            None
        );
        assert_eq!(
            entry_difference(Some(&entry(1, b"a")), Some(&entry(1, b"b"))).unwrap(),
            "entry 1-0 has other fields"
        );
        assert_eq!(
            entry_difference(Some(&entry(1, b"a")), Some(&entry(2, b"a"))).unwrap(),
            "entry 1-0 of the source is missing; the target has 2-0 in its place"
        );
        assert!(entry_difference(None, Some(&entry(2, b"a"))).is_some());
        assert!(entry_difference(Some(&entry(2, b"a")), None).is_some());
    }
}
