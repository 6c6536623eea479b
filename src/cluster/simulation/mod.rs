//! Deterministic simulation of a whole cluster in one process: a seed draws the cluster's size,
//! the faults (messages lost, delayed and reordered, partitions, crashes and restarts of any
//! node at any step, membership changes adding a spare node or removing a voter) and the
//! clients' writes; tokio's clock is paused, so simulated seconds
//! pass as fast as the nodes compute. Once the faults stop and the cluster heals, every
//! acknowledged write must be applied exactly once on every node, in one order.
//!
//! `WEIR_SIM_SEEDS=<n>` runs seeds 1 to n (20 by default); `WEIR_SIM_SEED=<n>` replays one;
//! `WEIR_SIM_HISTORY=1` prints each run's history, failed or not (with `--nocapture`).
//! Every draw of a run comes from its seed (each node's election timeout included), and every
//! task runs on one thread, so replaying a seed repeats the run: only tokio's own draws (the
//! order in which an unbiased `select!` polls its branches) are not the seed's.

mod checks;
#[cfg(test)]
mod checks_tests;
mod cluster;
mod events;
mod membership;
mod nemesis;
mod network;
mod rng;
mod workload;

use std::any::Any;
use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use cluster::SimCluster;
use events::EventLog;
use network::{LinkFaults, SimNetwork};
use rng::SimRng;
use workload::{AckedWrite, Attempt, Clients};

use crate::cluster::types::NodeId;

const DEFAULT_SEEDS: u64 = 20;
/// How long the faults go on, in simulated time.
const CHAOS: Duration = Duration::from_secs(20);
const CLIENTS: usize = 3;
/// How long the healed cluster has to elect a leader and apply everything, in simulated time.
const SETTLE_WAIT: Duration = Duration::from_secs(60);
/// The most a whole run may take, in simulated time: a run stuck with every task waiting ends
/// here, the paused clock jumping to it.
const RUN_LIMIT: Duration = Duration::from_secs(600);

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")),
    )
}

fn seeds() -> Vec<u64> {
    match env_number("WEIR_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (1..=env_number("WEIR_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    }
}

#[test]
fn acknowledged_writes_survive_faults_on_every_node() {
    for seed in seeds() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let events = runtime.block_on(async { Arc::new(EventLog::new()) });
        let run = AssertUnwindSafe(|| runtime.block_on(simulate(seed, Arc::clone(&events))));
        // A failed assertion inside a node (a command applied twice, say) panics: reported with
        // the run's history like any other failure.
        let outcome =
            std::panic::catch_unwind(run).unwrap_or_else(|panic| Err(panic_message(&panic)));
        if std::env::var_os("WEIR_SIM_HISTORY").is_some() {
            eprintln!("seed {seed}, what happened:\n{}", events.render());
        }
        if let Err(failure) = outcome {
            panic!(
                "seed {seed}: {failure}\nreplay with WEIR_SIM_SEED={seed}\nwhat happened:\n{}",
                events.render()
            );
        }
    }
}

fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    format!("panicked: {message}")
}

async fn simulate(seed: u64, events: Arc<EventLog>) -> Result<(), String> {
    tokio::time::timeout(RUN_LIMIT, simulate_within_limit(seed, events))
        .await
        .map_err(|_| format!("the run did not end within {RUN_LIMIT:?}"))?
}

async fn simulate_within_limit(seed: u64, events: Arc<EventLog>) -> Result<(), String> {
    let mut rng = SimRng::new(seed);
    let node_count = if rng.chance(300) { 5 } else { 3 };
    events.record(format_args!("seed {seed}: {node_count} nodes"));
    let network = SimNetwork::new(rng.fork(), Arc::clone(&events));
    let mut cluster = SimCluster::start(node_count, network, rng.fork(), events).await?;
    let outcome = run(&mut cluster, rng).await;
    cluster.stop_all().await?;
    let summary = outcome?;
    eprintln!(
        "seed {seed}: {node_count} voters and a spare, {} crashes, {} membership changes, {} \
         writes acknowledged, {} snapshots installed, last index {}",
        cluster.crashes,
        cluster.membership_changes.load(Ordering::Relaxed),
        summary.acked,
        summary.installs,
        summary.last_index
    );
    Ok(())
}

async fn run(cluster: &mut SimCluster, mut rng: SimRng) -> Result<checks::Summary, String> {
    let clients = Clients {
        network: cluster.network.clone(),
        events: cluster.events_handle(),
        node_ids: cluster.nodes.keys().copied().collect(),
        next_write: Arc::new(AtomicU64::new(0)),
    };
    let until = Instant::now() + CHAOS;
    let writers: Vec<_> = (0..CLIENTS)
        .map(|client| tokio::spawn(clients.clone().run(client, rng.fork(), until)))
        .collect();
    let voters_at_start = cluster.nodes.len() - 1;
    nemesis::run(cluster, rng.fork(), until, voters_at_start).await?;
    let mut acked = Vec::new();
    for writer in writers {
        acked.extend(
            writer
                .await
                .map_err(|error| format!("a client failed: {error}"))?,
        );
    }
    heal(cluster).await?;
    let (last, members) = settle(cluster, &clients, &mut rng).await?;
    acked.push(last);
    checks::check(cluster, &acked, &members)
}

/// Ends every fault: links clean, no partition, every node running.
async fn heal(cluster: &mut SimCluster) -> Result<(), String> {
    cluster.network.heal();
    cluster.network.set_faults(LinkFaults::NONE);
    cluster.events().record("faults end");
    for id in cluster.ids_where(false) {
        cluster.restart(id).await?;
    }
    Ok(())
}

/// Writes once more through the leader of the healed cluster, which commits every entry
/// before it, and waits until every member (as that leader knows the membership) has applied
/// it; returns that write and the members.
async fn settle(
    cluster: &SimCluster,
    clients: &Clients,
    rng: &mut SimRng,
) -> Result<(AckedWrite, BTreeSet<NodeId>), String> {
    let deadline = Instant::now() + SETTLE_WAIT;
    let mut node = 1;
    let last = loop {
        if Instant::now() >= deadline {
            for id in cluster.ids_where(true) {
                if let Some(raft) = cluster.running(id) {
                    let metrics = raft.metrics().borrow().clone();
                    cluster.events().record(format_args!(
                        "node {id}: {:?}, leader {:?}, membership {:?}",
                        metrics.state,
                        metrics.current_leader,
                        metrics.membership_config.membership()
                    ));
                }
            }
            return Err("the healed cluster acknowledged no write".to_string());
        }
        match clients.write(CLIENTS, node, rng).await {
            Attempt::Acked(write) => break write,
            Attempt::Redirected(Some(leader)) if leader != node => node = leader,
            // A node removed from the membership may never learn of a leader: ask the next.
            Attempt::Redirected(_) | Attempt::Unknown => {
                node = node % cluster.nodes.len() as NodeId + 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let leader = cluster.running(node).ok_or("the leader stopped")?;
    let members: BTreeSet<NodeId> = leader
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .nodes()
        .map(|(id, _)| *id)
        .collect();
    cluster
        .events()
        .record(format_args!("the members at the end: {members:?}"));
    for id in &members {
        let raft = cluster
            .running(*id)
            .ok_or(format!("node {id} is not running"))?;
        raft.wait(Some(SETTLE_WAIT))
            .applied_index_at_least(Some(last.index), "the last write is applied")
            .await
            .map_err(|error| format!("node {id} did not apply index {}: {error}", last.index))?;
    }
    Ok((last, members))
}
