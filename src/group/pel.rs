//! [`Pel`]: one group's pending entries, in ID order, in one structure.
//!
//! Entries live in chunks of at most [`CHUNK_CAPACITY`] entries, each chunk a sorted ring buffer
//! of 48-byte [`Slot`]s keyed in a B-tree by a lower fence (no entry of the chunk is below it,
//! every entry of the next chunk is at or above that chunk's fence). IDs usually grow, so an
//! entry usually lands at the end of the last chunk: a full last chunk is followed by a new one
//! rather than split, and chunks fill completely. Acknowledgements usually come in ID order
//! too, and a ring buffer drops its first entry without moving the others.
//!
//! The other views of the PEL are derived from a summary per chunk instead of an index per
//! entry: per chunk, the earliest time of each [`Timeline`], how many entries are exhausted, and how
//! many entries each consumer owns. Per [`Timeline`], a small B-tree orders the chunks by their
//! earliest time, so [`Pel::by_time`] visits chunks in that order and stops as soon as the next
//! chunk cannot hold an earlier entry than those already collected. A consumer's own entries are
//! found by skipping the chunks it owns nothing in.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque, btree_set};
use std::iter::Peekable;
use std::ops::Bound;

use crate::id::StreamId;

use super::consumers::{ConsumerId, MAX_CONSUMERS};
use super::event::Due;

/// Most entries in a chunk: large enough that a chunk's own cost (its fence, summary and
/// places in the time orders, about 300 bytes) is small per entry, small enough that scanning a
/// chunk to refresh its summary stays cheap. Unit tests use small chunks, so that the groups'
/// tests, whose PELs are small, split and merge chunks too.
pub(crate) const CHUNK_CAPACITY: usize = if cfg!(test) { 8 } else { 128 };

/// A chunk this small merges with a neighbour when the two fit in one chunk, so sparse chunks
/// left by scattered acknowledgements do not each hold an allocation.
const MERGE_BELOW: usize = CHUNK_CAPACITY / 4;

/// The smallest allocation of a growing chunk.
const MIN_CHUNK_ALLOCATION: usize = 4;

/// The due kind lives in the top two bits of a slot's owner field; consumer indexes stay below
/// them.
const DUE_SHIFT: u32 = 30;
const OWNER_MASK: u32 = (1 << DUE_SHIFT) - 1;
const DUE_NOT_SCHEDULED: u32 = 0;
const DUE_AT: u32 = 1;
const DUE_EXHAUSTED: u32 = 2;

const _: () = assert!(MAX_CONSUMERS <= OWNER_MASK as usize + 1);
const _: () = assert!(std::mem::size_of::<Slot>() == 48);

/// One delivered, unacknowledged entry (stored packed with its ID, in 48 bytes, by [`Pel`] in a [`Slot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) offset: u64,
    pub(crate) delivered_ms: u64,
    pub(crate) due: Due,
    pub(crate) owner: ConsumerId,
    pub(crate) deliveries: u32,
}

impl Pending {
    pub(crate) fn idle_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.delivered_ms)
    }
}

/// The three time orders a PEL is queried in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timeline {
    /// Due time, for entries with one.
    Due = 0,
    /// Delivery time, for entries that are not exhausted.
    Delivery = 1,
    /// Delivery time, for exhausted entries.
    Exhausted = 2,
}

const TIMELINES: [Timeline; 3] = [Timeline::Due, Timeline::Delivery, Timeline::Exhausted];

/// One pending entry, packed: [`Pending`] with its ID, the due kind folded into the owner field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    id: StreamId,
    offset: u64,
    delivered_ms: u64,
    /// The due time when the kind is `DUE_AT`, zero otherwise.
    due_ms: u64,
    /// Owner index in the low bits, due kind in the top two.
    owner_and_due: u32,
    deliveries: u32,
}

impl Slot {
    fn pack(id: StreamId, entry: &Pending) -> Slot {
        assert!(
            (entry.owner as usize) < MAX_CONSUMERS,
            "consumer index {} does not fit a pending slot",
            entry.owner
        );
        let (kind, due_ms) = match entry.due {
            Due::NotScheduled => (DUE_NOT_SCHEDULED, 0),
            Due::At(at_ms) => (DUE_AT, at_ms),
            Due::Exhausted => (DUE_EXHAUSTED, 0),
        };
        Slot {
            id,
            offset: entry.offset,
            delivered_ms: entry.delivered_ms,
            due_ms,
            owner_and_due: entry.owner | (kind << DUE_SHIFT),
            deliveries: entry.deliveries,
        }
    }

    fn owner(&self) -> ConsumerId {
        self.owner_and_due & OWNER_MASK
    }

    fn due(&self) -> Due {
        match self.owner_and_due >> DUE_SHIFT {
            DUE_AT => Due::At(self.due_ms),
            DUE_EXHAUSTED => Due::Exhausted,
            _ => Due::NotScheduled,
        }
    }

    fn is_exhausted(&self) -> bool {
        self.owner_and_due >> DUE_SHIFT == DUE_EXHAUSTED
    }

    fn unpack(&self) -> (StreamId, Pending) {
        let entry = Pending {
            offset: self.offset,
            delivered_ms: self.delivered_ms,
            due: self.due(),
            owner: self.owner(),
            deliveries: self.deliveries,
        };
        (self.id, entry)
    }

    /// The entry's time on `clock`, if it is in that order.
    fn time(&self, clock: Timeline) -> Option<u64> {
        match clock {
            Timeline::Due => (self.owner_and_due >> DUE_SHIFT == DUE_AT).then_some(self.due_ms),
            Timeline::Delivery => (!self.is_exhausted()).then_some(self.delivered_ms),
            Timeline::Exhausted => self.is_exhausted().then_some(self.delivered_ms),
        }
    }
}

/// What a chunk holds, at a glance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Summary {
    /// The earliest time of the chunk's entries on each clock (indexed by `Timeline as usize`).
    earliest: [Option<u64>; 3],
    /// How many entries share that earliest time: entries delivered by one read share their
    /// delivery time, and removing all but the last of them needs no rescan.
    ties: [u32; 3],
    exhausted: usize,
    /// `(consumer, entries it owns here)`, only counts above zero, in no particular order.
    owners: Vec<(ConsumerId, u32)>,
}

impl Summary {
    fn of(slots: &VecDeque<Slot>) -> Summary {
        let mut summary = Summary::default();
        for slot in slots {
            summary.add(slot);
        }
        summary
    }

    fn add(&mut self, slot: &Slot) {
        for clock in TIMELINES {
            if let Some(time) = slot.time(clock) {
                let index = clock as usize;
                match self.earliest[index] {
                    Some(earliest) if time > earliest => {}
                    Some(earliest) if time == earliest => self.ties[index] += 1,
                    _ => (self.earliest[index], self.ties[index]) = (Some(time), 1),
                }
            }
        }
        self.exhausted += usize::from(slot.is_exhausted());
        let owner = slot.owner();
        match self.owners.iter_mut().find(|(id, _)| *id == owner) {
            Some((_, count)) => *count += 1,
            None => self.owners.push((owner, 1)),
        }
    }

    /// Takes `gone` out of the summary of `slots`, which no longer hold it.
    fn remove(&mut self, gone: &Slot, slots: &VecDeque<Slot>) {
        let stale = self.forget(gone);
        self.refresh(stale, slots);
    }

    /// Replaces `old` with `new` in the summary of `slots`, which hold `new` instead of `old`.
    fn replace(&mut self, old: &Slot, new: &Slot, slots: &VecDeque<Slot>) {
        let stale = self.forget(old);
        self.add(new);
        self.refresh(stale, slots);
    }

    /// Recomputes the earliest times `forget` could not keep.
    fn refresh(&mut self, stale: [bool; 3], slots: &VecDeque<Slot>) {
        for clock in TIMELINES.into_iter().filter(|&clock| stale[clock as usize]) {
            (self.earliest[clock as usize], self.ties[clock as usize]) = earliest_in(slots, clock);
        }
    }

    /// Takes `gone` out of the counts; returns the clocks whose earliest time it was the last
    /// holder of, which only the slots can tell now.
    fn forget(&mut self, gone: &Slot) -> [bool; 3] {
        let mut stale = [false; 3];
        for clock in TIMELINES {
            let index = clock as usize;
            if gone.time(clock).is_some() && gone.time(clock) == self.earliest[index] {
                self.ties[index] -= 1;
                stale[index] = self.ties[index] == 0;
            }
        }
        self.exhausted -= usize::from(gone.is_exhausted());
        let owner = gone.owner();
        let at = self.owners.iter().position(|(id, _)| *id == owner);
        debug_assert!(at.is_some(), "chunk summary lacks owner {owner}");
        if let Some(at) = at {
            self.owners[at].1 -= 1;
            if self.owners[at].1 == 0 {
                self.owners.swap_remove(at);
            }
        }
        stale
    }

    fn owns(&self, owner: ConsumerId) -> bool {
        self.owners.iter().any(|(id, _)| *id == owner)
    }
}

/// The earliest time on `clock` among `slots`, and how many slots have it.
fn earliest_in(slots: &VecDeque<Slot>, clock: Timeline) -> (Option<u64>, u32) {
    let mut earliest = None;
    let mut ties = 0;
    for time in slots.iter().filter_map(|slot| slot.time(clock)) {
        match earliest {
            Some(known) if time > known => {}
            Some(known) if time == known => ties += 1,
            _ => (earliest, ties) = (Some(time), 1),
        }
    }
    (earliest, ties)
}

#[derive(Clone, Debug)]
struct Chunk {
    slots: VecDeque<Slot>,
    summary: Summary,
}

impl Chunk {
    fn new(slots: VecDeque<Slot>) -> Chunk {
        let summary = Summary::of(&slots);
        Chunk { slots, summary }
    }

    /// Where `id` is, or would go.
    fn find(&self, id: StreamId) -> Result<usize, usize> {
        self.slots.binary_search_by(|slot| slot.id.cmp(&id))
    }

    fn is_full(&self) -> bool {
        self.slots.len() >= CHUNK_CAPACITY
    }

    /// Grows the allocation for `extra` more slots: doubling, never past [`CHUNK_CAPACITY`], so
    /// a small PEL stays small and a full chunk holds no spare room.
    fn reserve(&mut self, extra: usize) {
        let needed = self.slots.len() + extra;
        if needed > self.slots.capacity() {
            let target = needed
                .max((self.slots.len() * 2).min(CHUNK_CAPACITY))
                .max(MIN_CHUNK_ALLOCATION);
            self.slots.reserve_exact(target - self.slots.len());
        }
    }
}

/// One group's pending entries.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pel {
    /// Chunks by lower fence.
    chunks: BTreeMap<StreamId, Chunk>,
    /// Per clock, `(earliest time, fence)` of every chunk with an entry on that clock.
    by_time: [BTreeSet<(u64, StreamId)>; 3],
    len: usize,
    exhausted: usize,
}

impl Pel {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes of the pending list's elements: its chunks, their slots, and the time indexes.
    pub(crate) fn heap_bytes(&self) -> usize {
        let chunks: usize = self
            .chunks
            .values()
            .map(|chunk| {
                std::mem::size_of::<(StreamId, Chunk)>()
                    + chunk.slots.capacity() * std::mem::size_of::<Slot>()
            })
            .sum();
        let timed: usize = self.by_time.iter().map(BTreeSet::len).sum();
        chunks + timed * std::mem::size_of::<(u64, StreamId)>()
    }

    /// Exhausted entries.
    pub(crate) fn exhausted(&self) -> usize {
        self.exhausted
    }

    pub(crate) fn first_id(&self) -> Option<StreamId> {
        let (_, chunk) = self.chunks.first_key_value()?;
        chunk.slots.front().map(|slot| slot.id)
    }

    pub(crate) fn last_id(&self) -> Option<StreamId> {
        let (_, chunk) = self.chunks.last_key_value()?;
        chunk.slots.back().map(|slot| slot.id)
    }

    pub(crate) fn get(&self, id: StreamId) -> Option<Pending> {
        let (_, chunk) = self.chunks.range(..=id).next_back()?;
        let at = chunk.find(id).ok()?;
        chunk.slots.get(at).map(|slot| slot.unpack().1)
    }

    /// The earliest time on `clock` among all entries.
    pub(crate) fn earliest(&self, clock: Timeline) -> Option<u64> {
        self.by_time[clock as usize].first().map(|&(time, _)| time)
    }

    /// Inserts or replaces the entry `id`, returning the one it replaced.
    pub(crate) fn insert(&mut self, id: StreamId, entry: Pending) -> Option<Pending> {
        let slot = Slot::pack(id, &entry);
        let Some(fence) = self.fence_for(id) else {
            self.attach(id, Chunk::new(VecDeque::from([slot])));
            self.count(None, Some(&slot));
            return None;
        };
        let Some(chunk) = self.chunks.get(&fence) else {
            unreachable!("fence_for returns the fence of an existing chunk");
        };
        match chunk.find(id) {
            Ok(_) => self.replace(fence, slot),
            Err(at) if !chunk.is_full() => {
                self.edit(fence, |chunk| {
                    chunk.reserve(1);
                    chunk.slots.insert(at, slot);
                    chunk.summary.add(&slot);
                });
                self.count(None, Some(&slot));
                None
            }
            // Beyond the last entry of a full chunk: a new chunk starts here, allocated whole
            // since appends will likely fill it too.
            Err(at) if at == chunk.slots.len() => {
                let mut slots = VecDeque::with_capacity(CHUNK_CAPACITY);
                slots.push_back(slot);
                self.attach(id, Chunk::new(slots));
                self.count(None, Some(&slot));
                None
            }
            Err(_) => {
                self.split(fence);
                self.insert(id, entry)
            }
        }
    }

    /// Removes the entry `id`, returning it.
    pub(crate) fn remove(&mut self, id: StreamId) -> Option<Pending> {
        let (&fence, chunk) = self.chunks.range(..=id).next_back()?;
        let at = chunk.find(id).ok()?;
        let gone = self.edit(fence, |chunk| {
            let gone = chunk.slots.remove(at)?;
            chunk.summary.remove(&gone, &chunk.slots);
            Some(gone)
        })?;
        self.count(Some(&gone), None);
        self.tidy(fence);
        Some(gone.unpack().1)
    }

    /// Entries in ID order from `start`.
    pub(crate) fn iter_from(
        &self,
        start: Bound<StreamId>,
    ) -> impl Iterator<Item = (StreamId, Pending)> + '_ {
        self.chunks_from(start)
            .flat_map(move |chunk| chunk.slots.range(first_at(chunk, start)..))
            .map(Slot::unpack)
    }

    /// The entries `owner` owns, in ID order from `start`, skipping chunks it owns nothing in.
    pub(crate) fn owned_from(
        &self,
        owner: ConsumerId,
        start: Bound<StreamId>,
    ) -> impl Iterator<Item = (StreamId, Pending)> + '_ {
        self.chunks_from(start)
            .filter(move |chunk| chunk.summary.owns(owner))
            .flat_map(move |chunk| chunk.slots.range(first_at(chunk, start)..))
            .filter(move |slot| slot.owner() == owner)
            .map(Slot::unpack)
    }

    /// IDs of the exhausted entries, in ID order.
    pub(crate) fn exhausted_ids(&self) -> Vec<StreamId> {
        self.chunks
            .values()
            .filter(|chunk| chunk.summary.exhausted > 0)
            .flat_map(|chunk| chunk.slots.iter())
            .filter(|slot| slot.is_exhausted())
            .map(|slot| slot.id)
            .collect()
    }

    /// `(time, id)` of the entries on `clock` at or before `limit`, in that order.
    pub(crate) fn by_time(&self, clock: Timeline, limit: u64) -> TimeOrder<'_> {
        TimeOrder {
            pel: self,
            clock,
            limit,
            chunks: self.by_time[clock as usize]
                .range(..=(limit, StreamId::MAX))
                .peekable(),
            collected: BinaryHeap::new(),
        }
    }

    /// The fence of the chunk `id` belongs in; the first chunk, moved down to `id`, when `id`
    /// is below every fence. `None` when there are no chunks.
    fn fence_for(&mut self, id: StreamId) -> Option<StreamId> {
        if let Some((&fence, _)) = self.chunks.range(..=id).next_back() {
            return Some(fence);
        }
        let (&first, _) = self.chunks.first_key_value()?;
        let chunk = self.detach(first)?;
        self.attach(id, chunk);
        Some(id)
    }

    fn chunks_from(&self, start: Bound<StreamId>) -> impl Iterator<Item = &Chunk> + '_ {
        let from = match start {
            Bound::Included(id) | Bound::Excluded(id) => self
                .chunks
                .range(..=id)
                .next_back()
                .map_or(StreamId::MIN, |(&fence, _)| fence),
            Bound::Unbounded => StreamId::MIN,
        };
        self.chunks.range(from..).map(|(_, chunk)| chunk)
    }

    /// Replaces the entry with `slot`'s ID in the chunk at `fence`.
    fn replace(&mut self, fence: StreamId, slot: Slot) -> Option<Pending> {
        let old = self.edit(fence, |chunk| {
            let at = chunk.find(slot.id).ok()?;
            let old = std::mem::replace(chunk.slots.get_mut(at)?, slot);
            chunk.summary.replace(&old, &slot, &chunk.slots);
            Some(old)
        })?;
        self.count(Some(&old), Some(&slot));
        Some(old.unpack().1)
    }

    /// Changes the chunk at `fence` and moves it in the time orders to match.
    fn edit<R>(&mut self, fence: StreamId, change: impl FnOnce(&mut Chunk) -> R) -> R {
        let Some(chunk) = self.chunks.get_mut(&fence) else {
            unreachable!("edit is only called with the fence of an existing chunk");
        };
        let before = chunk.summary.earliest;
        let result = change(chunk);
        let after = chunk.summary.earliest;
        for clock in TIMELINES {
            let index = clock as usize;
            if before[index] != after[index] {
                if let Some(time) = before[index] {
                    self.by_time[index].remove(&(time, fence));
                }
                if let Some(time) = after[index] {
                    self.by_time[index].insert((time, fence));
                }
            }
        }
        // An emptied chunk is dropped by `tidy` right after.
        debug_assert!(chunk.slots.is_empty() || chunk_is_sound(fence, chunk, CHUNK_CAPACITY));
        result
    }

    fn attach(&mut self, fence: StreamId, chunk: Chunk) {
        for clock in TIMELINES {
            if let Some(time) = chunk.summary.earliest[clock as usize] {
                self.by_time[clock as usize].insert((time, fence));
            }
        }
        let displaced = self.chunks.insert(fence, chunk);
        debug_assert!(displaced.is_none(), "two chunks with fence {fence}");
    }

    fn detach(&mut self, fence: StreamId) -> Option<Chunk> {
        let chunk = self.chunks.remove(&fence)?;
        for clock in TIMELINES {
            if let Some(time) = chunk.summary.earliest[clock as usize] {
                self.by_time[clock as usize].remove(&(time, fence));
            }
        }
        Some(chunk)
    }

    /// Keeps the totals in step when `old` leaves and `new` arrives.
    fn count(&mut self, old: Option<&Slot>, new: Option<&Slot>) {
        if let Some(old) = old {
            self.len -= 1;
            self.exhausted -= usize::from(old.is_exhausted());
        }
        if let Some(new) = new {
            self.len += 1;
            self.exhausted += usize::from(new.is_exhausted());
        }
    }

    /// Splits the chunk at `fence` in two halves.
    fn split(&mut self, fence: StreamId) {
        let Some(mut left) = self.detach(fence) else {
            return;
        };
        let mut right = VecDeque::with_capacity(CHUNK_CAPACITY);
        right.extend(left.slots.drain(left.slots.len() / 2..));
        let right_fence = right.front().map(|slot| slot.id);
        self.attach(fence, Chunk::new(left.slots));
        if let Some(right_fence) = right_fence {
            self.attach(right_fence, Chunk::new(right));
        }
    }

    /// After a removal from the chunk at `fence`: drops it if empty, merges it with a
    /// neighbour if it became sparse and the two fit in one chunk.
    fn tidy(&mut self, fence: StreamId) {
        let Some(len) = self.chunks.get(&fence).map(|chunk| chunk.slots.len()) else {
            return;
        };
        if len == 0 {
            self.detach(fence);
            return;
        }
        if len >= MERGE_BELOW {
            return;
        }
        let fits = |(&other, chunk): (&StreamId, &Chunk)| {
            (len + chunk.slots.len() <= CHUNK_CAPACITY).then_some(other)
        };
        let next = self
            .chunks
            .range((Bound::Excluded(fence), Bound::Unbounded))
            .next()
            .and_then(fits);
        let previous = self.chunks.range(..fence).next_back().and_then(fits);
        match (previous, next) {
            (_, Some(next)) => self.merge(fence, next),
            (Some(previous), None) => self.merge(previous, fence),
            (None, None) => {}
        }
    }

    /// Moves the chunk at `right` into its left neighbour at `left`.
    fn merge(&mut self, left: StreamId, right: StreamId) {
        let (Some(mut into), Some(from)) = (self.detach(left), self.detach(right)) else {
            unreachable!("merge is only called with the fences of two existing chunks");
        };
        into.reserve(from.slots.len());
        into.slots.extend(from.slots);
        self.attach(left, Chunk::new(into.slots));
    }
}

/// Where the entries at or after `start` begin in `chunk`.
fn first_at(chunk: &Chunk, start: Bound<StreamId>) -> usize {
    match start {
        Bound::Included(id) => chunk.slots.partition_point(|slot| slot.id < id),
        Bound::Excluded(id) => chunk.slots.partition_point(|slot| slot.id <= id),
        Bound::Unbounded => 0,
    }
}

/// A chunk's own invariants: non-empty, at most `capacity` entries, IDs strictly increasing and
/// not below its fence, its summary that of its entries.
fn chunk_is_sound(fence: StreamId, chunk: &Chunk, capacity: usize) -> bool {
    let slots = &chunk.slots;
    !slots.is_empty()
        && slots.len() <= capacity
        && slots.front().is_some_and(|first| first.id >= fence)
        && slots
            .iter()
            .zip(slots.iter().skip(1))
            .all(|(a, b)| a.id < b.id)
        && (chunk.summary.earliest, chunk.summary.ties) == {
            let fresh = Summary::of(slots);
            (fresh.earliest, fresh.ties)
        }
        && chunk.summary.exhausted == Summary::of(slots).exhausted
}

/// Entries in the order of one clock ([`Pel::by_time`]): chunks are opened in the order of
/// their earliest time, and an entry is returned once no unopened chunk can hold an earlier one.
pub(crate) struct TimeOrder<'a> {
    pel: &'a Pel,
    clock: Timeline,
    limit: u64,
    chunks: Peekable<btree_set::Range<'a, (u64, StreamId)>>,
    /// Entries of the opened chunks not returned yet.
    collected: BinaryHeap<Reverse<(u64, StreamId)>>,
}

impl Iterator for TimeOrder<'_> {
    type Item = (u64, StreamId);

    fn next(&mut self) -> Option<(u64, StreamId)> {
        loop {
            let next_chunk = self.chunks.peek().map(|&&(time, _)| time);
            if let Some(&Reverse(earliest)) = self.collected.peek() {
                // An unopened chunk whose earliest time equals this one may hold a smaller ID.
                if next_chunk.is_none_or(|time| earliest.0 < time) {
                    self.collected.pop();
                    return Some(earliest);
                }
            }
            let &(_, fence) = self.chunks.next()?;
            let Some(chunk) = self.pel.chunks.get(&fence) else {
                unreachable!("the time orders only name existing chunks");
            };
            let (clock, limit) = (self.clock, self.limit);
            self.collected.extend(chunk.slots.iter().filter_map(|slot| {
                let time = slot.time(clock).filter(|&time| time <= limit)?;
                Some(Reverse((time, slot.id)))
            }));
        }
    }
}

#[cfg(any(test, debug_assertions))]
impl Pel {
    /// Panics unless every chunk is sound, chunks do not overlap, and the time orders and totals
    /// agree with the chunks.
    pub(crate) fn check_invariants(&self) {
        let mut by_time: [BTreeSet<(u64, StreamId)>; 3] = Default::default();
        let mut len = 0;
        let mut exhausted = 0;
        let mut previous = None;
        for (&fence, chunk) in &self.chunks {
            assert!(
                chunk_is_sound(fence, chunk, CHUNK_CAPACITY),
                "chunk {fence}: {chunk:?}"
            );
            let mut owners = Summary::of(&chunk.slots).owners;
            let mut kept = chunk.summary.owners.clone();
            owners.sort_unstable();
            kept.sort_unstable();
            assert_eq!(owners, kept, "chunk {fence}: owners");
            assert!(chunk.slots.capacity() <= CHUNK_CAPACITY.max(MIN_CHUNK_ALLOCATION));
            if let Some(previous_last) = previous {
                assert!(
                    previous_last < fence,
                    "chunk {fence} overlaps the previous one"
                );
            }
            for clock in TIMELINES {
                if let Some(time) = chunk.summary.earliest[clock as usize] {
                    by_time[clock as usize].insert((time, fence));
                }
            }
            len += chunk.slots.len();
            exhausted += chunk.summary.exhausted;
            previous = chunk.slots.back().map(|last| last.id);
        }
        assert_eq!(by_time, self.by_time, "time orders");
        assert_eq!((len, exhausted), (self.len, self.exhausted), "totals");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::event::tests::Rng;

    fn entry(rng: &mut Rng) -> Pending {
        Pending {
            offset: rng.next(),
            delivered_ms: rng.below(1000),
            due: match rng.below(3) {
                0 => Due::NotScheduled,
                1 => Due::At(rng.below(1000)),
                _ => Due::Exhausted,
            },
            owner: rng.below(5) as ConsumerId,
            deliveries: rng.next() as u32,
        }
    }

    /// The model's entries on `clock` up to `limit`, sorted as [`Pel::by_time`] returns them.
    fn time_order(
        model: &BTreeMap<StreamId, Pending>,
        clock: Timeline,
        limit: u64,
    ) -> Vec<(u64, StreamId)> {
        let mut order: Vec<(u64, StreamId)> = model
            .iter()
            .filter_map(|(&id, entry)| {
                let time = Slot::pack(id, entry).time(clock)?;
                (time <= limit).then_some((time, id))
            })
            .collect();
        order.sort_unstable();
        order
    }

    fn compare(pel: &Pel, model: &BTreeMap<StreamId, Pending>, rng: &mut Rng) {
        pel.check_invariants();
        let all: Vec<(StreamId, Pending)> = pel.iter_from(Bound::Unbounded).collect();
        let expected: Vec<(StreamId, Pending)> =
            model.iter().map(|(&id, &entry)| (id, entry)).collect();
        assert_eq!(all, expected);
        assert_eq!(pel.first_id(), model.keys().next().copied());
        assert_eq!(pel.last_id(), model.keys().next_back().copied());
        let start = StreamId::new(rng.below(3000), rng.below(2));
        let after: Vec<StreamId> = pel
            .iter_from(Bound::Excluded(start))
            .map(|(id, _)| id)
            .collect();
        let expected: Vec<StreamId> = model
            .range((Bound::Excluded(start), Bound::Unbounded))
            .map(|(&id, _)| id)
            .collect();
        assert_eq!(after, expected);
        let owner = rng.below(5) as ConsumerId;
        let owned: Vec<StreamId> = pel
            .owned_from(owner, Bound::Included(start))
            .map(|(id, _)| id)
            .collect();
        let expected: Vec<StreamId> = model
            .range(start..)
            .filter(|(_, entry)| entry.owner == owner)
            .map(|(&id, _)| id)
            .collect();
        assert_eq!(owned, expected);
        for clock in TIMELINES {
            let limit = rng.below(1100);
            let got: Vec<(u64, StreamId)> = pel.by_time(clock, limit).collect();
            assert_eq!(
                got,
                time_order(model, clock, limit),
                "{clock:?} up to {limit}"
            );
        }
        let exhausted: Vec<StreamId> = model
            .iter()
            .filter(|(_, entry)| entry.due == Due::Exhausted)
            .map(|(&id, _)| id)
            .collect();
        assert_eq!(pel.exhausted_ids(), exhausted);
        assert_eq!(pel.exhausted(), exhausted.len());
    }

    #[test]
    fn random_operations_agree_with_an_ordered_map() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let mut pel = Pel::default();
        let mut model = BTreeMap::new();
        // Phases that favour appends, scattered changes and removals in turn, so chunks fill,
        // split, drain and merge.
        for round in 0..6_000u64 {
            let (append, remove) = match (round / 1000) % 3 {
                0 => (70, 10),
                1 => (20, 30),
                _ => (10, 75),
            };
            let tail = model.keys().next_back().map_or(0, |id: &StreamId| id.ms);
            let id = if rng.chance(append) {
                StreamId::new(tail + 1 + rng.below(2), rng.below(2))
            } else {
                StreamId::new(rng.below(tail + 2), rng.below(2))
            };
            if rng.chance(remove) {
                assert_eq!(pel.remove(id), model.remove(&id));
            } else {
                let new = entry(&mut rng);
                assert_eq!(pel.insert(id, new), model.insert(id, new));
            }
            assert_eq!(pel.get(id), model.get(&id).copied());
            assert_eq!(pel.len(), model.len());
            if round % 50 == 0 {
                compare(&pel, &model, &mut rng);
            }
        }
        compare(&pel, &model, &mut rng);
    }

    #[test]
    fn appended_entries_fill_chunks_completely() {
        let mut pel = Pel::default();
        let mut rng = Rng(7);
        for ms in 1..=(CHUNK_CAPACITY as u64 * 3) {
            pel.insert(StreamId::new(ms, 0), entry(&mut rng));
        }
        let lens: Vec<usize> = pel.chunks.values().map(|chunk| chunk.slots.len()).collect();
        assert_eq!(lens, [CHUNK_CAPACITY; 3]);
        let capacities = pel.chunks.values().map(|chunk| chunk.slots.capacity());
        assert!(
            capacities
                .into_iter()
                .all(|capacity| capacity == CHUNK_CAPACITY)
        );
        pel.check_invariants();
    }

    #[test]
    fn the_due_kind_and_extreme_values_survive_packing() {
        for due in [
            Due::NotScheduled,
            Due::At(u64::MAX),
            Due::At(0),
            Due::Exhausted,
        ] {
            let entry = Pending {
                offset: u64::MAX,
                delivered_ms: u64::MAX,
                due,
                owner: (MAX_CONSUMERS - 1) as ConsumerId,
                deliveries: u32::MAX,
            };
            assert_eq!(
                Slot::pack(StreamId::MAX, &entry).unpack(),
                (StreamId::MAX, entry)
            );
        }
    }

    #[test]
    fn time_order_opens_only_the_chunks_it_needs() {
        let mut pel = Pel::default();
        for ms in 1..=(CHUNK_CAPACITY as u64 * 10) {
            let entry = Pending {
                offset: ms,
                delivered_ms: ms,
                due: Due::At(ms + 100),
                owner: 0,
                deliveries: 1,
            };
            pel.insert(StreamId::new(ms, 0), entry);
        }
        let mut order = pel.by_time(Timeline::Due, u64::MAX);
        let first: Vec<u64> = order.by_ref().take(3).map(|(time, _)| time).collect();
        assert_eq!(first, [101, 102, 103]);
        // Only the first chunk was opened: the second's earliest due time comes after them.
        assert_eq!(order.collected.len(), CHUNK_CAPACITY - 3);
    }
}
