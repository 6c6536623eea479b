//! Handing pending entries out again: releasing them for redelivery (Redis 8.8's `XNACK`, whose
//! counter rules and events live in [`group`](crate::group) with the other negative
//! acknowledgement), and whether a read of new entries could hand anything out now.

use std::time::Duration;

use super::source::LogSource;
use crate::durability::Commit;
use crate::error::StoreError;
use crate::group::{EntrySource, Release};
use crate::id::StreamId;
use crate::stream::Group;

impl Group {
    /// Releases pending entries for redelivery after `delay` (Redis 8.8's `XNACK`, whose
    /// released entries are immediately claimable; weir hands them out again to any consumer's
    /// next read once the delay has passed). `counter` gives each entry's new delivery counter
    /// from its current one: `Some(count)` for a pending entry, `None` for an entry of the stream
    /// that was not pending, which is added to the pending list only when `force` is set (owned
    /// by the empty-named consumer, as Redis shows released entries). Owners otherwise stay.
    /// Returns how many entries were released; IDs listed twice count once.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = weir::Store::open(dir.path()).unwrap();
    /// let stream = store.stream(b"s").unwrap();
    /// let group = stream.create_group(b"g", weir::GroupStart::Beginning, Default::default()).unwrap();
    /// stream.append(weir::Message::new("a")).unwrap();
    /// let delivered = group.read(b"c", 10).unwrap();
    /// // Undo the delivery: the counter goes back to zero.
    /// let undo = |count: Option<u32>| count.unwrap_or(0).saturating_sub(1);
    /// assert_eq!(group.release(&[delivered[0].id()], undo, false, Duration::ZERO).unwrap(), 1);
    /// assert_eq!(group.read(b"d", 10).unwrap()[0].deliveries, 1);
    /// ```
    pub fn release(
        &self,
        ids: &[StreamId],
        counter: impl Fn(Option<u32>) -> u32,
        force: bool,
        delay: Duration,
    ) -> Result<usize, StoreError> {
        self.release_in(ids, counter, force, delay, Commit::Wait)
    }

    /// [`release`](Self::release), made durable as `commit` says.
    pub(crate) fn release_in(
        &self,
        ids: &[StreamId],
        counter: impl Fn(Option<u32>) -> u32,
        force: bool,
        delay: Duration,
        commit: Commit<'_>,
    ) -> Result<usize, StoreError> {
        let stream = self.stream();
        let now_ms = stream.now_ms();
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let request = Release {
            ids,
            counter: &counter,
            force,
            due_ms: now_ms.saturating_add(delay_ms),
            now_ms,
        };
        let released = stream
            .groups
            .lock()
            .apply(|state| state.release(self.name(), &LogSource(&stream.log), &request))?;
        stream.commit(commit)?;
        // A released entry may be due now: wake readers waiting for something to hand out.
        stream.appended.notify();
        Ok(released)
    }

    /// Whether a read of new entries (`XREADGROUP … >`) could hand anything out now: entries
    /// after the group's position, entries due for redelivery, or (with `claim_min_idle_ms`)
    /// entries idle at least that long. It may answer true when a read would find nothing
    /// (the pending cap, entries that reached the delivery limit), never the reverse. A blocked
    /// reader asks before reading again, so that waking up with nothing to take journals
    /// nothing. A group that no longer exists answers true: the read reports it.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = weir::Store::open(dir.path()).unwrap();
    /// let stream = store.stream(b"s").unwrap();
    /// let group = stream.create_group(b"g", weir::GroupStart::Beginning, Default::default()).unwrap();
    /// assert!(!group.may_deliver(None));
    /// stream.append(weir::Message::new("a")).unwrap();
    /// assert!(group.may_deliver(None));
    /// group.read(b"c", 10).unwrap();
    /// assert!(!group.may_deliver(None));
    /// assert!(group.may_deliver(Some(0)));
    /// ```
    pub fn may_deliver(&self, claim_min_idle_ms: Option<u64>) -> bool {
        let stream = self.stream();
        let now_ms = stream.now_ms();
        let groups = stream.groups.lock();
        let Ok(group) = groups.state().group(self.name()) else {
            return true;
        };
        group.has_eligible(claim_min_idle_ms, now_ms)
            || !LogSource(&stream.log)
                .entries_after(group.last_delivered, 1)
                .is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::stream::{Group, GroupStart, Stream};
    use crate::{Message, Store};

    /// A store in `dir` with stream `s` and its group `g`.
    fn stream_with_group(dir: &std::path::Path) -> (Store, std::sync::Arc<Stream>, Group) {
        let store = Store::open(dir).unwrap();
        let stream = store.stream(b"s").unwrap();
        let group = stream
            .create_group(b"g", GroupStart::Beginning, Default::default())
            .unwrap();
        (store, stream, group)
    }

    #[test]
    fn a_release_wakes_readers_waiting_for_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, stream, group) = stream_with_group(dir.path());
        let id = stream.append(Message::new("a")).unwrap().id;
        group.read(b"first", 1).unwrap();
        // Blocked readers sleep until this signal moves (or their re-check timer fires).
        let before = stream.appended.generation();
        let released = group
            .release(&[id], |count| count.unwrap_or(0), false, Duration::ZERO)
            .unwrap();
        assert_eq!(released, 1);
        assert!(stream.appended.generation() > before, "no wake-up");
    }

    #[test]
    fn release_sets_counters_and_makes_entries_due() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, stream, group) = stream_with_group(dir.path());
        let first = stream.append(Message::new("a")).unwrap().id;
        let second = stream.append(Message::new("b")).unwrap().id;
        group.read(b"c", 1).unwrap();
        let poison = |count: Option<u32>| count.map_or(7, |_| u32::MAX);
        // The first is pending; the second is forced in; an unknown ID is ignored.
        let unknown = crate::StreamId::new(99, 0);
        let ids = [first, first, second, unknown];
        assert_eq!(
            group.release(&ids, poison, true, Duration::ZERO).unwrap(),
            2
        );
        let rows = stream.inspect_groups(|state, _| {
            let query = crate::group::PendingQuery {
                start: crate::StreamId::MIN,
                end: crate::StreamId::MAX,
                count: 10,
                consumer: None,
                min_idle_ms: None,
            };
            state
                .pending_range(b"g", &query, 0)
                .unwrap()
                .iter()
                .map(|row| (row.consumer.to_vec(), row.deliveries))
                .collect::<Vec<_>>()
        });
        assert_eq!(rows, [(b"c".to_vec(), u32::MAX), (Vec::new(), 7)]);
        let again = group.read(b"d", 10).unwrap();
        assert_eq!(again.len(), 2);
    }
}
