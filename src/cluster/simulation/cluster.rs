//! The nodes of a simulated cluster, each over its own directory, which outlives the node's
//! crashes: a crash stops the node where it stands, a restart opens it again from its files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use openraft::{Config, Raft, SnapshotPolicy};
use tempfile::TempDir;

use super::events::EventLog;
use super::network::SimNetwork;
use super::rng::SimRng;
use crate::cluster::log_store::LogStore;
use crate::cluster::state_machine::StateMachine;
use crate::cluster::state_machine::test_counter::{CounterMap, Ledger};
use crate::cluster::types::{NodeAddr, NodeId, TypeConfig};
use crate::cluster::wal::WalOptions;
use crate::durability::Durability;

/// How long a crashed node's state machine may take to let go of its state.
const RELEASE_WAIT: Duration = Duration::from_secs(5);
/// How long a node may take to stop, or to initialize the cluster.
const NODE_WAIT: Duration = Duration::from_secs(10);

/// Short timeouts, so that lost leaders are replaced quickly; frequent snapshots with few
/// entries kept behind them, so that a node that fell behind is sent a snapshot, in several
/// chunks; small append batches, so that more messages are in flight to be lost or reordered.
///
/// The election timeout is drawn from the seed for each run of a node rather than by openraft
/// at each election (from a generator the seed does not drive): openraft draws from
/// `min..max`, which holds one value here. Nodes drawing different timeouts still break ties.
fn config(election_timeout_ms: u64) -> Arc<Config> {
    let config = Config {
        cluster_name: "simulation".to_string(),
        heartbeat_interval: 100,
        election_timeout_min: election_timeout_ms,
        election_timeout_max: election_timeout_ms + 1,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(40),
        max_in_snapshot_log_to_keep: 5,
        purge_batch_size: 1,
        snapshot_max_chunk_size: 16,
        max_payload_entries: 16,
        ..Config::default()
    };
    Arc::new(
        config
            .validate()
            .expect("the simulation's Raft configuration is valid"),
    )
}

/// The Raft log's options. The flush is not waited for: data written is read back by a node
/// restarted in the same process whether or not it reached the disk, and a flush running on
/// its own thread would let the paused clock jump while a node waits for it.
fn wal_options() -> WalOptions {
    WalOptions {
        max_file_bytes: 4096,
        durability: Durability::Never,
        commit_save_interval: None,
    }
}

pub(super) fn addr(id: NodeId) -> NodeAddr {
    NodeAddr {
        client: format!("sim-{id}:6379"),
        bus: format!("sim-{id}:16379"),
    }
}

/// A node as it runs.
pub(super) struct Running {
    pub(super) raft: Raft<TypeConfig>,
    pub(super) counters: Arc<CounterMap>,
}

/// A node: its directory, what its state did across its runs, and its current run.
pub(super) struct SimNode {
    dir: PathBuf,
    pub(super) ledger: Ledger,
    pub(super) running: Option<Running>,
}

pub(super) struct SimCluster {
    /// Holds the nodes' directories.
    _root: TempDir,
    pub(super) nodes: BTreeMap<NodeId, SimNode>,
    pub(super) network: SimNetwork,
    /// Draws each node run's election timeout.
    rng: SimRng,
    events: Arc<EventLog>,
    /// Crashes so far.
    pub(super) crashes: u64,
    /// Membership changes committed so far.
    pub(super) membership_changes: Arc<AtomicU64>,
}

/// In memory where the machine offers it: the nodes save their state at every step.
fn temp_root() -> TempDir {
    let shm = Path::new("/dev/shm");
    let root = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    };
    root.expect("a temporary directory for the simulated nodes")
}

impl SimCluster {
    /// Starts nodes `1..=count + 1` and makes node 1 initialize the cluster with the first
    /// `count` as voters: the last node is a spare, outside the membership until a change adds
    /// it.
    pub(super) async fn start(
        count: u64,
        network: SimNetwork,
        rng: SimRng,
        events: Arc<EventLog>,
    ) -> Result<SimCluster, String> {
        let root = temp_root();
        let nodes = (1..=count + 1)
            .map(|id| {
                let node = SimNode {
                    dir: root.path().join(format!("node-{id}")),
                    ledger: Ledger::default(),
                    running: None,
                };
                (id, node)
            })
            .collect();
        let mut cluster = SimCluster {
            _root: root,
            nodes,
            network,
            rng,
            events,
            crashes: 0,
            membership_changes: Arc::new(AtomicU64::new(0)),
        };
        for id in 1..=count + 1 {
            cluster.restart(id).await?;
        }
        let members: BTreeMap<NodeId, NodeAddr> = (1..=count).map(|id| (id, addr(id))).collect();
        let first = cluster.running(1).ok_or("node 1 did not start")?;
        tokio::time::timeout(NODE_WAIT, first.initialize(members))
            .await
            .map_err(|_| "initializing the cluster did not end".to_string())?
            .map_err(|error| format!("initializing the cluster failed: {error}"))?;
        Ok(cluster)
    }

    pub(super) fn events(&self) -> &EventLog {
        &self.events
    }

    pub(super) fn events_handle(&self) -> Arc<EventLog> {
        Arc::clone(&self.events)
    }

    pub(super) fn running(&self, id: NodeId) -> Option<Raft<TypeConfig>> {
        let node = self.nodes.get(&id)?;
        node.running.as_ref().map(|running| running.raft.clone())
    }

    /// The running node that believes it leads, if one does.
    pub(super) fn believed_leader(&self) -> Option<(NodeId, Raft<TypeConfig>)> {
        self.nodes.iter().find_map(|(id, node)| {
            let raft = &node.running.as_ref()?.raft;
            let leads = raft.metrics().borrow().current_leader == Some(*id);
            leads.then(|| (*id, raft.clone()))
        })
    }

    pub(super) fn ids_where(&self, up: bool) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, node)| node.running.is_some() == up)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Stops node `id` where it stands: cut off the network, its Raft stopped, its state
    /// machine let go of its state. What its files hold is what it left.
    pub(super) async fn crash(&mut self, id: NodeId) -> Result<(), String> {
        let Some(running) = self.nodes.get_mut(&id).and_then(|node| node.running.take()) else {
            return Ok(());
        };
        self.events.record(format_args!("crash node {id}"));
        self.crashes += 1;
        self.network.node_down(id);
        tokio::time::timeout(NODE_WAIT, running.raft.shutdown())
            .await
            .map_err(|_| format!("node {id} did not shut down"))?
            .map_err(|error| format!("node {id} failed while shutting down: {error}"))?;
        wait_released(id, &running.counters).await
    }

    /// Opens node `id` again from its directory (or for the first time) and connects it.
    pub(super) async fn restart(&mut self, id: NodeId) -> Result<(), String> {
        let node = self.nodes.get_mut(&id).ok_or(format!("no node {id}"))?;
        if node.running.is_some() {
            return Ok(());
        }
        let election_timeout_ms = self.rng.between(300, 900);
        self.events.record(format_args!(
            "start node {id} (election timeout {election_timeout_ms} ms)"
        ));
        let (log, recovery) = LogStore::open(&node.dir.join("log"), wal_options())
            .map_err(|error| format!("node {id}'s Raft log does not open: {error}"))?;
        if !recovery.is_whole() {
            return Err(format!("node {id}'s Raft log is damaged: {recovery:?}"));
        }
        let counters = CounterMap::open_recording(&node.dir, Arc::clone(&node.ledger))
            .map_err(|error| format!("node {id}'s counters do not open: {error}"))?;
        let counters = Arc::new(counters);
        let machine = StateMachine::open(&node.dir, Arc::clone(&counters))
            .map_err(|error| format!("node {id}'s state machine does not open: {error}"))?;
        let endpoint = self.network.endpoint(id);
        let config = config(election_timeout_ms);
        let raft = Raft::new(id, config, endpoint, log, machine)
            .await
            .map_err(|error| format!("node {id} does not start: {error}"))?;
        self.network.node_up(id, raft.clone());
        node.running = Some(Running { raft, counters });
        Ok(())
    }

    /// Stops every node, so that none is left running past the run.
    pub(super) async fn stop_all(&mut self) -> Result<(), String> {
        for id in self.ids_where(true) {
            self.crash(id).await?;
        }
        Ok(())
    }
}

/// Waits until only the caller holds `counters`: openraft's state machine worker, which
/// applies what was queued before the stop, has ended, and no snapshot is being built. Only then
/// may a restart open the same directory.
async fn wait_released(id: NodeId, counters: &Arc<CounterMap>) -> Result<(), String> {
    let released = async {
        while Arc::strong_count(counters) > 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(RELEASE_WAIT, released)
        .await
        .map_err(|_| format!("node {id}'s state machine still runs after it stopped"))
}
