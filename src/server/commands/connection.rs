//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT, and transactions
//! (MULTI, EXEC, DISCARD).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::describe::{About, Group};
use super::parse::{self, is, syntax_error};
use super::permission::{self, Denial};
use super::{
    Client, CommandSpec, Ctx, Flag, Outcome, containers, lookup, reply, store_error, wrong_arity,
};
use crate::server::Server;
use crate::server::acl::{Reason, User};
use crate::server::keys::DATABASES;
use crate::server::resp::{Protocol, Value};
use crate::server::state::ClientEntry;

/// Redis's flags for the commands a client may send before authenticating.
const HANDSHAKE: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
];
/// The same, for QUIT and RESET, which also end a transaction (`transaction`, weir's own).
const HANDSHAKE_ENDING: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
    "transaction",
];

pub(super) fn commands() -> Vec<CommandSpec> {
    let spec =
        |name, arity, flags, handler| CommandSpec::new(name, arity, flags, (0, 0, 0), handler);
    let connection = |since, summary| About {
        categories: &["@connection"],
        ..About::new(Group::Connection, since, summary)
    };
    let transaction = |since, summary| About {
        categories: &["@transaction"],
        ..About::new(Group::Transactions, since, summary)
    };
    vec![
        spec("ping", -1, &["fast"], ping).about(About {
            tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
            ..connection("1.0.0", "Answers PONG, or the message given.")
        }),
        spec("echo", 2, &["loading", "stale", "fast"], echo)
            .about(connection("1.0.0", "Answers the message given.")),
        spec("hello", -1, HANDSHAKE, hello).about(connection(
            "6.0.0",
            "Chooses the protocol, authenticates, describes the server.",
        )),
        spec("auth", -2, HANDSHAKE, auth)
            .about(connection("1.0.0", "Authenticates the connection.")),
        spec("select", 2, &["loading", "stale", "fast"], select).about(connection(
            "1.0.0",
            "Switches the connection to another database.",
        )),
        spec("quit", -1, HANDSHAKE_ENDING, quit)
            .about(connection("1.0.0", "Closes the connection.")),
        spec("reset", 1, HANDSHAKE_ENDING, reset).about(connection(
            "6.2.0",
            "Resets the connection to its initial state.",
        )),
        spec("client", -2, &["admin"], client).about(containers::CLIENT),
        spec(
            "multi",
            1,
            &[
                "noscript",
                "loading",
                "stale",
                "fast",
                "allow_busy",
                "transaction",
            ],
            multi,
        )
        .about(transaction("1.2.0", "Starts a transaction.")),
        spec(
            "exec",
            1,
            &[
                "noscript",
                "loading",
                "stale",
                "skip_slowlog",
                "transaction",
                "exclusive",
            ],
            exec,
        )
        .about(transaction(
            "1.2.0",
            "Runs the commands queued since MULTI, atomically.",
        )),
        spec(
            "discard",
            1,
            &[
                "noscript",
                "loading",
                "stale",
                "fast",
                "allow_busy",
                "transaction",
            ],
            discard,
        )
        .about(transaction(
            "2.0.0",
            "Drops the commands queued since MULTI.",
        )),
    ]
}

fn ping(_: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    match args.len() {
        1 => Value::Simple("PONG".into()).into(),
        2 => Value::Bulk(args[1].clone()).into(),
        _ => Value::error(wrong_arity("ping")).into(),
    }
}

fn echo(_: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    Value::Bulk(args[1].clone()).into()
}

fn hello(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(hello_reply(ctx, args))
}

fn hello_reply(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let mut protocol = ctx.client.protocol;
    let mut rest = &args[1..];
    if let Some((version, tail)) = rest.split_first() {
        protocol = match parse::integer(version) {
            Ok(2) => Protocol::Resp2,
            Ok(3) => Protocol::Resp3,
            Ok(_) => return Err(Value::error("NOPROTO unsupported protocol version")),
            Err(_) => {
                return Err(Value::error(
                    "ERR Protocol version is not an integer or out of range",
                ));
            }
        };
        rest = tail;
    }
    let mut name = None;
    while let Some((option, tail)) = rest.split_first() {
        if is(option, "AUTH") && tail.len() >= 2 {
            check_password(ctx, &tail[0], &tail[1])?;
            rest = &tail[2..];
        } else if is(option, "SETNAME") && !tail.is_empty() {
            name = Some(tail[0].clone());
            rest = &tail[1..];
        } else {
            return Err(Value::error(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(option)
            )));
        }
    }
    if !ctx.client.authenticated {
        return Err(Value::error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let Some(name) = name {
        set_name(ctx, name)?;
    }
    ctx.client.protocol = protocol;
    let version = if protocol == Protocol::Resp3 { 3 } else { 2 };
    Ok(Value::Map(vec![
        (Value::bulk("server"), Value::bulk("redis")),
        (
            Value::bulk("version"),
            Value::bulk(ctx.server.config.read().redis_version.to_string()),
        ),
        (Value::bulk("proto"), Value::Integer(version)),
        (Value::bulk("id"), Value::Integer(ctx.client.id as i64)),
        (Value::bulk("mode"), Value::bulk("standalone")),
        (Value::bulk("role"), Value::bulk("master")),
        (Value::bulk("modules"), Value::Array(Vec::new())),
    ]))
}

fn auth(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    let result = match args.len() {
        2 => default_auth(ctx, &args[1]),
        3 => check_password(ctx, &args[1], &args[2]),
        _ => Err(syntax_error()),
    };
    reply(result.map(|()| Value::ok()))
}

/// `AUTH password`: the default user's password, which it must have.
fn default_auth(ctx: &mut Ctx<'_>, password: &[u8]) -> Result<(), Value> {
    if ctx.server.acl.default_user().nopass {
        return Err(Value::error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ));
    }
    check_password(ctx, b"default", password)
}

/// Authenticates the connection as `user`, or counts and logs the failure.
fn check_password(ctx: &mut Ctx<'_>, user: &[u8], password: &[u8]) -> Result<(), Value> {
    let acl = &ctx.server.acl;
    let generation = acl.generation();
    let Some(found) = acl.authenticate(user, password) else {
        ctx.client.auth_failures = ctx.client.auth_failures.saturating_add(1);
        ctx.client.reply_delay = Some(auth_failure_delay(ctx.client.auth_failures));
        acl.denied.auth.fetch_add(1, Ordering::Relaxed);
        let username = String::from_utf8_lossy(user).into_owned();
        let context = if ctx.client.multi.is_some() {
            "multi"
        } else {
            "toplevel"
        };
        permission::log_entry(
            ctx.server,
            ctx.client,
            Reason::Auth,
            context,
            "AUTH".into(),
            username,
        );
        return Err(Value::error(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ));
    };
    set_user(ctx.server, ctx.client, found, generation);
    ctx.client.auth_failures = 0;
    Ok(())
}

/// Runs the client's commands as `user` from now on.
fn set_user(server: &Server, client: &mut Client, user: Arc<User>, generation: u64) {
    if let Some(entry) = server.clients.lock().get_mut(&client.id) {
        entry.user.clone_from(&user.name);
    }
    client.authenticated = true;
    client.user = user;
    client.user_generation = generation;
}

/// How much later than the one before each failed password check on a connection is answered.
const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(250);
/// The longest wait for the answer to a failed password check.
const MAX_AUTH_FAILURE_DELAY: Duration = Duration::from_secs(2);

/// The wait before answering the `failures`-th failed password check in a row on a connection.
fn auth_failure_delay(failures: u32) -> Duration {
    AUTH_FAILURE_DELAY
        .saturating_mul(failures)
        .min(MAX_AUTH_FAILURE_DELAY)
}

fn select(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(parse::integer(&args[1]).and_then(|db| {
        let db = u8::try_from(db)
            .ok()
            .filter(|&db| db < DATABASES)
            .ok_or_else(|| Value::error("ERR DB index is out of range"))?;
        ctx.client.db = db;
        Ok(Value::ok())
    }))
}

fn quit(_: &mut Ctx<'_>, _: &[Bytes]) -> Outcome {
    Outcome::Close(Value::ok())
}

fn reset(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Outcome {
    let acl = &ctx.server.acl;
    let generation = acl.generation();
    let default = acl.default_user();
    let needs_auth = !(default.enabled && default.nopass);
    set_user(ctx.server, ctx.client, default, generation);
    ctx.client.db = 0;
    ctx.client.protocol = Protocol::Resp2;
    ctx.client.multi = None;
    ctx.client.multi_failed = false;
    ctx.client.name = None;
    ctx.client.read_only = false;
    ctx.client.authenticated = !needs_auth;
    if let Some(entry) = ctx.server.clients.lock().get_mut(&ctx.client.id) {
        entry.name = None;
    }
    Value::Simple("RESET".into()).into()
}

fn set_name(ctx: &mut Ctx<'_>, name: Bytes) -> Result<(), Value> {
    if name.iter().any(|&b| b <= b' ' || b > b'~') {
        return Err(Value::error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    let name = (!name.is_empty()).then_some(name);
    ctx.client.name = name.clone();
    if let Some(entry) = ctx.server.clients.lock().get_mut(&ctx.client.id) {
        entry.name = name;
    }
    Ok(())
}

fn client(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(client_reply(ctx, args))
}

fn client_reply(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let sub = &args[1];
    let rest = &args[2..];
    if is(sub, "SETNAME") && rest.len() == 1 {
        set_name(ctx, rest[0].clone())?;
        Ok(Value::ok())
    } else if is(sub, "GETNAME") && rest.is_empty() {
        Ok(ctx.client.name.clone().map_or(Value::Null, Value::Bulk))
    } else if is(sub, "ID") && rest.is_empty() {
        Ok(Value::Integer(ctx.client.id as i64))
    } else if is(sub, "SETINFO") && rest.len() == 2 {
        let mut clients = ctx.server.clients.lock();
        let entry = clients.get_mut(&ctx.client.id);
        if is(&rest[0], "LIB-NAME") {
            if let Some(entry) = entry {
                entry.lib_name = Some(rest[1].clone());
            }
        } else if is(&rest[0], "LIB-VER") {
            if let Some(entry) = entry {
                entry.lib_version = Some(rest[1].clone());
            }
        } else {
            return Err(Value::error(format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(&rest[0])
            )));
        }
        Ok(Value::ok())
    } else if is(sub, "LIST") {
        Ok(Value::Verbatim {
            format: *b"txt",
            text: Bytes::from(client_list(ctx)),
        })
    } else if is(sub, "INFO") && rest.is_empty() {
        let line = client_list(ctx)
            .lines()
            .find(|line| line.starts_with(&format!("id={} ", ctx.client.id)))
            .map(|line| format!("{line}\n"))
            .unwrap_or_default();
        Ok(Value::Verbatim {
            format: *b"txt",
            text: Bytes::from(line),
        })
    } else if is(sub, "KILL") && rest.len() == 2 && is(&rest[0], "ID") {
        let id = parse::non_negative(&rest[1])?;
        let clients = ctx.server.clients.lock();
        match clients.get(&id) {
            Some(entry) => {
                entry.kill.notify_one();
                Ok(Value::Integer(1))
            }
            None => Err(Value::error("ERR No such client")),
        }
    } else if is(sub, "HELP") {
        Ok(Value::Array(
            [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "KILL ID <client-id>",
                "    Kill the connection with that ID.",
                "LIST",
                "    Return information about client connections.",
                "SETINFO <option> <value>",
                "    Set LIB-NAME or LIB-VER.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
            ]
            .iter()
            .map(|line| Value::Simple((*line).into()))
            .collect(),
        ))
    } else {
        Err(Value::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(sub)
        )))
    }
}

fn client_list(ctx: &Ctx<'_>) -> String {
    let now = Instant::now();
    let clients = ctx.server.clients.lock();
    clients
        .iter()
        .map(|(&id, entry)| {
            let resp3 = id == ctx.client.id && ctx.client.protocol == Protocol::Resp3;
            client_line(now, id, entry, resp3)
        })
        .collect()
}

/// The client's `CLIENT INFO` line, without its line end (for `ACL LOG`).
pub(super) fn client_info(server: &Server, client: &Client) -> String {
    let clients = server.clients.lock();
    let resp3 = client.protocol == Protocol::Resp3;
    clients
        .get(&client.id)
        .map(|entry| client_line(Instant::now(), client.id, entry, resp3))
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

fn client_line(now: Instant, id: u64, entry: &ClientEntry, resp3: bool) -> String {
    let text = |v: &Option<Bytes>| {
        v.as_ref()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default()
    };
    format!(
        "id={id} addr={} laddr= fd=0 name={} age={} idle={} flags=N db={} sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}\n",
        entry.addr,
        text(&entry.name),
        now.duration_since(entry.connected).as_secs(),
        now.duration_since(entry.last_command).as_secs(),
        entry.db,
        entry.last_command_name,
        entry.user,
        if resp3 { 3 } else { 2 },
        text(&entry.lib_name),
        text(&entry.lib_version),
    )
}

fn multi(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Outcome {
    if ctx.client.multi.is_some() {
        return Value::error("ERR MULTI calls can not be nested").into();
    }
    ctx.client.multi = Some(Vec::new());
    ctx.client.multi_failed = false;
    Value::ok().into()
}

fn discard(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Outcome {
    if ctx.client.multi.take().is_none() {
        return Value::error("ERR DISCARD without MULTI").into();
    }
    ctx.client.multi_failed = false;
    Value::ok().into()
}

/// Runs the queued commands with the exec lock held exclusively: no other client's command runs
/// in between, and none of them blocks. The commands run as one store transaction, so that a
/// crash leaves all of their writes or none. A command that reopens the store (`exclusive`:
/// DEBUG RELOAD, CONFIG SET appendfsync) commits what came before it and runs on its own.
fn exec(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Outcome {
    let Some(queued) = ctx.client.multi.take() else {
        return Value::error("ERR EXEC without MULTI").into();
    };
    if std::mem::take(&mut ctx.client.multi_failed) {
        return Value::error("EXECABORT Transaction discarded because of previous errors.").into();
    }
    let server = ctx.server;
    // Rules changed since the commands were queued apply to them.
    permission::refresh_user(server, ctx.client);
    let _exclusive = server.exec_lock.write();
    let mut replies = Vec::with_capacity(queued.len());
    let mut rest = queued.as_slice();
    while !rest.is_empty() {
        let reopens =
            |args: &Vec<Bytes>| lookup(&args[0]).is_some_and(|s| s.has_flag(Flag::Exclusive));
        let run_len = match rest.iter().position(reopens) {
            Some(0) => 1,
            Some(at) => at,
            None => rest.len(),
        };
        let (run, after) = rest.split_at(run_len);
        rest = after;
        // A command that reopens the store must not find it held here.
        let store = (!reopens(&run[0])).then(|| ctx.store().ok()).flatten();
        let client = &mut *ctx.client;
        let mut run_all = || {
            run.iter()
                .map(|args| run_queued(server, client, args))
                .collect()
        };
        let outcome: Result<Vec<Value>, Value> = match store {
            Some(store) => store
                .transaction(run_all)
                .map_err(|error| store_error(&error)),
            None => Ok(run_all()),
        };
        match outcome {
            Ok(values) => replies.extend(values),
            Err(error) => {
                replies.extend(std::iter::repeat_n(error, run.len()));
            }
        }
    }
    Value::Array(replies).into()
}

/// One command of a transaction, with its reply, counted in the statistics as a command of
/// its own.
fn run_queued(server: &Arc<Server>, client: &mut Client, args: &[Bytes]) -> Value {
    let Some(spec) = lookup(&args[0]) else {
        return Value::error(super::unknown_command(args));
    };
    server
        .stats
        .commands_processed
        .fetch_add(1, Ordering::Relaxed);
    if let Err(denial) = permission::check(&client.user, spec, args) {
        permission::log_denial(server, client, &denial, "multi");
        return changed_rules_error(&denial);
    }
    let started = Instant::now();
    let mut inner = Ctx {
        server,
        client,
        retry: false,
        in_exec: true,
    };
    let outcome = (spec.handler)(&mut inner, args);
    // Woken readers run once EXEC, which holds the exec lock, is done.
    super::announce_write(server, inner.client.db, spec, args);
    let reply = match outcome {
        Outcome::Reply(value) | Outcome::Close(value) => value,
        Outcome::Block { timeout_reply, .. } => timeout_reply,
        Outcome::Hangup => Value::error("ERR Command not allowed inside a transaction"),
        #[cfg(feature = "cluster")]
        Outcome::Replicating(_) => Value::error("ERR Command not allowed inside a transaction"),
    };
    if let Some(slot) = spec.stats_slot(args) {
        let commands = &server.stats.commands;
        commands.ran_for(slot, started.elapsed());
        commands.called(slot, matches!(reply, Value::Error(_)));
    }
    if let Value::Error(text) = &reply {
        server.stats.errors.count(text);
    }
    reply
}

/// A denied EXEC: the transaction is discarded, and the reply says why.
pub(super) fn abort_exec(client: &mut Client, denied: Value) -> Value {
    client.multi = None;
    client.multi_failed = false;
    let reason = match denied {
        Value::Error(text) => text,
        _ => String::new(),
    };
    Value::error(format!(
        "EXECABORT Transaction discarded because of: {reason}"
    ))
}

/// Redis's error for a queued command its user may no longer run when EXEC runs it.
fn changed_rules_error(denial: &Denial) -> Value {
    let reason = match denial {
        Denial::Command(_) => "no permission to execute the command or subcommand",
        Denial::Key(_) => "no permission to touch the specified keys",
    };
    Value::error(format!(
        "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {reason}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failed_password_check_waits_longer_up_to_a_bound() {
        assert_eq!(auth_failure_delay(1), Duration::from_millis(250));
        assert_eq!(auth_failure_delay(2), Duration::from_millis(500));
        assert_eq!(auth_failure_delay(100), MAX_AUTH_FAILURE_DELAY);
        assert_eq!(auth_failure_delay(u32::MAX), MAX_AUTH_FAILURE_DELAY);
    }
}
