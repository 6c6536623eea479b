//! What `COMMAND` says about a command: Redis 7.0's descriptions (ACL categories, tips, key
//! specs, documentation) and the keys a call names, found from the key specs as Redis finds
//! them for `COMMAND GETKEYS` and cluster routing.

use bytes::Bytes;

use super::Flags;

/// Where a key spec starts looking for keys.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Begin {
    /// At this argument (the command name is argument 0).
    Index(i32),
    /// After the first argument equal to `keyword` (ignoring case), searching from argument
    /// `start_from` onwards (backwards from the end when negative).
    Keyword {
        keyword: &'static str,
        start_from: i32,
    },
}

/// A Redis key spec: where the keys of one kind are, and what the command does with them.
/// Only the `range` way of finding keys is used: every command here has it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeySpec {
    /// Redis's key-spec flags (`RW`, `RO`, `OW`, `RM`, then `access`, `update`, `insert`,
    /// `delete`).
    pub(crate) flags: &'static [&'static str],
    pub(crate) begin: Begin,
    /// The last key relative to the first (negative: counted from the end of the arguments).
    pub(crate) last_key: i32,
    pub(crate) key_step: i32,
    /// With `last_key` -1, the keys are the first `1/limit` of what follows (XREAD's keys
    /// are followed by as many IDs): 0 or 1 take everything.
    pub(crate) limit: i32,
    pub(crate) notes: Option<&'static str>,
}

impl KeySpec {
    /// One key at argument `index`.
    pub(crate) const fn at(index: i32, flags: &'static [&'static str]) -> KeySpec {
        KeySpec {
            flags,
            begin: Begin::Index(index),
            last_key: 0,
            key_step: 1,
            limit: 0,
            notes: None,
        }
    }

    /// Every argument from `index` to the end.
    pub(crate) const fn rest(index: i32, flags: &'static [&'static str]) -> KeySpec {
        KeySpec {
            last_key: -1,
            ..KeySpec::at(index, flags)
        }
    }

    /// The first half of what follows the keyword `STREAMS` (the other half are IDs).
    pub(crate) const fn after_streams(start_from: i32, flags: &'static [&'static str]) -> KeySpec {
        KeySpec {
            flags,
            begin: Begin::Keyword {
                keyword: "STREAMS",
                start_from,
            },
            last_key: -1,
            key_step: 1,
            limit: 2,
            notes: None,
        }
    }

    /// One key: the argument after the first `keyword` from argument `start_from` on (an
    /// option naming a key, as `DEADLETTER key`); none when the keyword is absent.
    pub(crate) const fn after_keyword(
        keyword: &'static str,
        start_from: i32,
        flags: &'static [&'static str],
    ) -> KeySpec {
        KeySpec {
            begin: Begin::Keyword {
                keyword,
                start_from,
            },
            ..KeySpec::at(0, flags)
        }
    }

    /// The same spec with Redis's note.
    pub(crate) const fn noted(self, notes: &'static str) -> KeySpec {
        KeySpec {
            notes: Some(notes),
            ..self
        }
    }

    /// The argument indexes of this spec's keys in `args` (the command name at 0), or `None`
    /// when the arguments do not fit the spec.
    fn key_indexes(&self, args: &[Bytes]) -> Option<std::ops::RangeInclusive<usize>> {
        let count = i64::try_from(args.len()).ok()?;
        let first = match self.begin {
            Begin::Index(index) => i64::from(index),
            Begin::Keyword {
                keyword,
                start_from,
            } => {
                let found = |at: &i64| {
                    usize::try_from(*at)
                        .ok()
                        .and_then(|at| args.get(at))
                        .is_some_and(|arg| arg.eq_ignore_ascii_case(keyword.as_bytes()))
                };
                let at = if start_from >= 0 {
                    (i64::from(start_from)..count).find(found)
                } else {
                    (1..=count + i64::from(start_from)).rev().find(found)
                }?;
                at + 1
            }
        };
        let last = if self.last_key >= 0 {
            first + i64::from(self.last_key)
        } else if self.limit <= 1 {
            count + i64::from(self.last_key)
        } else {
            first + (count - first) / i64::from(self.limit) + i64::from(self.last_key)
        };
        if first < 1 || last >= count || last < first {
            return None;
        }
        Some(usize::try_from(first).ok()?..=usize::try_from(last).ok()?)
    }
}

/// The keys `args` names under `specs`, each with the flags of its spec, in Redis's order
/// (spec by spec). `None` when no spec finds a key: Redis's "Invalid arguments".
pub(crate) fn keys_of<'a>(
    specs: &[KeySpec],
    args: &'a [Bytes],
) -> Option<Vec<(&'a Bytes, &'static [&'static str])>> {
    let mut keys = Vec::new();
    for spec in specs {
        let Some(indexes) = spec.key_indexes(args) else {
            continue;
        };
        let step = usize::try_from(spec.key_step).unwrap_or(1).max(1);
        keys.extend(indexes.step_by(step).map(|at| (&args[at], spec.flags)));
    }
    (!keys.is_empty()).then_some(keys)
}

/// The documentation group a command belongs to (`COMMAND DOCS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    Stream,
    Generic,
    Connection,
    Transactions,
    Server,
    Scripting,
    Cluster,
}

impl Group {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Group::Stream => "stream",
            Group::Generic => "generic",
            Group::Connection => "connection",
            Group::Transactions => "transactions",
            Group::Server => "server",
            Group::Scripting => "scripting",
            Group::Cluster => "cluster",
        }
    }
}

/// Everything `COMMAND INFO` and `COMMAND DOCS` say beyond arity, flags and the legacy key
/// positions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct About {
    /// The flags `COMMAND` shows when they differ from those dispatch uses (a container shows
    /// none of its own).
    pub(crate) flags: Option<&'static [&'static str]>,
    /// ACL categories beyond those the flags imply (`@stream`, `@keyspace`, `@dangerous`, …).
    pub(crate) categories: &'static [&'static str],
    /// Redis's command tips (`nondeterministic_output`, request and response policies).
    pub(crate) tips: &'static [&'static str],
    /// Empty: one spec derived from the legacy key positions, if the command has keys.
    pub(crate) key_specs: &'static [KeySpec],
    pub(crate) subcommands: &'static [Subcommand],
    pub(crate) group: Group,
    /// The Redis version that introduced the command.
    pub(crate) since: &'static str,
    pub(crate) summary: &'static str,
}

impl About {
    pub(crate) const fn new(group: Group, since: &'static str, summary: &'static str) -> About {
        About {
            flags: None,
            categories: &[],
            tips: &[],
            key_specs: &[],
            subcommands: &[],
            group,
            since,
            summary,
        }
    }
}

/// A subcommand of a container command (`xgroup|create`), as `COMMAND` describes it; the
/// container's handler runs it.
#[derive(Debug)]
pub(crate) struct Subcommand {
    /// `container|sub`, as Redis names it.
    pub(crate) name: &'static str,
    pub(crate) arity: i32,
    pub(crate) flags: &'static [&'static str],
    pub(crate) first_key: i32,
    pub(crate) about: About,
}

impl Subcommand {
    /// The part after `|`.
    pub(crate) fn short_name(&self) -> &'static str {
        self.name
            .split_once('|')
            .map_or(self.name, |(_, short)| short)
    }
}

/// The flags dispatch uses internally, which Redis does not have and `COMMAND` does not show.
const INTERNAL_FLAGS: [&str; 2] = ["transaction", "exclusive"];

/// The flags `COMMAND INFO` shows.
pub(crate) fn reported_flags(flags: Flags) -> impl Iterator<Item = &'static str> {
    flags
        .names()
        .iter()
        .copied()
        .filter(|name| !INTERNAL_FLAGS.contains(name))
}

/// Redis's ACL categories in the order it lists them.
const CATEGORY_ORDER: [&str; 21] = [
    "@keyspace",
    "@read",
    "@write",
    "@set",
    "@sortedset",
    "@list",
    "@hash",
    "@string",
    "@bitmap",
    "@hyperloglog",
    "@geo",
    "@stream",
    "@pubsub",
    "@admin",
    "@fast",
    "@slow",
    "@blocking",
    "@dangerous",
    "@connection",
    "@transaction",
    "@scripting",
];

/// A command's ACL categories: those its flags imply, as Redis derives them, and its own.
pub(crate) fn categories(flags: &[&str], own: &[&str]) -> Vec<&'static str> {
    let has = |flag| flags.contains(&flag);
    let implied = [
        (has("write"), "@write"),
        (has("readonly"), "@read"),
        (has("admin"), "@admin"),
        (has("admin"), "@dangerous"),
        (has("fast"), "@fast"),
        (!has("fast"), "@slow"),
        (has("blocking"), "@blocking"),
    ];
    CATEGORY_ORDER
        .into_iter()
        .filter(|category| {
            own.contains(category)
                || implied
                    .iter()
                    .any(|&(applies, implied)| applies && implied == *category)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &str) -> Vec<Bytes> {
        words
            .split(' ')
            .map(|word| Bytes::copy_from_slice(word.as_bytes()))
            .collect()
    }

    fn names(specs: &[KeySpec], words: &str) -> Option<Vec<String>> {
        let args = args(words);
        keys_of(specs, &args).map(|keys| {
            keys.iter()
                .map(|(key, _)| String::from_utf8_lossy(key).into_owned())
                .collect()
        })
    }

    #[test]
    fn streams_keys_are_the_first_half_after_the_keyword() {
        let xread = [KeySpec::after_streams(1, &["RO", "access"])];
        assert_eq!(
            names(&xread, "XREAD COUNT 2 STREAMS a b 0 0"),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(names(&xread, "XREAD STREAMS a b c"), Some(vec!["a".into()]));
        assert_eq!(names(&xread, "XREAD COUNT STREAMS STREAMS"), None);
        assert_eq!(names(&xread, "XREAD COUNT 1 x y"), None);
        let xreadgroup = [KeySpec::after_streams(4, &["RW", "access"])];
        assert_eq!(
            names(&xreadgroup, "XREADGROUP GROUP g c streams a 0"),
            Some(vec!["a".into()])
        );
    }

    #[test]
    fn index_specs_take_one_key_or_the_rest() {
        assert_eq!(
            names(&[KeySpec::rest(1, &["RM"])], "DEL a b"),
            Some(vec!["a".into(), "b".into()])
        );
        let rename = [
            KeySpec::at(1, &["RW", "access", "delete"]),
            KeySpec::at(2, &["OW", "update"]),
        ];
        assert_eq!(
            names(&rename, "RENAME a b"),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(names(&[KeySpec::at(2, &["RO"])], "XINFO HELP"), None);
    }

    #[test]
    fn categories_follow_the_flags_in_redis_order() {
        assert_eq!(
            categories(&["write", "denyoom", "fast"], &["@stream"]),
            ["@write", "@stream", "@fast"]
        );
        assert_eq!(
            categories(&["readonly", "blocking", "movablekeys"], &["@stream"]),
            ["@read", "@stream", "@slow", "@blocking"]
        );
        assert_eq!(categories(&[], &[]), ["@slow"]);
        assert_eq!(
            categories(&["admin", "noscript"], &[]),
            ["@admin", "@slow", "@dangerous"]
        );
    }
}
