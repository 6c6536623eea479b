//! A [`ClusterView`] in Redis Cluster's terms: which node is a master (the leader of a shard),
//! which are its replicas, and which slots each master serves.
//!
//! A shard without a known leader has no master: its slots are unassigned, as Redis shows the
//! slots of no node, and its members are replicas of no master. A node that does not answer
//! (`connected` false, never this node itself) is what Redis calls `PFAIL`: this node cannot
//! reach it, nobody has declared it failed.

use super::keyslot::SLOTS;
use crate::server::cluster_view::{ClusterView, ViewNode};

/// A node's part, as `CLUSTER NODES` flags it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// It leads a shard, or belongs to none (Redis's master without slots).
    Master,
    /// It follows the leader of its shard, if the shard has one.
    Replica { master: Option<u64> },
}

/// Consecutive slots served by one master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SlotRun {
    pub(super) first: u16,
    pub(super) last: u16,
    pub(super) master: u64,
}

impl SlotRun {
    fn len(self) -> usize {
        usize::from(self.last - self.first) + 1
    }
}

/// The node's role: master of the first shard it leads, else replica in the first shard it
/// belongs to.
pub(super) fn role(view: &ClusterView, id: u64) -> Role {
    if view.shards.iter().any(|shard| shard.leader == Some(id)) {
        return Role::Master;
    }
    match view.shards.iter().find(|shard| shard.members.contains(&id)) {
        Some(shard) => Role::Replica {
            master: shard.leader,
        },
        None => Role::Master,
    }
}

/// The replicas of `master`, in the view's order.
pub(super) fn replicas_of(view: &ClusterView, master: u64) -> Vec<&ViewNode> {
    view.nodes
        .iter()
        .filter(|node| {
            node.id != master
                && role(view, node.id)
                    == Role::Replica {
                        master: Some(master),
                    }
        })
        .collect()
}

/// The served slots in ascending order, in runs that change where the master changes (Redis
/// merges adjacent ranges of one master into one run).
pub(super) fn slot_runs(view: &ClusterView) -> Vec<SlotRun> {
    let mut masters: Vec<Option<u64>> = vec![None; usize::from(SLOTS)];
    for shard in &view.shards {
        let Some(leader) = shard.leader else {
            continue;
        };
        for &(first, last) in &shard.slots {
            for slot in first..=last.min(SLOTS - 1) {
                masters[usize::from(slot)] = Some(leader);
            }
        }
    }
    let mut runs: Vec<SlotRun> = Vec::new();
    for (slot, master) in (0..SLOTS).zip(masters) {
        let Some(master) = master else {
            continue;
        };
        match runs.last_mut() {
            Some(run) if run.master == master && run.last + 1 == slot => run.last = slot,
            _ => runs.push(SlotRun {
                first: slot,
                last: slot,
                master,
            }),
        }
    }
    runs
}

/// The runs `master` serves.
pub(super) fn runs_of(runs: &[SlotRun], master: u64) -> impl Iterator<Item = SlotRun> + '_ {
    runs.iter().copied().filter(move |run| run.master == master)
}

/// Whether this node hears from `node` (it always hears from itself).
pub(super) fn reachable(view: &ClusterView, node: &ViewNode) -> bool {
    node.connected || node.id == view.myself
}

/// The number of slots in `runs`.
pub(super) fn slot_count(runs: impl IntoIterator<Item = SlotRun>) -> usize {
    runs.into_iter().map(SlotRun::len).sum()
}

/// Whether every slot has a leader, counted from the shards' ranges (which never overlap)
/// rather than slot by slot: the check every keyed command makes.
pub(super) fn every_slot_led(view: &ClusterView) -> bool {
    let led: usize = view
        .shards
        .iter()
        .filter(|shard| shard.leader.is_some())
        .flat_map(|shard| &shard.slots)
        .map(|&(first, last)| {
            usize::from(last.min(SLOTS - 1)).saturating_sub(usize::from(first)) + 1
        })
        .sum();
    led == usize::from(SLOTS)
}

/// Whether every slot is served: Redis's `cluster_state:ok` (with full coverage required, its
/// default), and the condition for serving keys at all.
pub(super) fn every_slot_served(runs: &[SlotRun]) -> bool {
    slot_count(runs.iter().copied()) == usize::from(SLOTS)
}

#[cfg(test)]
pub(super) mod fixtures {
    //! Views the tests of this module share.

    use crate::server::cluster_view::{ClusterView, ViewNode, ViewShard};

    pub(crate) fn node(id: u64, connected: bool) -> ViewNode {
        ViewNode {
            id,
            client_ip: "127.0.0.1".into(),
            client_port: 7000 + id as u16,
            bus_port: 17000 + id as u16,
            connected,
        }
    }

    /// Three nodes seen from `myself`: node 1 leads all slots, node 3 does not answer.
    pub(crate) fn three_nodes(myself: u64, leader: Option<u64>) -> ClusterView {
        ClusterView {
            myself,
            term: 5,
            nodes: vec![node(1, true), node(2, true), node(3, false)],
            shards: vec![ViewShard {
                slots: vec![(0, 16383)],
                members: vec![1, 2, 3],
                leader,
                applied_index: 42,
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::three_nodes;
    use super::*;
    use crate::server::cluster_view::ViewShard;

    #[test]
    fn the_leader_is_master_and_the_others_its_replicas() {
        let view = three_nodes(2, Some(1));
        assert_eq!(role(&view, 1), Role::Master);
        assert_eq!(role(&view, 2), Role::Replica { master: Some(1) });
        let replicas: Vec<u64> = replicas_of(&view, 1).iter().map(|node| node.id).collect();
        assert_eq!(replicas, [2, 3]);
        assert_eq!(
            slot_runs(&view),
            [SlotRun {
                first: 0,
                last: 16383,
                master: 1
            }]
        );
        assert!(every_slot_served(&slot_runs(&view)));
    }

    #[test]
    fn without_a_leader_no_slot_is_served() {
        let view = three_nodes(2, None);
        assert_eq!(role(&view, 1), Role::Replica { master: None });
        assert!(slot_runs(&view).is_empty());
        assert!(!every_slot_served(&slot_runs(&view)));
        assert!(replicas_of(&view, 1).is_empty());
    }

    #[test]
    fn adjacent_ranges_of_one_master_form_one_run() {
        let mut view = three_nodes(1, Some(1));
        view.shards = vec![
            ViewShard {
                slots: vec![(0, 99), (100, 199), (300, 300)],
                members: vec![1],
                leader: Some(1),
                applied_index: 0,
            },
            ViewShard {
                slots: vec![(200, 299)],
                members: vec![2],
                leader: Some(2),
                applied_index: 0,
            },
        ];
        let runs = slot_runs(&view);
        let ranges: Vec<(u16, u16, u64)> = runs
            .iter()
            .map(|run| (run.first, run.last, run.master))
            .collect();
        assert_eq!(ranges, [(0, 199, 1), (200, 299, 2), (300, 300, 1)]);
        assert_eq!(slot_count(runs_of(&runs, 1)), 201);
        assert!(!every_slot_served(&runs));
    }
}
