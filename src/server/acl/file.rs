//! The ACL file: one `user <name> <rules…>` line per user, as `ACL LIST` shows them; blank
//! lines and lines starting with `#` are skipped. Written whole and atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::rules::describe;
use super::user::User;

/// The users of a file's text, or the first error as `:line: reason`.
pub(crate) fn parse(text: &str) -> Result<BTreeMap<String, Arc<User>>, String> {
    let mut users = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let user = parse_line(line).map_err(|reason| format!(":{}: {reason}", number + 1))?;
        if users.contains_key(&user.name) {
            return Err(format!(
                ":{}: Duplicate user '{}' found",
                number + 1,
                user.name
            ));
        }
        users.insert(user.name.clone(), Arc::new(user));
    }
    Ok(users)
}

fn parse_line(line: &str) -> Result<User, String> {
    let mut words = line.split_whitespace();
    if words.next() != Some("user") {
        return Err("line should start with user keyword".into());
    }
    let name = words
        .next()
        .ok_or("the user name is missing after the user keyword")?;
    let mut user = User::new(name);
    for rule in words {
        user.apply(rule)
            .map_err(|reason| format!("Error in applying operation '{rule}': {reason}"))?;
    }
    Ok(user)
}

/// The file's text for these users.
pub(crate) fn render(users: &[Arc<User>]) -> String {
    users
        .iter()
        .map(|user| format!("user {} {}\n", user.name, describe(user)))
        .collect()
}

/// Replaces the file with `bytes`: written beside it, synced, renamed over it, directory synced.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::fs::replace_durably(path, &temporary(path), bytes)
}

fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_survive_a_round_trip() {
        let text = "# users\n\nuser default on nopass ~* &* +@all\nuser producer on #2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b %W~orders* resetchannels -@all +xadd\n";
        let users = parse(text).unwrap();
        assert_eq!(users.len(), 2);
        assert!(users["producer"].password_matches(b"secret"));
        let listed: Vec<_> = users.values().cloned().collect();
        assert_eq!(render(&listed), text.trim_start_matches("# users\n\n"));
    }

    #[test]
    fn a_bad_line_is_named() {
        assert_eq!(
            parse("user a on\nuser b +nothing\n").err().as_deref(),
            Some(
                ":2: Error in applying operation '+nothing': Unknown command or category name in ACL"
            )
        );
        assert_eq!(
            parse("user a on\nuser a off").err().as_deref(),
            Some(":2: Duplicate user 'a' found")
        );
        assert_eq!(
            parse("person a on").err().as_deref(),
            Some(":1: line should start with user keyword")
        );
    }
}
