//! A queue-server node of a replicated cluster: for each shard, a Raft group with its log, its
//! state machine (the shard's store) and the leader's timer; and the cluster bus they share.

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
use crate::server::cluster_routing::{shard_of_slot, slots_of_shard};
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
    node_id: NodeId,
    /// This node's client and bus ports, for its own line in the view before it is a member.
    own_ports: (u16, u16),
    /// One Raft group a shard, by shard.
    groups: Vec<Group>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// One shard's Raft group on this node.
pub(super) struct Group {
    pub(super) raft: Raft<TypeConfig>,
    /// The bus as this group uses it: connections to the same group on the other nodes.
    pub(super) network: ClusterNetwork,
    batcher: Batcher,
    read_barrier: ReadBarrier,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("node_id", &self.node_id)
            .field("shards", &self.groups.len())
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
    /// Opens each shard's Raft log (under `raft` in the shard's store directory), starts its
    /// group on the shard's store, serves the cluster bus on `bus`, and forms the cluster with
    /// the peers (once a majority is up).
    pub async fn start(
        server: &Arc<Server>,
        config: &ClusterConfig,
        bus: TcpListener,
        durability: Durability,
    ) -> Result<Arc<Replication>, StartError> {
        let network = bus_network(server, config, &bus)?;
        let mut groups = Vec::with_capacity(server.shard_count());
        let mut tasks = Vec::new();
        for shard in 0..server.shard_count() {
            match start_group(server, config, durability, &network, shard).await {
                Ok((group, started)) => {
                    groups.push(group);
                    tasks.extend(started);
                }
                Err(error) => {
                    for group in &groups {
                        group.raft.shutdown().await.ok();
                    }
                    return Err(error);
                }
            }
        }
        let initialized = groups[0]
            .raft
            .is_initialized()
            .await
            .map_err(|error| StartError::Raft(error.to_string()))?;
        if !initialized && !config.join && !config.peers.contains_key(&config.node_id) {
            for group in &groups {
                group.raft.shutdown().await.ok();
            }
            return Err(StartError::NotAPeer(config.node_id));
        }
        let rafts = groups.iter().map(|group| group.raft.clone()).collect();
        let client_port = server.config.read().port;
        let replication = Arc::new(Replication {
            node_id: config.node_id,
            own_ports: (client_port, config.bus_port),
            groups,
            tasks: Mutex::new(tasks),
        });
        let serving = serve_cluster(
            bus,
            rafts,
            config.secret.clone(),
            server.tls.bus(),
            config.node_id,
        );
        let mut started = vec![tokio::spawn(serving)];
        for shard in 0..replication.groups.len() {
            let ticking = tick_while_leading(Arc::downgrade(&replication), shard);
            started.push(tokio::spawn(ticking));
        }
        if let Some(interval) = config
            .rebalance_interval
            .filter(|_| replication.groups.len() > 1)
        {
            let rebalancing =
                super::rebalance::rebalance_every(Arc::downgrade(&replication), interval);
            started.push(tokio::spawn(rebalancing));
        }
        // A node that was initialized finds its membership in its log: --peers and --join
        // only matter the first time it starts. Each shard is formed on its own, so that one a
        // crash kept from forming on the first start is formed on the next.
        if config.join {
            if !initialized {
                tracing::info!(
                    node_id = config.node_id,
                    "waiting to be added to the cluster: run CLUSTER ADDNODE on its leader"
                );
            }
        } else {
            for shard in 0..replication.groups.len() {
                let forming = form_group(Arc::downgrade(&replication), config.clone(), shard);
                started.push(tokio::spawn(forming));
            }
        }
        replication.tasks.lock().extend(started);
        Ok(replication)
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// How many shards (Raft groups) the cluster has.
    pub(crate) fn shard_count(&self) -> usize {
        self.groups.len()
    }

    /// The shard that holds `slot`.
    pub(crate) fn shard_of(&self, slot: u16) -> usize {
        shard_of_slot(slot, self.groups.len() as u16)
    }

    /// Shard `shard`'s group.
    pub(super) fn group(&self, shard: usize) -> &Group {
        &self.groups[shard]
    }

    /// The node that leads shard `shard` now, if one is known.
    pub(crate) fn leader(&self, shard: usize) -> Option<NodeId> {
        self.groups[shard].raft.metrics().borrow().current_leader
    }

    /// Whether this node leads shard `shard` now.
    pub(crate) fn leads(&self, shard: usize) -> bool {
        self.leader(shard) == Some(self.node_id)
    }

    /// The shards this node leads now.
    pub(crate) fn led_shards(&self) -> Vec<usize> {
        (0..self.groups.len())
            .filter(|shard| self.leads(*shard))
            .collect()
    }

    /// Where node `id` is reached, as the membership of the first shard that has it says.
    pub(crate) fn node_addr(&self, id: NodeId) -> Option<NodeAddr> {
        self.groups.iter().find_map(|group| {
            let metrics = group.raft.metrics();
            let metrics = metrics.borrow();
            let node = metrics.membership_config.membership().get_node(&id);
            node.cloned()
        })
    }

    /// Where clients reach node `id`, as `host:port`.
    pub(crate) fn client_addr(&self, id: NodeId) -> Option<String> {
        self.node_addr(id).map(|addr| addr.client)
    }

    /// Node `id`'s client host (without brackets) and port, as `-MOVED` names them.
    pub(crate) fn client_endpoint(&self, id: NodeId) -> Option<(String, u16)> {
        self.client_addr(id).map(|addr| split_host_port(&addr))
    }

    /// Replicates `proposal` through shard `shard`'s log and answers, once it is committed
    /// (durable on a majority) and applied here, what applying it answered, with the index of
    /// its entry. Concurrent proposals share entries (see `batcher`).
    pub(crate) async fn propose(&self, shard: usize, proposal: Proposal) -> Answer {
        self.groups[shard].batcher.submit(proposal).answer().await
    }

    /// Holds shard `shard`'s proposals back (`true`) or lets them through again (`false`):
    /// see `Batcher::hold`.
    pub(super) fn hold_proposals(&self, shard: usize, held: bool) {
        self.groups[shard].batcher.hold(held);
    }

    /// Waits until shard `shard`'s batches handed to Raft are answered: see `Batcher::settle`.
    pub(super) async fn settle_proposals(&self, shard: usize, limit: Duration) -> bool {
        self.groups[shard].batcher.settle(limit).await
    }

    /// Queues `proposal` to shard `shard`'s log without waiting: for a connection that
    /// pipelines writes, whose replies it collects in order later.
    pub(crate) fn submit(&self, shard: usize, proposal: Proposal) -> Awaited {
        self.groups[shard].batcher.submit(proposal)
    }

    /// Waits until this node has applied everything of shard `shard` acknowledged before the
    /// call (the read index its leader, or itself when it leads, gave once a quorum confirmed
    /// the leadership): what a read of the shard here then sees is linearizable.
    pub(crate) async fn read_barrier(&self, shard: usize) -> Result<(), ProposeError> {
        self.groups[shard].read_barrier.wait().await
    }

    /// How many followers hold shard `shard`'s log up to `index` (as far as this node, the
    /// leader, knows); 0 on a follower.
    pub(crate) fn replicas_holding(&self, shard: usize, index: u64) -> usize {
        let metrics = self.groups[shard].raft.metrics().borrow().clone();
        count_holding(&metrics, self.node_id, index)
    }

    /// Waits until `wanted` followers hold shard `shard`'s log up to `index`, or `deadline`;
    /// answers how many do then, or `None` on a node that does not lead the shard.
    pub(crate) async fn wait_for_replicas(
        &self,
        (shard, index): (usize, u64),
        wanted: i64,
        deadline: Option<std::time::Instant>,
    ) -> Option<usize> {
        let mut metrics = self.groups[shard].raft.metrics();
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
                return Some(self.replicas_holding(shard, index));
            }
        }
    }

    /// The cluster as this node sees it now: the nodes of every shard's membership (voters and
    /// learners), and each shard's slots, voters and leader.
    pub(crate) fn view(&self) -> ClusterView {
        let all: Vec<_> = self
            .groups
            .iter()
            .map(|group| group.raft.metrics().borrow().clone())
            .collect();
        let mut addrs: BTreeMap<NodeId, NodeAddr> = BTreeMap::new();
        for metrics in &all {
            for (id, addr) in metrics.membership_config.membership().nodes() {
                addrs.entry(*id).or_insert_with(|| addr.clone());
            }
        }
        let mut nodes: Vec<ViewNode> = addrs
            .iter()
            .map(|(id, addr)| {
                let (client_ip, client_port) = split_host_port(&addr.client);
                ViewNode {
                    id: *id,
                    client_ip,
                    client_port,
                    bus_port: split_host_port(&addr.bus).1,
                    connected: self.hears_from(&all, *id),
                }
            })
            .collect();
        if !addrs.contains_key(&self.node_id) {
            nodes.push(self.unadded_self());
            nodes.sort_by_key(|node| node.id);
        }
        let count = all.len() as u16;
        let shards = all
            .iter()
            .enumerate()
            .map(|(shard, metrics)| ViewShard {
                slots: vec![slots_of_shard(shard, count)],
                members: metrics.membership_config.membership().voter_ids().collect(),
                leader: metrics.current_leader,
                applied_index: metrics.last_applied.map_or(0, |id| id.index),
            })
            .collect();
        ClusterView {
            myself: self.node_id,
            term: all[0].current_term,
            nodes,
            shards,
        }
    }

    /// Whether this node hears from node `id`: it is this node, or a follower of a shard this
    /// node leads that answers, or the leader of a shard this node follows.
    fn hears_from(&self, all: &[openraft::RaftMetrics<NodeId, NodeAddr>], id: NodeId) -> bool {
        id == self.node_id
            || all.iter().any(|metrics| {
                if metrics.current_leader == Some(self.node_id) {
                    let matched = metrics.replication.as_ref();
                    matched.is_some_and(|matched| matched.get(&id).is_some_and(Option::is_some))
                } else {
                    metrics.current_leader == Some(id)
                }
            })
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

    /// Stops the node: the bus, the timers, and every shard's openraft.
    pub async fn shutdown(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            task.abort();
        }
        for (shard, group) in self.groups.iter().enumerate() {
            if let Err(error) = group.raft.shutdown().await {
                tracing::warn!(shard, %error, "the Raft node did not stop cleanly");
            }
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

/// While the node leads shard `shard`, proposes a tick to its log every [`TICK_INTERVAL`];
/// ends with the node.
async fn tick_while_leading(replication: std::sync::Weak<Replication>, shard: usize) {
    let mut interval = tokio::time::interval(TICK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(replication) = replication.upgrade() else {
            return;
        };
        if replication.leads(shard)
            && let Err(ProposeError::Unavailable(reason)) =
                replication.propose(shard, Proposal::Tick).await.map(|_| ())
        {
            tracing::debug!(shard, %reason, "the leader's tick was not replicated");
        }
    }
}

/// Forms shard `shard`'s group with the initial voters, unless it is formed already. Every
/// initial voter proposes the same membership; one that hears from a leader first is refused,
/// as expected. (Which voter leads each shard first is left to the election; rebalancing then
/// hands each shard to its preferred leader.)
async fn form_group(
    replication: std::sync::Weak<Replication>,
    config: ClusterConfig,
    shard: usize,
) {
    let Some(raft) = replication
        .upgrade()
        .map(|replication| replication.groups[shard].raft.clone())
    else {
        return;
    };
    if raft.is_initialized().await.unwrap_or(true) {
        return;
    }
    if let Err(error) = raft.initialize(initial_members(&config)).await {
        tracing::debug!(shard, %error, "the shard's membership is already initialized");
    }
}

/// The bus as this node's groups use it: from the address the node listens on, with TLS when
/// `tls-cluster` is on.
fn bus_network(
    server: &Server,
    config: &ClusterConfig,
    bus: &TcpListener,
) -> Result<ClusterNetwork, StartError> {
    let mut network = ClusterNetwork::new(config.node_id, config.secret.clone());
    let source = bus.local_addr().map(|addr| addr.ip()).ok();
    if let Some(source) = source.filter(|ip| !ip.is_unspecified()) {
        network = network.from_address(source);
    }
    let bus_tls = server.tls.bus();
    if server.config.read().tls.cluster && bus_tls.is_none() {
        return Err(StartError::BusTlsMissing);
    }
    if let Some(tls) = bus_tls {
        network = network.over_tls(tls);
    }
    Ok(network)
}

/// Opens shard `shard`'s Raft log and starts its group on the shard's store: its Raft, the
/// batcher that writes its proposals and the task that asks its leader for read indexes.
async fn start_group(
    server: &Arc<Server>,
    config: &ClusterConfig,
    durability: Durability,
    network: &ClusterNetwork,
    shard: usize,
) -> Result<(Group, [JoinHandle<()>; 2]), StartError> {
    let raft_dir = server.shard_dir(shard).join(RAFT_DIR);
    let log = open_log(&raft_dir, durability)?;
    log.forget_leadership(config.node_id)
        .map_err(|error| StartError::Log {
            dir: raft_dir.display().to_string(),
            reason: error.to_string(),
        })?;
    let state = Arc::new(ServerState::new(shard, server.replicated_clock(shard)));
    state.attach(server);
    let machine = StateMachine::open(&raft_dir, Arc::clone(&state))
        .map_err(|error| StartError::Raft(error.to_string()))?;
    let network = network.for_group(shard as u32);
    let raft = Raft::new(
        config.node_id,
        raft_config(config.snapshot_entries)?,
        network.clone(),
        log,
        machine,
    )
    .await
    .map_err(|error| StartError::Raft(error.to_string()))?;
    let (batcher, batching) = Batcher::start(raft.clone(), Arc::new(Stamps::new(state)));
    let (read_barrier, reading) = ReadBarrier::start(raft.clone(), network.clone(), config.node_id);
    let group = Group {
        raft,
        network,
        batcher,
        read_barrier,
    };
    Ok((group, [batching, reading]))
}
