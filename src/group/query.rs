//! Read-only views: `XPENDING`, `XINFO GROUPS|CONSUMERS`, and the retention floor.

use std::ops::Bound;

use crate::id::StreamId;

use super::pel::Pending;
use super::pel::Timeline;
use super::state::{GroupState, GroupsState};
use super::{EntrySource, GroupError, GroupPolicy, StreamFacts};

/// `XPENDING key group`: the PEL at a glance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingSummary<'a> {
    /// Pending entries.
    pub count: usize,
    /// Smallest pending ID.
    pub first: Option<StreamId>,
    /// Largest pending ID.
    pub last: Option<StreamId>,
    /// Consumers holding pending entries, in name order, with how many each holds.
    pub consumers: Vec<(&'a [u8], usize)>,
}

/// `XPENDING key group [IDLE min-idle] start end count [consumer]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingQuery<'a> {
    /// Smallest ID listed, inclusive.
    pub start: StreamId,
    /// Largest ID listed, inclusive.
    pub end: StreamId,
    /// Most rows returned.
    pub count: usize,
    /// Only entries this consumer owns.
    pub consumer: Option<&'a [u8]>,
    /// Only entries idle at least this long (they alone count towards `count`).
    pub min_idle_ms: Option<u64>,
}

/// One row of [`GroupsState::pending_range`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingRow<'a> {
    /// The entry's ID.
    pub id: StreamId,
    /// Its owner.
    pub consumer: &'a [u8],
    /// Milliseconds since its last delivery.
    pub idle_ms: u64,
    /// When it was last delivered (Unix milliseconds).
    pub delivered_ms: u64,
    /// Times delivered.
    pub deliveries: u32,
}

/// `XINFO GROUPS`, one group, with weir's additions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupInfo<'a> {
    /// The group's name.
    pub name: &'a [u8],
    /// Number of consumers.
    pub consumers: usize,
    /// Number of pending entries.
    pub pending: usize,
    /// The last ID handed out as new.
    pub last_delivered: StreamId,
    /// Entries the group has read since the stream's first; `None` when unknown.
    pub entries_read: Option<u64>,
    /// Entries not yet handed to the group; `None` when unknown.
    pub lag: Option<u64>,
    /// The lag as Redis reports it: negative when the read counter passed the entries added.
    pub redis_lag: Option<i64>,
    /// The group's policy.
    pub policy: &'a GroupPolicy,
    /// Pending entries that reached `max_deliver` and will not be handed out automatically.
    pub exhausted: usize,
    /// The oldest last-delivery time among pending entries.
    pub oldest_delivery_ms: Option<u64>,
}

/// `XINFO CONSUMERS`, one consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumerInfo<'a> {
    /// The consumer's name.
    pub name: &'a [u8],
    /// Pending entries it holds.
    pub pending: usize,
    /// Its last interaction (Unix milliseconds).
    pub seen_ms: u64,
    /// The last time it was handed entries; `None` if never.
    pub active_ms: Option<u64>,
    /// Milliseconds since its last interaction (Redis's `idle`).
    pub idle_ms: u64,
    /// Milliseconds since it was last handed entries (Redis's `inactive`, -1 when never).
    pub inactive_ms: Option<u64>,
}

impl GroupsState {
    /// `XPENDING key group`.
    pub fn pending_summary(&self, group: &[u8]) -> Result<PendingSummary<'_>, GroupError> {
        let state = self.group(group)?;
        Ok(PendingSummary {
            count: state.pel.len(),
            first: state.pel.first_id(),
            last: state.pel.last_id(),
            consumers: state
                .consumers
                .iter()
                .filter(|consumer| consumer.pending > 0)
                .map(|consumer| (consumer.name.as_slice(), consumer.pending))
                .collect(),
        })
    }

    /// `XPENDING key group [IDLE min-idle] start end count [consumer]`: rows in ID order.
    pub fn pending_range(
        &self,
        group: &[u8],
        query: &PendingQuery<'_>,
        now_ms: u64,
    ) -> Result<Vec<PendingRow<'_>>, GroupError> {
        let state = self.group(group)?;
        if query.start > query.end {
            return Ok(Vec::new());
        }
        let min_idle_ms = query.min_idle_ms.unwrap_or(0);
        let row = |id: StreamId, entry: &Pending| {
            let idle_ms = entry.idle_ms(now_ms);
            (idle_ms >= min_idle_ms).then(|| PendingRow {
                id,
                consumer: state.consumers.name(entry.owner),
                idle_ms,
                delivered_ms: entry.delivered_ms,
                deliveries: entry.deliveries,
            })
        };
        let start = Bound::Included(query.start);
        let in_range = |&(id, _): &(StreamId, Pending)| id <= query.end;
        let rows = match query.consumer {
            Some(name) => match state.consumers.id(name) {
                Some(owner) => state
                    .pel
                    .owned_from(owner, start)
                    .take_while(in_range)
                    .filter_map(|(id, entry)| row(id, &entry))
                    .take(query.count)
                    .collect(),
                None => Vec::new(),
            },
            None => state
                .pel
                .iter_from(start)
                .take_while(in_range)
                .filter_map(|(id, entry)| row(id, &entry))
                .take(query.count)
                .collect(),
        };
        Ok(rows)
    }

    /// `XINFO GROUPS` for one group.
    pub fn group_info<S: EntrySource + ?Sized>(
        &self,
        source: &S,
        group: &[u8],
    ) -> Result<GroupInfo<'_>, GroupError> {
        let (name, state) =
            self.groups
                .get_key_value(group)
                .ok_or_else(|| GroupError::NoGroup {
                    group: group.to_vec(),
                })?;
        Ok(state.info(name, &source.facts()))
    }

    /// `XINFO GROUPS`: every group, in name order.
    pub fn groups_info<S: EntrySource + ?Sized>(&self, source: &S) -> Vec<GroupInfo<'_>> {
        let facts = source.facts();
        self.groups
            .iter()
            .map(|(name, state)| state.info(name, &facts))
            .collect()
    }

    /// `XINFO CONSUMERS`: the group's consumers, in name order.
    pub fn consumers_info(
        &self,
        group: &[u8],
        now_ms: u64,
    ) -> Result<Vec<ConsumerInfo<'_>>, GroupError> {
        let state = self.group(group)?;
        Ok(state
            .consumers
            .iter()
            .map(|consumer| ConsumerInfo {
                name: &consumer.name,
                pending: consumer.pending,
                seen_ms: consumer.seen_ms,
                active_ms: consumer.active_ms,
                idle_ms: now_ms.saturating_sub(consumer.seen_ms),
                inactive_ms: consumer
                    .active_ms
                    .map(|active_ms| now_ms.saturating_sub(active_ms)),
            })
            .collect())
    }

    /// The smallest ID the group has not acknowledged: its first pending entry, or the ID after
    /// its last-delivered one. Entries below it can be removed without losing the group's work.
    pub fn floor(&self, group: &[u8]) -> Result<StreamId, GroupError> {
        Ok(self.group(group)?.floor())
    }

    /// The smallest [`floor`](Self::floor) of all groups: what a work queue may trim below.
    /// `None` without groups.
    pub fn stream_floor(&self) -> Option<StreamId> {
        self.groups.values().map(GroupState::floor).min()
    }
}

impl GroupState {
    fn floor(&self) -> StreamId {
        // Nothing can follow the maximum ID; saturating keeps that entry, which is harmless.
        let undelivered = self.last_delivered.successor().unwrap_or(StreamId::MAX);
        self.pel
            .first_id()
            .map_or(undelivered, |first| first.min(undelivered))
    }

    fn info<'a>(&'a self, name: &'a [u8], facts: &StreamFacts) -> GroupInfo<'a> {
        let oldest_active = self.pel.earliest(Timeline::Delivery);
        let oldest_exhausted = self.pel.earliest(Timeline::Exhausted);
        GroupInfo {
            name,
            consumers: self.consumers.len(),
            pending: self.pel.len(),
            last_delivered: self.last_delivered,
            entries_read: self.entries_read,
            lag: facts.lag(self.last_delivered, self.entries_read),
            redis_lag: facts.redis_lag(self.last_delivered, self.entries_read),
            policy: &self.policy,
            exhausted: self.pel.exhausted(),
            oldest_delivery_ms: oldest_active.into_iter().chain(oldest_exhausted).min(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::test_log::Fixture;

    fn id(ms: u64) -> StreamId {
        StreamId::new(ms, 0)
    }

    fn query(consumer: Option<&[u8]>, min_idle_ms: Option<u64>) -> PendingQuery<'_> {
        PendingQuery {
            start: StreamId::MIN,
            end: StreamId::MAX,
            count: 10,
            consumer,
            min_idle_ms,
        }
    }

    /// a holds 1 and 2 (delivered at 0), b holds 3 (at 50), c holds nothing.
    fn fixture() -> Fixture {
        let mut fx = Fixture::with_group(5);
        fx.read(b"a", 2, 0);
        fx.read(b"b", 1, 50);
        fx.read(b"c", 0, 60);
        fx
    }

    #[test]
    fn summary_lists_consumers_with_pending_entries() {
        let fx = fixture();
        let summary = fx.state.pending_summary(b"g").unwrap();
        assert_eq!(summary.count, 3);
        assert_eq!((summary.first, summary.last), (Some(id(1)), Some(id(3))));
        assert_eq!(
            summary.consumers,
            [(b"a".as_slice(), 2), (b"b".as_slice(), 1)]
        );
        let empty = Fixture::with_group(0);
        let summary = empty.state.pending_summary(b"g").unwrap();
        assert_eq!((summary.count, summary.first), (0, None));
    }

    #[test]
    fn range_filters_by_ids_consumer_and_idle_time() {
        let fx = fixture();
        let all = fx
            .state
            .pending_range(b"g", &query(None, None), 100)
            .unwrap();
        assert_eq!(
            all.iter()
                .map(|row| (row.id.ms, row.consumer, row.idle_ms, row.deliveries))
                .collect::<Vec<_>>(),
            [
                (1, b"a".as_slice(), 100, 1),
                (2, b"a".as_slice(), 100, 1),
                (3, b"b".as_slice(), 50, 1)
            ]
        );
        let idle = fx
            .state
            .pending_range(b"g", &query(None, Some(60)), 100)
            .unwrap();
        assert_eq!(idle.len(), 2);
        let mine = fx
            .state
            .pending_range(b"g", &query(Some(b"b"), None), 100)
            .unwrap();
        assert_eq!(mine.iter().map(|row| row.id.ms).collect::<Vec<_>>(), [3]);
        let nobody = fx
            .state
            .pending_range(b"g", &query(Some(b"x"), None), 100)
            .unwrap();
        assert!(nobody.is_empty());
        let window = PendingQuery {
            start: id(2),
            end: id(3),
            count: 1,
            ..query(None, None)
        };
        let rows = fx.state.pending_range(b"g", &window, 100).unwrap();
        assert_eq!(rows.iter().map(|row| row.id.ms).collect::<Vec<_>>(), [2]);
        // The idle filter applies before the count, as in Redis.
        let idle_window = PendingQuery {
            count: 1,
            ..query(None, Some(60))
        };
        let rows = fx.state.pending_range(b"g", &idle_window, 100).unwrap();
        assert_eq!(rows[0].id, id(1));
        let reversed = PendingQuery {
            start: id(3),
            end: id(1),
            ..query(None, None)
        };
        assert!(
            fx.state
                .pending_range(b"g", &reversed, 100)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn info_reports_counts_times_and_lag() {
        let mut fx = fixture();
        let info = fx.info();
        assert_eq!(info.name, b"g");
        assert_eq!((info.consumers, info.pending), (3, 3));
        assert_eq!(info.last_delivered, id(3));
        assert_eq!((info.entries_read, info.lag), (Some(3), Some(2)));
        assert_eq!(info.oldest_delivery_ms, Some(0));
        assert_eq!(info.exhausted, 0);
        let consumers = fx.state.consumers_info(b"g", 100).unwrap();
        let c = consumers[2];
        assert_eq!(
            (c.name, c.pending, c.idle_ms, c.inactive_ms),
            (b"c".as_slice(), 0, 40, None)
        );
        let applied = fx.state.create_group(b"h", id(5), None);
        fx.record(applied.unwrap());
        let all = fx.state.groups_info(&fx.log);
        assert_eq!(all.len(), 2);
        assert_eq!((all[1].name, all[1].lag), (b"h".as_slice(), Some(0)));
    }

    #[test]
    fn floors_follow_the_oldest_unacknowledged_entry() {
        let mut fx = fixture();
        assert_eq!(fx.state.floor(b"g"), Ok(id(1)));
        fx.ack(&[1, 2, 3]);
        assert_eq!(fx.state.floor(b"g"), Ok(id(3).successor().unwrap()));
        let applied = fx.state.create_group(b"late", id(2), None);
        fx.record(applied.unwrap());
        assert_eq!(fx.state.stream_floor(), id(2).successor());
        let applied = fx.state.create_group(b"end", StreamId::MAX, None);
        fx.record(applied.unwrap());
        assert_eq!(fx.state.floor(b"end"), Ok(StreamId::MAX));
        assert_eq!(crate::group::GroupsState::new().stream_floor(), None);
    }
}
