//! Adding and removing a node, shard by shard. The leader of the first shard runs
//! `CLUSTER ADDNODE` and `CLUSTER REMOVENODE`; each shard's group changes its own membership on
//! its own leader (a learner first, promoted once caught up; joint consensus throughout), this
//! node's own groups here and the others' over the bus, one shard after the other, waiting for
//! each change to be committed. An added node joins the first shard first, and a removed one
//! leaves it last, so that the first shard's membership always names every node that belongs to
//! any shard. A change cut short (a leader lost mid-way, a deadline) leaves some shards changed
//! and others not: running the command again finishes it, since each step that is already done
//! is skipped.

use std::time::{Duration, Instant};

use crate::cluster::membership::{Added, Members, MembershipError};
use crate::cluster::network::{MembershipAnswer, MembershipChange};
use crate::cluster::types::{NodeAddr, NodeId};

use super::node::Replication;

/// How long a shard may go without a leader that takes the change before the command gives up.
const SHARD_LEADER_WAIT: Duration = Duration::from_secs(10);
/// The pause between two attempts to reach a shard's leader.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

impl Replication {
    /// Adds node `id`, reached at `addr`, to every shard: as a learner, then (once its log is
    /// within a few batches of the leader's, before `deadline`) as a voter. Runs on the leader
    /// of the first shard.
    pub(crate) async fn add_node(
        &self,
        id: NodeId,
        addr: NodeAddr,
        deadline: Instant,
    ) -> Result<Added, MembershipError> {
        let mut outcome = self.members(0).add_node(id, addr.clone(), deadline).await?;
        for shard in 1..self.shard_count() {
            let catch_up = deadline.saturating_duration_since(Instant::now());
            let change = MembershipChange::Add {
                id,
                addr: addr.clone(),
                catch_up,
            };
            if let MembershipAnswer::Added(Added::Voter) = self.change(shard, change).await? {
                outcome = Added::Voter;
            }
        }
        Ok(outcome)
    }

    /// Removes node `id` from every shard, the first shard last. Runs on the leader of the
    /// first shard.
    pub(crate) async fn remove_node(&self, id: NodeId) -> Result<(), MembershipError> {
        if !self.leads(0) {
            return Err(MembershipError::NotLeader(self.leader(0)));
        }
        for shard in 1..self.shard_count() {
            match self.change(shard, MembershipChange::Remove { id }).await {
                Ok(_) | Err(MembershipError::UnknownNode(_)) => {}
                Err(error) => return Err(error),
            }
        }
        self.members(0).remove_node(id).await
    }

    pub(super) fn members(&self, shard: usize) -> Members<'_> {
        Members {
            raft: &self.group(shard).raft,
            this: self.node_id(),
        }
    }

    /// Makes `change` to shard `shard`'s group on its leader: here when this node leads it, else
    /// over the bus; retried while the shard has no leader or its leadership moves. A node that
    /// is not (yet) a member of the shard does not know its leader (the node just added to the
    /// first shard may be elected its leader before it joins the others): it asks the other
    /// nodes in turn, and one that knows the leader names it in its refusal.
    async fn change(
        &self,
        shard: usize,
        change: MembershipChange,
    ) -> Result<MembershipAnswer, MembershipError> {
        let give_up = Instant::now() + SHARD_LEADER_WAIT;
        let mut named: Option<NodeId> = None;
        let mut probes = self.other_nodes().into_iter().cycle();
        loop {
            let target = self
                .leader(shard)
                .or_else(|| named.take())
                .or_else(|| probes.next());
            let answer = match target {
                Some(leader) if leader == self.node_id() => {
                    Some(self.change_here(shard, change.clone()).await)
                }
                Some(leader) => self.change_there(shard, leader, change.clone()).await,
                None => None,
            };
            match answer {
                Some(MembershipAnswer::Refused(MembershipError::NotLeader(leader))) => {
                    named = leader.filter(|leader| Some(*leader) != target);
                }
                None => {}
                Some(MembershipAnswer::Refused(error)) => return Err(error),
                Some(done) => return Ok(done),
            }
            if Instant::now() >= give_up {
                return Err(MembershipError::Raft(format!(
                    "shard {shard} has had no leader that takes the change for {SHARD_LEADER_WAIT:?}; the shards before it are changed: run the command again"
                )));
            }
            if named.is_none() {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }

    /// The other nodes of the cluster, as the first shard's membership names them (it names
    /// every node of any shard), in id order.
    fn other_nodes(&self) -> Vec<NodeId> {
        let metrics = self.group(0).raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        membership
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| *id != self.node_id())
            .collect()
    }

    async fn change_here(&self, shard: usize, change: MembershipChange) -> MembershipAnswer {
        let members = self.members(shard);
        let answer = match change {
            MembershipChange::Add { id, addr, catch_up } => members
                .add_node(id, addr, Instant::now() + catch_up)
                .await
                .map(MembershipAnswer::Added),
            MembershipChange::Remove { id } => members
                .remove_node(id)
                .await
                .map(|()| MembershipAnswer::Removed),
        };
        answer.unwrap_or_else(MembershipAnswer::Refused)
    }

    /// Asks node `leader` to make `change` to shard `shard`; `None` when it could not be asked.
    async fn change_there(
        &self,
        shard: usize,
        leader: NodeId,
        change: MembershipChange,
    ) -> Option<MembershipAnswer> {
        let addr = self.node_addr(leader)?;
        let mut connection = self.group(shard).network.connection(leader, &addr.bus);
        match connection.change_membership(change).await {
            Ok(answer) => Some(answer),
            Err(error) => {
                tracing::debug!(shard, leader, %error, "could not reach the shard's leader");
                None
            }
        }
    }
}
