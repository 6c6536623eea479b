//! The commands as ACL rules name them, from the command table: each command and subcommand
//! with its counter slot (the bit a user's permissions keep for it) and its ACL categories.

use std::sync::OnceLock;

use crate::server::commands::{AclCommand, acl_commands, stats_slots};

/// One bit per command and subcommand slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    pub(crate) fn none() -> Bits {
        Bits(vec![0; stats_slots().div_ceil(64)])
    }

    pub(crate) fn all() -> Bits {
        let mut bits = Bits::none();
        for slot in 0..stats_slots() {
            bits.set(slot, true);
        }
        bits
    }

    pub(crate) fn set(&mut self, slot: usize, on: bool) {
        if let Some(word) = self.0.get_mut(slot / 64) {
            let bit = 1u64 << (slot % 64);
            if on {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }

    pub(crate) fn get(&self, slot: usize) -> bool {
        self.0
            .get(slot / 64)
            .is_some_and(|word| word & (1u64 << (slot % 64)) != 0)
    }

    pub(crate) fn is_full(&self) -> bool {
        *self == Bits::all()
    }
}

/// Every command and subcommand, containers followed by their subcommands (the table's order).
pub(crate) struct Index {
    pub(crate) commands: Vec<AclCommand>,
}

/// Redis's ACL categories, in the order `ACL CAT` lists them.
pub(crate) const CATEGORIES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

pub(crate) fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| Index {
        commands: acl_commands(),
    })
}

impl Index {
    fn find(&self, name: &str) -> Option<&AclCommand> {
        self.commands
            .iter()
            .find(|command| command.name.eq_ignore_ascii_case(name))
    }

    /// The slots a `+name` or `-name` rule changes: a container's own and all its subcommands'.
    pub(crate) fn command(&self, name: &str) -> Option<Vec<usize>> {
        self.find(name).map(AclCommand::slots)
    }

    /// The slots a `+@category` or `-@category` rule changes; `None` for an unknown category.
    pub(crate) fn category(&self, category: &str) -> Option<Vec<usize>> {
        let category = CATEGORIES
            .iter()
            .find(|known| known.eq_ignore_ascii_case(category))?;
        Some(
            self.in_category(category)
                .flat_map(AclCommand::slots)
                .collect(),
        )
    }

    /// The commands and subcommands in a category (named without `@`).
    pub(crate) fn in_category<'a>(
        &'a self,
        category: &'a str,
    ) -> impl Iterator<Item = &'a AclCommand> {
        self.commands.iter().filter(move |command| {
            command
                .categories
                .iter()
                .any(|known| known.get(1..) == Some(category))
        })
    }
}

impl AclCommand {
    fn slots(&self) -> Vec<usize> {
        (self.slot..=self.slot + self.subcommands).collect()
    }
}
