//! A harness for tests of a queue-server cluster: it starts one `queue-server` process per
//! node, each on its own loopback address (127.0.N.1, 127.0.N.2, …, so that faults between
//! nodes can be injected per address), finds the leader, and injects the faults a cluster must
//! survive: kill -9, SIGSTOP/SIGCONT, restarts, network partitions (nftables rules between
//! the nodes' addresses, where `nft` runs), and, built with the feature `power-loss-record`, a
//! node's power loss: its Raft log directory put back to what its syncs made durable.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::ConnectionLike;

/// How long a cluster may take to elect a leader.
pub const ELECTION_TIMEOUT: Duration = Duration::from_secs(20);
/// Read and write timeout of every client connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
const SECRET: &str = "a test cluster secret, 32 bytes.";
/// Raft entries between two snapshots of a node's store, unless `WEIR_CLUSTER_SNAPSHOT_ENTRIES`
/// says otherwise: few enough that every test's nodes snapshot, purge their logs and send
/// snapshots to nodes that fell behind, whatever fault the test injects.
const SNAPSHOT_ENTRIES: u64 = 200;

fn snapshot_entries() -> u64 {
    std::env::var("WEIR_CLUSTER_SNAPSHOT_ENTRIES")
        .ok()
        .and_then(|entries| entries.parse().ok())
        .unwrap_or(SNAPSHOT_ENTRIES)
}

/// Waits until `check` holds, for at most 30 s, or fails with `what`.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not happen within 30 s");
}

/// One node's process and where it lives.
pub struct Node {
    pub id: u64,
    pub ip: String,
    pub dir: PathBuf,
    log: PathBuf,
    /// Where the node records its calls to the file system under `dir/raft`, for a power loss.
    power_record: PathBuf,
    child: Option<Child>,
    stopped: bool,
    /// Whether the node joined the running cluster (`--join`) rather than forming it.
    joined: bool,
}

impl Node {
    /// The node's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The node's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A cluster of queue-server processes on loopback.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub port: u16,
    pub bus_port: u16,
    peers: String,
    secret_file: PathBuf,
    fsync: String,
    /// `--snapshot-entries` of every node.
    snapshot_entries: u64,
    /// Flags every node is started with besides the harness's own.
    extra_args: Vec<String>,
    /// The nftables table this cluster's partitions live in, once one was made.
    nft_table: Option<String>,
    /// The nodes' directories and logs; kept after a failure when `WEIR_CLUSTER_KEEP` is set.
    scratch: Option<tempfile::TempDir>,
}

/// A port free on every address in `ips`.
fn free_port(ips: &[String]) -> u16 {
    for _ in 0..50 {
        let listener = TcpListener::bind((ips[0].as_str(), 0)).expect("bind a free port");
        let port = listener.local_addr().expect("local address").port();
        if port > 55_000 {
            continue;
        }
        let bus_free = ips
            .iter()
            .all(|ip| TcpListener::bind((ip.as_str(), port + 10_000)).is_ok());
        let free = ips[1..]
            .iter()
            .all(|ip| TcpListener::bind((ip.as_str(), port)).is_ok());
        if free && bus_free {
            return port;
        }
    }
    panic!("no port free on every node's address");
}

impl Cluster {
    /// Starts `size` nodes on 127.0.`net`.1 … 127.0.`net`.`size`, with `fsync` as their
    /// policy. `net` keeps the clusters of tests that run at once apart.
    pub fn start(net: u8, size: u64, fsync: &str) -> Cluster {
        Cluster::start_with(net, size, fsync, Vec::new())
    }

    /// [`Cluster::start`], every node started with `extra_args` too.
    pub fn start_with(net: u8, size: u64, fsync: &str, extra_args: Vec<String>) -> Cluster {
        let scratch = tempfile::tempdir().expect("scratch directory");
        let ips: Vec<String> = (1..=size).map(|id| format!("127.0.{net}.{id}")).collect();
        let port = free_port(&ips);
        let bus_port = port + 10_000;
        let peers = ips
            .iter()
            .enumerate()
            .map(|(at, ip)| format!("{}={ip}:{port}@{bus_port}", at + 1))
            .collect::<Vec<_>>()
            .join(",");
        let secret_file = scratch.path().join("secret");
        std::fs::write(&secret_file, SECRET).expect("write the secret");
        let nodes = ips
            .iter()
            .enumerate()
            .map(|(at, ip)| {
                let id = at as u64 + 1;
                let dir = scratch.path().join(format!("node{id}"));
                Node {
                    id,
                    ip: ip.clone(),
                    log: scratch.path().join(format!("node{id}.log")),
                    power_record: scratch.path().join(format!("node{id}.power-loss")),
                    dir,
                    child: None,
                    stopped: false,
                    joined: false,
                }
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            port,
            bus_port,
            peers,
            secret_file,
            fsync: fsync.into(),
            snapshot_entries: snapshot_entries(),
            extra_args,
            nft_table: None,
            scratch: Some(scratch),
        };
        for id in 1..=size {
            cluster.launch(id);
        }
        for id in 1..=size {
            cluster.wait_serving(id);
        }
        cluster
    }

    fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn launch(&mut self, id: u64) {
        let (port, bus_port) = (self.port, self.bus_port);
        let peers = self.peers.clone();
        let secret = self.secret_file.clone();
        let fsync = self.fsync.clone();
        let snapshot_entries = self.snapshot_entries.to_string();
        let extra_args = self.extra_args.clone();
        let node = self.node_mut(id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("open the node's log");
        let formation = if node.joined {
            vec!["--join".to_string()]
        } else {
            vec!["--peers".to_string(), peers]
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_queue-server"));
        #[cfg(feature = "power-loss-record")]
        command
            .env(weir::power_loss::ROOT_VAR, node.dir.join("raft"))
            .env(weir::power_loss::RECORD_VAR, &node.power_record);
        let child = command
            .args(["--dir", path_text(&node.dir), "--bind", &node.ip])
            .args(["--port", &port.to_string(), "--fsync", &fsync])
            .args(["--cluster-port", &bus_port.to_string()])
            .args(["--snapshot-entries", &snapshot_entries])
            .args(formation)
            .args([
                "--node-id",
                &id.to_string(),
                "--cluster-secret-file",
                path_text(&secret),
            ])
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start queue-server");
        node.child = Some(child);
        node.stopped = false;
    }

    /// Starts a new node, with the next id and address, that joins the running cluster
    /// (`--join`); the leader must then add it (`CLUSTER ADDNODE`). Returns its id.
    pub fn start_joining_node(&mut self) -> u64 {
        let id = self.nodes.len() as u64 + 1;
        let net = self.nodes[0]
            .ip
            .rsplit_once('.')
            .expect("an IPv4 address")
            .0;
        let ip = format!("{net}.{id}");
        for port in [self.port, self.bus_port] {
            assert!(
                TcpListener::bind((ip.as_str(), port)).is_ok(),
                "port {port} is taken on {ip}"
            );
        }
        let scratch = self.scratch.as_ref().expect("scratch directory").path();
        self.nodes.push(Node {
            id,
            ip,
            dir: scratch.join(format!("node{id}")),
            log: scratch.join(format!("node{id}.log")),
            power_record: scratch.join(format!("node{id}.power-loss")),
            child: None,
            stopped: false,
            joined: true,
        });
        self.launch(id);
        self.wait_serving(id);
        id
    }

    /// Replaces node `old`, lost for good (its process is killed and never restarted), by a
    /// new node: started with `--join`, added with `CLUSTER ADDNODE` on the leader, then `old`
    /// removed with `CLUSTER REMOVENODE`, each sent again to whichever node leads until it is
    /// done. Returns the new node's id.
    pub fn replace(&mut self, old: u64) -> u64 {
        self.kill(old);
        let new = self.start_joining_node();
        self.swap_members(old, new);
        new
    }

    /// Sends `CLUSTER ADDNODE new` to node `to` from another thread, without waiting for the
    /// answer: for a fault injected while the change is under way. The thread answers whether
    /// the node was added.
    pub fn add_node_in_background(&self, to: u64, new: u64) -> std::thread::JoinHandle<bool> {
        let conn = self.conn(to);
        let args = [
            "CLUSTER".to_string(),
            "ADDNODE".to_string(),
            new.to_string(),
            self.address(new),
            "TIMEOUT".to_string(),
            "3000".to_string(),
        ];
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            conn.and_then(|mut conn| query(&mut conn, &args))
                .is_ok_and(|answer| answer == redis::Value::Okay)
        })
    }

    /// Adds node `new` (started with `--join`) and removes node `old`, on whichever node
    /// leads, until both are done.
    pub fn swap_members(&self, old: u64, new: u64) {
        self.add_member(new);
        self.remove_member(old);
    }

    /// Adds node `new` (started with `--join`) on whichever node leads, until it is done.
    pub fn add_member(&self, new: u64) {
        let address = self.address(new);
        self.on_leader(&["CLUSTER", "ADDNODE", &new.to_string(), &address], "");
    }

    /// Removes node `old` on whichever node leads, until it is done.
    pub fn remove_member(&self, old: u64) {
        // A removal whose reply was lost is found done when sent again.
        self.on_leader(
            &["CLUSTER", "REMOVENODE", &old.to_string()],
            &format!("no node {old} "),
        );
    }

    /// Sends `CLUSTER REMOVENODE old` to node `to` from another thread, without waiting for
    /// the answer: for a fault injected while the change is under way. The thread answers
    /// whether the node was removed.
    pub fn remove_node_in_background(&self, to: u64, old: u64) -> std::thread::JoinHandle<bool> {
        let conn = self.conn(to);
        std::thread::spawn(move || {
            conn.and_then(|mut conn| query(&mut conn, &["CLUSTER", "REMOVENODE", &old.to_string()]))
                .is_ok_and(|answer| answer == redis::Value::Okay)
        })
    }

    /// Sends the membership change `args` to the leader until it answers OK (or an error
    /// containing `done`, which means an earlier attempt made the change).
    fn on_leader(&self, args: &[&str], done: &str) {
        let deadline = Instant::now() + ELECTION_TIMEOUT;
        loop {
            let leader = self.leader();
            let answer = self
                .conn(leader)
                .and_then(|mut conn| query(&mut conn, args))
                .and_then(redis::Value::extract_error);
            match answer {
                Ok(redis::Value::Okay) => return,
                Err(error) if !done.is_empty() && error.to_string().contains(done) => return,
                other => assert!(
                    Instant::now() < deadline,
                    "{args:?} was not done within {ELECTION_TIMEOUT:?}: {other:?}"
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `CLUSTER ADDNODE new <its address>` on `admin` and answers the reply.
    pub fn add_node(
        &self,
        admin: &mut redis::Connection,
        new: u64,
    ) -> redis::RedisResult<redis::Value> {
        query(
            admin,
            &["CLUSTER", "ADDNODE", &new.to_string(), &self.address(new)],
        )
    }

    /// `HOST:PORT@BUSPORT` of node `id`, as `CLUSTER ADDNODE` takes it.
    pub fn address(&self, id: u64) -> String {
        format!("{}:{}@{}", self.node(id).ip, self.port, self.bus_port)
    }

    /// Waits until node `id` answers PING.
    pub fn wait_serving(&mut self, id: u64) {
        if let Err(log) = self.try_wait_serving(id) {
            panic!("node {id} does not serve: {log}");
        }
    }

    /// Waits until node `id` answers PING, or its process exits (its log is the error).
    pub fn try_wait_serving(&mut self, id: u64) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut conn) = self.conn(id)
                && redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                return Ok(());
            }
            let node = self.node_mut(id);
            let exited = node
                .child
                .as_mut()
                .is_none_or(|child| child.try_wait().is_ok_and(|status| status.is_some()));
            if exited {
                node.child = None;
                return Err(node.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "not serving after 20 s: {}",
            self.node(id).log_text()
        ))
    }

    /// Whether node `id` runs (and is not paused).
    pub fn is_up(&self, id: u64) -> bool {
        let node = self.node(id);
        node.child.is_some() && !node.stopped
    }

    /// A plain (not cluster-routing) connection to node `id`.
    pub fn conn(&self, id: u64) -> redis::RedisResult<redis::Connection> {
        let node = self.node(id);
        let client = redis::Client::open(format!("redis://{}:{}/", node.ip, self.port))?;
        let conn = client.get_connection_with_timeout(IO_TIMEOUT)?;
        conn.set_read_timeout(Some(IO_TIMEOUT))?;
        conn.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(conn)
    }

    /// A connection to node `id` that reads its own state (`READONLY`).
    pub fn replica_conn(&self, id: u64) -> redis::RedisResult<redis::Connection> {
        let mut conn = self.conn(id)?;
        redis::cmd("READONLY").query::<()>(&mut conn)?;
        Ok(conn)
    }

    /// The addresses Redis Cluster clients start from.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("redis://{}:{}/", node.ip, self.port))
            .collect()
    }

    /// A Redis Cluster client of the `redis` crate over every node.
    pub fn cluster_client(&self) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::builder(self.seeds())
            .connection_timeout(IO_TIMEOUT)
            .response_timeout(IO_TIMEOUT)
            .retries(10)
            .build()
            .expect("cluster client")
    }

    /// How many shards the nodes were started with (`--cluster-shards`, 1 without it).
    pub fn shards(&self) -> u16 {
        self.extra_args
            .iter()
            .position(|arg| arg == "--cluster-shards")
            .and_then(|at| self.extra_args.get(at + 1))
            .and_then(|count| count.parse().ok())
            .unwrap_or(1)
    }

    /// Node `id`'s stores, by shard: its data directory, or each of its shard directories.
    pub fn store_dirs(&self, id: u64) -> Vec<PathBuf> {
        match self.shards() {
            1 => vec![self.dir(id).to_path_buf()],
            count => (0..count)
                .map(|shard| self.dir(id).join("shards").join(shard.to_string()))
                .collect(),
        }
    }

    /// The node that leads slot 0 (the only shard, or the first, whose leader changes the
    /// membership), once the running nodes agree on one.
    pub fn leader(&self) -> u64 {
        self.leader_of_slot(0)
    }

    /// The node that leads `slot`'s shard, once the running nodes agree on one.
    pub fn leader_of_slot(&self, slot: u16) -> u64 {
        let deadline = Instant::now() + ELECTION_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(leader) = self.agreed_leader(slot) {
                return leader;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no leader of slot {slot} within {ELECTION_TIMEOUT:?}");
    }

    fn agreed_leader(&self, slot: u16) -> Option<u64> {
        let mut seen = None;
        for node in self.nodes.iter().filter(|node| self.is_up(node.id)) {
            let mut conn = self.conn(node.id).ok()?;
            let text: String = redis::cmd("CLUSTER").arg("NODES").query(&mut conn).ok()?;
            let waiting = text.lines().any(|line| {
                line.contains("myself")
                    && line.split(' ').nth(1).is_some_and(|a| a.starts_with(':'))
            });
            if waiting {
                // A node waiting to be added knows only itself, and no address of its own.
                continue;
            }
            // The leader is the master with the slot; a learner is a master without any.
            let leader_line = text
                .lines()
                .find(|line| line.contains("master") && holds_slot(line, slot))?;
            let ip = leader_line.split(' ').nth(1)?.split(':').next()?;
            let leader = self.nodes.iter().find(|node| node.ip == ip)?.id;
            if seen.is_some_and(|seen| seen != leader) {
                return None;
            }
            seen = Some(leader);
        }
        seen
    }

    /// kill -9 of node `id`.
    pub fn kill(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(mut child) = node.child.take() {
            if node.stopped {
                signal(&child, libc::SIGCONT);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        node.stopped = false;
    }

    /// Starts node `id` again on its data directory and waits until it serves.
    pub fn restart(&mut self, id: u64) {
        if let Err(log) = self.try_restart(id) {
            panic!("node {id} does not serve after a restart: {log}");
        }
    }

    /// Starts node `id` again on its data directory; its log if it does not come up.
    pub fn try_restart(&mut self, id: u64) -> Result<(), String> {
        self.kill(id);
        self.launch(id);
        self.try_wait_serving(id)
    }

    /// Power loss of node `id`: kill -9, then its Raft log directory is put back to what the
    /// disk held by its syncs (see `weir::power_loss`), with a torn tail if `torn_seed` is given.
    /// The caller restarts the node.
    #[cfg(feature = "power-loss-record")]
    pub fn power_loss(&mut self, id: u64, torn_seed: Option<u64>) -> weir::power_loss::Reverted {
        self.kill(id);
        let node = self.node(id);
        weir::power_loss::revert(&node.dir.join("raft"), &node.power_record, torn_seed)
            .unwrap_or_else(|error| panic!("node {id}: the power loss cannot be applied: {error}"))
    }

    /// SIGSTOP of node `id`: it keeps its sockets and state but does nothing.
    pub fn pause(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(child) = &node.child {
            signal(child, libc::SIGSTOP);
            node.stopped = true;
        }
    }

    /// SIGCONT of a paused node.
    pub fn resume(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(child) = &node.child {
            signal(child, libc::SIGCONT);
            node.stopped = false;
        }
    }

    /// Whether this machine can cut traffic between loopback addresses (`nft` runs, as root).
    pub fn can_partition() -> bool {
        Command::new("nft")
            .args(["list", "tables"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Cuts node `id` off from every other node (both directions, cluster bus only: clients
    /// still reach it), until [`heal`](Self::heal).
    pub fn isolate(&mut self, id: u64) {
        let table = format!("weir_test_{}", self.bus_port);
        if self.nft_table.is_none() {
            nft(&format!(
                "add table inet {table}; add chain inet {table} out {{ type filter hook output priority 0; }}"
            ));
            self.nft_table = Some(table.clone());
        }
        let ip = self.node(id).ip.clone();
        let bus = self.bus_port;
        // Nodes connect from their own address, so the node's bus traffic is all that has its
        // address at one end and the bus port at the other.
        let rules: Vec<String> = ["saddr", "daddr"]
            .iter()
            .flat_map(|end| {
                ["dport", "sport"].map(|port| {
                    format!("add rule inet {table} out ip {end} {ip} tcp {port} {bus} drop")
                })
            })
            .collect();
        nft(&rules.join("; "));
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        if let Some(table) = self.nft_table.take() {
            nft(&format!("delete table inet {table}"));
        }
    }

    /// Node `id`'s data directory.
    pub fn dir(&self, id: u64) -> &Path {
        &self.node(id).dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.heal();
        for id in 1..=self.nodes.len() as u64 {
            self.kill(id);
        }
        if std::thread::panicking()
            && std::env::var_os("WEIR_CLUSTER_KEEP").is_some()
            && let Some(scratch) = self.scratch.take()
        {
            eprintln!(
                "the nodes' directories and logs are kept in {}",
                scratch.keep().display()
            );
        }
    }
}

/// Whether a `CLUSTER NODES` line lists `slot` among its node's slot ranges.
fn holds_slot(line: &str, slot: u16) -> bool {
    line.split(' ').skip(8).any(|range| {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        match (first.parse::<u16>(), last.parse::<u16>()) {
            (Ok(first), Ok(last)) => (first..=last).contains(&slot),
            _ => false,
        }
    })
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child this harness started and has not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
}

fn nft(script: &str) {
    let status = Command::new("nft").arg(script).status().expect("run nft");
    assert!(status.success(), "nft {script} failed");
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Sends `args` on `conn` and returns the raw reply.
pub fn query(conn: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    conn.req_command(&cmd)
}
