//! A queue-server node of a replicated cluster: its Raft log, its state machine (the server's
//! store), the cluster bus, and the leader's timer.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::{Config, Raft, SnapshotPolicy};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::cluster::log_store::LogStore;
use crate::cluster::network::{ClusterNetwork, serve_cluster};
use crate::cluster::state_machine::StateMachine;
use crate::cluster::types::{NodeAddr, NodeId, TypeConfig};
use crate::cluster::wal::WalOptions;
use crate::durability::Durability;
use crate::server::Server;
use crate::server::cluster_view::{ClusterView, ViewNode, ViewShard};
use crate::server::config::{ClusterConfig, LOG_KEPT_AFTER_SNAPSHOT};

use super::apply::ServerState;
use super::batcher::{Answer, Awaited, Batcher, Stamps};
use super::proposal::Proposal;
use super::read_barrier::ReadBarrier;

pub use crate::names::RAFT_DIR;
/// How often the leader proposes a tick (the changes time alone causes, and the clock that
/// idle times are read against on every node).
const TICK_INTERVAL: Duration = Duration::from_secs(1);
/// The last slot of the hash-slot space.
const LAST_SLOT: u16 = 16_383;
/// How often, at most, the commit point is saved with its own `fdatasync`. Saving it at every
/// commit doubled each node's syncs per Raft round; at most once per 10 ms keeps what recovery
/// must find intact within 10 ms of writes (plus the entries in flight) of what the node
/// acknowledged, and a node idle for longer saves its next commit point at once.
const COMMIT_SAVE_INTERVAL: Duration = Duration::from_millis(10);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Raft log could not be opened.
    #[error("the Raft log in {dir} cannot be opened: {reason}")]
    Log {
        /// The log's directory.
        dir: String,
        /// Why.
        reason: String,
    },
    /// The Raft log holds damage recovery would not repair: the node must not vote as if
    /// it held everything it acknowledged.
    #[error(
        "the Raft log in {dir} is damaged ({reason}); this node may have lost entries it acknowledged, so it must not rejoin as it is: move the data directory aside, start the node on an empty one with a new --node-id and --join, then run CLUSTER ADDNODE for it and CLUSTER REMOVENODE for this id on the leader"
    )]
    Damaged {
        /// The log's directory.
        dir: String,
        /// The damage.
        reason: String,
    },
    /// openraft refused to start.
    #[error("the Raft node cannot start: {0}")]
    Raft(String),
    /// `tls-cluster` is on, but the TLS material was not loaded.
    #[error(
        "tls-cluster is on but no TLS material is loaded: set tls-cert-file, tls-key-file and tls-ca-cert-file"
    )]
    BusTlsMissing,
    /// This node's id is not among the peers of a cluster it would form.
    #[error(
        "--node-id {0} is not among --peers: list every initial voter, this node included, or start the node with --join to add it to a running cluster"
    )]
    NotAPeer(NodeId),
}

/// Why a proposal got no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProposeError {
    /// Another node leads (or none is known): the client must go there.
    NotLeader(Option<NodeId>),
    /// The node cannot replicate now (it is stopping, or its storage failed).
    Unavailable(String),
}

/// This node's part of the cluster.
pub struct Replication {
    pub(super) raft: Raft<TypeConfig>,
    node_id: NodeId,
    /// This node's client and bus ports, for its own line in the view before it is a member.
    own_ports: (u16, u16),
    batcher: Batcher,
    read_barrier: ReadBarrier,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// How long the leader waits for a follower to take one chunk of a snapshot; the last chunk's
/// answer waits for the whole store to be installed.
const SNAPSHOT_CHUNK_TIMEOUT_MS: u64 = 30_000;

/// openraft's settings: heartbeats and elections fast enough for a failover within a second
/// or so on a local network, and a snapshot of the store every `snapshot_entries` entries
/// (none for 0), after which the log is purged but for its last entries (as many as a snapshot
/// interval, at most [`LOG_KEPT_AFTER_SNAPSHOT`]).
fn raft_config(snapshot_entries: u64) -> Result<Arc<Config>, StartError> {
    let snapshot_policy = match snapshot_entries {
        0 => SnapshotPolicy::Never,
        entries => SnapshotPolicy::LogsSinceLast(entries),
    };
    let config = Config {
        cluster_name: "weir".into(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        snapshot_policy,
        max_in_snapshot_log_to_keep: snapshot_entries.min(LOG_KEPT_AFTER_SNAPSHOT),
        install_snapshot_timeout: SNAPSHOT_CHUNK_TIMEOUT_MS,
        ..Config::default()
    };
    config
        .validate()
        .map(Arc::new)
        .map_err(|error| StartError::Raft(error.to_string()))
}

impl Replication {
    /// Opens the Raft log under `DIR/raft`, starts the node on `server`'s store, serves the
    /// cluster bus on `bus`, and forms the cluster with the peers (once a majority is up).
    pub async fn start(
        server: &Arc<Server>,
        config: &ClusterConfig,
        bus: TcpListener,
        durability: Durability,
    ) -> Result<Arc<Replication>, StartError> {
        let data_dir = server.config.read().dir.clone();
        let raft_dir = data_dir.join(RAFT_DIR);
        let log = open_log(&raft_dir, durability)?;
        log.forget_leadership(config.node_id)
            .map_err(|error| StartError::Log {
                dir: raft_dir.display().to_string(),
                reason: error.to_string(),
            })?;
        let state = Arc::new(ServerState::new(server.replicated_clock()));
        state.attach(server);
        let machine = StateMachine::open(&raft_dir, Arc::clone(&state))
            .map_err(|error| StartError::Raft(error.to_string()))?;
        let source = bus.local_addr().map(|addr| addr.ip()).ok();
        let mut network = ClusterNetwork::new(config.node_id, config.secret.clone());
        if let Some(source) = source.filter(|ip| !ip.is_unspecified()) {
            network = network.from_address(source);
        }
        let bus_tls = server.tls.bus();
        if server.config.read().tls.cluster && bus_tls.is_none() {
            return Err(StartError::BusTlsMissing);
        }
        if let Some(tls) = &bus_tls {
            network = network.over_tls(tls.clone());
        }
        let raft = Raft::new(
            config.node_id,
            raft_config(config.snapshot_entries)?,
            network.clone(),
            log,
            machine,
        )
        .await
        .map_err(|error| StartError::Raft(error.to_string()))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|error| StartError::Raft(error.to_string()))?;
        if !initialized && !config.join && !config.peers.contains_key(&config.node_id) {
            raft.shutdown().await.ok();
            return Err(StartError::NotAPeer(config.node_id));
        }
        let (batcher, batching) = Batcher::start(raft.clone(), Arc::new(Stamps::new(state)));
        let (read_barrier, reading) = ReadBarrier::start(raft.clone(), network, config.node_id);
        let client_port = server.config.read().port;
        let replication = Arc::new(Replication {
            raft: raft.clone(),
            node_id: config.node_id,
            own_ports: (client_port, config.bus_port),
            batcher,
            read_barrier,
            tasks: Mutex::new(vec![batching, reading]),
        });
        let serving = serve_cluster(
            bus,
            raft.clone(),
            config.secret.clone(),
            bus_tls,
            config.node_id,
        );
        let ticking = tick_while_leading(Arc::downgrade(&replication));
        replication
            .tasks
            .lock()
            .extend([tokio::spawn(serving), tokio::spawn(ticking)]);
        // A node that was initialized finds its membership in its log: --peers and --join
        // only matter the first time it starts.
        if !initialized {
            if config.join {
                tracing::info!(
                    node_id = config.node_id,
                    "waiting to be added to the cluster: run CLUSTER ADDNODE on its leader"
                );
            } else if let Err(error) = raft.initialize(initial_members(config)).await {
                // Every initial voter of a new cluster proposes the same membership; one that
                // hears from a leader first is refused, which is expected.
                tracing::debug!(%error, "cluster membership already initialized");
            }
        }
        Ok(replication)
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The node that leads now, if one is known.
    pub(crate) fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Where clients reach node `id`, as `host:port`.
    pub(crate) fn client_addr(&self, id: NodeId) -> Option<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let node = metrics.membership_config.membership().get_node(&id);
        node.map(|addr| addr.client.clone())
    }

    /// Node `id`'s client host (without brackets) and port, as `-MOVED` names them.
    pub(crate) fn client_endpoint(&self, id: NodeId) -> Option<(String, u16)> {
        self.client_addr(id).map(|addr| split_host_port(&addr))
    }

    /// Replicates `proposal` and answers, once it is committed (durable on a majority) and
    /// applied here, what applying it answered, with the index of its entry. Concurrent
    /// proposals share entries (see `batcher`).
    pub(crate) async fn propose(&self, proposal: Proposal) -> Answer {
        self.batcher.submit(proposal).answer().await
    }

    /// Queues `proposal` without waiting: for a connection that pipelines writes, whose
    /// replies it collects in order later.
    pub(crate) fn submit(&self, proposal: Proposal) -> Awaited {
        self.batcher.submit(proposal)
    }

    /// Waits until this node has applied everything acknowledged before the call (the read
    /// index its leader, or itself when it leads, gave once a quorum confirmed the leadership):
    /// what a read here then sees is linearizable.
    pub(crate) async fn read_barrier(&self) -> Result<(), ProposeError> {
        self.read_barrier.wait().await
    }

    /// How many followers hold the log up to `index` (as far as this node, the leader, knows);
    /// 0 on a follower.
    pub(crate) fn replicas_holding(&self, index: u64) -> usize {
        let metrics = self.raft.metrics().borrow().clone();
        count_holding(&metrics, self.node_id, index)
    }

    /// Waits until `wanted` followers hold the log up to `index`, or `deadline`; answers how
    /// many do then, or `None` on a node that does not lead.
    pub(crate) async fn wait_for_replicas(
        &self,
        index: u64,
        wanted: i64,
        deadline: Option<std::time::Instant>,
    ) -> Option<usize> {
        let mut metrics = self.raft.metrics();
        loop {
            let (leads, holding) = {
                let now = metrics.borrow_and_update();
                let leads = now.current_leader == Some(self.node_id);
                (leads, count_holding(&now, self.node_id, index))
            };
            if !leads {
                return None;
            }
            if holding as i64 >= wanted {
                return Some(holding);
            }
            let changed = metrics.changed();
            let stop = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline.into(), changed)
                    .await
                    .map_or(true, |changed| changed.is_err()),
                None => changed.await.is_err(),
            };
            if stop {
                return Some(self.replicas_holding(index));
            }
        }
    }

    /// The cluster as this node sees it now: the nodes of the membership in the log (voters and
    /// learners); the voters form the shard.
    pub(crate) fn view(&self) -> ClusterView {
        let metrics = self.raft.metrics().borrow().clone();
        let leader = metrics.current_leader;
        let matched = metrics.replication.unwrap_or_default();
        let membership = metrics.membership_config.membership();
        let mut nodes: Vec<ViewNode> = membership
            .nodes()
            .map(|(id, addr)| {
                let (client_ip, client_port) = split_host_port(&addr.client);
                let connected = if *id == self.node_id {
                    true
                } else if leader == Some(self.node_id) {
                    matched.get(id).is_some_and(Option::is_some)
                } else {
                    Some(*id) == leader
                };
                ViewNode {
                    id: *id,
                    client_ip,
                    client_port,
                    bus_port: split_host_port(&addr.bus).1,
                    connected,
                }
            })
            .collect();
        if !nodes.iter().any(|node| node.id == self.node_id) {
            nodes.push(self.unadded_self());
            nodes.sort_by_key(|node| node.id);
        }
        let shard = ViewShard {
            slots: vec![(0, LAST_SLOT)],
            members: membership.voter_ids().collect(),
            leader,
            applied_index: metrics.last_applied.map_or(0, |id| id.index),
        };
        ClusterView {
            myself: self.node_id,
            term: metrics.current_term,
            nodes,
            shards: vec![shard],
        }
    }

    /// This node as the view shows it while it is no member (started with `--join` and not
    /// added yet, or removed): with its ports, and no address, which only `CLUSTER ADDNODE`
    /// gives it, as a Redis Cluster node knows no address of its own before it meets another.
    fn unadded_self(&self) -> ViewNode {
        let (client_port, bus_port) = self.own_ports;
        ViewNode {
            id: self.node_id,
            client_ip: String::new(),
            client_port,
            bus_port,
            connected: true,
        }
    }

    /// Stops the node: the bus, the timer, and openraft.
    pub async fn shutdown(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            task.abort();
        }
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "the Raft node did not stop cleanly");
        }
    }
}

/// The membership a new cluster starts with: every peer, as a voter.
fn initial_members(config: &ClusterConfig) -> BTreeMap<NodeId, NodeAddr> {
    config
        .peers
        .iter()
        .map(|(id, peer)| {
            let addr = NodeAddr {
                client: peer.client(),
                bus: peer.bus(),
            };
            (*id, addr)
        })
        .collect()
}

fn open_log(dir: &Path, durability: Durability) -> Result<LogStore, StartError> {
    let shown = dir.display().to_string();
    let options = WalOptions {
        durability,
        commit_save_interval: Some(COMMIT_SAVE_INTERVAL),
        ..WalOptions::default()
    };
    let (log, recovery) = LogStore::open(dir, options).map_err(|error| StartError::Log {
        dir: shown.clone(),
        reason: error.to_string(),
    })?;
    if let Some(damage) = recovery.damage {
        return Err(StartError::Damaged {
            dir: shown,
            reason: damage.to_string(),
        });
    }
    if let Some(torn) = recovery.torn_tail {
        tracing::warn!(dir = %shown, damage = %torn, "cut a torn write from the Raft log's end");
    }
    Ok(log)
}

/// How many nodes other than `me` the leader's metrics show holding the log up to `index`.
fn count_holding(
    metrics: &openraft::RaftMetrics<NodeId, NodeAddr>,
    me: NodeId,
    index: u64,
) -> usize {
    metrics.replication.as_ref().map_or(0, |matched| {
        matched
            .iter()
            .filter(|(id, log)| **id != me && log.is_some_and(|log| log.index >= index))
            .count()
    })
}

/// `host:port` split; a bracketed IPv6 host loses its brackets.
fn split_host_port(addr: &str) -> (String, u16) {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "0"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host.to_owned(), port.parse().unwrap_or(0))
}

/// While the node leads, proposes a tick every [`TICK_INTERVAL`]; ends with the node.
async fn tick_while_leading(replication: std::sync::Weak<Replication>) {
    let mut interval = tokio::time::interval(TICK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(replication) = replication.upgrade() else {
            return;
        };
        if replication.leader() == Some(replication.node_id)
            && let Err(ProposeError::Unavailable(reason)) =
                replication.propose(Proposal::Tick).await.map(|_| ())
        {
            tracing::debug!(%reason, "the leader's tick was not replicated");
        }
    }
}
