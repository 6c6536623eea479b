//! Three nodes in one process, as in `cluster_tests`, but talking over the cluster bus on
//! 127.0.0.1: replication and a new leader over TCP, a peer without the secret refused, and
//! hostile connections closed while the nodes keep serving.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::error::RPCError;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::VoteRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::cluster_tests::{
    Node, fast_config, leader_among, open_node, replicate_then_lose_the_leader, wait_applied, write,
};
use super::network::{BusTimeouts, ClusterNetwork, ClusterSecret, serve_cluster_with};
use super::types::{NodeAddr, NodeId, Vote};

const SECRET: &[u8] = b"a cluster secret of 32 bytes....";
const BOUND: Duration = Duration::from_secs(10);

fn timeouts() -> BusTimeouts {
    BusTimeouts {
        handshake: Duration::from_millis(500),
        idle: Duration::from_secs(5),
        exchange: Duration::from_secs(5),
    }
}

struct Cluster {
    nodes: BTreeMap<NodeId, Node>,
    servers: BTreeMap<NodeId, JoinHandle<()>>,
    addrs: BTreeMap<NodeId, NodeAddr>,
}

/// Starts nodes 1 to 3, each serving the bus on a port the OS chose, and initializes them.
async fn start_cluster() -> Cluster {
    let config = fast_config();
    let secret = ClusterSecret::new(SECRET).unwrap();
    let mut listeners = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for id in 1..=3 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bus = listener.local_addr().unwrap().to_string();
        let client = format!("127.0.0.1:{}", 6379 + id);
        addrs.insert(id, NodeAddr { client, bus });
        listeners.insert(id, listener);
    }
    let mut nodes = BTreeMap::new();
    let mut servers = BTreeMap::new();
    for (id, listener) in listeners {
        let network = ClusterNetwork::with_timeouts(id, secret.clone(), timeouts());
        let node = open_node(id, network, &config).await;
        let serving = serve_cluster_with(
            listener,
            vec![node.raft.clone()],
            secret.clone(),
            None,
            id,
            timeouts(),
        );
        servers.insert(id, tokio::spawn(serving));
        nodes.insert(id, node);
    }
    nodes[&1].raft.initialize(addrs.clone()).await.unwrap();
    Cluster {
        nodes,
        servers,
        addrs,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_tcp_replicate_and_elect_a_new_leader_when_one_is_gone() {
    let mut cluster = start_cluster().await;
    let servers = &cluster.servers;
    replicate_then_lose_the_leader(&mut cluster.nodes, |gone| servers[&gone].abort()).await;
}

/// Asks node `target`, at `addr`, for a vote as node 9.
async fn ask_vote(network: &mut ClusterNetwork, target: NodeId, addr: &NodeAddr) -> bool {
    let mut peer = network.new_client(target, addr).await;
    let rpc = VoteRequest {
        vote: Vote::new(1, 9),
        last_log_id: None,
    };
    match peer.vote(rpc, RPCOption::new(BOUND)).await {
        Ok(_) => true,
        Err(RPCError::Unreachable(_)) => false,
        Err(other) => panic!("a refused peer should see the target unreachable: {other}"),
    }
}

/// Checks that the cluster still elects, replicates and applies.
async fn still_works(cluster: &Cluster, first: u64) {
    let leader = leader_among(&cluster.nodes, None).await;
    let last = write(&cluster.nodes[&leader], first, 2).await;
    wait_applied(&cluster.nodes, last).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_the_wrong_secret_or_target_is_refused() {
    let cluster = start_cluster().await;
    still_works(&cluster, 1).await;
    let wrong = ClusterSecret::new(*b"not the cluster secret!!").unwrap();
    let mut outsider = ClusterNetwork::with_timeouts(9, wrong, timeouts());
    assert!(!ask_vote(&mut outsider, 1, &cluster.addrs[&1]).await);

    let right = ClusterSecret::new(SECRET).unwrap();
    let mut member = ClusterNetwork::with_timeouts(9, right, timeouts());
    assert!(!ask_vote(&mut member, 2, &cluster.addrs[&1]).await);
    assert!(ask_vote(&mut member, 1, &cluster.addrs[&1]).await);
    still_works(&cluster, 3).await;
}

/// Connects to `bus` and reads the server's challenge.
async fn challenged(bus: &str) -> TcpStream {
    let mut stream = TcpStream::connect(bus).await.unwrap();
    let mut challenge = [0; 8 + 8 + 32];
    let read = tokio::time::timeout(BOUND, stream.read_exact(&mut challenge)).await;
    read.expect("the challenge comes at once").unwrap();
    assert_eq!(&challenge[8..16], b"WEIRBUS1");
    stream
}

/// Waits, within a bound, for the server to close `stream`, with nothing more sent.
async fn closed_by_server(mut stream: TcpStream) {
    let mut received = Vec::new();
    let read = tokio::time::timeout(BOUND, stream.read_to_end(&mut received)).await;
    match read.expect("the server closes the connection") {
        Ok(_) => assert!(received.is_empty(), "{received:?}"),
        Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}"),
    }
}

fn frame(len: u32, crc: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = len.to_le_bytes().to_vec();
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_are_closed_and_the_nodes_keep_serving() {
    let cluster = start_cluster().await;
    still_works(&cluster, 1).await;
    let bus = &cluster.addrs[&1].bus;
    let junk = b"not a handshake answer";
    let attempts = [
        b"GET / HTTP/1.1\r\nHost: weir\r\n\r\n".to_vec(),
        frame(junk.len() as u32, 0xdead_beef, junk),
        frame(junk.len() as u32, crc32fast::hash(junk), junk),
        frame(u32::MAX, 0, b""),
        frame(64 << 20 | 1, 0, b"the rest never comes"),
    ];
    for attempt in attempts {
        let mut stream = challenged(bus).await;
        stream.write_all(&attempt).await.unwrap();
        closed_by_server(stream).await;
    }
    closed_by_server(challenged(bus).await).await;
    still_works(&cluster, 3).await;
}

/// Sockets of this machine in `TIME_WAIT` towards the bus address `bus` (`/proc/net/tcp`):
/// one per connection to it that was opened and closed.
fn closed_connections_to(bus: &str) -> usize {
    let port = bus.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let remote = format!("0100007F:{port:04X}");
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(2) == Some(&remote.as_str()) && fields.get(3) == Some(&"06")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_checks_reuse_the_bus_connections() {
    let cluster = start_cluster().await;
    still_works(&cluster, 1).await;
    let leader = leader_among(&cluster.nodes, None).await;
    // Each check makes openraft create a client per follower; without reusing the open
    // connections, each would connect, authenticate and close again.
    for _ in 0..300 {
        cluster.nodes[&leader]
            .raft
            .ensure_linearizable()
            .await
            .unwrap();
    }
    for (id, addr) in &cluster.addrs {
        if *id != leader {
            let closed = closed_connections_to(&addr.bus);
            assert!(
                closed < 20,
                "{closed} connections to node {id} were opened and closed"
            );
        }
    }
}
