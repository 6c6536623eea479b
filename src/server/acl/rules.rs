//! A user's rules written back as text, as `ACL LIST`, `ACL GETUSER` and the ACL file show
//! them. The command rules are Redis 7.0's compact form: `+@all` or `-@all`, then each category
//! that brings the rules closer to the user's commands, then the commands still different.

use super::index::{Bits, CATEGORIES, index};
use super::user::{Access, User};

/// The rules that make a new user into this one: flags, password digests, keys, channels,
/// commands.
pub(crate) fn describe(user: &User) -> String {
    let mut rules = vec![if user.enabled { "on" } else { "off" }.to_string()];
    if user.nopass {
        rules.push("nopass".into());
    }
    rules.extend(user.passwords.iter().map(|hash| format!("#{hash}")));
    let keys = key_rules(user);
    if !keys.is_empty() {
        rules.push(keys);
    }
    rules.push(channel_rules(user));
    rules.push(command_rules(user));
    rules.join(" ")
}

/// `~*`, or each pattern with its access (`%R~`, `%W~`, `~`).
pub(crate) fn key_rules(user: &User) -> String {
    if user.all_keys {
        return "~*".into();
    }
    let rule = |access: Access, pattern: &str| match access {
        Access::READ => format!("%R~{pattern}"),
        Access::WRITE => format!("%W~{pattern}"),
        _ => format!("~{pattern}"),
    };
    user.keys
        .iter()
        .map(|known| rule(known.access, &known.pattern))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `&*`, or `resetchannels` and each pattern.
pub(crate) fn channel_rules(user: &User) -> String {
    if user.all_channels {
        return "&*".into();
    }
    std::iter::once("resetchannels".to_string())
        .chain(user.channels.iter().map(|pattern| format!("&{pattern}")))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn command_rules(user: &User) -> String {
    let index = index();
    let additive = !user.all_commands;
    let sign = if additive { '+' } else { '-' };
    let mut applied = if additive { Bits::none() } else { Bits::all() };
    let mut rules = vec![if additive { "-@all" } else { "+@all" }.to_string()];
    for category in CATEGORIES {
        let (on, off) = index
            .in_category(category)
            .fold((0, 0), |(on, off), command| {
                if user.commands.get(command.slot) {
                    (on + 1, off)
                } else {
                    (on, off + 1)
                }
            });
        if (additive && on > off) || (!additive && off > on) {
            rules.push(format!("{sign}@{category}"));
            for slot in index.category(category).unwrap_or_default() {
                applied.set(slot, additive);
            }
        }
    }
    for command in &index.commands {
        let allowed = user.commands.get(command.slot);
        if allowed != applied.get(command.slot) {
            rules.push(format!(
                "{}{}",
                if allowed { '+' } else { '-' },
                command.name
            ));
            for slot in index.command(command.name).unwrap_or_default() {
                applied.set(slot, allowed);
            }
        }
    }
    rules.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(rules: &[&str]) -> String {
        let mut user = User::new("u");
        for rule in rules {
            user.apply(rule).unwrap();
        }
        describe(&user)
    }

    #[test]
    fn rules_read_back_as_redis_writes_them() {
        assert_eq!(
            described(&["on", "nopass", "~*", "&*", "+@all"]),
            "on nopass ~* &* +@all"
        );
        assert_eq!(
            described(&["on", "resetkeys", "%W~orders*", "-@all", "+xadd"]),
            "on %W~orders* resetchannels -@all +xadd"
        );
        assert_eq!(
            described(&["+@all", "-xadd"]),
            "off resetchannels +@all -xadd"
        );
        assert_eq!(
            described(&["-@all", "+xgroup", "-xgroup|create"]),
            "off resetchannels -@all +xgroup -xgroup|create"
        );
        assert_eq!(
            described(&["%R~a", "%RW~b", "&c"]),
            "off %R~a ~b resetchannels &c -@all"
        );
    }

    #[test]
    fn a_description_rebuilds_the_same_user() {
        let mut original = User::new("u");
        for rule in ["on", ">pw", "~q*", "-@all", "+@stream", "-xdel", "+ping"] {
            original.apply(rule).unwrap();
        }
        let mut copy = User::new("u");
        for rule in describe(&original).split(' ') {
            copy.apply(rule).unwrap();
        }
        assert_eq!(describe(&copy), describe(&original));
        assert_eq!(copy.commands, original.commands);
    }
}
