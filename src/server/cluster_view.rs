//! What a node knows of its cluster, as the Redis Cluster commands report it: the nodes, where
//! clients reach them, and which one leads the slots.
//!
//! The slots are cut into shards (one by default), each a Raft group led by one of its voters;
//! in this release every node is a voter of every shard.

/// A node as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ViewNode {
    /// The node's id in the cluster (`--node-id`).
    pub(crate) id: u64,
    /// The address clients connect to, as the node announces it.
    pub(crate) client_ip: String,
    /// The client (RESP) port.
    pub(crate) client_port: u16,
    /// The cluster bus port.
    pub(crate) bus_port: u16,
    /// Whether the leader (or, on a follower, this node) hears from the node now.
    pub(crate) connected: bool,
}

/// A set of slots replicated by one Raft group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ViewShard {
    /// Inclusive slot ranges, ascending.
    pub(crate) slots: Vec<(u16, u16)>,
    /// The group's members' ids, ascending.
    pub(crate) members: Vec<u64>,
    /// The member that leads the group now, if one is known.
    pub(crate) leader: Option<u64>,
    /// The last log index the group applied on this node (`replication offset`).
    pub(crate) applied_index: u64,
}

/// A node's view of the cluster at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterView {
    /// This node's id.
    pub(crate) myself: u64,
    /// The Raft term this node is in, in the first shard (`cluster_current_epoch`).
    pub(crate) term: u64,
    /// Every node of the cluster, by ascending id.
    pub(crate) nodes: Vec<ViewNode>,
    /// The shards, by ascending first slot.
    pub(crate) shards: Vec<ViewShard>,
}

impl ClusterView {
    /// The node with this id.
    pub(crate) fn node(&self, id: u64) -> Option<&ViewNode> {
        self.nodes.iter().find(|node| node.id == id)
    }

    /// The shard that holds `slot`.
    pub(crate) fn shard_of(&self, slot: u16) -> Option<&ViewShard> {
        self.shards.iter().find(|shard| {
            shard
                .slots
                .iter()
                .any(|(first, last)| (*first..=*last).contains(&slot))
        })
    }
}
