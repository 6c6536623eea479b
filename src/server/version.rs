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

/// The version reported: the highest whose stream command set queue-server implements
/// completely, with that version's reply shapes.
pub const REPORTED: RedisVersion = RedisVersion::new(7, 0, 0);

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
}
