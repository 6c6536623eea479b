//! The Raft log's small state beside its entries: the vote, the commit point and the purge
//! point, in one snapshot container (`raft.meta`, kind `RMET`, storage-format.md 14.3)
//! replaced atomically as a whole.

use std::path::Path;

use crate::codec::{CodecError, Decoder, Encoder};
use crate::journal::{self, FileKind, JournalError};
use crate::names::RAFT_META_FILE;

/// The kind of the Raft log's meta file.
pub const RAFT_META_KIND: FileKind = FileKind(*b"RMET");
/// The generation written in the meta file's header: it has only ever had one.
const RAFT_META_GENERATION: u64 = 1;

/// An entry's position: its index, and the term and node of the leader that wrote it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WalLogId {
    /// The term of the leader that wrote the entry.
    pub term: u64,
    /// The node of the leader that wrote the entry.
    pub leader: u64,
    /// The entry's index in the log.
    pub index: u64,
}

/// A node's vote: the highest term it has seen and the node it granted in that term.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalVote {
    /// The highest term seen.
    pub term: u64,
    /// The node voted for in that term.
    pub node: u64,
    /// Whether a quorum granted it (the node is the term's established leader).
    pub committed: bool,
}

/// What `raft.meta` holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalMeta {
    /// The node's vote, once it has cast one.
    pub vote: Option<WalVote>,
    /// The last entry known committed: every entry up to it was durable on a majority, so
    /// losing one of them is damage, never a torn write.
    pub committed: Option<WalLogId>,
    /// The last entry purged: the log starts after it.
    pub purged: Option<WalLogId>,
}

impl WalMeta {
    /// The payload of the meta file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Encoder::with_capacity(64);
        match self.vote {
            Some(vote) => out
                .u8(1)
                .u64(vote.term)
                .u64(vote.node)
                .u8(u8::from(vote.committed)),
            None => out.u8(0),
        };
        put_log_id(&mut out, self.committed);
        put_log_id(&mut out, self.purged);
        out.finish()
    }

    /// Decodes the payload of the meta file, which must be consumed exactly.
    pub fn decode(payload: &[u8]) -> Result<WalMeta, CodecError> {
        let mut input = Decoder::new(payload, "raft meta");
        let vote = match input.u8()? {
            0 => None,
            1 => Some(WalVote {
                term: input.u64()?,
                node: input.u64()?,
                committed: flag(input.u8()?)?,
            }),
            _ => return Err(bad("unknown vote tag")),
        };
        let committed = get_log_id(&mut input)?;
        let purged = get_log_id(&mut input)?;
        input.finish()?;
        Ok(WalMeta {
            vote,
            committed,
            purged,
        })
    }

    /// Reads `dir/raft.meta`: the default (nothing voted, committed or purged) if it does not
    /// exist.
    pub fn read(dir: &Path) -> Result<WalMeta, JournalError> {
        let path = dir.join(RAFT_META_FILE);
        let Some(snapshot) = journal::read_snapshot(&path, RAFT_META_KIND)? else {
            return Ok(WalMeta::default());
        };
        WalMeta::decode(&snapshot.payload).map_err(|error| JournalError::SnapshotCorrupt {
            path,
            detail: error.to_string(),
        })
    }

    /// Replaces `dir/raft.meta` durably: written to a temporary file, synced, renamed over the
    /// old one and the directory synced, so a crash leaves the old state or the new one.
    pub fn write(&self, dir: &Path) -> Result<(), JournalError> {
        journal::write_snapshot(
            dir,
            RAFT_META_FILE,
            RAFT_META_KIND,
            RAFT_META_GENERATION,
            &self.encode(),
        )
    }
}

/// The later of two optional log ids, by index.
pub trait LaterByIndex {
    /// `self` or `other`, whichever has the higher index (a present one over an absent one).
    fn max_by_index(self, other: Self) -> Self;
}

impl LaterByIndex for Option<WalLogId> {
    fn max_by_index(self, other: Self) -> Self {
        match (self, other) {
            (Some(a), Some(b)) => Some(if b.index > a.index { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

/// Appends an optional log id: a tag byte (0 absent, 1 present), then term, leader, index.
pub fn put_log_id(out: &mut Encoder, id: Option<WalLogId>) {
    match id {
        Some(id) => out.u8(1).u64(id.term).u64(id.leader).u64(id.index),
        None => out.u8(0),
    };
}

/// Reads an optional log id written by [`put_log_id`].
pub fn get_log_id(input: &mut Decoder<'_>) -> Result<Option<WalLogId>, CodecError> {
    match input.u8()? {
        0 => Ok(None),
        1 => Ok(Some(WalLogId {
            term: input.u64()?,
            leader: input.u64()?,
            index: input.u64()?,
        })),
        _ => Err(bad("unknown log id tag")),
    }
}

fn flag(byte: u8) -> Result<bool, CodecError> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(bad("a flag is neither 0 nor 1")),
    }
}

fn bad(detail: &'static str) -> CodecError {
    CodecError {
        what: "raft meta",
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let meta = WalMeta {
            vote: Some(WalVote {
                term: 3,
                node: 2,
                committed: true,
            }),
            committed: Some(WalLogId {
                term: 3,
                leader: 2,
                index: 17,
            }),
            purged: None,
        };
        assert_eq!(WalMeta::decode(&meta.encode()), Ok(meta));
        assert_eq!(
            WalMeta::decode(&WalMeta::default().encode()),
            Ok(WalMeta::default())
        );
        let mut bytes = meta.encode();
        bytes.push(0);
        assert!(WalMeta::decode(&bytes).is_err());
        assert!(WalMeta::decode(&[2, 0, 0]).is_err());
        assert!(WalMeta::decode(&[0, 0]).is_err());
    }

    #[test]
    fn a_missing_file_is_the_default_and_a_written_one_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(WalMeta::read(dir.path()).unwrap(), WalMeta::default());
        let meta = WalMeta {
            vote: None,
            committed: None,
            purged: Some(WalLogId {
                term: 1,
                leader: 0,
                index: 5,
            }),
        };
        meta.write(dir.path()).unwrap();
        assert_eq!(WalMeta::read(dir.path()).unwrap(), meta);
    }
}
