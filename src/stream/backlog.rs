//! How far behind each consumer group is: the numbers an operator alerts on.

use std::ops::Bound;

use super::Stream;
use super::source::LogSource;
use crate::error::StoreError;
use crate::group::GroupInfo;
use crate::id::StreamId;
use crate::stream::Group;

/// A consumer group's backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    /// The group's name.
    pub group: Vec<u8>,
    /// Entries not yet delivered to the group; `None` when unknown (entries were deleted inside
    /// the unread range, where Redis's `XINFO GROUPS` shows a nil lag too).
    pub lag: Option<u64>,
    /// Entries delivered and not yet acknowledged.
    pub pending: usize,
    /// Milliseconds since the oldest entry not yet delivered to the group was appended; `None`
    /// when the group has been handed every entry.
    pub oldest_undelivered_ms: Option<u64>,
    /// Milliseconds since the pending entry waiting longest for its acknowledgement was
    /// (last) delivered; `None` without pending entries.
    pub oldest_pending_ms: Option<u64>,
    /// Why the group's dead-letter stream refused the last entries it was sent (for instance
    /// because it is full under `DISCARD new`): those entries stay pending and are tried again
    /// about every second. `None` when the last dead letters were accepted, or none were sent.
    pub dead_letter_refused: Option<String>,
}

impl Stream {
    /// Every group's backlog, in name order, measured on the store's clock.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = weir::Store::open(dir.path()).unwrap();
    /// let stream = store.stream(b"jobs").unwrap();
    /// let group = stream.create_group(b"workers", weir::GroupStart::Beginning, Default::default()).unwrap();
    /// stream.append(weir::Message::new("a")).unwrap();
    /// stream.append(weir::Message::new("b")).unwrap();
    /// group.read(b"w1", 1).unwrap();
    /// let backlog = &stream.backlog()[0];
    /// assert_eq!((backlog.lag, backlog.pending), (Some(1), 1));
    /// assert!(backlog.oldest_undelivered_ms.is_some() && backlog.oldest_pending_ms.is_some());
    /// ```
    pub fn backlog(&self) -> Vec<Backlog> {
        self.inspect_backlog(|_, backlog| backlog)
    }

    /// Runs `each` on every group's information and backlog, in name order, under one look at
    /// the groups' state (what `XINFO GROUPS` shows).
    pub fn inspect_backlog<T>(&self, mut each: impl FnMut(&GroupInfo<'_>, Backlog) -> T) -> Vec<T> {
        let now_ms = self.clock.now_ms();
        let groups = self.groups.lock();
        let infos = groups.state().groups_info(&LogSource(&self.log));
        infos
            .iter()
            .map(|info| each(info, self.backlog_of(info, now_ms)))
            .collect()
    }

    fn backlog_of(&self, info: &GroupInfo<'_>, now_ms: u64) -> Backlog {
        let age = |at_ms: u64| now_ms.saturating_sub(at_ms);
        Backlog {
            group: info.name.to_vec(),
            lag: info.lag,
            pending: info.pending,
            oldest_undelivered_ms: self.appended_after(info.last_delivered).map(age),
            oldest_pending_ms: info.oldest_delivery_ms.map(age),
            dead_letter_refused: self.dead_letter_refusals.lock().get(info.name).cloned(),
        }
    }

    /// When the first live entry after `id` was appended.
    fn appended_after(&self, id: StreamId) -> Option<u64> {
        match self.log.range(Bound::Excluded(id), Bound::Unbounded, 1) {
            Ok(entries) => entries.first().map(|entry| entry.timestamp_ms),
            Err(error) => {
                tracing::error!(%error, "reading the oldest undelivered entry failed");
                None
            }
        }
    }
}

impl Group {
    /// The group's backlog (see [`Stream::backlog`]).
    pub fn backlog(&self) -> Result<Backlog, StoreError> {
        let stream = self.stream();
        let now_ms = stream.clock.now_ms();
        let groups = stream.groups.lock();
        let info = groups
            .state()
            .group_info(&LogSource(&stream.log), self.name())?;
        Ok(stream.backlog_of(&info, now_ms))
    }
}
