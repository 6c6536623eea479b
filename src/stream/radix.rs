//! How many nodes a Redis radix tree (`rax`) has once it holds given keys: what `XINFO
//! STREAM` reports as `radix-tree-nodes`, where a stream's keys are the IDs of its nodes' first
//! entries, 16 bytes each (milliseconds then sequence, big-endian).
//!
//! The count is that of the tree in its compact form: a run of bytes leading to a single child
//! is one compressed node, a byte where keys part ways is one branching node, and each key
//! ends in an empty leaf. A tree Redis grew by insertions alone has that form. Deletions in
//! Redis merge nodes back as far as they can, which comes to the same in the cases checked
//! against the real server, but not provably in every one.

use crate::id::StreamId;

/// A node key: an ID as 16 big-endian bytes.
type Key = [u8; 16];

/// The rax key of a stream node whose first entry is `id`.
fn key_of(id: StreamId) -> Key {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&id.ms.to_be_bytes());
    key[8..].copy_from_slice(&id.seq.to_be_bytes());
    key
}

/// Nodes of a rax holding one key per ID of `first_ids` (in increasing order).
pub(super) fn rax_nodes(first_ids: impl IntoIterator<Item = StreamId>) -> u64 {
    let keys: Vec<Key> = first_ids.into_iter().map(key_of).collect();
    nodes_below(&keys, 0)
}

/// Nodes of the subtree of the sorted `keys`, which share their first `depth` bytes.
fn nodes_below(keys: &[Key], depth: usize) -> u64 {
    let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
        // An empty tree is its root alone.
        return 1;
    };
    if depth == first.len() {
        return 1;
    }
    let shared = first[depth..]
        .iter()
        .zip(&last[depth..])
        .take_while(|(a, b)| a == b)
        .count();
    if shared > 0 {
        // One compressed node for the shared bytes, then what follows them.
        return 1 + nodes_below(keys, depth + shared);
    }
    // A branching node, then one subtree per distinct byte.
    let mut total = 1;
    let mut rest = keys;
    while let Some(head) = rest.first() {
        let same = rest.iter().take_while(|k| k[depth] == head[depth]).count();
        total += nodes_below(&rest[..same], depth + 1);
        rest = &rest[same..];
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ms: &[u64]) -> Vec<StreamId> {
        ms.iter().map(|&ms| StreamId::new(ms, 0)).collect()
    }

    /// Figures from Redis 7.0.15's `XINFO STREAM` on streams of entries `1-0`, `2-0`, …
    /// (100 to a node): 0, 1, 150 and 1000 entries give 1, 2, 6 and 26 nodes.
    #[test]
    fn counts_match_redis_on_sequential_ids() {
        assert_eq!(rax_nodes(ids(&[])), 1);
        assert_eq!(rax_nodes(ids(&[1])), 2);
        assert_eq!(rax_nodes(ids(&[1, 101])), 6);
        let thousand: Vec<u64> = (0..10).map(|n| 1 + 100 * n).collect();
        assert_eq!(rax_nodes(ids(&thousand)), 26);
    }

    /// Redis 7.0.15 on 1000 entries `1000-1`, `2000-2`, …: 22 nodes.
    #[test]
    fn counts_match_redis_when_sequences_differ() {
        let first_ids = (0..10).map(|n| {
            let i = 1 + 100 * n;
            StreamId::new(i * 1000, i)
        });
        assert_eq!(rax_nodes(first_ids), 22);
    }
}
