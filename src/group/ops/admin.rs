//! Creating and destroying groups and consumers, and moving a group's position or policy.

use super::*;

impl GroupsState {
    /// `XGROUP CREATE`: a group positioned after `last_delivered` (the caller resolves `$` to
    /// the stream's last ID), with a read counter if known (`ENTRIESREAD`).
    pub fn create_group(
        &mut self,
        group: &[u8],
        last_delivered: StreamId,
        entries_read: Option<u64>,
    ) -> Result<Applied<()>, GroupError> {
        self.create_group_with(group, last_delivered, entries_read, GroupPolicy::default())
    }

    /// [`create_group`](Self::create_group) with a policy, in one event: a crash keeps both or
    /// neither.
    pub fn create_group_with(
        &mut self,
        group: &[u8],
        last_delivered: StreamId,
        entries_read: Option<u64>,
        policy: GroupPolicy,
    ) -> Result<Applied<()>, GroupError> {
        policy.validate()?;
        check_name(group)?;
        if self.has_group(group) {
            return Err(GroupError::GroupExists {
                group: group.to_vec(),
            });
        }
        let mut recorder = Recorder::new(self);
        recorder.emit(GroupEvent::GroupCreated {
            group: group.to_vec(),
            last_delivered,
            entries_read,
            policy,
        });
        Ok(recorder.finish(()))
    }

    /// `XGROUP DESTROY`: whether the group existed.
    pub fn destroy_group(&mut self, group: &[u8]) -> Applied<bool> {
        if !self.has_group(group) {
            return Applied::unchanged(false);
        }
        let mut recorder = Recorder::new(self);
        recorder.emit(GroupEvent::GroupDestroyed {
            group: group.to_vec(),
        });
        recorder.finish(true)
    }

    /// `XGROUP SETID`: moves the group anywhere, replacing its read counter (`None` when
    /// `ENTRIESREAD` is not given, as Redis does). Pending entries stay.
    pub fn set_id(
        &mut self,
        group: &[u8],
        last_delivered: StreamId,
        entries_read: Option<u64>,
    ) -> Result<Applied<()>, GroupError> {
        self.group(group)?;
        let mut recorder = Recorder::new(self);
        recorder.emit(GroupEvent::GroupIdSet {
            group: group.to_vec(),
            last_delivered,
            entries_read,
        });
        Ok(recorder.finish(()))
    }

    /// Replaces the group's policy (see [`GroupPolicy::validate`]).
    pub fn set_policy(
        &mut self,
        group: &[u8],
        policy: GroupPolicy,
    ) -> Result<Applied<()>, GroupError> {
        policy.validate()?;
        self.group(group)?;
        let mut recorder = Recorder::new(self);
        recorder.emit(GroupEvent::PolicySet {
            group: group.to_vec(),
            policy,
        });
        Ok(recorder.finish(()))
    }

    /// `XGROUP CREATECONSUMER`: whether the consumer was created.
    pub fn create_consumer(
        &mut self,
        group: &[u8],
        consumer: &[u8],
        now_ms: u64,
    ) -> Result<Applied<bool>, GroupError> {
        let creation = self.group(group)?.creation(group, consumer, now_ms)?;
        let created = creation.is_some();
        let mut recorder = Recorder::new(self);
        recorder.emit_all(creation);
        Ok(recorder.finish(created))
    }

    /// `XGROUP DELCONSUMER`: how many pending entries the consumer held; they leave the PEL.
    pub fn delete_consumer(
        &mut self,
        group: &[u8],
        consumer: &[u8],
    ) -> Result<Applied<usize>, GroupError> {
        let Some(held) = self
            .group(group)?
            .consumers
            .by_name(consumer)
            .map(|state| state.pending)
        else {
            return Ok(Applied::unchanged(0));
        };
        let mut recorder = Recorder::new(self);
        recorder.emit(GroupEvent::ConsumerDeleted {
            group: group.to_vec(),
            consumer: consumer.to_vec(),
        });
        Ok(recorder.finish(held))
    }
}

impl GroupState {
    /// The event creating `consumer`, or `None` if it exists.
    pub(super) fn creation(
        &self,
        group: &[u8],
        consumer: &[u8],
        now_ms: u64,
    ) -> Result<Option<GroupEvent>, GroupError> {
        check_name(consumer)?;
        if self.consumers.id(consumer).is_some() {
            return Ok(None);
        }
        if self.consumers.is_full() {
            return Err(GroupError::TooManyConsumers);
        }
        Ok(Some(GroupEvent::ConsumerCreated {
            group: group.to_vec(),
            consumer: consumer.to_vec(),
            seen_ms: now_ms,
            active_ms: None,
        }))
    }
}
