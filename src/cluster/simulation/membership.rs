//! Membership changes among the faults: the node that leads adds a node outside the membership
//! (as a learner, then a voter), or, once there are more voters than the cluster started with,
//! removes one (itself, maybe), each through openraft's joint consensus. A change runs in a task
//! of its own, bounded in time: one stuck behind a partition or a crash is left unfinished, as
//! an operator's command would be.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::{ChangeMembers, Raft};
use tokio::task::JoinHandle;

use super::cluster::{SimCluster, addr};
use super::events::EventLog;
use super::rng::SimRng;
use crate::cluster::types::{NodeId, TypeConfig};

/// How long a change may take before its task gives up waiting.
const CHANGE_WAIT: Duration = Duration::from_secs(10);

/// Starts a change on the node that believes it leads, if one does; `voters_at_start` is how
/// many voters the cluster formed with, the fewest it is left with.
pub(super) fn start_change(
    cluster: &SimCluster,
    rng: &mut SimRng,
    voters_at_start: usize,
) -> Option<JoinHandle<()>> {
    let (leader, raft) = cluster.believed_leader()?;
    let voters: Vec<NodeId> = raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    let events = cluster.events_handle();
    let committed = Arc::clone(&cluster.membership_changes);
    if voters.len() > voters_at_start {
        let removed = rng.pick(&voters);
        events.record(format_args!(
            "node {leader} starts removing voter {removed}"
        ));
        return Some(tokio::spawn(async move {
            let ids = BTreeSet::from([removed]);
            let changed = change(&raft, ChangeMembers::RemoveVoters(ids)).await;
            report(
                &events,
                &committed,
                &format!("removing voter {removed}"),
                changed,
            );
        }));
    }
    let outside: Vec<NodeId> = cluster
        .nodes
        .keys()
        .copied()
        .filter(|id| !voters.contains(id))
        .collect();
    if outside.is_empty() {
        return None;
    }
    let added = rng.pick(&outside);
    events.record(format_args!("node {leader} starts adding node {added}"));
    Some(tokio::spawn(async move {
        let learner =
            tokio::time::timeout(CHANGE_WAIT, raft.add_learner(added, addr(added), false));
        let changed = match learner.await {
            Ok(Ok(_)) => change(&raft, ChangeMembers::AddVoterIds(BTreeSet::from([added]))).await,
            Ok(Err(error)) => Err(format!("as a learner: {error}")),
            Err(_) => Err("as a learner: timed out".to_string()),
        };
        report(
            &events,
            &committed,
            &format!("adding node {added}"),
            changed,
        );
    }))
}

async fn change(
    raft: &Raft<TypeConfig>,
    members: ChangeMembers<NodeId, crate::cluster::types::NodeAddr>,
) -> Result<(), String> {
    match tokio::time::timeout(CHANGE_WAIT, raft.change_membership(members, false)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".to_string()),
    }
}

fn report(events: &EventLog, committed: &AtomicU64, what: &str, changed: Result<(), String>) {
    match changed {
        Ok(()) => {
            committed.fetch_add(1, Ordering::Relaxed);
            events.record(format_args!("membership change committed: {what}"));
        }
        Err(reason) => events.record(format_args!("membership change not made: {what}: {reason}")),
    }
}
