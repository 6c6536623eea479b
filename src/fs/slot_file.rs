//! A small file of two fixed-size slots that one value is saved in, each save written whole
//! over the slot that does not hold the newest value, so that a torn save leaves the other slot,
//! and with it the previous value, whole. The replication mark (storage-format.md 13.6) and the
//! Raft log's commit point (14.3) are saved this way.
//!
//! A slot is a 4-byte magic, the CRC-32 (IEEE) of the rest of the slot, a little-endian `u64`
//! sequence (1 for the first save, one more for each), then the value's bytes; a save goes to
//! slot `sequence mod 2`. The valid slot (magic and CRC matching) with the highest sequence holds
//! the value; with none, the file holds no value.
//!
//! Durability: the file is created with zeroed slots, synced, and its directory synced, so a save
//! never changes its size or its name: [`SlotFile::save`] only writes, and [`SlotFile::sync`]
//! (`fdatasync`) makes the save durable.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Bytes of a slot before its value: magic, CRC, sequence.
pub(crate) const SLOT_HEADER: usize = 16;

/// An open slot file.
#[derive(Debug)]
pub(crate) struct SlotFile {
    file: File,
    path: PathBuf,
    magic: [u8; 4],
    value_len: usize,
    /// The sequence number of the newest valid slot; 0 when neither is valid.
    sequence: u64,
}

impl SlotFile {
    /// Opens `dir/name`, creating it (zeroed, durably) if it is missing, for values of
    /// `value_len` bytes; answers the value it holds.
    pub(crate) fn open(
        dir: &Path,
        name: &str,
        magic: [u8; 4],
        value_len: usize,
    ) -> io::Result<(SlotFile, Option<Vec<u8>>)> {
        let path = dir.join(name);
        let slot_len = SLOT_HEADER + value_len;
        if !path.exists() {
            let file = super::open_or_create(&path)?;
            super::write_all_at(&file, &path, &vec![0; 2 * slot_len], 0)?;
            super::sync_data(&file, &path)?;
            super::sync_dir(dir)?;
        }
        let file = super::open_or_create(&path)?;
        let newest = newest_slot(&std::fs::read(&path)?, magic, slot_len);
        let slots = SlotFile {
            file,
            path,
            magic,
            value_len,
            sequence: newest.as_ref().map_or(0, |(sequence, _)| *sequence),
        };
        Ok((slots, newest.map(|(_, value)| value)))
    }

    /// The value `dir/name` holds, without creating or writing anything (for a reader beside a
    /// live writer): `None` when the file is missing or holds no valid slot. Only the Raft log's
    /// inspection reads a slot file this way.
    #[cfg(feature = "cluster")]
    pub(crate) fn read(
        dir: &Path,
        name: &str,
        magic: [u8; 4],
        value_len: usize,
    ) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(dir.join(name)) {
            Ok(bytes) => {
                Ok(newest_slot(&bytes, magic, SLOT_HEADER + value_len).map(|(_, value)| value))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Writes `value` (of the file's value length) over the older slot.
    pub(crate) fn save(&mut self, value: &[u8]) -> io::Result<()> {
        assert_eq!(
            value.len(),
            self.value_len,
            "a slot value of the wrong length"
        );
        let sequence = self.sequence + 1;
        let slot_len = SLOT_HEADER + self.value_len;
        let mut slot = Vec::with_capacity(slot_len);
        slot.extend_from_slice(&self.magic);
        slot.extend_from_slice(&[0; 4]);
        slot.extend_from_slice(&sequence.to_le_bytes());
        slot.extend_from_slice(value);
        let crc = crc32fast::hash(&slot[8..]);
        slot[4..8].copy_from_slice(&crc.to_le_bytes());
        let at = (sequence % 2) * slot_len as u64;
        super::write_all_at(&self.file, &self.path, &slot, at)?;
        self.sequence = sequence;
        Ok(())
    }

    /// Zeroes both slots: the file then holds no value.
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        let zeros = vec![0; 2 * (SLOT_HEADER + self.value_len)];
        super::write_all_at(&self.file, &self.path, &zeros, 0)?;
        self.sequence = 0;
        Ok(())
    }

    /// Makes the last save durable.
    pub(crate) fn sync(&self) -> io::Result<()> {
        super::sync_data(&self.file, &self.path)
    }
}

/// The sequence and value of the newest valid slot of a file's bytes.
fn newest_slot(bytes: &[u8], magic: [u8; 4], slot_len: usize) -> Option<(u64, Vec<u8>)> {
    bytes
        .chunks_exact(slot_len)
        .take(2)
        .filter_map(|slot| decode(slot, magic))
        .max_by_key(|(sequence, _)| *sequence)
        .map(|(sequence, value)| (sequence, value.to_vec()))
}

/// The slot's sequence and value, if it is valid.
fn decode(slot: &[u8], magic: [u8; 4]) -> Option<(u64, &[u8])> {
    let crc = u32::from_le_bytes(slot.get(4..8)?.try_into().ok()?);
    if slot.get(..4)? != magic || crc != crc32fast::hash(slot.get(8..)?) {
        return None;
    }
    let sequence = u64::from_le_bytes(slot.get(8..16)?.try_into().ok()?);
    Some((sequence, slot.get(SLOT_HEADER..)?))
}

/// The little-endian `u64` at `at` in `value`.
pub(crate) fn word(value: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(value.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_holds_nothing_and_keeps_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let (mut file, value) = SlotFile::open(dir.path(), "x", *b"TEST", 8).unwrap();
        assert_eq!(value, None);
        assert_eq!(std::fs::metadata(dir.path().join("x")).unwrap().len(), 48);
        file.save(&7u64.to_le_bytes()).unwrap();
        file.save(&9u64.to_le_bytes()).unwrap();
        assert_eq!(std::fs::metadata(dir.path().join("x")).unwrap().len(), 48);
        let (_, value) = SlotFile::open(dir.path(), "x", *b"TEST", 8).unwrap();
        assert_eq!(value, Some(9u64.to_le_bytes().to_vec()));
        let (_, other) = SlotFile::open(dir.path(), "x", *b"ELSE", 8).unwrap();
        assert_eq!(other, None, "another magic is another file's slots");
    }
}
