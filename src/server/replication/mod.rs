//! queue-server as a node of a replicated cluster: client commands that change data are
//! proposed to the Raft log (openraft, in [`crate::cluster`]) and answered once a majority holds
//! them durably and this node applied them; every node applies the same commands in the same
//! order, with the leader's time.

mod apply;
mod batcher;
mod membership;
mod node;
mod proposal;
mod read_barrier;
mod rebalance;

pub(crate) use crate::cluster::membership::{Added, MembershipError};
pub use apply::{ApplyError, ServerState};
pub(crate) use batcher::Awaited;
pub(crate) use node::ProposeError;
pub use node::{RAFT_DIR, Replication, StartError};
pub(crate) use proposal::Proposal;
