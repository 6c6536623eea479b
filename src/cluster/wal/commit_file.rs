//! `raft.commit`: the commit point, saved at each commit with one positional write and one
//! `fdatasync`, where replacing `raft.meta` would create, sync and rename a file and sync the
//! directory. Recovery reads it as a lower bound of what the log must hold intact.
//!
//! A slot file (`crate::fs::slot_file`) of magic `RCMT` whose value is the committed entry's
//! little-endian `term`, `leader` and `index`: two slots of 40 bytes. A missing file, or one with
//! no valid slot, holds no commit point (an older log kept it in `raft.meta` only).

use std::path::Path;

use crate::fs::slot_file::{SlotFile, word};
use crate::names::RAFT_COMMIT_FILE;

use super::WalError;
use super::meta::WalLogId;

const MAGIC: [u8; 4] = *b"RCMT";
const VALUE_BYTES: usize = 24;

/// The open commit file.
#[derive(Debug)]
pub(super) struct CommitFile {
    slots: SlotFile,
    committed: Option<WalLogId>,
}

impl CommitFile {
    /// Opens the commit file in `dir`, creating it (zeroed, durably) if it is missing, and reads
    /// the commit point it holds.
    pub(super) fn open(dir: &Path) -> Result<CommitFile, WalError> {
        let (slots, value) =
            SlotFile::open(dir, RAFT_COMMIT_FILE, MAGIC, VALUE_BYTES).map_err(|source| {
                WalError::Io {
                    path: dir.join(RAFT_COMMIT_FILE),
                    source,
                }
            })?;
        let committed = value.and_then(|value| log_id(&value));
        Ok(CommitFile { slots, committed })
    }

    /// The commit point the file in `dir` holds, read without creating or writing anything.
    pub(super) fn read(dir: &Path) -> Result<Option<WalLogId>, WalError> {
        let value =
            SlotFile::read(dir, RAFT_COMMIT_FILE, MAGIC, VALUE_BYTES).map_err(|source| {
                WalError::Io {
                    path: dir.join(RAFT_COMMIT_FILE),
                    source,
                }
            })?;
        Ok(value.and_then(|value| log_id(&value)))
    }

    /// The commit point the file holds.
    pub(super) fn committed(&self) -> Option<WalLogId> {
        self.committed
    }

    /// Saves `committed` durably: written over the older slot, then `fdatasync`.
    pub(super) fn save(&mut self, committed: WalLogId, dir: &Path) -> Result<(), WalError> {
        let mut value = [0; VALUE_BYTES];
        for (at, word) in [committed.term, committed.leader, committed.index]
            .iter()
            .enumerate()
        {
            value[at * 8..at * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        self.slots
            .save(&value)
            .and_then(|()| self.slots.sync())
            .map_err(|source| WalError::Io {
                path: dir.join(RAFT_COMMIT_FILE),
                source,
            })?;
        self.committed = Some(committed);
        Ok(())
    }
}

/// The log id a slot's value holds: term, leader, index.
fn log_id(value: &[u8]) -> Option<WalLogId> {
    Some(WalLogId {
        term: word(value, 0)?,
        leader: word(value, 8)?,
        index: word(value, 16)?,
    })
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
        file.save(FIRST, dir.path()).unwrap();
        file.save(SECOND, dir.path()).unwrap();
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
        file.save(FIRST, dir.path()).unwrap();
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
        file.save(FIRST, dir.path()).unwrap();
        file.save(SECOND, dir.path()).unwrap();
        let path = dir.path().join(RAFT_COMMIT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        // The second save went to slot 0 (sequence 2): flip a byte of its index.
        bytes[33] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let mut reopened = CommitFile::open(dir.path()).unwrap();
        assert_eq!(reopened.committed(), Some(FIRST));
        reopened.save(SECOND, dir.path()).unwrap();
        assert_eq!(
            CommitFile::open(dir.path()).unwrap().committed(),
            Some(SECOND)
        );
    }
}
