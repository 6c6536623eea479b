//! Test helpers: an in-memory [`EntrySource`] with deletions, trimming and the counters Redis
//! keeps, and a fixture that checks every operation's events replay to the same state.

use std::collections::BTreeMap;

use crate::id::StreamId;

use super::{
    Applied, EntrySource, GroupEvent, GroupInfo, GroupPolicy, GroupsState, PendingQuery, ReadNew,
    ReadOutcome, StreamFacts,
};

#[derive(Clone, Debug, Default)]
pub(crate) struct TestLog {
    live: BTreeMap<StreamId, u64>,
    entries_added: u64,
    last_id: StreamId,
    max_deleted_id: StreamId,
}

impl TestLog {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends an entry; its offset is the number of entries added before it.
    pub(crate) fn append(&mut self, id: StreamId) {
        assert!(id > self.last_id, "IDs only grow");
        self.live.insert(id, self.entries_added);
        self.entries_added += 1;
        self.last_id = id;
    }

    /// Appends `ms-0` for every `ms` in the range.
    pub(crate) fn append_range(&mut self, range: impl IntoIterator<Item = u64>) {
        for ms in range {
            self.append(StreamId::new(ms, 0));
        }
    }

    /// `XDEL`: leaves a tombstone.
    pub(crate) fn delete(&mut self, id: StreamId) -> bool {
        let deleted = self.live.remove(&id).is_some();
        if deleted {
            self.max_deleted_id = self.max_deleted_id.max(id);
        }
        deleted
    }

    /// `XTRIM MINID`: removes entries below `min` without tombstones.
    pub(crate) fn trim_below(&mut self, min: StreamId) {
        self.live = self.live.split_off(&min);
    }

    pub(crate) fn last_id(&self) -> StreamId {
        self.last_id
    }

    pub(crate) fn live_ids(&self) -> Vec<StreamId> {
        self.live.keys().copied().collect()
    }
}

impl EntrySource for TestLog {
    fn entries_after(&self, after: StreamId, max: usize) -> Vec<(StreamId, u64)> {
        self.live
            .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .take(max)
            .map(|(&id, &offset)| (id, offset))
            .collect()
    }

    fn lookup(&self, id: StreamId) -> Option<u64> {
        self.live.get(&id).copied()
    }

    fn facts(&self) -> StreamFacts {
        StreamFacts {
            entries_added: self.entries_added,
            length: self.live.len() as u64,
            first_id: self.live.keys().next().copied().unwrap_or(StreamId::MIN),
            last_id: self.last_id,
            max_deleted_id: self.max_deleted_id,
        }
    }
}

/// A state, the log it reads, and a replica fed only with the journaled events: every
/// operation run through [`Fixture::record`] is checked to replay (through the codec) to an
/// equal state with consistent indexes.
pub(crate) struct Fixture {
    pub(crate) state: GroupsState,
    pub(crate) log: TestLog,
    replica: GroupsState,
    journal: Vec<GroupEvent>,
}

impl Fixture {
    /// Group `g` at `0-0` with a read counter of 0, over entries `1-0` ..= `entries-0`.
    pub(crate) fn with_group(entries: u64) -> Self {
        let mut fixture = Fixture {
            state: GroupsState::new(),
            log: TestLog::new(),
            replica: GroupsState::new(),
            journal: Vec::new(),
        };
        fixture.log.append_range(1..=entries);
        let created = fixture.state.create_group(b"g", StreamId::MIN, Some(0));
        fixture.record(created.unwrap());
        fixture
    }

    /// Checks the operation's events against the replica, then returns its output.
    pub(crate) fn record<T>(&mut self, applied: Applied<T>) -> T {
        for event in &applied.events {
            let decoded = GroupEvent::decode(&event.to_bytes());
            assert_eq!(decoded.as_ref(), Ok(event));
            self.replica.apply(event);
            self.journal.push(event.clone());
        }
        assert_eq!(self.replica, self.state, "replay diverged");
        self.state.check_invariants();
        applied.output
    }

    /// The journal so far.
    pub(crate) fn journal(&self) -> &[GroupEvent] {
        &self.journal
    }

    /// Checks that the snapshot, and the whole journal, rebuild the state from nothing.
    pub(crate) fn check_rebuilds(&self) {
        let mut from_snapshot = GroupsState::new();
        for event in self.state.snapshot_events() {
            from_snapshot.apply(&event);
        }
        assert_eq!(from_snapshot, self.state, "snapshot diverged");
        from_snapshot.check_invariants();
        let mut from_journal = GroupsState::new();
        for event in &self.journal {
            from_journal.apply(event);
        }
        assert_eq!(from_journal, self.state, "journal replay diverged");
    }

    pub(crate) fn set_policy(&mut self, policy: GroupPolicy) {
        let applied = self.state.set_policy(b"g", policy);
        self.record(applied.unwrap());
    }

    pub(crate) fn read_with(
        &mut self,
        consumer: &[u8],
        request: ReadNew,
        now_ms: u64,
    ) -> ReadOutcome {
        let applied = self
            .state
            .read_new(&self.log, b"g", consumer, request, now_ms);
        self.record(applied.unwrap())
    }

    /// Reads up to `max` entries and returns their IDs' milliseconds.
    pub(crate) fn read(&mut self, consumer: &[u8], max: usize, now_ms: u64) -> Vec<u64> {
        let outcome = self.read_with(consumer, ReadNew::count(max), now_ms);
        outcome.entries.iter().map(|entry| entry.id.ms).collect()
    }

    pub(crate) fn ack(&mut self, ids: &[u64]) -> usize {
        let ids: Vec<StreamId> = ids.iter().map(|&ms| StreamId::new(ms, 0)).collect();
        let applied = self.state.ack(b"g", &ids);
        self.record(applied.unwrap())
    }

    pub(crate) fn nack(
        &mut self,
        consumer: Option<&[u8]>,
        ids: &[u64],
        delay_ms: u64,
        now_ms: u64,
    ) -> usize {
        let ids: Vec<StreamId> = ids.iter().map(|&ms| StreamId::new(ms, 0)).collect();
        let applied = self.state.nack(b"g", consumer, &ids, delay_ms, now_ms);
        self.record(applied.unwrap())
    }

    /// The pending entries as `(ms, owner, deliveries)`.
    pub(crate) fn pending(&self) -> Vec<(u64, String, u32)> {
        let query = PendingQuery {
            start: StreamId::MIN,
            end: StreamId::MAX,
            count: usize::MAX,
            consumer: None,
            min_idle_ms: None,
        };
        self.state
            .pending_range(b"g", &query, 0)
            .unwrap()
            .iter()
            .map(|row| {
                let owner = String::from_utf8_lossy(row.consumer).into_owned();
                (row.id.ms, owner, row.deliveries)
            })
            .collect()
    }

    pub(crate) fn info(&self) -> GroupInfo<'_> {
        self.state.group_info(&self.log, b"g").unwrap()
    }
}
