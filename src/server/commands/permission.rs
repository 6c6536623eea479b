//! Whether the client's user may run a call: the command (or a container's subcommand) must be
//! among the user's, and every key its key specs find must match one of the user's patterns
//! with the access the spec's flags need (`access`: read; `insert`, `update`, `delete`: write),
//! as Redis 7 decides for `%R~` and `%W~`. A denial is logged and counted.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;

use super::describe::{KeySpec, keys_of};
use super::{Client, CommandSpec, Flag, command};
use crate::server::acl::{Access, LogEntry, Reason, User};
use crate::server::resp::Value;
use crate::server::state::Server;

/// A command or subcommand as ACL rules name it, with its counter slot and categories.
#[derive(Debug)]
pub(crate) struct AclCommand {
    pub(crate) name: &'static str,
    pub(crate) slot: usize,
    /// How many subcommand slots follow the container's own.
    pub(crate) subcommands: usize,
    pub(crate) categories: Vec<&'static str>,
}

/// Every command and subcommand of the table, each container followed by its subcommands.
pub(crate) fn acl_commands() -> Vec<AclCommand> {
    super::table()
        .iter()
        .flat_map(|spec| {
            let subs = spec
                .about
                .subcommands
                .iter()
                .enumerate()
                .map(|(at, sub)| AclCommand {
                    name: sub.name,
                    slot: spec.stats_slot + 1 + at,
                    subcommands: 0,
                    categories: super::describe::categories(sub.flags, sub.about.categories),
                });
            std::iter::once(AclCommand {
                name: spec.name,
                slot: spec.stats_slot,
                subcommands: spec.about.subcommands.len(),
                categories: command::acl_categories(spec),
            })
            .chain(subs)
        })
        .collect()
}

/// Why a call is denied.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Denial {
    /// The command or subcommand, by its full name.
    Command(&'static str),
    Key(Bytes),
}

impl Denial {
    /// Redis's error reply.
    pub(crate) fn reply(&self) -> Value {
        match self {
            Denial::Command(name) => Value::error(format!(
                "NOPERM this user has no permissions to run the '{name}' command"
            )),
            Denial::Key(_) => Value::error(
                "NOPERM this user has no permissions to access one of the keys used as arguments",
            ),
        }
    }
}

/// Whether `user` may run `args` (the command `spec`).
pub(crate) fn check(user: &User, spec: &CommandSpec, args: &[Bytes]) -> Result<(), Denial> {
    // AUTH, HELLO, QUIT and RESET are always allowed, as in Redis.
    if user.unrestricted() || spec.has_flag(Flag::NoAuth) {
        return Ok(());
    }
    // An unknown subcommand runs nothing: the container answers with its error.
    let Some((slot, name, key_specs)) = target(spec, args) else {
        return Ok(());
    };
    if !user.may_run(slot) {
        return Err(Denial::Command(name));
    }
    for (key, flags) in keys_of(&key_specs, args).unwrap_or_default() {
        if !user.may_touch(key, needed(flags)) {
            return Err(Denial::Key(key.clone()));
        }
    }
    Ok(())
}

/// The slot, full name and key specs of the command or subcommand `args` calls.
fn target(
    spec: &CommandSpec,
    args: &[Bytes],
) -> Option<(usize, &'static str, Cow<'static, [KeySpec]>)> {
    if spec.about.subcommands.is_empty() {
        return Some((spec.stats_slot, spec.name, Cow::Owned(spec.key_specs())));
    }
    let wanted = args.get(1)?;
    let (at, sub) = spec
        .about
        .subcommands
        .iter()
        .enumerate()
        .find(|(_, sub)| sub.short_name().as_bytes().eq_ignore_ascii_case(wanted))?;
    Some((
        spec.stats_slot + 1 + at,
        sub.name,
        Cow::Borrowed(sub.about.key_specs),
    ))
}

/// The access a key spec's flags need.
fn needed(flags: &[&str]) -> Access {
    flags.iter().fold(Access::NONE, |access, flag| match *flag {
        "access" => access.with(Access::READ),
        "insert" | "update" | "delete" => access.with(Access::WRITE),
        _ => access,
    })
}

/// Reads the client's user again if any user changed since; `false` if it was deleted (the
/// connection is then closed, as Redis closes a deleted user's connections).
pub(crate) fn refresh_user(server: &Server, client: &mut Client) -> bool {
    let generation = server.acl.generation();
    if generation == client.user_generation {
        return true;
    }
    client.user_generation = generation;
    match server.acl.user(&client.user.name) {
        Some(user) => {
            client.user = user;
            true
        }
        None => false,
    }
}

/// The error for a denied call, logged in `ACL LOG` and counted; `None` if it is allowed.
pub(crate) fn denial(
    server: &Server,
    client: &Client,
    spec: &CommandSpec,
    args: &[Bytes],
) -> Option<Value> {
    let denial = check(&client.user, spec, args).err()?;
    let context = if client.multi.is_some() {
        "multi"
    } else {
        "toplevel"
    };
    log_denial(server, client, &denial, context);
    Some(denial.reply())
}

/// Logs a denial in `ACL LOG` and counts it for `INFO`.
pub(crate) fn log_denial(server: &Server, client: &Client, denial: &Denial, context: &'static str) {
    let (reason, object, counter) = match denial {
        Denial::Command(name) => (
            Reason::Command,
            name.to_string(),
            &server.acl.denied.command,
        ),
        Denial::Key(key) => (
            Reason::Key,
            String::from_utf8_lossy(key).into_owned(),
            &server.acl.denied.key,
        ),
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let username = client.user.name.clone();
    log_entry(server, client, reason, context, object, username);
}

/// Adds an entry to `ACL LOG` for a user named `username`, who may not exist.
pub(crate) fn log_entry(
    server: &Server,
    client: &Client,
    reason: Reason,
    context: &'static str,
    object: String,
    username: String,
) {
    server.acl.log.add(LogEntry {
        count: 1,
        reason,
        context,
        object,
        username,
        created: Instant::now(),
        client_info: super::connection::client_info(server, client),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::commands::lookup;

    fn args(words: &str) -> Vec<Bytes> {
        words
            .split(' ')
            .map(|word| Bytes::copy_from_slice(word.as_bytes()))
            .collect()
    }

    fn user(rules: &[&str]) -> User {
        let mut user = User::new("u");
        for rule in rules {
            user.apply(rule).unwrap();
        }
        user
    }

    fn verdict(user: &User, words: &str) -> Result<(), Denial> {
        let args = args(words);
        check(user, lookup(&args[0]).unwrap(), &args)
    }

    fn key(name: &str) -> Denial {
        Denial::Key(Bytes::copy_from_slice(name.as_bytes()))
    }

    #[test]
    fn a_producer_may_only_append_to_its_streams() {
        let producer = user(&["on", "%W~orders*", "+xadd"]);
        assert_eq!(verdict(&producer, "XADD orders:1 * f v"), Ok(()));
        assert_eq!(verdict(&producer, "XADD other * f v"), Err(key("other")));
        assert_eq!(
            verdict(&producer, "XLEN orders:1"),
            Err(Denial::Command("xlen"))
        );
    }

    #[test]
    fn reads_need_read_access_to_every_key() {
        let reader = user(&["%R~in*", "%W~out", "+@stream"]);
        assert_eq!(verdict(&reader, "XREAD STREAMS in:1 in:2 0 0"), Ok(()));
        assert_eq!(
            verdict(&reader, "XREAD COUNT 1 STREAMS in:1 out 0 0"),
            Err(key("out"))
        );
        // XLEN's key spec asks for no access: any pattern that matches will do.
        assert_eq!(verdict(&reader, "XLEN out"), Ok(()));
        assert_eq!(verdict(&reader, "XADD in:1 * f v"), Err(key("in:1")));
        assert_eq!(verdict(&reader, "XGROUP CREATE in:1 g $"), Err(key("in:1")));
    }

    #[test]
    fn subcommands_have_rules_of_their_own() {
        let consumer = user(&["~*", "+xgroup", "-xgroup|destroy"]);
        assert_eq!(verdict(&consumer, "XGROUP CREATE s g $"), Ok(()));
        assert_eq!(
            verdict(&consumer, "XGROUP DESTROY s g"),
            Err(Denial::Command("xgroup|destroy"))
        );
        assert_eq!(verdict(&consumer, "XGROUP NOSUCH s"), Ok(()));
        assert_eq!(verdict(&user(&["+@all", "~*"]), "XINFO STREAM s"), Ok(()));
    }
}
