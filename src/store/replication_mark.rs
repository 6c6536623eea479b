//! The replication mark: which replicated command a store applied last, and at what time.
//!
//! A store that is the state machine of a replicated log records, atomically with the effects
//! of each batch of commands it applies (see [`Store::transaction_marked`]), the log index of
//! the batch's last command and the time that command was applied at. After a restart the
//! store knows which commands it already holds, and the clock the next command is applied with
//! continues from where the last one left it, the same on every replica.
//!
//! The file `DIR/replication.mark` is a slot file (`crate::fs::slot_file`) of magic `WRMK`
//! whose value is the little-endian `index` and `time_ms`: two slots of 32 bytes. A missing file,
//! or one with no valid slot, is a store that never applied a replicated command.
//!
//! Durability: the file is created durably (zeroed, synced, its directory synced);
//! [`MarkFile::write`] only writes; [`MarkFile::sync`] (fdatasync) makes the write durable.
//!
//! [`Store::transaction_marked`]: crate::Store::transaction_marked

use std::path::Path;

use crate::fs::slot_file::{SlotFile, word};

const MAGIC: [u8; 4] = *b"WRMK";
const VALUE_BYTES: usize = 16;

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
    slots: SlotFile,
    mark: Option<ReplicationMark>,
}

impl MarkFile {
    /// Opens (or creates) the mark file in `dir` and reads the mark it holds. The name must
    /// outlive a power loss: without the file, the store would look as if it never applied a
    /// command, and apply every one again.
    pub(crate) fn open(dir: &Path) -> std::io::Result<MarkFile> {
        let (slots, value) =
            SlotFile::open(dir, crate::names::REPLICATION_MARK_FILE, MAGIC, VALUE_BYTES)?;
        let mark = value.and_then(|value| {
            Some(ReplicationMark {
                index: word(&value, 0)?,
                time_ms: word(&value, 8)?,
            })
        });
        Ok(MarkFile { slots, mark })
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
                let mut value = [0; VALUE_BYTES];
                value[..8].copy_from_slice(&mark.index.to_le_bytes());
                value[8..].copy_from_slice(&mark.time_ms.to_le_bytes());
                self.slots.save(&value)?;
            }
            None => self.slots.clear()?,
        }
        self.mark = mark;
        Ok(())
    }

    /// Makes the last write durable.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        self.slots.sync()
    }
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
