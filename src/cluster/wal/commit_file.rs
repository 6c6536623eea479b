//! `raft.commit`: the commit point, saved at each commit with one positional write and one
//! `fdatasync`, where replacing `raft.meta` would create, sync and rename a file and sync the
//! directory. Recovery reads it as a lower bound of what the log must hold intact.
//!
//! The file holds two slots of 40 bytes, created zeroed (and synced with its directory) so that a
//! save never changes its size; each save goes to the slot that does not hold the newest point, so
//! a torn write leaves the other slot whole. A slot is `b"RCMT"`, the CRC-32 (IEEE) of the 32
//! bytes that follow, then little-endian `sequence`, `term`, `leader` and `index`; the valid slot
//! with the highest sequence is the commit point. A missing file, or one with no valid slot, holds
//! none (an older log kept its commit point in `raft.meta` only).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::fs;
use crate::names::RAFT_COMMIT_FILE;

use super::WalError;
use super::meta::WalLogId;

const SLOT_MAGIC: [u8; 4] = *b"RCMT";
const SLOT_BYTES: usize = 40;

/// The open commit file.
#[derive(Debug)]
pub(super) struct CommitFile {
    file: File,
    path: PathBuf,
    /// The sequence number of the newest slot; 0 when neither slot is valid.
    sequence: u64,
    committed: Option<WalLogId>,
}

impl CommitFile {
    /// Opens the commit file in `dir`, creating it (zeroed, durably) if it is missing, and reads
    /// the commit point it holds.
    pub(super) fn open(dir: &Path) -> Result<CommitFile, WalError> {
        let path = dir.join(RAFT_COMMIT_FILE);
        let io = |source| WalError::Io {
            path: path.clone(),
            source,
        };
        if !path.exists() {
            let file = fs::open_or_create(&path).map_err(io)?;
            fs::write_all_at(&file, &path, &[0; 2 * SLOT_BYTES], 0).map_err(io)?;
            fs::sync_data(&file, &path).map_err(io)?;
            fs::sync_dir(dir).map_err(io)?;
        }
        let file = fs::open_or_create(&path).map_err(io)?;
        let bytes = std::fs::read(&path).map_err(io)?;
        let newest = bytes
            .chunks_exact(SLOT_BYTES)
            .take(2)
            .filter_map(decode_slot)
            .max_by_key(|(sequence, _)| *sequence);
        Ok(CommitFile {
            file,
            path,
            sequence: newest.map_or(0, |(sequence, _)| sequence),
            committed: newest.map(|(_, committed)| committed),
        })
    }

    /// The commit point the file holds.
    pub(super) fn committed(&self) -> Option<WalLogId> {
        self.committed
    }

    /// Saves `committed` durably: written over the older slot, then `fdatasync`.
    pub(super) fn save(&mut self, committed: WalLogId) -> Result<(), WalError> {
        let io = |source| WalError::Io {
            path: self.path.clone(),
            source,
        };
        let sequence = self.sequence + 1;
        let at = (sequence % 2) * SLOT_BYTES as u64;
        let slot = encode_slot(sequence, committed);
        fs::write_all_at(&self.file, &self.path, &slot, at).map_err(io)?;
        fs::sync_data(&self.file, &self.path).map_err(io)?;
        self.sequence = sequence;
        self.committed = Some(committed);
        Ok(())
    }
}

fn encode_slot(sequence: u64, committed: WalLogId) -> [u8; SLOT_BYTES] {
    let mut slot = [0; SLOT_BYTES];
    slot[..4].copy_from_slice(&SLOT_MAGIC);
    let words = [sequence, committed.term, committed.leader, committed.index];
    for (at, word) in words.iter().enumerate() {
        slot[8 + at * 8..16 + at * 8].copy_from_slice(&word.to_le_bytes());
    }
    let crc = crc32fast::hash(&slot[8..]);
    slot[4..8].copy_from_slice(&crc.to_le_bytes());
    slot
}

fn decode_slot(slot: &[u8]) -> Option<(u64, WalLogId)> {
    let word = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(slot.get(at..at + 8)?.try_into().ok()?))
    };
    let crc = u32::from_le_bytes(slot.get(4..8)?.try_into().ok()?);
    if slot.get(..4)? != SLOT_MAGIC || crc != crc32fast::hash(slot.get(8..SLOT_BYTES)?) {
        return None;
    }
    let committed = WalLogId {
        term: word(16)?,
        leader: word(24)?,
        index: word(32)?,
    };
    Some((word(8)?, committed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: WalLogId = WalLogId {
        term: 2,
        leader: 1,
        index: 7,
    };
    const SECOND: WalLogId = WalLogId {
        term: 3,
        leader: 2,
        index: 9,
    };

    #[test]
    fn a_new_file_holds_no_point_and_the_newest_save_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = CommitFile::open(dir.path()).unwrap();
        assert_eq!(file.committed(), None);
        assert_eq!(
            std::fs::metadata(dir.path().join(RAFT_COMMIT_FILE))
                .unwrap()
                .len(),
            80
        );
        file.save(FIRST).unwrap();
        file.save(SECOND).unwrap();
        assert_eq!(
            CommitFile::open(dir.path()).unwrap().committed(),
            Some(SECOND)
        );
        assert_eq!(
            std::fs::metadata(dir.path().join(RAFT_COMMIT_FILE))
                .unwrap()
                .len(),
            80
        );
    }

    #[test]
    fn the_first_save_matches_the_documented_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = CommitFile::open(dir.path()).unwrap();
        file.save(FIRST).unwrap();
        let bytes = std::fs::read(dir.path().join(RAFT_COMMIT_FILE)).unwrap();
        let mut slot = b"RCMT".to_vec();
        let fields: Vec<u8> = [1u64, 2, 1, 7]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        slot.extend_from_slice(&crc32fast::hash(&fields).to_le_bytes());
        slot.extend_from_slice(&fields);
        let mut expected = vec![0; 40];
        expected.extend_from_slice(&slot);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn a_torn_slot_leaves_the_previous_point() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = CommitFile::open(dir.path()).unwrap();
        file.save(FIRST).unwrap();
        file.save(SECOND).unwrap();
        let path = dir.path().join(RAFT_COMMIT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        // The second save went to slot 0 (sequence 2): flip a byte of its index.
        bytes[33] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let mut reopened = CommitFile::open(dir.path()).unwrap();
        assert_eq!(reopened.committed(), Some(FIRST));
        reopened.save(SECOND).unwrap();
        assert_eq!(
            CommitFile::open(dir.path()).unwrap().committed(),
            Some(SECOND)
        );
    }
}
