//! Evening out the shards' leaders over the nodes. Each shard has a preferred leader: the
//! first shard's voters in id order, shard `k` the `k mod n`-th. A node that leads a shard
//! preferring another node hands it over once that node is reachable and caught up:
//! `CLUSTER REBALANCE` does so at once for every shard the node leads; a few seconds after a
//! node starts it does so too (which spreads a new cluster's leaders), then every
//! `--cluster-rebalance-interval` seconds for one shard.
//!
//! openraft 0.9 cannot hand leadership over, so a move is two steps (see
//! `LeadershipStep`): the shard's other voters, this leader included, start no election for a
//! few seconds, then the preferred voter starts one. This leader grants it (its log is as long)
//! and steps down; the others grant it once they stop hearing from this leader. The shard has
//! no leader while the election runs: a few milliseconds on three voters, up to an election
//! timeout with more (until the other voters' leases on this leader run out).

use std::time::{Duration, Instant};

use crate::cluster::membership::{MembershipError, matched_by};
use crate::cluster::network::{LeadershipAnswer, LeadershipStep};
use crate::cluster::types::NodeId;

use super::node::Replication;

/// How long the other voters start no election while the preferred one campaigns: long enough
/// for the old leader's followers' leases (the longest election timeout) to run out and one
/// election to end. The pause is lifted when the move ends; it runs out on its own only if this
/// leader dies part-way.
const ELECTION_PAUSE: Duration = Duration::from_millis(1500);
/// How long a move may take before it counts as failed: the longest election timeout (the
/// other voters' leases on this leader), and room for the election itself.
const MOVE_WAIT: Duration = Duration::from_millis(1500);
/// How far (in entries) the preferred node's log may trail this leader's for a move to start.
const CAUGHT_UP_LAG: u64 = 16;
/// How long this leader holds its proposals back, at most, for the preferred node to hold its
/// whole log: a round trip or two, with the batches in flight.
const CATCH_UP_WAIT: Duration = Duration::from_millis(500);

impl Replication {
    /// The node each shard should be led by, if its voters include it.
    pub(crate) fn preferred_leaders(&self) -> Vec<Option<NodeId>> {
        let voters: Vec<NodeId> = {
            let metrics = self.group(0).raft.metrics();
            let metrics = metrics.borrow();
            metrics.membership_config.membership().voter_ids().collect()
        };
        (0..self.shard_count())
            .map(|shard| {
                let preferred = *voters.get(shard % voters.len().max(1))?;
                let metrics = self.group(shard).raft.metrics();
                let metrics = metrics.borrow();
                let membership = metrics.membership_config.membership();
                membership
                    .voter_ids()
                    .any(|voter| voter == preferred)
                    .then_some(preferred)
            })
            .collect()
    }

    /// Hands the leadership of the shards this node leads over to their preferred leaders, at
    /// most `limit` of them; answers how many moved, and why the others did not.
    pub(crate) async fn rebalance_led(&self, limit: usize) -> (usize, Vec<String>) {
        let mut moved = 0;
        let mut failures = Vec::new();
        for (shard, preferred) in self.preferred_leaders().into_iter().enumerate() {
            if moved >= limit {
                break;
            }
            let Some(preferred) = preferred.filter(|node| *node != self.node_id()) else {
                continue;
            };
            if !self.leads(shard) {
                continue;
            }
            match self.hand_over(shard, preferred).await {
                Ok(()) => moved += 1,
                Err(reason) => failures.push(format!("shard {shard}: {reason}")),
            }
        }
        (moved, failures)
    }

    /// Moves shard `shard`'s leadership from this node to node `to`. The other voters' pause is
    /// lifted as soon as the move ends, done or failed (`to` lost or cut off part-way): should
    /// the shard lose its leader next, it waits one election for a new one, not the pause.
    async fn hand_over(&self, shard: usize, to: NodeId) -> Result<(), String> {
        let voters = self.caught_up_voters(shard, to)?;
        // A voter grants its vote only to a candidate whose log is at least as long as its own:
        // this leader's log stops growing until `to` holds all of it. The proposals held back
        // meanwhile are written once the move ends: by this node if it still leads, else
        // answered with the new leader.
        let _held = HeldProposals::new(self, shard);
        self.wait_holds_whole_log(shard, to).await?;
        self.pause_elections(shard, &voters, to, ELECTION_PAUSE)
            .await;
        let moved = self.campaign(shard, to).await;
        self.pause_elections(shard, &voters, to, Duration::ZERO)
            .await;
        moved
    }

    /// Waits until node `to` holds every entry of this leader's log, for at most
    /// [`CATCH_UP_WAIT`].
    async fn wait_holds_whole_log(&self, shard: usize, to: NodeId) -> Result<(), String> {
        let deadline = Instant::now() + CATCH_UP_WAIT;
        // A batch handed to Raft just before the hold is added to the log after it: the log is
        // complete only once every such batch is answered.
        if !self.settle_proposals(shard, CATCH_UP_WAIT).await {
            return Err(format!(
                "the batches in flight were not answered within {CATCH_UP_WAIT:?}"
            ));
        }
        self.members(shard)
            .wait_caught_up(to, 0, 0, deadline)
            .await
            .map_err(|error| match error {
                MembershipError::CatchingUp { matched, last, .. } => format!(
                    "node {to} did not catch up within {CATCH_UP_WAIT:?} (its log is at {matched}, the leader's at {last})"
                ),
                error => error.to_string(),
            })
    }

    /// Holds back (or, with a zero `pause`, lets again) the elections of the shard's voters
    /// other than `to`.
    async fn pause_elections(&self, shard: usize, voters: &[NodeId], to: NodeId, pause: Duration) {
        for voter in voters.iter().filter(|voter| **voter != to) {
            let step = LeadershipStep::PauseElections(pause);
            // A voter that cannot be reached cannot campaign against the move either.
            if let Err(reason) = self.leadership_step(shard, *voter, step).await {
                tracing::debug!(shard, voter, %reason, "could not pause a voter's elections");
            }
        }
    }

    /// Asks `to` to start an election in the shard, and waits until it leads.
    async fn campaign(&self, shard: usize, to: NodeId) -> Result<(), String> {
        self.leadership_step(shard, to, LeadershipStep::Campaign)
            .await?;
        let deadline = Instant::now() + MOVE_WAIT;
        let mut metrics = self.group(shard).raft.metrics();
        loop {
            if metrics.borrow_and_update().current_leader == Some(to) {
                tracing::info!(shard, to, "handed the shard's leadership over");
                return Ok(());
            }
            let changed = tokio::time::timeout_at(deadline.into(), metrics.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                return Err(format!(
                    "node {to} did not take the lead within {MOVE_WAIT:?}"
                ));
            }
        }
    }

    /// The shard's voters, once this node (its leader) knows that `to` is one of them and holds
    /// the log to within a few entries of its end.
    fn caught_up_voters(&self, shard: usize, to: NodeId) -> Result<Vec<NodeId>, String> {
        let metrics = self.group(shard).raft.metrics().borrow().clone();
        if metrics.current_leader != Some(self.node_id()) {
            return Err("this node does not lead it any more".into());
        }
        let last = metrics.last_log_index.unwrap_or(0);
        let matched = matched_by(&metrics, to);
        if matched + CAUGHT_UP_LAG < last {
            return Err(format!(
                "node {to} is not caught up (its log is at {matched}, the leader's at {last})"
            ));
        }
        Ok(metrics.membership_config.membership().voter_ids().collect())
    }

    /// Asks node `voter` (this node included) to take `step` in shard `shard`.
    async fn leadership_step(
        &self,
        shard: usize,
        voter: NodeId,
        step: LeadershipStep,
    ) -> Result<(), String> {
        let addr = self
            .node_addr(voter)
            .ok_or_else(|| format!("node {voter} has no known address"))?;
        let mut connection = self.group(shard).network.connection(voter, &addr.bus);
        match connection.leadership(step).await {
            Ok(LeadershipAnswer::Done) => Ok(()),
            Ok(LeadershipAnswer::Failed(reason)) => Err(format!("node {voter}: {reason}")),
            Err(error) => Err(format!("node {voter} did not answer: {error}")),
        }
    }
}

/// A shard's proposals held back for as long as it lives: let through again when the move
/// ends, and also when it is dropped part-way (the `CLUSTER REBALANCE` that runs it abandoned
/// with its connection), which would otherwise leave the shard taking no writes.
struct HeldProposals<'a> {
    replication: &'a Replication,
    shard: usize,
}

impl<'a> HeldProposals<'a> {
    fn new(replication: &'a Replication, shard: usize) -> HeldProposals<'a> {
        replication.hold_proposals(shard, true);
        HeldProposals { replication, shard }
    }
}

impl Drop for HeldProposals<'_> {
    fn drop(&mut self) {
        self.replication.hold_proposals(self.shard, false);
    }
}

/// How long after the node starts it first hands over every shard it leads that prefers
/// another node: enough for the shards to elect their first leaders and the other nodes to
/// start, so that a new cluster's leaders spread at once.
const FIRST_REBALANCE: Duration = Duration::from_secs(3);

/// [`FIRST_REBALANCE`] after the node starts, hands over every shard it leads that prefers
/// another node; then every `interval`, one such shard. Ends with the node.
pub(super) async fn rebalance_every(replication: std::sync::Weak<Replication>, interval: Duration) {
    tokio::time::sleep(FIRST_REBALANCE).await;
    let mut limit = usize::MAX;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        let Some(replication) = replication.upgrade() else {
            return;
        };
        let (_, failures) = replication.rebalance_led(limit).await;
        for failure in failures {
            tracing::debug!(%failure, "a shard's leadership was not handed over");
        }
        drop(replication);
        limit = 1;
        ticks.tick().await;
    }
}
