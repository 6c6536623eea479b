//! The Redis version queue-server reports (INFO, HELLO) and answers as.
//!
//! Clients and their test suites gate features on this version, and Redis's replies gained
//! fields from one version to the next (XINFO's `active-time` arrived in 7.2, for instance): a
//! reply that depends on the version asks here, so that INFO, HELLO and every reply agree.

use std::fmt;

/// A Redis release, compared field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RedisVersion {
    /// The major release.
    pub major: u16,
    /// The minor release.
    pub minor: u16,
    /// The patch release.
    pub patch: u16,
}

impl RedisVersion {
    /// A version from its three parts.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        RedisVersion {
            major,
            minor,
            patch,
        }
    }

    /// Whether this version is `major.minor` or later: what a reply field added in that
    /// release asks before it appears.
    pub fn at_least(self, major: u16, minor: u16) -> bool {
        self >= RedisVersion::new(major, minor, 0)
    }
}

impl fmt::Display for RedisVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The version reported unless configured otherwise (`redis-version`): the highest whose
/// stream command set queue-server implements completely, with that version's reply shapes.
/// 7.4 added `XREAD … +`, 8.2 XDELEX, XACKDEL and the KEEPREF/DELREF/ACKED options, 8.4
/// XREADGROUP's CLAIM option.
pub const LATEST: RedisVersion = RedisVersion::new(8, 4, 0);

/// The earliest version queue-server can answer as: 7.0 reshaped the stream replies (lag,
/// entries-read, entries-added), and queue-server always keeps that information.
pub const EARLIEST: RedisVersion = RedisVersion::new(7, 0, 0);

impl RedisVersion {
    /// Parses `major.minor.patch` (or `major.minor`), refusing versions outside
    /// [`EARLIEST`]..=[`LATEST`] with a message that says which are accepted.
    pub fn parse_supported(text: &str) -> Result<RedisVersion, String> {
        let malformed = || format!("{text:?} is not a version such as {LATEST}");
        let parts: Vec<u16> = text
            .trim()
            .split('.')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| malformed())?;
        let (major, minor, patch) = match parts[..] {
            [major, minor] => (major, minor, 0),
            [major, minor, patch] => (major, minor, patch),
            _ => return Err(malformed()),
        };
        let version = RedisVersion::new(major, minor, patch);
        if !(EARLIEST..=LATEST).contains(&version) {
            return Err(format!(
                "{version} is outside the versions queue-server answers as ({EARLIEST} to {LATEST})"
            ));
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_by_major_then_minor_then_patch() {
        assert!(RedisVersion::new(7, 2, 0).at_least(7, 2));
        assert!(RedisVersion::new(8, 0, 0).at_least(7, 2));
        assert!(!RedisVersion::new(7, 0, 15).at_least(7, 2));
        assert_eq!(RedisVersion::new(7, 0, 0).to_string(), "7.0.0");
    }

    #[test]
    fn only_supported_versions_parse() {
        assert_eq!(
            RedisVersion::parse_supported("7.2.4"),
            Ok(RedisVersion::new(7, 2, 4))
        );
        assert_eq!(RedisVersion::parse_supported("7.0"), Ok(EARLIEST));
        assert_eq!(
            RedisVersion::parse_supported(&LATEST.to_string()),
            Ok(LATEST)
        );
        for refused in ["6.2.0", "99.0.0", "7", "", "7.x", "7.0.0.1", "-7.0"] {
            let parsed = RedisVersion::parse_supported(refused);
            assert!(parsed.is_err(), "{refused:?}: {parsed:?}");
        }
    }
}
