//! One user: whether it is on, its password hashes, the commands it may run and the keys it may
//! read or write, changed rule by rule as `ACL SETUSER` gives them.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::index::{Bits, index};
use crate::server::keys::glob_match;

/// What a key pattern lets a user do with the keys it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Access(u8);

impl Access {
    pub(crate) const NONE: Access = Access(0);
    pub(crate) const READ: Access = Access(1);
    pub(crate) const WRITE: Access = Access(2);
    pub(crate) const ALL: Access = Access(3);

    pub(crate) fn with(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }

    fn covers(self, needed: Access) -> bool {
        self.0 & needed.0 == needed.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyPattern {
    pub(crate) access: Access,
    pub(crate) pattern: String,
}

#[derive(Clone, Debug)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) enabled: bool,
    pub(crate) nopass: bool,
    /// SHA-256 digests of the passwords, as lowercase hex (how Redis shows and stores them).
    pub(crate) passwords: Vec<String>,
    pub(crate) commands: Bits,
    /// Set by `+@all`, cleared only by `-@all`: the rules start from every command (and
    /// `ACL LIST` shows them that way), as in Redis 7.0.
    pub(crate) all_commands: bool,
    pub(crate) keys: Vec<KeyPattern>,
    pub(crate) all_keys: bool,
    pub(crate) channels: Vec<String>,
    pub(crate) all_channels: bool,
    /// Every command on every key: the permission check has nothing to look at.
    unrestricted: bool,
}

/// Why a rule cannot be applied, in Redis's words.
pub(crate) const SYNTAX: &str = "Syntax error";
pub(crate) const UNKNOWN_NAME: &str = "Unknown command or category name in ACL";
const BAD_HASH: &str = "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters";
const NO_SUCH_PASSWORD: &str = "The password you are trying to remove from the user does not exist";
const KEY_AFTER_ALL: &str = "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns";
const CHANNEL_AFTER_ALL: &str = "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels";
const SELECTORS: &str =
    "Selectors are not supported: give the rules without parentheses, for the user itself";

impl User {
    /// A new user as `ACL SETUSER` creates it: off, no password, no commands, no keys.
    pub(crate) fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            commands: Bits::none(),
            all_commands: false,
            keys: Vec::new(),
            all_keys: false,
            channels: Vec::new(),
            all_channels: false,
            unrestricted: false,
        }
    }

    /// Redis's `default` user when no password is required: everything, no password.
    pub(crate) fn default_user() -> User {
        let mut user = User::new("default");
        for rule in ["on", "nopass", "~*", "&*", "+@all"] {
            // The rules are valid: the fallback leaves the user off rather than panicking.
            if user.apply(rule).is_err() {
                user.enabled = false;
            }
        }
        user
    }

    /// Applies one rule, or says why it cannot be applied (then the user is unchanged).
    pub(crate) fn apply(&mut self, rule: &str) -> Result<(), &'static str> {
        let lower = rule.to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "allkeys" => self.set_all_keys(),
            "resetkeys" => {
                self.all_keys = false;
                self.keys.clear();
            }
            "allchannels" => self.set_all_channels(),
            "resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
            }
            "allcommands" | "+@all" => self.set_all_commands(true),
            "nocommands" | "-@all" => self.set_all_commands(false),
            "clearselectors" => {}
            "reset" => *self = User::new(&self.name),
            _ => self.apply_prefixed(rule)?,
        }
        self.unrestricted = self.all_keys && self.commands.is_full();
        Ok(())
    }

    fn apply_prefixed(&mut self, rule: &str) -> Result<(), &'static str> {
        let (first, rest) = rule.split_at(rule.chars().next().map_or(0, char::len_utf8));
        match first {
            ">" => {
                self.add_hash(hash(rest.as_bytes()));
                Ok(())
            }
            "<" => self.remove_hash(&hash(rest.as_bytes())),
            "#" => {
                self.add_hash(valid_hash(rest)?);
                Ok(())
            }
            "!" => self.remove_hash(&valid_hash(rest)?),
            "~" | "%" => self.add_key_pattern(rule),
            "&" => self.add_channel(rest),
            "+" | "-" => self.change_commands(rest, first == "+"),
            "(" => Err(SELECTORS),
            _ => Err(SYNTAX),
        }
    }

    fn add_hash(&mut self, hash: String) {
        self.nopass = false;
        if !self.passwords.contains(&hash) {
            self.passwords.push(hash);
        }
    }

    fn remove_hash(&mut self, hash: &str) -> Result<(), &'static str> {
        let before = self.passwords.len();
        self.passwords.retain(|known| known != hash);
        if self.passwords.len() == before {
            return Err(NO_SUCH_PASSWORD);
        }
        Ok(())
    }

    fn set_all_keys(&mut self) {
        self.all_keys = true;
        self.keys.clear();
    }

    fn set_all_channels(&mut self) {
        self.all_channels = true;
        self.channels.clear();
    }

    /// `~pattern`, or `%R~`, `%W~`, `%RW~` for read or write access only.
    fn add_key_pattern(&mut self, rule: &str) -> Result<(), &'static str> {
        let (access, pattern) = key_rule(rule)?;
        if access == Access::ALL && pattern == "*" {
            self.set_all_keys();
            return Ok(());
        }
        if self.all_keys {
            return Err(KEY_AFTER_ALL);
        }
        match self.keys.iter_mut().find(|known| known.pattern == pattern) {
            Some(known) => known.access = known.access.with(access),
            None => self.keys.push(KeyPattern {
                access,
                pattern: pattern.to_string(),
            }),
        }
        Ok(())
    }

    fn add_channel(&mut self, pattern: &str) -> Result<(), &'static str> {
        if pattern == "*" {
            self.set_all_channels();
            return Ok(());
        }
        if self.all_channels {
            return Err(CHANNEL_AFTER_ALL);
        }
        if !self.channels.iter().any(|known| known == pattern) {
            self.channels.push(pattern.to_string());
        }
        Ok(())
    }

    fn set_all_commands(&mut self, allowed: bool) {
        self.commands = if allowed { Bits::all() } else { Bits::none() };
        self.all_commands = allowed;
    }

    /// `+name`, `-name`, `+container|sub`, `+@category`, `-@category`.
    fn change_commands(&mut self, name: &str, allow: bool) -> Result<(), &'static str> {
        let index = index();
        let slots = match name.strip_prefix('@') {
            Some(category) => index.category(category).ok_or(UNKNOWN_NAME)?,
            None => index.command(name).ok_or(UNKNOWN_NAME)?,
        };
        for slot in slots {
            self.commands.set(slot, allow);
        }
        Ok(())
    }

    /// The user may run everything on every key: nothing to check.
    pub(crate) fn unrestricted(&self) -> bool {
        self.unrestricted
    }

    /// May the user run the command or subcommand counted in `slot`?
    pub(crate) fn may_run(&self, slot: usize) -> bool {
        self.commands.get(slot)
    }

    /// May the user do `needed` with `key`?
    pub(crate) fn may_touch(&self, key: &[u8], needed: Access) -> bool {
        self.all_keys
            || self.keys.iter().any(|known| {
                known.access.covers(needed) && glob_match(known.pattern.as_bytes(), key)
            })
    }

    /// Whether `password` is one of the user's (or the user has none to check). Every stored
    /// digest is compared, in constant time, whatever matches first.
    pub(crate) fn password_matches(&self, password: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let given = hash(password);
        self.passwords
            .iter()
            .fold(subtle::Choice::from(0), |found, known| {
                found | known.as_bytes().ct_eq(given.as_bytes())
            })
            .into()
    }
}

/// The access and pattern of a key rule: `~p` is read and write, `%R~p`, `%W~p`, `%RW~p` say.
fn key_rule(rule: &str) -> Result<(Access, &str), &'static str> {
    if let Some(pattern) = rule.strip_prefix('~') {
        return Ok((Access::ALL, pattern));
    }
    let (letters, pattern) = rule[1..].split_once('~').ok_or(SYNTAX)?;
    let access = letters
        .chars()
        .try_fold(Access::NONE, |access, letter| match letter {
            'R' | 'r' => Ok(access.with(Access::READ)),
            'W' | 'w' => Ok(access.with(Access::WRITE)),
            _ => Err(SYNTAX),
        })?;
    if access == Access::NONE {
        return Err(SYNTAX);
    }
    Ok((access, pattern))
}

/// A password's SHA-256 digest in lowercase hex.
pub(crate) fn hash(password: &[u8]) -> String {
    Sha256::digest(password)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn valid_hash(text: &str) -> Result<String, &'static str> {
    let valid = text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid.then(|| text.to_string()).ok_or(BAD_HASH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &[&str]) -> User {
        let mut user = User::new("u");
        for rule in rules {
            user.apply(rule).unwrap();
        }
        user
    }

    #[test]
    fn passwords_are_stored_hashed_and_checked() {
        let alice = user(&["on", ">secret"]);
        assert_eq!(
            alice.passwords,
            ["2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"]
        );
        assert!(alice.password_matches(b"secret"));
        assert!(!alice.password_matches(b"Secret"));
        assert!(!alice.password_matches(b""));
        let mut open = user(&["nopass"]);
        assert!(open.password_matches(b"anything"));
        assert_eq!(open.apply("<nope"), Err(NO_SUCH_PASSWORD));
        assert_eq!(open.apply("#abc"), Err(BAD_HASH));
        open.apply("resetpass").unwrap();
        assert!(!open.password_matches(b"anything"));
    }

    #[test]
    fn key_patterns_grant_read_or_write() {
        let producer = user(&["%W~orders*", "%R~config"]);
        assert!(producer.may_touch(b"orders:1", Access::WRITE));
        assert!(!producer.may_touch(b"orders:1", Access::READ));
        assert!(producer.may_touch(b"orders:1", Access::NONE));
        assert!(producer.may_touch(b"config", Access::READ));
        assert!(!producer.may_touch(b"other", Access::NONE));
        let mut everything = user(&["~*"]);
        assert!(everything.may_touch(b"x", Access::ALL));
        assert_eq!(everything.apply("~a"), Err(KEY_AFTER_ALL));
        let mut bad = User::new("u");
        assert_eq!(bad.apply("%~a"), Err(SYNTAX));
        assert_eq!(bad.apply("%X~a"), Err(SYNTAX));
        assert_eq!(bad.apply("(~a)"), Err(SELECTORS));
    }

    #[test]
    fn commands_follow_categories_and_names() {
        let index = index();
        let slot = |name| index.command(name).unwrap()[0];
        let consumer = user(&["-@all", "+xreadgroup", "+xack"]);
        assert!(consumer.may_run(slot("xack")));
        assert!(!consumer.may_run(slot("xadd")));
        assert!(!consumer.unrestricted());
        let stream = user(&["+@stream", "-xgroup|create", "~*"]);
        assert!(stream.may_run(slot("xgroup|destroy")));
        assert!(!stream.may_run(slot("xgroup|create")));
        assert!(!stream.may_run(slot("ping")));
        assert!(user(&["+@all", "~*"]).unrestricted());
        assert_eq!(User::new("u").apply("+nocommand"), Err(UNKNOWN_NAME));
        assert_eq!(User::new("u").apply("+@nocategory"), Err(UNKNOWN_NAME));
        assert_eq!(User::new("u").apply("bogus"), Err(SYNTAX));
    }
}
