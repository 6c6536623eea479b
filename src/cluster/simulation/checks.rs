//! What must hold once the cluster has healed and applied everything: every node applied each
//! command of one agreed log exactly once, in order; every acknowledged write is in that log,
//! where its reply said, with the value it answered; every node's counters sum the log.

use std::collections::{BTreeMap, BTreeSet};

use super::cluster::SimCluster;
use super::workload::{AckedWrite, NAMES};
use crate::cluster::state_machine::Replicated;
use crate::cluster::state_machine::test_counter::{AppliedCommand, StateEvent};
use crate::cluster::types::NodeId;

/// The commands applied anywhere, by index.
pub(super) type AgreedLog = BTreeMap<u64, AppliedCommand>;

/// What a run that passed did, to see how hard the faults pressed it.
pub(super) struct Summary {
    pub(super) acked: usize,
    pub(super) installs: usize,
    pub(super) last_index: u64,
}

/// Checks the run; `members` are the nodes of the final membership, which must hold the whole
/// log (a node removed stops receiving it, but what it applied must agree with the others).
pub(super) fn check(
    cluster: &SimCluster,
    acked: &[AckedWrite],
    members: &BTreeSet<NodeId>,
) -> Result<Summary, String> {
    let ledgers: BTreeMap<NodeId, Vec<StateEvent>> = cluster
        .nodes
        .iter()
        .map(|(id, node)| (*id, node.ledger.lock().clone()))
        .collect();
    for (id, ledger) in &ledgers {
        check_applied_once(*id, ledger)?;
    }
    let log = agreed_log(&ledgers)?;
    check_no_duplicates(&log)?;
    for write in acked {
        check_acknowledged(&log, write)?;
    }
    for (id, ledger) in ledgers.iter().filter(|(id, _)| members.contains(id)) {
        check_node_state(cluster, *id, ledger, &log)?;
    }
    let installs = ledgers
        .values()
        .flatten()
        .filter(|event| matches!(event, StateEvent::Installed { .. }))
        .count();
    Ok(Summary {
        acked: acked.len(),
        installs,
        last_index: log.keys().next_back().copied().unwrap_or(0),
    })
}

/// Across restarts and installed snapshots, a node's state never applies an index it already
/// holds, and never goes back to an older state.
pub(super) fn check_applied_once(id: NodeId, ledger: &[StateEvent]) -> Result<(), String> {
    let mut held: Option<u64> = None;
    for event in ledger {
        match event {
            StateEvent::Applied((index, ..)) => {
                if held.is_some_and(|held| *index <= held) {
                    return Err(format!(
                        "node {id} applied index {index} while holding up to {held:?}"
                    ));
                }
                held = Some(*index);
            }
            StateEvent::Installed { applied } => {
                if *applied < held {
                    return Err(format!(
                        "node {id} installed a state holding up to {applied:?} over one holding \
                         up to {held:?}"
                    ));
                }
                held = *applied;
            }
        }
    }
    Ok(())
}

/// Every command applied anywhere, by index; two nodes that applied different commands at
/// one index disagree on the log.
pub(super) fn agreed_log(ledgers: &BTreeMap<NodeId, Vec<StateEvent>>) -> Result<AgreedLog, String> {
    let mut log = AgreedLog::new();
    let mut applied_by = BTreeMap::new();
    for (id, ledger) in ledgers {
        for event in ledger {
            let StateEvent::Applied(command) = event else {
                continue;
            };
            let index = command.0;
            match log.get(&index) {
                Some(agreed) if agreed != command => {
                    return Err(format!(
                        "index {index}: node {} applied {agreed:?}, node {id} applied {command:?}",
                        applied_by[&index]
                    ));
                }
                Some(_) => {}
                None => {
                    log.insert(index, command.clone());
                    applied_by.insert(index, *id);
                }
            }
        }
    }
    Ok(log)
}

/// A command (known by its time, which is unique) is in the log once.
pub(super) fn check_no_duplicates(log: &AgreedLog) -> Result<(), String> {
    let mut seen = BTreeMap::new();
    for (index, (_, time_ms, ..)) in log {
        if let Some(first) = seen.insert(*time_ms, *index) {
            return Err(format!(
                "write {time_ms} is in the log twice, at {first} and {index}"
            ));
        }
    }
    Ok(())
}

fn sum_up_to(log: &AgreedLog, name: &str, last: u64) -> u64 {
    log.range(..=last)
        .filter(|(_, (_, _, applied_name, _))| applied_name == name.as_bytes())
        .map(|(_, (.., delta))| delta)
        .sum()
}

pub(super) fn check_acknowledged(log: &AgreedLog, write: &AckedWrite) -> Result<(), String> {
    let expected = (
        write.index,
        write.time_ms,
        write.name.as_bytes().to_vec(),
        write.delta,
    );
    match log.get(&write.index) {
        Some(found) if *found == expected => {}
        found => {
            return Err(format!(
                "write {} was acknowledged at index {}, but the log holds {found:?} there",
                write.time_ms, write.index
            ));
        }
    }
    let value = sum_up_to(log, write.name, write.index);
    if write.reply != Some(value) {
        return Err(format!(
            "write {} at index {} answered {:?}, but {} was {value} after it",
            write.time_ms, write.index, write.reply, write.name
        ));
    }
    Ok(())
}

/// Node `id` holds every command of the log, applied or installed, and its counters are the
/// sums of the whole log.
fn check_node_state(
    cluster: &SimCluster,
    id: NodeId,
    ledger: &[StateEvent],
    log: &AgreedLog,
) -> Result<(), String> {
    let installed = ledger
        .iter()
        .filter_map(|event| match event {
            StateEvent::Installed { applied } => *applied,
            StateEvent::Applied(_) => None,
        })
        .max();
    let applied: Vec<u64> = ledger
        .iter()
        .filter_map(|event| match event {
            StateEvent::Applied((index, ..)) => Some(*index),
            StateEvent::Installed { .. } => None,
        })
        .collect();
    for index in log.keys() {
        let held = installed.is_some_and(|installed| *index <= installed)
            || applied.binary_search(index).is_ok();
        if !held {
            return Err(format!("node {id} never applied index {index}"));
        }
    }
    let node = &cluster.nodes[&id];
    let running = node
        .running
        .as_ref()
        .ok_or(format!("node {id} is not running"))?;
    let last = log.keys().next_back().copied();
    let state_applied = running
        .counters
        .applied()
        .map_err(|error| format!("node {id}'s counters: {error}"))?;
    if state_applied != last {
        return Err(format!(
            "node {id}'s counters hold up to {state_applied:?}, the log ends at {last:?}"
        ));
    }
    for name in NAMES {
        let expected = sum_up_to(log, name, u64::MAX);
        let value = running.counters.value(name);
        if value != expected {
            return Err(format!(
                "node {id}: {name} is {value}, the log sums to {expected}"
            ));
        }
    }
    Ok(())
}
