//! Deletions that keep, remove or respect the consumer groups' references to the entries they
//! remove: Redis 8.2's XDELEX and XACKDEL, and the `KEEPREF | DELREF | ACKED` options of XADD
//! and XTRIM.
//!
//! Each runs under the stream's group lock, so no read hands out an entry between the check of
//! its references and its deletion. The groups' events are journaled before the log changes:
//! a crash in between leaves entries acknowledged or unreferenced but not yet deleted, never
//! references to entries a group can no longer see explained.

use std::ops::Bound;

use super::nodes::Threshold;
use super::{Group, Stream};
use crate::durability::Commit;
use crate::error::StoreError;
use crate::group::durable::DurableGroups;
use crate::id::StreamId;

/// What a deletion does about the consumer groups' references to the entries it removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum References {
    /// Delete the entries and leave the groups' pending lists as they are (Redis's `KEEPREF`,
    /// and what XDEL and XTRIM always did).
    #[default]
    Keep,
    /// Delete the entries and remove them from every group's pending list (`DELREF`).
    Remove,
    /// Delete only entries no group still needs: every group has been handed them and none
    /// holds them pending (`ACKED`).
    Respect,
}

/// What became of one ID of a deletion (Redis's per-ID replies -1, 1 and 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// No entry has this ID (deleted before, trimmed, or never there).
    Missing,
    /// The entry was deleted.
    Deleted,
    /// The entry stays: a group still needs it ([`References::Respect`]).
    Referenced,
}

impl Deletion {
    /// Redis's code for it.
    pub fn code(self) -> i64 {
        match self {
            Deletion::Missing => -1,
            Deletion::Deleted => 1,
            Deletion::Referenced => 2,
        }
    }
}

/// How far a trim goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimTo {
    /// Keep at most this many entries (`MAXLEN`).
    MaxLen(u64),
    /// Remove the entries with IDs below this one (`MINID`).
    MinId(StreamId),
}

/// How many entries a trim looks at per read of the log.
const SCAN_CHUNK: usize = 1024;

impl Stream {
    /// Deletes entries by ID (Redis's XDELEX); one result per ID, in order. With
    /// [`References::Remove`] the IDs leave every group's pending list even when their entries
    /// were already gone.
    pub fn delete_with(
        &self,
        ids: &[StreamId],
        references: References,
    ) -> Result<Vec<Deletion>, StoreError> {
        self.delete_with_in(ids, references, Commit::Wait)
    }

    /// [`delete_with`](Self::delete_with), made durable as `commit` says.
    pub(crate) fn delete_with_in(
        &self,
        ids: &[StreamId],
        references: References,
        commit: Commit<'_>,
    ) -> Result<Vec<Deletion>, StoreError> {
        let results = {
            let mut groups = self.groups.lock();
            self.delete_locked(&mut groups, ids, references)?
        };
        self.commit(commit)?;
        Ok(results)
    }

    fn delete_locked(
        &self,
        groups: &mut DurableGroups,
        ids: &[StreamId],
        references: References,
    ) -> Result<Vec<Deletion>, StoreError> {
        let mut results = Vec::with_capacity(ids.len());
        let mut doomed = Vec::new();
        for &id in ids {
            let result = if self.log.lookup(id)?.is_none() || doomed.contains(&id) {
                Deletion::Missing
            } else if references == References::Respect && groups.state().references(id) {
                Deletion::Referenced
            } else {
                doomed.push(id);
                Deletion::Deleted
            };
            results.push(result);
        }
        if references == References::Remove {
            groups.apply(|state| Ok(state.drop_references(ids)))?;
        }
        self.nodes_follow()?;
        self.log.delete(&doomed)?;
        Ok(results)
    }

    /// Trims like [`trim_max_len`](Self::trim_max_len) or [`trim_min_id`](Self::trim_min_id),
    /// doing `references` about the groups. [`References::Respect`] passes over the entries
    /// a group still needs and removes later ones instead, never leaving fewer than `MAXLEN`
    /// entries nor touching IDs from `MINID` on. At most `limit` entries go, when one is given.
    /// Returns how many entries went.
    pub fn trim_with(
        &self,
        to: TrimTo,
        approximate: bool,
        limit: Option<u64>,
        references: References,
    ) -> Result<u64, StoreError> {
        self.trim_with_in(to, approximate, limit, references, Commit::Wait)
    }

    /// [`trim_with`](Self::trim_with), made durable as `commit` says.
    pub(crate) fn trim_with_in(
        &self,
        to: TrimTo,
        approximate: bool,
        limit: Option<u64>,
        references: References,
        commit: Commit<'_>,
    ) -> Result<u64, StoreError> {
        let removed = {
            let mut groups = self.groups.lock();
            let no_groups = groups.state().group_names().next().is_none();
            match references {
                References::Keep => None,
                _ if no_groups => None,
                References::Remove => {
                    Some(self.trim_removing(&mut groups, to, approximate, limit)?)
                }
                References::Respect => Some(self.trim_respecting(&groups, to, limit)?),
            }
        };
        let removed = match removed {
            Some(removed) => {
                self.commit(commit)?;
                removed
            }
            None => match to {
                TrimTo::MaxLen(max_len) => {
                    self.trim_max_len_in(max_len, approximate, limit, commit)?
                }
                TrimTo::MinId(min_id) => self.trim_min_id_in(min_id, approximate, limit, commit)?,
            },
        };
        Ok(removed)
    }

    /// `DELREF`: trims, then removes what the trim took from the pending lists.
    fn trim_removing(
        &self,
        groups: &mut DurableGroups,
        to: TrimTo,
        approximate: bool,
        limit: Option<u64>,
    ) -> Result<u64, StoreError> {
        // The exact trim's entries: an approximate one takes a prefix of them.
        let candidates = match to {
            TrimTo::MaxLen(max_len) => {
                self.live_ids_while(|_, taken| taken < self.len().saturating_sub(max_len))?
            }
            TrimTo::MinId(min_id) => self.live_ids_while(|id, _| id < min_id)?,
        };
        let threshold = match to {
            TrimTo::MaxLen(max_len) => Threshold::MaxLen(max_len),
            TrimTo::MinId(min_id) => Threshold::MinId(min_id),
        };
        let removed = self.trim_uncommitted(threshold, approximate, limit)?;
        let first_kept = self.first_live_id()?;
        let gone: Vec<StreamId> = candidates
            .into_iter()
            .filter(|&id| first_kept.is_none_or(|first| id < first))
            .collect();
        groups.apply(|state| Ok(state.drop_references(&gone)))?;
        Ok(removed)
    }

    /// `ACKED`: removes the oldest entries no group needs, as many as the trim asks for.
    fn trim_respecting(
        &self,
        groups: &DurableGroups,
        to: TrimTo,
        limit: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.nodes_follow()?;
        let state = groups.state();
        let wanted = match to {
            TrimTo::MaxLen(max_len) => self.len().saturating_sub(max_len),
            TrimTo::MinId(_) => u64::MAX,
        };
        let wanted = limit.map_or(wanted, |limit| wanted.min(limit));
        // Unreferenced entries before the first referenced one go with one trim, later ones
        // one by one.
        let mut prefix_last = None;
        let mut scattered = Vec::new();
        let mut in_prefix = true;
        let mut taken = 0u64;
        let mut after = None;
        'scan: loop {
            let from = after.map_or(Bound::Unbounded, Bound::Excluded);
            let chunk = self.log.range(from, Bound::Unbounded, SCAN_CHUNK)?;
            let Some(last) = chunk.last() else {
                break;
            };
            after = Some(last.id);
            for entry in &chunk {
                if taken >= wanted || matches!(to, TrimTo::MinId(min_id) if entry.id >= min_id) {
                    break 'scan;
                }
                if state.references(entry.id) {
                    in_prefix = false;
                } else {
                    taken += 1;
                    if in_prefix {
                        prefix_last = Some(entry.id);
                    } else {
                        scattered.push(entry.id);
                    }
                }
            }
        }
        if let Some(last) = prefix_last {
            match last.successor() {
                Some(end) => {
                    self.log.trim_min_id(end, false, None)?;
                }
                // Nothing follows the largest ID: the trim stops before it, a delete takes it.
                None => {
                    self.log.trim_min_id(last, false, None)?;
                    scattered.push(last);
                }
            }
        }
        self.log.delete(&scattered)?;
        Ok(taken)
    }

    /// The IDs of the live entries from the oldest on, while `keep(id, taken so far)` holds.
    fn live_ids_while(
        &self,
        keep: impl Fn(StreamId, u64) -> bool,
    ) -> Result<Vec<StreamId>, StoreError> {
        let mut ids = Vec::new();
        loop {
            let from = ids
                .last()
                .map_or(Bound::Unbounded, |&id| Bound::Excluded(id));
            let chunk = self.log.range(from, Bound::Unbounded, SCAN_CHUNK)?;
            if chunk.is_empty() {
                return Ok(ids);
            }
            for entry in chunk {
                if !keep(entry.id, ids.len() as u64) {
                    return Ok(ids);
                }
                ids.push(entry.id);
            }
        }
    }

    fn first_live_id(&self) -> Result<Option<StreamId>, StoreError> {
        let first = self.log.range(Bound::Unbounded, Bound::Unbounded, 1)?;
        Ok(first.first().map(|entry| entry.id))
    }
}

impl Group {
    /// Acknowledges entries in this group and deletes them (Redis's XACKDEL); one result per
    /// ID, in order, as [`Stream::delete_with`] gives them after the acknowledgement.
    pub fn ack_and_delete(
        &self,
        ids: &[StreamId],
        references: References,
    ) -> Result<Vec<Deletion>, StoreError> {
        self.ack_and_delete_in(ids, references, Commit::Wait)
    }

    /// [`ack_and_delete`](Self::ack_and_delete), made durable as `commit` says.
    pub(crate) fn ack_and_delete_in(
        &self,
        ids: &[StreamId],
        references: References,
        commit: Commit<'_>,
    ) -> Result<Vec<Deletion>, StoreError> {
        let stream = self.stream();
        let (acked, results) = {
            let mut groups = stream.groups.lock();
            let acked = groups.apply(|state| state.ack(self.name(), ids))?;
            (acked, stream.delete_locked(&mut groups, ids, references)?)
        };
        stream.commit(commit)?;
        if acked > 0 {
            // Room under the group's pending cap: wake readers waiting for it.
            stream.appended.notify();
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Bound;
    use std::sync::Arc;

    use super::*;
    use crate::Store;
    use crate::stream::{GroupStart, Message};

    /// Stream `s` with entries `1-0` ..= `count-0` and groups `g` and `h` reading from the
    /// start.
    fn two_groups(store: &Store, count: u64) -> (Arc<Stream>, Group, Group) {
        let stream = store.stream(b"s").unwrap();
        for ms in 1..=count {
            stream
                .append(Message::new("x").id(StreamId::new(ms, 0)))
                .unwrap();
        }
        let group = |name: &[u8]| {
            stream
                .create_group(name, GroupStart::Beginning, Default::default())
                .unwrap()
        };
        let (g, h) = (group(b"g"), group(b"h"));
        (stream, g, h)
    }

    fn ids(list: &[u64]) -> Vec<StreamId> {
        list.iter().map(|&ms| StreamId::new(ms, 0)).collect()
    }

    fn live(stream: &Stream) -> Vec<u64> {
        let entries = stream
            .range(Bound::Unbounded, Bound::Unbounded, 100)
            .unwrap();
        entries.iter().map(|entry| entry.id.ms).collect()
    }

    fn pending(stream: &Stream, group: &[u8]) -> usize {
        stream.pending_overview(group).unwrap().count
    }

    #[test]
    fn deletes_keep_remove_or_respect_the_references() {
        use Deletion::{Deleted, Missing, Referenced};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (stream, g, h) = two_groups(&store, 6);
        g.read(b"c", 3).unwrap();
        h.read(b"c", 2).unwrap();
        g.ack(&ids(&[1])).unwrap();

        // 1: `h` holds it; 3: `h` was never handed it; 9: no such entry.
        let results = stream
            .delete_with(&ids(&[1, 3, 9]), References::Respect)
            .unwrap();
        assert_eq!(results, [Referenced, Referenced, Missing]);
        h.ack(&ids(&[1])).unwrap();
        let results = stream
            .delete_with(&ids(&[1, 1]), References::Respect)
            .unwrap();
        assert_eq!(
            results,
            [Deleted, Missing],
            "a repeated ID is gone the second time"
        );

        let results = stream.delete_with(&ids(&[2]), References::Keep).unwrap();
        assert_eq!(results, [Deleted]);
        assert_eq!((pending(&stream, b"g"), pending(&stream, b"h")), (2, 1));
        // 2 is gone already, but its references go with DELREF all the same.
        let results = stream
            .delete_with(&ids(&[2, 3]), References::Remove)
            .unwrap();
        assert_eq!(results, [Missing, Deleted]);
        assert_eq!((pending(&stream, b"g"), pending(&stream, b"h")), (0, 0));
        assert_eq!(live(&stream), [4, 5, 6]);
        let codes: Vec<i64> = [Missing, Deleted, Referenced]
            .iter()
            .map(|result| result.code())
            .collect();
        assert_eq!(codes, [-1, 1, 2]);
    }

    #[test]
    fn ack_and_delete_acknowledges_in_the_group_first() {
        use Deletion::{Deleted, Missing, Referenced};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (stream, g, h) = two_groups(&store, 3);
        g.read(b"c", 3).unwrap();
        h.read(b"c", 1).unwrap();
        let results = g
            .ack_and_delete(&ids(&[1, 2, 7]), References::Respect)
            .unwrap();
        // 1 is still pending in `h`, 2 not yet handed to it.
        assert_eq!(results, [Referenced, Referenced, Missing]);
        assert_eq!(pending(&stream, b"g"), 1);
        let results = h.ack_and_delete(&ids(&[1]), References::Respect).unwrap();
        assert_eq!(results, [Deleted]);
        let results = g.ack_and_delete(&ids(&[3]), References::Keep).unwrap();
        assert_eq!(results, [Deleted]);
        assert_eq!(live(&stream), [2]);
        drop((g, h, stream));
        store.close().unwrap();

        let store = Store::open(dir.path()).unwrap();
        let stream = store.stream(b"s").unwrap();
        assert_eq!(live(&stream), [2]);
        assert_eq!((pending(&stream, b"g"), pending(&stream, b"h")), (0, 0));
    }

    #[test]
    fn respecting_trims_pass_over_what_a_group_needs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (stream, g, h) = two_groups(&store, 8);
        g.read(b"c", 8).unwrap();
        h.read(b"c", 5).unwrap();
        g.ack(&ids(&[1, 2, 4, 5, 6, 7])).unwrap();
        h.ack(&ids(&[1, 2, 4, 5])).unwrap();
        // Needed: 3 (pending in both), 6 and 7 (never handed to `h`), 8 (pending in `g`).
        let removed = stream
            .trim_with(TrimTo::MaxLen(5), false, None, References::Respect)
            .unwrap();
        assert_eq!(removed, 3);
        assert_eq!(live(&stream), [3, 5, 6, 7, 8]);
        // Below 8, only 5 is free.
        let removed = stream
            .trim_with(
                TrimTo::MinId(StreamId::new(8, 0)),
                false,
                None,
                References::Respect,
            )
            .unwrap();
        assert_eq!(removed, 1);
        assert_eq!(live(&stream), [3, 6, 7, 8]);
        h.read(b"c", 3).unwrap();
        h.ack(&ids(&[3, 6, 7, 8])).unwrap();
        g.ack(&ids(&[3])).unwrap();
        let removed = stream
            .trim_with(
                TrimTo::MinId(StreamId::new(8, 0)),
                false,
                None,
                References::Respect,
            )
            .unwrap();
        assert_eq!(removed, 3);
        assert_eq!(live(&stream), [8]);
    }

    #[test]
    fn removing_trims_clear_the_pending_lists_of_what_they_took() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (stream, g, h) = two_groups(&store, 6);
        g.read(b"c", 6).unwrap();
        h.read(b"c", 2).unwrap();
        let removed = stream
            .trim_with(TrimTo::MaxLen(3), false, None, References::Remove)
            .unwrap();
        assert_eq!(removed, 3);
        assert_eq!(live(&stream), [4, 5, 6]);
        assert_eq!((pending(&stream, b"g"), pending(&stream, b"h")), (3, 0));
        let removed = stream
            .trim_with(
                TrimTo::MinId(StreamId::new(5, 0)),
                false,
                None,
                References::Keep,
            )
            .unwrap();
        assert_eq!(removed, 1);
        assert_eq!(pending(&stream, b"g"), 3, "KEEPREF leaves the references");
    }
}
