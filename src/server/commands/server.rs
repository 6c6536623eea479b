//! Server commands: COMMAND, INFO, CONFIG, DEBUG, FUNCTION, SHUTDOWN.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::parse::is;
use super::{CommandSpec, Ctx, Flags, Outcome, reply, table};
use crate::server::config::{FsyncPolicy, parse_maxclients};
use crate::server::keys::{DATABASES, key_of, key_part};
use crate::server::resp::Value;
use crate::store::Store;
use crate::stream::Backlog;

pub(super) fn commands() -> Vec<CommandSpec> {
    let spec = |name, arity, flags, handler| CommandSpec {
        name,
        arity,
        flags: Flags::new(flags),
        first_key: 0,
        last_key: 0,
        step: 0,
        handler,
    };
    vec![
        spec("command", -1, &["loading", "stale"], command),
        spec("info", -1, &["loading", "stale"], info),
        spec("config", -2, &["admin", "exclusive"], config),
        spec("debug", -2, &["admin", "exclusive"], debug),
        spec("function", -2, &["write"], function),
        spec(
            "shutdown",
            -1,
            &["admin", "noscript", "loading", "stale", "no-multi"],
            shutdown,
        ),
    ]
}

fn command_info(spec: &CommandSpec) -> Value {
    Value::Array(vec![
        Value::bulk(spec.name),
        Value::Integer(i64::from(spec.arity)),
        Value::Set(
            spec.flags
                .names()
                .iter()
                .map(|f| Value::Simple((*f).into()))
                .collect(),
        ),
        Value::Integer(i64::from(spec.first_key)),
        Value::Integer(i64::from(spec.last_key)),
        Value::Integer(i64::from(spec.step)),
        Value::Set(Vec::new()),
        Value::Set(Vec::new()),
        Value::Set(Vec::new()),
        Value::Array(Vec::new()),
    ])
}

fn command(_: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    let find = |name: &Bytes| {
        table()
            .iter()
            .find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
    };
    let Some(sub) = args.get(1) else {
        return Value::Array(table().iter().map(command_info).collect()).into();
    };
    if is(sub, "COUNT") {
        Value::Integer(table().len() as i64).into()
    } else if is(sub, "INFO") {
        let infos = if args.len() == 2 {
            table().iter().map(command_info).collect()
        } else {
            args[2..]
                .iter()
                .map(|name| find(name).map_or(Value::NullArray, command_info))
                .collect()
        };
        Value::Array(infos).into()
    } else if is(sub, "DOCS") {
        let wanted: Vec<&CommandSpec> = if args.len() == 2 {
            table().iter().collect()
        } else {
            args[2..].iter().filter_map(find).collect()
        };
        Value::Map(
            wanted
                .into_iter()
                .map(|spec| {
                    (
                        Value::bulk(spec.name),
                        Value::Map(vec![
                            (Value::bulk("summary"), Value::bulk(summary(spec.name))),
                            (Value::bulk("since"), Value::bulk("1.0.0")),
                            (Value::bulk("group"), Value::bulk(group_of(spec.name))),
                        ]),
                    )
                })
                .collect(),
        )
        .into()
    } else if is(sub, "LIST") {
        Value::Array(table().iter().map(|spec| Value::bulk(spec.name)).collect()).into()
    } else {
        Value::error(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        ))
        .into()
    }
}

fn group_of(name: &str) -> &'static str {
    if name.starts_with('x') {
        "stream"
    } else {
        match name {
            "ping" | "echo" | "hello" | "auth" | "select" | "quit" | "reset" | "client" => {
                "connection"
            }
            "multi" | "exec" | "discard" => "transactions",
            "del" | "unlink" | "exists" | "type" | "keys" | "scan" | "rename" | "renamenx" => {
                "generic"
            }
            "function" => "scripting",
            _ => "server",
        }
    }
}

fn summary(name: &str) -> String {
    format!(
        "The {} command, as Redis documents it.",
        name.to_ascii_uppercase()
    )
}

fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default");
    let show = |section: &str| all || wanted.iter().any(|w| w == section);
    let mut text = String::new();
    let server = ctx.server;
    let config = server.config.read().clone();
    if show("server") {
        let _ = write!(
            text,
            "# Server\r\nredis_version:{}\r\nweir_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\n\r\n",
            crate::server::version::REPORTED,
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            config.port,
            server.started.elapsed().as_secs(),
            server.started.elapsed().as_secs() / 86_400,
        );
    }
    if show("clients") {
        let _ = write!(
            text,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\n\r\n",
            server.clients.lock().len(),
            config.maxclients,
            server.blocked_clients.load(Ordering::Relaxed),
        );
    }
    let store = server.store().ok();
    if show("persistence") {
        let recovery = server.recovery();
        let flushes = store
            .as_ref()
            .map(|store| store.flush_stats())
            .unwrap_or_default();
        let _ = write!(
            text,
            "# Persistence\r\nloading:{}\r\naof_enabled:1\r\nappendfsync:{}\r\nweir_last_open_clean:{}\r\nweir_last_open_lost_records:{}\r\nweir_flush_rounds:{}\r\nweir_flush_requests:{}\r\nweir_flush_usec:{}\r\nweir_flush_max_usec:{}\r\n\r\n",
            u8::from(store.is_none()),
            config.fsync.as_str(),
            u8::from(recovery.clean),
            recovery.lost_records(),
            flushes.rounds,
            flushes.requests,
            flushes.flush_us,
            flushes.max_flush_us,
        );
    }
    if show("stats") {
        let stats = &server.stats;
        let _ = write!(
            text,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\n\r\n",
            stats.connections_received.load(Ordering::Relaxed),
            stats.commands_processed.load(Ordering::Relaxed),
            stats.rejected_connections.load(Ordering::Relaxed),
            stats.net_input_bytes.load(Ordering::Relaxed),
            stats.net_output_bytes.load(Ordering::Relaxed),
        );
    }
    if let Some(store) = &store {
        let names = store.stream_names();
        if show("keyspace") {
            text.push_str("# Keyspace\r\n");
            for db in 0..DATABASES {
                let keys = names.iter().filter(|n| key_of(db, n).is_some()).count();
                if keys > 0 {
                    let _ = write!(text, "db{db}:keys={keys},expires=0,avg_ttl=0\r\n");
                }
            }
            text.push_str("\r\n");
        }
        if show("backlog") {
            text.push_str(&backlog_section(store, &names));
        }
        if show("weir") {
            let (mut segments, mut bytes, mut entries) = (0usize, 0u64, 0u64);
            for name in &names {
                if let Some(stream) = store.get(name) {
                    segments += stream.segment_count();
                    bytes += stream.disk_bytes();
                    entries += stream.len();
                }
            }
            let _ = write!(
                text,
                "# Weir\r\nstreams:{}\r\nentries:{entries}\r\nsegments:{segments}\r\nsegment_bytes_on_disk:{bytes}\r\ndata_dir:{}\r\n\r\n",
                names.len(),
                config.dir.display(),
            );
        }
    }
    Value::Verbatim {
        format: *b"txt",
        text: Bytes::from(text),
    }
    .into()
}

/// `# Backlog`: totals and maxima first (what an alert watches), then one line per consumer
/// group. Unknown values (a group without pending entries has no oldest pending age) are -1.
fn backlog_section(store: &Store, names: &[Vec<u8>]) -> String {
    let mut totals = BacklogTotals::default();
    let mut lines = String::new();
    for name in names {
        let Some(stream) = store.get(name) else {
            continue;
        };
        let (db, key) = (name.first().copied().unwrap_or(0), key_part(name));
        for backlog in stream.backlog() {
            let _ = write!(
                lines,
                "group{}:db={db},key={},group={},lag={},pending={},oldest_undelivered_ms={},oldest_pending_ms={}\r\n",
                totals.groups,
                info_escape(key),
                info_escape(&backlog.group),
                or_unknown(backlog.lag),
                backlog.pending,
                or_unknown(backlog.oldest_undelivered_ms),
                or_unknown(backlog.oldest_pending_ms),
            );
            totals.add(&backlog);
        }
    }
    format!(
        "# Backlog\r\nbacklog_groups:{}\r\nbacklog_lag_total:{}\r\nbacklog_pending_total:{}\r\nbacklog_oldest_undelivered_ms_max:{}\r\nbacklog_oldest_pending_ms_max:{}\r\n{lines}\r\n",
        totals.groups,
        totals.lag,
        totals.pending,
        or_unknown(totals.oldest_undelivered_ms),
        or_unknown(totals.oldest_pending_ms),
    )
}

/// Sums and maxima over every group's backlog.
#[derive(Default)]
struct BacklogTotals {
    groups: usize,
    lag: u64,
    pending: usize,
    oldest_undelivered_ms: Option<u64>,
    oldest_pending_ms: Option<u64>,
}

impl BacklogTotals {
    fn add(&mut self, backlog: &Backlog) {
        self.groups += 1;
        self.lag = self.lag.saturating_add(backlog.lag.unwrap_or(0));
        self.pending += backlog.pending;
        self.oldest_undelivered_ms = self
            .oldest_undelivered_ms
            .max(backlog.oldest_undelivered_ms);
        self.oldest_pending_ms = self.oldest_pending_ms.max(backlog.oldest_pending_ms);
    }
}

fn or_unknown(value: Option<impl Into<u64>>) -> String {
    value.map_or_else(|| "-1".to_owned(), |v| v.into().to_string())
}

/// A key or group name inside an INFO line: bytes that could break the line's `k=v,k=v` syntax
/// (and anything not printable) become `%` and two hex digits.
fn info_escape(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for &byte in name {
        if byte.is_ascii_alphanumeric() || b"-_.:/{}[]@#".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// `CONFIG GET pattern…` / `CONFIG SET name value…` / `CONFIG RESETSTAT`.
fn config(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(config_reply(ctx, args))
}

const PARAMETERS: &[&str] = &[
    "appendfsync",
    "appendonly",
    "dir",
    "bind",
    "port",
    "maxclients",
    "requirepass",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "save",
    "databases",
];

fn parameter_value(ctx: &Ctx<'_>, name: &str) -> String {
    let config = ctx.server.config.read();
    match name {
        "appendfsync" => config.fsync.as_str().into(),
        "appendonly" => "yes".into(),
        "dir" => config.dir.display().to_string(),
        "bind" => config.bind.to_string(),
        "port" => config.port.to_string(),
        "maxclients" => config.maxclients.to_string(),
        "requirepass" => config.requirepass.clone().unwrap_or_default(),
        "proto-max-bulk-len" => config.max_bulk_len.to_string(),
        "client-query-buffer-limit" => config.max_query_buffer.to_string(),
        "databases" => DATABASES.to_string(),
        _ => super::persistence::value(&config, name).unwrap_or_default(),
    }
}

fn config_reply(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let sub = &args[1];
    if is(sub, "GET") && args.len() >= 3 {
        let mut pairs = Vec::new();
        for name in PARAMETERS.iter().chain(super::persistence::NAMES) {
            if args[2..].iter().any(|pattern| {
                crate::server::keys::glob_match(&pattern.to_ascii_lowercase(), name.as_bytes())
            }) {
                pairs.push((Value::bulk(*name), Value::bulk(parameter_value(ctx, name))));
            }
        }
        Ok(Value::Map(pairs))
    } else if is(sub, "SET") && args.len() >= 4 && args.len() % 2 == 0 {
        for pair in args[2..].chunks(2) {
            config_set(ctx, &pair[0], &pair[1])?;
        }
        Ok(Value::ok())
    } else if is(sub, "RESETSTAT") && args.len() == 2 {
        let stats = &ctx.server.stats;
        for counter in [
            &stats.commands_processed,
            &stats.connections_received,
            &stats.rejected_connections,
            &stats.net_input_bytes,
            &stats.net_output_bytes,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        Ok(Value::ok())
    } else {
        Err(Value::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(sub)
        )))
    }
}

fn config_set(ctx: &Ctx<'_>, name: &[u8], value: &[u8]) -> Result<(), Value> {
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    let text = String::from_utf8_lossy(value).into_owned();
    let invalid = |reason: &str| {
        Value::error(format!(
            "ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}"
        ))
    };
    if let Some(outcome) = super::persistence::set(ctx, &name, value) {
        return outcome;
    }
    match name.as_str() {
        "appendfsync" => {
            let policy = FsyncPolicy::parse(&text).ok_or_else(|| {
                invalid("argument(s) must be one of the following: always, everysec, no")
            })?;
            let changed = ctx.server.config.read().fsync != policy;
            if changed {
                ctx.server.config.write().fsync = policy;
                // The store's policy is fixed when it opens: reopen it under the new one. Inside
                // EXEC the lock is already held exclusively.
                let _exclusive = (!ctx.in_exec).then(|| ctx.server.exec_lock.write());
                ctx.server.reload().map_err(|e| invalid(&e.to_string()))?;
            }
            Ok(())
        }
        "requirepass" => {
            ctx.server.config.write().requirepass = (!text.is_empty()).then_some(text);
            Ok(())
        }
        "maxclients" => {
            let value = parse_maxclients(&text).map_err(|reason| invalid(&reason))?;
            ctx.server
                .set_maxclients(value)
                .map_err(|reason| invalid(&reason))
        }
        "appendonly" if text == "yes" => Ok(()),
        "save" => Ok(()),
        _ if PARAMETERS.contains(&name.as_str()) => Err(invalid("can't set immutable config")),
        _ => Err(Value::error(format!(
            "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
        ))),
    }
}

/// `DEBUG RELOAD` / `DEBUG LOADAOF`: close every stream cleanly and recover from disk.
fn debug(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    let sub = &args[1];
    if is(sub, "RELOAD") || is(sub, "LOADAOF") {
        // Inside EXEC the lock is already held exclusively.
        let _exclusive = (!ctx.in_exec).then(|| ctx.server.exec_lock.write());
        return match ctx.server.reload() {
            Ok(()) => Value::ok().into(),
            Err(error) => {
                Value::error(format!("ERR Error trying to reload from disk: {error}")).into()
            }
        };
    }
    Value::error(format!(
        "ERR unknown subcommand '{}'. Try DEBUG HELP.",
        String::from_utf8_lossy(sub)
    ))
    .into()
}

/// `FUNCTION FLUSH`: weir has no functions, so there is nothing to flush.
fn function(_: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    if is(&args[1], "FLUSH") && args.len() <= 3 {
        Value::ok().into()
    } else {
        Value::error(format!(
            "ERR unknown subcommand '{}'. Try FUNCTION HELP.",
            String::from_utf8_lossy(&args[1])
        ))
        .into()
    }
}

/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]`: stops the server as SIGTERM does (commands in flight
/// finish, the store closes cleanly) and drops this connection without a reply, as Redis does.
/// Every write is already in the log, so SAVE and NOSAVE change nothing; `ABORT` has nothing to
/// abort, because a shutdown never waits for replicas.
fn shutdown(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    let options = &args[1..];
    if options.iter().any(|arg| is(arg, "ABORT")) {
        return Value::error("ERR No shutdown in progress.").into();
    }
    let known = ["SAVE", "NOSAVE", "NOW", "FORCE"];
    let unknown = options.iter().any(|arg| !known.iter().any(|k| is(arg, k)));
    let contradictory =
        options.iter().any(|arg| is(arg, "SAVE")) && options.iter().any(|arg| is(arg, "NOSAVE"));
    if unknown || contradictory {
        return Value::error("ERR syntax error").into();
    }
    ctx.server.stop_requested.notify_one();
    Outcome::Hangup
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_names_cannot_break_the_line_syntax() {
        assert_eq!(info_escape(b"orders:eu"), "orders:eu");
        assert_eq!(info_escape(b"a,b=c d\r\n%"), "a%2Cb%3Dc%20d%0D%0A%25");
    }
}
