//! The operations: each checks its arguments and plans from the current state and the log
//! without changing anything, then emits its events through a [`Recorder`]. An error therefore
//! always means nothing changed. One file per family: `admin` (groups and consumers), `read`
//! (new entries and redeliveries), `ack` (acknowledgements and dead letters), `claim` (XCLAIM
//! and XAUTOCLAIM); `nack` sits beside this module.

mod ack;
mod admin;
mod claim;
mod read;
mod references;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::ops::Bound;

use crate::id::StreamId;

use super::consumers::ConsumerId;
use super::event::{DeliveryCount, GroupEvent};
use super::pel::Timeline;
use super::state::{GroupState, GroupsState, Recorder};
use super::{Applied, EntrySource, GroupError, GroupPolicy, MAX_EVENT_BATCH, check_name};

pub use claim::{AutoClaim, AutoClaimOutcome, ClaimOptions, ClaimOutcome};
pub use read::{DeadLetter, Handout, HistoryEntry, ReadNew, ReadOutcome};

impl GroupsState {
    pub(crate) fn group(&self, name: &[u8]) -> Result<&GroupState, GroupError> {
        self.groups.get(name).ok_or_else(|| GroupError::NoGroup {
            group: name.to_vec(),
        })
    }
}

impl GroupState {
    /// The distinct IDs among `ids` that are pending (and owned by `owner`, if given), in the
    /// order first listed.
    pub(super) fn pending_among(
        &self,
        ids: &[StreamId],
        owner: Option<ConsumerId>,
    ) -> Vec<StreamId> {
        let mut visited = HashSet::new();
        ids.iter()
            .copied()
            .filter(|id| {
                self.pel
                    .get(*id)
                    .is_some_and(|entry| owner.is_none_or(|owner| entry.owner == owner))
                    && visited.insert(*id)
            })
            .collect()
    }
}

impl Recorder<'_> {
    pub(super) fn emit_all(&mut self, events: impl IntoIterator<Item = GroupEvent>) {
        for event in events {
            self.emit(event);
        }
    }

    /// Records an interaction of `consumer` unless an event of this operation already did.
    pub(super) fn mark_seen(&mut self, group: &[u8], consumer: &[u8], now_ms: u64) {
        let seen_ms = self
            .state
            .groups
            .get(group)
            .and_then(|state| state.consumers.by_name(consumer))
            .map(|state| state.seen_ms);
        if seen_ms != Some(now_ms) {
            self.emit(GroupEvent::ConsumerSeen {
                group: group.to_vec(),
                consumer: consumer.to_vec(),
                time_ms: now_ms,
            });
        }
    }
}
