//! Administrative changes to a stream's metadata: what Redis's `XSETID` and `XCFGSET` do beyond
//! appending and trimming.

use std::ops::Bound;

use super::Stream;
use crate::durability::Commit;
use crate::error::StoreError;
use crate::id::StreamId;
use crate::log::{Entry, MetaEvent};

impl Stream {
    /// Redis's `XSETID`: moves the stream's last ID to `id` and, when given, sets the
    /// `entries-added` counter and the largest deleted ID. Durable under the store's policy.
    ///
    /// The last ID never goes below the last entry ever appended (even one deleted or trimmed
    /// since), so IDs are never reused: such an `id` is refused with
    /// [`LogError::IdTooSmall`](crate::log::LogError::IdTooSmall) and nothing changes. Checks
    /// that depend on the caller's rules (Redis compares with the last live entry and the
    /// length) belong to the caller.
    ///
    /// ```
    /// use weir::{Message, StreamId};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = weir::Store::open(dir.path()).unwrap();
    /// let orders = store.stream(b"orders").unwrap();
    /// orders.append(Message::new("a").id(StreamId::new(5, 0))).unwrap();
    /// orders.set_last_id(StreamId::new(9, 0), Some(40), Some(StreamId::new(2, 0))).unwrap();
    /// assert_eq!(orders.last_id(), StreamId::new(9, 0));
    /// assert_eq!(orders.log().entries_added(), 40);
    /// assert_eq!(orders.log().max_deleted_id(), StreamId::new(2, 0));
    /// assert!(orders.set_last_id(StreamId::new(4, 0), None, None).is_err());
    /// ```
    pub fn set_last_id(
        &self,
        id: StreamId,
        entries_added: Option<u64>,
        max_deleted_id: Option<StreamId>,
    ) -> Result<(), StoreError> {
        self.set_last_id_in(id, entries_added, max_deleted_id, Commit::Wait)
    }

    /// [`set_last_id`](Self::set_last_id), made durable as `commit` says.
    pub(crate) fn set_last_id_in(
        &self,
        id: StreamId,
        entries_added: Option<u64>,
        max_deleted_id: Option<StreamId>,
        commit: Commit<'_>,
    ) -> Result<(), StoreError> {
        self.nodes_follow()?;
        self.log.set_last_id(id, self.clock.now_ms())?;
        if let Some(value) = entries_added {
            let at_next_offset = self.log.next_offset();
            self.log.record_meta(MetaEvent::SetEntriesAdded {
                value,
                at_next_offset,
            })?;
        }
        if let Some(id) = max_deleted_id {
            self.log.record_meta(MetaEvent::SetMaxDeletedId { id })?;
        }
        self.commit(commit)
    }

    /// The newest live entry, if any.
    pub fn last_entry(&self) -> Result<Option<Entry>, StoreError> {
        let mut newest = self.range_rev(Bound::Unbounded, Bound::Unbounded, 1)?;
        Ok(newest.pop())
    }

    /// Forgets every idempotency key of every producer, as Redis's `XCFGSET` does, and saves
    /// the emptied windows so a restart does not bring the keys back from the log.
    pub fn clear_idempotency(&self) -> Result<(), StoreError> {
        self.idempotency.lock().clear();
        self.save_idempotency()
    }
}
