//! Reading a journal file's frames from outside the engine, as a reader of storage-format.md
//! would: where its frames end, whatever zeros its writer preallocated after them.

// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

use std::path::Path;

/// Bytes of a journal's header, before its first frame (storage-format.md 6.1).
const HEADER_LEN: usize = 32;

/// Where the frames of an undamaged journal end (storage-format.md 6.1): each frame's first
/// four bytes are its length; zeros written ahead (group journals and Raft log files
/// preallocate them), or the end of the file, follow the last one.
pub fn frames_end_in(bytes: &[u8]) -> usize {
    let mut end = HEADER_LEN;
    while let Some(length) = bytes.get(end..end + 4) {
        let length = u32::from_le_bytes(length.try_into().expect("four bytes")) as usize;
        if length == 0 {
            break;
        }
        end += length;
    }
    end
}

/// [`frames_end_in`] of the journal file at `journal`.
pub fn frames_end(journal: &Path) -> u64 {
    let bytes = std::fs::read(journal).expect("read journal");
    frames_end_in(&bytes) as u64
}
