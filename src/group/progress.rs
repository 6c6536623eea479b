//! A group's read counter (`entries-read`) and lag, exactly as Redis 7 computes them.
//!
//! A group counts the entries it has read since the stream's first entry ever. Deletions make
//! that count ambiguous: once an entry after the group's position was deleted, the distance to
//! the end can no longer be told from the stream's counters, and the count becomes unknown until
//! it can be re-anchored on the first or last entry.

use std::cmp::Ordering;

use crate::id::StreamId;

use super::StreamFacts;

impl StreamFacts {
    /// How many entries were added up to and including `id` (Redis's
    /// `streamEstimateDistanceFromFirstEverEntry`); `None` when it cannot be known.
    ///
    /// ```
    /// use weir::StreamId;
    /// use weir::group::StreamFacts;
    /// let facts = StreamFacts {
    ///     entries_added: 10,
    ///     length: 4,
    ///     first_id: StreamId::new(7, 0),
    ///     last_id: StreamId::new(10, 0),
    ///     max_deleted_id: StreamId::MIN,
    /// };
    /// assert_eq!(facts.estimate_distance(StreamId::new(7, 0)), Some(7));
    /// assert_eq!(facts.estimate_distance(StreamId::new(10, 0)), Some(10));
    /// assert_eq!(facts.estimate_distance(StreamId::new(8, 0)), None);
    /// ```
    pub fn estimate_distance(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.length == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        match id.cmp(&self.last_id) {
            Ordering::Equal => return Some(self.entries_added),
            Ordering::Greater => return None,
            Ordering::Less => {}
        }
        let no_tombstone_ahead =
            self.max_deleted_id == StreamId::MIN || self.max_deleted_id < self.first_id;
        if no_tombstone_ahead {
            let before_first = self.entries_added.saturating_sub(self.length);
            match id.cmp(&self.first_id) {
                Ordering::Less => return Some(before_first),
                Ordering::Equal => return Some(before_first.saturating_add(1)),
                Ordering::Greater => {}
            }
        }
        None
    }

    /// Whether a deleted entry may lie at or after `start` (Redis's `streamRangeHasTombstones`
    /// with an open end).
    pub fn range_has_tombstones(&self, start: StreamId) -> bool {
        if self.length == 0 || self.max_deleted_id == StreamId::MIN {
            return false;
        }
        // The newest deletion lies before the first entry: it was trimmed away with it.
        if self.max_deleted_id < self.first_id {
            return false;
        }
        start <= self.max_deleted_id && self.max_deleted_id <= self.last_id
    }

    /// A group's read counter after it is handed the new entry `id` (greater than its
    /// last-delivered ID): one more while the count is trustworthy, otherwise re-estimated.
    pub fn entries_read_after(&self, entries_read: Option<u64>, id: StreamId) -> Option<u64> {
        match entries_read {
            Some(read) if !self.range_has_tombstones(id) => Some(read.saturating_add(1)),
            _ if self.entries_added > 0 => self.estimate_distance(id),
            _ => entries_read,
        }
    }

    /// Entries added to the stream that a group at `last_delivered` has not read yet; `None`
    /// when unknown (Redis reports `lag` as nil). Never negative: see
    /// [`redis_lag`](Self::redis_lag) for the figure Redis reports.
    pub fn lag(&self, last_delivered: StreamId, entries_read: Option<u64>) -> Option<u64> {
        self.redis_lag(last_delivered, entries_read)
            .map(|lag| u64::try_from(lag).unwrap_or(0))
    }

    /// The lag exactly as Redis 7 computes it (`streamReplyWithCGLag`): the entries added less
    /// the read counter, which is negative when the counter was set (`XGROUP SETID …
    /// ENTRIESREAD`) past the entries added.
    pub fn redis_lag(&self, last_delivered: StreamId, entries_read: Option<u64>) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        let read = match entries_read {
            Some(read) if !self.range_has_tombstones(last_delivered) => read,
            _ => self.estimate_distance(last_delivered)?,
        };
        // Redis subtracts as signed 64-bit integers.
        Some((self.entries_added as i64).wrapping_sub(read as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64) -> StreamId {
        StreamId::new(ms, 0)
    }

    /// Ten entries 1..=10 added, the first three trimmed, no deletions.
    fn trimmed() -> StreamFacts {
        StreamFacts {
            entries_added: 10,
            length: 7,
            first_id: id(4),
            last_id: id(10),
            max_deleted_id: StreamId::MIN,
        }
    }

    #[test]
    fn a_never_used_stream_counts_zero() {
        let facts = StreamFacts::default();
        assert_eq!(facts.estimate_distance(id(5)), Some(0));
        assert_eq!(facts.lag(id(5), None), Some(0));
        assert_eq!(facts.entries_read_after(None, id(1)), None);
        assert_eq!(facts.entries_read_after(Some(3), id(1)), Some(4));
    }

    #[test]
    fn an_emptied_stream_counts_everything_up_to_its_last_id() {
        let facts = StreamFacts {
            entries_added: 5,
            length: 0,
            first_id: StreamId::MIN,
            last_id: id(5),
            max_deleted_id: id(5),
        };
        assert_eq!(facts.estimate_distance(id(2)), Some(5));
        assert_eq!(facts.estimate_distance(id(5)), Some(5));
        assert_eq!(facts.estimate_distance(id(6)), None);
        assert!(!facts.range_has_tombstones(id(1)));
    }

    #[test]
    fn anchors_are_the_first_and_last_entries() {
        let facts = trimmed();
        assert_eq!(facts.estimate_distance(id(10)), Some(10));
        assert_eq!(facts.estimate_distance(id(11)), None);
        assert_eq!(facts.estimate_distance(id(4)), Some(4));
        assert_eq!(facts.estimate_distance(id(2)), Some(3));
        assert_eq!(facts.estimate_distance(id(5)), None);
    }

    #[test]
    fn a_tombstone_after_the_first_entry_hides_the_first_anchor() {
        let facts = StreamFacts {
            max_deleted_id: id(6),
            length: 6,
            ..trimmed()
        };
        assert_eq!(facts.estimate_distance(id(4)), None);
        assert_eq!(facts.estimate_distance(id(2)), None);
        assert_eq!(facts.estimate_distance(id(10)), Some(10));
        // A tombstone before the first entry (deleted, then trimmed away) does not.
        let old = StreamFacts {
            max_deleted_id: id(2),
            ..trimmed()
        };
        assert_eq!(old.estimate_distance(id(4)), Some(4));
    }

    #[test]
    fn tombstones_count_only_at_or_after_the_start() {
        let facts = StreamFacts {
            max_deleted_id: id(6),
            ..trimmed()
        };
        assert!(facts.range_has_tombstones(id(6)));
        assert!(facts.range_has_tombstones(id(1)));
        assert!(!facts.range_has_tombstones(id(7)));
        assert!(!trimmed().range_has_tombstones(id(1)));
    }

    #[test]
    fn the_read_counter_increments_until_a_tombstone_lies_ahead() {
        let clean = trimmed();
        assert_eq!(clean.entries_read_after(Some(4), id(5)), Some(5));
        // Unknown counter: re-estimated, which only works at the anchors.
        assert_eq!(clean.entries_read_after(None, id(5)), None);
        assert_eq!(clean.entries_read_after(None, id(10)), Some(10));
        let holey = StreamFacts {
            max_deleted_id: id(8),
            length: 6,
            ..trimmed()
        };
        assert_eq!(holey.entries_read_after(Some(4), id(5)), None);
        assert_eq!(holey.entries_read_after(Some(8), id(9)), Some(9));
        assert_eq!(holey.entries_read_after(None, id(10)), Some(10));
    }

    #[test]
    fn lag_follows_the_counter_or_the_estimate() {
        let clean = trimmed();
        assert_eq!(clean.lag(id(5), Some(5)), Some(5));
        assert_eq!(clean.lag(id(10), None), Some(0));
        assert_eq!(clean.lag(id(3), None), Some(7));
        assert_eq!(clean.lag(id(5), None), None);
        let holey = StreamFacts {
            max_deleted_id: id(8),
            length: 6,
            ..trimmed()
        };
        assert_eq!(holey.lag(id(5), Some(5)), None);
        assert_eq!(holey.lag(id(9), Some(9)), Some(1));
        // A counter set above what was ever added does not underflow...
        assert_eq!(clean.lag(id(10), Some(50)), Some(0));
        // ...but Redis reports it negative.
        assert_eq!(clean.redis_lag(id(10), Some(50)), Some(-40));
        assert_eq!(clean.redis_lag(id(5), Some(5)), Some(5));
        assert_eq!(holey.redis_lag(id(5), Some(5)), None);
    }

    /// Redis 7.0.15 on `XADD u 1-0 a b`, `XGROUP CREATE u g 0`, `XGROUP SETID u g 1-0
    /// ENTRIESREAD 2`: `XINFO GROUPS` shows lag -1.
    #[test]
    fn a_read_counter_past_the_entries_added_gives_a_negative_lag() {
        let one = StreamFacts {
            entries_added: 1,
            length: 1,
            first_id: id(1),
            last_id: id(1),
            max_deleted_id: StreamId::MIN,
        };
        assert_eq!(one.redis_lag(id(1), Some(2)), Some(-1));
        assert_eq!(one.lag(id(1), Some(2)), Some(0));
    }

    /// Redis 7.0.15 on entries 1-0…5-0, `XDEL t 1-0`, `XGROUP CREATE t g 0 ENTRIESREAD 0`:
    /// lag 5. The deletion lies before the first entry, so the counter is trusted.
    #[test]
    fn a_deletion_before_the_first_entry_is_no_tombstone() {
        let facts = StreamFacts {
            entries_added: 5,
            length: 4,
            first_id: id(2),
            last_id: id(5),
            max_deleted_id: id(1),
        };
        assert!(!facts.range_has_tombstones(StreamId::MIN));
        assert_eq!(facts.redis_lag(StreamId::MIN, Some(0)), Some(5));
    }
}
