//! How many entries each group of a stream handed out for the first time, handed out again,
//! and moved to its dead-letter stream, since the stream was opened: counters for monitoring,
//! bumped once per read that hands anything out, never journaled.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::group::Handout;

/// A group's hand-outs since the stream was opened in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupActivity {
    /// Entries handed to a consumer for the first time.
    pub delivered: u64,
    /// Pending entries handed out again (after their ack wait passed, a NACK, or a claim by a
    /// read).
    pub redelivered: u64,
    /// Entries moved to the group's dead-letter stream.
    pub dead_lettered: u64,
}

/// Every group's counters.
#[derive(Debug, Default)]
pub(crate) struct ActivityCounters(Mutex<HashMap<Vec<u8>, GroupActivity>>);

impl ActivityCounters {
    /// Counts what one read of `group` handed out.
    pub(crate) fn handed_out(&self, group: &[u8], handouts: &[Handout]) {
        if handouts.is_empty() {
            return;
        }
        let again = handouts.iter().filter(|h| h.idle_ms.is_some()).count();
        let first = handouts.len() - again;
        self.update(group, |activity| {
            activity.delivered += first as u64;
            activity.redelivered += again as u64;
        });
    }

    pub(crate) fn dead_lettered(&self, group: &[u8], count: usize) {
        self.update(group, |activity| activity.dead_lettered += count as u64);
    }

    /// Forgets a destroyed group's counters.
    pub(crate) fn forget(&self, group: &[u8]) {
        self.0.lock().remove(group);
    }

    pub(crate) fn of(&self, group: &[u8]) -> GroupActivity {
        self.0.lock().get(group).copied().unwrap_or_default()
    }

    fn update(&self, group: &[u8], change: impl FnOnce(&mut GroupActivity)) {
        let mut all = self.0.lock();
        if let Some(activity) = all.get_mut(group) {
            change(activity);
        } else {
            change(all.entry(group.to_vec()).or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::StreamId;

    fn handout(seq: u64, idle_ms: Option<u64>) -> Handout {
        Handout {
            id: StreamId::new(1, seq),
            offset: seq,
            deliveries: 1,
            idle_ms,
        }
    }

    #[test]
    fn first_deliveries_redeliveries_and_dead_letters_count_per_group() {
        let counters = ActivityCounters::default();
        counters.handed_out(
            b"g",
            &[handout(1, None), handout(2, None), handout(3, Some(5))],
        );
        counters.handed_out(b"g", &[]);
        counters.dead_lettered(b"g", 4);
        assert_eq!(
            counters.of(b"g"),
            GroupActivity {
                delivered: 2,
                redelivered: 1,
                dead_lettered: 4
            }
        );
        assert_eq!(counters.of(b"other"), GroupActivity::default());
        counters.forget(b"g");
        assert_eq!(counters.of(b"g"), GroupActivity::default());
    }
}
