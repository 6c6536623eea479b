//! SLOWLOG, LATENCY, their settings and MEMORY, answered as Redis 7.0 answers: COMMAND INFO's
//! descriptions byte for byte (taken from a real redis-server 7.0), the shapes of the entries,
//! and the errors.

mod common;

use common::{Server, assert_reply, error, int, items, query, run, text};

#[test]
fn command_info_describes_slowlog_and_latency_as_redis_does() {
    let server = Server::start(&[]);
    let mut socket = server.raw();
    let cases: [(&[u8], &[u8]); 5] = [
        (
            b"slowlog",
            b"*1\r\n*10\r\n$7\r\nslowlog\r\n:-2\r\n*0\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@slow\r\n*0\r\n*0\r\n*4\r\n*10\r\n$13\r\nslowlog|reset\r\n:2\r\n*3\r\n+admin\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*2\r\n$24\r\nrequest_policy:all_nodes\r\n$29\r\nresponse_policy:all_succeeded\r\n*0\r\n*0\r\n*10\r\n$11\r\nslowlog|len\r\n:2\r\n*3\r\n+admin\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*3\r\n$24\r\nrequest_policy:all_nodes\r\n$23\r\nresponse_policy:agg_sum\r\n$23\r\nnondeterministic_output\r\n*0\r\n*0\r\n*10\r\n$12\r\nslowlog|help\r\n:2\r\n*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n*10\r\n$11\r\nslowlog|get\r\n:-2\r\n*3\r\n+admin\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*2\r\n$24\r\nrequest_policy:all_nodes\r\n$23\r\nnondeterministic_output\r\n*0\r\n*0\r\n",
        ),
        (
            b"latency|latest",
            b"*1\r\n*10\r\n$14\r\nlatency|latest\r\n:2\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*3\r\n$23\r\nnondeterministic_output\r\n$24\r\nrequest_policy:all_nodes\r\n$23\r\nresponse_policy:special\r\n*0\r\n*0\r\n",
        ),
        (
            b"latency|history",
            b"*1\r\n*10\r\n$15\r\nlatency|history\r\n:3\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*3\r\n$23\r\nnondeterministic_output\r\n$24\r\nrequest_policy:all_nodes\r\n$23\r\nresponse_policy:special\r\n*0\r\n*0\r\n",
        ),
        (
            b"latency|reset",
            b"*1\r\n*10\r\n$13\r\nlatency|reset\r\n:-2\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*2\r\n$24\r\nrequest_policy:all_nodes\r\n$29\r\nresponse_policy:all_succeeded\r\n*0\r\n*0\r\n",
        ),
        (
            b"latency|help",
            b"*1\r\n*10\r\n$12\r\nlatency|help\r\n:2\r\n*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n",
        ),
    ];
    for (name, expected) in cases {
        assert_reply(&mut socket, &[b"COMMAND", b"INFO", name], expected);
    }
}

#[test]
fn slowlog_entries_have_redis_shape() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(
        query::<Vec<String>>(&mut con, &["CONFIG", "GET", "slowlog*"]),
        ["slowlog-log-slower-than", "10000", "slowlog-max-len", "128"]
    );
    run(&mut con, &["CLIENT", "SETNAME", "reporter"]);
    run(&mut con, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    run(&mut con, &["XADD", "s", "*", "field", "value"]);
    error(&mut con, &["AUTH", "secret"]);
    let newest = run(&mut con, &["SLOWLOG", "GET", "2"]);
    let entries = items(&newest);
    assert_eq!(entries.len(), 2);
    let xadd = items(&entries[1]);
    assert_eq!(xadd.len(), 6);
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now_secs - int(&xadd[1])).abs() < 60,
        "a Unix time in seconds"
    );
    assert!(int(&xadd[2]) >= 0);
    let args: Vec<String> = items(&xadd[3]).iter().map(text).collect();
    assert_eq!(args, ["XADD", "s", "*", "field", "value"]);
    assert!(text(&xadd[4]).starts_with("127.0.0.1:"));
    assert_eq!(text(&xadd[5]), "reporter");
    let auth: Vec<String> = items(&items(&entries[0])[3]).iter().map(text).collect();
    assert_eq!(
        auth,
        ["AUTH", "(redacted)"],
        "passwords never reach the log"
    );
    assert!(int(&items(&entries[0])[0]) > int(&xadd[0]), "newest first");

    let long = "x".repeat(200);
    run(&mut con, &["XADD", "s", "*", "f", &long]);
    let newest = run(&mut con, &["SLOWLOG", "GET", "1"]);
    let args: Vec<String> = items(&items(&items(&newest)[0])[3])
        .iter()
        .map(text)
        .collect();
    assert_eq!(args[4], format!("{}... (72 more bytes)", "x".repeat(128)));

    run(&mut con, &["CONFIG", "SET", "slowlog-max-len", "3"]);
    assert_eq!(query::<i64>(&mut con, &["SLOWLOG", "LEN"]), 3);
    assert_eq!(items(&run(&mut con, &["SLOWLOG", "GET", "-1"])).len(), 3);
    assert_eq!(text(&run(&mut con, &["SLOWLOG", "RESET"])), "OK");
    run(
        &mut con,
        &["CONFIG", "SET", "slowlog-log-slower-than", "-1"],
    );
    run(&mut con, &["SLOWLOG", "RESET"]);
    run(&mut con, &["XLEN", "s"]);
    assert_eq!(
        query::<i64>(&mut con, &["SLOWLOG", "LEN"]),
        0,
        "-1 logs nothing"
    );
}

#[test]
fn slowlog_and_latency_errors_are_redis_errors() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let cases: [(&[&str], &str); 9] = [
        (
            &["SLOWLOG", "GET", "-2"],
            "ERR count should be greater than or equal to -1",
        ),
        (
            &["SLOWLOG", "GET", "x"],
            "ERR count should be greater than or equal to -1",
        ),
        (
            &["SLOWLOG", "GET", "1", "2"],
            "ERR unknown subcommand or wrong number of arguments for 'GET'. Try SLOWLOG HELP.",
        ),
        (
            &["SLOWLOG", "LEN", "1"],
            "ERR wrong number of arguments for 'slowlog|len' command",
        ),
        (
            &["LATENCY", "NOPE"],
            "ERR unknown subcommand 'NOPE'. Try LATENCY HELP.",
        ),
        (
            &["LATENCY", "LATEST", "x"],
            "ERR wrong number of arguments for 'latency|latest' command",
        ),
        (
            &["CONFIG", "SET", "slowlog-max-len", "-1"],
            "ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - argument must be between 0 and 9223372036854775807 inclusive",
        ),
        (
            &["CONFIG", "SET", "slowlog-log-slower-than", "-5"],
            "ERR CONFIG SET failed (possibly related to argument 'slowlog-log-slower-than') - argument must be between -1 and 9223372036854775807 inclusive",
        ),
        (
            &["CONFIG", "SET", "latency-monitor-threshold", "abc"],
            "ERR CONFIG SET failed (possibly related to argument 'latency-monitor-threshold') - argument couldn't be parsed into an integer",
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(error(&mut con, args), expected, "{args:?}");
    }
}

#[test]
fn latency_samples_commands_over_the_threshold() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert!(items(&run(&mut con, &["LATENCY", "LATEST"])).is_empty());
    assert!(items(&run(&mut con, &["LATENCY", "HISTORY", "command"])).is_empty());
    assert_eq!(
        query::<Vec<String>>(&mut con, &["CONFIG", "GET", "latency-monitor-threshold"]),
        ["latency-monitor-threshold", "0"]
    );
    let mut pipe = redis::pipe();
    for n in 0..20_000 {
        pipe.cmd("XADD")
            .arg("big")
            .arg("*")
            .arg("n")
            .arg(n)
            .ignore();
    }
    pipe.query::<()>(&mut con).expect("fill the stream");
    run(
        &mut con,
        &["CONFIG", "SET", "latency-monitor-threshold", "1"],
    );
    // Reading 20000 entries takes more than a millisecond.
    run(&mut con, &["XRANGE", "big", "-", "+"]);
    let latest = run(&mut con, &["LATENCY", "LATEST"]);
    let command = items(&latest)
        .iter()
        .map(items)
        .find(|event| text(&event[0]) == "command")
        .expect("a command event");
    assert_eq!(command.len(), 4);
    assert!(int(&command[2]) >= 1 && int(&command[3]) >= int(&command[2]));
    let history = run(&mut con, &["LATENCY", "HISTORY", "command"]);
    let samples = items(&history);
    assert!(!samples.is_empty());
    assert_eq!(items(&samples[0]).len(), 2);
    assert_eq!(query::<i64>(&mut con, &["LATENCY", "RESET", "command"]), 1);
    assert!(items(&run(&mut con, &["LATENCY", "HISTORY", "command"])).is_empty());
    assert_eq!(query::<i64>(&mut con, &["LATENCY", "RESET", "nosuch"]), 0);
}

#[test]
fn command_info_describes_memory_as_redis_does() {
    let server = Server::start(&[]);
    let mut socket = server.raw();
    let cases: [(&[u8], &[u8]); 3] = [
        (
            b"memory|usage",
            b"*1\r\n*10\r\n$12\r\nmemory|usage\r\n:-3\r\n*1\r\n+readonly\r\n:2\r\n:2\r\n:1\r\n*2\r\n+@read\r\n+@slow\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*1\r\n+RO\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:2\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n",
        ),
        (
            b"memory|stats",
            b"*1\r\n*10\r\n$12\r\nmemory|stats\r\n:2\r\n*0\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@slow\r\n*3\r\n$23\r\nnondeterministic_output\r\n$25\r\nrequest_policy:all_shards\r\n$23\r\nresponse_policy:special\r\n*0\r\n*0\r\n",
        ),
        (
            b"memory|help",
            b"*1\r\n*10\r\n$11\r\nmemory|help\r\n:2\r\n*2\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n",
        ),
    ];
    for (name, expected) in cases {
        assert_reply(&mut socket, &[b"COMMAND", b"INFO", name], expected);
    }
    assert_reply(&mut socket, &[b"MEMORY", b"USAGE", b"nokey"], b"$-1\r\n");
    assert_reply(
        &mut socket,
        &[b"MEMORY", b"USAGE", b"nokey", b"SAMPLES", b"x"],
        b"-ERR value is not an integer or out of range\r\n",
    );
    for args in [
        &[&b"MEMORY"[..], b"USAGE", b"s", b"SAMPLES", b"-1"][..],
        &[b"MEMORY", b"USAGE", b"s", b"FOO"],
        &[b"MEMORY", b"USAGE", b"s", b"SAMPLES"],
    ] {
        assert_reply(&mut socket, args, b"-ERR syntax error\r\n");
    }
}

#[test]
fn memory_usage_grows_with_what_a_stream_holds() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    run(&mut con, &["XADD", "jobs", "*", "n", "0"]);
    let one = query::<i64>(&mut con, &["MEMORY", "USAGE", "jobs"]);
    assert!(one > 0);
    assert_eq!(
        query::<i64>(&mut con, &["MEMORY", "USAGE", "jobs", "SAMPLES", "0"]),
        one
    );
    run(&mut con, &["XGROUP", "CREATE", "jobs", "workers", "0"]);
    let mut pipe = redis::pipe();
    for n in 0..5_000 {
        pipe.cmd("XADD")
            .arg("jobs")
            .arg("*")
            .arg("n")
            .arg(n)
            .ignore();
    }
    pipe.query::<()>(&mut con).expect("fill the stream");
    run(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "workers",
            "w1",
            "STREAMS",
            "jobs",
            ">",
        ],
    );
    let full = query::<i64>(&mut con, &["MEMORY", "USAGE", "jobs"]);
    assert!(
        full > one,
        "{full} after 5001 entries, 5001 pending; {one} before"
    );

    let stats = common::pairs(&run(&mut con, &["MEMORY", "STATS"]));
    let names: Vec<&str> = stats.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "peak.allocated",
            "total.allocated",
            "startup.allocated",
            "replication.backlog",
            "clients.slaves",
            "clients.normal",
            "cluster.links",
            "aof.buffer",
            "lua.caches",
            "functions.caches",
            "db.0",
            "overhead.total",
            "keys.count",
            "keys.bytes-per-key",
            "dataset.bytes",
            "dataset.percentage",
            "peak.percentage",
            "allocator.allocated",
            "allocator.active",
            "allocator.resident",
            "allocator-fragmentation.ratio",
            "allocator-fragmentation.bytes",
            "allocator-rss.ratio",
            "allocator-rss.bytes",
            "rss-overhead.ratio",
            "rss-overhead.bytes",
            "fragmentation",
            "fragmentation.bytes",
        ]
    );
    let figure = |name: &str| {
        let (_, value) = stats.iter().find(|(field, _)| field == name).unwrap();
        int(value)
    };
    assert_eq!(figure("keys.count"), 1);
    assert!(figure("total.allocated") > 0);
    assert!(figure("peak.allocated") >= figure("total.allocated"));
    assert_eq!(
        figure("dataset.bytes"),
        figure("total.allocated") - figure("startup.allocated")
    );
}
