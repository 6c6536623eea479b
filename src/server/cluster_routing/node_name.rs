//! A node's Redis Cluster name: the 40 hexadecimal digits that `CLUSTER NODES`, `CLUSTER
//! SLOTS` and `CLUSTER MYID` show. Redis draws it at random when a node first starts; weir
//! derives it from the node's numeric id, so that every node names every other the same way and
//! a restart keeps the name, with nothing to store or exchange.

use sha2::{Digest, Sha256};

/// The length of a node name, as Redis's `CLUSTER_NAMELEN`.
pub(crate) const NODE_NAME_LEN: usize = 40;

/// What the id is hashed after, so that the names are weir's own and not a bare hash of a
/// number.
const NAME_DOMAIN: &[u8] = b"weir cluster node name\0";

/// The node's name: the first 40 lowercase hexadecimal digits of SHA-256 of a fixed prefix and
/// the id (eight bytes, big-endian).
pub(crate) fn node_name(id: u64) -> String {
    let digest = Sha256::new()
        .chain_update(NAME_DOMAIN)
        .chain_update(id.to_be_bytes())
        .finalize();
    let mut name: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    name.truncate(NODE_NAME_LEN);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_forty_lowercase_hex_digits() {
        for id in [0, 1, 2, 3, u64::MAX] {
            let name = node_name(id);
            assert_eq!(name.len(), NODE_NAME_LEN);
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
        }
    }

    /// Pinned: a name must never change between releases, or a rolling upgrade would show
    /// clients two names for one node.
    #[test]
    fn names_are_stable() {
        assert_eq!(node_name(1), node_name(1));
        assert_ne!(node_name(1), node_name(2));
        assert_eq!(node_name(1), "e16f8cd9aaa1ba0568593ca860e2ad2598ac08de");
        assert_eq!(node_name(2), "2cab27d06b544d382a2bb9f9fa52a76f7d2d43d6");
    }
}
