//! The replication mark: which replicated command a store applied last, and at what time.
//!
//! A store that is the state machine of a replicated log records, atomically with the effects
//! of each batch of commands it applies (see [`Store::transaction_marked`]), the log index of
//! the batch's last command and the time that command was applied at. After a restart the
//! store knows which commands it already holds, and the clock the next command is applied with
//! continues from where the last one left it, the same on every replica.
//!
//! The file `DIR/replication.mark` holds two slots of 32 bytes; each write goes to the slot
//! that does not hold the newest mark, so a torn write leaves the other slot whole. A slot is
//! `b"WRMK"`, the CRC-32 (IEEE) of the 24 bytes that follow, then little-endian `sequence`,
//! `index` and `time_ms`; the valid slot with the highest sequence is the mark. A missing file,
//! or one with no valid slot, is a store that never applied a replicated command.
//!
//! Durability: the file's name is made durable (directory fsync) when it is created;
//! [`MarkFile::write`] only writes; [`MarkFile::sync`] (fdatasync) makes the write durable.
//!
//! [`Store::transaction_marked`]: crate::Store::transaction_marked

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::fs;

const SLOT_MAGIC: [u8; 4] = *b"WRMK";
const SLOT_BYTES: usize = 32;

/// The position of the last replicated command a store applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationMark {
    /// The command's index in the replicated log.
    pub index: u64,
    /// The time the command was applied at, in milliseconds since the Unix epoch.
    pub time_ms: u64,
}

/// The open mark file.
#[derive(Debug)]
pub(crate) struct MarkFile {
    file: File,
    path: PathBuf,
    /// The sequence number of the newest slot; 0 when neither slot is valid.
    sequence: u64,
    mark: Option<ReplicationMark>,
}

impl MarkFile {
    /// Opens (or creates) the mark file in `dir` and reads the mark it holds.
    pub(crate) fn open(dir: &Path) -> std::io::Result<MarkFile> {
        let path = dir.join(crate::names::REPLICATION_MARK_FILE);
        let created = !path.exists();
        let file = fs::open_or_create(&path)?;
        if created {
            // The name must outlive a power loss: without the file, the store would look as if
            // it never applied a command, and apply every one again.
            fs::sync_dir(dir)?;
        }
        let bytes = std::fs::read(&path)?;
        let newest = bytes
            .chunks_exact(SLOT_BYTES)
            .take(2)
            .filter_map(decode_slot)
            .max_by_key(|(sequence, _)| *sequence);
        Ok(MarkFile {
            file,
            path,
            sequence: newest.map_or(0, |(sequence, _)| sequence),
            mark: newest.map(|(_, mark)| mark),
        })
    }

    /// The mark the file holds now.
    pub(crate) fn mark(&self) -> Option<ReplicationMark> {
        self.mark
    }

    /// Writes `mark` over the older slot; `None` (rolling back to a store that never applied a
    /// command) writes an invalid slot over both.
    pub(crate) fn write(&mut self, mark: Option<ReplicationMark>) -> std::io::Result<()> {
        match mark {
            Some(mark) => {
                let sequence = self.sequence + 1;
                let slot = (sequence % 2) as usize * SLOT_BYTES;
                fs::write_all_at(
                    &self.file,
                    &self.path,
                    &encode_slot(sequence, mark),
                    slot as u64,
                )?;
                self.sequence = sequence;
            }
            None => {
                fs::write_all_at(&self.file, &self.path, &[0; 2 * SLOT_BYTES], 0)?;
                self.sequence = 0;
            }
        }
        self.mark = mark;
        Ok(())
    }

    /// Makes the last write durable.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        fs::sync_data(&self.file, &self.path)
    }
}

fn encode_slot(sequence: u64, mark: ReplicationMark) -> [u8; SLOT_BYTES] {
    let mut slot = [0; SLOT_BYTES];
    slot[..4].copy_from_slice(&SLOT_MAGIC);
    slot[8..16].copy_from_slice(&sequence.to_le_bytes());
    slot[16..24].copy_from_slice(&mark.index.to_le_bytes());
    slot[24..32].copy_from_slice(&mark.time_ms.to_le_bytes());
    let crc = crc32fast::hash(&slot[8..]);
    slot[4..8].copy_from_slice(&crc.to_le_bytes());
    slot
}

fn decode_slot(slot: &[u8]) -> Option<(u64, ReplicationMark)> {
    let word = |at: usize| u64::from_le_bytes(slot[at..at + 8].try_into().unwrap_or([0; 8]));
    let crc = u32::from_le_bytes(slot[4..8].try_into().ok()?);
    if slot[..4] != SLOT_MAGIC || crc != crc32fast::hash(&slot[8..SLOT_BYTES]) {
        return None;
    }
    let mark = ReplicationMark {
        index: word(16),
        time_ms: word(24),
    };
    Some((word(8), mark))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: ReplicationMark = ReplicationMark {
        index: 7,
        time_ms: 1_000,
    };
    const SECOND: ReplicationMark = ReplicationMark {
        index: 9,
        time_ms: 1_005,
    };

    #[test]
    fn a_new_file_holds_no_mark_and_the_newest_write_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = MarkFile::open(dir.path()).unwrap();
        assert_eq!(file.mark(), None);
        file.write(Some(FIRST)).unwrap();
        file.write(Some(SECOND)).unwrap();
        assert_eq!(MarkFile::open(dir.path()).unwrap().mark(), Some(SECOND));
        file.write(None).unwrap();
        assert_eq!(MarkFile::open(dir.path()).unwrap().mark(), None);
    }

    #[test]
    fn the_first_mark_matches_the_documented_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = MarkFile::open(dir.path()).unwrap();
        file.write(Some(FIRST)).unwrap();
        let bytes = std::fs::read(dir.path().join(crate::names::REPLICATION_MARK_FILE)).unwrap();
        let mut expected = vec![0; 32];
        expected.extend_from_slice(b"WRMK");
        expected.extend_from_slice(&[0x3b, 0x73, 0xc0, 0xbe]);
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(&7u64.to_le_bytes());
        expected.extend_from_slice(&1000u64.to_le_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn a_torn_slot_leaves_the_previous_mark() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = MarkFile::open(dir.path()).unwrap();
        file.write(Some(FIRST)).unwrap();
        file.write(Some(SECOND)).unwrap();
        let path = dir.path().join(crate::names::REPLICATION_MARK_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        // The second write went to slot 0 (sequence 2): flip a byte of its index.
        bytes[17] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let reopened = MarkFile::open(dir.path()).unwrap();
        assert_eq!(reopened.mark(), Some(FIRST));
        let mut reopened = reopened;
        reopened.write(Some(SECOND)).unwrap();
        assert_eq!(MarkFile::open(dir.path()).unwrap().mark(), Some(SECOND));
    }
}
