//! Changing which nodes replicate a Raft group's log, on its leader, through openraft's
//! membership changes:
//! a new node joins as a learner, catches up from the log, and only then becomes a voter through
//! a joint configuration, so the quorum never counts a node that holds nothing; a removed node
//! leaves through a joint configuration too. Each change is an entry of the log, durable on a
//! majority of the old and of the new voters before it takes effect.

use std::collections::BTreeSet;
use std::time::Instant;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, Raft, RaftMetrics};

use super::types::{NodeAddr, NodeId, TypeConfig};

/// How far (in entries) a learner's log may trail the leader's for it to count as caught up: a
/// few batches, which it receives in the time a membership change takes to commit. An entry
/// carries up to a batch of commands (hundreds under load), so this is entries, not commands.
const CAUGHT_UP_LAG: u64 = 16;

/// Why a membership change was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// Only the leader changes the membership.
    #[error("this node does not lead the cluster: run the command on the leader")]
    NotLeader(Option<NodeId>),
    /// The id is already a voter at another address.
    #[error(
        "node {id} is already a member at {addr}: a node's id is never reused, give the new node a new --node-id"
    )]
    IdInUse {
        /// The id asked for.
        id: NodeId,
        /// Where the member with that id is.
        addr: String,
    },
    /// Another member listens on the address.
    #[error(
        "node {other} is a member at {addr}: remove it first (CLUSTER REMOVENODE {other}) or give the new node another address"
    )]
    AddressInUse {
        /// The member that has the address.
        other: NodeId,
        /// The address.
        addr: String,
    },
    /// The learner did not catch up before the deadline; it stays a learner and keeps
    /// receiving the log.
    #[error(
        "node {id} is still catching up (its log is at index {matched}, the leader's at {last}); it stays a learner and keeps receiving the log: run CLUSTER ADDNODE again to make it a voter"
    )]
    CatchingUp {
        /// The learner.
        id: NodeId,
        /// The last index its log holds, as the leader knows it.
        matched: u64,
        /// The leader's last index.
        last: u64,
    },
    /// No member has the id.
    #[error("no node {0} in the cluster")]
    UnknownNode(NodeId),
    /// The change would leave no voter.
    #[error("node {0} is the last voter: a cluster cannot remove its last voter")]
    LastVoter(NodeId),
    /// openraft refused the change or could not make it.
    #[error("the membership change failed: {0}")]
    Raft(String),
    /// The leader of another shard, asked over the bus, refused the change: its reason.
    #[error("{0}")]
    Remote(String),
}

/// How an added node ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// It was made a voter by this call.
    Voter,
    /// It already was a voter at that address: nothing changed.
    AlreadyVoter,
}

/// A Raft group as the node `this` runs it, for changing its membership there.
#[derive(Clone, Copy)]
pub struct Members<'r> {
    /// The group's Raft on this node.
    pub raft: &'r Raft<TypeConfig>,
    /// This node's id.
    pub this: NodeId,
}

impl Members<'_> {
    fn node_id(&self) -> NodeId {
        self.this
    }

    fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Adds node `id`, reached at `addr`, to the group: as a learner, then (once its log is
    /// within a few batches of the leader's, before `deadline`) as a voter.
    pub async fn add_node(
        &self,
        id: NodeId,
        addr: NodeAddr,
        deadline: Instant,
    ) -> Result<Added, MembershipError> {
        self.check_leads()?;
        if self.check_addable(id, &addr)? {
            return Ok(Added::AlreadyVoter);
        }
        let added = self
            .raft
            .add_learner(id, addr, false)
            .await
            .map_err(refused)?;
        self.wait_caught_up(id, added.log_id.index, CAUGHT_UP_LAG, deadline)
            .await?;
        let voters = BTreeSet::from([id]);
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(voters), false)
            .await
            .map_err(refused)?;
        Ok(Added::Voter)
    }

    /// Removes node `id` from the cluster: a voter through a joint configuration, a learner at
    /// once. A leader that removes itself leads until the change is committed, then steps down.
    pub async fn remove_node(&self, id: NodeId) -> Result<(), MembershipError> {
        self.check_leads()?;
        let (is_voter, voters) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            if membership.get_node(&id).is_none() {
                return Err(MembershipError::UnknownNode(id));
            }
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            (voters.contains(&id), voters)
        };
        let ids = BTreeSet::from([id]);
        let change = if !is_voter {
            ChangeMembers::RemoveNodes(ids)
        } else if voters.len() == 1 {
            return Err(MembershipError::LastVoter(id));
        } else {
            ChangeMembers::RemoveVoters(ids)
        };
        self.raft
            .change_membership(change, false)
            .await
            .map_err(refused)?;
        Ok(())
    }

    fn check_leads(&self) -> Result<(), MembershipError> {
        let leader = self.leader();
        if leader == Some(self.node_id()) {
            Ok(())
        } else {
            Err(MembershipError::NotLeader(leader))
        }
    }

    /// Whether `id` is already a voter at `addr` (nothing to do); an error if the id or the
    /// address belongs to another member.
    fn check_addable(&self, id: NodeId, addr: &NodeAddr) -> Result<bool, MembershipError> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        if let Some(known) = membership.get_node(&id) {
            if known != addr {
                return Err(MembershipError::IdInUse {
                    id,
                    addr: known.to_string(),
                });
            }
            return Ok(membership.voter_ids().any(|voter| voter == id));
        }
        let taken = membership
            .nodes()
            .find(|(_, known)| known.client == addr.client || known.bus == addr.bus);
        match taken {
            Some((other, known)) => Err(MembershipError::AddressInUse {
                other: *other,
                addr: known.to_string(),
            }),
            None => Ok(false),
        }
    }

    /// Waits until this leader knows that node `id` holds the log up to `from` and to within
    /// `lag` entries of the leader's last, or `deadline`.
    pub async fn wait_caught_up(
        &self,
        id: NodeId,
        from: u64,
        lag: u64,
        deadline: Instant,
    ) -> Result<(), MembershipError> {
        let mut metrics = self.raft.metrics();
        loop {
            let (matched, last) = {
                let now = metrics.borrow_and_update();
                if now.current_leader != Some(self.node_id()) {
                    return Err(MembershipError::NotLeader(now.current_leader));
                }
                (matched_by(&now, id), now.last_log_index.unwrap_or(0))
            };
            if matched >= from && matched + lag >= last {
                return Ok(());
            }
            let changed = tokio::time::timeout_at(deadline.into(), metrics.changed()).await;
            match changed {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(MembershipError::Raft("the node is stopping".into())),
                Err(_) => return Err(MembershipError::CatchingUp { id, matched, last }),
            }
        }
    }
}

/// The last index of the leader's log that node `id` is known to hold (0: none known).
pub fn matched_by(metrics: &RaftMetrics<NodeId, NodeAddr>, id: NodeId) -> u64 {
    metrics
        .replication
        .as_ref()
        .and_then(|matched| matched.get(&id).copied().flatten())
        .map_or(0, |log| log.index)
}

/// openraft's refusal as a [`MembershipError`].
fn refused(error: RaftError<NodeId, ClientWriteError<NodeId, NodeAddr>>) -> MembershipError {
    if let Some(forward) = error.forward_to_leader::<NodeAddr>() {
        return MembershipError::NotLeader(forward.leader_id);
    }
    match error {
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(_),
        )) => MembershipError::Raft(
            "another membership change is in progress: run the command again once it is done"
                .into(),
        ),
        other => MembershipError::Raft(other.to_string()),
    }
}
