//! Giving delivered entries back, in the two ways a group can: [`GroupsState::nack`] (the
//! library's negative acknowledgement: owners and counters stay until the entries are handed
//! out again) and [`GroupsState::release`] (Redis 8.8's `XNACK`: each entry gets a new
//! delivery counter, by a [`NackMode`], and entries that were not pending may be forced in).
//! They journal different events ([`GroupEvent::Nacked`], [`GroupEvent::PendingRestored`]),
//! which is why there are two operations, side by side here.

use std::collections::{BTreeMap, HashSet};

use crate::id::StreamId;

use super::event::{Due, GroupEvent, PendingRecord};
use super::state::{GroupsState, Recorder};
use super::{Applied, EntrySource, GroupError, MAX_EVENT_BATCH};

/// The owner of entries that [`GroupsState::release`] forces into the pending list: Redis
/// shows released entries with an empty consumer name.
const UNOWNED: &[u8] = b"";

/// How `XNACK` changes the delivery counters of the entries it releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NackMode {
    /// The delivery does not count: one less.
    Silent,
    /// Unchanged.
    Fail,
    /// Never to be delivered again: the largest counter.
    Fatal,
}

impl NackMode {
    /// The counter a released entry gets from its current one (`None` for an entry that was
    /// not pending, which Redis starts at 0, or at the largest value for `FATAL`);
    /// `retry_count` (`XNACK … RETRYCOUNT`) overrides the mode.
    pub fn counter(self, retry_count: Option<u32>, current: Option<u32>) -> u32 {
        if let Some(count) = retry_count {
            return count;
        }
        match (self, current) {
            (NackMode::Fatal, _) => u32::MAX,
            (NackMode::Silent, Some(count)) => count.saturating_sub(1),
            (NackMode::Fail, Some(count)) => count,
            (_, None) => 0,
        }
    }
}

/// What [`GroupsState::release`] is asked.
pub struct Release<'a> {
    /// The entries to release.
    pub ids: &'a [StreamId],
    /// Each entry's new delivery counter from its current one (`None`: it was not pending).
    pub counter: &'a dyn Fn(Option<u32>) -> u32,
    /// Also add entries of the stream that were not pending.
    pub force: bool,
    /// When the released entries become deliverable again.
    pub due_ms: u64,
    /// The time now (Unix milliseconds).
    pub now_ms: u64,
}

impl GroupsState {
    /// Negative acknowledgement: releases pending entries (only those `consumer` owns, if
    /// given) for redelivery by [`read_new`](Self::read_new) from `now_ms + delay_ms`; a delay
    /// of 0 makes them due at once. Owners and delivery counters do not change until then, and
    /// an exhausted entry released this way is judged again by that read. Returns how many were
    /// pending.
    pub fn nack(
        &mut self,
        group: &[u8],
        consumer: Option<&[u8]>,
        ids: &[StreamId],
        delay_ms: u64,
        now_ms: u64,
    ) -> Result<Applied<usize>, GroupError> {
        let state = self.group(group)?;
        let owner = match consumer {
            Some(name) => match state.consumers.id(name) {
                Some(id) => Some(id),
                None => return Ok(Applied::unchanged(0)),
            },
            None => None,
        };
        let released = state.pending_among(ids, owner);
        let due_ms = now_ms.saturating_add(delay_ms);
        let mut recorder = Recorder::new(self);
        recorder.emit_batches(&released, |ids| GroupEvent::Nacked {
            group: group.to_vec(),
            due_ms,
            ids,
        });
        Ok(recorder.finish(released.len()))
    }

    /// Releases entries for redelivery from `request.due_ms` with new delivery counters:
    /// each pending entry is restored exactly as it was (owner and delivery time stay) but
    /// for its counter and due time; with `force`, entries of the stream that were not pending
    /// are added, owned by the empty-named consumer. Returns how many were released; IDs listed
    /// twice count once.
    pub fn release(
        &mut self,
        group: &[u8],
        source: &dyn EntrySource,
        request: &Release<'_>,
    ) -> Result<Applied<usize>, GroupError> {
        let (records, needs_unowned) = self.plan_release(group, source, request)?;
        let released = records.values().map(Vec::len).sum();
        let mut recorder = Recorder::new(self);
        if needs_unowned {
            recorder.emit(GroupEvent::ConsumerCreated {
                group: group.to_vec(),
                consumer: UNOWNED.to_vec(),
                seen_ms: request.now_ms,
                active_ms: None,
            });
        }
        for (owner, entries) in records {
            for chunk in entries.chunks(MAX_EVENT_BATCH) {
                recorder.emit(GroupEvent::PendingRestored {
                    group: group.to_vec(),
                    consumer: owner.clone(),
                    entries: chunk.to_vec(),
                });
            }
        }
        Ok(recorder.finish(released))
    }

    /// The restored records by owner, and whether the empty-named owner must be created first.
    fn plan_release(
        &self,
        group: &[u8],
        source: &dyn EntrySource,
        request: &Release<'_>,
    ) -> Result<ReleasePlan, GroupError> {
        let group = self.group(group)?;
        let due = Due::At(request.due_ms);
        let mut records: BTreeMap<Vec<u8>, Vec<PendingRecord>> = BTreeMap::new();
        let mut visited = HashSet::new();
        for &id in request.ids {
            if !visited.insert(id) {
                continue;
            }
            let (owner, record) = match group.pel.get(id) {
                Some(entry) => (
                    group.consumers.name(entry.owner).to_vec(),
                    PendingRecord {
                        id,
                        offset: entry.offset,
                        delivered_ms: entry.delivered_ms,
                        deliveries: (request.counter)(Some(entry.deliveries)),
                        due,
                    },
                ),
                None if request.force => match source.lookup(id) {
                    Some(offset) => (
                        UNOWNED.to_vec(),
                        PendingRecord {
                            id,
                            offset,
                            delivered_ms: request.now_ms,
                            deliveries: (request.counter)(None),
                            due,
                        },
                    ),
                    None => continue,
                },
                None => continue,
            };
            records.entry(owner).or_default().push(record);
        }
        let needs_unowned = records.contains_key(UNOWNED) && group.consumers.id(UNOWNED).is_none();
        Ok((records, needs_unowned))
    }
}

/// The restored records by owner, and whether the empty-named owner must be created first.
type ReleasePlan = (BTreeMap<Vec<u8>, Vec<PendingRecord>>, bool);

#[cfg(test)]
mod tests {
    use super::NackMode;

    #[test]
    fn counters_follow_the_mode() {
        assert_eq!(NackMode::Silent.counter(None, Some(3)), 2);
        assert_eq!(NackMode::Silent.counter(None, Some(0)), 0);
        assert_eq!(NackMode::Fail.counter(None, Some(3)), 3);
        assert_eq!(NackMode::Fatal.counter(None, Some(3)), u32::MAX);
        assert_eq!(NackMode::Fatal.counter(None, None), u32::MAX);
        assert_eq!(NackMode::Fail.counter(None, None), 0);
        assert_eq!(NackMode::Fatal.counter(Some(5), Some(3)), 5);
    }
}
