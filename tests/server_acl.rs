//! Users and ACLs through a real client: a producer that may only append to `orders*`, a
//! consumer that may only read and acknowledge with its group, Redis's exact NOPERM errors
//! (for commands, subcommands and keys, in MULTI too), ACL LOG, failed AUTH counts, the
//! `default` user standing for `requirepass`, and users kept in the ACL file across restarts.

mod common;

use common::{Server, connect, error, field, info_field, int, items, pairs, query, run, text};
use redis::Value;

const NO_KEY: &str =
    "NOPERM this user has no permissions to access one of the keys used as arguments";

fn no_command(name: &str) -> String {
    format!("NOPERM this user has no permissions to run the '{name}' command")
}

/// A connection authenticated as `user`.
fn login(server: &Server, user: &str, password: &str) -> redis::Connection {
    let mut con = server.anonymous_conn();
    assert_eq!(
        run(&mut con, &["AUTH", user, password]),
        Value::Okay,
        "AUTH {user}"
    );
    con
}

/// The producer and consumer of the documentation's example.
fn add_queue_users(admin: &mut redis::Connection) {
    for rules in [
        &[
            "producer",
            "on",
            ">ppass",
            "resetkeys",
            "%W~orders*",
            "-@all",
            "+xadd",
        ][..],
        &[
            "consumer",
            "on",
            ">cpass",
            "~orders*",
            "-@all",
            "+xreadgroup",
            "+xack",
            "+@transaction",
        ],
    ] {
        let mut args = vec!["ACL", "SETUSER"];
        args.extend_from_slice(rules);
        assert_eq!(run(admin, &args), Value::Okay);
    }
}

fn log_entries(con: &mut redis::Connection) -> Vec<Vec<(String, Value)>> {
    items(&run(con, &["ACL", "LOG"]))
        .iter()
        .map(pairs)
        .collect()
}

#[test]
fn a_producer_appends_and_a_consumer_reads_and_acks() {
    let server = Server::start(&[]);
    let mut admin = server.conn();
    add_queue_users(&mut admin);
    run(
        &mut admin,
        &["XGROUP", "CREATE", "orders:eu", "workers", "$", "MKSTREAM"],
    );

    let mut producer = login(&server, "producer", "ppass");
    let id: String = query(&mut producer, &["XADD", "orders:eu", "*", "sku", "42"]);
    assert_eq!(
        error(&mut producer, &["XADD", "payments", "*", "f", "v"]),
        NO_KEY
    );
    assert_eq!(
        error(&mut producer, &["XLEN", "orders:eu"]),
        no_command("xlen")
    );
    assert_eq!(
        error(&mut producer, &["XRANGE", "orders:eu", "-", "+"]),
        no_command("xrange")
    );

    let mut consumer = login(&server, "consumer", "cpass");
    let read = run(
        &mut consumer,
        &[
            "XREADGROUP",
            "GROUP",
            "workers",
            "c1",
            "STREAMS",
            "orders:eu",
            ">",
        ],
    );
    assert!(format!("{read:?}").contains(&id));
    assert_eq!(
        query::<i64>(&mut consumer, &["XACK", "orders:eu", "workers", &id]),
        1
    );
    assert_eq!(
        error(&mut consumer, &["XADD", "orders:eu", "*", "f", "v"]),
        no_command("xadd")
    );
    assert_eq!(
        error(
            &mut consumer,
            &["XGROUP", "DESTROY", "orders:eu", "workers"]
        ),
        no_command("xgroup|destroy")
    );
    assert_eq!(
        error(&mut consumer, &["ACL", "WHOAMI"]),
        no_command("acl|whoami")
    );
}

#[test]
fn keys_are_checked_one_by_one_in_multi_key_reads() {
    let server = Server::start(&[]);
    let mut admin = server.conn();
    let rules = [
        "ACL", "SETUSER", "reader", "on", "nopass", "%R~in:*", "%W~out", "+@stream",
    ];
    assert_eq!(run(&mut admin, &rules), Value::Okay);
    run(&mut admin, &["XADD", "in:a", "1-1", "f", "v"]);
    run(&mut admin, &["XADD", "out", "1-1", "f", "v"]);
    let mut reader = login(&server, "reader", "any");
    let both = run(&mut reader, &["XREAD", "STREAMS", "in:a", "in:b", "0", "0"]);
    assert_eq!(items(&both).len(), 1, "{both:?}");
    assert_eq!(
        error(
            &mut reader,
            &["XREAD", "COUNT", "5", "STREAMS", "in:a", "out", "0", "0"]
        ),
        NO_KEY
    );
    // Writing needs write access: `in:*` is readable only.
    assert_eq!(error(&mut reader, &["XADD", "in:a", "*", "f", "v"]), NO_KEY);
    assert_eq!(error(&mut reader, &["XDEL", "in:a", "1-1"]), NO_KEY);
    query::<String>(&mut reader, &["XADD", "out", "*", "f", "v"]);
    let entry = &log_entries(&mut admin)[0];
    assert_eq!(field_of(entry, "reason"), "key");
    assert_eq!(field_of(entry, "object"), "in:a");
}

fn field_of(entry: &[(String, Value)], name: &str) -> String {
    entry
        .iter()
        .find(|(field, _)| field == name)
        .map(|(_, value)| match value {
            Value::Int(number) => number.to_string(),
            other => text(other),
        })
        .unwrap_or_else(|| panic!("no {name} in {entry:?}"))
}

#[test]
fn a_denied_command_in_multi_aborts_exec() {
    let server = Server::start(&[]);
    let mut admin = server.conn();
    add_queue_users(&mut admin);
    let mut consumer = login(&server, "consumer", "cpass");
    assert_eq!(run(&mut consumer, &["MULTI"]), Value::Okay);
    assert_eq!(
        run(&mut consumer, &["XACK", "orders:1", "g", "1-1"]),
        Value::SimpleString("QUEUED".into())
    );
    assert_eq!(error(&mut consumer, &["XACK", "other", "g", "1-1"]), NO_KEY);
    assert_eq!(
        error(&mut consumer, &["XLEN", "orders:1"]),
        no_command("xlen")
    );
    assert_eq!(
        error(&mut consumer, &["EXEC"]),
        "EXECABORT Transaction discarded because of previous errors."
    );
    let contexts: Vec<String> = log_entries(&mut admin)
        .iter()
        .map(|entry| field_of(entry, "context"))
        .collect();
    assert_eq!(contexts, ["multi", "multi"]);

    // Rules changed between MULTI and EXEC apply at EXEC.
    assert_eq!(run(&mut consumer, &["MULTI"]), Value::Okay);
    run(&mut consumer, &["XACK", "orders:1", "g", "1-1"]);
    run(&mut admin, &["ACL", "SETUSER", "consumer", "-xack"]);
    let replies = run(&mut consumer, &["EXEC"]);
    assert!(
        format!("{replies:?}").contains("ACLs rules changed between the moment the transaction was accumulated and the EXEC call"),
        "{replies:?}"
    );

    // A user that may not run EXEC: the transaction is discarded.
    let mut producer_admin = server.conn();
    run(
        &mut producer_admin,
        &["ACL", "SETUSER", "producer", "+multi"],
    );
    let mut producer = login(&server, "producer", "ppass");
    run(&mut producer, &["MULTI"]);
    assert_eq!(
        error(&mut producer, &["EXEC"]),
        format!(
            "EXECABORT Transaction discarded because of: {}",
            no_command("exec")
        )
    );
    assert_eq!(error(&mut producer, &["DISCARD"]), no_command("discard"));
}

#[test]
fn failed_auths_are_counted_and_logged() {
    let server = Server::start(&["--requirepass", "secret"]);
    let mut admin = server.conn();
    let mut stranger = server.anonymous_conn();
    for user in ["default", "nobody", "nobody"] {
        assert_eq!(
            error(&mut stranger, &["AUTH", user, "guess"]),
            "WRONGPASS invalid username-password pair or user is disabled."
        );
    }
    let info = text(&run(&mut admin, &["INFO", "stats"]));
    assert_eq!(
        info_field(&info, "acl_access_denied_auth").as_deref(),
        Some("3")
    );
    let entries = log_entries(&mut admin);
    assert_eq!(
        entries.len(),
        2,
        "the two failures for `nobody` count on one entry"
    );
    assert_eq!(field_of(&entries[0], "username"), "nobody");
    assert_eq!(field_of(&entries[0], "count"), "2");
    assert_eq!(field_of(&entries[0], "reason"), "auth");
    assert_eq!(field_of(&entries[0], "object"), "AUTH");
    let names: Vec<&str> = entries[0].iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "count",
            "reason",
            "context",
            "object",
            "username",
            "age-seconds",
            "client-info"
        ]
    );
    assert!(field_of(&entries[0], "client-info").contains(" user=default "));
    assert_eq!(items(&run(&mut admin, &["ACL", "LOG", "1"])).len(), 1);
    assert_eq!(run(&mut admin, &["ACL", "LOG", "RESET"]), Value::Okay);
    assert!(log_entries(&mut admin).is_empty());
}

#[test]
fn requirepass_is_the_default_users_password() {
    let server = Server::start(&["--requirepass", "secret"]);
    let mut admin = server.conn();
    let default = run(&mut admin, &["ACL", "GETUSER", "default"]);
    assert_eq!(items(&field(&default, "passwords")).len(), 1);
    run(&mut admin, &["CONFIG", "SET", "requirepass", "changed"]);
    let mut fresh = server.anonymous_conn();
    assert!(error(&mut fresh, &["AUTH", "secret"]).starts_with("WRONGPASS"));
    assert_eq!(
        run(&mut fresh, &["AUTH", "default", "changed"]),
        Value::Okay
    );
    run(&mut admin, &["CONFIG", "SET", "requirepass", ""]);
    let open = run(&mut admin, &["ACL", "LIST"]);
    assert_eq!(text(&items(&open)[0]), "user default on nopass ~* &* +@all");
    let mut anyone = server.anonymous_conn();
    assert_eq!(query::<i64>(&mut anyone, &["XLEN", "s"]), 0);
}

#[test]
fn users_persist_in_the_acl_file() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("users.acl");
    let file_arg = file.to_str().unwrap().to_string();
    let dir = data.path().join("data");
    {
        let server = Server::start_in(&dir, &["--aclfile", &file_arg]);
        let mut admin = server.conn();
        add_queue_users(&mut admin);
        assert_eq!(run(&mut admin, &["ACL", "SAVE"]), Value::Okay);
        run(&mut admin, &["ACL", "SETUSER", "temporary", "on"]);
        assert_eq!(run(&mut admin, &["ACL", "LOAD"]), Value::Okay);
        let users: Vec<String> = items(&run(&mut admin, &["ACL", "USERS"]))
            .iter()
            .map(text)
            .collect();
        assert_eq!(users, ["consumer", "default", "producer"]);
    }
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.contains("user producer on #"), "{saved}");
    assert!(!saved.contains("ppass"), "passwords are stored hashed");

    let server = Server::start_in(&dir, &["--aclfile", &file_arg]);
    let mut producer = login(&server, "producer", "ppass");
    query::<String>(&mut producer, &["XADD", "orders:1", "*", "f", "v"]);
    assert_eq!(error(&mut producer, &["XADD", "x", "*", "f", "v"]), NO_KEY);

    // A deleted user's connections are closed.
    let mut admin = server.conn();
    assert_eq!(
        int(&run(&mut admin, &["ACL", "DELUSER", "producer", "ghost"])),
        1
    );
    assert!(common::try_run(&mut producer, &["PING"]).is_err());
}

#[test]
fn setuser_errors_are_redis_errors() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(
        error(&mut con, &["ACL", "SETUSER", "u", "+nocommand"]),
        "ERR Error in ACL SETUSER modifier '+nocommand': Unknown command or category name in ACL"
    );
    assert_eq!(
        error(&mut con, &["ACL", "SETUSER", "u", "%X~a"]),
        "ERR Error in ACL SETUSER modifier '%X~a': Syntax error"
    );
    assert_eq!(
        error(&mut con, &["ACL", "DELUSER", "default"]),
        "ERR The 'default' user cannot be removed"
    );
    assert!(
        error(&mut con, &["ACL", "SAVE"])
            .starts_with("ERR This Redis instance is not configured to use an ACL file.")
    );
    assert_eq!(run(&mut con, &["ACL", "GETUSER", "nobody"]), Value::Nil);
    let cat = run(&mut con, &["ACL", "CAT", "stream"]);
    let names: Vec<String> = items(&cat).iter().map(text).collect();
    assert!(names.contains(&"xgroup|create".to_string()) && names.contains(&"xadd".to_string()));
    assert_eq!(
        run(
            &mut con,
            &["ACL", "SETUSER", "p", "on", "nopass", "%W~o*", "+xadd"]
        ),
        Value::Okay
    );
    assert_eq!(
        text(&run(
            &mut con,
            &["ACL", "DRYRUN", "p", "XADD", "x", "*", "f", "v"]
        )),
        "This user has no permissions to access the 'x' key"
    );
    assert_eq!(
        run(
            &mut con,
            &["ACL", "DRYRUN", "p", "XADD", "o1", "*", "f", "v"]
        ),
        Value::Okay
    );
    run(&mut con, &["ACL", "SETUSER", "p", "+acl|whoami"]);
    let mut p = connect(&format!("redis://p:x@127.0.0.1:{}/", server.port()));
    assert_eq!(text(&run(&mut p, &["ACL", "WHOAMI"])), "p");
}

#[test]
fn a_dead_letter_stream_needs_write_permission_on_its_key() {
    let server = Server::start(&[]);
    let mut admin = server.conn();
    let rules = [
        "ACL", "SETUSER", "ops", "on", ">opass", "~orders*", "+xgroup",
    ];
    assert_eq!(run(&mut admin, &rules), Value::Okay);
    let mut ops = login(&server, "ops", "opass");
    let create = ["XGROUP", "CREATE", "orders", "g", "$", "MKSTREAM"];
    assert_eq!(run(&mut ops, &create), Value::Okay);
    let policy = |dead_letter| {
        [
            "XGROUP",
            "SETPOLICY",
            "orders",
            "g",
            "MAXDELIVER",
            "3",
            "DEADLETTER",
            dead_letter,
        ]
    };
    assert_eq!(error(&mut ops, &policy("audit")), NO_KEY);
    assert_eq!(run(&mut ops, &policy("orders-dead")), Value::Okay);
    let keys = [
        "COMMAND",
        "GETKEYS",
        "XGROUP",
        "CREATE",
        "s",
        "g",
        "$",
        "DEADLETTER",
        "dlq",
    ];
    assert_eq!(query::<Vec<String>>(&mut admin, &keys), ["s", "dlq"]);
}
