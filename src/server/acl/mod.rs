//! Users and their permissions, as Redis 6+ has them: the users, the ACL file they persist in,
//! the log of denials and the counts of refused commands and failed authentications.
//!
//! Connections keep the `Arc<User>` they authenticated as and the generation it was read at;
//! every change here makes a new generation, and a connection that sees one reads its user
//! again (a deleted user's connections are closed).

mod file;
mod index;
mod log;
mod rules;
mod user;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

pub(crate) use self::index::{CATEGORIES, index};
pub(crate) use self::log::{AclLog, LogEntry, Reason};
pub(crate) use self::rules::{describe, key_rules};
pub(crate) use self::user::{Access, User};

/// Counts of refusals, for `INFO stats` (`acl_access_denied_*`).
#[derive(Debug, Default)]
pub(crate) struct DeniedCounts {
    pub(crate) auth: AtomicU64,
    pub(crate) command: AtomicU64,
    pub(crate) key: AtomicU64,
    pub(crate) channel: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Acl {
    users: RwLock<BTreeMap<String, Arc<User>>>,
    generation: AtomicU64,
    file: Option<PathBuf>,
    pub(crate) log: AclLog,
    pub(crate) denied: DeniedCounts,
}

impl Acl {
    /// Only the `default` user, with `requirepass` as its password (none: `nopass`). Users in
    /// `file`, if given, are read by [`Acl::load`].
    pub(crate) fn new(requirepass: Option<&str>, file: Option<PathBuf>) -> Acl {
        let mut default = User::default_user();
        set_password(&mut default, requirepass);
        let users = BTreeMap::from([(default.name.clone(), Arc::new(default))]);
        Acl {
            users: RwLock::new(users),
            generation: AtomicU64::new(0),
            file,
            log: AclLog::default(),
            denied: DeniedCounts::default(),
        }
    }

    /// Changes with every change to any user.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn user(&self, name: &str) -> Option<Arc<User>> {
        self.users.read().get(name).cloned()
    }

    /// The `default` user, which always exists.
    pub(crate) fn default_user(&self) -> Arc<User> {
        self.user("default")
            .unwrap_or_else(|| Arc::new(User::default_user()))
    }

    /// Every user, by name.
    pub(crate) fn users(&self) -> Vec<Arc<User>> {
        self.users.read().values().cloned().collect()
    }

    /// The user `name` if it is on and `password` is one of its passwords.
    pub(crate) fn authenticate(&self, name: &[u8], password: &[u8]) -> Option<Arc<User>> {
        let name = std::str::from_utf8(name).ok()?;
        self.user(name)
            .filter(|user| user.enabled && user.password_matches(password))
    }

    /// `ACL SETUSER`: applies every rule to the user (created if missing), or none of them.
    pub(crate) fn set_user(&self, name: &str, rules: &[&str]) -> Result<(), String> {
        if name.bytes().any(|b| b == b' ' || b == 0) {
            return Err("Usernames can't contain spaces or null characters".into());
        }
        let mut users = self.users.write();
        let mut user = users
            .get(name)
            .map_or_else(|| User::new(name), |user| User::clone(user));
        for rule in rules {
            user.apply(rule)
                .map_err(|reason| format!("Error in ACL SETUSER modifier '{rule}': {reason}"))?;
        }
        users.insert(name.to_string(), Arc::new(user));
        drop(users);
        self.changed();
        Ok(())
    }

    /// `ACL DELUSER`: how many of the users existed.
    pub(crate) fn delete(&self, names: &[&str]) -> Result<usize, String> {
        if names.contains(&"default") {
            return Err("The 'default' user cannot be removed".into());
        }
        let mut users = self.users.write();
        let deleted = names
            .iter()
            .filter(|name| users.remove(**name).is_some())
            .count();
        drop(users);
        self.changed();
        Ok(deleted)
    }

    /// `requirepass`: the default user's only password, or none (`nopass`).
    pub(crate) fn set_default_password(&self, password: Option<&str>) {
        let mut users = self.users.write();
        let mut default = users
            .get("default")
            .map_or_else(User::default_user, |user| User::clone(user));
        set_password(&mut default, password);
        users.insert(default.name.clone(), Arc::new(default));
        drop(users);
        self.changed();
    }

    /// The ACL file, or the error `ACL LOAD` and `ACL SAVE` give without one.
    fn file(&self) -> Result<&Path, String> {
        self.file.as_deref().ok_or_else(|| {
            "This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.".to_string()
        })
    }

    /// `ACL LOAD`, and the start with `--aclfile`: replaces every user with those of the file
    /// (the default user stays as it is if the file has none), or changes nothing if any line
    /// is wrong. A missing file holds no users.
    pub(crate) fn load(&self) -> Result<(), String> {
        let path = self.file()?;
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        };
        let mut loaded =
            file::parse(&text).map_err(|error| format!("{}{error}", path.display()))?;
        let mut users = self.users.write();
        if !loaded.contains_key("default") {
            let default = Arc::clone(users.get("default").ok_or("no default user")?);
            loaded.insert(default.name.clone(), default);
        }
        *users = loaded;
        drop(users);
        self.changed();
        Ok(())
    }

    /// `ACL SAVE`: writes every user to the ACL file, atomically.
    pub(crate) fn save(&self) -> Result<(), String> {
        let path = self.file()?;
        let text = file::render(&self.users());
        file::write(path, text.as_bytes()).map_err(|error| {
            format!(
                "There was an error trying to save the ACLs to {}: {error}. Check that its directory exists and is writable.",
                path.display()
            )
        })
    }
}

fn set_password(user: &mut User, password: Option<&str>) {
    let rules = match password {
        Some(password) => vec!["resetpass".to_string(), format!(">{password}")],
        None => vec!["nopass".to_string()],
    };
    for rule in rules {
        // Password rules cannot fail: `>` takes any text, `nopass` and `resetpass` none.
        let _ = user.apply(&rule);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::fault::{self, Fault};

    #[test]
    fn requirepass_is_the_default_users_password() {
        let acl = Acl::new(Some("secret"), None);
        assert!(acl.authenticate(b"default", b"secret").is_some());
        assert!(acl.authenticate(b"default", b"wrong").is_none());
        let before = acl.generation();
        acl.set_default_password(None);
        assert_ne!(acl.generation(), before);
        assert!(acl.authenticate(b"default", b"anything").is_some());
        assert!(acl.default_user().unrestricted());
    }

    #[test]
    fn setuser_applies_every_rule_or_none() {
        let acl = Acl::new(None, None);
        acl.set_user("p", &["on", ">pw"]).unwrap();
        assert_eq!(
            acl.set_user("p", &["off", "+nothing"]),
            Err(
                "Error in ACL SETUSER modifier '+nothing': Unknown command or category name in ACL"
                    .into()
            )
        );
        assert!(acl.authenticate(b"p", b"pw").is_some());
        acl.set_user("p", &["off"]).unwrap();
        assert!(
            acl.authenticate(b"p", b"pw").is_none(),
            "a user that is off"
        );
        assert_eq!(acl.delete(&["p", "q"]), Ok(1));
        assert!(acl.delete(&["default"]).is_err());
        assert!(acl.set_user("a b", &[]).is_err());
    }

    #[test]
    fn saved_users_load_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.acl");
        let acl = Acl::new(Some("admin"), Some(path.clone()));
        acl.set_user("producer", &["on", ">pw", "%W~orders*", "+xadd"])
            .unwrap();
        acl.save().unwrap();
        let other = Acl::new(None, Some(path.clone()));
        other.load().unwrap();
        assert!(other.authenticate(b"producer", b"pw").is_some());
        assert!(other.authenticate(b"default", b"admin").is_some());
        std::fs::write(&path, "user x +bogus\n").unwrap();
        assert!(other.load().unwrap_err().ends_with("users.acl:1: Error in applying operation '+bogus': Unknown command or category name in ACL"));
        assert!(
            other.authenticate(b"producer", b"pw").is_some(),
            "a failed load changes nothing"
        );
        assert!(
            Acl::new(None, None)
                .save()
                .unwrap_err()
                .starts_with("This Redis instance")
        );
    }

    /// Every step of a save failing in turn leaves the old file or the new one, never a mix,
    /// and says so.
    #[test]
    fn a_failed_save_leaves_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.acl");
        let acl = Acl::new(None, Some(path.clone()));
        acl.save().unwrap();
        let old = std::fs::read_to_string(&path).unwrap();
        acl.set_user("u", &["on", "~*", "+@all", "nopass"]).unwrap();
        let counted = fault::count(dir.path());
        acl.save().unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        let calls = counted.calls();
        drop(counted);
        assert!(calls >= 4, "write, sync, rename, directory sync");
        for at in 0..calls {
            for kind in [Fault::Io, Fault::ShortWrite, Fault::NoSpace] {
                std::fs::write(&path, &old).unwrap();
                let plan = fault::inject(dir.path(), at, kind);
                let saved = acl.save();
                assert!(plan.fired());
                let now = std::fs::read_to_string(&path).unwrap();
                assert!(now == old || now == new, "call {at}, {kind:?}: {now:?}");
                if now == old {
                    assert!(saved.is_err(), "call {at}, {kind:?}");
                }
            }
        }
    }
}
