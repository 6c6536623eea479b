//! The consumer table of one group. Pending entries name their owner by a small integer index
//! into this table, so an entry costs the same whatever the length of its consumer's name.

use std::collections::BTreeMap;

/// Index of a consumer in its group's table. Indexes of deleted consumers are reused.
pub(crate) type ConsumerId = u32;

/// Most consumers a group can hold: a pending entry packs its owner's index into 30 bits
/// (a billion consumers would need well over 100 GB of memory for their names and state alone).
pub(crate) const MAX_CONSUMERS: usize = 1 << 30;

/// One consumer of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Consumer {
    pub(crate) name: Vec<u8>,
    /// Last interaction of any kind (Redis's `seen-time`).
    pub(crate) seen_ms: u64,
    /// Last time it was handed entries (Redis's `active-time`); `None` until then.
    pub(crate) active_ms: Option<u64>,
    /// How many pending entries it owns (the entries themselves are in the group's PEL).
    pub(crate) pending: usize,
}

/// Consumers by name and by index.
#[derive(Clone, Debug, Default)]
pub(crate) struct Consumers {
    ids: BTreeMap<Vec<u8>, ConsumerId>,
    slots: Vec<Option<Consumer>>,
    free: Vec<ConsumerId>,
}

impl Consumers {
    /// Bytes of the consumers' elements: names (kept twice), slots and free list.
    pub(crate) fn heap_bytes(&self) -> usize {
        let names: usize = self.ids.keys().map(|name| 2 * name.len()).sum();
        names
            + self.ids.len() * std::mem::size_of::<(Vec<u8>, ConsumerId)>()
            + self.slots.capacity() * std::mem::size_of::<Option<Consumer>>()
            + self.free.capacity() * std::mem::size_of::<ConsumerId>()
    }

    pub(crate) fn id(&self, name: &[u8]) -> Option<ConsumerId> {
        self.ids.get(name).copied()
    }

    pub(crate) fn get(&self, id: ConsumerId) -> Option<&Consumer> {
        self.slots.get(id as usize)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: ConsumerId) -> Option<&mut Consumer> {
        self.slots.get_mut(id as usize)?.as_mut()
    }

    pub(crate) fn by_name(&self, name: &[u8]) -> Option<&Consumer> {
        self.get(self.id(name)?)
    }

    /// The name of consumer `id`, empty if there is none (never the case for a PEL owner).
    pub(crate) fn name(&self, id: ConsumerId) -> &[u8] {
        self.get(id).map_or(&[], |consumer| &consumer.name)
    }

    /// Whether a new consumer would find no index left.
    pub(crate) fn is_full(&self) -> bool {
        self.free.is_empty() && self.slots.len() >= MAX_CONSUMERS
    }

    /// The index of consumer `name`, created (seen at `seen_ms`, never active) if missing;
    /// `None` only when the table is full.
    pub(crate) fn ensure(&mut self, name: &[u8], seen_ms: u64) -> Option<ConsumerId> {
        if let Some(id) = self.id(name) {
            return Some(id);
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None if self.slots.len() >= MAX_CONSUMERS => return None,
            None => {
                let id = ConsumerId::try_from(self.slots.len()).ok()?;
                self.slots.push(None);
                id
            }
        };
        let slot = self.slots.get_mut(id as usize)?;
        *slot = Some(Consumer {
            name: name.to_vec(),
            seen_ms,
            active_ms: None,
            pending: 0,
        });
        self.ids.insert(name.to_vec(), id);
        Some(id)
    }

    /// Removes consumer `name`, returning it.
    pub(crate) fn remove(&mut self, name: &[u8]) -> Option<Consumer> {
        let id = self.ids.remove(name)?;
        let consumer = self.slots.get_mut(id as usize)?.take();
        self.free.push(id);
        consumer
    }

    /// Consumers in name order (the order Redis lists them in).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Consumer> {
        self.iter_with_ids().map(|(_, consumer)| consumer)
    }

    /// Consumers in name order, with their indexes.
    pub(crate) fn iter_with_ids(&self) -> impl Iterator<Item = (ConsumerId, &Consumer)> {
        self.ids
            .values()
            .filter_map(|&id| Some((id, self.get(id)?)))
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Same consumers, compared by name: indexes depend on the history of deletions, which a
    /// snapshot does not reproduce.
    pub(crate) fn same_as(&self, other: &Consumers) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_of_deleted_consumers_are_reused() {
        let mut consumers = Consumers::default();
        assert_eq!(consumers.ensure(b"a", 1), Some(0));
        assert_eq!(consumers.ensure(b"b", 2), Some(1));
        assert_eq!(consumers.ensure(b"a", 9), Some(0));
        assert_eq!(consumers.by_name(b"a").map(|c| c.seen_ms), Some(1));
        assert_eq!(consumers.remove(b"a").map(|c| c.name), Some(b"a".to_vec()));
        assert_eq!(consumers.remove(b"a"), None);
        assert_eq!(consumers.get(0), None);
        assert_eq!(consumers.name(0), b"");
        assert_eq!(consumers.ensure(b"c", 3), Some(0));
        assert_eq!(consumers.name(0), b"c");
        assert_eq!(consumers.len(), 2);
        assert!(!consumers.is_full());
    }

    #[test]
    fn iteration_and_comparison_go_by_name() {
        let mut first = Consumers::default();
        first.ensure(b"zed", 1);
        first.ensure(b"amy", 2);
        let mut second = Consumers::default();
        second.ensure(b"amy", 2);
        second.ensure(b"zed", 1);
        let names: Vec<&[u8]> = first.iter().map(|c| c.name.as_slice()).collect();
        assert_eq!(names, [b"amy".as_slice(), b"zed"]);
        assert!(first.same_as(&second));
        if let Some(zed) = second.get_mut(1) {
            zed.active_ms = Some(5);
        }
        assert!(!first.same_as(&second));
    }
}
