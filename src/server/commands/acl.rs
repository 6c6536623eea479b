//! ACL and its subcommands: users (SETUSER, GETUSER, DELUSER, LIST, USERS, WHOAMI), the
//! categories (CAT), checks without running (DRYRUN), the ACL file (SAVE, LOAD) and the log of
//! denials (LOG).

use bytes::Bytes;

use super::parse::{self, is};
use super::permission::{self, Denial};
use super::replies::text;
use super::subcommands::{self, help, subcommand_syntax};
use super::{Ctx, Outcome, arity_ok, lookup, wrong_arity};
use crate::server::acl::{CATEGORIES, LogEntry, describe, index, key_rules};
use crate::server::resp::Value;

pub(super) fn acl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    const TABLE: &[subcommands::Subcommand] = &[
        ("cat", -2, cat),
        ("deluser", -3, deluser),
        ("dryrun", -4, dryrun),
        ("getuser", 3, getuser),
        ("help", 2, acl_help),
        ("list", 2, list),
        ("load", 2, load),
        ("log", -2, log),
        ("save", 2, save),
        ("setuser", -3, setuser),
        ("users", 2, users),
        ("whoami", 2, whoami),
    ];
    subcommands::dispatch(ctx, args, "acl", TABLE)
}

fn error(text: String) -> Value {
    Value::error(format!("ERR {text}"))
}

/// `ACL CAT [category]`: the categories, or the commands and subcommands in one.
fn cat(_: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    match &args[2..] {
        [] => Ok(Value::Array(
            CATEGORIES.iter().map(|name| Value::bulk(*name)).collect(),
        )),
        [wanted] => {
            let name = text(wanted).to_ascii_lowercase();
            let category = CATEGORIES
                .iter()
                .find(|known| **known == name)
                .ok_or_else(|| error(format!("Unknown category '{}'", text(wanted))))?;
            Ok(Value::Array(
                index()
                    .in_category(category)
                    .map(|command| Value::bulk(command.name))
                    .collect(),
            ))
        }
        _ => Err(subcommand_syntax("acl", &args[1])),
    }
}

fn names(args: &[Bytes]) -> Vec<String> {
    args.iter().map(|arg| text(arg).into_owned()).collect()
}

fn deluser(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let names = names(&args[2..]);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let deleted = ctx.server.acl.delete(&names).map_err(error)?;
    Ok(Value::Integer(i64::try_from(deleted).unwrap_or(i64::MAX)))
}

fn setuser(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let rules = names(&args[3..]);
    let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
    ctx.server
        .acl
        .set_user(&text(&args[2]), &rules)
        .map_err(error)?;
    Ok(Value::ok())
}

/// `ACL DRYRUN user command [arg …]`: `OK`, or why the user may not run it.
fn dryrun(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let name = text(&args[2]);
    let user = ctx
        .server
        .acl
        .user(&name)
        .ok_or_else(|| error(format!("User '{name}' not found")))?;
    let call = &args[3..];
    let spec =
        lookup(&call[0]).ok_or_else(|| error(format!("Command '{}' not found", text(&call[0]))))?;
    if !arity_ok(spec, call.len()) {
        return Err(Value::error(wrong_arity(spec.name)));
    }
    Ok(match permission::check(&user, spec, call) {
        Ok(()) => Value::ok(),
        Err(Denial::Command(command)) => Value::bulk(format!(
            "This user has no permissions to run the '{command}' command"
        )),
        Err(Denial::Key(key)) => Value::bulk(format!(
            "This user has no permissions to access the '{}' key",
            text(&key)
        )),
    })
}

/// `ACL GETUSER name`: flags, password digests, commands, keys, channels, selectors.
fn getuser(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let Some(user) = ctx.server.acl.user(&text(&args[2])) else {
        return Ok(Value::Null);
    };
    let mut flags = vec![Value::bulk(if user.enabled { "on" } else { "off" })];
    if user.nopass {
        flags.push(Value::bulk("nopass"));
    }
    let rules = describe(&user);
    let commands = rules
        .find(['+', '-'])
        .map_or("", |at| &rules[at..])
        .to_string();
    let channels = if user.all_channels {
        "&*".to_string()
    } else {
        user.channels
            .iter()
            .map(|pattern| format!("&{pattern}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    Ok(Value::Map(vec![
        (Value::bulk("flags"), Value::Array(flags)),
        (
            Value::bulk("passwords"),
            Value::Array(user.passwords.iter().cloned().map(Value::bulk).collect()),
        ),
        (Value::bulk("commands"), Value::bulk(commands)),
        (Value::bulk("keys"), Value::bulk(key_rules(&user))),
        (Value::bulk("channels"), Value::bulk(channels)),
        (Value::bulk("selectors"), Value::Array(Vec::new())),
    ]))
}

fn list(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(Value::Array(
        ctx.server
            .acl
            .users()
            .iter()
            .map(|user| Value::bulk(format!("user {} {}", user.name, describe(user))))
            .collect(),
    ))
}

fn users(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(Value::Array(
        ctx.server
            .acl
            .users()
            .iter()
            .map(|user| Value::bulk(user.name.clone()))
            .collect(),
    ))
}

fn whoami(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(Value::bulk(ctx.client.user.name.clone()))
}

fn load(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    ctx.server.acl.load().map_err(error)?;
    Ok(Value::ok())
}

fn save(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    ctx.server.acl.save().map_err(error)?;
    Ok(Value::ok())
}

/// `ACL LOG [count | RESET]`: the newest entries (10 by default).
fn log(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let count = match &args[2..] {
        [] => 10,
        [reset] if is(reset, "RESET") => {
            ctx.server.acl.log.reset();
            return Ok(Value::ok());
        }
        [count] => usize::try_from(parse::integer(count)?).unwrap_or(0),
        _ => return Err(subcommand_syntax("acl", &args[1])),
    };
    Ok(Value::Array(
        ctx.server
            .acl
            .log
            .newest(count)
            .iter()
            .map(log_entry)
            .collect(),
    ))
}

fn log_entry(entry: &LogEntry) -> Value {
    Value::Map(vec![
        (Value::bulk("count"), Value::Integer(entry.count as i64)),
        (Value::bulk("reason"), Value::bulk(entry.reason.name())),
        (Value::bulk("context"), Value::bulk(entry.context)),
        (Value::bulk("object"), Value::bulk(entry.object.clone())),
        (Value::bulk("username"), Value::bulk(entry.username.clone())),
        (
            Value::bulk("age-seconds"),
            Value::Double(entry.created.elapsed().as_secs_f64()),
        ),
        (
            Value::bulk("client-info"),
            Value::bulk(entry.client_info.clone()),
        ),
    ])
}

fn acl_help(_: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(help(&[
        "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CAT [<category>]",
        "    List all commands that belong to <category>, or all command categories",
        "    when no category is specified.",
        "DELUSER <username> [<username> ...]",
        "    Delete a list of users.",
        "DRYRUN <username> <command> [<arg> ...]",
        "    Returns whether the user can execute the given command without executing the command.",
        "GETUSER <username>",
        "    Get the user's details.",
        "LIST",
        "    Show users details in config file format.",
        "LOAD",
        "    Reload users from the ACL file.",
        "LOG [<count> | RESET]",
        "    Show the ACL log entries.",
        "SAVE",
        "    Save the current config to the ACL file.",
        "SETUSER <username> <attribute> [<attribute> ...]",
        "    Create or modify a user with the specified attributes.",
        "USERS",
        "    List all the registered usernames.",
        "WHOAMI",
        "    Return the current connection username.",
        "HELP",
        "    Prints this help.",
    ]))
}
