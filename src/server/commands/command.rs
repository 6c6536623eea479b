//! COMMAND and its subcommands (COUNT, LIST, INFO, DOCS, GETKEYS, GETKEYSANDFLAGS, HELP), in
//! Redis 7.0's reply shapes, from the command table.

use bytes::Bytes;

use super::describe::{About, Begin, KeySpec, Subcommand, categories, keys_of, reported_flags};
use super::parse::is;
use super::subcommands::{self, help};
use super::{CommandSpec, Ctx, Outcome, lookup, table};
use crate::server::keys::glob_match;
use crate::server::resp::Value;

pub(super) fn command(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    if args.len() == 1 {
        return Value::Array(table().iter().map(|spec| info_of(&spec.into())).collect()).into();
    }
    const TABLE: &[subcommands::Subcommand] = &[
        ("count", 2, count),
        ("docs", -2, docs),
        ("getkeys", -4, getkeys),
        ("getkeysandflags", -4, getkeysandflags),
        ("help", 2, command_help),
        ("info", -2, info),
        ("list", -2, list),
    ];
    subcommands::dispatch(ctx, args, "command", TABLE)
}

/// A command or subcommand, as `COMMAND` describes it.
struct Described {
    name: &'static str,
    arity: i32,
    flags: Vec<&'static str>,
    /// The legacy key positions: first, last, step.
    keys: (i32, i32, i32),
    about: &'static About,
    key_specs: Vec<KeySpec>,
}

impl From<&'static CommandSpec> for Described {
    fn from(spec: &'static CommandSpec) -> Self {
        let container = !spec.about.subcommands.is_empty();
        Described {
            name: spec.name,
            arity: spec.arity,
            flags: spec
                .about
                .flags
                .map_or_else(|| reported_flags(spec.flags).collect(), <[_]>::to_vec),
            keys: if container {
                (0, 0, 0)
            } else {
                (spec.first_key, spec.last_key, spec.step)
            },
            about: &spec.about,
            key_specs: spec.key_specs(),
        }
    }
}

impl From<&'static Subcommand> for Described {
    fn from(sub: &'static Subcommand) -> Self {
        Described {
            name: sub.name,
            arity: sub.arity,
            flags: sub.flags.to_vec(),
            keys: (sub.first_key, sub.first_key, i32::from(sub.first_key != 0)),
            about: &sub.about,
            key_specs: sub.about.key_specs.to_vec(),
        }
    }
}

/// A command's ACL categories, as `COMMAND INFO` reports them.
pub(super) fn acl_categories(spec: &'static CommandSpec) -> Vec<&'static str> {
    let described = Described::from(spec);
    categories(&described.flags, described.about.categories)
}

/// The command or `container|sub` subcommand called `name`.
fn find(name: &[u8]) -> Option<Described> {
    match name.iter().position(|&b| b == b'|') {
        None => lookup(name).map(Described::from),
        Some(at) => find_sub(lookup(&name[..at])?, &name[at + 1..]).map(Described::from),
    }
}

fn find_sub(spec: &'static CommandSpec, name: &[u8]) -> Option<&'static Subcommand> {
    spec.about
        .subcommands
        .iter()
        .find(|sub| sub.short_name().as_bytes().eq_ignore_ascii_case(name))
}

/// Every command and subcommand, each container followed by its subcommands.
fn everything() -> impl Iterator<Item = Described> {
    table().iter().flat_map(|spec| {
        std::iter::once(Described::from(spec))
            .chain(spec.about.subcommands.iter().map(Described::from))
    })
}

fn simple_set(items: impl IntoIterator<Item = &'static str>) -> Value {
    Value::Set(items.into_iter().map(Value::simple).collect())
}

fn int(value: i32) -> Value {
    Value::Integer(i64::from(value))
}

/// One command's `COMMAND INFO` reply.
fn info_of(command: &Described) -> Value {
    let (first, last, step) = command.keys;
    Value::Array(vec![
        Value::bulk(command.name),
        int(command.arity),
        simple_set(command.flags.iter().copied()),
        int(first),
        int(last),
        int(step),
        simple_set(categories(&command.flags, command.about.categories)),
        Value::Set(
            command
                .about
                .tips
                .iter()
                .map(|tip| Value::bulk(*tip))
                .collect(),
        ),
        Value::Set(command.key_specs.iter().map(key_spec).collect()),
        Value::Set(
            command
                .about
                .subcommands
                .iter()
                .map(|sub| info_of(&sub.into()))
                .collect(),
        ),
    ])
}

fn key_spec(spec: &KeySpec) -> Value {
    let pair = |name: &'static str, value| (Value::bulk(name), value);
    let begin = match spec.begin {
        Begin::Index(index) => vec![
            pair("type", Value::bulk("index")),
            pair("spec", Value::Map(vec![pair("index", int(index))])),
        ],
        Begin::Keyword {
            keyword,
            start_from,
        } => vec![
            pair("type", Value::bulk("keyword")),
            pair(
                "spec",
                Value::Map(vec![
                    pair("keyword", Value::bulk(keyword)),
                    pair("startfrom", int(start_from)),
                ]),
            ),
        ],
    };
    let find = vec![
        pair("type", Value::bulk("range")),
        pair(
            "spec",
            Value::Map(vec![
                pair("lastkey", int(spec.last_key)),
                pair("keystep", int(spec.key_step)),
                pair("limit", int(spec.limit)),
            ]),
        ),
    ];
    let mut fields = Vec::with_capacity(4);
    if let Some(notes) = spec.notes {
        fields.push(pair("notes", Value::bulk(notes)));
    }
    fields.push(pair("flags", simple_set(spec.flags.iter().copied())));
    fields.push(pair("begin_search", Value::Map(begin)));
    fields.push(pair("find_keys", Value::Map(find)));
    Value::Map(fields)
}

fn count(_: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(Value::Integer(
        i64::try_from(table().len()).unwrap_or(i64::MAX),
    ))
}

/// `COMMAND INFO [name …]`: every command without names; nil for an unknown name.
fn info(_: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    if args.len() == 2 {
        return Ok(Value::Array(
            table().iter().map(|spec| info_of(&spec.into())).collect(),
        ));
    }
    Ok(Value::Array(
        args[2..]
            .iter()
            .map(|name| find(name).map_or(Value::Null, |found| info_of(&found)))
            .collect(),
    ))
}

/// `COMMAND DOCS [name …]`: unknown names are left out.
fn docs(_: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let wanted: Vec<Described> = if args.len() == 2 {
        table().iter().map(Described::from).collect()
    } else {
        args[2..].iter().filter_map(|name| find(name)).collect()
    };
    Ok(Value::Map(
        wanted
            .iter()
            .map(|command| (Value::bulk(command.name), doc_of(command.about)))
            .collect(),
    ))
}

fn doc_of(about: &About) -> Value {
    let mut fields = Vec::with_capacity(4);
    if !about.summary.is_empty() {
        fields.push((Value::bulk("summary"), Value::bulk(about.summary)));
    }
    fields.push((Value::bulk("since"), Value::bulk(about.since)));
    fields.push((Value::bulk("group"), Value::bulk(about.group.name())));
    if !about.subcommands.is_empty() {
        let subs = about
            .subcommands
            .iter()
            .map(|sub| (Value::bulk(sub.name), doc_of(&sub.about)))
            .collect();
        fields.push((Value::bulk("subcommands"), Value::Map(subs)));
    }
    Value::Map(fields)
}

/// `COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]`.
fn list(_: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let syntax = || Value::error("ERR syntax error");
    let keep: Box<dyn Fn(&Described) -> bool> = match &args[2..] {
        [] => Box::new(|_| true),
        [filterby, kind, value] if is(filterby, "FILTERBY") => {
            let value = value.to_ascii_lowercase();
            if is(kind, "MODULE") {
                Box::new(|_| false)
            } else if is(kind, "ACLCAT") {
                let wanted = value.strip_prefix(b"@").unwrap_or(&value).to_vec();
                Box::new(move |command| {
                    categories(&command.flags, command.about.categories)
                        .iter()
                        .any(|category| category.as_bytes()[1..] == wanted[..])
                })
            } else if is(kind, "PATTERN") {
                Box::new(move |command| glob_match(&value, command.name.as_bytes()))
            } else {
                return Err(syntax());
            }
        }
        _ => return Err(syntax()),
    };
    Ok(Value::Array(
        everything()
            .filter(|command| keep(command))
            .map(|command| Value::bulk(command.name))
            .collect(),
    ))
}

fn getkeys(_: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let keys = keys_of_call(&args[2..])?;
    Ok(Value::Array(
        keys.into_iter().map(|(key, _)| Value::Bulk(key)).collect(),
    ))
}

fn getkeysandflags(_: &mut Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let keys = keys_of_call(&args[2..])?;
    Ok(Value::Array(
        keys.into_iter()
            .map(|(key, flags)| {
                Value::Array(vec![Value::Bulk(key), simple_set(flags.iter().copied())])
            })
            .collect(),
    ))
}

/// The keys of the call `call` (a command name and its arguments); none for a command without
/// keys or a call whose keys cannot be found (its handler reports the error).
pub(crate) fn call_keys(call: &[Bytes]) -> Vec<Bytes> {
    keys_of_call(call)
        .map(|keys| keys.into_iter().map(|(key, _)| key).collect())
        .unwrap_or_default()
}

/// The keys of the call `call` (a command name and its arguments), with Redis's errors.
fn keys_of_call(call: &[Bytes]) -> Result<Vec<(Bytes, &'static [&'static str])>, Value> {
    let invalid = || Value::error("ERR Invalid command specified");
    let spec = lookup(&call[0]).ok_or_else(invalid)?;
    let command = if spec.about.subcommands.is_empty() {
        Described::from(spec)
    } else {
        let name = call.get(1).ok_or_else(invalid)?;
        Described::from(find_sub(spec, name).ok_or_else(invalid)?)
    };
    if command.key_specs.is_empty() {
        return Err(Value::error("ERR The command has no key arguments"));
    }
    let count = i64::try_from(call.len()).unwrap_or(i64::MAX);
    let arity = i64::from(command.arity);
    if (arity > 0 && arity != count) || count < -arity {
        return Err(Value::error(
            "ERR Invalid number of arguments specified for command",
        ));
    }
    let keys = keys_of(&command.key_specs, call)
        .ok_or_else(|| Value::error("ERR Invalid arguments specified for command"))?;
    Ok(keys
        .into_iter()
        .map(|(key, flags)| (key.clone(), flags))
        .collect())
}

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Describe every command.",
    "COUNT",
    "    Count the commands.",
    "DOCS [<command-name> ...]",
    "    Document the given commands, or all of them.",
    "GETKEYS <full-command>",
    "    Find the keys of a full command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Find the keys of a full command, with their flags.",
    "INFO [<command-name> ...]",
    "    Describe the given commands, or all of them.",
    "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
    "    List the commands' names, or those that pass the filter.",
    "HELP",
    "    Print this help.",
];

fn command_help(_: &mut Ctx<'_>, _: &[Bytes]) -> Result<Value, Value> {
    Ok(help(COMMAND_HELP))
}
