//! `ACL LOG`: the most recent denials and failed authentications, newest first. A denial like
//! one of the last few (same reason, context, object and user, within a minute) counts on that
//! entry instead of adding one, as Redis does.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Why an entry was logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    Auth,
    Command,
    Key,
}

impl Reason {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Reason::Auth => "auth",
            Reason::Command => "command",
            Reason::Key => "key",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct LogEntry {
    pub(crate) count: u64,
    pub(crate) reason: Reason,
    /// `toplevel`, or `multi` for a command queued or run in a transaction.
    pub(crate) context: &'static str,
    /// The command, key, or `AUTH`.
    pub(crate) object: String,
    pub(crate) username: String,
    pub(crate) created: Instant,
    /// The client's `CLIENT INFO` line.
    pub(crate) client_info: String,
}

impl LogEntry {
    fn same_as(&self, other: &LogEntry) -> bool {
        self.reason == other.reason
            && self.context == other.context
            && self.object == other.object
            && self.username == other.username
            && other.created.saturating_duration_since(self.created) <= GROUPING_WINDOW
    }
}

/// Redis's `acllog-max-len` default.
const MAX_ENTRIES: usize = 128;
/// How many of the newest entries a new one may be counted on.
const GROUPING_DEPTH: usize = 10;
const GROUPING_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(crate) struct AclLog {
    entries: Mutex<VecDeque<LogEntry>>,
}

impl AclLog {
    pub(crate) fn add(&self, entry: LogEntry) {
        let mut entries = self.entries.lock();
        let similar = entries
            .iter()
            .take(GROUPING_DEPTH)
            .position(|known| known.same_as(&entry));
        let entry = match similar.and_then(|at| entries.remove(at)) {
            Some(known) => LogEntry {
                count: known.count + 1,
                ..entry
            },
            None => entry,
        };
        entries.push_front(entry);
        entries.truncate(MAX_ENTRIES);
    }

    /// The newest `count` entries.
    pub(crate) fn newest(&self, count: usize) -> Vec<LogEntry> {
        self.entries.lock().iter().take(count).cloned().collect()
    }

    pub(crate) fn reset(&self) {
        self.entries.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(object: &str) -> LogEntry {
        LogEntry {
            count: 1,
            reason: Reason::Command,
            context: "toplevel",
            object: object.into(),
            username: "u".into(),
            created: Instant::now(),
            client_info: String::new(),
        }
    }

    #[test]
    fn repeated_denials_count_on_one_entry() {
        let log = AclLog::default();
        log.add(entry("xadd"));
        log.add(entry("xlen"));
        log.add(entry("xadd"));
        let newest = log.newest(10);
        assert_eq!(newest.len(), 2);
        assert_eq!((newest[0].object.as_str(), newest[0].count), ("xadd", 2));
        assert_eq!((newest[1].object.as_str(), newest[1].count), ("xlen", 1));
        for at in 0..MAX_ENTRIES + 5 {
            log.add(entry(&at.to_string()));
        }
        assert_eq!(log.newest(usize::MAX).len(), MAX_ENTRIES);
        log.reset();
        assert!(log.newest(1).is_empty());
    }
}
