//! Owned answers about a stream's groups: what `XPENDING` and `XINFO` show. Each is taken
//! under one look at the groups' state and returned as plain values, so a caller never walks
//! the state or holds the group lock while it formats a reply.

use super::source::LogSource;
use super::{Backlog, GroupActivity, Stream};
use crate::error::StoreError;
use crate::group::{
    ConsumerInfo, EntrySource, GroupInfo, GroupPolicy, GroupsState, PendingQuery, PendingRow,
    StreamFacts,
};
use crate::id::StreamId;

/// A group's pending list in brief (`XPENDING key group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOverview {
    /// Entries pending.
    pub count: usize,
    /// The smallest pending ID; `None` when nothing is pending.
    pub first: Option<StreamId>,
    /// The largest pending ID; `None` when nothing is pending.
    pub last: Option<StreamId>,
    /// Each consumer holding entries, in name order, with how many it holds.
    pub consumers: Vec<(Vec<u8>, usize)>,
}

/// One pending entry (`XPENDING key group start end count`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// The entry's ID.
    pub id: StreamId,
    /// The consumer it was delivered to.
    pub consumer: Vec<u8>,
    /// Milliseconds since its last delivery.
    pub idle_ms: u64,
    /// How many times it was delivered.
    pub deliveries: u32,
}

/// A consumer of a group (`XINFO CONSUMERS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerDetails {
    /// The consumer's name.
    pub name: Vec<u8>,
    /// Entries it holds.
    pub pending: usize,
    /// When it was last seen, in Unix milliseconds.
    pub seen_ms: u64,
    /// When it last read or claimed successfully; `None` if never.
    pub active_ms: Option<u64>,
    /// Milliseconds since it was last seen.
    pub idle_ms: u64,
    /// Milliseconds since it was last active; `None` if never.
    pub inactive_ms: Option<u64>,
}

/// A group (`XINFO GROUPS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDetails {
    /// The group's name.
    pub name: Vec<u8>,
    /// Consumers in the group.
    pub consumers: usize,
    /// Entries pending.
    pub pending: usize,
    /// The ID of the last entry delivered to the group.
    pub last_delivered: StreamId,
    /// The group's read counter; `None` when unknown.
    pub entries_read: Option<u64>,
    /// Entries not yet delivered; `None` when unknown.
    pub lag: Option<u64>,
    /// The lag as Redis reports it: negative when the read counter passed the entries added.
    pub redis_lag: Option<i64>,
    /// The group's delivery policy.
    pub policy: GroupPolicy,
    /// Pending entries that reached the delivery limit.
    pub exhausted: usize,
    /// How far behind the group is (see [`Stream::backlog`](super::Stream::backlog)).
    pub backlog: Backlog,
    /// What the group handed out and dead-lettered since the stream was opened.
    pub activity: GroupActivity,
}

/// A group with its pending entries and consumers (`XINFO STREAM … FULL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInFull {
    /// The group's name.
    pub name: Vec<u8>,
    /// The ID of the last entry delivered to the group.
    pub last_delivered: StreamId,
    /// The group's read counter; `None` when unknown.
    pub entries_read: Option<u64>,
    /// Entries not yet delivered; `None` when unknown.
    pub lag: Option<u64>,
    /// The lag as Redis reports it (see [`GroupDetails::redis_lag`]).
    pub redis_lag: Option<i64>,
    /// Entries pending (all of them, whatever the limit).
    pub pending_count: usize,
    /// The first pending entries, up to the limit.
    pub pending: Vec<PendingEntry>,
    /// Each consumer with its first pending entries, up to the limit.
    pub consumers: Vec<(ConsumerDetails, Vec<PendingEntry>)>,
}

impl Stream {
    /// The pending list of `group` in brief.
    pub fn pending_overview(&self, group: &[u8]) -> Result<PendingOverview, StoreError> {
        self.inspect_groups(|state, _| {
            let summary = state.pending_summary(group)?;
            Ok(PendingOverview {
                count: summary.count,
                first: summary.first,
                last: summary.last,
                consumers: summary
                    .consumers
                    .iter()
                    .map(|&(name, held)| (name.to_vec(), held))
                    .collect(),
            })
        })
    }

    /// The pending entries of `group` that `query` selects, in ID order, idle times measured
    /// at `now_ms` (see [`now_ms`](Self::now_ms)).
    pub fn pending_entries(
        &self,
        group: &[u8],
        query: &PendingQuery<'_>,
        now_ms: u64,
    ) -> Result<Vec<PendingEntry>, StoreError> {
        self.inspect_groups(|state, _| {
            let rows = state.pending_range(group, query, now_ms)?;
            Ok(rows.iter().map(PendingEntry::from).collect())
        })
    }

    /// The consumers of `group`, in name order, idle times measured at `now_ms`.
    pub fn consumers(&self, group: &[u8], now_ms: u64) -> Result<Vec<ConsumerDetails>, StoreError> {
        self.inspect_groups(|state, _| {
            let consumers = state.consumers_info(group, now_ms)?;
            Ok(consumers.iter().map(ConsumerDetails::from).collect())
        })
    }

    /// Every group with its backlog, in name order.
    pub fn group_details(&self) -> Vec<GroupDetails> {
        self.inspect_backlog(|info, backlog| GroupDetails {
            name: info.name.to_vec(),
            consumers: info.consumers,
            pending: info.pending,
            last_delivered: info.last_delivered,
            entries_read: info.entries_read,
            lag: info.lag,
            redis_lag: info.redis_lag,
            policy: info.policy.clone(),
            exhausted: info.exhausted,
            activity: self.activity.of(info.name),
            backlog,
        })
    }

    /// Every group, in name order, with at most `limit` of its pending entries and of each
    /// consumer's, idle times measured at `now_ms`.
    pub fn groups_in_full(&self, limit: usize, now_ms: u64) -> Vec<GroupInFull> {
        self.inspect_groups(|state, log| {
            let infos = state.groups_info(log);
            infos
                .iter()
                .map(|info| group_in_full(state, info, limit, now_ms))
                .collect()
        })
    }

    /// The stream's counters: length, first, last and largest deleted IDs, entries added.
    pub fn facts(&self) -> StreamFacts {
        LogSource(&self.log).facts()
    }
}

fn group_in_full(
    state: &GroupsState,
    info: &GroupInfo<'_>,
    limit: usize,
    now_ms: u64,
) -> GroupInFull {
    let pending_of = |consumer: Option<&[u8]>| {
        let query = PendingQuery {
            start: StreamId::MIN,
            end: StreamId::MAX,
            count: limit,
            consumer,
            min_idle_ms: None,
        };
        let rows = state.pending_range(info.name, &query, now_ms);
        rows.unwrap_or_default()
            .iter()
            .map(PendingEntry::from)
            .collect::<Vec<_>>()
    };
    let consumers = state.consumers_info(info.name, now_ms).unwrap_or_default();
    GroupInFull {
        name: info.name.to_vec(),
        last_delivered: info.last_delivered,
        entries_read: info.entries_read,
        lag: info.lag,
        redis_lag: info.redis_lag,
        pending_count: info.pending,
        pending: pending_of(None),
        consumers: consumers
            .iter()
            .map(|consumer| (consumer.into(), pending_of(Some(consumer.name))))
            .collect(),
    }
}

impl From<&PendingRow<'_>> for PendingEntry {
    fn from(row: &PendingRow<'_>) -> Self {
        PendingEntry {
            id: row.id,
            consumer: row.consumer.to_vec(),
            idle_ms: row.idle_ms,
            deliveries: row.deliveries,
        }
    }
}

impl From<&ConsumerInfo<'_>> for ConsumerDetails {
    fn from(info: &ConsumerInfo<'_>) -> Self {
        ConsumerDetails {
            name: info.name.to_vec(),
            pending: info.pending,
            seen_ms: info.seen_ms,
            active_ms: info.active_ms,
            idle_ms: info.idle_ms,
            inactive_ms: info.inactive_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::group::PendingQuery;
    use crate::id::StreamId;
    use crate::{GroupStart, Message, Store};

    #[test]
    fn answers_are_owned_copies_of_the_groups_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stream = store.stream(b"s").unwrap();
        let group = stream
            .create_group(b"g", GroupStart::Beginning, Default::default())
            .unwrap();
        stream.append(Message::new("a")).unwrap();
        stream.append(Message::new("b")).unwrap();
        let delivered = group.read(b"c", 10).unwrap();
        let now_ms = stream.now_ms();

        let overview = stream.pending_overview(b"g").unwrap();
        assert_eq!(overview.count, 2);
        assert_eq!(overview.consumers, vec![(b"c".to_vec(), 2)]);
        let all = PendingQuery {
            start: StreamId::MIN,
            end: StreamId::MAX,
            count: 1,
            consumer: None,
            min_idle_ms: None,
        };
        let entries = stream.pending_entries(b"g", &all, now_ms).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            (entries[0].id, &entries[0].consumer[..]),
            (delivered[0].id(), &b"c"[..])
        );
        assert_eq!(stream.consumers(b"g", now_ms).unwrap()[0].pending, 2);
        let details = stream.group_details();
        assert_eq!((details.len(), details[0].pending), (1, 2));
        let full = stream.groups_in_full(1, now_ms);
        assert_eq!((full[0].pending_count, full[0].pending.len()), (2, 1));
        assert_eq!(full[0].consumers[0].1.len(), 1);
        assert_eq!(stream.facts().length, 2);
        assert!(stream.pending_overview(b"nope").is_err());
        drop((delivered, group, stream));
        store.close().unwrap();
    }
}
