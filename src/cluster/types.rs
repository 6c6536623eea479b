//! openraft's type configuration for weir: what a node is, what an entry carries, what the
//! state machine answers and how a snapshot travels.
//!
//! Only this module and its siblings under `cluster` name openraft's types; the rest of the
//! crate sees [`Command`], [`NodeAddr`] and plain bytes.

use std::any::Any;
use std::fmt;

use bytes::Bytes;

/// A node's identity in the cluster: chosen by the operator, never reused.
pub type NodeId = u64;

/// Where a node is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeAddr {
    /// The address clients connect to (the RESP port).
    pub client: String,
    /// The address the other nodes of the cluster connect to.
    pub bus: String,
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {}, bus {}", self.client, self.bus)
    }
}

/// One client command, as the leader accepted it: the body is an opaque encoding of the command,
/// and the leader's clock reading travels with it so that every node applies it with the same
/// time (IDs and delivery times derive from it), whatever its own clock says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    /// The leader's clock when it accepted the command, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The command, encoded by the layer that issues it.
    pub body: Bytes,
}

/// What applying a command answers. It goes back, in the same process, to whoever proposed
/// the command on the leader, and never crosses the network, so it is whatever value the
/// state's apply made (the server's reply to its client, say), or nothing.
#[derive(Default)]
pub struct Reply(Option<Box<dyn Any + Send + Sync>>);

impl Reply {
    /// A reply holding `answer`.
    pub fn new(answer: impl Any + Send + Sync) -> Reply {
        Reply(Some(Box::new(answer)))
    }

    /// The reply to an entry that answers nothing (a blank or membership entry, or a command
    /// applied before a restart, whose client was answered then).
    pub fn empty() -> Reply {
        Reply(None)
    }

    /// The answer, if it is a `T`.
    pub fn into_answer<T: Any>(self) -> Option<T> {
        self.0?.downcast::<T>().ok().map(|answer| *answer)
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Reply(..)"
        } else {
            "Reply(empty)"
        })
    }
}

openraft::declare_raft_types!(
    /// weir's Raft types.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = NodeId,
        Node = NodeAddr,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = super::state_machine::SnapshotData,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A Raft log entry of weir.
pub type Entry = openraft::Entry<TypeConfig>;
/// What an entry carries: nothing (a new leader's first entry), a command, or a membership.
pub type EntryPayload = openraft::EntryPayload<TypeConfig>;
/// The position of an entry: its index and the term and node of the leader that wrote it.
pub type LogId = openraft::LogId<NodeId>;
/// A node's vote: the term and the candidate it granted, and whether that leader is committed.
pub type Vote = openraft::Vote<NodeId>;
/// A cluster membership.
pub type Membership = openraft::Membership<NodeId, NodeAddr>;
/// A membership with the position of the entry that carried it.
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeAddr>;
/// What storage reports to openraft when it fails.
pub type StorageError = openraft::StorageError<NodeId>;
