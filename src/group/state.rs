//! [`GroupsState`]: the consumer groups of one stream, and [`GroupsState::apply`], the only code
//! that changes them.
//!
//! A group's pending entries live in one structure, its [`Pel`], which also answers the
//! due-time, delivery-time and per-consumer questions; each consumer keeps only a count of the
//! entries it owns. Memory therefore grows with pending entries alone, 48 bytes and a little each.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use crate::id::StreamId;

use super::consumers::{ConsumerId, Consumers};
use super::event::{DeliveryCount, Due, GroupEvent, PendingRecord};
use super::pel::{Pel, Pending};
use super::{Applied, EntrySource, GroupError, GroupPolicy, MAX_EVENT_BATCH};

fn no_group(name: &[u8]) -> GroupError {
    GroupError::NoGroup {
        group: name.to_vec(),
    }
}

/// Who owns an entry delivered again: the consumer it is handed to (a redelivery), or the
/// consumer that already held it (a re-read of its own history).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handover {
    Take,
    Keep,
}

/// One consumer group.
#[derive(Clone, Debug)]
pub(crate) struct GroupState {
    pub(crate) last_delivered: StreamId,
    pub(crate) entries_read: Option<u64>,
    pub(crate) policy: GroupPolicy,
    pub(crate) consumers: Consumers,
    /// The pending entries.
    pub(crate) pel: Pel,
}

impl GroupState {
    fn new(last_delivered: StreamId, entries_read: Option<u64>) -> Self {
        GroupState {
            last_delivered,
            entries_read,
            policy: GroupPolicy::default(),
            consumers: Consumers::default(),
            pel: Pel::default(),
        }
    }

    /// Moves one pending entry's worth of ownership from `from` to `to`.
    fn transfer(&mut self, from: Option<ConsumerId>, to: Option<ConsumerId>) {
        if let Some(owner) = from.and_then(|id| self.consumers.get_mut(id)) {
            owner.pending = owner.pending.saturating_sub(1);
        }
        if let Some(owner) = to.and_then(|id| self.consumers.get_mut(id)) {
            owner.pending += 1;
        }
    }

    /// Inserts or replaces a pending entry, keeping its owner's count in step.
    fn put_pending(&mut self, id: StreamId, entry: Pending) {
        let old = self.pel.insert(id, entry);
        self.transfer(old.map(|old| old.owner), Some(entry.owner));
    }

    fn take_pending(&mut self, id: StreamId) -> Option<Pending> {
        let entry = self.pel.remove(id)?;
        self.transfer(Some(entry.owner), None);
        Some(entry)
    }

    /// Changes a pending entry if there is one with this ID.
    fn update_pending(&mut self, id: StreamId, change: impl FnOnce(&mut Pending)) {
        if let Some(mut entry) = self.take_pending(id) {
            change(&mut entry);
            self.put_pending(id, entry);
        }
    }

    /// The consumer's index after an interaction at `time_ms` (created if needed); `active`
    /// when it was handed entries.
    fn touch(&mut self, consumer: &[u8], time_ms: u64, active: bool) -> Option<ConsumerId> {
        let id = self.consumers.ensure(consumer, time_ms)?;
        if let Some(state) = self.consumers.get_mut(id) {
            state.seen_ms = time_ms;
            if active {
                state.active_ms = Some(time_ms);
            }
        }
        Some(id)
    }

    fn delete_consumer(&mut self, consumer: &[u8]) {
        let Some(owner) = self.consumers.id(consumer) else {
            return;
        };
        let held: Vec<StreamId> = self
            .pel
            .owned_from(owner, Bound::Unbounded)
            .map(|(id, _)| id)
            .collect();
        self.consumers.remove(consumer);
        for id in held {
            self.pel.remove(id);
        }
    }

    /// A new policy; exhausted entries become due at once so the next read judges them again.
    fn set_policy(&mut self, policy: &GroupPolicy) {
        self.policy = policy.clone();
        for id in self.pel.exhausted_ids() {
            self.update_pending(id, |entry| entry.due = Due::At(0));
        }
    }

    fn apply(&mut self, event: &GroupEvent) {
        match event {
            // Handled by `GroupsState::apply`: they create or remove the group itself.
            GroupEvent::GroupCreated { .. } | GroupEvent::GroupDestroyed { .. } => {}
            GroupEvent::GroupIdSet {
                last_delivered,
                entries_read,
                ..
            } => {
                self.last_delivered = *last_delivered;
                self.entries_read = *entries_read;
            }
            GroupEvent::PolicySet { policy, .. } => self.set_policy(policy),
            GroupEvent::ConsumerCreated {
                consumer,
                seen_ms,
                active_ms,
                ..
            } => {
                if let Some(state) = self
                    .consumers
                    .ensure(consumer, *seen_ms)
                    .and_then(|id| self.consumers.get_mut(id))
                {
                    state.seen_ms = *seen_ms;
                    state.active_ms = *active_ms;
                }
            }
            GroupEvent::ConsumerDeleted { consumer, .. } => self.delete_consumer(consumer),
            GroupEvent::ConsumerSeen {
                consumer, time_ms, ..
            } => {
                self.touch(consumer, *time_ms, false);
            }
            GroupEvent::NewDelivered {
                consumer,
                time_ms,
                due_ms,
                last_delivered,
                entries_read,
                entries,
                ..
            } => {
                self.last_delivered = *last_delivered;
                self.entries_read = *entries_read;
                self.new_delivered(consumer, *time_ms, *due_ms, entries);
            }
            GroupEvent::Redelivered {
                consumer,
                time_ms,
                due_ms,
                ids,
                ..
            } => self.delivered_again(consumer, *time_ms, *due_ms, ids, Handover::Take),
            GroupEvent::Reread {
                consumer,
                time_ms,
                due_ms,
                ids,
                ..
            } => self.delivered_again(consumer, *time_ms, *due_ms, ids, Handover::Keep),
            GroupEvent::Claimed {
                consumer,
                time_ms,
                delivered_ms,
                due_ms,
                count,
                entries,
                ..
            } => self.claimed(consumer, *time_ms, *delivered_ms, *due_ms, *count, entries),
            GroupEvent::Acked { ids, .. }
            | GroupEvent::DeadLettered { ids, .. }
            | GroupEvent::Dropped { ids, .. } => {
                for &id in ids {
                    self.take_pending(id);
                }
            }
            GroupEvent::Nacked { due_ms, ids, .. } => {
                for &id in ids {
                    self.update_pending(id, |entry| entry.due = Due::At(*due_ms));
                }
            }
            GroupEvent::Exhausted { ids, .. } => {
                for &id in ids {
                    self.update_pending(id, |entry| entry.due = Due::Exhausted);
                }
            }
            GroupEvent::PendingRestored {
                consumer, entries, ..
            } => self.restored(consumer, entries),
        }
    }

    fn new_delivered(
        &mut self,
        consumer: &[u8],
        time_ms: u64,
        due_ms: Option<u64>,
        entries: &[(StreamId, u64)],
    ) {
        let Some(owner) = self.touch(consumer, time_ms, !entries.is_empty()) else {
            return;
        };
        for &(id, offset) in entries {
            // An entry already pending (the group's ID was set back) changes owner and starts
            // over at one delivery, as in Redis.
            let entry = Pending {
                offset,
                delivered_ms: time_ms,
                due: Due::from_deadline(due_ms),
                owner,
                deliveries: 1,
            };
            self.put_pending(id, entry);
        }
    }

    /// One more delivery of pending entries, to `consumer` (`Take`) or to their owner (`Keep`).
    fn delivered_again(
        &mut self,
        consumer: &[u8],
        time_ms: u64,
        due_ms: Option<u64>,
        ids: &[StreamId],
        handover: Handover,
    ) {
        let takes = handover == Handover::Take;
        let Some(consumer_id) = self.touch(consumer, time_ms, takes && !ids.is_empty()) else {
            return;
        };
        for &id in ids {
            self.update_pending(id, |entry| {
                if takes {
                    entry.owner = consumer_id;
                }
                entry.deliveries = entry.deliveries.saturating_add(1);
                entry.delivered_ms = time_ms;
                entry.due = Due::from_deadline(due_ms);
            });
        }
    }

    fn claimed(
        &mut self,
        consumer: &[u8],
        time_ms: u64,
        delivered_ms: u64,
        due_ms: Option<u64>,
        count: DeliveryCount,
        entries: &[(StreamId, u64)],
    ) {
        let Some(owner) = self.touch(consumer, time_ms, !entries.is_empty()) else {
            return;
        };
        for &(id, offset) in entries {
            // An entry forced into the PEL counts as delivered once before, as Redis's FORCE.
            let before = self.pel.get(id).map_or(1, |entry| entry.deliveries);
            let entry = Pending {
                offset,
                delivered_ms,
                due: Due::from_deadline(due_ms),
                owner,
                deliveries: count.after(before),
            };
            self.put_pending(id, entry);
        }
    }

    fn restored(&mut self, consumer: &[u8], records: &[PendingRecord]) {
        let Some(owner) = self.consumers.ensure(consumer, 0) else {
            return;
        };
        for record in records {
            let entry = Pending {
                offset: record.offset,
                delivered_ms: record.delivered_ms,
                due: record.due,
                owner,
                deliveries: record.deliveries,
            };
            self.put_pending(record.id, entry);
        }
    }

    /// The same group, comparing consumers by name rather than by index.
    fn same_as(&self, other: &GroupState) -> bool {
        let same_entries = self.pel.len() == other.pel.len()
            && self
                .pel
                .iter_from(Bound::Unbounded)
                .zip(other.pel.iter_from(Bound::Unbounded))
                .all(|((id, a), (other_id, b))| {
                    id == other_id
                        && a.offset == b.offset
                        && a.delivered_ms == b.delivered_ms
                        && a.due == b.due
                        && a.deliveries == b.deliveries
                        && self.consumers.name(a.owner) == other.consumers.name(b.owner)
                });
        self.last_delivered == other.last_delivered
            && self.entries_read == other.entries_read
            && self.policy == other.policy
            && self.consumers.same_as(&other.consumers)
            && same_entries
    }

    /// Passes `emit` the events that rebuild this group, one at a time.
    fn snapshot_each(&self, name: &[u8], emit: &mut impl FnMut(GroupEvent)) {
        emit(GroupEvent::GroupCreated {
            group: name.to_vec(),
            last_delivered: self.last_delivered,
            entries_read: self.entries_read,
            policy: GroupPolicy::default(),
        });
        // The policy comes before the PEL: setting it makes exhausted entries due.
        if self.policy != GroupPolicy::default() {
            emit(GroupEvent::PolicySet {
                group: name.to_vec(),
                policy: self.policy.clone(),
            });
        }
        let holders = self.consumers.iter().filter(|c| c.pending > 0).count();
        let mut grouped = (holders > MAX_SNAPSHOT_PASSES).then(|| self.records_by_owner());
        for (owner, consumer) in self.consumers.iter_with_ids() {
            emit(GroupEvent::ConsumerCreated {
                group: name.to_vec(),
                consumer: consumer.name.clone(),
                seen_ms: consumer.seen_ms,
                active_ms: consumer.active_ms,
            });
            let restored = |entries| GroupEvent::PendingRestored {
                group: name.to_vec(),
                consumer: consumer.name.clone(),
                entries,
            };
            match grouped.as_mut() {
                Some(grouped) => {
                    for entries in grouped.remove(&owner).unwrap_or_default() {
                        emit(restored(entries));
                    }
                }
                None => {
                    let mut owned = self.pel.owned_from(owner, Bound::Unbounded).peekable();
                    while owned.peek().is_some() {
                        let entries = owned.by_ref().take(MAX_EVENT_BATCH).map(record).collect();
                        emit(restored(entries));
                    }
                }
            }
        }
    }

    /// Every entry's record, grouped by owner in event-sized batches, in one pass over the PEL.
    fn records_by_owner(&self) -> HashMap<ConsumerId, Vec<Vec<PendingRecord>>> {
        let mut batches: HashMap<ConsumerId, Vec<Vec<PendingRecord>>> = HashMap::new();
        for (id, entry) in self.pel.iter_from(Bound::Unbounded) {
            let owned = batches.entry(entry.owner).or_default();
            match owned.last_mut() {
                Some(batch) if batch.len() < MAX_EVENT_BATCH => batch.push(record((id, entry))),
                _ => owned.push(vec![record((id, entry))]),
            }
        }
        batches
    }
}

/// The snapshot record of a pending entry.
fn record((id, entry): (StreamId, Pending)) -> PendingRecord {
    PendingRecord {
        id,
        offset: entry.offset,
        delivered_ms: entry.delivered_ms,
        deliveries: entry.deliveries,
        due: entry.due,
    }
}

/// A snapshot walks the PEL once per consumer holding entries, so that it holds one event at a
/// time rather than every record; with more consumers than this it walks the PEL once and
/// groups the records by owner instead, as each walk visits every chunk's summary.
const MAX_SNAPSHOT_PASSES: usize = 16;

/// Every consumer group of one stream.
///
/// ```
/// use weir::StreamId;
/// use weir::group::GroupsState;
/// let mut state = GroupsState::new();
/// let applied = state.create_group(b"workers", StreamId::MIN, Some(0)).unwrap();
/// // Replaying the journaled events rebuilds the same state.
/// let mut replica = GroupsState::new();
/// for event in &applied.events {
///     replica.apply(event);
/// }
/// assert_eq!(replica, state);
/// ```
#[derive(Clone, Debug, Default)]
pub struct GroupsState {
    pub(crate) groups: BTreeMap<Vec<u8>, GroupState>,
}

impl PartialEq for GroupsState {
    fn eq(&self, other: &GroupsState) -> bool {
        self.groups.len() == other.groups.len()
            && self
                .groups
                .iter()
                .zip(&other.groups)
                .all(|((name, a), (other_name, b))| name == other_name && a.same_as(b))
    }
}

impl Eq for GroupsState {}

/// What [`GroupsState::clamp_to_log`] changed in one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClampedGroup {
    /// The group.
    pub group: Vec<u8>,
    /// Pending entries dropped because the log no longer holds them.
    pub dropped: Vec<StreamId>,
    /// `(before, after)` when the last-delivered ID was beyond the log's last ID.
    pub rewound: Option<(StreamId, StreamId)>,
}

impl GroupsState {
    /// A state with no groups.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one event: the only way the state changes. Never fails: an event for a group
    /// that does not exist is ignored, and a consumer an event names is created if missing.
    pub fn apply(&mut self, event: &GroupEvent) {
        // Lenient on purpose: a replica or an inspection of damaged files takes what it can.
        // Recovery and the operations use `apply_checked`, for which such an event is an error.
        let _ = self.apply_checked(event);
    }

    /// [`apply`](Self::apply), refusing an event that contradicts the state instead of ignoring
    /// it: one naming a group that does not exist ([`GroupError::NoGroup`]), or creating one
    /// that does ([`GroupError::GroupExists`]). The operations never emit such an event, so in
    /// a snapshot or journal being replayed it means the file is corrupt. A refused event
    /// changes nothing.
    pub fn apply_checked(&mut self, event: &GroupEvent) -> Result<(), GroupError> {
        let name = event.group();
        match event {
            GroupEvent::GroupCreated {
                last_delivered,
                entries_read,
                policy,
                ..
            } => {
                if self.groups.contains_key(name) {
                    return Err(GroupError::GroupExists {
                        group: name.to_vec(),
                    });
                }
                let mut created = GroupState::new(*last_delivered, *entries_read);
                created.set_policy(policy);
                self.groups.insert(name.to_vec(), created);
            }
            GroupEvent::GroupDestroyed { .. } => {
                self.groups.remove(name).ok_or_else(|| no_group(name))?;
            }
            other => self
                .groups
                .get_mut(name)
                .ok_or_else(|| no_group(name))?
                .apply(other),
        }
        Ok(())
    }

    /// Events that rebuild this whole state when applied to an empty one: every group, policy
    /// and consumer, and every pending entry with its owner, times, count and due time.
    pub fn snapshot_events(&self) -> Vec<GroupEvent> {
        let mut events = Vec::new();
        self.snapshot_each(|event| events.push(event));
        events
    }

    /// About how many bytes the encoded snapshot takes: its pending records, which dominate
    /// it, at their largest, and a margin for the rest.
    pub(crate) fn snapshot_len_hint(&self) -> usize {
        /// ID, offset, delivery time, count and a scheduled due time.
        const MAX_RECORD_LEN: usize = 16 + 8 + 8 + 4 + 9;
        const MARGIN: usize = 64 * 1024;
        let pending = self.pending_len();
        pending
            .saturating_mul(MAX_RECORD_LEN)
            .saturating_add(MARGIN)
    }

    /// [`snapshot_events`](Self::snapshot_events) one event at a time, so that a large PEL is
    /// never held as events in full.
    pub(crate) fn snapshot_each(&self, mut emit: impl FnMut(GroupEvent)) {
        for (name, group) in &self.groups {
            group.snapshot_each(name, &mut emit);
        }
    }

    /// Recovery after the log lost its tail: drops pending entries beyond the log's last ID
    /// (their records never reached the disk), and moves every last-delivered ID beyond it back
    /// to it (the read counter then counts every entry added). Reports the groups it changed.
    /// Pending entries deleted from inside the log stay pending, as Redis keeps them, until a
    /// claim or read reports them deleted.
    pub fn clamp_to_log<S: EntrySource + ?Sized>(
        &mut self,
        source: &S,
    ) -> Applied<Vec<ClampedGroup>> {
        let facts = source.facts();
        let plans: Vec<ClampedGroup> = self
            .groups
            .iter()
            .map(|(name, group)| ClampedGroup {
                group: name.clone(),
                dropped: group
                    .pel
                    .iter_from(Bound::Excluded(facts.last_id))
                    .map(|(id, _)| id)
                    .collect(),
                rewound: (group.last_delivered > facts.last_id)
                    .then_some((group.last_delivered, facts.last_id)),
            })
            .filter(|plan| !plan.dropped.is_empty() || plan.rewound.is_some())
            .collect();
        let mut recorder = Recorder::new(self);
        for plan in &plans {
            recorder.emit_batches(&plan.dropped, |ids| GroupEvent::Dropped {
                group: plan.group.clone(),
                ids,
            });
            if let Some((_, last_id)) = plan.rewound {
                recorder.emit(GroupEvent::GroupIdSet {
                    group: plan.group.clone(),
                    last_delivered: last_id,
                    entries_read: facts.estimate_distance(last_id),
                });
            }
        }
        recorder.finish(plans)
    }

    /// Names of the groups, in byte order.
    pub fn group_names(&self) -> impl Iterator<Item = &[u8]> {
        self.groups.keys().map(Vec::as_slice)
    }

    /// Pending entries of every group.
    pub(crate) fn pending_len(&self) -> usize {
        self.groups.values().map(|group| group.pel.len()).sum()
    }

    /// Bytes the groups hold in memory: each group's name, state, pending list and consumers
    /// (elements only; allocator and tree-node overhead not included).
    pub fn resident_bytes(&self) -> u64 {
        let bytes: usize = self
            .groups
            .iter()
            .map(|(name, group)| {
                name.len()
                    + std::mem::size_of::<(Vec<u8>, GroupState)>()
                    + group.pel.heap_bytes()
                    + group.consumers.heap_bytes()
            })
            .sum();
        bytes as u64
    }

    /// Whether the stream has a group by this name.
    pub fn has_group(&self, group: &[u8]) -> bool {
        self.groups.contains_key(group)
    }
}

/// Applies events as an operation emits them and keeps them for the caller to journal.
pub(crate) struct Recorder<'s> {
    pub(crate) state: &'s mut GroupsState,
    events: Vec<GroupEvent>,
}

impl<'s> Recorder<'s> {
    pub(crate) fn new(state: &'s mut GroupsState) -> Self {
        Recorder {
            state,
            events: Vec::new(),
        }
    }

    pub(crate) fn emit(&mut self, event: GroupEvent) {
        #[cfg(debug_assertions)]
        self.check_emitted(&event);
        let applied = self.state.apply_checked(&event);
        // The operations check the group before they plan: an event the state refuses is a bug
        // that, journaled, would make the next open fail.
        debug_assert!(applied.is_ok(), "{applied:?} for {event:?}");
        self.events.push(event);
    }

    /// Preconditions of a live event on the group it changes: a read moves the group's
    /// position forward only (`GroupIdSet` is the one explicit move back), past the IDs it
    /// hands out, in ascending order. The read counter is not monotone: like Redis, a read
    /// re-derives it from the stream when deletions made it unreliable.
    #[cfg(debug_assertions)]
    fn check_emitted(&self, event: &GroupEvent) {
        let GroupEvent::NewDelivered {
            last_delivered,
            entries,
            ..
        } = event
        else {
            return;
        };
        let Some(group) = self.state.groups.get(event.group()) else {
            return;
        };
        debug_assert!(*last_delivered >= group.last_delivered, "{event:?}");
        debug_assert!(
            entries.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "{event:?}"
        );
        debug_assert!(
            entries
                .iter()
                .all(|&(id, _)| id > group.last_delivered && id <= *last_delivered),
            "{event:?}"
        );
    }

    /// Emits `make(batch)` for each batch of at most [`MAX_EVENT_BATCH`] items; nothing when
    /// `items` is empty.
    pub(crate) fn emit_batches<T: Clone>(
        &mut self,
        items: &[T],
        mut make: impl FnMut(Vec<T>) -> GroupEvent,
    ) {
        for batch in items.chunks(MAX_EVENT_BATCH) {
            self.emit(make(batch.to_vec()));
        }
    }

    pub(crate) fn finish<T>(self, output: T) -> Applied<T> {
        Applied {
            events: self.events,
            output,
        }
    }
}

#[cfg(any(test, debug_assertions))]
impl GroupsState {
    /// Panics if the PEL breaks its invariants, an entry's owner does not exist, or a
    /// consumer's count disagrees with the entries it owns. Debug builds run it after each
    /// change of a small state (see `DurableGroups`); it costs a walk of every pending entry.
    pub(crate) fn check_invariants(&self) {
        for (name, group) in &self.groups {
            group.pel.check_invariants();
            let mut held: BTreeMap<ConsumerId, usize> = BTreeMap::new();
            for (id, entry) in group.pel.iter_from(Bound::Unbounded) {
                assert!(
                    group.consumers.get(entry.owner).is_some(),
                    "group {name:?}: entry {id} has no owner"
                );
                *held.entry(entry.owner).or_default() += 1;
            }
            for (owner, consumer) in group.consumers.iter_with_ids() {
                assert_eq!(
                    consumer.pending,
                    held.get(&owner).copied().unwrap_or(0),
                    "group {name:?}: consumer {:?}'s count",
                    String::from_utf8_lossy(&consumer.name)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::pel::Timeline;
    use crate::group::test_log::TestLog;

    fn id(ms: u64) -> StreamId {
        StreamId::new(ms, 0)
    }

    fn group_created(name: &[u8]) -> GroupEvent {
        GroupEvent::GroupCreated {
            group: name.to_vec(),
            last_delivered: StreamId::MIN,
            entries_read: Some(0),
            policy: GroupPolicy::default(),
        }
    }

    fn delivered(consumer: &[u8], time_ms: u64, ids: &[u64]) -> GroupEvent {
        let entries: Vec<(StreamId, u64)> = ids.iter().map(|&ms| (id(ms), ms * 10)).collect();
        GroupEvent::NewDelivered {
            group: b"g".to_vec(),
            consumer: consumer.to_vec(),
            time_ms,
            due_ms: Some(time_ms + 100),
            last_delivered: entries.last().map_or(StreamId::MIN, |e| e.0),
            entries_read: Some(ids.len() as u64),
            entries,
        }
    }

    #[test]
    fn events_for_unknown_groups_are_ignored() {
        let mut state = GroupsState::new();
        state.apply(&delivered(b"c", 1, &[1]));
        state.apply(&GroupEvent::Acked {
            group: b"g".to_vec(),
            ids: vec![id(1)],
        });
        assert_eq!(state, GroupsState::new());
    }

    #[test]
    fn unknown_consumers_are_created_on_use() {
        let mut state = GroupsState::new();
        state.apply(&group_created(b"g"));
        state.apply(&delivered(b"c", 5, &[1, 2]));
        let group = &state.groups[b"g".as_slice()];
        let consumer = group.consumers.by_name(b"c").unwrap();
        assert_eq!(consumer.seen_ms, 5);
        assert_eq!(consumer.active_ms, Some(5));
        assert_eq!(consumer.pending, 2);
        assert_eq!(group.pel.by_time(Timeline::Due, u64::MAX).count(), 2);
        state.check_invariants();
    }

    #[test]
    fn group_created_twice_keeps_the_first() {
        let mut state = GroupsState::new();
        state.apply(&group_created(b"g"));
        state.apply(&delivered(b"c", 5, &[1]));
        let before = state.clone();
        state.apply(&group_created(b"g"));
        assert_eq!(state, before);
    }

    #[test]
    fn a_policy_change_makes_exhausted_entries_due() {
        let mut state = GroupsState::new();
        state.apply(&group_created(b"g"));
        state.apply(&delivered(b"c", 5, &[1, 2]));
        state.apply(&GroupEvent::Exhausted {
            group: b"g".to_vec(),
            ids: vec![id(1)],
        });
        let group = &state.groups[b"g".as_slice()];
        assert_eq!(group.pel.exhausted(), 1);
        assert_eq!(group.pel.by_time(Timeline::Delivery, u64::MAX).count(), 1);
        state.apply(&GroupEvent::PolicySet {
            group: b"g".to_vec(),
            policy: GroupPolicy::default(),
        });
        let group = &state.groups[b"g".as_slice()];
        assert_eq!(group.pel.exhausted(), 0);
        assert_eq!(
            group.pel.get(id(1)).map(|entry| entry.due),
            Some(Due::At(0))
        );
        state.check_invariants();
    }

    #[test]
    fn deleting_a_consumer_drops_its_entries_only() {
        let mut state = GroupsState::new();
        state.apply(&group_created(b"g"));
        state.apply(&delivered(b"a", 5, &[1, 2]));
        state.apply(&delivered(b"b", 6, &[3]));
        state.apply(&GroupEvent::ConsumerDeleted {
            group: b"g".to_vec(),
            consumer: b"a".to_vec(),
        });
        let group = &state.groups[b"g".as_slice()];
        let ids: Vec<StreamId> = group
            .pel
            .iter_from(Bound::Unbounded)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, [id(3)]);
        assert_eq!(group.consumers.len(), 1);
        state.check_invariants();
    }

    #[test]
    fn snapshot_rebuilds_owners_counts_and_due_times() {
        let mut state = GroupsState::new();
        state.apply(&group_created(b"g"));
        state.apply(&GroupEvent::PolicySet {
            group: b"g".to_vec(),
            policy: GroupPolicy {
                max_deliver: Some(2),
                ..GroupPolicy::default()
            },
        });
        state.apply(&delivered(b"a", 5, &[1, 2, 3]));
        state.apply(&delivered(b"b", 6, &[4]));
        // A deleted consumer leaves a hole in the table that the snapshot does not reproduce.
        state.apply(&GroupEvent::ConsumerDeleted {
            group: b"g".to_vec(),
            consumer: b"a".to_vec(),
        });
        state.apply(&delivered(b"c", 7, &[5, 6]));
        state.apply(&GroupEvent::Exhausted {
            group: b"g".to_vec(),
            ids: vec![id(5)],
        });
        state.apply(&GroupEvent::Nacked {
            group: b"g".to_vec(),
            due_ms: 50,
            ids: vec![id(6)],
        });
        let mut rebuilt = GroupsState::new();
        for event in state.snapshot_events() {
            rebuilt.apply(&event);
        }
        assert_eq!(rebuilt, state);
        rebuilt.check_invariants();
    }

    /// The sizes of the `PendingRestored` events of a snapshot, by consumer.
    fn restored_batches(state: &GroupsState) -> Vec<(Vec<u8>, usize)> {
        state
            .snapshot_events()
            .into_iter()
            .filter_map(|event| match event {
                GroupEvent::PendingRestored {
                    consumer, entries, ..
                } => Some((consumer, entries.len())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn snapshots_batch_records_alike_with_few_and_many_consumers() {
        let big = MAX_EVENT_BATCH as u64 + 1;
        for holders in [2, MAX_SNAPSHOT_PASSES as u64 + 2] {
            let mut state = GroupsState::new();
            state.apply(&group_created(b"g"));
            let ids: Vec<u64> = (1..=big).collect();
            for batch in ids.chunks(MAX_EVENT_BATCH) {
                state.apply(&delivered(b"a", 5, batch));
            }
            for holder in 1..holders {
                let name = format!("c{holder:02}");
                state.apply(&delivered(name.as_bytes(), 6, &[big + holder]));
            }
            let batches = restored_batches(&state);
            assert_eq!(
                batches[..2],
                [(b"a".to_vec(), MAX_EVENT_BATCH), (b"a".to_vec(), 1)]
            );
            assert_eq!(batches.len() as u64, 2 + holders - 1);
            let mut rebuilt = GroupsState::new();
            for event in state.snapshot_events() {
                rebuilt.apply(&event);
            }
            assert_eq!(rebuilt, state);
        }
    }

    #[test]
    fn clamp_drops_vanished_entries_and_rewinds_past_the_log() {
        let mut log = TestLog::new();
        log.append_range(1..=3);
        let mut state = GroupsState::new();
        state.apply(&group_created(b"g"));
        state.apply(&delivered(b"a", 5, &[1, 2, 3, 4, 5]));
        state.apply(&group_created(b"h"));
        let applied = state.clamp_to_log(&log);
        assert_eq!(
            applied.output,
            vec![ClampedGroup {
                group: b"g".to_vec(),
                dropped: vec![id(4), id(5)],
                rewound: Some((id(5), id(3))),
            }]
        );
        let group = &state.groups[b"g".as_slice()];
        assert_eq!(group.last_delivered, id(3));
        assert_eq!(group.entries_read, Some(3));
        assert_eq!(group.pel.len(), 3);
        let mut replica = GroupsState::new();
        replica.apply(&group_created(b"g"));
        replica.apply(&delivered(b"a", 5, &[1, 2, 3, 4, 5]));
        replica.apply(&group_created(b"h"));
        for event in &applied.events {
            replica.apply(event);
        }
        assert_eq!(replica, state);
        assert!(state.clamp_to_log(&log).events.is_empty());
    }
}
