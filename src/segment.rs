//! Segment files: fixed-size, preallocated, memory-mapped files holding records back to back.
//!
//! This is the only module that touches memory maps, and every `unsafe` block of the crate lives
//! here. The soundness argument is the single-writer/committed-length protocol:
//!
//! * one [`SegmentAppender`] per segment (it is not `Clone`) writes records strictly above the
//!   committed length, through a `&mut [u8]` that no reader can see;
//! * it then publishes a new committed length with `Release`;
//! * readers load the committed length with `Acquire` and only ever form `&[u8]` slices below it;
//! * bytes below the committed length are never written again while the map lives.
//!
//! Header layout (64 bytes, little-endian; see `storage-format.md`):
//!
//! ```text
//! 0   [u8; 8] magic          "WEIRSEG\0"
//! 8   u32     version        1
//! 12  u32     header_len     64: records start here
//! 16  u64     base_offset    offset of the first record in this segment
//! 24  u64     file_len       the preallocated size of the file
//! 32  u64     created_ms     Unix milliseconds when the segment was created
//! 40  [u8;20] reserved       zero
//! 60  u32     crc            CRC-32 (ISO-HDLC) of bytes 0..60
//! ```

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use memmap2::MmapRaw;

use crate::codec::{u32_at, u64_at};
use crate::fs::{self, names};
use crate::id::StreamId;
use crate::record::{self, DecodeError, RecordView};

/// Magic bytes at the start of every segment file.
pub const MAGIC: [u8; 8] = *b"WEIRSEG\0";
/// Current segment format version.
pub const VERSION: u32 = 1;
/// Bytes of the segment header; the first record starts here.
pub const HEADER_LEN: usize = 64;

/// Errors of the segment layer. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// An operating-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The disk has no room for a new segment.
    #[error(
        "no space to preallocate {bytes} bytes for segment {path}: free disk space or lower retention (the segment was not created; entries of the batch before it were stored)"
    )]
    NoSpace { path: PathBuf, bytes: u64 },
    /// The header is not a valid weir segment header.
    #[error(
        "segment {path} has a damaged or foreign header ({detail}): restore the file from a backup or move it out of the data directory"
    )]
    BadHeader { path: PathBuf, detail: String },
    /// A flush to disk failed earlier: the page cache can no longer be trusted.
    #[error(
        "segment {path} stopped taking writes after a failed flush to disk (data in memory may not match the disk): restart the process to recover from what is on disk"
    )]
    Poisoned { path: PathBuf },
    /// The record does not fit in the space left.
    #[error("record of {needed} bytes does not fit in segment {path} ({available} bytes left)")]
    Full {
        path: PathBuf,
        needed: usize,
        available: usize,
    },
}

/// What a segment's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub base_offset: u64,
    pub file_len: u64,
    pub created_ms: u64,
}

impl SegmentHeader {
    /// The 64 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        out[16..24].copy_from_slice(&self.base_offset.to_le_bytes());
        out[24..32].copy_from_slice(&self.file_len.to_le_bytes());
        out[32..40].copy_from_slice(&self.created_ms.to_le_bytes());
        let crc = crc32fast::hash(&out[..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses and checks a header; the error text says what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, String> {
        let Some(header) = bytes.get(..HEADER_LEN) else {
            return Err(format!(
                "file is {} bytes, shorter than a header",
                bytes.len()
            ));
        };
        if header[0..8] != MAGIC {
            return Err("wrong magic number".into());
        }
        let stored_crc = u32_at(header, 60);
        let crc = crc32fast::hash(&header[..60]);
        if stored_crc != crc {
            return Err(format!(
                "header checksum mismatch: stored {stored_crc:#010x}, computed {crc:#010x}"
            ));
        }
        let version = u32_at(header, 8);
        if version != VERSION {
            return Err(format!(
                "format version {version} is not supported (this build reads {VERSION})"
            ));
        }
        if u32_at(header, 12) as usize != HEADER_LEN {
            return Err("unexpected header length".into());
        }
        Ok(SegmentHeader {
            base_offset: u64_at(header, 16),
            file_len: u64_at(header, 24),
            created_ms: u64_at(header, 32),
        })
    }
}

/// A mapped segment, shared by the appender and any number of readers.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    header: SegmentHeader,
    map: MmapRaw,
    /// Bytes `[0, committed)` hold the header and complete, published records.
    committed: AtomicUsize,
    poisoned: AtomicBool,
    writable: bool,
}

impl Segment {
    /// Creates a new segment file of `file_len` bytes, preallocated so that writing into it can
    /// never fail for lack of space, and makes the file and its header durable. The file is
    /// prepared under `<path>.tmp` and renamed into place only once its header is on disk, so a
    /// crash never leaves a segment with a torn header. The caller fsyncs the directory.
    pub fn create(
        path: &Path,
        header: SegmentHeader,
    ) -> Result<(Segment, SegmentAppender), SegmentError> {
        if path.exists() {
            return Err(SegmentError::Io {
                op: "create",
                path: path.to_path_buf(),
                source: io::ErrorKind::AlreadyExists.into(),
            });
        }
        Self::create_in_place_of(path, header)
    }

    /// [`create`](Self::create), renaming the new file over an existing one at `path` (an empty
    /// segment replaced by a larger one at the same base offset). The old file keeps its name
    /// until the new one is complete, so a failure at any step leaves it as it was, and a
    /// writer still appending to it appends to a file that is in the directory.
    pub fn create_in_place_of(
        path: &Path,
        header: SegmentHeader,
    ) -> Result<(Segment, SegmentAppender), SegmentError> {
        assert!(header.file_len as usize > HEADER_LEN, "segment too small");
        let tmp_path = names::tmp_path(path);
        let file = fs::create_truncate(&tmp_path).map_err(io_error("create", &tmp_path))?;
        // A failure removes the temporary file: it never held data, and removing it keeps a full
        // disk from leaving debris (what a failed removal leaves is replaced by the next create).
        // The caller syncs the directory.
        let segment = fs::place(
            &tmp_path,
            path,
            || Self::prepare(&file, &tmp_path, path, header),
            io_error("rename", &tmp_path),
        )?;
        let appender = SegmentAppender {
            write_pos: HEADER_LEN,
        };
        Ok((segment, appender))
    }

    /// Preallocates and maps the file being created at `tmp_path`, writes its header, and makes
    /// both durable.
    fn prepare(
        file: &File,
        tmp_path: &Path,
        path: &Path,
        header: SegmentHeader,
    ) -> Result<Segment, SegmentError> {
        preallocate(file, tmp_path, header.file_len)?;
        let map = fs::map(file, tmp_path).map_err(io_error("map", tmp_path))?;
        let mut segment = Segment {
            path: tmp_path.to_path_buf(),
            header,
            map,
            committed: AtomicUsize::new(HEADER_LEN),
            poisoned: AtomicBool::new(false),
            writable: true,
        };
        segment.expect_appends();
        segment.write_header(&header)?;
        fs::sync_all(file, tmp_path).map_err(io_error("fsync", tmp_path))?;
        Ok(Segment {
            path: path.to_path_buf(),
            ..segment
        })
    }

    /// Opens an existing segment for appending. Only the header is checked: the caller scans
    /// the records (see [`Segment::scan_from`] and [`Scanner`]) and then calls [`Segment::recover_appender`].
    pub fn open(path: &Path) -> Result<Segment, SegmentError> {
        Self::open_with(path, true)
    }

    /// Opens an existing segment without ever writing to it (inspection next to a live writer).
    pub fn open_read_only(path: &Path) -> Result<Segment, SegmentError> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, writable: bool) -> Result<Segment, SegmentError> {
        let mut segment = Self::map_unchecked(path, writable)?;
        let file_len = segment.header.file_len;
        let header = SegmentHeader::decode(segment.recovery_bytes()).map_err(|detail| {
            SegmentError::BadHeader {
                path: path.to_path_buf(),
                detail,
            }
        })?;
        if header.file_len != file_len {
            return Err(SegmentError::BadHeader {
                path: path.to_path_buf(),
                detail: format!(
                    "header says the file is {} bytes, it is {file_len}",
                    header.file_len
                ),
            });
        }
        Ok(Segment { header, ..segment })
    }

    /// Maps the file with a placeholder header (base offset 0, the file's size) for the caller
    /// to check or rebuild.
    fn map_unchecked(path: &Path, writable: bool) -> Result<Segment, SegmentError> {
        let file = fs::open_existing(path, writable).map_err(io_error("open", path))?;
        let file_len = file.metadata().map_err(io_error("stat", path))?.len();
        if file_len < HEADER_LEN as u64 {
            return Err(SegmentError::BadHeader {
                path: path.to_path_buf(),
                detail: format!("file is {file_len} bytes, shorter than a header"),
            });
        }
        let map = if writable {
            fs::map(&file, path)
        } else {
            fs::map_read_only(&file)
        }
        .map_err(io_error("map", path))?;
        Ok(Segment {
            path: path.to_path_buf(),
            header: SegmentHeader {
                base_offset: 0,
                file_len,
                created_ms: 0,
            },
            map,
            committed: AtomicUsize::new(HEADER_LEN),
            poisoned: AtomicBool::new(false),
            writable,
        })
    }

    /// Opens a segment whose header is damaged (wrong magic number or checksum), rebuilding the
    /// header from what the log knows of the file: the base offset `offsets.start` from its
    /// name, and its size. Every record carries its own offset, ID and checksum, so the header
    /// is only needed to anchor them; the rebuild is refused unless the first valid record's
    /// offset lies in `offsets` (from the name up to the next segment's base), and when the
    /// header's checksum holds (another version's header is not damage). A writable segment
    /// gets the rebuilt header written back and flushed to disk. Returns the segment and what
    /// was wrong with the old header.
    pub fn open_rebuilding_header(
        path: &Path,
        offsets: std::ops::Range<u64>,
        writable: bool,
    ) -> Result<(Segment, String), SegmentError> {
        let mut segment = Self::map_unchecked(path, writable)?;
        let bad_header = |detail: String| SegmentError::BadHeader {
            path: path.to_path_buf(),
            detail,
        };
        let bytes = segment.recovery_bytes();
        let damage = match SegmentHeader::decode(bytes) {
            Err(detail) if !header_checksum_holds(bytes) => detail,
            Err(detail) => {
                return Err(bad_header(format!(
                    "{detail}; its checksum holds, so it is not damage: run the version that wrote it"
                )));
            }
            Ok(_) => return Err(bad_header("its header is valid".into())),
        };
        let first = Scanner::new(bytes, HEADER_LEN, offsets.start).find_map(|item| match item {
            ScanItem::Record { record, .. } => Some((record.offset, record.timestamp_ms)),
            ScanItem::Damaged { .. } => None,
        });
        let Some((first_offset, created_ms)) = first.filter(|(offset, _)| offsets.contains(offset))
        else {
            return Err(bad_header(format!(
                "{damage}; no valid record in it shows that it holds offsets {}..{}, so its header cannot be rebuilt",
                offsets.start, offsets.end
            )));
        };
        debug_assert!(first_offset >= offsets.start);
        let header = SegmentHeader {
            base_offset: offsets.start,
            file_len: segment.header.file_len,
            created_ms,
        };
        if writable {
            segment.write_header(&header)?;
        }
        Ok((Segment { header, ..segment }, damage))
    }

    /// Writes `header` over the map's first bytes and flushes them. `&mut self` proves that the
    /// segment is not shared yet and has no appender (it is being created or repaired).
    fn write_header(&mut self, header: &SegmentHeader) -> Result<(), SegmentError> {
        assert!(
            self.writable && self.map.len() >= HEADER_LEN,
            "no room for a header"
        );
        // SAFETY: `&mut self`: no reader holds this segment and no appender exists, so nothing
        // else reads or writes the map; it is at least HEADER_LEN bytes long (asserted above).
        unsafe {
            std::ptr::copy_nonoverlapping(
                header.encode().as_ptr(),
                self.map.as_mut_ptr(),
                HEADER_LEN,
            );
        }
        self.flush_range(0, HEADER_LEN)
    }

    /// The whole file as it is on disk now. Used only at recovery, before an appender exists
    /// and before the segment is shared, to find where the records end.
    pub fn recovery_bytes(&mut self) -> &[u8] {
        // SAFETY: `&mut self` proves that no reader holds this segment and no appender exists
        // (the appender is created only by `create` or `recover_appender`, which consume or
        // follow this call), so nothing writes the map while the returned borrow lives.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.map.len()) }
    }

    /// Sets the committed length to `end` (where recovery found the records end), zeroes the
    /// bytes `[end, dirty_end)` left by a torn write so that stale bytes can never be read as a
    /// record later, and returns the appender that continues at `end`.
    pub fn recover_appender(
        &mut self,
        end: usize,
        dirty_end: usize,
    ) -> Result<SegmentAppender, SegmentError> {
        assert!(self.writable, "recover_appender on a read-only segment");
        assert!(
            HEADER_LEN <= end && end <= dirty_end && dirty_end <= self.map.len(),
            "recovered end {end}..{dirty_end} outside segment of {} bytes",
            self.map.len()
        );
        assert_eq!(end % record::ALIGN, 0, "recovered end {end} is not aligned");
        if dirty_end > end {
            // SAFETY: `&mut self`: no reader or appender exists; the range is inside the map.
            unsafe { std::ptr::write_bytes(self.map.as_mut_ptr().add(end), 0, dirty_end - end) };
            self.flush_range(end, dirty_end)?;
        }
        *self.committed.get_mut() = end;
        self.expect_appends();
        Ok(SegmentAppender { write_pos: end })
    }

    /// Marks the first `end` bytes as readable without creating an appender (read-only opens
    /// and sealed segments).
    pub fn set_committed(&mut self, end: usize) {
        assert!(HEADER_LEN <= end && end <= self.map.len());
        *self.committed.get_mut() = end;
    }

    /// The segment's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed header.
    #[cfg(any(test, feature = "internals"))]
    pub fn header(&self) -> SegmentHeader {
        self.header
    }

    /// Offset of the first record stored in this segment.
    pub fn base_offset(&self) -> u64 {
        self.header.base_offset
    }

    /// The file's preallocated size.
    pub fn capacity(&self) -> usize {
        self.map.len()
    }

    /// Bytes holding the header and published records.
    pub fn committed_len(&self) -> usize {
        self.committed.load(Ordering::Acquire)
    }

    /// The published bytes: the header and every complete record. Never changes afterwards.
    pub fn bytes(&self) -> &[u8] {
        let len = self.committed_len();
        // SAFETY: bytes below the committed length (loaded with Acquire, pairing with the
        // appender's Release in `publish`) are fully written and never written again while the
        // map lives; the appender only writes at or above the committed length.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), len) }
    }

    /// Writes `[start, end)` of the map to disk (msync, a range-limited fdatasync on Linux). A
    /// failure poisons the segment: the kernel may have dropped the dirty pages, so what memory
    /// shows may no longer match the disk.
    pub fn flush_range(&self, start: usize, end: usize) -> Result<(), SegmentError> {
        self.check_not_poisoned()?;
        if end <= start {
            return Ok(());
        }
        fs::msync(&self.map, &self.path, start, end - start).map_err(|source| {
            self.poisoned.store(true, Ordering::Release);
            SegmentError::Io {
                op: "msync",
                path: self.path.clone(),
                source,
            }
        })
    }

    /// Turns the kernel's read-ahead off for the map while it is appended to. A fault on a page
    /// that is not in memory reads ahead, and in a file just preallocated that means zeroing up
    /// to the device's whole read-ahead window (8 MiB on a virtual disk) inside the one fault: a
    /// new segment's first write stalled the writer for up to 100 ms. Nothing past the write
    /// position is worth reading ahead (it is zeros), and what is before it is in memory.
    fn expect_appends(&self) {
        // Best effort: without the advice, faults only cost more.
        let _ = self.map.advise(memmap2::Advice::Random);
    }

    /// Turns read-ahead back on once the segment is sealed: from then on it is only read, in
    /// order, and perhaps from disk after its pages were evicted.
    pub fn expect_reads(&self) {
        let _ = self.map.advise(memmap2::Advice::Normal);
    }

    /// Drops the map's page-table entries for the whole pages of `[start, end)`
    /// (`MADV_DONTNEED`), pages the appender has finished writing. Their bytes stay in the page
    /// cache, dirty ones are written back as before, and a later read maps them in again. The
    /// point is the cost of writing them back: a page still mapped writable must be
    /// write-protected first, and each such page costs an interrupt to every other CPU running
    /// this process (a TLB shootdown, in a virtual machine a trap to the hypervisor), where
    /// dropping the entries of a whole range costs one. Best effort: an error changes nothing.
    pub fn release_written(&self, start: usize, end: usize) {
        let page = rustix::param::page_size();
        let start = start / page * page;
        let end = (end / page * page).min(self.map.len());
        if !self.writable || start >= end {
            return;
        }
        // SAFETY: the map is a shared mapping of a regular file (`map_raw`), on which
        // MADV_DONTNEED only drops page-table entries: the contents stay in the page cache (a
        // dirty entry marks its page dirty there, to be written back as before) and any later
        // access faults the very same bytes back in, so no reference into the map sees a
        // change. The range lies inside the map and is page-aligned, as is the map.
        let released = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
        };
        debug_assert!(released.is_ok(), "MADV_DONTNEED failed: {released:?}");
    }

    /// Faults `[start, end)` of the map in, writable (`MADV_POPULATE_WRITE`), so that the
    /// appender's first write to those pages does not stop in a page fault that allocates and
    /// zeroes them. Contents are unchanged; the range is clamped to the map. Best effort: it
    /// returns whether the kernel did it (not before Linux 5.14, nor on a read-only map, nor
    /// when memory is short), and the appender's own writes fault the pages in otherwise. The
    /// file is preallocated, so a full disk cannot make a fault fail here or later.
    pub fn prefault(&self, start: usize, end: usize) -> bool {
        let end = end.min(self.map.len());
        if !self.writable || start >= end {
            return false;
        }
        self.map
            .advise_range(memmap2::Advice::PopulateWrite, start, end - start)
            .is_ok()
    }

    /// Whether an earlier flush failed.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    fn check_not_poisoned(&self) -> Result<(), SegmentError> {
        if self.is_poisoned() {
            return Err(SegmentError::Poisoned {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Iterates over the published records from byte `from` (a record boundary).
    pub fn scan_from(&self, from: usize, expect_offset: u64) -> Scanner<'_> {
        Scanner::new(self.bytes(), from, expect_offset)
    }
}

/// The unique right to append to one segment.
#[derive(Debug)]
pub struct SegmentAppender {
    write_pos: usize,
}

impl SegmentAppender {
    /// Where the next record goes.
    pub fn write_pos(&self) -> usize {
        self.write_pos
    }

    /// Bytes left for records.
    pub fn remaining(&self, segment: &Segment) -> usize {
        segment.capacity() - self.write_pos
    }

    /// Reserves `len` bytes (a multiple of the record alignment) at the write position and lets
    /// `fill` write them. Not visible to readers until [`publish`](Self::publish).
    pub fn append<E>(
        &mut self,
        segment: &Segment,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Result<usize, E>, SegmentError> {
        assert!(segment.writable, "append to a read-only segment");
        debug_assert_eq!(len % record::ALIGN, 0);
        debug_assert!(self.write_pos >= segment.committed_len());
        segment.check_not_poisoned()?;
        let available = self.remaining(segment);
        if len > available {
            return Err(SegmentError::Full {
                path: segment.path.clone(),
                needed: len,
                available,
            });
        }
        let pos = self.write_pos;
        // SAFETY: `[pos, pos+len)` is inside the map (checked against the remaining space) and
        // at or above the committed length, so no reader can see it; `self` is the segment's
        // only appender and `&mut self` makes this the only live mutable borrow of the range.
        let dst = unsafe { std::slice::from_raw_parts_mut(segment.map.as_mut_ptr().add(pos), len) };
        match fill(dst) {
            Ok(()) => {
                self.write_pos += len;
                Ok(Ok(pos))
            }
            Err(err) => Ok(Err(err)),
        }
    }

    /// Makes everything appended so far visible to readers.
    pub fn publish(&mut self, segment: &Segment) {
        debug_assert!(self.write_pos >= segment.committed_len());
        segment.committed.store(self.write_pos, Ordering::Release);
    }
}

/// One step of a scan over a segment's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanItem<'a> {
    /// A valid record at byte `pos`.
    Record { pos: usize, record: RecordView<'a> },
    /// Bytes `[pos, resume)` are not valid records, but a valid record starts at `resume`.
    Damaged {
        pos: usize,
        resume: usize,
        error: DecodeError,
    },
}

/// Where a scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanEnd {
    /// End of the last valid record: where the next record belongs.
    pub end: usize,
    /// End of the last non-zero byte seen after `end`, rounded up to the alignment: the bytes
    /// `[end, dirty_end)` are garbage from a torn write (equal to `end` when the tail is clean).
    pub dirty_end: usize,
    /// Why the scan stopped at `end` (`Empty` for a clean end of data).
    pub reason: DecodeError,
}

impl ScanEnd {
    /// Whether the records ended with zeroed space: no garbage, no damage after them.
    pub fn is_clean(&self) -> bool {
        self.dirty_end == self.end && self.reason == DecodeError::Empty
    }
}

/// Walks records in a byte slice from a record boundary, skipping damaged regions when a valid
/// record follows them. A record is only accepted after resynchronisation if its CRC holds and
/// its offset and ID continue the ones before it.
#[derive(Debug)]
pub struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    expect_offset: u64,
    last_id: Option<StreamId>,
    end: Option<ScanEnd>,
}

impl<'a> Scanner<'a> {
    /// A scan of `bytes` from `from`, expecting the first record to have offset
    /// `expect_offset` or more.
    pub fn new(bytes: &'a [u8], from: usize, expect_offset: u64) -> Self {
        Scanner {
            bytes,
            pos: from.min(bytes.len()),
            expect_offset,
            last_id: None,
            end: None,
        }
    }

    /// Where and why the scan ended; `None` until the iterator has returned `None`.
    pub fn end(&self) -> Option<ScanEnd> {
        self.end
    }

    /// Also require IDs greater than `last_id` (the ID of the record before `from`).
    pub fn after_id(mut self, last_id: StreamId) -> Self {
        self.last_id = Some(last_id);
        self
    }

    fn accepts(&self, record: &RecordView<'_>) -> bool {
        record.offset >= self.expect_offset && self.last_id.is_none_or(|last| record.id > last)
    }

    fn take(&mut self, pos: usize, record: RecordView<'a>) -> ScanItem<'a> {
        self.pos = pos + record.padded_len;
        self.expect_offset = record.offset + 1;
        self.last_id = Some(record.id);
        ScanItem::Record { pos, record }
    }

    /// The next aligned position after `from` holding an acceptable record.
    fn resync(&self, from: usize) -> Option<(usize, RecordView<'a>)> {
        let mut pos = record::padded(from + 1);
        while pos + record::FIXED_LEN <= self.bytes.len() {
            if record::peek(&self.bytes[pos..]).is_some()
                && let Ok(record) = record::decode(&self.bytes[pos..])
                && self.accepts(&record)
            {
                return Some((pos, record));
            }
            pos += record::ALIGN;
        }
        None
    }

    fn dirty_end(&self, from: usize) -> usize {
        last_non_zero(&self.bytes[from..]).map_or(from, |at| {
            record::padded(from + at + 1).min(self.bytes.len())
        })
    }
}

impl<'a> Iterator for Scanner<'a> {
    type Item = ScanItem<'a>;

    fn next(&mut self) -> Option<ScanItem<'a>> {
        if self.end.is_some() {
            return None;
        }
        let pos = self.pos;
        let error = match record::decode(&self.bytes[pos..]) {
            Ok(record) if self.accepts(&record) => return Some(self.take(pos, record)),
            Ok(_) => DecodeError::Inconsistent,
            Err(error) => error,
        };
        // The end of the data is usually followed by the rest of a large, zeroed file: look at
        // it once, both to tell zeroed space from damage and to find where garbage ends.
        let dirty_end = self.dirty_end(pos);
        if error != DecodeError::Empty || dirty_end > pos {
            if let Some((resume, record)) = self.resync(pos) {
                let damaged = ScanItem::Damaged { pos, resume, error };
                self.pos = resume;
                debug_assert!(self.accepts(&record));
                return Some(damaged);
            }
        }
        self.end = Some(ScanEnd {
            end: pos,
            dirty_end,
            reason: error,
        });
        None
    }
}

/// The position of the last non-zero byte. Tests whole 64-byte blocks with an OR that the
/// compiler vectorises: the zeroed rest of a segment can be hundreds of MiB, checked at every
/// open that scans the segment's end.
fn last_non_zero(bytes: &[u8]) -> Option<usize> {
    const BLOCK: usize = 64;
    let blocks_end = bytes.len() - bytes.len() % BLOCK;
    if let Some(at) = bytes[blocks_end..].iter().rposition(|&b| b != 0) {
        return Some(blocks_end + at);
    }
    let from_end = bytes[..blocks_end]
        .rchunks_exact(BLOCK)
        .position(|block| block.iter().fold(0u8, |acc, &b| acc | b) != 0)?;
    let start = blocks_end - (from_end + 1) * BLOCK;
    let at = bytes[start..start + BLOCK].iter().rposition(|&b| b != 0)?;
    Some(start + at)
}

/// Reserves `len` bytes of disk for `file`, so that writes through the map never hit a hole (a
/// hole on a full disk turns a store into SIGBUS).
fn preallocate(file: &File, path: &Path, len: u64) -> Result<(), SegmentError> {
    match fs::preallocate(file, path, len) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::Unsupported => write_zeros(file, path, len),
        Err(error) if is_no_space(&error) => Err(SegmentError::NoSpace {
            path: path.to_path_buf(),
            bytes: len,
        }),
        Err(source) => Err(SegmentError::Io {
            op: "fallocate",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn is_no_space(error: &io::Error) -> bool {
    [rustix::io::Errno::NOSPC, rustix::io::Errno::FBIG]
        .iter()
        .any(|errno| error.raw_os_error() == Some(errno.raw_os_error()))
}

/// Preallocation for file systems without `fallocate`: write every block explicitly.
fn write_zeros(file: &File, path: &Path, len: u64) -> Result<(), SegmentError> {
    let zeros = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        let chunk = left.min(zeros.len() as u64) as usize;
        fs::write_all(file, path, &zeros[..chunk]).map_err(|source| {
            if is_no_space(&source) {
                SegmentError::NoSpace {
                    path: path.to_path_buf(),
                    bytes: len,
                }
            } else {
                SegmentError::Io {
                    op: "preallocate",
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        left -= chunk as u64;
    }
    Ok(())
}

/// Whether the header's stored checksum matches bytes 0..60 (the file is at least a header
/// long).
fn header_checksum_holds(bytes: &[u8]) -> bool {
    crc32fast::hash(&bytes[..60]) == u32_at(bytes, 60)
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SegmentError + 'a {
    move |source| SegmentError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NewRecord;

    #[test]
    fn last_non_zero_matches_a_byte_by_byte_search() {
        for len in [0usize, 1, 7, 63, 64, 65, 128, 300, 1000] {
            for at in [None, Some(0), Some(len / 2), Some(len.saturating_sub(1))] {
                let mut bytes = vec![0u8; len];
                if let Some(at) = at.filter(|&at| at < len) {
                    bytes[at] = 0x80;
                    if at > 3 {
                        bytes[at - 3] = 1;
                    }
                }
                let naive = bytes.iter().rposition(|&b| b != 0);
                assert_eq!(last_non_zero(&bytes), naive, "len {len}, at {at:?}");
            }
        }
    }

    fn encoded(offset: u64, body: &[u8]) -> Vec<u8> {
        let headers: [(&[u8], &[u8]); 0] = [];
        NewRecord {
            offset,
            id: StreamId::new(offset + 1, 0),
            timestamp_ms: 0,
            headers: &headers,
            idempotency: None,
            body,
        }
        .to_vec()
        .unwrap()
    }

    /// A new 64 KiB segment at `dir/seg`, based at offset 0.
    fn small_segment(dir: &Path) -> (Segment, SegmentAppender) {
        let header = SegmentHeader {
            base_offset: 0,
            file_len: 64 << 10,
            created_ms: 1,
        };
        Segment::create(&dir.join("seg"), header).unwrap()
    }

    /// Appends `record` (not yet published); returns where it went.
    fn append_bytes(segment: &Segment, appender: &mut SegmentAppender, record: &[u8]) -> usize {
        appender
            .append(segment, record.len(), |dst| {
                dst.copy_from_slice(record);
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap()
    }

    fn image(count: u64) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = vec![0u8; HEADER_LEN];
        let mut positions = Vec::new();
        for offset in 0..count {
            positions.push(bytes.len());
            bytes.extend(encoded(
                offset,
                &vec![b'a' + (offset % 26) as u8; 10 + offset as usize],
            ));
        }
        bytes.resize(bytes.len() + 256, 0);
        (bytes, positions)
    }

    fn offsets(scanner: &mut Scanner<'_>) -> (Vec<u64>, Vec<(usize, usize)>) {
        let mut records = Vec::new();
        let mut damaged = Vec::new();
        for item in scanner.by_ref() {
            match item {
                ScanItem::Record { record, .. } => records.push(record.offset),
                ScanItem::Damaged { pos, resume, .. } => damaged.push((pos, resume)),
            }
        }
        (records, damaged)
    }

    #[test]
    fn header_round_trip_and_rejections() {
        let header = SegmentHeader {
            base_offset: 42,
            file_len: 4096,
            created_ms: 7,
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        for at in [0, 8, 16, 61] {
            let mut damaged = bytes;
            damaged[at] ^= 1;
            assert!(SegmentHeader::decode(&damaged).is_err(), "byte {at}");
        }
        assert!(SegmentHeader::decode(&bytes[..10]).is_err());
    }

    #[test]
    fn a_clean_scan_ends_at_the_zeros() {
        let (bytes, positions) = image(20);
        let mut scanner = Scanner::new(&bytes, HEADER_LEN, 0);
        let (records, damaged) = offsets(&mut scanner);
        assert_eq!(records, (0..20).collect::<Vec<_>>());
        assert!(damaged.is_empty());
        let end = scanner.end().unwrap();
        assert_eq!(end.end, bytes.len() - 256);
        assert_eq!(end.dirty_end, end.end);
        assert_eq!(end.reason, DecodeError::Empty);
        assert_eq!(positions.len(), 20);
    }

    #[test]
    fn a_damaged_record_in_the_middle_is_skipped_and_the_rest_kept() {
        let (mut bytes, positions) = image(20);
        bytes[positions[7] + 70] ^= 0xff;
        let mut scanner = Scanner::new(&bytes, HEADER_LEN, 0);
        let (records, damaged) = offsets(&mut scanner);
        assert_eq!(records, (0..20).filter(|&o| o != 7).collect::<Vec<_>>());
        assert_eq!(damaged, vec![(positions[7], positions[8])]);
    }

    #[test]
    fn a_damaged_length_field_still_resynchronises() {
        let (mut bytes, positions) = image(20);
        bytes[positions[3]..positions[3] + 4].copy_from_slice(&[0xff; 4]);
        let mut scanner = Scanner::new(&bytes, HEADER_LEN, 0);
        let (records, _) = offsets(&mut scanner);
        assert_eq!(records, (0..20).filter(|&o| o != 3).collect::<Vec<_>>());
    }

    #[test]
    fn garbage_after_the_last_record_is_a_torn_tail() {
        let (mut bytes, positions) = image(5);
        let tail = bytes.len() - 256;
        bytes[tail..tail + 13].copy_from_slice(b"garbage bytes");
        let mut scanner = Scanner::new(&bytes, HEADER_LEN, 0);
        let (records, damaged) = offsets(&mut scanner);
        assert_eq!(records.len(), 5);
        assert!(damaged.is_empty());
        let end = scanner.end().unwrap();
        assert_eq!(end.end, tail);
        assert_eq!(end.dirty_end, tail + 16);
        assert!(positions.iter().all(|&p| p < tail));
    }

    #[test]
    fn a_half_written_last_record_is_a_torn_tail() {
        let (mut bytes, positions) = image(5);
        let end_of_records = bytes.len() - 256;
        bytes[positions[4] + 40..end_of_records].fill(0);
        let mut scanner = Scanner::new(&bytes, HEADER_LEN, 0);
        let (records, damaged) = offsets(&mut scanner);
        assert_eq!(records, vec![0, 1, 2, 3]);
        assert!(damaged.is_empty());
        assert_eq!(scanner.end().unwrap().end, positions[4]);
    }

    #[test]
    fn a_stale_record_with_an_old_offset_is_not_accepted() {
        let (mut bytes, positions) = image(6);
        let stale = encoded(1, b"old");
        bytes[positions[3]..positions[3] + stale.len()].copy_from_slice(&stale);
        let mut scanner = Scanner::new(&bytes, HEADER_LEN, 0);
        let (records, _) = offsets(&mut scanner);
        assert!(!records[3..].contains(&1));
    }

    #[test]
    fn create_append_publish_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let header = SegmentHeader {
            base_offset: 10,
            file_len: 8192,
            created_ms: 1,
        };
        let (segment, mut appender) = Segment::create(&path, header).unwrap();
        let record = encoded(10, b"hello");
        let pos = append_bytes(&segment, &mut appender, &record);
        assert_eq!(pos, HEADER_LEN);
        assert_eq!(
            segment.committed_len(),
            HEADER_LEN,
            "not visible before publish"
        );
        appender.publish(&segment);
        assert_eq!(segment.bytes().len(), HEADER_LEN + record.len());
        segment.flush_range(0, segment.committed_len()).unwrap();
        let too_big = appender.append(&segment, 1 << 20, |_| Ok::<(), ()>(()));
        assert!(matches!(too_big, Err(SegmentError::Full { .. })));
        drop(segment);

        let mut reopened = Segment::open(&path).unwrap();
        assert_eq!(reopened.header(), header);
        let mut scanner = Scanner::new(reopened.recovery_bytes(), HEADER_LEN, 10);
        let (records, _) = offsets(&mut scanner);
        assert_eq!(records, vec![10]);
        let read_only = Segment::open_read_only(&path).unwrap();
        assert_eq!(read_only.base_offset(), 10);
        assert!(
            Segment::create(&path, header).is_err(),
            "never overwrites a file"
        );
    }

    #[test]
    fn released_pages_keep_their_bytes_in_memory_and_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, mut appender) = small_segment(dir.path());
        let mut written = Vec::new();
        for offset in 0..200 {
            let record = encoded(offset, &[offset as u8; 100]);
            append_bytes(&segment, &mut appender, &record);
            written.extend_from_slice(&record);
        }
        appender.publish(&segment);
        let end = segment.committed_len();
        assert!(end > 3 * 4096, "several whole pages written");
        segment.release_written(0, end);
        segment.release_written(end, 1 << 30);
        assert_eq!(
            &segment.bytes()[HEADER_LEN..end],
            &written[..],
            "read back in"
        );
        segment.flush_range(0, end).unwrap();
        drop(segment);
        let mut reopened = Segment::open(&dir.path().join("seg")).unwrap();
        assert_eq!(&reopened.recovery_bytes()[HEADER_LEN..end], &written[..]);
    }

    #[test]
    fn prefaulting_changes_no_byte_and_stays_inside_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let (segment, mut appender) = small_segment(dir.path());
        let record = encoded(0, b"written before the prefault");
        append_bytes(&segment, &mut appender, &record);
        appender.publish(&segment);
        assert!(segment.prefault(0, 1 << 30), "the whole map, clamped");
        assert!(
            !segment.prefault(64 << 10, 128 << 10),
            "nothing past the end"
        );
        let end = segment.committed_len();
        assert_eq!(end, HEADER_LEN + record.len());
        assert_eq!(&segment.bytes()[HEADER_LEN..], &record[..]);
        segment.flush_range(0, end).unwrap();
        drop(segment);
        let mut reopened = Segment::open(&path).unwrap();
        let bytes = reopened.recovery_bytes();
        assert_eq!(&bytes[HEADER_LEN..end], &record[..]);
        assert!(
            bytes[end..].iter().all(|&b| b == 0),
            "the rest still reads as empty"
        );
        let read_only = Segment::open_read_only(&path).unwrap();
        assert!(!read_only.prefault(0, 4096));
    }

    /// Overwrites bytes of the file at `path`.
    fn overwrite(path: &Path, at: u64, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.write_all_at(bytes, at).unwrap();
    }

    #[test]
    fn only_a_damaged_header_over_records_of_its_place_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let (segment, mut appender) = small_segment(dir.path());
        append_bytes(&segment, &mut appender, &encoded(0, b"kept"));
        appender.publish(&segment);
        drop(segment);
        let rebuild = |offsets| Segment::open_rebuilding_header(&path, offsets, true);

        // A header whose checksum holds is never rebuilt (another version wrote it).
        let mut other_version = Segment::open(&path).unwrap().header().encode();
        other_version[8] = 2;
        let crc = crc32fast::hash(&other_version[..60]);
        other_version[60..].copy_from_slice(&crc.to_le_bytes());
        overwrite(&path, 0, &other_version);
        assert!(matches!(
            rebuild(0..10),
            Err(SegmentError::BadHeader { .. })
        ));

        // Damage: rebuilt only where its records say the file belongs.
        overwrite(&path, 0, &[0xff]);
        assert!(matches!(
            rebuild(1..10),
            Err(SegmentError::BadHeader { .. })
        ));
        let (segment, damage) = rebuild(0..10).unwrap();
        assert!(damage.contains("magic"), "{damage}");
        assert_eq!(segment.header().file_len, 64 << 10);
        drop(segment);
        let reopened = Segment::open(&path).unwrap();
        assert_eq!(reopened.base_offset(), 0);

        // A damaged header over no record at all cannot be placed.
        let (empty, _) = Segment::create(&dir.path().join("empty"), reopened.header()).unwrap();
        drop(empty);
        let empty_path = dir.path().join("empty");
        overwrite(&empty_path, 20, &[0xff]);
        let refused = Segment::open_rebuilding_header(&empty_path, 0..10, true).unwrap_err();
        assert!(refused.to_string().contains("no valid record"), "{refused}");
    }

    #[test]
    fn a_foreign_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        let error = Segment::open(&path).unwrap_err();
        assert!(error.to_string().contains("seg"), "{error}");
        assert!(matches!(error, SegmentError::BadHeader { .. }));
    }
}
