//! Server commands: CONFIG, DEBUG, FUNCTION, SHUTDOWN, and the table entries of COMMAND and
//! INFO, which have their own files.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::describe::{About, Group};
use super::parse::is;
use super::{
    CommandSpec, Ctx, Outcome, acl, command, containers, diagnostics_config, info, latency, memory,
    reply, slowlog,
};
use crate::server::config::{FsyncPolicy, parse_maxclients, rewrite};
use crate::server::keys::DATABASES;
use crate::server::resp::Value;
use crate::server::tls::TlsSettings;

pub(super) fn commands() -> Vec<CommandSpec> {
    let spec =
        |name, arity, flags, handler| CommandSpec::new(name, arity, flags, (0, 0, 0), handler);
    let server = |since, summary| About::new(Group::Server, since, summary);
    vec![
        spec("acl", -2, &[], acl::acl).about(containers::ACL),
        spec("command", -1, &["loading", "stale"], command::command).about(containers::COMMAND),
        spec("info", -1, &["loading", "stale"], info::info).about(About {
            categories: &["@dangerous"],
            tips: &[
                "nondeterministic_output",
                "request_policy:all_shards",
                "response_policy:special",
            ],
            ..server("1.0.0", "Reports the server's state and statistics.")
        }),
        // Exclusive: `CONFIG SET appendfsync` reopens the store.
        spec("config", -2, &["admin", "exclusive"], config).about(containers::CONFIG),
        spec(
            "debug",
            -2,
            &["admin", "noscript", "loading", "stale", "exclusive"],
            debug,
        )
        .about(server(
            "1.0.0",
            "Debugging commands: RELOAD recovers the data directory.",
        )),
        spec("function", -2, &["write"], function).about(containers::FUNCTION),
        spec("slowlog", -2, &["admin"], slowlog::slowlog).about(containers::SLOWLOG),
        spec("latency", -2, &["admin"], latency::latency).about(containers::LATENCY),
        spec("memory", -2, &["readonly"], memory::memory).about(containers::MEMORY),
        spec(
            "shutdown",
            -1,
            &[
                "admin",
                "noscript",
                "loading",
                "stale",
                "no_multi",
                "allow_busy",
            ],
            shutdown,
        )
        .about(server(
            "1.0.0",
            "Closes the data directory cleanly and stops the server.",
        )),
    ]
}

/// `CONFIG GET pattern…` / `CONFIG SET name value…` / `CONFIG RESETSTAT` / `CONFIG REWRITE`.
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
    "aclfile",
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
        "aclfile" => config
            .aclfile
            .as_ref()
            .map(|path| path.display().to_string())
            .unwrap_or_default(),
        "proto-max-bulk-len" => config.max_bulk_len.to_string(),
        "client-query-buffer-limit" => config.max_query_buffer.to_string(),
        "databases" => DATABASES.to_string(),
        _ => super::persistence::value(&config, name)
            .or_else(|| config.tls.value(name))
            .or_else(|| diagnostics_config::value(ctx.server, name))
            .unwrap_or_default(),
    }
}

fn config_reply(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let sub = &args[1];
    if is(sub, "GET") && args.len() >= 3 {
        let mut pairs = Vec::new();
        let names = PARAMETERS
            .iter()
            .chain(super::persistence::NAMES)
            .chain(TlsSettings::NAMES)
            .chain(diagnostics_config::NAMES);
        for name in names {
            if args[2..].iter().any(|pattern| {
                crate::server::keys::glob_match(&pattern.to_ascii_lowercase(), name.as_bytes())
            }) {
                pairs.push((Value::bulk(*name), Value::bulk(parameter_value(ctx, name))));
            }
        }
        Ok(Value::Map(pairs))
    } else if is(sub, "SET") && args.len() >= 4 && args.len() % 2 == 0 {
        super::config_tls::set(ctx, &args[2..])?;
        for pair in args[2..].chunks(2) {
            if !super::config_tls::is_tls_name(&pair[0]) {
                config_set(ctx, &pair[0], &pair[1])?;
            }
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
        stats.commands.reset();
        stats.errors.reset();
        Ok(Value::ok())
    } else if is(sub, "REWRITE") && args.len() == 2 {
        config_rewrite(ctx)
    } else {
        Err(Value::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(sub)
        )))
    }
}

/// `CONFIG REWRITE`: the configuration file the server started with gets the settings in force.
fn config_rewrite(ctx: &Ctx<'_>) -> Result<Value, Value> {
    let config = ctx.server.config.read().clone();
    let Some(path) = &config.config_file else {
        return Err(Value::error(
            "ERR The server is running without a config file",
        ));
    };
    match rewrite(path, &config) {
        Ok(()) => {
            tracing::info!(file = %path.display(), "CONFIG REWRITE executed with success");
            Ok(Value::ok())
        }
        Err(error) => {
            tracing::warn!(%error, "CONFIG REWRITE failed");
            Err(Value::error(format!("ERR Rewriting config file: {error}")))
        }
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
    if let Some(outcome) = diagnostics_config::set(ctx, &name, value) {
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
            let password = (!text.is_empty()).then_some(text);
            ctx.server.acl.set_default_password(password.as_deref());
            ctx.server.config.write().requirepass = password;
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
