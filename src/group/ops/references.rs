//! The groups' references to log entries, as Redis 8.2's deletion options see them: `ACKED`
//! deletes only entries no group still needs, `DELREF` removes every group's references along
//! with the entries (`KEEPREF`, the default, leaves the groups alone).

use super::*;

impl GroupsState {
    /// Whether some group still needs the entry `id`: it is pending in a group, or a group
    /// has not been handed it yet (it lies beyond the group's last-delivered ID). Without
    /// groups nothing needs it.
    pub fn references(&self, id: StreamId) -> bool {
        self.groups
            .values()
            .any(|group| id > group.last_delivered || group.pel.get(id).is_some())
    }

    /// Removes `ids` from the pending list of every group, as entries whose log entries are
    /// gone (`Dropped`), also when an ID no longer names a log entry. Returns how many
    /// references went, over all groups.
    pub fn drop_references(&mut self, ids: &[StreamId]) -> Applied<usize> {
        let plans: Vec<(Vec<u8>, Vec<StreamId>)> = self
            .groups
            .iter()
            .map(|(name, group)| (name.clone(), group.pending_among(ids, None)))
            .filter(|(_, pending)| !pending.is_empty())
            .collect();
        let mut recorder = Recorder::new(self);
        for (group, pending) in &plans {
            recorder.emit_batches(pending, |ids| GroupEvent::Dropped {
                group: group.clone(),
                ids,
            });
        }
        recorder.finish(plans.iter().map(|(_, pending)| pending.len()).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::test_log::Fixture;

    fn id(ms: u64) -> StreamId {
        StreamId::new(ms, 0)
    }

    #[test]
    fn an_entry_is_referenced_until_every_group_read_and_acknowledged_it() {
        let mut fx = Fixture::with_group(4);
        let created = fx.state.create_group(b"h", id(2), None);
        fx.record(created.unwrap());
        // `g` has read nothing; `h` is past 1 and 2.
        assert!((1..=4).all(|ms| fx.state.references(id(ms))));
        assert_eq!(fx.read(b"c", 2, 1), [1, 2]);
        // `g` holds 1 and 2 pending: still referenced.
        assert!(fx.state.references(id(1)));
        assert_eq!(fx.ack(&[1]), 1);
        assert!(!fx.state.references(id(1)));
        assert!(fx.state.references(id(2)));
        assert!(fx.state.references(id(3)), "neither group read 3");
        let destroyed = fx.state.destroy_group(b"g");
        assert!(fx.record(destroyed));
        assert!(!fx.state.references(id(2)), "only `h` is left, past 2");
        assert!(!GroupsState::new().references(id(1)));
    }

    #[test]
    fn dropping_references_empties_every_group_of_those_ids() {
        let mut fx = Fixture::with_group(5);
        let created = fx.state.create_group(b"h", StreamId::MIN, None);
        fx.record(created.unwrap());
        assert_eq!(fx.read(b"c", 3, 1), [1, 2, 3]);
        let read = fx
            .state
            .read_new(&fx.log, b"h", b"d", ReadNew::count(2), 1)
            .unwrap();
        fx.record(read);
        let applied = fx.state.drop_references(&[id(2), id(3), id(2), id(9)]);
        assert_eq!(fx.record(applied), 3, "2 in both groups, 3 in `g` only");
        assert_eq!(
            fx.pending()
                .iter()
                .map(|(ms, _, _)| *ms)
                .collect::<Vec<_>>(),
            [1]
        );
        let summary = fx.state.pending_summary(b"h").unwrap();
        assert_eq!(summary.count, 1);
        let applied = fx.state.drop_references(&[id(4)]);
        assert_eq!(fx.record(applied), 0);
        fx.check_rebuilds();
    }
}
