//! Three nodes in one process, each a real `openraft::Raft` over its own Raft log and a counter
//! state, talking through an in-memory network: election, replication, and a new leader after
//! the old one is gone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{Config, Raft};
use parking_lot::Mutex;
use tempfile::TempDir;

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::state_machine::test_counter::{CounterMap, add};
use super::types::{NodeAddr, NodeId, TypeConfig};
use super::wal::WalOptions;

/// The nodes reachable in the process.
#[derive(Clone, Default)]
struct Router {
    nodes: Arc<Mutex<BTreeMap<NodeId, Raft<TypeConfig>>>>,
}

struct Connection {
    router: Router,
    target: NodeId,
}

type RpcError<E = openraft::error::Infallible> = RPCError<NodeId, NodeAddr, RaftError<NodeId, E>>;

impl Connection {
    fn target(&self) -> Option<Raft<TypeConfig>> {
        self.router.nodes.lock().get(&self.target).cloned()
    }

    fn down<E: std::error::Error>(&self) -> RpcError<E> {
        let down = std::io::Error::other(format!("node {} is down", self.target));
        RPCError::Unreachable(Unreachable::new(&down))
    }

    fn remote<E: std::error::Error>(&self, error: RaftError<NodeId, E>) -> RpcError<E> {
        RPCError::RemoteError(RemoteError::new(self.target, error))
    }
}

impl RaftNetworkFactory<TypeConfig> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &NodeAddr) -> Connection {
        Connection {
            router: self.clone(),
            target,
        }
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        let raft = self.target().ok_or_else(|| self.down())?;
        raft.append_entries(rpc).await.map_err(|e| self.remote(e))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        let raft = self.target().ok_or_else(|| self.down())?;
        raft.install_snapshot(rpc).await.map_err(|e| self.remote(e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        let raft = self.target().ok_or_else(|| self.down())?;
        raft.vote(rpc).await.map_err(|e| self.remote(e))
    }
}

pub(super) struct Node {
    _dir: TempDir,
    pub(super) raft: Raft<TypeConfig>,
    pub(super) counters: Arc<CounterMap>,
}

fn addr(id: NodeId) -> NodeAddr {
    NodeAddr {
        client: format!("127.0.0.1:{}", 6379 + id),
        bus: format!("127.0.0.1:{}", 16379 + id),
    }
}

/// Opens node `id` in a fresh directory, reaching the others through `network`.
pub(super) async fn open_node<N: RaftNetworkFactory<TypeConfig>>(
    id: NodeId,
    network: N,
    config: &Arc<Config>,
) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let (log, recovery) = LogStore::open(&dir.path().join("log"), WalOptions::default()).unwrap();
    assert!(recovery.is_whole());
    let counters = Arc::new(CounterMap::open(dir.path()).unwrap());
    let machine = StateMachine::open(dir.path(), Arc::clone(&counters)).unwrap();
    let raft = Raft::new(id, Arc::clone(config), network, log, machine)
        .await
        .unwrap();
    Node {
        _dir: dir,
        raft,
        counters,
    }
}

async fn start(id: NodeId, router: &Router, config: &Arc<Config>) -> Node {
    let node = open_node(id, router.clone(), config).await;
    router.nodes.lock().insert(id, node.raft.clone());
    node
}

/// Short timeouts, so that a lost leader is replaced quickly.
pub(super) fn fast_config() -> Arc<Config> {
    let config = Config {
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        ..Config::default()
    };
    Arc::new(config.validate().unwrap())
}

const WAIT: Option<Duration> = Some(Duration::from_secs(20));

/// Waits until `nodes` agree on a leader other than `not`, and returns it.
pub(super) async fn leader_among(nodes: &BTreeMap<NodeId, Node>, not: Option<NodeId>) -> NodeId {
    let any = nodes.values().next().unwrap();
    let metrics = any
        .raft
        .wait(WAIT)
        .metrics(
            |m| m.current_leader.is_some() && m.current_leader != not,
            "a leader is elected",
        )
        .await
        .unwrap();
    metrics.current_leader.unwrap()
}

/// Writes `count` commands through the leader; returns the index of the last.
pub(super) async fn write(leader: &Node, first: u64, count: u64) -> u64 {
    let mut last = 0;
    for i in first..first + count {
        let written = leader
            .raft
            .client_write(add(1_700_000_000_000 + i, "jobs", i))
            .await
            .unwrap();
        last = written.log_id.index;
    }
    last
}

pub(super) async fn wait_applied(nodes: &BTreeMap<NodeId, Node>, index: u64) {
    for node in nodes.values() {
        node.raft
            .wait(WAIT)
            .applied_index_at_least(Some(index), "the commands are applied")
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_and_elect_a_new_leader_when_one_is_gone() {
    let config = fast_config();
    let router = Router::default();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        nodes.insert(id, start(id, &router, &config).await);
    }
    let members: BTreeMap<NodeId, NodeAddr> = (1..=3).map(|id| (id, addr(id))).collect();
    nodes[&1].raft.initialize(members).await.unwrap();

    replicate_then_lose_the_leader(&mut nodes, |gone| {
        router.nodes.lock().remove(&gone);
    })
    .await;
}

/// The scenario both networks must pass: five writes applied identically on every node, then
/// the leader stopped (`stop` cuts it off the network), a new leader elected among the others,
/// and three more writes applied identically on both.
pub(super) async fn replicate_then_lose_the_leader(
    nodes: &mut BTreeMap<NodeId, Node>,
    stop: impl FnOnce(NodeId),
) {
    let first_leader = leader_among(nodes, None).await;
    let last = write(&nodes[&first_leader], 1, 5).await;
    wait_applied(nodes, last).await;
    let history = nodes[&1].counters.history();
    assert_eq!(history.len(), 5);
    for node in nodes.values() {
        assert_eq!(
            node.counters.history(),
            history,
            "same commands, same order"
        );
        assert_eq!(node.counters.value("jobs"), 15);
    }

    let old = nodes.remove(&first_leader).unwrap();
    stop(first_leader);
    old.raft.shutdown().await.unwrap();
    let new_leader = leader_among(nodes, Some(first_leader)).await;
    assert_ne!(new_leader, first_leader);
    let last = write(&nodes[&new_leader], 6, 3).await;
    wait_applied(nodes, last).await;
    let survivors: Vec<_> = nodes.values().map(|node| node.counters.history()).collect();
    assert_eq!(survivors[0], survivors[1]);
    assert_eq!(survivors[0][..5], history[..]);
    assert_eq!(survivors[0].len(), 8);
    for node in nodes.values() {
        assert_eq!(node.counters.value("jobs"), 15 + 6 + 7 + 8);
    }
}
