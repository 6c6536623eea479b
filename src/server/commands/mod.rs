//! Command dispatch: the table of commands, argument checks, authentication, transactions and
//! blocking. Each family of commands lives in its own file; [`parse`] reads their arguments.

mod acl;
mod cluster;
#[cfg(feature = "cluster")]
mod clustered;
#[cfg(feature = "cluster")]
pub(crate) use clustered::{Replicating, submitted_in_order};
mod command;
mod config_tls;
mod connection;
mod containers;
mod describe;
mod diagnostics_config;
mod errors;
mod info;
mod info_weir;
mod keyspace;
mod latency;
pub(crate) mod local_failure;
mod lookup;
#[cfg(feature = "cluster")]
mod membership;
mod memory;
mod parse;
mod permission;
mod persistence;
mod replies;
mod server;
mod slowlog;
mod subcommands;
mod wait;
mod xack;
mod xackdel;
mod xadd;
mod xcfgset;
mod xclaim;
mod xdel;
mod xdelex;
mod xgroup;
mod xinfo;
mod xlen;
mod xnack;
mod xpending;
mod xrange;
mod xread;
mod xreadgroup;
mod xsetid;
mod xtrim;

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use self::describe::{About, KeySpec};
pub(crate) use self::permission::{AclCommand, acl_commands};
use super::acl::{Acl, User};
use super::diagnostics::{Caller, Run};
use super::keys::stream_name;
use super::resp::{EntryFields, Protocol, Value};
use super::state::{KeyWatch, Server};
use crate::Entry;
use crate::durability::{Commit, CommitBatch};
use crate::id::StreamId;
use crate::store::Store;
use crate::{Error, ErrorKind};

/// What a command handler returns.
pub(crate) enum Outcome {
    /// Send this reply.
    Reply(Value),
    /// Nothing to send yet: wait until data changes or `deadline` passes, then run `args` again
    /// (with `$` already resolved, so the retry waits for entries after the call's last ID).
    Block {
        args: Vec<Bytes>,
        deadline: Option<Instant>,
        /// The reply if the deadline passes first.
        timeout_reply: Value,
        /// The keys whose writes may end the wait.
        keys: Vec<Bytes>,
    },
    /// Send this reply, then close the connection.
    Close(Value),
    /// Close the connection without a reply (`SHUTDOWN`: clients expect the connection to drop).
    Hangup,
    /// On a node of a cluster, a write submitted to the Raft log: its reply comes once it is
    /// committed and applied. The connection collects such replies in order, and waits for
    /// them before it runs a command that is not submitted this way.
    #[cfg(feature = "cluster")]
    Replicating(clustered::Replicating),
}

impl From<Value> for Outcome {
    fn from(value: Value) -> Self {
        Outcome::Reply(value)
    }
}

/// One connection's state.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) id: u64,
    pub(crate) db: u8,
    pub(crate) protocol: Protocol,
    pub(crate) authenticated: bool,
    /// The user the client runs commands as (`default` until it authenticates).
    pub(crate) user: Arc<User>,
    /// The users' generation `user` was read at: a newer one means it must be read again.
    pub(crate) user_generation: u64,
    pub(crate) name: Option<Bytes>,
    /// Commands queued after `MULTI`; `None` outside a transaction.
    pub(crate) multi: Option<Vec<Vec<Bytes>>>,
    /// A command queued after `MULTI` was rejected: `EXEC` must abort.
    pub(crate) multi_failed: bool,
    /// The previous command: a pipeline usually repeats one command, which is then found
    /// without searching the table.
    previous: Option<&'static CommandSpec>,
    /// The command last published to the client table, with its database and when.
    published: Option<(&'static str, u8, Instant)>,
    /// Failed password checks on this connection, each answered later than the one before.
    pub(crate) auth_failures: u32,
    /// Set by a failed password check: the reply waits this long, so that passwords cannot be
    /// guessed at the speed of a pipeline.
    pub(crate) reply_delay: Option<Duration>,
    /// What the writes of the batch being run must flush: the connection makes it durable with
    /// one group-commit wait before any of the batch's replies is written.
    pub(crate) commits: CommitBatch,
    /// The Raft log index of the connection's last replicated write (0: none), for `WAIT`.
    pub(crate) last_write_index: u64,
    /// The shard of the connection's last replicated write, whose log `last_write_index` is in.
    pub(crate) last_write_shard: usize,
    /// The shard whose store the running command sees: its keys' (or, applying a replicated
    /// command, its log's); `None` (a keyless command off the log): every shard's.
    pub(crate) shard: Option<usize>,
    /// `READONLY`: in a cluster, a replica answers the connection's reads itself rather than
    /// redirect them to the master.
    pub(crate) read_only: bool,
    /// In a cluster, the connection submitted writes to the log whose replies it has not
    /// collected yet: a command that must see them goes into the log after them.
    pub(crate) writes_in_flight: bool,
}

impl Client {
    /// A new connection, as the default user: authenticated if that needs no password.
    pub(crate) fn new(id: u64, acl: &Acl) -> Self {
        let user_generation = acl.generation();
        let user = acl.default_user();
        Client {
            id,
            db: 0,
            protocol: Protocol::Resp2,
            authenticated: user.enabled && user.nopass,
            user,
            user_generation,
            name: None,
            multi: None,
            multi_failed: false,
            previous: None,
            published: None,
            auth_failures: 0,
            reply_delay: None,
            commits: CommitBatch::default(),
            last_write_index: 0,
            last_write_shard: 0,
            shard: None,
            read_only: false,
            writes_in_flight: false,
        }
    }
}

impl Client {
    /// The client committed commands of shard `shard`'s log run as on every node of a
    /// cluster: the leader checked the proposing client's rights before proposing.
    #[cfg(feature = "cluster")]
    pub(crate) fn replica(acl: &Acl, shard: usize) -> Self {
        let mut client = Client::new(0, acl);
        client.authenticated = true;
        client.shard = Some(shard);
        client
    }
}

/// What a handler sees.
pub(crate) struct Ctx<'a> {
    pub(crate) server: &'a Arc<Server>,
    pub(crate) client: &'a mut Client,
    /// The command runs again after blocking: a key that vanished meanwhile is reported as
    /// Redis reports unblocking errors.
    pub(crate) retry: bool,
    /// The command runs inside `EXEC`, which holds the exec lock exclusively (so an
    /// `exclusive` command must not take it again), or is a blocked command's last look: it must
    /// never block.
    pub(crate) in_exec: bool,
}

impl Ctx<'_> {
    /// The store of the command's shard (the only one but on a node of a sharded cluster, where
    /// a keyed command's keys are all in one shard), or the error reply to send.
    pub(crate) fn store(&self) -> Result<Arc<Store>, Value> {
        self.server
            .shard_store(self.client.shard.unwrap_or(0))
            .map_err(|error| store_error(&error))
    }

    /// The stores a keyless command sees: its shard's when it runs from a shard's log, else
    /// every shard's.
    pub(crate) fn stores(&self) -> Result<Vec<Arc<Store>>, Value> {
        let stores = match self.client.shard {
            Some(shard) => self.server.shard_store(shard).map(|store| vec![store]),
            None => self.server.stores(),
        };
        stores.map_err(|error| store_error(&error))
    }

    /// How the command's writes are made durable: collected for the connection, which
    /// completes them before answering.
    pub(crate) fn commit(&self) -> Commit<'_> {
        Commit::Into(&self.client.commits)
    }
}

type Handler = fn(&mut Ctx<'_>, &[Bytes]) -> Outcome;

/// A command's entry in the table (what `COMMAND` reports, too).
#[derive(Debug)]
pub(crate) struct CommandSpec {
    pub(crate) name: &'static str,
    /// Redis arity: exact argument count including the name, or at least `-arity`.
    pub(crate) arity: i32,
    pub(crate) flags: Flags,
    pub(crate) first_key: i32,
    pub(crate) last_key: i32,
    pub(crate) step: i32,
    pub(crate) handler: Handler,
    /// What `COMMAND INFO` and `COMMAND DOCS` say beyond the fields above.
    pub(crate) about: About,
    /// The command's first counter in `INFO commandstats`; its subcommands' follow.
    stats_slot: usize,
}

impl CommandSpec {
    /// A command with keys at `first_key..=last_key` every `step` (all 0: no keys at fixed
    /// places), described as a server command until [`CommandSpec::about`] says more.
    pub(crate) fn new(
        name: &'static str,
        arity: i32,
        flags: &'static [&'static str],
        (first_key, last_key, step): (i32, i32, i32),
        handler: Handler,
    ) -> CommandSpec {
        CommandSpec {
            name,
            arity,
            flags: Flags::new(flags),
            first_key,
            last_key,
            step,
            handler,
            about: About::new(describe::Group::Server, "1.0.0", ""),
            stats_slot: 0,
        }
    }

    /// The same command with its description.
    pub(crate) fn about(self, about: About) -> CommandSpec {
        CommandSpec { about, ..self }
    }

    fn has_flag(&self, flag: Flag) -> bool {
        self.flags.has(flag)
    }

    /// The key specs `COMMAND` reports and `COMMAND GETKEYS` follows: the described ones, else
    /// one derived from the legacy key positions.
    pub(crate) fn key_specs(&self) -> Vec<KeySpec> {
        if !self.about.key_specs.is_empty() || self.first_key <= 0 {
            return self.about.key_specs.to_vec();
        }
        let flags: &'static [&'static str] = if self.flags.names().contains(&"write") {
            &["RW", "update"]
        } else {
            &["RO", "access"]
        };
        let last_key = if self.last_key < 0 {
            self.last_key
        } else {
            self.last_key - self.first_key
        };
        vec![KeySpec {
            last_key,
            key_step: self.step.max(1),
            ..KeySpec::at(self.first_key, flags)
        }]
    }

    /// The counter slot of this call in `INFO commandstats`: the subcommand's for a container,
    /// `None` for a subcommand the container does not have.
    fn stats_slot(&self, args: &[Bytes]) -> Option<usize> {
        if self.about.subcommands.is_empty() {
            return Some(self.stats_slot);
        }
        let name = args.get(1)?;
        self.about
            .subcommands
            .iter()
            .position(|sub| sub.short_name().as_bytes().eq_ignore_ascii_case(name))
            .map(|at| self.stats_slot + 1 + at)
    }
}

/// The flags dispatch checks on every call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flag {
    Write = 1,
    Blocking = 1 << 1,
    Exclusive = 1 << 2,
    NoAuth = 1 << 3,
    NoMulti = 1 << 4,
    Transaction = 1 << 5,
}

impl Flag {
    const NAMED: [(Flag, &'static str); 6] = [
        (Flag::Write, "write"),
        (Flag::Blocking, "blocking"),
        (Flag::Exclusive, "exclusive"),
        (Flag::NoAuth, "no_auth"),
        (Flag::NoMulti, "no_multi"),
        (Flag::Transaction, "transaction"),
    ];
}

/// A command's flags: their names, as `COMMAND` reports them, and those dispatch checks as
/// bits, so that a check on every call is not a search among strings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flags {
    names: &'static [&'static str],
    bits: u8,
}

impl Flags {
    pub(crate) fn new(names: &'static [&'static str]) -> Self {
        let bits = Flag::NAMED
            .iter()
            .filter(|(_, name)| names.contains(name))
            .fold(0, |bits, &(flag, _)| bits | flag as u8);
        Flags { names, bits }
    }

    pub(crate) fn has(self, flag: Flag) -> bool {
        self.bits & flag as u8 != 0
    }

    pub(crate) fn names(self) -> &'static [&'static str] {
        self.names
    }
}

/// Every command the server knows.
pub(crate) fn table() -> &'static [CommandSpec] {
    static TABLE: std::sync::OnceLock<Vec<CommandSpec>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut commands = Vec::new();
        commands.extend(connection::commands());
        commands.extend(keyspace::commands());
        commands.extend(server::commands());
        commands.extend(persistence::commands());
        commands.extend(cluster::commands());
        commands.extend(wait::commands());
        commands.extend(stream_commands());
        // Sorted, so that every command's lookup is a binary search rather than a scan.
        commands.sort_unstable_by_key(|spec| spec.name);
        let mut slot = 0;
        for spec in &mut commands {
            spec.stats_slot = slot;
            slot += 1 + spec.about.subcommands.len();
        }
        debug_assert!(commands.iter().all(|spec| spec.name.len() <= MAX_NAME_LEN
            && !spec.name.bytes().any(|b| b.is_ascii_uppercase())));
        commands
    })
}

/// The stream and consumer-group commands, one file each (or one per close pair).
fn stream_commands() -> Vec<CommandSpec> {
    // Each names one key, at `first_key`; 0: the keys are at no fixed place (they follow
    // STREAMS).
    let spec = |name, arity, flags, first_key, handler| {
        let step = i32::from(first_key != 0);
        CommandSpec::new(name, arity, flags, (first_key, first_key, step), handler)
            .about(stream("5.0.0", ""))
    };
    const READ: &[&str] = &["RO", "access"];
    const UPDATE: &[&str] = &["RW", "update"];
    const DELETE: &[&str] = &["RW", "delete"];
    const NONDETERMINISTIC: &[&str] = &["nondeterministic_output"];
    vec![
        spec("xadd", -5, &["write", "denyoom", "fast"], 1, xadd::xadd).about(About {
            tips: NONDETERMINISTIC,
            key_specs: const {
                &[KeySpec::at(1, UPDATE)
                    .noted("UPDATE instead of INSERT because of the optional trimming feature")]
            },
            ..stream(
                "5.0.0",
                "Appends an entry to a stream, creating it if needed.",
            )
        }),
        spec("xlen", 2, &["readonly", "fast"], 1, xlen::xlen).about(About {
            key_specs: const { &[KeySpec::at(1, &["RO"])] },
            ..stream("5.0.0", "Counts the entries of a stream.")
        }),
        spec("xrange", -4, &["readonly"], 1, xrange::xrange).about(About {
            key_specs: const { &[KeySpec::at(1, READ)] },
            ..stream("5.0.0", "Returns the entries of a stream between two IDs.")
        }),
        spec("xrevrange", -4, &["readonly"], 1, xrange::xrevrange).about(About {
            key_specs: const { &[KeySpec::at(1, READ)] },
            ..stream(
                "5.0.0",
                "Returns the entries between two IDs, newest first.",
            )
        }),
        spec("xdel", -3, &["write", "fast"], 1, xdel::xdel).about(About {
            key_specs: const { &[KeySpec::at(1, DELETE)] },
            ..stream("5.0.0", "Deletes entries from a stream.")
        }),
        spec("xdelex", -5, &["write", "fast"], 1, xdelex::xdelex).about(About {
            key_specs: const { &[KeySpec::at(1, DELETE)] },
            ..stream(
                "8.2.0",
                "Deletes entries, keeping, removing or respecting group references.",
            )
        }),
        spec("xtrim", -4, &["write"], 1, xtrim::xtrim).about(About {
            tips: NONDETERMINISTIC,
            key_specs: const { &[KeySpec::at(1, DELETE)] },
            ..stream("5.0.0", "Removes a stream's oldest entries.")
        }),
        spec(
            "xsetid",
            -3,
            &["write", "denyoom", "fast"],
            1,
            xsetid::xsetid,
        )
        .about(About {
            key_specs: const { &[KeySpec::at(1, UPDATE)] },
            ..stream("5.0.0", "Sets a stream's last ID.")
        }),
        spec(
            "xread",
            -4,
            &["readonly", "blocking", "movablekeys"],
            0,
            xread::xread,
        )
        .about(About {
            key_specs: const { &[KeySpec::after_streams(1, READ)] },
            ..stream(
                "5.0.0",
                "Reads entries from streams, waiting for them if asked.",
            )
        }),
        spec("xcfgset", -2, &["write", "fast"], 1, xcfgset::xcfgset).about(About {
            key_specs: const { &[KeySpec::at(1, UPDATE)] },
            ..stream("8.6.0", "Sets a stream's retention, limits and expiry.")
        }),
        // Containers: `COMMAND` reports their subcommands' flags and keys, dispatch uses these.
        spec("xgroup", -2, &["write"], 2, xgroup::xgroup).about(containers::XGROUP),
        spec("xinfo", -2, &["readonly"], 2, xinfo::xinfo).about(containers::XINFO),
        spec(
            "xreadgroup",
            -7,
            &["write", "blocking", "movablekeys"],
            0,
            xreadgroup::xreadgroup,
        )
        .about(About {
            key_specs: const { &[KeySpec::after_streams(4, READ)] },
            ..stream("5.0.0", "Reads entries for a consumer of a group.")
        }),
        spec("xack", -4, &["write", "fast"], 1, xack::xack).about(About {
            key_specs: const { &[KeySpec::at(1, UPDATE)] },
            ..stream("5.0.0", "Acknowledges entries delivered to a group.")
        }),
        spec("xackdel", -6, &["write", "fast"], 1, xackdel::xackdel).about(About {
            key_specs: const { &[KeySpec::at(1, DELETE)] },
            ..stream("8.2.0", "Acknowledges entries of a group and deletes them.")
        }),
        spec("xpending", -3, &["readonly"], 1, xpending::xpending).about(About {
            tips: NONDETERMINISTIC,
            key_specs: const { &[KeySpec::at(1, READ)] },
            ..stream("5.0.0", "Shows the entries a group delivered and awaits.")
        }),
        spec("xclaim", -6, &["write", "fast"], 1, xclaim::xclaim).about(About {
            tips: NONDETERMINISTIC,
            key_specs: const { &[KeySpec::at(1, UPDATE)] },
            ..stream("5.0.0", "Moves pending entries to another consumer.")
        }),
        spec("xautoclaim", -6, &["write", "fast"], 1, xclaim::xautoclaim).about(About {
            tips: NONDETERMINISTIC,
            key_specs: const { &[KeySpec::at(1, DELETE)] },
            ..stream(
                "6.2.0",
                "Moves entries pending too long to another consumer.",
            )
        }),
        spec("xnack", -7, &["write", "fast"], 1, xnack::xnack).about(About {
            key_specs: const { &[KeySpec::at(1, UPDATE)] },
            ..stream("8.8.0", "Hands pending entries back for redelivery.")
        }),
    ]
}

/// A stream command's description; `since` is the Redis version that introduced it.
const fn stream(since: &'static str, summary: &'static str) -> About {
    About {
        categories: &["@stream"],
        ..About::new(describe::Group::Stream, since, summary)
    }
}

/// How many counter slots `INFO commandstats` needs: one per command and one per subcommand.
pub(crate) fn stats_slots() -> usize {
    table()
        .iter()
        .map(|spec| 1 + spec.about.subcommands.len())
        .sum()
}

/// Each command and subcommand with a name (`xgroup|create`), with its counter slot.
pub(crate) fn stats_names() -> impl Iterator<Item = (&'static str, usize)> {
    table().iter().flat_map(|spec| {
        std::iter::once((spec.name, spec.stats_slot)).chain(
            spec.about
                .subcommands
                .iter()
                .enumerate()
                .map(|(at, sub)| (sub.name, spec.stats_slot + 1 + at)),
        )
    })
}

/// Longer than every command's name: a longer one is unknown without a look.
const MAX_NAME_LEN: usize = 32;

thread_local! {
    /// The command this thread found last: a pipeline, and a replicated batch in each of the
    /// places that look at its commands, names the same command over and over.
    static LAST_FOUND: Cell<Option<&'static CommandSpec>> = const { Cell::new(None) };
}

fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    if let Some(spec) = LAST_FOUND.get()
        && spec.name.as_bytes().eq_ignore_ascii_case(name)
    {
        return Some(spec);
    }
    let found = search_table(name)?;
    LAST_FOUND.set(Some(found));
    Some(found)
}

fn search_table(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut lower = [0u8; MAX_NAME_LEN];
    let lower = lower.get_mut(..name.len())?;
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let commands = table();
    commands
        .binary_search_by(|spec| spec.name.as_bytes().cmp(lower))
        .ok()
        .map(|found| &commands[found])
}

/// The command called `name`: the client's previous one when the name matches, else found in
/// the table.
fn find_command(client: &mut Client, name: &[u8]) -> Option<&'static CommandSpec> {
    if let Some(spec) = client
        .previous
        .filter(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
    {
        return Some(spec);
    }
    let spec = lookup(name)?;
    client.previous = Some(spec);
    Some(spec)
}

/// Runs one command from a client, blocking (asynchronously) when it asks to, and delaying the
/// reply to a failed password check without holding a thread.
pub(crate) async fn execute(
    server: &Arc<Server>,
    client: &mut Client,
    args: &mut Vec<Bytes>,
) -> Outcome {
    let outcome = dispatch(server, client, args).await;
    if let Outcome::Reply(Value::Error(text)) | Outcome::Close(Value::Error(text)) = &outcome {
        server.stats.errors.count(text);
    }
    if let Some(delay) = client.reply_delay.take() {
        tokio::time::sleep(delay).await;
    }
    outcome
}

async fn dispatch(server: &Arc<Server>, client: &mut Client, args: &mut Vec<Bytes>) -> Outcome {
    let Some(name) = args.first() else {
        return Outcome::Reply(Value::Null);
    };
    let Some(spec) = find_command(client, name) else {
        if client.multi.is_some() {
            client.multi_failed = true;
        }
        return Value::error(unknown_command(args)).into();
    };
    if !permission::refresh_user(server, client) {
        return Outcome::Hangup;
    }
    let slot = spec.stats_slot(args);
    if let Some(refusal) = refusal(server, client, spec, args) {
        if let Some(slot) = slot {
            server.stats.commands.rejected(slot);
        }
        return refusal.into();
    }
    if let Some(queued) = &mut client.multi
        && !spec.has_flag(Flag::Transaction)
    {
        queued.push(std::mem::take(args));
        return Value::Simple("QUEUED".into()).into();
    }
    note_command(server, client, spec.name);
    let outcome = run_command(server, client, spec, args).await;
    debug_assert!(
        !matches!(outcome, Outcome::Block { .. }),
        "{} blocked without the blocking flag",
        spec.name
    );
    if let Some(slot) = slot {
        let failed = matches!(outcome, Outcome::Reply(Value::Error(_)));
        server.stats.commands.called(slot, failed);
    }
    outcome
}

/// Runs an accepted command: here, or, on a node of a cluster, as the cluster routes it.
async fn run_command(
    server: &Arc<Server>,
    client: &mut Client,
    spec: &'static CommandSpec,
    args: &mut Vec<Bytes>,
) -> Outcome {
    if spec.name == "wait" {
        return wait::wait(server, client, args).await;
    }
    #[cfg(feature = "cluster")]
    if let Some(replication) = server.replication() {
        if spec.name == "cluster" && membership::changes_membership(args) {
            return membership::run(replication, args).await;
        }
        return clustered::run(server, replication, client, spec, std::mem::take(args)).await;
    }
    if spec.has_flag(Flag::Blocking) {
        run_blocking(server, client, spec, std::mem::take(args)).await
    } else {
        run_once(server, client, spec, args, false, false)
    }
}

/// Why a known command is refused before it runs (Redis's `rejected_calls`): a wrong argument
/// count, a client not authenticated, a command MULTI cannot queue, a command or key the user
/// may not use. A refusal inside MULTI makes EXEC abort; a denied EXEC discards the
/// transaction at once.
fn refusal(
    server: &Server,
    client: &mut Client,
    spec: &CommandSpec,
    args: &[Bytes],
) -> Option<Value> {
    if arity_ok(spec, args.len()) && !client.authenticated && !spec.has_flag(Flag::NoAuth) {
        return Some(Value::error("NOAUTH Authentication required."));
    }
    let in_multi = client.multi.is_some();
    let refusal = if !arity_ok(spec, args.len()) {
        Value::error(wrong_arity(spec.name))
    } else if in_multi && spec.has_flag(Flag::NoMulti) {
        Value::error("ERR Command not allowed inside a transaction")
    } else if let Some(refusal) = in_multi.then(|| subcommand_refusal(spec, args)).flatten() {
        refusal
    } else if client.user.unrestricted() {
        return None;
    } else {
        let denied = permission::denial(server, client, spec, args)?;
        if spec.name == "exec" {
            return Some(connection::abort_exec(client, denied));
        }
        denied
    };
    if client.multi.is_some() {
        client.multi_failed = true;
    }
    Some(refusal)
}

/// Why MULTI refuses to queue a container's call, as Redis does: an unknown subcommand, or a
/// wrong argument count for the subcommand. (Outside MULTI the container answers the same.)
fn subcommand_refusal(spec: &CommandSpec, args: &[Bytes]) -> Option<Value> {
    let subcommands = spec.about.subcommands;
    let name = args.get(1).filter(|_| !subcommands.is_empty())?;
    let Some(sub) = subcommands
        .iter()
        .find(|sub| sub.short_name().as_bytes().eq_ignore_ascii_case(name))
    else {
        return Some(Value::error(format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            String::from_utf8_lossy(&name[..name.len().min(QUOTED)]),
            spec.name.to_ascii_uppercase()
        )));
    };
    let count = i64::try_from(args.len()).unwrap_or(i64::MAX);
    let arity = i64::from(sub.arity);
    let fits = if arity >= 0 {
        count == arity
    } else {
        count >= -arity
    };
    (!fits).then(|| Value::error(wrong_arity(sub.name)))
}

/// How stale the client table's record of a client's last command may get while the client
/// repeats the same command: publishing each one would take the table's lock per command.
const PUBLISH_AFTER: Duration = Duration::from_millis(100);

fn note_command(server: &Server, client: &mut Client, name: &'static str) {
    server
        .stats
        .commands_processed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = Instant::now();
    let fresh = client.published.is_some_and(|(published, db, at)| {
        std::ptr::eq(published, name) && db == client.db && now.duration_since(at) < PUBLISH_AFTER
    });
    if fresh {
        return;
    }
    if let Some(entry) = server.clients.lock().get_mut(&client.id) {
        entry.last_command = now;
        entry.last_command_name = name;
        entry.db = client.db;
    }
    client.published = Some((name, client.db, now));
}

/// How often a blocked command looks again although nothing was written: a group read must
/// notice entries whose ack wait passed, which no write announces.
const RECHECK: Duration = Duration::from_millis(250);

async fn run_blocking(
    server: &Arc<Server>,
    client: &mut Client,
    spec: &'static CommandSpec,
    args: Vec<Bytes>,
) -> Outcome {
    retry_while_blocked(server, client, args, RunHere { server, spec }).await
}

/// How a blocking command is tried again: run here, or proposed to a cluster's log.
pub(crate) trait Attempt {
    /// Runs the command (`args`) once more.
    fn attempt<'a>(
        &'a mut self,
        client: &'a mut Client,
        args: &'a [Bytes],
        look: Look,
    ) -> impl std::future::Future<Output = Outcome> + Send + 'a;
}

/// Runs the command on this node, the last look without blocking.
struct RunHere<'s> {
    server: &'s Arc<Server>,
    spec: &'static CommandSpec,
}

impl Attempt for RunHere<'_> {
    fn attempt<'a>(
        &'a mut self,
        client: &'a mut Client,
        args: &'a [Bytes],
        look: Look,
    ) -> impl std::future::Future<Output = Outcome> + Send + 'a {
        std::future::ready(run_once(
            self.server,
            client,
            self.spec,
            args,
            look.retry,
            look.last,
        ))
    }
}

/// One attempt at a blocking command.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Look {
    /// The command runs again after blocking.
    pub(crate) retry: bool,
    /// The deadline passed: this look must not block.
    pub(crate) last: bool,
}

/// Runs `attempt` until it answers something other than [`Outcome::Block`]: after each block,
/// waits for a write to the command's keys (or [`RECHECK`]) and tries again, until the first
/// attempt's deadline, when one last look decides between its answer and the timeout reply.
pub(crate) async fn retry_while_blocked(
    server: &Arc<Server>,
    client: &mut Client,
    mut args: Vec<Bytes>,
    mut attempt: impl Attempt,
) -> Outcome {
    let mut retry = false;
    // The first call's deadline stands: retries after unrelated writes must not extend it.
    let mut first_deadline: Option<Option<Instant>> = None;
    // Counted as blocked from the first wait until the command answers.
    let mut blocked: Option<BlockedClient<'_>> = None;
    // Wakes this command when one of its keys is written.
    let mut watch: Option<KeyWatch<'_>> = None;
    loop {
        let look = Look { retry, last: false };
        match attempt.attempt(client, &args, look).await {
            Outcome::Block {
                args: again,
                deadline,
                timeout_reply,
                keys,
            } => {
                args = again;
                retry = true;
                let deadline = *first_deadline.get_or_insert(deadline);
                blocked.get_or_insert_with(|| BlockedClient::new(server));
                let Some(watch) = &watch else {
                    // Watched from now on: one more look finds what was written between the
                    // first look and now.
                    let names = keys.iter().map(|key| stream_name(client.db, key)).collect();
                    watch = Some(server.blocked_readers.watch(names));
                    continue;
                };
                if !wait_for_write(watch, deadline).await {
                    // One last look: data may have arrived exactly at the deadline.
                    let last = Look {
                        retry: true,
                        last: true,
                    };
                    return match attempt.attempt(client, &args, last).await {
                        Outcome::Block { .. } => timeout_reply.into(),
                        other => other,
                    };
                }
            }
            other => return other,
        }
    }
}

/// The outcome of the blocking command `args` if this node's state shows it would deliver
/// nothing now (see `xreadgroup::nothing_to_deliver`); `last` is a blocked command's last look.
#[cfg(feature = "cluster")]
pub(crate) fn nothing_to_deliver(
    server: &Arc<Server>,
    client: &mut Client,
    args: &[Bytes],
    look: Look,
) -> Option<Outcome> {
    let is_group_read = args
        .first()
        .is_some_and(|name| name.eq_ignore_ascii_case(b"xreadgroup"));
    if !is_group_read {
        return None;
    }
    let _shared = server.exec_lock.read();
    let ctx = Ctx {
        server,
        client,
        retry: look.retry,
        in_exec: look.last,
    };
    xreadgroup::nothing_to_deliver(&ctx, args)
}

/// Runs a committed command (`args`, its name first) on this node, as the proposing client's
/// connection would have run it; a command that would block answers [`Outcome::Block`] for the
/// proposer to wait with.
#[cfg(feature = "cluster")]
pub(crate) fn run_replicated(
    server: &Arc<Server>,
    client: &mut Client,
    args: &[Bytes],
    retry: bool,
) -> Outcome {
    match args.first().and_then(|name| lookup(name)) {
        Some(spec) => run_once(server, client, spec, args, retry, false),
        None => Value::error(unknown_command(args)).into(),
    }
}

/// Runs a committed transaction: `EXEC` of the `queued` commands.
#[cfg(feature = "cluster")]
pub(crate) fn exec_replicated(
    server: &Arc<Server>,
    client: &mut Client,
    queued: Vec<Vec<Bytes>>,
) -> Outcome {
    client.multi = Some(queued);
    client.multi_failed = false;
    match lookup(b"exec") {
        Some(spec) => run_once(
            server,
            client,
            spec,
            &[Bytes::from_static(b"EXEC")],
            false,
            true,
        ),
        None => Value::error("ERR EXEC is missing from the command table").into(),
    }
}

/// Counts a blocked client for `INFO` while it lives, also when the wait is abandoned (the
/// client disconnected or the server is stopping).
struct BlockedClient<'a>(&'a Server);

impl<'a> BlockedClient<'a> {
    fn new(server: &'a Server) -> Self {
        server
            .blocked_clients
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        BlockedClient(server)
    }
}

impl Drop for BlockedClient<'_> {
    fn drop(&mut self) {
        self.0
            .blocked_clients
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Runs a command once, under the shared exec lock. `in_exec` makes blocking commands answer
/// at once.
pub(crate) fn run_once(
    server: &Arc<Server>,
    client: &mut Client,
    spec: &'static CommandSpec,
    args: &[Bytes],
    retry: bool,
    in_exec: bool,
) -> Outcome {
    let started = Instant::now();
    let outcome = {
        let _shared = (!spec.has_flag(Flag::Exclusive)).then(|| server.exec_lock.read());
        let mut ctx = Ctx {
            server,
            client,
            retry,
            in_exec,
        };
        (spec.handler)(&mut ctx, args)
    };
    let took = started.elapsed();
    if let Some(slot) = spec.stats_slot(args) {
        server.stats.commands.ran_for(slot, took);
    }
    observe_run(server, client, spec, args, took);
    // A command that is about to block delivered nothing: announcing a write would wake its own
    // wait at once, and every other blocked reader, over and over.
    if !matches!(outcome, Outcome::Block { .. }) {
        announce_write(server, client.db, spec, args);
    }
    outcome
}

/// Shows a run to the slow log and the latency monitor, which keep it if it was slow enough.
fn observe_run(
    server: &Server,
    client: &Client,
    spec: &CommandSpec,
    args: &[Bytes],
    took: Duration,
) {
    if !server.diagnostics.interested(took) {
        return;
    }
    let run = Run {
        name: spec.name,
        args,
        fast: spec.flags.names().contains(&"fast"),
        skip_slowlog: spec.flags.names().contains(&"skip_slowlog"),
        took,
    };
    let addr = server
        .clients
        .lock()
        .get(&client.id)
        .map(|entry| entry.addr);
    let caller = Caller {
        addr,
        name: client.name.clone(),
    };
    server
        .diagnostics
        .record(&run, super::state::unix_ms(), caller);
}

/// Wakes the readers blocked on the keys a write command names: all blocked readers when its
/// keys are not at fixed places (FLUSHDB, FLUSHALL, and XREADGROUP, whose dead letters go to
/// streams it does not name).
pub(crate) fn announce_write(server: &Server, db: u8, spec: &CommandSpec, args: &[Bytes]) {
    if !spec.has_flag(Flag::Write) {
        return;
    }
    match written_keys(spec, args) {
        Some(keys) => server
            .blocked_readers
            .wake(keys.map(|key| stream_name(db, key))),
        None => server.blocked_readers.wake_all(),
    }
}

/// The keys at the fixed places of the spec (`first_key`, `last_key`, `step`, as `COMMAND`
/// reports them); `None` when the command has none there.
fn written_keys<'a>(
    spec: &CommandSpec,
    args: &'a [Bytes],
) -> Option<impl Iterator<Item = &'a Bytes>> {
    let first = usize::try_from(spec.first_key)
        .ok()
        .filter(|&first| first > 0)?;
    let step = usize::try_from(spec.step).ok().filter(|&step| step > 0)?;
    let last = if spec.last_key < 0 {
        args.len()
            .checked_sub(usize::try_from(spec.last_key.unsigned_abs()).ok()?)?
    } else {
        usize::try_from(spec.last_key).ok()?
    };
    Some(
        args.iter()
            .enumerate()
            .skip(first)
            .take_while(move |(at, _)| *at <= last)
            .step_by(step)
            .map(|(_, key)| key),
    )
}

/// Waits for a write to a watched key, for [`RECHECK`], or until the deadline, whichever comes
/// first. Returns whether the deadline is still ahead.
async fn wait_for_write(watch: &KeyWatch<'_>, deadline: Option<Instant>) -> bool {
    let recheck = Instant::now() + RECHECK;
    let until = deadline.map_or(recheck, |deadline| deadline.min(recheck));
    let until = tokio::time::Instant::from_std(until);
    let _ = tokio::time::timeout_at(until, watch.written()).await;
    deadline.is_none_or(|deadline| Instant::now() < deadline)
}

/// Runs `work`, which may take long, without keeping the other tasks of this worker thread
/// waiting: the runtime hands them to another thread meanwhile. Every thread busy with such work
/// would otherwise leave no thread to answer anyone else, not even a `PING`.
pub(crate) fn off_worker<R>(work: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
        runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
    });
    if multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

fn arity_ok(spec: &CommandSpec, count: usize) -> bool {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let arity = i64::from(spec.arity);
    if arity >= 0 {
        count == arity
    } else {
        count >= -arity
    }
}

/// How much of an unknown command's name and arguments its error quotes, as Redis does.
const QUOTED: usize = 128;

/// Redis's reply to an unknown command: the name and the first arguments, quoted until the
/// quotes reach 128 bytes, each cut at a NUL byte (Redis formats them as C strings).
pub(crate) fn unknown_command(args: &[Bytes]) -> String {
    let c_string = |arg: &'_ [u8], limit: usize| {
        let end = arg.iter().position(|&b| b == 0).unwrap_or(arg.len());
        arg[..end.min(limit)].to_vec()
    };
    let mut quoted = Vec::new();
    for arg in &args[1..] {
        if quoted.len() >= QUOTED {
            break;
        }
        quoted.push(b'\'');
        quoted.extend(c_string(arg, QUOTED + 1 - quoted.len()));
        quoted.extend_from_slice(b"' ");
    }
    format!(
        "ERR unknown command '{}', with args beginning with: {}",
        String::from_utf8_lossy(&c_string(&args[0], QUOTED)),
        String::from_utf8_lossy(&quoted)
    )
}

/// Redis's reply to a wrong argument count.
pub(crate) fn wrong_arity(name: &str) -> String {
    format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    )
}

/// The reply for a store error.
pub(crate) fn store_error(error: &Error) -> Value {
    local_failure::note(error);
    match error.kind() {
        ErrorKind::Closed => Value::error("LOADING weir is reloading the dataset from disk"),
        _ => Value::error(format!("ERR {error}")),
    }
}

/// An entry's fields, encoded from its record when the reply is written.
pub(crate) fn entry_fields(entry: &Entry) -> Value {
    Value::Fields(EntryFields(entry.clone()))
}

/// `[id, [field, value, …]]`.
pub(crate) fn entry_value(entry: &Entry) -> Value {
    Value::Array(vec![id_value(entry.id), entry_fields(entry)])
}

/// An ID as a bulk string.
pub(crate) fn id_value(id: StreamId) -> Value {
    Value::Id(id)
}

/// Turns a handler body that may fail with an error reply into an outcome.
pub(crate) fn reply(result: Result<Value, Value>) -> Outcome {
    match result {
        Ok(value) | Err(value) => Outcome::Reply(value),
    }
}
