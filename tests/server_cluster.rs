//! The Redis Cluster commands on a queue-server that runs as a single node: they answer as a
//! Redis 7.0 server without cluster support, byte for byte. The expected bytes were taken from
//! a real redis-server 7.0; where one is installed the replies are also compared with it.

mod common;
mod real_redis;

use std::net::TcpStream;

use common::{Server, ask, assert_reply};
use real_redis::RedisServer;

const DISABLED: &[u8] = b"-ERR This instance has cluster support disabled\r\n";

/// Each call with Redis 7.0's reply without cluster support: the subcommand and its argument
/// count are checked first, then every call is refused.
const CALLS: &[(&[&[u8]], &[u8])] = &[
    (&[b"CLUSTER", b"INFO"], DISABLED),
    (&[b"CLUSTER", b"SLOTS"], DISABLED),
    (&[b"cluster", b"shards"], DISABLED),
    (&[b"CLUSTER", b"NODES"], DISABLED),
    (&[b"CLUSTER", b"MYID"], DISABLED),
    (&[b"CLUSTER", b"KEYSLOT", b"foo"], DISABLED),
    (&[b"CLUSTER", b"HELP"], DISABLED),
    (&[b"CLUSTER", b"COUNTKEYSINSLOT", b"x"], DISABLED),
    (&[b"CLUSTER", b"GETKEYSINSLOT", b"1", b"-1"], DISABLED),
    (&[b"CLUSTER", b"REPLICAS", b"x"], DISABLED),
    (&[b"CLUSTER", b"SLAVES", b"x"], DISABLED),
    (&[b"CLUSTER", b"MEET", b"127.0.0.1", b"7001"], DISABLED),
    (&[b"CLUSTER", b"ADDSLOTS", b"1"], DISABLED),
    (&[b"CLUSTER", b"LINKS"], DISABLED),
    (
        &[b"CLUSTER"],
        b"-ERR wrong number of arguments for 'cluster' command\r\n",
    ),
    (
        &[b"CLUSTER", b"KEYSLOT"],
        b"-ERR wrong number of arguments for 'cluster|keyslot' command\r\n",
    ),
    (
        &[b"CLUSTER", b"KEYSLOT", b"a", b"b"],
        b"-ERR wrong number of arguments for 'cluster|keyslot' command\r\n",
    ),
    (
        &[b"CLUSTER", b"HELP", b"x"],
        b"-ERR wrong number of arguments for 'cluster|help' command\r\n",
    ),
    (
        &[b"CLUSTER", b"NODES", b"x"],
        b"-ERR wrong number of arguments for 'cluster|nodes' command\r\n",
    ),
    (
        &[b"CLUSTER", b"MEET", b"127.0.0.1"],
        b"-ERR wrong number of arguments for 'cluster|meet' command\r\n",
    ),
    (
        &[b"CLUSTER", b"FOO"],
        b"-ERR unknown subcommand 'FOO'. Try CLUSTER HELP.\r\n",
    ),
    (
        &[b"CLUSTER", b"MYSHARDID"],
        b"-ERR unknown subcommand 'MYSHARDID'. Try CLUSTER HELP.\r\n",
    ),
    (&[b"READONLY"], DISABLED),
    (&[b"readwrite"], DISABLED),
    (
        &[b"READONLY", b"x"],
        b"-ERR wrong number of arguments for 'readonly' command\r\n",
    ),
    (
        &[b"READWRITE", b"x"],
        b"-ERR wrong number of arguments for 'readwrite' command\r\n",
    ),
];

/// `COMMAND INFO` of READONLY, READWRITE and the CLUSTER subcommands weir serves, as Redis 7.0
/// describes them.
const DESCRIBED: &[&[u8]] = &[
    b"readonly",
    b"readwrite",
    b"cluster|nodes",
    b"cluster|countkeysinslot",
    b"cluster|help",
    b"cluster|keyslot",
    b"cluster|info",
    b"cluster|slaves",
    b"cluster|shards",
    b"cluster|getkeysinslot",
    b"cluster|slots",
    b"cluster|replicas",
    b"cluster|myid",
];

fn command_info(socket: &mut TcpStream, name: &[u8]) -> Vec<u8> {
    ask(socket, &[b"COMMAND", b"INFO", name])
}

#[test]
fn cluster_commands_answer_as_redis_without_cluster_support() {
    let server = Server::start(&[]);
    for protocol in [&b"2"[..], b"3"] {
        let mut socket = server.raw();
        ask(&mut socket, &[b"HELLO", protocol]);
        for (args, expected) in CALLS {
            assert_reply(&mut socket, args, expected);
        }
    }
}

#[test]
fn cluster_commands_are_described_as_redis_describes_them() {
    let server = Server::start(&[]);
    let mut socket = server.raw();
    assert_reply(
        &mut socket,
        &[b"COMMAND", b"INFO", b"readonly", b"cluster|keyslot"],
        b"*2\r\n*10\r\n$8\r\nreadonly\r\n:1\r\n*3\r\n+loading\r\n+stale\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n*10\r\n$15\r\ncluster|keyslot\r\n:3\r\n*1\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n",
    );
    assert_reply(
        &mut socket,
        &[b"COMMAND", b"INFO", b"cluster|replicas"],
        b"*1\r\n*10\r\n$16\r\ncluster|replicas\r\n:3\r\n*2\r\n+admin\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*1\r\n$23\r\nnondeterministic_output\r\n*0\r\n*0\r\n",
    );
}

#[test]
fn cluster_replies_match_a_real_redis_without_cluster_support() {
    let test = "cluster_replies_match_a_real_redis_without_cluster_support";
    let Some(redis_server) = RedisServer::start_or_skip(test) else {
        return;
    };
    let version = redis_server.version();
    if !version.starts_with("7.0.") {
        eprintln!("{test}: skipped, redis-server is {version}, not 7.0");
        return;
    }
    let server = Server::start(&[]);
    let mut redis = TcpStream::connect(("127.0.0.1", redis_server.port())).expect("connect");
    redis.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    let mut weir = server.raw();
    for (args, _) in CALLS {
        let expected = ask(&mut redis, args);
        assert_reply(&mut weir, args, &expected);
    }
    for name in DESCRIBED {
        let expected = command_info(&mut redis, name);
        assert_eq!(
            String::from_utf8_lossy(&command_info(&mut weir, name)),
            String::from_utf8_lossy(&expected),
            "COMMAND INFO {}",
            String::from_utf8_lossy(name)
        );
    }
}
