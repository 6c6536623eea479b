//! Journals and snapshots: the small durable files that sit beside a stream's segments.
//!
//! A journal is an append-only file of checksummed frames, each holding an opaque payload. A
//! stream's metadata journal (deletions, trims, configuration changes) and a consumer group's
//! journal (deliveries, acks, claims) are journals; this module never looks inside a payload.
//! From time to time the owner of a journal compacts the state it describes into a snapshot, a
//! file replaced atomically as a whole, and starts a new journal with a higher generation.
//!
//! Journal layout (every integer little-endian):
//!
//! ```text
//! header, 32 bytes
//! 0   [u8; 8] magic       "WEIRJRNL"
//! 8   u16 version         1
//! 10  u16 reserved        zero
//! 12  [u8; 4] kind        what the journal is for (FileKind): one kind is never read as another
//! 16  u64 generation      chosen by the owner, typically raised at each compaction
//! 24  u32 reserved        zero
//! 28  u32 crc             CRC-32 of bytes 0..28
//!
//! frames, back to back from byte 32, numbered from 0
//! 0   u32 length          bytes of the frame, this field included: 8 + payload length, so >= 8
//! 4   u32 crc             CRC-32 of bytes 0..4, then the frame's number as a u64, then the payload
//! 8   payload             at most MAX_PAYLOAD bytes
//!
//! then, in a preallocating journal, zeros up to the end of the file
//! ```
//!
//! No frame has a zero length, so a frame's header is never all zeros and zeroed space is never
//! read as a frame. The frame's number is covered by the CRC but not stored: a frame that is
//! valid on its own but sits at the wrong place fails its check. Replay ends cleanly where the
//! file ends, or where every byte from there to the end of the file is zero: space a
//! [preallocating](Journal::preallocate_ahead) journal wrote as zeros ahead of its frames. It
//! stops at the first frame that is zeroed but followed by a non-zero byte, cut short, of
//! impossible length or fails its CRC; everything from there to the end of the file is reported
//! as [`JournalDamage`] and, when the journal is opened for writing, cut off so that new frames
//! follow the last good one.
//!
//! Snapshot layout:
//!
//! ```text
//! 0   [u8; 8] magic       "WEIRSNAP"
//! 8   u16 version         1
//! 10  u16 reserved        zero
//! 12  [u8; 4] kind
//! 16  u64 generation
//! 24  u64 length          payload bytes: the file is exactly 36 + length bytes
//! 32  payload
//! ..  u32 crc             CRC-32 of everything before it
//! ```
//!
//! CRC-32 is ISO-HDLC, as computed by crc32fast.
//!
//! Both kinds of file only ever appear under their final name complete: a journal is created as
//! `<path>.tmp`, given its header, synced and then hard-linked to `<path>`; a snapshot is written
//! to `<dir>/<name>.tmp`, synced and renamed over `<dir>/<name>`. The parent directory is synced
//! afterwards so the new name survives a power loss.

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::codec::{put_u32_at, put_u64_at, u16_at, u32_at, u64_at};
use crate::fs::{self, parent_dir};
use crate::names::{TMP_SUFFIX, tmp_path};

mod events;

pub(crate) use events::JournalEvents;

/// The largest payload a journal frame may carry. It bounds what replay allocates for a frame,
/// whatever length a damaged file claims.
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
/// Bytes of a journal's header: the first frame starts here.
pub const HEADER_LEN: usize = 32;
/// Bytes of a frame before its payload.
pub const FRAME_HEADER_LEN: usize = 8;
/// The journal format this build writes and reads.
pub const JOURNAL_VERSION: u16 = 1;
/// The snapshot format this build writes and reads.
pub const SNAPSHOT_VERSION: u16 = 1;

const JOURNAL_MAGIC: [u8; 8] = *b"WEIRJRNL";
const SNAPSHOT_MAGIC: [u8; 8] = *b"WEIRSNAP";
const CRC_LEN: usize = 4;
/// A frame buffer that grew past this is released after use instead of being kept.
const KEPT_BUFFER: usize = 64 * 1024;
/// A preallocating journal's first chunk of zeros: a journal that sees few frames keeps to it.
const FIRST_CHUNK: u64 = 64 * 1024;
/// The most a preallocating journal grows by at once. Chunks double up to it, so a busy consumer
/// group's journal (compacted at 8 MiB) grows about eight times per generation.
const LARGEST_CHUNK: u64 = 4 * 1024 * 1024;
/// Zeros written by a preallocating journal, in writes of this size.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

const MAGIC_AT: usize = 0;
const VERSION_AT: usize = 8;
const RESERVED16_AT: usize = 10;
const KIND_AT: usize = 12;
const GENERATION_AT: usize = 16;
const RESERVED32_AT: usize = 24;
const HEADER_CRC_AT: usize = 28;
const PAYLOAD_LEN_AT: usize = 24;

// The header layout of storage-format.md 6.1 and 6.2, each field after the one before it.
const _: () = assert!(MAGIC_AT + JOURNAL_MAGIC.len() == VERSION_AT);
const _: () = assert!(VERSION_AT + 2 == RESERVED16_AT && RESERVED16_AT + 2 == KIND_AT);
const _: () = assert!(KIND_AT + 4 == GENERATION_AT && GENERATION_AT + 8 == RESERVED32_AT);
const _: () = assert!(RESERVED32_AT + 4 == HEADER_CRC_AT && HEADER_CRC_AT + CRC_LEN == HEADER_LEN);
const _: () = assert!(PAYLOAD_LEN_AT + 8 == HEADER_LEN);
// A frame's length field (a u32) holds its header and largest payload.
const _: () = assert!(FRAME_HEADER_LEN + MAX_PAYLOAD <= u32::MAX as usize);
// A frame's length counts its header, so the length field, and with it the frame's header, is
// never all zeros: zeros where a frame would start are never a frame, which lets a zero tail mark
// the end of a preallocated journal.
const _: () = assert!(FRAME_HEADER_LEN > 0);

/// A four-byte tag in every file's header saying what the file is for, so that, say, a consumer
/// group journal is never replayed as a stream's metadata journal.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKind(pub [u8; 4]);

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.iter().all(u8::is_ascii_graphic) {
            self.0
                .iter()
                .try_for_each(|&b| write!(f, "{}", char::from(b)))
        } else {
            f.write_str("0x")?;
            self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
        }
    }
}

impl fmt::Debug for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileKind({self})")
    }
}

/// Why a journal or snapshot operation failed. Every variant names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The operating system refused an operation.
    #[error("I/O error on {}: {source}; check the disk, free space and permissions", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// [`Journal::create`] found a file already there.
    #[error("{} already exists: open it instead, or remove it if it is a leftover", .path.display())]
    AlreadyExists { path: PathBuf },
    /// The journal's header is missing or damaged, so nothing in the file can be trusted.
    #[error(
        "{} is not a readable weir journal ({detail}): restore it from a backup, \
         or remove it to start that journal over",
        .path.display()
    )]
    BadHeader { path: PathBuf, detail: String },
    /// The file was written in a format version this build does not know.
    #[error(
        "{} uses format version {found}, this build reads version {supported}: \
         open it with a newer version of weir",
        .path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u16,
        supported: u16,
    },
    /// The file is valid but belongs to another kind of journal or snapshot.
    #[error(
        "{} holds a `{found}` file where a `{expected}` file was expected: \
         check that the right file is being opened",
        .path.display()
    )]
    WrongKind {
        path: PathBuf,
        expected: FileKind,
        found: FileKind,
    },
    /// A payload is larger than [`MAX_PAYLOAD`].
    #[error(
        "a frame of {len} bytes for {} exceeds the {max}-byte limit: split it into smaller frames",
        .path.display()
    )]
    TooLarge {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    /// An earlier fdatasync failed. The kernel may have dropped the unwritten pages and cleared
    /// the error, so a retry could report success for data that is gone: the journal refuses
    /// every further write and sync.
    #[error(
        "{} accepts no more writes after an fsync failure, frames appended since the last \
         successful sync may not be on disk: write the current state to a new snapshot and \
         journal, or restart and recover from what the disk holds",
        .path.display()
    )]
    Poisoned { path: PathBuf },
    /// A frame read again at a position an earlier replay found no longer checks.
    #[error(
        "{} is damaged at byte {position} ({reason}): the file changed on disk since it was \
         opened; check the disk, then restart to recover from what it holds",
        .path.display()
    )]
    FrameDamaged {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// The snapshot exists but is damaged.
    #[error(
        "snapshot {} is damaged ({detail}): restore it from a backup, or remove it to rebuild \
         the state from the journals if they still hold it",
        .path.display()
    )]
    SnapshotCorrupt { path: PathBuf, detail: String },
    /// A snapshot name that is not a plain file name, or that ends in `.tmp` (reserved for the
    /// temporary file a snapshot is written to).
    #[error(
        "snapshot name {name:?} in {} must be a plain file name not ending in `.tmp`",
        .dir.display()
    )]
    BadSnapshotName { dir: PathBuf, name: String },
}

/// What was cut from the end of a journal because it could not be read as frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalDamage {
    /// The journal.
    pub path: PathBuf,
    /// Byte offset of the first bad frame, which is also where the good frames end.
    pub position: u64,
    /// Bytes from `position` to the end of the file.
    pub dropped_bytes: u64,
    /// What was wrong with the frame at `position`.
    pub reason: String,
}

impl fmt::Display for JournalDamage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: dropped {} bytes from byte {}: {}",
            self.path.display(),
            self.dropped_bytes,
            self.position,
            self.reason
        )
    }
}

/// The content of a journal as read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The generation written in the header.
    pub generation: u64,
    /// Every good frame's payload, in order.
    pub frames: Vec<Vec<u8>>,
    /// What followed the last good frame, if anything but zeros did.
    pub damage: Option<JournalDamage>,
}

/// A snapshot as read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The generation written in the header.
    pub generation: u64,
    /// The payload, checked against the CRC.
    pub payload: Vec<u8>,
}

/// What the journal's owner and its sync handles share.
#[derive(Debug)]
struct Shared {
    path: PathBuf,
    file: File,
    poisoned: AtomicBool,
    /// Writes to the file so far, failed ones included; bumped after each write returns.
    writes: AtomicU64,
    /// The `writes` count the last successful fdatasync covered. A sync with nothing new skips
    /// the fdatasync: on most file systems even an unchanged file's fdatasync flushes the
    /// device's cache, which costs as much as a real one, and a flush round syncs several
    /// journals that are usually unchanged.
    synced: AtomicU64,
}

impl Shared {
    fn check_usable(&self) -> Result<(), JournalError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(JournalError::Poisoned {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), JournalError> {
        self.check_usable()?;
        let writes = self.writes.load(Ordering::Acquire);
        if self.synced.load(Ordering::Acquire) >= writes {
            return Ok(());
        }
        fs::sync_data(&self.file, &self.path).map_err(|source| {
            self.poisoned.store(true, Ordering::Release);
            io_error(&self.path)(source)
        })?;
        self.synced.fetch_max(writes, Ordering::AcqRel);
        Ok(())
    }
}

/// An append-only journal open for writing.
///
/// Appends are plain writes: they reach the disk only at the next [`sync`](Journal::sync), or
/// at a sync through a [`JournalSync`] handle that another thread may run while appends go on.
/// Every frame appended before a sync call starts is durable once it returns `Ok`.
///
/// Nothing stops two processes from opening the same journal: the caller must hold a lock on
/// the directory.
#[derive(Debug)]
pub struct Journal {
    shared: Arc<Shared>,
    generation: u64,
    /// Where the next frame is written.
    len: u64,
    /// Bytes the file holds as far as this handle knows: from `len` up to here it holds zeros.
    allocated: u64,
    /// Whether the file grows in chunks of written zeros ahead of the frames.
    preallocate: bool,
    frame_count: u64,
    buf: Vec<u8>,
}

impl Journal {
    /// Creates a new, empty journal; fails with [`JournalError::AlreadyExists`] if `path` exists.
    ///
    /// The header is written to `<path>.tmp` and synced, then the file is hard-linked to `path`
    /// and the directory synced, so `path` never names a file without a complete header (the
    /// file system must support hard links). If the final directory sync fails, `path` may
    /// still exist: it is a valid empty journal.
    pub fn create(path: &Path, kind: FileKind, generation: u64) -> Result<Journal, JournalError> {
        let tmp = tmp_path(path);
        let file = fresh_file(&tmp)?;
        discard_on_error(&tmp, write_header(&tmp, &file, kind, generation))?;
        if let Err(source) = fs::hard_link(&tmp, path) {
            discard(&tmp);
            return Err(if source.kind() == io::ErrorKind::AlreadyExists {
                JournalError::AlreadyExists {
                    path: path.to_path_buf(),
                }
            } else {
                io_error(path)(source)
            });
        }
        // The journal is complete under its name: a second name left behind would only keep
        // its space allocated after the journal is deleted, and `open` removes it.
        discard(&tmp);
        sync_dir(parent_dir(path))?;
        let len = HEADER_LEN as u64;
        Ok(Journal::new(path, file, generation, (len, len), 0))
    }

    /// Opens an existing journal for appending and returns what it holds.
    ///
    /// A missing or damaged header is an error. Frames are read up to the first bad one; if
    /// anything but zeros follows the last good frame, the file is truncated there (and synced)
    /// so new frames follow it, and what was cut is reported in [`Replay::damage`]. A tail of
    /// zeros (preallocated space) is left in place for the next frames. A `<path>.tmp` left by
    /// an interrupted [`create`](Journal::create) is removed.
    pub fn open(path: &Path, kind: FileKind) -> Result<(Journal, Replay), JournalError> {
        let file = fs::open_existing(path, true).map_err(io_error(path))?;
        let file_len = file.metadata().map_err(io_error(path))?.len();
        let (replay, end) = scan(path, BufReader::new(&file), file_len, kind)?;
        remove_leftover(&tmp_path(path))?;
        let allocated = if replay.damage.is_some() {
            fs::set_len(&file, path, end).map_err(io_error(path))?;
            fs::sync_data(&file, path).map_err(io_error(path))?;
            end
        } else {
            file_len
        };
        let frame_count = replay.frames.len() as u64;
        let journal = Journal::new(path, file, replay.generation, (end, allocated), frame_count);
        Ok((journal, replay))
    }

    /// [`open`](Self::open), after rebuilding a damaged header: one whose checksum fails, or a
    /// file shorter than a header. The header only names what the owner knows anyway (the
    /// kind, and the generation its file name carries), and every frame has its own checksum,
    /// so a new header with `kind` and `generation` loses nothing intact. Returns, besides,
    /// what was wrong with the header it rebuilt. A header whose checksum holds but that does
    /// not match (another kind or version) is left alone: `open` reports it.
    pub fn open_repairing(
        path: &Path,
        kind: FileKind,
        generation: u64,
    ) -> Result<(Journal, Replay, Option<String>), JournalError> {
        let rebuilt = rebuild_damaged_header(path, kind, generation)?;
        let (journal, replay) = Journal::open(path, kind)?;
        Ok((journal, replay, rebuilt))
    }

    /// Reads a journal without writing anything, so it can run beside a live writer. A frame
    /// being appended at that moment may be reported as damage.
    pub fn read(path: &Path, kind: FileKind) -> Result<Replay, JournalError> {
        let file = File::open(path).map_err(io_error(path))?;
        let file_len = file.metadata().map_err(io_error(path))?.len();
        scan(path, BufReader::new(file), file_len, kind).map(|(replay, _)| replay)
    }

    /// Reads a journal from the bytes of its file; `path` only labels errors and damage.
    #[cfg(any(test, feature = "internals"))]
    pub fn decode(path: &Path, bytes: &[u8], kind: FileKind) -> Result<Replay, JournalError> {
        scan(path, bytes, bytes.len() as u64, kind).map(|(replay, _)| replay)
    }

    /// `len` is where the next frame goes, `allocated` the file's length.
    fn new(
        path: &Path,
        file: File,
        generation: u64,
        (len, allocated): (u64, u64),
        frame_count: u64,
    ) -> Journal {
        debug_assert!(len <= allocated, "{}: frames past the file", path.display());
        Journal {
            shared: Arc::new(Shared {
                path: path.to_path_buf(),
                file,
                poisoned: AtomicBool::new(false),
                // What an earlier process wrote may not be on disk yet: the first sync syncs.
                writes: AtomicU64::new(1),
                synced: AtomicU64::new(0),
            }),
            generation,
            len,
            allocated,
            preallocate: false,
            frame_count,
            buf: Vec::new(),
        }
    }

    /// From now on the file grows in chunks of zeros actually written ahead of the frames
    /// (64 KiB, doubling up to 4 MiB at a time), instead of by each append. An append that
    /// grows a file makes its `fdatasync` write the file's inode (the new size, the new blocks)
    /// as well as the frames: a second write to the disk per sync. Appends into a chunk already
    /// written and synced overwrite allocated blocks of a file whose size does not change, and
    /// their `fdatasync` writes the frames alone. Replay reads the zeros after the last frame as
    /// the end of the journal, so the file's format does not change; the journal stays
    /// readable by a build that does not preallocate.
    pub fn preallocate_ahead(&mut self) {
        self.preallocate = true;
    }

    /// Appends one frame. It is written to the file but not durable until the next sync.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), JournalError> {
        self.append_each([payload], |payload, buf| buf.extend_from_slice(payload))
    }

    /// Appends one frame per item, its payload encoded by `encode` (which appends to the
    /// buffer it is given), all with one write: if it fails, none of them counts (the next
    /// append overwrites whatever part reached the file, and the next open cuts it). Not
    /// durable until the next sync.
    pub fn append_each<I>(
        &mut self,
        items: impl IntoIterator<Item = I>,
        mut encode: impl FnMut(I, &mut Vec<u8>),
    ) -> Result<(), JournalError> {
        self.shared.check_usable()?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut count = 0;
        for item in items {
            let start = buf.len();
            buf.extend_from_slice(&[0; FRAME_HEADER_LEN]);
            encode(item, &mut buf);
            let payload = &buf[start + FRAME_HEADER_LEN..];
            if payload.len() > MAX_PAYLOAD {
                return Err(JournalError::TooLarge {
                    path: self.shared.path.clone(),
                    len: payload.len(),
                    max: MAX_PAYLOAD,
                });
            }
            let len = (FRAME_HEADER_LEN + payload.len()) as u32;
            let crc = frame_crc(len, self.frame_count + count, payload);
            put_u32_at(&mut buf, start, len);
            put_u32_at(&mut buf, start + 4, crc);
            count += 1;
        }
        let written = self.write_frames(&buf, count);
        if buf.capacity() <= KEPT_BUFFER {
            self.buf = buf;
        }
        written
    }

    /// Writes encoded frames at the end. Not durable: the next sync (an fdatasync after this
    /// write) makes them so.
    fn write_frames(&mut self, frames: &[u8], count: u64) -> Result<(), JournalError> {
        if count == 0 {
            return Ok(());
        }
        let end = self.len + frames.len() as u64;
        if self.preallocate && end > self.allocated {
            self.grow_to(end)?;
        }
        debug_assert!(
            !self.preallocate || end <= self.allocated,
            "{}: frames written past the preallocated chunk",
            self.shared.path.display()
        );
        // A positional write: after a failed write the next frame lands at the same place,
        // whatever the failed one left behind.
        let written = fs::write_all_at(&self.shared.file, &self.shared.path, frames, self.len);
        self.shared.writes.fetch_add(1, Ordering::AcqRel);
        if let Err(source) = written {
            self.erase_failed_write(end);
            return Err(io_error(&self.shared.path)(source));
        }
        self.len = end;
        self.allocated = self.allocated.max(end);
        self.frame_count += count;
        Ok(())
    }

    /// Extends the file to the next chunk boundary past `needed` with zeros actually written:
    /// zeros rather than a hole or an `fallocate`d range, whose blocks would still be allocated,
    /// or converted from unwritten, by the first append reaching them, a change of the inode's
    /// extents that its fdatasync would have to write. The grow needs no fdatasync of its own:
    /// the next sync, which the frames written into the chunk wait for anyway, makes the zeros
    /// and the new size durable with them; a crash before it leaves the file shorter, or ending
    /// in zeros, and replay reads either as the end. A failure may leave part of the zeros,
    /// which replay reads as the end too; the next grow writes them again.
    fn grow_to(&mut self, needed: u64) -> Result<(), JournalError> {
        let target = chunk_end(self.allocated, needed);
        let written = write_zeros(&self.shared.file, &self.shared.path, self.allocated..target);
        self.shared.writes.fetch_add(1, Ordering::AcqRel);
        written.map_err(io_error(&self.shared.path))?;
        self.allocated = target;
        Ok(())
    }

    /// Removes what a failed write of the frames up to `end` may have left after the last good
    /// frame. Best effort: a partial frame left here is overwritten by the next append or cut by
    /// the next open, so failing to remove it now loses nothing.
    fn erase_failed_write(&mut self, end: u64) {
        let (file, path) = (&self.shared.file, &self.shared.path);
        if self.preallocate {
            // Zeros again, as the chunk was, keeping its blocks for the next append.
            let _ = write_zeros(file, path, self.len..end);
        } else if fs::set_len(file, path, self.len).is_ok() {
            self.allocated = self.len;
        }
        self.shared.writes.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops every frame: the journal is left with its header alone, and the next frame is
    /// numbered 0 again. Durable once synced.
    pub fn clear(&mut self) -> Result<(), JournalError> {
        self.shared.check_usable()?;
        // Truncated rather than zeroed: one change of size drops every frame at once, where
        // zeros written over them could reach the disk in part. A preallocating journal grows
        // again at its next append.
        fs::set_len(&self.shared.file, &self.shared.path, HEADER_LEN as u64)
            .map_err(io_error(&self.shared.path))?;
        self.shared.writes.fetch_add(1, Ordering::AcqRel);
        self.len = HEADER_LEN as u64;
        self.allocated = self.len;
        self.frame_count = 0;
        Ok(())
    }

    /// A handle that syncs this journal from another thread.
    pub fn sync_handle(&self) -> JournalSync {
        JournalSync {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Makes every frame appended so far durable (fdatasync). If that fails the journal is
    /// poisoned: this and every later append or sync returns an error.
    pub fn sync(&self) -> Result<(), JournalError> {
        self.shared.sync()
    }

    /// Bytes of the journal, header included: where the next frame will be written. The file
    /// of a preallocating journal is longer, by the zeros written ahead.
    pub fn len_bytes(&self) -> u64 {
        self.len
    }

    /// The generation written in the header.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Frames in the journal: those replayed at open plus those appended since.
    #[cfg(any(test, feature = "internals"))]
    pub fn frame_count(&self) -> u64 {
        self.frame_count
    }
}

/// Syncs a [`Journal`] from another thread (a flusher) while its owner keeps appending.
#[derive(Debug, Clone)]
pub struct JournalSync {
    shared: Arc<Shared>,
}

impl JournalSync {
    /// Same as [`Journal::sync`]: every frame appended before the call is durable once it
    /// returns `Ok`; a failure poisons the journal.
    pub fn sync(&self) -> Result<(), JournalError> {
        self.shared.sync()
    }
}

/// Atomically replaces `dir/name` with a snapshot holding `payload`.
///
/// The snapshot is written to `dir/name.tmp`, synced, renamed over `dir/name`, and `dir` is
/// synced: a crash at any point leaves either the old snapshot or the new one.
pub fn write_snapshot(
    dir: &Path,
    name: &str,
    kind: FileKind,
    generation: u64,
    payload: &[u8],
) -> Result<(), JournalError> {
    place_snapshot(dir, name, kind, generation, payload)?;
    sync_dir(dir)
}

/// [`write_snapshot`] without the final directory sync: once it returns `Ok`, `dir/name` holds
/// the new snapshot, which survives a crash of the process but, until `dir` is synced, not a
/// power loss. For a caller that must act on the new snapshot being in place before the sync.
pub fn place_snapshot(
    dir: &Path,
    name: &str,
    kind: FileKind,
    generation: u64,
    payload: &[u8],
) -> Result<(), JournalError> {
    if Path::new(name).file_name() != Some(OsStr::new(name)) || name.ends_with(TMP_SUFFIX) {
        return Err(JournalError::BadSnapshotName {
            dir: dir.to_path_buf(),
            name: name.to_owned(),
        });
    }
    let path = dir.join(name);
    let tmp = tmp_path(&path);
    let file = fresh_file(&tmp)?;
    fs::place(
        &tmp,
        &path,
        || write_snapshot_file(&tmp, &file, kind, generation, payload),
        io_error(&path),
    )
}

/// Reads a snapshot: `Ok(None)` if the file does not exist, an error if it exists but is
/// damaged. A leftover `.tmp` beside it is ignored.
pub fn read_snapshot(path: &Path, kind: FileKind) -> Result<Option<Snapshot>, JournalError> {
    match std::fs::read(path) {
        Ok(bytes) => decode_snapshot(path, bytes, kind).map(Some),
        Err(source) if source.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(io_error(path)(source)),
    }
}

/// Checks and decodes the bytes of a snapshot file; `path` only labels errors.
pub fn decode_snapshot(
    path: &Path,
    mut bytes: Vec<u8>,
    kind: FileKind,
) -> Result<Snapshot, JournalError> {
    let corrupt = |detail: String| JournalError::SnapshotCorrupt {
        path: path.to_path_buf(),
        detail,
    };
    let min_len = HEADER_LEN + CRC_LEN;
    let header: [u8; HEADER_LEN] = match bytes.first_chunk() {
        Some(header) if bytes.len() >= min_len => *header,
        _ => return Err(corrupt(too_short(bytes.len() as u64, min_len))),
    };
    check_magic(&header, SNAPSHOT_MAGIC).map_err(corrupt)?;
    check_version(path, &header, SNAPSHOT_VERSION)?;
    let payload_len = u64_at(&header, PAYLOAD_LEN_AT);
    let crc_at = bytes.len() - CRC_LEN;
    let held = (crc_at - HEADER_LEN) as u64;
    if payload_len != held {
        return Err(corrupt(format!(
            "the header announces {payload_len} payload bytes but the file holds {held}: \
             it was cut short or extended"
        )));
    }
    let stored = u32_at(&bytes[crc_at..], 0);
    let computed = crc32fast::hash(&bytes[..crc_at]);
    if stored != computed {
        return Err(corrupt(crc_detail(stored, computed)));
    }
    if u16_at(&header, RESERVED16_AT) != 0 {
        return Err(corrupt("reserved header bytes are not zero".to_owned()));
    }
    check_kind(path, &header, kind)?;
    bytes.truncate(crc_at);
    bytes.drain(..HEADER_LEN);
    Ok(Snapshot {
        generation: u64_at(&header, GENERATION_AT),
        payload: bytes,
    })
}

/// Whether a journal's first bytes are a damaged header: shorter than one, or failing its
/// checksum. Returns what is wrong.
pub fn header_damage(first_bytes: &[u8]) -> Option<String> {
    let Some(header) = first_bytes.get(..HEADER_LEN) else {
        return Some(too_short(first_bytes.len() as u64, HEADER_LEN));
    };
    let stored = u32_at(header, HEADER_CRC_AT);
    let computed = crc32fast::hash(&header[..HEADER_CRC_AT]);
    (stored != computed).then(|| crc_detail(stored, computed))
}

fn rebuild_damaged_header(
    path: &Path,
    kind: FileKind,
    generation: u64,
) -> Result<Option<String>, JournalError> {
    let file = fs::open_existing(path, true).map_err(io_error(path))?;
    let mut first = Vec::with_capacity(HEADER_LEN);
    Read::by_ref(&mut &file)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut first)
        .map_err(io_error(path))?;
    let Some(damage) = header_damage(&first) else {
        return Ok(None);
    };
    write_header(path, &file, kind, generation)?;
    tracing::error!(path = %path.display(), %damage, "rebuilt a damaged journal header from its file name");
    Ok(Some(damage))
}

/// Cuts the journal at `path` back to `len` bytes, a frame boundary it had earlier (its
/// [`len_bytes`](Journal::len_bytes) then), and syncs it: the frames appended since are gone,
/// and so are the zeros a preallocating journal wrote ahead (it grows again at its next
/// append). A missing journal, or one no longer than `len`, is left alone.
pub fn cut(path: &Path, len: u64) -> Result<(), JournalError> {
    assert!(
        len >= HEADER_LEN as u64,
        "a journal is never shorter than its header"
    );
    let file = match fs::open_existing(path, true) {
        Ok(file) => file,
        Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(io_error(path)(source)),
    };
    let file_len = file.metadata().map_err(io_error(path))?.len();
    if file_len <= len {
        return Ok(());
    }
    fs::set_len(&file, path, len).map_err(io_error(path))?;
    fs::sync_data(&file, path).map_err(io_error(path))
}

/// Reads the payload of frame number `number`, which starts at byte `position` of the journal
/// `file` (a position an earlier replay found), checking it as replay does. For a reader that
/// keeps where each frame is instead of the frames themselves; a frame that no longer checks
/// (the file changed on disk since) is [`JournalError::FrameDamaged`].
#[cfg(feature = "cluster")]
pub fn read_frame_at(
    file: &File,
    path: &Path,
    position: u64,
    number: u64,
) -> Result<Vec<u8>, JournalError> {
    let file_len = file.metadata().map_err(io_error(path))?.len();
    let remaining = file_len.saturating_sub(position);
    let mut reader = BufReader::new(PositionalReader { file, position });
    match read_frame(&mut reader, remaining, number).map_err(io_error(path))? {
        Next::Frame(payload) => Ok(payload),
        Next::End => Err(JournalError::FrameDamaged {
            path: path.to_path_buf(),
            position,
            reason: format!("frame {number} is past the end of the file"),
        }),
        Next::Zeroed { .. } => Err(JournalError::FrameDamaged {
            path: path.to_path_buf(),
            position,
            reason: zeroed_frame(number),
        }),
        Next::Bad(reason) => Err(JournalError::FrameDamaged {
            path: path.to_path_buf(),
            position,
            reason,
        }),
    }
}

/// Reads a file from a position with positional reads, leaving any cursor of the file alone.
#[cfg(feature = "cluster")]
struct PositionalReader<'a> {
    file: &'a File,
    position: u64,
}

#[cfg(feature = "cluster")]
impl Read for PositionalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = std::os::unix::fs::FileExt::read_at(self.file, buf, self.position)?;
        self.position += read as u64;
        Ok(read)
    }
}

/// Syncs a directory, so that a file created or renamed in it survives a power loss.
pub fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    fs::sync_dir(dir).map_err(io_error(dir))
}

/// The end of a preallocating journal's next chunk, for a file of `allocated` bytes that must
/// hold `needed`: the file first grows to [`FIRST_CHUNK`], then doubles, by [`LARGEST_CHUNK`] at
/// most at a time, and always ends on a 4 KiB page boundary.
fn chunk_end(allocated: u64, needed: u64) -> u64 {
    const PAGE: u64 = 4096;
    let grown = if allocated < FIRST_CHUNK {
        FIRST_CHUNK
    } else {
        allocated + allocated.min(LARGEST_CHUNK)
    };
    grown.max(needed).next_multiple_of(PAGE)
}

/// Writes zeros over `range` of the file, extending it if the range ends past its end.
fn write_zeros(file: &File, path: &Path, range: std::ops::Range<u64>) -> io::Result<()> {
    let mut at = range.start;
    while at < range.end {
        let len = (range.end - at).min(ZEROS.len() as u64);
        fs::write_all_at(file, path, &ZEROS[..len as usize], at)?;
        at += len;
    }
    Ok(())
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> JournalError {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `tmp` afresh. An old file there is unlinked first rather than truncated: after a
/// crash in [`Journal::create`] it may be a second name of a live journal.
fn fresh_file(tmp: &Path) -> Result<File, JournalError> {
    remove_leftover(tmp)?;
    fs::create_new(tmp).map_err(io_error(tmp))
}

fn remove_leftover(path: &Path) -> Result<(), JournalError> {
    fs::remove_if_exists(path).map_err(io_error(path))
}

/// Removes a temporary file, best effort: what a failure leaves behind is removed by the next
/// write of the same name (or, for a journal, the next open), so it is not worth an error.
fn discard(tmp: &Path) {
    let _ = fs::remove_file(tmp);
}

fn discard_on_error<T>(tmp: &Path, result: Result<T, JournalError>) -> Result<T, JournalError> {
    if result.is_err() {
        discard(tmp);
    }
    result
}

fn write_header(
    path: &Path,
    file: &File,
    kind: FileKind,
    generation: u64,
) -> Result<(), JournalError> {
    let mut header = header_prefix(JOURNAL_MAGIC, JOURNAL_VERSION, kind, generation);
    let crc = crc32fast::hash(&header[..HEADER_CRC_AT]);
    put_u32_at(&mut header, HEADER_CRC_AT, crc);
    fs::write_all_at(file, path, &header, 0).map_err(io_error(path))?;
    fs::sync_data(file, path).map_err(io_error(path))
}

fn write_snapshot_file(
    path: &Path,
    file: &File,
    kind: FileKind,
    generation: u64,
    payload: &[u8],
) -> Result<(), JournalError> {
    let mut header = header_prefix(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, kind, generation);
    put_u64_at(&mut header, PAYLOAD_LEN_AT, payload.len() as u64);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header);
    hasher.update(payload);
    let crc = hasher.finalize().to_le_bytes();
    fs::write_all(file, path, &header)
        .and_then(|()| fs::write_all(file, path, payload))
        .and_then(|()| fs::write_all(file, path, &crc))
        .and_then(|()| fs::sync_data(file, path))
        .map_err(io_error(path))
}

fn header_prefix(
    magic: [u8; 8],
    version: u16,
    kind: FileKind,
    generation: u64,
) -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    header[MAGIC_AT..MAGIC_AT + 8].copy_from_slice(&magic);
    header[VERSION_AT..VERSION_AT + 2].copy_from_slice(&version.to_le_bytes());
    header[KIND_AT..KIND_AT + 4].copy_from_slice(&kind.0);
    put_u64_at(&mut header, GENERATION_AT, generation);
    header
}

fn check_magic(header: &[u8; HEADER_LEN], expected: [u8; 8]) -> Result<(), String> {
    let found = &header[MAGIC_AT..MAGIC_AT + 8];
    if found == expected {
        Ok(())
    } else if found == JOURNAL_MAGIC {
        Err("the file is a weir journal, not a snapshot".to_owned())
    } else if found == SNAPSHOT_MAGIC {
        Err("the file is a weir snapshot, not a journal".to_owned())
    } else {
        Err("the file does not start with weir's magic bytes".to_owned())
    }
}

fn check_version(
    path: &Path,
    header: &[u8; HEADER_LEN],
    supported: u16,
) -> Result<(), JournalError> {
    let found = u16_at(header, VERSION_AT);
    if found != supported {
        return Err(JournalError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    Ok(())
}

fn check_kind(
    path: &Path,
    header: &[u8; HEADER_LEN],
    expected: FileKind,
) -> Result<(), JournalError> {
    let found = FileKind([
        header[KIND_AT],
        header[KIND_AT + 1],
        header[KIND_AT + 2],
        header[KIND_AT + 3],
    ]);
    if found != expected {
        return Err(JournalError::WrongKind {
            path: path.to_path_buf(),
            expected,
            found,
        });
    }
    Ok(())
}

/// Checks a journal header, returning its generation.
fn check_journal_header(
    path: &Path,
    header: &[u8; HEADER_LEN],
    kind: FileKind,
) -> Result<u64, JournalError> {
    let bad = |detail: String| JournalError::BadHeader {
        path: path.to_path_buf(),
        detail,
    };
    check_magic(header, JOURNAL_MAGIC).map_err(bad)?;
    check_version(path, header, JOURNAL_VERSION)?;
    let stored = u32_at(header, HEADER_CRC_AT);
    let computed = crc32fast::hash(&header[..HEADER_CRC_AT]);
    if stored != computed {
        return Err(bad(crc_detail(stored, computed)));
    }
    if u16_at(header, RESERVED16_AT) != 0 || u32_at(header, RESERVED32_AT) != 0 {
        return Err(bad("reserved header bytes are not zero".to_owned()));
    }
    check_kind(path, header, kind)?;
    Ok(u64_at(header, GENERATION_AT))
}

/// Reads a journal from `reader`, which yields `file_len` bytes from the start of the file.
/// Returns what was read and where the good frames end.
fn scan(
    path: &Path,
    mut reader: impl Read,
    file_len: u64,
    kind: FileKind,
) -> Result<(Replay, u64), JournalError> {
    let mut header = [0; HEADER_LEN];
    if file_len < HEADER_LEN as u64
        || !read_fully(&mut reader, &mut header).map_err(io_error(path))?
    {
        return Err(JournalError::BadHeader {
            path: path.to_path_buf(),
            detail: too_short(file_len, HEADER_LEN),
        });
    }
    let generation = check_journal_header(path, &header, kind)?;
    let mut frames = Vec::new();
    let mut end = HEADER_LEN as u64;
    let damage = loop {
        let remaining = file_len - end;
        match read_frame(&mut reader, remaining, frames.len() as u64).map_err(io_error(path))? {
            Next::Frame(payload) => {
                end += (FRAME_HEADER_LEN + payload.len()) as u64;
                // `read_frame` refuses a frame longer than what is left of the file.
                debug_assert!(end <= file_len, "{}: frame past the end", path.display());
                frames.push(payload);
            }
            Next::End => break None,
            Next::Zeroed { read } => {
                let rest = remaining - read;
                match first_non_zero(&mut reader, rest).map_err(io_error(path))? {
                    // Space written as zeros ahead of the frames, or never written at all.
                    None => break None,
                    Some(at) => {
                        break Some(JournalDamage {
                            path: path.to_path_buf(),
                            position: end,
                            dropped_bytes: remaining,
                            reason: format!(
                                "{}, but byte {} after it is not zero",
                                zeroed_frame(frames.len() as u64),
                                end + read + at
                            ),
                        });
                    }
                }
            }
            Next::Bad(reason) => {
                break Some(JournalDamage {
                    path: path.to_path_buf(),
                    position: end,
                    dropped_bytes: remaining,
                    reason,
                });
            }
        }
    };
    debug_assert!(end <= file_len, "{}: frames past the end", path.display());
    let replay = Replay {
        generation,
        frames,
        damage,
    };
    Ok((replay, end))
}

/// What follows the last frame read.
enum Next {
    Frame(Vec<u8>),
    /// The end of the file.
    End,
    /// Zeros where the next frame's header should be: the end if every byte after them is zero
    /// too, damage otherwise. `read` bytes of them were read.
    Zeroed {
        read: u64,
    },
    Bad(String),
}

/// Reads frame number `index`, with `remaining` bytes left in the file.
fn read_frame(reader: &mut impl Read, remaining: u64, index: u64) -> io::Result<Next> {
    if remaining == 0 {
        return Ok(Next::End);
    }
    let mut head = [0; FRAME_HEADER_LEN];
    let have = remaining.min(FRAME_HEADER_LEN as u64) as usize;
    let cut_short = || Next::Bad(format!("frame {index} is cut short by the end of the file"));
    if !read_fully(reader, &mut head[..have])? {
        return Ok(cut_short());
    }
    if head[..have].iter().all(|&b| b == 0) {
        return Ok(Next::Zeroed { read: have as u64 });
    }
    if have < FRAME_HEADER_LEN {
        return Ok(cut_short());
    }
    let len = u32_at(&head, 0);
    let payload_len = match (len as usize).checked_sub(FRAME_HEADER_LEN) {
        Some(payload_len) if payload_len <= MAX_PAYLOAD => payload_len,
        _ => {
            return Ok(Next::Bad(format!(
                "frame {index} has an impossible length {len}"
            )));
        }
    };
    if u64::from(len) > remaining {
        return Ok(Next::Bad(format!(
            "frame {index} is torn: it needs {len} bytes, the file has {remaining} left"
        )));
    }
    let mut payload = vec![0; payload_len];
    if !read_fully(reader, &mut payload)? {
        return Ok(cut_short());
    }
    let stored = u32_at(&head, 4);
    let computed = frame_crc(len, index, &payload);
    if stored != computed {
        return Ok(Next::Bad(format!(
            "frame {index} fails its check: {}",
            crc_detail(stored, computed)
        )));
    }
    Ok(Next::Frame(payload))
}

/// Where the first non-zero byte is among the next `len` bytes of `reader`, if one is. A reader
/// that ends first (a file shrinking under a reader) has no more.
fn first_non_zero(reader: &mut impl Read, len: u64) -> io::Result<Option<u64>> {
    let mut chunk = vec![0; ZEROS.len().min(len as usize)];
    let mut offset = 0;
    while offset < len {
        let want = (len - offset).min(chunk.len() as u64) as usize;
        let read = match reader.read(&mut chunk[..want]) {
            Ok(0) => return Ok(None),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if let Some(at) = chunk[..read].iter().position(|&b| b != 0) {
            return Ok(Some(offset + at as u64));
        }
        offset += read as u64;
    }
    Ok(None)
}

fn zeroed_frame(index: u64) -> String {
    format!("zeroed space where frame {index} should start: a write that never reached the disk")
}

/// Fills `buf`, returning false if the reader ends first (a file shrinking under a reader).
fn read_fully(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(error) => Err(error),
    }
}

/// Replaces the content of `buf` with frame number `index`; the payload must be at most
/// [`MAX_PAYLOAD`] bytes.
fn frame_crc(len: u32, index: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(&index.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

fn crc_detail(stored: u32, computed: u32) -> String {
    format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")
}

fn too_short(len: u64, needed: usize) -> String {
    format!("the file is {len} bytes, fewer than the {needed} it needs at least")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::thread;

    const META: FileKind = FileKind(*b"META");
    const GROUP: FileKind = FileKind(*b"GRUP");

    fn payload(i: usize) -> Vec<u8> {
        (0..i % 50).map(|j| (i * 7 + j) as u8).collect()
    }

    /// A journal holding `payloads`, and the byte offset where each frame starts.
    fn journal_with(path: &Path, payloads: &[Vec<u8>]) -> Vec<u64> {
        journal_preallocating_or_not(path, payloads, false)
    }

    /// A journal holding `payloads`, synced, preallocating if `preallocate`, and where each
    /// frame starts.
    fn journal_preallocating_or_not(
        path: &Path,
        payloads: &[Vec<u8>],
        preallocate: bool,
    ) -> Vec<u64> {
        let mut journal = Journal::create(path, META, 9).unwrap();
        if preallocate {
            journal.preallocate_ahead();
        }
        let mut starts = Vec::new();
        for p in payloads {
            starts.push(journal.len_bytes());
            journal.append(p).unwrap();
        }
        journal.sync().unwrap();
        starts
    }

    fn payloads(count: usize) -> Vec<Vec<u8>> {
        (0..count).map(payload).collect()
    }

    /// Whether a sync now would have to fdatasync.
    fn has_unsynced_writes(journal: &Journal) -> bool {
        let shared = &journal.shared;
        shared.synced.load(Ordering::Acquire) < shared.writes.load(Ordering::Acquire)
    }

    #[test]
    fn sync_skips_the_fdatasync_only_when_nothing_was_written_since_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        journal_with(&path, &payloads(3));
        let (mut journal, _) = Journal::open(&path, META).unwrap();
        assert!(
            has_unsynced_writes(&journal),
            "a reopened journal's first sync syncs what the last process wrote"
        );
        let handle = journal.sync_handle();
        handle.sync().unwrap();
        assert!(!has_unsynced_writes(&journal));
        journal.append(b"next").unwrap();
        assert!(has_unsynced_writes(&journal));
        handle.sync().unwrap();
        assert!(!has_unsynced_writes(&journal));
        journal.sync().unwrap();
        assert!(!has_unsynced_writes(&journal));
    }

    /// Opens a damaged journal and checks that exactly `good` frames survive, that the damage
    /// starts at `position`, and that the file is cut so a new frame follows the good ones.
    fn check_recovery(path: &Path, all: &[Vec<u8>], good: usize, position: u64) {
        let file_len = fs::metadata(path).unwrap().len();
        let (mut journal, replay) = Journal::open(path, META).unwrap();
        assert_eq!(replay.frames, all[..good]);
        let damage = replay.damage.expect("damage is reported");
        assert_eq!(damage.position, position);
        assert_eq!(damage.dropped_bytes, file_len - position);
        assert_eq!(damage.path, path);
        assert_eq!(fs::metadata(path).unwrap().len(), position);
        assert_eq!(journal.len_bytes(), position);
        assert_eq!(journal.frame_count(), good as u64);
        journal.append(b"after").unwrap();
        journal.sync().unwrap();
        drop(journal);
        let again = Journal::read(path, META).unwrap();
        assert_eq!(again.damage, None);
        let mut expected = all[..good].to_vec();
        expected.push(b"after".to_vec());
        assert_eq!(again.frames, expected);
    }

    /// A preallocating journal holding `payloads`, synced, and where each frame starts.
    fn preallocated_with(path: &Path, payloads: &[Vec<u8>]) -> Vec<u64> {
        journal_preallocating_or_not(path, payloads, true)
    }

    fn file_len(path: &Path) -> u64 {
        fs::metadata(path).unwrap().len()
    }

    #[test]
    fn a_frame_header_is_never_all_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let starts = journal_with(&path, &[Vec::new()]);
        let bytes = fs::read(&path).unwrap();
        let head = &bytes[starts[0] as usize..][..FRAME_HEADER_LEN];
        assert_eq!(u32_at(head, 0), FRAME_HEADER_LEN as u32);
        assert_ne!(head, [0; FRAME_HEADER_LEN]);
    }

    #[test]
    fn chunks_double_from_the_first_up_to_the_largest() {
        let header = HEADER_LEN as u64;
        assert_eq!(chunk_end(header, header + 9), FIRST_CHUNK);
        assert_eq!(
            chunk_end(5000, 5001),
            FIRST_CHUNK,
            "a file that grew by each write"
        );
        assert_eq!(chunk_end(FIRST_CHUNK, FIRST_CHUNK + 1), 2 * FIRST_CHUNK);
        assert_eq!(chunk_end(2 * FIRST_CHUNK, 0), 4 * FIRST_CHUNK);
        let big = 3 * LARGEST_CHUNK;
        assert_eq!(chunk_end(big, big + 1), big + LARGEST_CHUNK);
        let huge_write = big + 2 * LARGEST_CHUNK + 1;
        assert_eq!(
            chunk_end(big, huge_write),
            huge_write.next_multiple_of(4096)
        );
        assert_eq!(chunk_end(70_000, 0), 143_360, "ends on a page boundary");
    }

    #[test]
    fn a_preallocating_journal_grows_in_chunks_of_written_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut journal = Journal::create(&path, META, 9).unwrap();
        journal.preallocate_ahead();
        assert_eq!(
            file_len(&path),
            HEADER_LEN as u64,
            "created without a chunk"
        );
        journal.append(b"first").unwrap();
        let first_chunk = file_len(&path);
        assert_eq!(
            first_chunk,
            chunk_end(HEADER_LEN as u64, journal.len_bytes())
        );
        let mut sizes = vec![first_chunk];
        let mut all = vec![b"first".to_vec()];
        for p in payloads(6000) {
            journal.append(&p).unwrap();
            all.push(p);
            let size = file_len(&path);
            assert!(size >= journal.len_bytes());
            if size != *sizes.last().unwrap() {
                sizes.push(size);
            }
        }
        journal.sync().unwrap();
        assert!(sizes.len() >= 3, "{sizes:?}");
        assert!(sizes.windows(2).all(|w| w[1] == 2 * w[0]), "{sizes:?}");
        let bytes = fs::read(&path).unwrap();
        assert!(
            bytes[journal.len_bytes() as usize..]
                .iter()
                .all(|&b| b == 0)
        );
        let replay = Journal::read(&path, META).unwrap();
        assert_eq!(replay.frames, all);
        assert_eq!(
            replay.damage, None,
            "the zeros ahead are the end, not damage"
        );
    }

    #[test]
    fn a_zero_tail_is_the_end_and_the_next_frames_go_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let all = payloads(8);
        preallocated_with(&path, &all[..5]);
        let size = file_len(&path);
        let (mut journal, replay) = Journal::open(&path, META).unwrap();
        assert_eq!(replay.frames, all[..5]);
        assert_eq!(replay.damage, None);
        assert!(journal.len_bytes() < size);
        assert_eq!(file_len(&path), size, "open leaves the zeros in place");
        journal.preallocate_ahead();
        let end = journal.len_bytes();
        for p in &all[5..] {
            journal.append(p).unwrap();
        }
        journal.sync().unwrap();
        assert_eq!(file_len(&path), size, "the appends went into the chunk");
        assert!(journal.len_bytes() > end);
        let replay = Journal::read(&path, META).unwrap();
        assert_eq!(replay.frames, all);
        assert_eq!(replay.damage, None);
        assert_eq!(journal.frame_count(), 8);
    }

    #[test]
    fn a_journal_that_does_not_preallocate_reads_and_keeps_zeros_after_its_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let all = payloads(5);
        let starts = journal_with(&path, &all);
        let intact = fs::read(&path).unwrap();
        for zeros in [1, 3, 8, 4096] {
            let mut bytes = intact.clone();
            bytes.extend(vec![0; zeros]);
            fs::write(&path, &bytes).unwrap();
            let (mut journal, replay) = Journal::open(&path, META).unwrap();
            assert_eq!((replay.frames.as_slice(), replay.damage), (&all[..], None));
            assert_eq!(journal.len_bytes(), intact.len() as u64);
            journal.append(b"after").unwrap();
            journal.sync().unwrap();
            let again = Journal::read(&path, META).unwrap();
            assert_eq!(again.frames.last().unwrap(), b"after");
            assert_eq!(again.damage, None);
        }
        // The last frame never reached the disk but the file's size did.
        let mut bytes = intact.clone();
        bytes[starts[4] as usize..].fill(0);
        fs::write(&path, &bytes).unwrap();
        let replay = Journal::read(&path, META).unwrap();
        assert_eq!((replay.frames.as_slice(), replay.damage), (&all[..4], None));
    }

    #[test]
    fn zeros_followed_by_anything_else_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let all = payloads(15);
        let starts = preallocated_with(&path, &all);
        let intact = fs::read(&path).unwrap();
        // A frame whose first bytes never reached the disk while its later ones did.
        let mut bytes = intact.clone();
        bytes[starts[10] as usize..starts[11] as usize].fill(0);
        fs::write(&path, &bytes).unwrap();
        let reason = Journal::read(&path, META).unwrap().damage.unwrap().reason;
        assert!(
            reason.contains("zeroed") && reason.contains("not zero"),
            "{reason}"
        );
        check_recovery(&path, &all, 10, starts[10]);
        // One byte set far into the preallocated zeros.
        let mut bytes = intact.clone();
        let end = starts[14] as usize + FRAME_HEADER_LEN + all[14].len();
        let far = bytes.len() - 1;
        bytes[far] = 1;
        fs::write(&path, &bytes).unwrap();
        let damage = Journal::read(&path, META).unwrap().damage.unwrap();
        assert!(damage.reason.contains(&format!("byte {far} ")), "{damage}");
        check_recovery(&path, &all, 15, end as u64);
    }

    #[test]
    fn a_frame_torn_in_the_preallocated_space_is_cut_at_any_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let all = payloads(4);
        let starts = preallocated_with(&path, &all);
        let whole = fs::read(&path).unwrap();
        let last = starts[3] as usize;
        let frame_end = last + FRAME_HEADER_LEN + all[3].len();
        // The file as it was before the last frame was appended: the chunk holds zeros there.
        let mut before = whole.clone();
        before[last..].fill(0);
        for torn in last + 1..frame_end {
            let mut bytes = before.clone();
            bytes[last..torn].copy_from_slice(&whole[last..torn]);
            fs::write(&path, &bytes).unwrap();
            check_recovery(&path, &all, 3, last as u64);
        }
        for lost in last + 1..frame_end {
            let mut bytes = whole.clone();
            bytes[last..lost].fill(0);
            fs::write(&path, &bytes).unwrap();
            check_recovery(&path, &all, 3, last as u64);
        }
    }

    #[test]
    fn clear_and_cut_drop_the_zeros_and_the_journal_grows_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut journal = Journal::create(&path, META, 1).unwrap();
        journal.preallocate_ahead();
        journal.append(b"one").unwrap();
        let kept = journal.len_bytes();
        journal.append(b"two").unwrap();
        journal.sync().unwrap();
        assert!(file_len(&path) > journal.len_bytes());
        drop(journal);
        cut(&path, kept).unwrap();
        assert_eq!(file_len(&path), kept);
        let (mut journal, replay) = Journal::open(&path, META).unwrap();
        assert_eq!(replay.frames, [b"one"]);
        journal.preallocate_ahead();
        journal.clear().unwrap();
        assert_eq!(file_len(&path), HEADER_LEN as u64);
        journal.append(b"three").unwrap();
        journal.sync().unwrap();
        assert!(file_len(&path) > journal.len_bytes(), "grown again");
        let replay = Journal::read(&path, META).unwrap();
        assert_eq!(
            (replay.frames, replay.damage),
            (vec![b"three".to_vec()], None)
        );
    }

    #[test]
    fn a_failed_write_into_the_chunk_leaves_zeros_behind() {
        use crate::fs::fault::{self, Fault};
        for failure in [Fault::ShortWrite, Fault::Io, Fault::NoSpace] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j");
            let mut journal = Journal::create(&path, META, 1).unwrap();
            journal.preallocate_ahead();
            journal.append(b"kept").unwrap();
            journal.sync().unwrap();
            let end = journal.len_bytes();
            let plan = fault::inject(dir.path(), 0, failure);
            assert!(journal.append(&[7; 100]).is_err(), "{failure:?}");
            assert!(plan.fired());
            drop(plan);
            assert_eq!(journal.len_bytes(), end);
            let bytes = fs::read(&path).unwrap();
            assert!(bytes[end as usize..].iter().all(|&b| b == 0), "{failure:?}");
            journal.append(b"next").unwrap();
            journal.sync().unwrap();
            let replay = Journal::read(&path, META).unwrap();
            assert_eq!(replay.frames, [b"kept".to_vec(), b"next".to_vec()]);
            assert_eq!(replay.damage, None);
        }
    }

    #[test]
    fn a_failed_grow_fails_the_append_and_the_next_one_grows_again() {
        use crate::fs::fault::{self, Fault};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut journal = Journal::create(&path, META, 1).unwrap();
        journal.preallocate_ahead();
        let plan = fault::inject(dir.path(), 0, Fault::ShortWrite);
        assert!(journal.append(b"lost").is_err());
        drop(plan);
        assert_eq!(journal.len_bytes(), HEADER_LEN as u64);
        journal.append(b"kept").unwrap();
        journal.sync().unwrap();
        assert_eq!(file_len(&path), FIRST_CHUNK);
        let replay = Journal::read(&path, META).unwrap();
        assert_eq!(
            (replay.frames, replay.damage),
            (vec![b"kept".to_vec()], None)
        );
    }

    #[test]
    fn round_trips_many_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let all = payloads(1000);
        journal_with(&path, &all);
        let (journal, replay) = Journal::open(&path, META).unwrap();
        assert_eq!(replay.generation, 9);
        assert_eq!(replay.frames, all);
        assert_eq!(replay.damage, None);
        assert_eq!(journal.generation(), 9);
        assert_eq!(journal.frame_count(), 1000);
        assert_eq!(journal.path(), path);
        assert_eq!(journal.len_bytes(), fs::metadata(&path).unwrap().len());
        assert_eq!(Journal::read(&path, META).unwrap(), replay);
        assert_eq!(
            Journal::decode(&path, &fs::read(&path).unwrap(), META).unwrap(),
            replay
        );
    }

    #[test]
    fn a_new_journal_is_just_a_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let journal = Journal::create(&path, GROUP, u64::MAX).unwrap();
        assert_eq!(journal.len_bytes(), HEADER_LEN as u64);
        assert_eq!(fs::metadata(&path).unwrap().len(), HEADER_LEN as u64);
        assert!(!tmp_path(&path).exists());
        let replay = Journal::read(&path, GROUP).unwrap();
        assert_eq!(replay.generation, u64::MAX);
        assert!(replay.frames.is_empty());
        assert_eq!(replay.damage, None);
    }

    #[test]
    fn reopening_continues_the_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let all = payloads(8);
        journal_with(&path, &all[..3]);
        for chunk in [&all[3..5], &all[5..8]] {
            let (mut journal, _) = Journal::open(&path, META).unwrap();
            for p in chunk {
                journal.append(p).unwrap();
            }
            journal.sync().unwrap();
        }
        let replay = Journal::read(&path, META).unwrap();
        assert_eq!(replay.frames, all);
        assert_eq!(replay.damage, None);
    }

    #[test]
    fn create_refuses_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        journal_with(&path, &payloads(2));
        let err = Journal::create(&path, META, 1).unwrap_err();
        assert!(matches!(err, JournalError::AlreadyExists { .. }), "{err}");
        assert!(err.to_string().contains(&*path.to_string_lossy()));
        assert!(!tmp_path(&path).exists());
        assert_eq!(Journal::read(&path, META).unwrap().frames, payloads(2));
    }

    #[test]
    fn open_removes_a_second_name_left_by_create() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        journal_with(&path, &payloads(2));
        fs::hard_link(&path, tmp_path(&path)).unwrap();
        let (_, replay) = Journal::open(&path, META).unwrap();
        assert_eq!(replay.frames, payloads(2));
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn a_tail_torn_at_any_byte_keeps_the_earlier_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let all = vec![b"first".to_vec(), b"second".to_vec(), vec![0xab; 20]];
        let starts = journal_with(&path, &all);
        let intact = fs::read(&path).unwrap();
        let last = starts[2] as usize;
        for cut in last + 1..intact.len() {
            fs::write(&path, &intact[..cut]).unwrap();
            check_recovery(&path, &all, 2, last as u64);
        }
        fs::write(&path, &intact[..last]).unwrap();
        let replay = Journal::read(&path, META).unwrap();
        assert_eq!(replay.frames, all[..2]);
        assert_eq!(replay.damage, None);
    }

    #[test]
    fn garbage_after_the_last_frame_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let all = payloads(5);
        journal_with(&path, &all);
        let intact = fs::read(&path).unwrap();
        let garbage: [&[u8]; 4] = [
            b"\x01",
            b"garbage that is not a frame at all",
            &[0xff; 16],
            &[16, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        ];
        for tail in garbage {
            let mut bytes = intact.clone();
            bytes.extend_from_slice(tail);
            fs::write(&path, &bytes).unwrap();
            check_recovery(&path, &all, 5, intact.len() as u64);
        }
    }

    #[test]
    fn a_huge_length_is_rejected_without_allocating_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let all = payloads(3);
        journal_with(&path, &all);
        let intact = fs::read(&path).unwrap();
        for len in [u32::MAX, (MAX_PAYLOAD + FRAME_HEADER_LEN + 1) as u32, 7, 1] {
            let mut bytes = intact.clone();
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&[1; 60]);
            fs::write(&path, &bytes).unwrap();
            let reason = Journal::read(&path, META).unwrap().damage.unwrap().reason;
            assert!(reason.contains("impossible length"), "{reason}");
            check_recovery(&path, &all, 3, intact.len() as u64);
        }
    }

    #[test]
    fn a_flipped_byte_in_a_middle_frame_keeps_the_frames_before_it() {
        for preallocate in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j");
            let all = payloads(15);
            let starts = journal_preallocating_or_not(&path, &all, preallocate);
            let intact = fs::read(&path).unwrap();
            for at in starts[10]..starts[11] {
                let mut bytes = intact.clone();
                bytes[at as usize] ^= 0x40;
                fs::write(&path, &bytes).unwrap();
                check_recovery(&path, &all, 10, starts[10]);
            }
        }
    }

    #[test]
    fn a_frame_at_the_wrong_place_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let all = vec![b"aaaa".to_vec(), b"bbbb".to_vec(), b"cccc".to_vec()];
        let starts = journal_with(&path, &all);
        let mut bytes = fs::read(&path).unwrap();
        let (first, second) = (starts[0] as usize, starts[1] as usize);
        let frame_len = second - first;
        let copy = bytes[first..second].to_vec();
        bytes[second..second + frame_len].copy_from_slice(&copy);
        fs::write(&path, &bytes).unwrap();
        let replay = Journal::read(&path, META).unwrap();
        assert_eq!(replay.frames, all[..1]);
        assert_eq!(replay.damage.unwrap().position, starts[1]);
    }

    #[test]
    fn read_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        journal_with(&path, &payloads(4));
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(b"tail");
        fs::write(&path, &bytes).unwrap();
        let replay = Journal::read(&path, META).unwrap();
        assert_eq!(replay.frames, payloads(4));
        assert_eq!(replay.damage.unwrap().dropped_bytes, 4);
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn a_damaged_header_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        journal_with(&path, &payloads(3));
        let intact = fs::read(&path).unwrap();
        let name = path.to_string_lossy().into_owned();
        for at in 0..HEADER_LEN {
            let mut bytes = intact.clone();
            bytes[at] ^= 0x01;
            fs::write(&path, &bytes).unwrap();
            let err = Journal::open(&path, META).unwrap_err();
            match err {
                JournalError::BadHeader { .. } => {}
                JournalError::UnsupportedVersion { found, .. } => {
                    assert_ne!(found, JOURNAL_VERSION)
                }
                _ => panic!("byte {at}: unexpected {err:?}"),
            }
            assert!(err.to_string().contains(&name), "{err}");
            assert!(Journal::read(&path, META).is_err());
        }
        for len in [0, 1, HEADER_LEN - 1] {
            fs::write(&path, &intact[..len]).unwrap();
            let err = Journal::open(&path, META).unwrap_err();
            assert!(matches!(err, JournalError::BadHeader { .. }), "{err}");
            assert!(err.to_string().contains(&name), "{err}");
        }
    }

    #[test]
    fn a_missing_journal_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing");
        let err = Journal::open(&path, META).unwrap_err();
        match &err {
            JournalError::Io { source, .. } => {
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            _ => panic!("unexpected {err:?}"),
        }
        assert!(err.to_string().contains("missing"));
    }

    #[test]
    fn the_wrong_kind_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        journal_with(&path, &payloads(1));
        let err = Journal::open(&path, GROUP).unwrap_err();
        match &err {
            JournalError::WrongKind {
                expected, found, ..
            } => {
                assert_eq!((*expected, *found), (GROUP, META));
            }
            _ => panic!("unexpected {err:?}"),
        }
        assert!(err.to_string().contains("`META`"), "{err}");
        write_snapshot(dir.path(), "snap", META, 1, b"x").unwrap();
        let err = Journal::read(&dir.path().join("snap"), META).unwrap_err();
        assert!(err.to_string().contains("snapshot, not a journal"), "{err}");
    }

    #[test]
    fn an_oversized_payload_is_refused_and_the_journal_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut journal = Journal::create(&path, META, 1).unwrap();
        let err = journal.append(&vec![0; MAX_PAYLOAD + 1]).unwrap_err();
        assert!(matches!(err, JournalError::TooLarge { .. }), "{err}");
        assert_eq!(journal.frame_count(), 0);
        journal.append(b"fine").unwrap();
        journal.sync().unwrap();
        assert_eq!(Journal::read(&path, META).unwrap().frames, [b"fine"]);
    }

    #[test]
    fn a_poisoned_journal_refuses_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut journal = Journal::create(&path, META, 1).unwrap();
        journal.append(b"kept").unwrap();
        let handle = journal.sync_handle();
        journal.shared.poisoned.store(true, Ordering::Release);
        assert!(matches!(
            journal.append(b"x"),
            Err(JournalError::Poisoned { .. })
        ));
        assert!(matches!(journal.sync(), Err(JournalError::Poisoned { .. })));
        let err = handle.sync().unwrap_err();
        assert!(matches!(err, JournalError::Poisoned { .. }));
        assert!(err.to_string().contains(&*path.to_string_lossy()));
        assert_eq!(journal.frame_count(), 1);
    }

    #[test]
    fn a_flusher_thread_syncs_while_appends_continue() {
        fn send_sync<T: Send + Sync + Clone>(_: &T) {}
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut journal = Journal::create(&path, META, 1).unwrap();
        let handle = journal.sync_handle();
        send_sync(&handle);
        let flusher = thread::spawn(move || {
            for _ in 0..20 {
                handle.sync().unwrap();
            }
        });
        let all = payloads(500);
        for p in &all {
            journal.append(p).unwrap();
        }
        flusher.join().unwrap();
        journal.sync().unwrap();
        assert_eq!(Journal::read(&path, META).unwrap().frames, all);
    }

    #[test]
    fn snapshots_round_trip_and_replace_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_snapshot(dir.path(), "state", GROUP, 3, b"old state").unwrap();
        let snapshot = read_snapshot(&path, GROUP).unwrap().unwrap();
        assert_eq!(snapshot.generation, 3);
        assert_eq!(snapshot.payload, b"old state");
        write_snapshot(dir.path(), "state", GROUP, 4, b"").unwrap();
        let snapshot = read_snapshot(&path, GROUP).unwrap().unwrap();
        assert_eq!((snapshot.generation, snapshot.payload), (4, Vec::new()));
        let big = payloads(300).concat();
        write_snapshot(dir.path(), "state", GROUP, 5, &big).unwrap();
        assert_eq!(read_snapshot(&path, GROUP).unwrap().unwrap().payload, big);
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn a_missing_snapshot_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read_snapshot(&dir.path().join("none"), GROUP).unwrap(),
            None
        );
    }

    #[test]
    fn a_damaged_snapshot_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_snapshot(dir.path(), "state", GROUP, 3, b"some state").unwrap();
        let intact = fs::read(&path).unwrap();
        let name = path.to_string_lossy().into_owned();
        let mut damaged = Vec::new();
        for at in 0..intact.len() {
            let mut bytes = intact.clone();
            bytes[at] ^= 0x10;
            damaged.push(bytes);
        }
        for len in 0..intact.len() {
            damaged.push(intact[..len].to_vec());
        }
        let mut extended = intact.clone();
        extended.push(0);
        damaged.push(extended);
        for bytes in damaged {
            fs::write(&path, &bytes).unwrap();
            let err = read_snapshot(&path, GROUP).unwrap_err();
            assert!(
                matches!(
                    err,
                    JournalError::SnapshotCorrupt { .. } | JournalError::UnsupportedVersion { .. }
                ),
                "{err:?}"
            );
            assert!(err.to_string().contains(&name), "{err}");
        }
    }

    #[test]
    fn a_snapshot_of_another_kind_or_a_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), "state", GROUP, 3, b"x").unwrap();
        let err = read_snapshot(&dir.path().join("state"), META).unwrap_err();
        assert!(matches!(err, JournalError::WrongKind { .. }), "{err}");
        let path = dir.path().join("j");
        journal_with(&path, &payloads(3));
        let err = read_snapshot(&path, META).unwrap_err();
        assert!(err.to_string().contains("journal, not a snapshot"), "{err}");
    }

    #[test]
    fn a_leftover_tmp_does_not_disturb_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let tmp = dir.path().join("state.tmp");
        fs::write(&tmp, b"half-written").unwrap();
        assert_eq!(read_snapshot(&path, GROUP).unwrap(), None);
        write_snapshot(dir.path(), "state", GROUP, 1, b"one").unwrap();
        fs::write(&tmp, b"half-written").unwrap();
        assert_eq!(
            read_snapshot(&path, GROUP).unwrap().unwrap().payload,
            b"one"
        );
        write_snapshot(dir.path(), "state", GROUP, 2, b"two").unwrap();
        assert!(!tmp.exists());
        assert_eq!(
            read_snapshot(&path, GROUP).unwrap().unwrap().payload,
            b"two"
        );
    }

    #[test]
    fn snapshot_names_must_be_plain() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["", ".", "..", "a/b", "sub/", "state.tmp"] {
            let err = write_snapshot(dir.path(), name, GROUP, 1, b"x").unwrap_err();
            assert!(
                matches!(err, JournalError::BadSnapshotName { .. }),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn kinds_display_as_text_or_hex() {
        assert_eq!(META.to_string(), "META");
        assert_eq!(FileKind([0, 1, 0xfe, b'a']).to_string(), "0x0001fe61");
        assert_eq!(format!("{GROUP:?}"), "FileKind(GRUP)");
    }

    /// xorshift64: reproducible pseudo-random bytes without a dependency.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// Checks what replay promises for any content: no panic, and when it succeeds the good
    /// frames end where the damage starts, or where zeros up to the end of the file start.
    fn replay_anything(bytes: &[u8]) {
        let path = Path::new("fuzzed");
        if let Ok(replay) = Journal::decode(path, bytes, META) {
            let framed: usize = replay
                .frames
                .iter()
                .map(|f| f.len() + FRAME_HEADER_LEN)
                .sum();
            let end = (HEADER_LEN + framed) as u64;
            match replay.damage {
                Some(damage) => {
                    assert_eq!(damage.position, end);
                    assert_eq!(damage.position + damage.dropped_bytes, bytes.len() as u64);
                }
                None => assert!(bytes[end as usize..].iter().all(|&b| b == 0)),
            }
        }
        let _ = decode_snapshot(path, bytes.to_vec(), META);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        journal_with(&path, &payloads(12));
        let journal = fs::read(&path).unwrap();
        write_snapshot(dir.path(), "s", META, 1, &payloads(12).concat()).unwrap();
        let snapshot = fs::read(dir.path().join("s")).unwrap();
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let bytes = match round % 4 {
                0 => {
                    let len = noise.below(200);
                    noise.bytes(len)
                }
                1 => {
                    let mut bytes = journal[..HEADER_LEN].to_vec();
                    let len = noise.below(200);
                    bytes.extend(noise.bytes(len));
                    bytes
                }
                _ => {
                    let base = if round % 4 == 2 { &journal } else { &snapshot };
                    let mut bytes = base.clone();
                    for _ in 0..1 + noise.below(4) {
                        let at = noise.below(bytes.len());
                        bytes[at] = noise.next() as u8;
                    }
                    if noise.below(3) == 0 {
                        let len = noise.below(bytes.len() + 1);
                        bytes.truncate(len);
                    }
                    bytes
                }
            };
            replay_anything(&bytes);
        }
    }

    #[test]
    fn opening_arbitrary_files_leaves_a_clean_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        journal_with(&path, &payloads(6));
        let intact = fs::read(&path).unwrap();
        let mut noise = Noise(42);
        for _ in 0..200 {
            let mut bytes = intact.clone();
            let at = HEADER_LEN + noise.below(bytes.len() - HEADER_LEN);
            bytes[at] = noise.next() as u8;
            let extra = noise.below(40);
            bytes.extend(noise.bytes(extra));
            fs::write(&path, &bytes).unwrap();
            let (_, replay) = Journal::open(&path, META).unwrap();
            let again = Journal::read(&path, META).unwrap();
            assert_eq!(again.frames, replay.frames);
            assert_eq!(again.damage, None);
        }
    }
}
