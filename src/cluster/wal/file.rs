//! One Raft log file: a journal container (storage-format.md 6.1) of kind `RLOG` whose frames
//! are entries with consecutive indexes, and where each of them starts, so that an entry is read
//! back from the disk when asked for rather than kept in memory.

use std::fs::File;
use std::path::PathBuf;

use crate::codec::{CodecError, Decoder, put_u64_at};
use crate::journal::{self, FRAME_HEADER_LEN, FileKind};

use super::meta::WalLogId;
use super::{WalEntry, WalError};

/// The kind of a Raft log file.
pub const RAFT_LOG_KIND: FileKind = FileKind(*b"RLOG");
/// Bytes of an entry's frame payload before its data: index, term, leader.
pub const ENTRY_HEADER_LEN: usize = 24;

/// Where one entry of a file sits, and the position it holds in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    pub term: u64,
    pub leader: u64,
    /// Byte offset of the entry's frame in the file.
    pub position: u64,
}

/// A Raft log file as the log knows it: its name, a handle to read it, and its entries.
#[derive(Debug)]
pub(super) struct LogFile {
    /// The index of the file's first entry, which its name and header generation carry.
    pub first_index: u64,
    pub path: PathBuf,
    pub reader: File,
    pub slots: Vec<Slot>,
}

impl LogFile {
    /// The index the next entry appended to this file would have.
    pub fn next_index(&self) -> u64 {
        self.first_index + self.slots.len() as u64
    }

    /// The position in the log of the entry at `index`, which the file holds.
    pub fn log_id(&self, index: u64) -> WalLogId {
        let slot = self.slots[self.slot_of(index)];
        WalLogId {
            term: slot.term,
            leader: slot.leader,
            index,
        }
    }

    /// The last entry's position, if the file holds any entry.
    pub fn last_log_id(&self) -> Option<WalLogId> {
        if self.slots.is_empty() {
            None
        } else {
            Some(self.log_id(self.next_index() - 1))
        }
    }

    /// Reads the entry at `index`, which the file holds, back from the disk.
    pub fn read(&self, index: u64) -> Result<WalEntry, WalError> {
        let number = self.slot_of(index);
        let slot = self.slots[number];
        let payload =
            journal::read_frame_at(&self.reader, &self.path, slot.position, number as u64)?;
        let entry = decode_entry(&payload).map_err(|error| self.bad_entry(index, &error))?;
        let expected = self.log_id(index);
        if entry.id != expected {
            return Err(WalError::BadEntry {
                path: self.path.clone(),
                index,
                detail: format!(
                    "the frame holds {:?}, {expected:?} was written there",
                    entry.id
                ),
            });
        }
        Ok(entry)
    }

    fn slot_of(&self, index: u64) -> usize {
        debug_assert!(
            index >= self.first_index && index < self.next_index(),
            "{}: index {index} is not in the file",
            self.path.display()
        );
        (index - self.first_index) as usize
    }

    pub fn bad_entry(&self, index: u64, error: &CodecError) -> WalError {
        WalError::BadEntry {
            path: self.path.clone(),
            index,
            detail: error.to_string(),
        }
    }
}

/// Bytes of an entry's frame, its header included.
pub(super) fn frame_len(entry: &WalEntry) -> u64 {
    (FRAME_HEADER_LEN + ENTRY_HEADER_LEN + entry.data.len()) as u64
}

/// Appends an entry's frame payload to `out`: index, term, leader, then the data.
pub fn encode_entry(entry: &WalEntry, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + ENTRY_HEADER_LEN, 0);
    put_u64_at(out, start, entry.id.index);
    put_u64_at(out, start + 8, entry.id.term);
    put_u64_at(out, start + 16, entry.id.leader);
    out.extend_from_slice(&entry.data);
}

/// Decodes an entry's frame payload.
pub fn decode_entry(payload: &[u8]) -> Result<WalEntry, CodecError> {
    let mut input = Decoder::new(payload, "raft log entry");
    let index = input.u64()?;
    let term = input.u64()?;
    let leader = input.u64()?;
    Ok(WalEntry {
        id: WalLogId {
            term,
            leader,
            index,
        },
        data: payload[ENTRY_HEADER_LEN..].to_vec(),
    })
}
