//! The cluster flags: this node's id, the initial voters and where they are (or that the node
//! joins a running cluster), the bus port and the shared secret.

use std::collections::BTreeMap;
use std::fmt;

use crate::cluster::network::ClusterSecret;

/// Where a node of the cluster is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    /// The host (a name or an IP address), the same for both ports.
    pub host: String,
    /// The client (RESP) port, which `CLUSTER SLOTS` and `-MOVED` announce.
    pub client_port: u16,
    /// The cluster bus port.
    pub bus_port: u16,
}

impl PeerAddr {
    /// Reads `HOST:BUSPORT` (the client port is then the bus port less 10,000) or
    /// `HOST:CLIENTPORT@BUSPORT`, as `CLUSTER NODES` writes addresses.
    pub fn parse(addr: &str) -> Result<PeerAddr, String> {
        parse_peer_addr(addr)
    }

    /// `host:client_port`.
    pub fn client(&self) -> String {
        join(&self.host, self.client_port)
    }

    /// `host:bus_port`.
    pub fn bus(&self) -> String {
        join(&self.host, self.bus_port)
    }
}

fn join(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// How a node of a replicated cluster starts.
#[derive(Clone)]
pub struct ClusterConfig {
    /// This node's id (`--node-id`): one of the peers, unless the node joins.
    pub node_id: u64,
    /// Every initial voter, this node included (`--peers`), the same on every node; empty for
    /// a node that joins a running cluster (`--join`).
    pub peers: BTreeMap<u64, PeerAddr>,
    /// Whether the node joins a running cluster: it does not propose the initial membership,
    /// and waits until the leader adds it (`CLUSTER ADDNODE`).
    pub join: bool,
    /// The port the cluster bus listens on (`--cluster-port`).
    pub bus_port: u16,
    /// The secret every node shares (`--cluster-secret`).
    pub secret: ClusterSecret,
    /// How many Raft entries this node applies between two snapshots of its store
    /// (`--snapshot-entries`), after which its Raft log is purged but for the entries just below
    /// the snapshot (as many as this interval, at most [`LOG_KEPT_AFTER_SNAPSHOT`]); 0: never
    /// (the whole log is kept).
    pub snapshot_entries: u64,
    /// How many shards the slots are cut into (`--cluster-shards`), each its own Raft group
    /// with its own log and store; fixed when the cluster is formed, the same on every node.
    pub shards: u16,
    /// How often each node hands the leadership of one shard it leads over to the shard's
    /// preferred leader (`--cluster-rebalance-interval`); `None`: never on its own.
    pub rebalance_interval: Option<std::time::Duration>,
}

/// The most shards a cluster may have (`--cluster-shards`): each is a Raft group with its own
/// log, store and timers on every node.
pub const MAX_SHARDS: u16 = 1024;

/// The default of [`ClusterConfig::snapshot_entries`].
pub const DEFAULT_SNAPSHOT_ENTRIES: u64 = 100_000;

/// Raft entries kept below a snapshot, so that a node briefly behind catches up from the log
/// rather than with a whole snapshot.
pub const LOG_KEPT_AFTER_SNAPSHOT: u64 = 10_000;

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("node_id", &self.node_id)
            .field("peers", &self.peers)
            .field("join", &self.join)
            .field("bus_port", &self.bus_port)
            .field("snapshot_entries", &self.snapshot_entries)
            .field("shards", &self.shards)
            .field("rebalance_interval", &self.rebalance_interval)
            .finish_non_exhaustive()
    }
}

/// The Redis Cluster convention: a node's bus port is its client port plus this.
pub const BUS_PORT_OFFSET: u16 = 10_000;

/// Reads `--peers`: `ID=HOST:BUSPORT` or `ID=HOST:CLIENTPORT@BUSPORT` (as `CLUSTER NODES`
/// writes addresses), separated by commas. Without `@`, the client port is the bus port less
/// 10,000, Redis Cluster's convention.
pub fn parse_peers(text: &str) -> Result<BTreeMap<u64, PeerAddr>, String> {
    let mut peers = BTreeMap::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("`{item}`: write each peer as ID=HOST:BUSPORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("`{item}`: the node id must be a number"))?;
        let peer = parse_peer_addr(addr.trim()).map_err(|reason| format!("`{item}`: {reason}"))?;
        if peers.insert(id, peer).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    if peers.is_empty() {
        return Err("no peers given: list every initial voter, this node included".into());
    }
    Ok(peers)
}

fn parse_peer_addr(addr: &str) -> Result<PeerAddr, String> {
    let (host, ports) = match addr.rsplit_once("]:") {
        Some((host, ports)) => (host.trim_start_matches('['), ports),
        None => addr
            .rsplit_once(':')
            .ok_or("the address needs a port: HOST:BUSPORT")?,
    };
    if host.is_empty() {
        return Err("the address needs a host".into());
    }
    let port = |text: &str| {
        text.parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| format!("`{text}` is not a port"))
    };
    let (client_port, bus_port) = match ports.split_once('@') {
        Some((client, bus)) => (port(client)?, port(bus)?),
        None => {
            let bus = port(ports)?;
            let client = bus.checked_sub(BUS_PORT_OFFSET).filter(|port| *port > 0).ok_or_else(
                || format!("bus port {bus} is below {BUS_PORT_OFFSET}: give the client port too, as HOST:CLIENTPORT@BUSPORT"),
            )?;
            (client, bus)
        }
    };
    Ok(PeerAddr {
        host: host.to_owned(),
        client_port,
        bus_port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_read_both_forms() {
        let peers = parse_peers("1=127.0.0.1:17001, 2=127.0.0.2:7002@17102,3=[::1]:17003").unwrap();
        assert_eq!(peers[&1].client(), "127.0.0.1:7001");
        assert_eq!(peers[&1].bus(), "127.0.0.1:17001");
        assert_eq!(peers[&2].client(), "127.0.0.2:7002");
        assert_eq!(peers[&2].bus(), "127.0.0.2:17102");
        assert_eq!(peers[&3].client(), "[::1]:7003");
    }

    #[test]
    fn bad_peers_are_refused_with_the_reason() {
        for (text, reason) in [
            ("", "no peers"),
            ("1=127.0.0.1", "needs a port"),
            ("x=127.0.0.1:17001", "must be a number"),
            ("1=127.0.0.1:17001,1=127.0.0.2:17001", "twice"),
            ("1=127.0.0.1:900", "below 10000"),
            ("1=127.0.0.1:7001@0", "not a port"),
            ("1=:17001", "needs a host"),
        ] {
            let error = parse_peers(text).unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }
}
