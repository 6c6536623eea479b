//! queue-server's replies compared byte for byte with those of Redis 7.0: COMMAND's
//! descriptions and key finding, unknown commands and the transactions that queue them, and
//! the layout of INFO. The expected bytes were taken from a real redis-server 7.0.

mod common;

use common::{Server, assert_reply, info_field, run, text};

#[test]
fn command_info_describes_commands_as_redis_does() {
    let server = Server::start(&[]);
    let mut socket = server.raw();
    let cases: [(&[u8], &[u8]); 7] = [
        (
            b"xadd",
            b"*1\r\n*10\r\n$4\r\nxadd\r\n:-5\r\n*3\r\n+write\r\n+denyoom\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@write\r\n+@stream\r\n+@fast\r\n*1\r\n$23\r\nnondeterministic_output\r\n*1\r\n*8\r\n$5\r\nnotes\r\n$65\r\nUPDATE instead of INSERT because of the optional trimming feature\r\n$5\r\nflags\r\n*2\r\n+RW\r\n+update\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n",
        ),
        (
            b"xread",
            b"*1\r\n*10\r\n$5\r\nxread\r\n:-4\r\n*3\r\n+readonly\r\n+blocking\r\n+movablekeys\r\n:0\r\n:0\r\n:0\r\n*4\r\n+@read\r\n+@stream\r\n+@slow\r\n+@blocking\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$7\r\nkeyword\r\n$4\r\nspec\r\n*4\r\n$7\r\nkeyword\r\n$7\r\nSTREAMS\r\n$9\r\nstartfrom\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:2\r\n*0\r\n",
        ),
        (
            b"XREADGROUP",
            b"*1\r\n*10\r\n$10\r\nxreadgroup\r\n:-7\r\n*3\r\n+write\r\n+blocking\r\n+movablekeys\r\n:0\r\n:0\r\n:0\r\n*4\r\n+@write\r\n+@stream\r\n+@slow\r\n+@blocking\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$7\r\nkeyword\r\n$4\r\nspec\r\n*4\r\n$7\r\nkeyword\r\n$7\r\nSTREAMS\r\n$9\r\nstartfrom\r\n:4\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:2\r\n*0\r\n",
        ),
        (
            b"ping",
            b"*1\r\n*10\r\n$4\r\nping\r\n:-1\r\n*1\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@connection\r\n*2\r\n$25\r\nrequest_policy:all_shards\r\n$29\r\nresponse_policy:all_succeeded\r\n*0\r\n*0\r\n",
        ),
        (
            b"xgroup|setid",
            b"*1\r\n*10\r\n$12\r\nxgroup|setid\r\n:-5\r\n*1\r\n+write\r\n:2\r\n:2\r\n:1\r\n*3\r\n+@write\r\n+@stream\r\n+@slow\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RW\r\n+update\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:2\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n",
        ),
        (
            b"xinfo|consumers",
            b"*1\r\n*10\r\n$15\r\nxinfo|consumers\r\n:4\r\n*1\r\n+readonly\r\n:2\r\n:2\r\n:1\r\n*3\r\n+@read\r\n+@stream\r\n+@slow\r\n*1\r\n$23\r\nnondeterministic_output\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:2\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n",
        ),
        (b"nosuch", b"*1\r\n$-1\r\n"),
    ];
    for (name, expected) in cases {
        assert_reply(&mut socket, &[b"COMMAND", b"INFO", name], expected);
    }
}

#[test]
fn command_getkeys_finds_keys_as_redis_does() {
    let server = Server::start(&[]);
    let mut socket = server.raw();
    let cases: [(&[&[u8]], &[u8]); 12] = [
        (
            &[b"XREAD", b"COUNT", b"2", b"STREAMS", b"a", b"b", b"0", b"0"],
            b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            &[b"XREADGROUP", b"GROUP", b"g", b"c", b"STREAMS", b"a", b"0"],
            b"*1\r\n$1\r\na\r\n",
        ),
        (
            &[b"XREAD", b"STREAMS", b"a", b"b", b"c"],
            b"*1\r\n$1\r\na\r\n",
        ),
        (
            &[b"XREAD", b"COUNT", b"STREAMS", b"STREAMS"],
            b"-ERR Invalid arguments specified for command\r\n",
        ),
        (
            &[b"XGROUP", b"CREATE", b"s", b"g", b"0"],
            b"*1\r\n$1\r\ns\r\n",
        ),
        (
            &[b"XGROUP", b"NOPE", b"s"],
            b"-ERR Invalid command specified\r\n",
        ),
        (
            &[b"XGROUP", b"HELP"],
            b"-ERR The command has no key arguments\r\n",
        ),
        (&[b"XINFO", b"STREAM", b"s"], b"*1\r\n$1\r\ns\r\n"),
        (&[b"DEL", b"a", b"b"], b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"),
        (
            &[b"PING", b"x"],
            b"-ERR The command has no key arguments\r\n",
        ),
        (&[b"NOPE", b"x"], b"-ERR Invalid command specified\r\n"),
        (
            &[b"XADD", b"s"],
            b"-ERR Invalid number of arguments specified for command\r\n",
        ),
    ];
    for (call, expected) in cases {
        let mut args: Vec<&[u8]> = vec![b"COMMAND", b"GETKEYS"];
        args.extend_from_slice(call);
        assert_reply(&mut socket, &args, expected);
    }
    assert_reply(
        &mut socket,
        &[b"COMMAND", b"GETKEYS", b"XLEN"],
        b"-ERR wrong number of arguments for 'command|getkeys' command\r\n",
    );
    assert_reply(
        &mut socket,
        &[b"COMMAND", b"GETKEYSANDFLAGS", b"RENAME", b"a", b"b"],
        b"*2\r\n*2\r\n$1\r\na\r\n*3\r\n+RW\r\n+access\r\n+delete\r\n*2\r\n$1\r\nb\r\n*2\r\n+OW\r\n+update\r\n",
    );
    assert_reply(
        &mut socket,
        &[
            b"COMMAND",
            b"GETKEYSANDFLAGS",
            b"XADD",
            b"s",
            b"*",
            b"f",
            b"v",
        ],
        b"*1\r\n*2\r\n$1\r\ns\r\n*2\r\n+RW\r\n+update\r\n",
    );
}

#[test]
fn command_count_list_and_docs() {
    let server = Server::start(&[]);
    let mut socket = server.raw();
    assert_reply(
        &mut socket,
        &[b"COMMAND", b"LIST", b"FILTERBY", b"MODULE", b"x"],
        b"*0\r\n",
    );
    for bad in [
        &[b"FILTERBY".as_slice(), b"NOPE", b"x"][..],
        &[b"FILTERBY"],
        &[b"x"],
    ] {
        let mut args: Vec<&[u8]> = vec![b"COMMAND", b"LIST"];
        args.extend_from_slice(bad);
        assert_reply(&mut socket, &args, b"-ERR syntax error\r\n");
    }
    assert_reply(
        &mut socket,
        &[b"COMMAND", b"NOPE"],
        b"-ERR unknown subcommand 'NOPE'. Try COMMAND HELP.\r\n",
    );
    assert_reply(
        &mut socket,
        &[b"COMMAND", b"COUNT", b"x"],
        b"-ERR wrong number of arguments for 'command|count' command\r\n",
    );

    let mut con = server.conn();
    let groups: Vec<String> = common::query(
        &mut con,
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "xgroup*"],
    );
    for name in ["xgroup", "xgroup|create", "xgroup|destroy", "xgroup|setid"] {
        assert!(
            groups.iter().any(|listed| listed == name),
            "{name} in {groups:?}"
        );
    }
    let streams: Vec<String> = common::query(
        &mut con,
        &["COMMAND", "LIST", "FILTERBY", "ACLCAT", "stream"],
    );
    assert!(streams.iter().any(|name| name == "xadd"));
    assert!(streams.iter().any(|name| name == "xinfo|stream"));
    assert!(
        !streams
            .iter()
            .any(|name| name == "xgroup" || name == "ping")
    );
    let count: usize = common::query(&mut con, &["COMMAND", "COUNT"]);
    let all: Vec<String> = common::query(&mut con, &["COMMAND", "LIST"]);
    assert_eq!(all.iter().filter(|name| !name.contains('|')).count(), count);

    assert_reply(
        &mut socket,
        &[b"COMMAND", b"DOCS", b"xlen"],
        b"*2\r\n$4\r\nxlen\r\n*6\r\n$7\r\nsummary\r\n$31\r\nCounts the entries of a stream.\r\n$5\r\nsince\r\n$5\r\n5.0.0\r\n$5\r\ngroup\r\n$6\r\nstream\r\n",
    );
    assert_reply(&mut socket, &[b"COMMAND", b"DOCS", b"nosuch"], b"*0\r\n");
}

#[test]
fn unknown_commands_get_redis_error_text() {
    let server = Server::start(&[]);
    let mut socket = server.raw();
    let a130 = [b'a'; 130];
    let a100 = [b'a'; 100];
    let b100 = [b'b'; 100];
    let f200 = [b'f'; 200];
    let cases: [(&[&[u8]], &[u8]); 7] = [
        (
            &[b"set", b"k", b"v"],
            b"-ERR unknown command 'set', with args beginning with: 'k' 'v' \r\n",
        ),
        (
            &[b"GET", b"k"],
            b"-ERR unknown command 'GET', with args beginning with: 'k' \r\n",
        ),
        (
            &[b"hset", b"h", b"f", b"v"],
            b"-ERR unknown command 'hset', with args beginning with: 'h' 'f' 'v' \r\n",
        ),
        (
            &[b"lpush"],
            b"-ERR unknown command 'lpush', with args beginning with: \r\n",
        ),
        (
            &[b"foo\x01\nx", b"z\x00\r\nz", &a130, b"b"],
            b"-ERR unknown command 'foo\x01 x', with args beginning with: 'z' 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' \r\n",
        ),
        (
            &[&f200],
            b"-ERR unknown command 'ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', with args beginning with: \r\n",
        ),
        (
            &[b"foo", &a100, &b100, b"c"],
            b"-ERR unknown command 'foo', with args beginning with: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' 'bbbbbbbbbbbbbbbbbbbbbbbbb' \r\n",
        ),
    ];
    for (args, expected) in cases {
        assert_reply(&mut socket, args, expected);
    }
    let many: Vec<String> = (1..=23).map(|n| n.to_string()).collect();
    let mut args: Vec<&[u8]> = vec![b"foo"];
    args.extend(many.iter().map(|arg| arg.as_bytes()));
    assert_reply(
        &mut socket,
        &args,
        b"-ERR unknown command 'foo', with args beginning with: '1' '2' '3' '4' '5' '6' '7' '8' '9' '10' '11' '12' '13' '14' '15' '16' '17' '18' '19' '20' '21' '22' '23' \r\n",
    );
}

#[test]
fn a_transaction_that_queued_an_unknown_command_aborts_as_in_redis() {
    let server = Server::start(&[]);
    let mut socket = server.raw();
    let execabort = b"-EXECABORT Transaction discarded because of previous errors.\r\n";
    assert_reply(&mut socket, &[b"MULTI"], b"+OK\r\n");
    assert_reply(
        &mut socket,
        &[b"SET", b"k", b"v"],
        b"-ERR unknown command 'SET', with args beginning with: 'k' 'v' \r\n",
    );
    assert_reply(
        &mut socket,
        &[b"XADD", b"m", b"*", b"f", b"v"],
        b"+QUEUED\r\n",
    );
    assert_reply(&mut socket, &[b"EXEC"], execabort);
    assert_reply(&mut socket, &[b"XLEN", b"m"], b":0\r\n");

    assert_reply(&mut socket, &[b"MULTI"], b"+OK\r\n");
    assert_reply(
        &mut socket,
        &[b"XGROUP", b"NOPE"],
        b"-ERR unknown subcommand 'NOPE'. Try XGROUP HELP.\r\n",
    );
    assert_reply(&mut socket, &[b"EXEC"], execabort);

    assert_reply(&mut socket, &[b"MULTI"], b"+OK\r\n");
    assert_reply(
        &mut socket,
        &[b"XGROUP", b"CREATE", b"m"],
        b"-ERR wrong number of arguments for 'xgroup|create' command\r\n",
    );
    assert_reply(&mut socket, &[b"EXEC"], execabort);

    assert_reply(&mut socket, &[b"MULTI"], b"+OK\r\n");
    assert_reply(
        &mut socket,
        &[b"GET", b"k"],
        b"-ERR unknown command 'GET', with args beginning with: 'k' \r\n",
    );
    assert_reply(&mut socket, &[b"DISCARD"], b"+OK\r\n");
    assert_reply(&mut socket, &[b"PING"], b"+PONG\r\n");
}

/// The `# Section` headers of an INFO reply, in order.
fn headers(info: &str) -> Vec<&str> {
    info.lines()
        .filter_map(|line| line.strip_prefix("# "))
        .collect()
}

#[test]
fn info_has_redis_sections_in_redis_order() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let redis_default = [
        "Server",
        "Clients",
        "Memory",
        "Persistence",
        "Stats",
        "Replication",
        "CPU",
        "Modules",
        "Errorstats",
        "Cluster",
        "Keyspace",
    ];
    let default = text(&run(&mut con, &["INFO"]));
    assert_eq!(headers(&default)[..redis_default.len()], redis_default);
    assert_eq!(
        headers(&default)[redis_default.len()..],
        ["Backlog", "Weir"]
    );
    let default_by_name = text(&run(&mut con, &["INFO", "default", "server"]));
    assert_eq!(headers(&default_by_name), headers(&default));
    let everything = text(&run(&mut con, &["INFO", "everything"]));
    assert_eq!(
        headers(&everything)[..13],
        [
            "Server",
            "Clients",
            "Memory",
            "Persistence",
            "Stats",
            "Replication",
            "CPU",
            "Modules",
            "Commandstats",
            "Errorstats",
            "Latencystats",
            "Cluster",
            "Keyspace",
        ]
    );
    let two = text(&run(&mut con, &["INFO", "CLUSTER", "server", "cluster"]));
    assert_eq!(headers(&two), ["Server", "Cluster"]);
    assert!(two.ends_with("cluster_enabled:0\r\n") && two.contains("\r\n\r\n# Cluster\r\n"));
    assert_eq!(text(&run(&mut con, &["INFO", "nosuch"])), "");
    assert_eq!(
        text(&run(&mut con, &["INFO", "cluster", "modules"])),
        "# Modules\r\n\r\n# Cluster\r\ncluster_enabled:0\r\n"
    );
}

/// Every field Redis 7.0 prints, by section (the per-command and per-error lines aside).
const REDIS_FIELDS: &[(&str, &[&str])] = &[
    (
        "server",
        &[
            "redis_version",
            "redis_git_sha1",
            "redis_git_dirty",
            "redis_build_id",
            "redis_mode",
            "os",
            "arch_bits",
            "monotonic_clock",
            "multiplexing_api",
            "atomicvar_api",
            "gcc_version",
            "process_id",
            "process_supervised",
            "run_id",
            "tcp_port",
            "server_time_usec",
            "uptime_in_seconds",
            "uptime_in_days",
            "hz",
            "configured_hz",
            "lru_clock",
            "executable",
            "config_file",
            "io_threads_active",
        ],
    ),
    (
        "clients",
        &[
            "connected_clients",
            "cluster_connections",
            "maxclients",
            "client_recent_max_input_buffer",
            "client_recent_max_output_buffer",
            "blocked_clients",
            "tracking_clients",
            "clients_in_timeout_table",
        ],
    ),
    (
        "memory",
        &[
            "used_memory",
            "used_memory_human",
            "used_memory_rss",
            "used_memory_rss_human",
            "used_memory_peak",
            "used_memory_peak_human",
            "used_memory_peak_perc",
            "used_memory_overhead",
            "used_memory_startup",
            "used_memory_dataset",
            "used_memory_dataset_perc",
            "allocator_allocated",
            "allocator_active",
            "allocator_resident",
            "total_system_memory",
            "total_system_memory_human",
            "used_memory_lua",
            "used_memory_vm_eval",
            "used_memory_lua_human",
            "used_memory_scripts_eval",
            "number_of_cached_scripts",
            "number_of_functions",
            "number_of_libraries",
            "used_memory_vm_functions",
            "used_memory_vm_total",
            "used_memory_vm_total_human",
            "used_memory_functions",
            "used_memory_scripts",
            "used_memory_scripts_human",
            "maxmemory",
            "maxmemory_human",
            "maxmemory_policy",
            "allocator_frag_ratio",
            "allocator_frag_bytes",
            "allocator_rss_ratio",
            "allocator_rss_bytes",
            "rss_overhead_ratio",
            "rss_overhead_bytes",
            "mem_fragmentation_ratio",
            "mem_fragmentation_bytes",
            "mem_not_counted_for_evict",
            "mem_replication_backlog",
            "mem_total_replication_buffers",
            "mem_clients_slaves",
            "mem_clients_normal",
            "mem_cluster_links",
            "mem_aof_buffer",
            "mem_allocator",
            "active_defrag_running",
            "lazyfree_pending_objects",
            "lazyfreed_objects",
        ],
    ),
    (
        "persistence",
        &[
            "loading",
            "async_loading",
            "current_cow_peak",
            "current_cow_size",
            "current_cow_size_age",
            "current_fork_perc",
            "current_save_keys_processed",
            "current_save_keys_total",
            "rdb_changes_since_last_save",
            "rdb_bgsave_in_progress",
            "rdb_last_save_time",
            "rdb_last_bgsave_status",
            "rdb_last_bgsave_time_sec",
            "rdb_current_bgsave_time_sec",
            "rdb_saves",
            "rdb_last_cow_size",
            "rdb_last_load_keys_expired",
            "rdb_last_load_keys_loaded",
            "aof_enabled",
            "aof_rewrite_in_progress",
            "aof_rewrite_scheduled",
            "aof_last_rewrite_time_sec",
            "aof_current_rewrite_time_sec",
            "aof_last_bgrewrite_status",
            "aof_rewrites",
            "aof_rewrites_consecutive_failures",
            "aof_last_write_status",
            "aof_last_cow_size",
            "module_fork_in_progress",
            "module_fork_last_cow_size",
            "aof_current_size",
            "aof_base_size",
            "aof_pending_rewrite",
            "aof_buffer_length",
            "aof_pending_bio_fsync",
            "aof_delayed_fsync",
        ],
    ),
    (
        "stats",
        &[
            "total_connections_received",
            "total_commands_processed",
            "instantaneous_ops_per_sec",
            "total_net_input_bytes",
            "total_net_output_bytes",
            "total_net_repl_input_bytes",
            "total_net_repl_output_bytes",
            "instantaneous_input_kbps",
            "instantaneous_output_kbps",
            "instantaneous_input_repl_kbps",
            "instantaneous_output_repl_kbps",
            "rejected_connections",
            "sync_full",
            "sync_partial_ok",
            "sync_partial_err",
            "expired_keys",
            "expired_stale_perc",
            "expired_time_cap_reached_count",
            "expire_cycle_cpu_milliseconds",
            "evicted_keys",
            "evicted_clients",
            "total_eviction_exceeded_time",
            "current_eviction_exceeded_time",
            "keyspace_hits",
            "keyspace_misses",
            "pubsub_channels",
            "pubsub_patterns",
            "pubsubshard_channels",
            "latest_fork_usec",
            "total_forks",
            "migrate_cached_sockets",
            "slave_expires_tracked_keys",
            "active_defrag_hits",
            "active_defrag_misses",
            "active_defrag_key_hits",
            "active_defrag_key_misses",
            "total_active_defrag_time",
            "current_active_defrag_time",
            "tracking_total_keys",
            "tracking_total_items",
            "tracking_total_prefixes",
            "unexpected_error_replies",
            "total_error_replies",
            "dump_payload_sanitizations",
            "total_reads_processed",
            "total_writes_processed",
            "io_threaded_reads_processed",
            "io_threaded_writes_processed",
            "reply_buffer_shrinks",
            "reply_buffer_expands",
            // Redis 7.2's: failed AUTHs and ACL denials.
            "acl_access_denied_auth",
            "acl_access_denied_cmd",
            "acl_access_denied_key",
            "acl_access_denied_channel",
        ],
    ),
    (
        "replication",
        &[
            "role",
            "connected_slaves",
            "master_failover_state",
            "master_replid",
            "master_replid2",
            "master_repl_offset",
            "second_repl_offset",
            "repl_backlog_active",
            "repl_backlog_size",
            "repl_backlog_first_byte_offset",
            "repl_backlog_histlen",
        ],
    ),
    (
        "cpu",
        &[
            "used_cpu_sys",
            "used_cpu_user",
            "used_cpu_sys_children",
            "used_cpu_user_children",
            "used_cpu_sys_main_thread",
            "used_cpu_user_main_thread",
        ],
    ),
    ("cluster", &["cluster_enabled"]),
];

#[test]
fn info_has_every_redis_field_in_redis_order() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    for (section, fields) in REDIS_FIELDS {
        let info = text(&run(&mut con, &["INFO", section]));
        let names: Vec<&str> = info
            .lines()
            .filter_map(|line| line.split_once(':').map(|(name, _)| name))
            .filter(|name| !name.starts_with("weir_") && *name != "appendfsync")
            .collect();
        assert_eq!(names, *fields, "the fields of INFO {section}");
    }
}

#[test]
fn info_reports_real_figures() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    run(&mut con, &["XADD", "s", "*", "f", "v"]);
    run(&mut con, &["XADD", "s", "*", "f", "v"]);
    common::error(
        &mut con,
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"],
    );
    run(&mut con, &["XGROUP", "CREATE", "s", "g", "0"]);
    common::error(&mut con, &["XADD", "s"]);
    common::error(&mut con, &["SET", "k", "v"]);
    let info = text(&run(&mut con, &["INFO", "everything"]));
    let number = |name: &str| -> u64 {
        info_field(&info, name)
            .unwrap_or_else(|| panic!("no {name}"))
            .parse()
            .unwrap_or_else(|_| panic!("{name} is not a number"))
    };
    assert!(number("used_memory") > 0);
    assert!(number("used_memory_rss") >= number("used_memory"));
    assert!(number("used_memory_peak") >= number("used_memory"));
    assert!(number("total_system_memory") > number("used_memory_rss"));
    assert_eq!(info_field(&info, "role").as_deref(), Some("master"));
    assert_eq!(info_field(&info, "redis_version").as_deref(), Some("8.4.0"));
    assert_eq!(number("process_id"), u64::from(server.pid()));
    assert_eq!(number("tcp_port"), u64::from(server.port()));
    assert_eq!(info_field(&info, "run_id").map(|id| id.len()), Some(40));
    assert_eq!(number("total_error_replies"), 3);
    assert_eq!(
        info_field(&info, "errorstat_NOGROUP").as_deref(),
        Some("count=1")
    );
    assert_eq!(
        info_field(&info, "errorstat_ERR").as_deref(),
        Some("count=2")
    );
    let xadd = info_field(&info, "cmdstat_xadd").expect("xadd's statistics");
    assert!(xadd.starts_with("calls=2,usec="), "{xadd}");
    assert!(xadd.ends_with(",rejected_calls=1,failed_calls=0"), "{xadd}");
    let xreadgroup = info_field(&info, "cmdstat_xreadgroup").expect("xreadgroup's statistics");
    assert!(
        xreadgroup.ends_with(",rejected_calls=0,failed_calls=1"),
        "{xreadgroup}"
    );
    assert!(info_field(&info, "cmdstat_xgroup|create").is_some());
    assert_eq!(info_field(&info, "cmdstat_set"), None);
    assert_eq!(
        info_field(&info, "db0").as_deref(),
        Some("keys=1,expires=0,avg_ttl=0")
    );

    run(&mut con, &["CONFIG", "RESETSTAT"]);
    let info = text(&run(&mut con, &["INFO", "everything"]));
    assert_eq!(
        info_field(&info, "total_error_replies").as_deref(),
        Some("0")
    );
    assert_eq!(info_field(&info, "cmdstat_xadd"), None);
    assert_eq!(info_field(&info, "errorstat_ERR"), None);
}
