//! Fault schedules against a 3-node cluster, each checked as Jepsen's queue workloads are
//! checked. Producers append with `IDMP` and retry until acknowledged (an unknown outcome is
//! retried, never duplicated); consumers read a group and acknowledge; meanwhile one fault per
//! schedule: kill -9 of the leader or a follower, SIGSTOP of the leader (which wakes believing
//! it leads), a network partition isolating the leader or a follower, a flipped byte in a
//! stopped follower's Raft log, every node killed at once, a follower's machine restarting
//! (its store, written without syncs, is rebuilt from its Raft log), a follower or the leader
//! lost for good and replaced by a new node (`CLUSTER ADDNODE`, `CLUSTER REMOVENODE`; a
//! follower whose flipped byte makes it refuse to start is replaced too), faults during such a
//! replacement (the leader killed or cut off while it adds the new node, the new node killed
//! while it catches up), faults during a leader hand-over (`CLUSTER REBALANCE` giving the
//! stream's shard back to its preferred leader while the leader handing it over, or the one
//! taking it, is killed), or, built with the feature `power-loss-record`, the power loss of a
//! follower, of the leader or of every node (kill -9, then every byte and name of the Raft log
//! directory not yet synced dropped, sometimes leaving a torn tail, then a restart on another
//! boot). After healing, the checker requires:
//! - every acknowledged append present exactly once, and no append present twice;
//! - no read missing an append acknowledged before it was sent (a reader asks for the newest
//!   acknowledged entry again and again, through the cluster client: a stale leader, or one
//!   that answered before it applied, would miss it);
//! - no delivered entry that was never written;
//! - no acknowledged delivery pending again;
//! - every node holding the same entries, IDs and consumer-group state (`XINFO STREAM FULL`).
//!
//! `WEIR_CLUSTER_SCHEDULES=N` runs N schedules, cycling through the kinds (the default is one of
//! each kind, for CI); `WEIR_CLUSTER_FAULT=A,B` cycles through the kinds named only (as `{:?}`
//! prints them, e.g. `PowerLossLeader`); `WEIR_CLUSTER_KEEP` keeps a failed schedule's directories and logs;
//! `WEIR_CLUSTER_HISTORY` prints what the clients saw acknowledged. The schedules run on
//! clusters of one shard, then again of three (`--cluster-shards 3`; `WEIR_CLUSTER_SHARDS=S`
//! runs them on S shards only): there the stream lives in the last shard, and the membership
//! is changed on the first shard's leader, which forwards each change to the stream's shard's
//! leader, so the faults of a membership change hit either leader (the power-loss kinds,
//! modelled on one Raft log directory, run with one shard only).
//!
//! The power-loss kinds run with `cargo test --features power-loss-record --test cluster_faults`.

mod cluster_support;
mod journal_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_support::{Cluster, eventually};
use redis::{Commands, Value};

const STREAM: &str = "{q}events";
/// The stream's hash slot.
const STREAM_SLOT: u16 = 11958;
const GROUP: &str = "workers";
const PRODUCERS: u64 = 3;
const CONSUMERS: u64 = 2;

#[derive(Debug, Clone, Copy)]
enum Fault {
    KillLeader,
    KillFollower,
    PauseLeader,
    IsolateLeader,
    IsolateFollower,
    FlipFollowerLogByte,
    KillEveryNode,
    MachineCrashFollower,
    ReplaceFollower,
    ReplaceLeader,
    KillLeaderWhileAdding,
    KillNodeBeingAdded,
    IsolateLeaderWhileAdding,
    KillNodeBeingRemoved,
    IsolateLeaderWhileRemoving,
    KillLeaderHandingOver,
    KillPreferredLeaderTakingOver,
    #[cfg(feature = "power-loss-record")]
    PowerLossFollower,
    #[cfg(feature = "power-loss-record")]
    PowerLossLeader,
    #[cfg(feature = "power-loss-record")]
    PowerLossEveryNode,
}

const FAULTS: [Fault; 17] = [
    Fault::KillLeader,
    Fault::KillFollower,
    Fault::PauseLeader,
    Fault::IsolateLeader,
    Fault::IsolateFollower,
    Fault::FlipFollowerLogByte,
    Fault::KillEveryNode,
    Fault::MachineCrashFollower,
    Fault::ReplaceFollower,
    Fault::ReplaceLeader,
    Fault::KillLeaderWhileAdding,
    Fault::KillNodeBeingAdded,
    Fault::IsolateLeaderWhileAdding,
    Fault::KillNodeBeingRemoved,
    Fault::IsolateLeaderWhileRemoving,
    Fault::KillLeaderHandingOver,
    Fault::KillPreferredLeaderTakingOver,
];

/// The faults that need queue-server built with the power-loss recorder.
#[cfg(feature = "power-loss-record")]
const POWER_LOSS_FAULTS: &[Fault] = &[
    Fault::PowerLossFollower,
    Fault::PowerLossLeader,
    Fault::PowerLossEveryNode,
];
#[cfg(not(feature = "power-loss-record"))]
const POWER_LOSS_FAULTS: &[Fault] = &[];

/// What the clients saw.
#[derive(Default, Debug)]
struct History {
    /// Acknowledged appends: (producer, sequence) → ID.
    appended: BTreeMap<(u64, u64), String>,
    /// Every ID a consumer was delivered.
    delivered: BTreeSet<String>,
    /// IDs whose XACK answered 1.
    acknowledged: BTreeSet<String>,
    /// The newest acknowledged append's ID, as (milliseconds, sequence).
    newest: Option<(u64, u64)>,
    /// Reads of the newest acknowledged append that answered.
    reads: usize,
    /// IDs acknowledged before a read that did not find them: stale reads.
    stale_reads: Vec<String>,
    /// Client errors, for the report.
    errors: Vec<String>,
}

/// An entry ID's parts, to order IDs as the stream does.
fn id_parts(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').expect("an entry ID");
    (
        ms.parse().expect("milliseconds"),
        seq.parse().expect("a sequence number"),
    )
}

/// The worker's connection, opened again after a failure; `None`, after a pause, while none
/// opens.
fn connection<'a>(
    client: &redis::cluster::ClusterClient,
    conn: &'a mut Option<redis::cluster::ClusterConnection>,
) -> Option<&'a mut redis::cluster::ClusterConnection> {
    if conn.is_none() {
        *conn = client.get_connection().ok();
        if conn.is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    conn.as_mut()
}

fn producer(
    cluster_client: redis::cluster::ClusterClient,
    id: u64,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
) {
    let mut seq = 0;
    let mut conn = None;
    while !stop.load(Ordering::Acquire) {
        let Some(c) = connection(&cluster_client, &mut conn) else {
            continue;
        };
        let value = format!("{id}:{seq}");
        let reply: redis::RedisResult<String> = redis::cmd("XADD")
            .arg(STREAM)
            .arg("IDMP")
            .arg(format!("p{id}"))
            .arg(seq.to_string())
            .arg("*")
            .arg("n")
            .arg(&value)
            .query(c);
        match reply {
            Ok(entry) => {
                let mut history = history.lock().unwrap();
                history.newest = history.newest.max(Some(id_parts(&entry)));
                history.appended.insert((id, seq), entry);
                seq += 1;
            }
            Err(error) => {
                // Unknown outcome: the same IDMP key is sent again until it is acknowledged.
                history
                    .lock()
                    .unwrap()
                    .errors
                    .push(format!("XADD {value}: {error}"));
                conn = None;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Reads, again and again, the newest append acknowledged before the read is sent: a node that
/// answers without it served a stale read (it answered as leader after another was elected, or
/// before applying what it had acknowledged).
fn reader(
    cluster_client: redis::cluster::ClusterClient,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
) {
    let mut conn = None;
    while !stop.load(Ordering::Acquire) {
        let Some(c) = connection(&cluster_client, &mut conn) else {
            continue;
        };
        let Some((ms, seq)) = history.lock().unwrap().newest else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let id = format!("{ms}-{seq}");
        let read: redis::RedisResult<redis::streams::StreamRangeReply> = c.xrange(STREAM, &id, &id);
        let mut history = history.lock().unwrap();
        match read {
            Ok(found) => {
                history.reads += 1;
                if found.ids.is_empty() {
                    history.stale_reads.push(id);
                }
            }
            Err(error) => {
                history.errors.push(format!("XRANGE {id}: {error}"));
                conn = None;
            }
        }
        drop(history);
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn consumer(
    cluster_client: redis::cluster::ClusterClient,
    id: u64,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
) {
    let consumer = format!("c{id}");
    let mut conn = None;
    while !stop.load(Ordering::Acquire) {
        let Some(c) = connection(&cluster_client, &mut conn) else {
            continue;
        };
        let options = redis::streams::StreamReadOptions::default()
            .group(GROUP, &consumer)
            .count(20);
        let read: redis::RedisResult<Option<redis::streams::StreamReadReply>> =
            c.xread_options(&[STREAM], &[">"], &options);
        let ids: Vec<String> = match read {
            Ok(Some(reply)) => reply
                .keys
                .into_iter()
                .flat_map(|key| key.ids.into_iter().map(|entry| entry.id))
                .collect(),
            Ok(None) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(error) => {
                history
                    .lock()
                    .unwrap()
                    .errors
                    .push(format!("XREADGROUP: {error}"));
                conn = None;
                continue;
            }
        };
        history
            .lock()
            .unwrap()
            .delivered
            .extend(ids.iter().cloned());
        for entry in ids {
            match c.xack::<_, _, _, u64>(STREAM, GROUP, &[&entry]) {
                Ok(1) => {
                    history.lock().unwrap().acknowledged.insert(entry);
                }
                Ok(_) => {}
                Err(error) => {
                    history
                        .lock()
                        .unwrap()
                        .errors
                        .push(format!("XACK {entry}: {error}"));
                    conn = None;
                    break;
                }
            }
        }
    }
}

/// A delay of 0 to 49 ms, different from run to run: where in a membership change a fault
/// lands.
fn rand_delay_ms() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    u64::from(nanos % 50)
}

/// Starts replacing `lost` (killed) by a new node, which `leader` is asked to add from another
/// thread; returns once the change is under way, at a point drawn anew each run, with the new
/// node's id and the thread answering whether it was added.
fn start_replacing(
    cluster: &mut Cluster,
    lost: u64,
    leader: u64,
) -> (u64, std::thread::JoinHandle<bool>) {
    cluster.kill(lost);
    let new = cluster.start_joining_node();
    let adding = cluster.add_node_in_background(leader, new);
    std::thread::sleep(Duration::from_millis(rand_delay_ms()));
    (new, adding)
}

/// Cuts node `id` off from the others for 2.5 s (or, without nftables, kills it for 1 s).
fn cut_off_for_a_while(cluster: &mut Cluster, id: u64, fault: Fault) {
    if Cluster::can_partition() {
        cluster.isolate(id);
        std::thread::sleep(Duration::from_millis(2500));
        cluster.heal();
    } else {
        eprintln!("nft is not available: {fault:?} runs as a kill instead");
        cluster.kill(id);
        std::thread::sleep(Duration::from_millis(1000));
        cluster.restart(id);
    }
}

/// Starts retiring `old`, still running: a new node is added, then `leader` is asked to remove
/// `old` from another thread; returns once the removal is under way, at a point drawn anew
/// each run.
fn start_retiring(cluster: &mut Cluster, old: u64, leader: u64) -> std::thread::JoinHandle<bool> {
    let new = cluster.start_joining_node();
    cluster.add_member(new);
    let removing = cluster.remove_node_in_background(leader, old);
    std::thread::sleep(Duration::from_millis(rand_delay_ms()));
    removing
}

/// The stream's shard's preferred leader among the three first nodes: the shard's number,
/// modulo the voters, picks it (docs/cluster.md, Shards).
fn preferred_leader(cluster: &Cluster) -> u64 {
    1 + (stream_shard(cluster) % 3) as u64
}

/// Makes the stream's shard led by another node than its preferred one, if it is not already,
/// by killing the preferred one until another leads and restarting it; returns the leader.
fn lead_elsewhere(cluster: &mut Cluster, preferred: u64) -> u64 {
    if cluster.leader_of_slot(STREAM_SLOT) != preferred {
        return cluster.leader_of_slot(STREAM_SLOT);
    }
    cluster.kill(preferred);
    let mut leader = preferred;
    eventually("another node leading the stream's shard", || {
        leader = cluster.leader_of_slot(STREAM_SLOT);
        leader != preferred
    });
    cluster.restart(preferred);
    // Only a candidate whose log is close to the leader's is handed a shard.
    std::thread::sleep(Duration::from_millis(1000));
    leader
}

/// Sends `CLUSTER REBALANCE` to node `on` from another thread; the thread answers how many
/// shards moved, `None` on an error.
fn start_rebalancing(cluster: &Cluster, on: u64) -> std::thread::JoinHandle<Option<i64>> {
    let conn = cluster.conn(on);
    std::thread::spawn(move || {
        redis::cmd("CLUSTER")
            .arg("REBALANCE")
            .query(&mut conn.ok()?)
            .ok()
    })
}

/// Flips one byte in the middle of the newest Raft log file of node `id` (stopped).
fn flip_log_byte(cluster: &Cluster, id: u64) {
    let raft = cluster.store_dirs(id)[stream_shard(cluster)].join("raft");
    let newest = std::fs::read_dir(&raft)
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .max()
        .expect("a Raft log file");
    let mut bytes = std::fs::read(&newest).unwrap();
    let at = journal_support::frames_end_in(&bytes) / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(&newest, bytes).unwrap();
}

/// Restarts `node` (stopped) as if its machine had booted again: its store, written without
/// syncs, must be emptied and rebuilt from its Raft log.
fn restart_on_another_boot(cluster: &mut Cluster, node: u64) {
    for store in cluster.store_dirs(node) {
        std::fs::write(store.join("boot.id"), "a boot before this one").unwrap();
    }
    // Only what the restarted process logs counts: a node's first start logs the same words,
    // as its new store has no boot recorded yet.
    let logged_before = cluster.nodes[(node - 1) as usize].log_text().len();
    cluster.restart(node);
    let log = cluster.nodes[(node - 1) as usize].log_text();
    assert!(
        log[logged_before..].contains("emptied, to be rebuilt"),
        "{log}"
    );
}

/// Power loss of `node` (kill -9, then its `DIR/raft/` put back to what its syncs made
/// durable), reported. Only the Raft log is reverted: the store beside it is written without
/// syncs, and on another boot it is emptied whatever its files hold.
#[cfg(feature = "power-loss-record")]
fn power_loss(cluster: &mut Cluster, node: u64, torn_seed: Option<u64>) {
    let reverted = cluster.power_loss(node, torn_seed);
    eprintln!("power loss of node {node}: {reverted}");
}

/// Injects `fault`; `round` counts how many times the schedules went through every kind, so
/// that the power losses alternate between dropping every unsynced byte and leaving a torn tail.
// Only the power-loss kinds read `round`.
#[cfg_attr(not(feature = "power-loss-record"), allow(unused_variables))]
fn inject(cluster: &mut Cluster, fault: Fault, round: usize) {
    // The stream's shard's leader, and the first shard's, which changes the membership: the
    // same node but with several shards.
    let leader = cluster.leader_of_slot(STREAM_SLOT);
    let admin = cluster.leader();
    let follower = (1..=3)
        .find(|node| *node != leader && *node != admin)
        .or_else(|| (1..=3).find(|node| *node != leader))
        .unwrap();
    match fault {
        Fault::KillLeader => {
            cluster.kill(leader);
            std::thread::sleep(Duration::from_millis(1500));
            cluster.restart(leader);
        }
        Fault::KillFollower => {
            cluster.kill(follower);
            std::thread::sleep(Duration::from_millis(1500));
            cluster.restart(follower);
        }
        Fault::PauseLeader => {
            cluster.pause(leader);
            std::thread::sleep(Duration::from_millis(2500));
            cluster.resume(leader);
        }
        Fault::IsolateLeader | Fault::IsolateFollower => {
            let target = if matches!(fault, Fault::IsolateLeader) {
                leader
            } else {
                follower
            };
            if Cluster::can_partition() {
                cluster.isolate(target);
                std::thread::sleep(Duration::from_millis(2500));
                cluster.heal();
            } else {
                eprintln!("nft is not available: {fault:?} runs as a kill instead");
                cluster.kill(target);
                std::thread::sleep(Duration::from_millis(1500));
                cluster.restart(target);
            }
        }
        Fault::FlipFollowerLogByte => {
            cluster.kill(follower);
            flip_log_byte(cluster, follower);
            // A node whose log lost an entry it acknowledged must not rejoin as if whole: it
            // refuses to start, saying so, and is replaced by a new node. (A byte in the
            // uncommitted tail is a torn write, cut, and the node rejoins.)
            if let Err(log) = cluster.try_restart(follower) {
                assert!(log.contains("is damaged"), "{log}");
                let new = cluster.replace(follower);
                println!("node {follower} refused its damaged log: node {new} replaced it");
            }
        }
        Fault::MachineCrashFollower => {
            // The machine restarts (another boot id): the follower's store, written without
            // syncs, is emptied and rebuilt from its Raft log.
            cluster.kill(follower);
            restart_on_another_boot(cluster, follower);
        }
        #[cfg(feature = "power-loss-record")]
        Fault::PowerLossFollower | Fault::PowerLossLeader => {
            // The leader's log may end in entries it wrote but had not synced, so not yet
            // acknowledged; the others elect a new leader meanwhile.
            let (node, torn) = if matches!(fault, Fault::PowerLossLeader) {
                (leader, round % 2 == 0)
            } else {
                (follower, round % 2 == 1)
            };
            power_loss(cluster, node, torn.then_some(round as u64 + node));
            std::thread::sleep(Duration::from_millis(1000));
            restart_on_another_boot(cluster, node);
        }
        #[cfg(feature = "power-loss-record")]
        Fault::PowerLossEveryNode => {
            // Every machine loses power: only what a majority synced was acknowledged, so the
            // nodes must find all of it again among them.
            for node in 1..=3 {
                power_loss(
                    cluster,
                    node,
                    (round % 2 == 1).then_some(round as u64 + node),
                );
            }
            for node in 1..=3 {
                restart_on_another_boot(cluster, node);
            }
        }
        Fault::ReplaceFollower | Fault::ReplaceLeader => {
            // The node's machine is lost for good: a new one takes its place.
            let lost = if matches!(fault, Fault::ReplaceLeader) {
                leader
            } else {
                follower
            };
            cluster.replace(lost);
        }
        Fault::KillLeaderWhileAdding => {
            // The leader dies while a follower's replacement is being added: the change is
            // committed or not, and is finished (or made again) on the next leader.
            let (new, adding) = start_replacing(cluster, follower, admin);
            cluster.kill(admin);
            let _ = adding.join();
            std::thread::sleep(Duration::from_millis(1000));
            cluster.restart(admin);
            cluster.swap_members(follower, new);
        }
        Fault::IsolateLeaderWhileAdding => {
            // The leader is cut off from the other nodes while it adds a follower's
            // replacement: it cannot commit the change; the majority side elects a new leader,
            // which finishes it (or makes it again) once the partition heals.
            let (new, adding) = start_replacing(cluster, follower, admin);
            cut_off_for_a_while(cluster, admin, fault);
            let _ = adding.join();
            cluster.swap_members(follower, new);
        }
        Fault::KillNodeBeingAdded => {
            // The new node dies while it catches up: it stays a learner (the voters do not
            // count it), restarts, and is then added.
            let (new, adding) = start_replacing(cluster, follower, admin);
            cluster.kill(new);
            let _ = adding.join();
            cluster.restart(new);
            cluster.swap_members(follower, new);
        }
        Fault::KillNodeBeingRemoved => {
            // A follower is retired while it still runs: its successor is added first, then
            // the follower dies while its removal is under way. The joint change commits on
            // the others (three of the four voters), or is made again.
            let removing = start_retiring(cluster, follower, admin);
            cluster.kill(follower);
            let _ = removing.join();
            cluster.remove_member(follower);
        }
        Fault::IsolateLeaderWhileRemoving => {
            // The leader is cut off while it removes a follower: the majority side elects a
            // new leader, which finishes the removal (or makes it again) once the partition
            // heals. The follower runs until the first attempt ends, then is shut down, as its
            // operator would once it is removed (a removed node that runs on is no longer told
            // who leads).
            let removing = start_retiring(cluster, follower, admin);
            cut_off_for_a_while(cluster, admin, fault);
            let _ = removing.join();
            cluster.kill(follower);
            cluster.remove_member(follower);
        }
        Fault::KillLeaderHandingOver | Fault::KillPreferredLeaderTakingOver => {
            // Rebalancing hands the stream's shard to its preferred leader (other voters hold
            // their elections back, the preferred one campaigns) while the leader handing it
            // over, or the one taking it, dies: the shard ends up with one leader or the other,
            // or a third, after an election at most.
            let preferred = preferred_leader(cluster);
            let from = lead_elsewhere(cluster, preferred);
            let rebalancing = start_rebalancing(cluster, from);
            std::thread::sleep(Duration::from_millis(rand_delay_ms() / 5));
            let victim = if matches!(fault, Fault::KillLeaderHandingOver) {
                from
            } else {
                preferred
            };
            cluster.kill(victim);
            // `Some(1)`: moved before the kill; `Some(0)`: the node taking over died first;
            // `None`: the node asked died with its answer.
            let answered = rebalancing.join();
            println!(
                "{fault:?}: node {from} handing over to {preferred}, answered {:?}",
                answered
            );
            std::thread::sleep(Duration::from_millis(1000));
            cluster.restart(victim);
        }
        Fault::KillEveryNode => {
            for node in 1..=3 {
                cluster.kill(node);
            }
            for node in 1..=3 {
                cluster.restart(node);
            }
        }
    }
}

/// A node's view of the stream: its entries and its full description; an error while the node
/// cannot answer a read (`TRYAGAIN` while it catches up with the leader, say).
type NodeState = (Vec<(String, String)>, Value);

fn node_state(cluster: &Cluster, id: u64) -> redis::RedisResult<NodeState> {
    let mut conn = cluster.replica_conn(id)?;
    let entries: redis::streams::StreamRangeReply = conn.xrange_all(STREAM)?;
    let entries = entries
        .ids
        .into_iter()
        .map(|entry| {
            let value: String = entry.get("n").unwrap();
            (entry.id, value)
        })
        .collect();
    let full = cluster_support::query(
        &mut conn,
        &["XINFO", "STREAM", STREAM, "FULL", "COUNT", "0"],
    )?
    .extract_error()?;
    Ok((entries, full))
}

/// What differs between the nodes' states, briefly.
fn divergence(states: &[NodeState]) -> String {
    let mut report = String::new();
    for (at, (entries, full)) in states.iter().enumerate() {
        let last = entries.last().map(|(id, _)| id.as_str()).unwrap_or("-");
        report += &format!("node state {at}: {} entries, last {last}\n", entries.len());
        if let Some((first_entries, first_full)) = states.first() {
            if let Some(position) = entries.iter().zip(first_entries).position(|(a, b)| a != b) {
                report += &format!(
                    "  entry {position} differs: {:?} vs {:?}\n",
                    entries[position], first_entries[position]
                );
                let theirs: BTreeSet<&(String, String)> = first_entries.iter().collect();
                let mine: BTreeSet<&(String, String)> = entries.iter().collect();
                let extra: Vec<_> = mine.difference(&theirs).take(6).collect();
                let missing: Vec<_> = theirs.difference(&mine).take(6).collect();
                report += &format!("  only here: {extra:?}\n  only on the first: {missing:?}\n");
            }
            if full != first_full {
                let (mine, theirs) = (format!("{full:?}"), format!("{first_full:?}"));
                let from = mine
                    .bytes()
                    .zip(theirs.bytes())
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                let start = from.saturating_sub(200);
                report += &format!(
                    "  XINFO differs at byte {from}: ...{}... vs ...{}...\n",
                    &mine[start..(from + 200).min(mine.len())],
                    &theirs[start..(from + 200).min(theirs.len())]
                );
            }
        }
    }
    report
}

fn check(cluster: &Cluster, history: &History, fault: Fault) {
    // A last write through the leader; then every node must reach the same state.
    let mut conn = cluster.cluster_client().get_connection().unwrap();
    let barrier: String = conn.xadd(STREAM, "*", &[("n", "barrier")]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let states = loop {
        let answers: redis::RedisResult<Vec<_>> = (1..=cluster.nodes.len() as u64)
            .filter(|id| cluster.is_up(*id))
            .map(|id| node_state(cluster, id))
            .collect();
        let report = match answers {
            Ok(states) => {
                let caught_up = states
                    .iter()
                    .all(|(entries, _)| entries.last().is_some_and(|(id, _)| *id == barrier));
                if caught_up && states.windows(2).all(|pair| pair[0] == pair[1]) {
                    break states;
                }
                divergence(&states)
            }
            Err(error) => format!("a node cannot answer a read yet: {error}"),
        };
        assert!(
            Instant::now() < deadline,
            "{fault:?}: the nodes did not converge:\n{report}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (entries, _) = &states[0];
    let mut seen = BTreeMap::new();
    for (id, value) in entries {
        assert!(
            seen.insert(value.clone(), id.clone()).is_none(),
            "{fault:?}: {value} appended twice"
        );
    }
    for ((producer, seq), id) in &history.appended {
        let value = format!("{producer}:{seq}");
        assert_eq!(
            seen.get(&value),
            Some(id),
            "{fault:?}: acknowledged append {value} ({id}) is missing or moved"
        );
    }
    let ids: BTreeSet<&String> = entries.iter().map(|(id, _)| id).collect();
    for id in &history.delivered {
        assert!(
            ids.contains(id),
            "{fault:?}: {id} was delivered but never written"
        );
    }
    let pending: redis::streams::StreamPendingCountReply = conn
        .xpending_count(STREAM, GROUP, "-", "+", 1_000_000)
        .unwrap();
    for entry in pending.ids {
        assert!(
            !history.acknowledged.contains(&entry.id),
            "{fault:?}: {} was acknowledged yet is pending again",
            entry.id
        );
    }
}

/// The shard counts the schedules run with: `WEIR_CLUSTER_SHARDS`, or one shard and then three
/// (the stream in the last, the others idle but electing and ticking alike).
fn shard_counts() -> Vec<u16> {
    match std::env::var("WEIR_CLUSTER_SHARDS") {
        Ok(text) => vec![text.parse().expect("WEIR_CLUSTER_SHARDS is a shard count")],
        Err(_) => vec![1, 3],
    }
}

/// The shard that holds the stream.
fn stream_shard(cluster: &Cluster) -> usize {
    usize::from(STREAM_SLOT) * usize::from(cluster.shards()) / 16_384
}

fn run_schedule(net: u8, fault: Fault, round: usize, shards: u16) {
    let flags = vec!["--cluster-shards".to_string(), shards.to_string()];
    let mut cluster = Cluster::start_with(net, 3, "always", flags);
    cluster.leader_of_slot(STREAM_SLOT);
    let client = cluster.cluster_client();
    let mut conn = client.get_connection().unwrap();
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", STREAM, GROUP, "$", "MKSTREAM"])
        .query(&mut conn)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(History::default()));
    let mut workers = Vec::new();
    for id in 0..PRODUCERS {
        let (client, stop, history) = (client.clone(), Arc::clone(&stop), Arc::clone(&history));
        workers.push(std::thread::spawn(move || {
            producer(client, id, stop, history)
        }));
    }
    for id in 0..CONSUMERS {
        let (client, stop, history) = (client.clone(), Arc::clone(&stop), Arc::clone(&history));
        workers.push(std::thread::spawn(move || {
            consumer(client, id, stop, history)
        }));
    }
    {
        let (client, stop, history) = (client.clone(), Arc::clone(&stop), Arc::clone(&history));
        workers.push(std::thread::spawn(move || reader(client, stop, history)));
    }
    std::thread::sleep(Duration::from_millis(800));
    inject(&mut cluster, fault, round);
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Release);
    for worker in workers {
        worker.join().unwrap();
    }
    let history = history.lock().unwrap();
    if std::env::var_os("WEIR_CLUSTER_HISTORY").is_some() {
        eprintln!("{fault:?} history: {:?}", history.appended);
    }
    assert!(
        !history.appended.is_empty(),
        "{fault:?}: nothing was acknowledged: {:?}",
        history.errors
    );
    check(&cluster, &history, fault);
    assert!(
        history.stale_reads.is_empty(),
        "{fault:?}: reads missed appends acknowledged before them: {:?}",
        history.stale_reads
    );
    let logs: Vec<String> = cluster.nodes.iter().map(|node| node.log_text()).collect();
    let count =
        |message: &str| -> usize { logs.iter().map(|log| log.matches(message).count()).sum() };
    println!(
        "{fault:?}: {} appends acknowledged, {} reads of the newest, {} delivered, {} acknowledged by consumers, {} client errors, {} snapshots written, {} installed",
        history.appended.len(),
        history.reads,
        history.delivered.len(),
        history.acknowledged.len(),
        history.errors.len(),
        count("wrote a snapshot of the store"),
        count("installed a snapshot of the store"),
    );
}

#[test]
fn acknowledged_writes_survive_every_fault_kind() {
    for shards in shard_counts() {
        run_schedules(shards);
    }
}

/// Runs the schedules on clusters of `shards` shards.
fn run_schedules(shards: u16) {
    // Only the kinds named, if any are: the schedules cycle through those. A power loss is
    // modelled on the Raft log of one directory: with several shards, only the other kinds run.
    let only = std::env::var("WEIR_CLUSTER_FAULT").ok();
    let power_losses = if shards == 1 { POWER_LOSS_FAULTS } else { &[] };
    let faults: Vec<Fault> = FAULTS
        .iter()
        .chain(power_losses)
        .copied()
        .filter(|fault| {
            only.as_ref()
                .is_none_or(|only| only.split(',').any(|name| name == format!("{fault:?}")))
        })
        .collect();
    if faults.is_empty() && shards > 1 {
        return;
    }
    assert!(
        !faults.is_empty(),
        "WEIR_CLUSTER_FAULT names no fault kind: {only:?}"
    );
    let schedules: usize = std::env::var("WEIR_CLUSTER_SCHEDULES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(faults.len());
    println!("{schedules} schedules on clusters of {shards} shard(s)");
    for schedule in 0..schedules {
        let fault = faults[schedule % faults.len()];
        let net = 70 + (schedule % 100) as u8;
        run_schedule(net, fault, schedule / faults.len(), shards);
    }
}
