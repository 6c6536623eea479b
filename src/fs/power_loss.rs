//! A power-loss model for a real process (feature `power-loss-record`, for tests only).
//!
//! Killing a process with SIGKILL loses nothing it wrote: the page cache survives. A power loss
//! loses everything the disk was not made to hold. To test the second with the first, a process
//! built with this feature and started with [`ROOT_VAR`] (a directory) and [`RECORD_VAR`] (a file
//! outside it) records every call of [`crate::fs`] that touches a file under the directory; after
//! killing the process, [`revert`] replays the record and puts the directory back to what the
//! disk held at the moment of the kill, as far as the process's syncs guarantee it.
//!
//! The model, which follows what POSIX promises and nothing more:
//! * A file's bytes and length are durable as they were when its last successful fdatasync or
//!   fsync *started*; what was written or cut since is lost. A write that ends while a sync runs
//!   counts as unsynced, a write that ended before the sync started as synced, so the model never
//!   loses a byte a completed sync covered.
//! * A file created since, and never synced, is empty.
//! * A directory's entries (created, renamed, linked, removed) are durable as they were when its
//!   last successful directory fsync started: a name made since is absent, a name removed or
//!   renamed away since is back, holding its inode's durable bytes.
//! * The directory itself, if the process created it, exists only once its parent was synced
//!   after that; until then the whole directory is lost. Directories below it are not modelled
//!   (they are taken as durable once made; the Raft log's directory has none).
//! * Optionally (`torn_seed`), a file whose unsynced change is only an append keeps a random part
//!   of what was appended, its end possibly garbage: a power loss can leave a torn write, which
//!   recovery must cut. What was synced is never touched.
//! * Whatever is under the directory when the process starts is taken as durable (a test starts
//!   the process on a fresh directory, or on one this module reverted). A file changed only
//!   through a memory map (which bypasses these calls) keeps what it holds on disk.
//!
//! The hooks run each recorded call under one lock, so that the record's order is the order in
//! which the calls took effect; the record is written with plain writes, as SIGKILL loses none.
//! A build without the feature has none of this: [`crate::fs`] calls the file system directly.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use parking_lot::{Mutex, MutexGuard};

/// The environment variable naming the directory whose files are recorded.
pub const ROOT_VAR: &str = "WEIR_POWER_LOSS_ROOT";
/// The environment variable naming the record file (outside that directory); a process truncates
/// it when it starts recording.
pub const RECORD_VAR: &str = "WEIR_POWER_LOSS_RECORD";

/// An inode: what a file's bytes belong to, whatever names it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Ino {
    dev: u64,
    ino: u64,
}

impl Ino {
    fn of(meta: &std::fs::Metadata) -> Ino {
        Ino {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// The record's events, each a tag byte then its fields (u64 little-endian; bytes and names as a
/// u64 length then the bytes).
mod tag {
    /// The files under the root when recording starts: count, then (name, inode) each.
    pub const NAMES: u8 = 0;
    /// An inode's bytes when first touched: inode, bytes.
    pub const CONTENT: u8 = 1;
    /// A name now refers to an inode: name, inode.
    pub const LINK: u8 = 2;
    /// A name is gone: name.
    pub const UNLINK: u8 = 3;
    /// Bytes written: inode, position, bytes.
    pub const WRITE: u8 = 4;
    /// A file's new length: inode, length.
    pub const SET_LEN: u8 = 5;
    /// A file sync started: ticket, inode.
    pub const SYNC_START: u8 = 6;
    /// A file sync succeeded: ticket.
    pub const SYNC_DONE: u8 = 7;
    /// A directory sync started: ticket, then 0 (the root's parent) or 1 and the directory.
    pub const DIR_SYNC_START: u8 = 8;
    /// A directory sync succeeded: ticket.
    pub const DIR_SYNC_DONE: u8 = 9;
    /// The root directory was created.
    pub const ROOT_CREATED: u8 = 10;
    /// A file was mapped: inode. Its bytes are no longer followed.
    pub const OPAQUE: u8 = 11;
}

struct Event(Vec<u8>);

impl Event {
    fn new(tag: u8) -> Event {
        Event(vec![tag])
    }

    fn u64(mut self, value: u64) -> Event {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    fn bytes(self, bytes: &[u8]) -> Event {
        let mut event = self.u64(bytes.len() as u64);
        event.0.extend_from_slice(bytes);
        event
    }

    fn name(self, name: &Path) -> Event {
        self.bytes(name.as_os_str().as_bytes())
    }

    fn ino(self, ino: Ino) -> Event {
        self.u64(ino.dev).u64(ino.ino)
    }
}

/// The recording process's side.
struct Recorder {
    root: PathBuf,
    parent: Option<PathBuf>,
    state: Mutex<State>,
}

struct State {
    out: File,
    /// Inodes whose bytes the record already holds.
    seen: HashSet<Ino>,
    tickets: u64,
}

static RECORDER: OnceLock<Option<Recorder>> = OnceLock::new();

fn recorder() -> Option<&'static Recorder> {
    RECORDER
        .get_or_init(|| match Recorder::from_env() {
            Ok(recorder) => recorder,
            Err(error) => {
                tracing::error!(%error, "power-loss recording cannot start: nothing is recorded");
                None
            }
        })
        .as_ref()
}

impl Recorder {
    fn from_env() -> io::Result<Option<Recorder>> {
        let (Some(root), Some(record)) = (std::env::var_os(ROOT_VAR), std::env::var_os(RECORD_VAR))
        else {
            return Ok(None);
        };
        let root = PathBuf::from(root);
        // The record is written with std::fs directly: through crate::fs it would be recorded.
        let out = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(record)?;
        let mut state = State {
            out,
            seen: HashSet::new(),
            tickets: 0,
        };
        let files = files_under(&root)?;
        let mut names = Event::new(tag::NAMES).u64(files.len() as u64);
        for path in &files {
            let ino = Ino::of(&std::fs::symlink_metadata(path)?);
            names = names.name(relative(&root, path)).ino(ino);
        }
        state.emit(names)?;
        Ok(Some(Recorder {
            parent: root.parent().map(Path::to_path_buf),
            root,
            state: Mutex::new(state),
        }))
    }

    fn rel(&self, path: &Path) -> Option<PathBuf> {
        path.strip_prefix(&self.root).ok().map(Path::to_path_buf)
    }
}

impl State {
    fn emit(&mut self, event: Event) -> io::Result<()> {
        self.out.write_all(&event.0)
    }

    fn ticket(&mut self) -> u64 {
        self.tickets += 1;
        self.tickets
    }

    /// Records the bytes of the file behind `file` the first time it is touched.
    fn see_file(&mut self, file: &File) -> io::Result<Ino> {
        let ino = Ino::of(&file.metadata()?);
        if self.seen.insert(ino) {
            // Through /proc, as `file` may be open for writing only.
            let bytes = std::fs::read(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
            self.emit(Event::new(tag::CONTENT).ino(ino).bytes(&bytes))?;
        }
        Ok(ino)
    }

    /// [`see_file`](Self::see_file) by name; `None` if there is no such file.
    fn see_path(&mut self, path: &Path) -> io::Result<Option<Ino>> {
        match File::open(path) {
            Ok(file) => self.see_file(&file).map(Some),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// The recorder and its state when `path` is under the recorded directory.
fn lock_for(path: &Path) -> Option<(&'static Recorder, MutexGuard<'static, State>, PathBuf)> {
    let recorder = recorder()?;
    let rel = recorder.rel(path)?;
    Some((recorder, recorder.state.lock(), rel))
}

fn read_range(file: &File, pos: u64, len: u64) -> io::Result<Vec<u8>> {
    let end = file.metadata()?.len().min(pos.saturating_add(len));
    let mut bytes = vec![0; end.saturating_sub(pos) as usize];
    file.read_exact_at(&mut bytes, pos)?;
    Ok(bytes)
}

fn relative<'a>(root: &Path, path: &'a Path) -> &'a Path {
    path.strip_prefix(root).unwrap_or(path)
}

/// Every file below `dir` (none if it does not exist).
fn files_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let items = match std::fs::read_dir(&dir) {
            Ok(items) => items,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        for item in items {
            let item = item?;
            let kind = item.file_type()?;
            if kind.is_dir() {
                dirs.push(item.path());
            } else if kind.is_file() {
                files.push(item.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The hooks [`crate::fs`] wraps its calls in: each runs the call (`op`) and records its effect
/// when it touches the recorded directory.
pub(crate) mod hooks {
    use super::*;

    /// Creating or opening a file by name (truncating it if `truncate`).
    pub(crate) fn create(
        path: &Path,
        truncate: bool,
        op: impl FnOnce() -> io::Result<File>,
    ) -> io::Result<File> {
        let Some((_, mut state, rel)) = lock_for(path) else {
            return op();
        };
        state.see_path(path)?;
        let file = op()?;
        let ino = state.see_file(&file)?;
        state.emit(Event::new(tag::LINK).name(&rel).ino(ino))?;
        if truncate {
            state.emit(Event::new(tag::SET_LEN).ino(ino).u64(0))?;
        }
        Ok(file)
    }

    /// Writing `bytes` at `at`, or at the file's cursor if `None`.
    pub(crate) fn write(
        file: &File,
        path: &Path,
        bytes: &[u8],
        at: Option<u64>,
        op: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        let Some((_, mut state, _)) = lock_for(path) else {
            return op();
        };
        let ino = state.see_file(file)?;
        let pos = match at {
            Some(pos) => pos,
            None => {
                let mut cursor = file;
                cursor.stream_position()?
            }
        };
        let result = op();
        // A failed write may have written part: the record holds what the file holds.
        let written = match &result {
            Ok(()) => bytes.to_vec(),
            Err(_) => read_range(file, pos, bytes.len() as u64)?,
        };
        state.emit(Event::new(tag::WRITE).ino(ino).u64(pos).bytes(&written))?;
        result
    }

    /// Changing a file's length (cutting, extending, preallocating).
    pub(crate) fn resize(
        file: &File,
        path: &Path,
        op: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        let Some((_, mut state, _)) = lock_for(path) else {
            return op();
        };
        let ino = state.see_file(file)?;
        let result = op();
        let len = file.metadata()?.len();
        state.emit(Event::new(tag::SET_LEN).ino(ino).u64(len))?;
        result
    }

    /// Mapping a file: its later changes bypass these hooks.
    pub(crate) fn map<T>(
        file: &File,
        path: &Path,
        op: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        let Some((_, mut state, _)) = lock_for(path) else {
            return op();
        };
        let ino = Ino::of(&file.metadata()?);
        state.emit(Event::new(tag::OPAQUE).ino(ino))?;
        op()
    }

    /// fdatasync or fsync of a file. The lock is not held during the sync, so that appends go on
    /// meanwhile, as they do without the recorder.
    pub(crate) fn sync(
        file: &File,
        path: &Path,
        op: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        let Some((recorder, mut state, _)) = lock_for(path) else {
            return op();
        };
        let ino = state.see_file(file)?;
        let ticket = state.ticket();
        state.emit(Event::new(tag::SYNC_START).u64(ticket).ino(ino))?;
        drop(state);
        op()?;
        recorder
            .state
            .lock()
            .emit(Event::new(tag::SYNC_DONE).u64(ticket))
    }

    /// fsync of a directory: the root's parent, or one under the root.
    pub(crate) fn sync_dir(dir: &Path, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let Some(recorder) = recorder() else {
            return op();
        };
        // `Some(name)` for a directory under the root, `None` for the root's parent.
        let under = if let Some(rel) = recorder.rel(dir) {
            Some(rel)
        } else if recorder.parent.as_deref() == Some(dir) {
            None
        } else {
            return op();
        };
        let mut state = recorder.state.lock();
        let ticket = state.ticket();
        let start = Event::new(tag::DIR_SYNC_START).u64(ticket);
        let start = match &under {
            Some(rel) => start.u64(1).name(rel),
            None => start.u64(0),
        };
        state.emit(start)?;
        drop(state);
        op()?;
        recorder
            .state
            .lock()
            .emit(Event::new(tag::DIR_SYNC_DONE).u64(ticket))
    }

    /// Renaming `from` to `to`, replacing `to`.
    pub(crate) fn rename(
        from: &Path,
        to: &Path,
        op: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        let Some(recorder) = recorder() else {
            return op();
        };
        let (from_rel, to_rel) = (recorder.rel(from), recorder.rel(to));
        if from_rel.is_none() && to_rel.is_none() {
            return op();
        }
        let mut state = recorder.state.lock();
        state.see_path(from)?;
        if to_rel.is_some() {
            // The file replaced: a name that is not durable yet may still refer to it.
            state.see_path(to)?;
        }
        op()?;
        if let Some(rel) = from_rel {
            state.emit(Event::new(tag::UNLINK).name(&rel))?;
        }
        if let Some(rel) = to_rel {
            link_to(&mut state, to, &rel)?;
        }
        Ok(())
    }

    /// Giving a file the second name `to`.
    pub(crate) fn hard_link(to: &Path, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let Some((_, mut state, rel)) = lock_for(to) else {
            return op();
        };
        op()?;
        link_to(&mut state, to, &rel)
    }

    fn link_to(state: &mut State, to: &Path, rel: &Path) -> io::Result<()> {
        let ino = state
            .see_path(to)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "a name just made is gone"))?;
        state.emit(Event::new(tag::LINK).name(rel).ino(ino))
    }

    /// Removing a file.
    pub(crate) fn remove_file(path: &Path, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let Some((_, mut state, rel)) = lock_for(path) else {
            return op();
        };
        state.see_path(path)?;
        op()?;
        state.emit(Event::new(tag::UNLINK).name(&rel))
    }

    /// Removing a directory and everything in it: each file under the root it holds is removed.
    pub(crate) fn remove_dir_all(
        path: &Path,
        op: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        let Some(recorder) = recorder() else {
            return op();
        };
        let within = if path.starts_with(&recorder.root) {
            path
        } else if recorder.root.starts_with(path) {
            recorder.root.as_path()
        } else {
            return op();
        };
        let mut state = recorder.state.lock();
        let files = files_under(within)?;
        for file in &files {
            state.see_path(file)?;
        }
        op()?;
        for file in &files {
            state.emit(Event::new(tag::UNLINK).name(relative(&recorder.root, file)))?;
        }
        Ok(())
    }

    /// Creating a directory (and its parents): whether that created the root.
    pub(crate) fn create_dir(path: &Path, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let Some(recorder) = recorder().filter(|recorder| path.starts_with(&recorder.root)) else {
            return op();
        };
        let mut state = recorder.state.lock();
        let existed = recorder.root.exists();
        op()?;
        if !existed && recorder.root.exists() {
            state.emit(Event::new(tag::ROOT_CREATED))?;
        }
        Ok(())
    }
}

/// Why [`revert`] failed.
#[derive(Debug, thiserror::Error)]
pub enum PowerLossError {
    /// A file could not be read or written.
    #[error("I/O error on {}: {source}", .path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The record does not decode.
    #[error("{}: the record is unreadable at byte {at}: {detail}", .path.display())]
    BadRecord {
        /// The record file.
        path: PathBuf,
        /// Where the bad event starts.
        at: usize,
        /// What is wrong.
        detail: &'static str,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PowerLossError {
    move |source| PowerLossError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What [`revert`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reverted {
    /// The directory itself was lost (created, its parent never synced since): it was removed.
    pub root_lost: bool,
    /// Names removed: made since their directory's last sync.
    pub names_dropped: Vec<PathBuf>,
    /// Names put back: removed or renamed away since their directory's last sync.
    pub names_restored: Vec<PathBuf>,
    /// Files whose bytes changed back.
    pub files_reverted: usize,
    /// Bytes the reverted files lost (written or appended since their last sync).
    pub bytes_dropped: u64,
    /// Files left with a torn tail.
    pub torn_tails: usize,
    /// Writes the record held.
    pub writes: usize,
    /// Syncs that completed, of files and of directories.
    pub syncs: usize,
}

impl fmt::Display for Reverted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.root_lost {
            return f.write_str("the directory itself was lost");
        }
        write!(
            f,
            "of {} writes and {} syncs recorded: {} files reverted ({} bytes dropped, {} torn \
             tails), names dropped {:?}, restored {:?}",
            self.writes,
            self.syncs,
            self.files_reverted,
            self.bytes_dropped,
            self.torn_tails,
            self.names_dropped,
            self.names_restored
        )
    }
}

/// What a directory sync captured when it started.
enum DirSnapshot {
    /// The root's parent: whether the root, created by this run, existed then.
    Parent { covers_root: bool },
    /// A directory under the root, and its entries then.
    Under {
        dir: PathBuf,
        entries: Vec<(PathBuf, Ino)>,
    },
}

/// The record replayed: the files as the process left them, and as the disk holds them.
#[derive(Default)]
struct Model {
    names: BTreeMap<PathBuf, Ino>,
    durable_names: BTreeMap<PathBuf, Ino>,
    content: HashMap<Ino, Vec<u8>>,
    /// Durable bytes and the ticket of the sync that made them so (0: known at the start).
    durable: HashMap<Ino, (u64, Vec<u8>)>,
    opaque: HashSet<Ino>,
    syncing: HashMap<u64, (Ino, Vec<u8>)>,
    dir_syncing: HashMap<u64, DirSnapshot>,
    dir_synced: HashMap<PathBuf, u64>,
    root_pending: bool,
    writes: usize,
    syncs: usize,
}

/// Reads the record's events one by one.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u64(&mut self) -> Option<u64> {
        let field = self.bytes.get(self.at..self.at + 8)?;
        self.at += 8;
        field.try_into().ok().map(u64::from_le_bytes)
    }

    fn bytes(&mut self) -> Option<&[u8]> {
        let len = usize::try_from(self.u64()?).ok()?;
        let field = self.bytes.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(field)
    }

    fn name(&mut self) -> Option<PathBuf> {
        self.bytes()
            .map(|bytes| PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }

    fn ino(&mut self) -> Option<Ino> {
        Some(Ino {
            dev: self.u64()?,
            ino: self.u64()?,
        })
    }
}

fn parent_of(name: &Path) -> &Path {
    name.parent().unwrap_or(Path::new(""))
}

impl Model {
    /// Applies one event; `None` if the record ends inside it.
    fn apply(&mut self, tag: u8, input: &mut Reader<'_>) -> Option<Result<(), &'static str>> {
        match tag {
            tag::NAMES => {
                for _ in 0..input.u64()? {
                    let (name, ino) = (input.name()?, input.ino()?);
                    self.names.insert(name.clone(), ino);
                    self.durable_names.insert(name, ino);
                }
            }
            tag::CONTENT => {
                let (ino, bytes) = (input.ino()?, input.bytes()?.to_vec());
                self.durable.insert(ino, (0, bytes.clone()));
                self.content.insert(ino, bytes);
            }
            tag::LINK => {
                let (name, ino) = (input.name()?, input.ino()?);
                self.names.insert(name, ino);
            }
            tag::UNLINK => {
                self.names.remove(&input.name()?);
            }
            tag::WRITE => {
                let (ino, pos, bytes) = (input.ino()?, input.u64()?, input.bytes()?);
                let Ok(pos) = usize::try_from(pos) else {
                    return Some(Err("a write past what memory holds"));
                };
                let content = self.content.entry(ino).or_default();
                let end = pos + bytes.len();
                if content.len() < end {
                    content.resize(end, 0);
                }
                content[pos..end].copy_from_slice(bytes);
                self.writes += 1;
            }
            tag::SET_LEN => {
                let (ino, len) = (input.ino()?, input.u64()?);
                let Ok(len) = usize::try_from(len) else {
                    return Some(Err("a length past what memory holds"));
                };
                self.content.entry(ino).or_default().resize(len, 0);
            }
            tag::SYNC_START => {
                let (ticket, ino) = (input.u64()?, input.ino()?);
                let bytes = self.content.get(&ino).cloned().unwrap_or_default();
                self.syncing.insert(ticket, (ino, bytes));
            }
            tag::SYNC_DONE => {
                let ticket = input.u64()?;
                self.syncs += 1;
                if let Some((ino, bytes)) = self.syncing.remove(&ticket) {
                    // Syncs of one file may end out of order: the later start holds more.
                    let newer = self.durable.get(&ino).is_none_or(|(at, _)| *at < ticket);
                    if newer {
                        self.durable.insert(ino, (ticket, bytes));
                    }
                }
            }
            tag::DIR_SYNC_START => {
                let ticket = input.u64()?;
                let snapshot = match input.u64()? {
                    0 => DirSnapshot::Parent {
                        covers_root: self.root_pending,
                    },
                    1 => {
                        let dir = input.name()?;
                        let entries = self
                            .names
                            .iter()
                            .filter(|(name, _)| parent_of(name) == dir)
                            .map(|(name, ino)| (name.clone(), *ino))
                            .collect();
                        DirSnapshot::Under { dir, entries }
                    }
                    _ => return Some(Err("unknown directory kind")),
                };
                self.dir_syncing.insert(ticket, snapshot);
            }
            tag::DIR_SYNC_DONE => {
                let ticket = input.u64()?;
                self.syncs += 1;
                match self.dir_syncing.remove(&ticket) {
                    Some(DirSnapshot::Parent { covers_root: true }) => self.root_pending = false,
                    Some(DirSnapshot::Under { dir, entries }) => {
                        let last = self.dir_synced.entry(dir.clone()).or_default();
                        if *last < ticket {
                            *last = ticket;
                            self.durable_names.retain(|name, _| parent_of(name) != dir);
                            self.durable_names.extend(entries);
                        }
                    }
                    Some(DirSnapshot::Parent { covers_root: false }) | None => {}
                }
            }
            tag::ROOT_CREATED => self.root_pending = true,
            tag::OPAQUE => {
                self.opaque.insert(input.ino()?);
            }
            _ => return Some(Err("unknown event")),
        }
        Some(Ok(()))
    }
}

/// A small deterministic generator for torn tails (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// Puts `root` back to what the disk held when the process recording into `record` was killed
/// (which it must be, before this is called), per the model in this module's documentation.
/// With `torn_seed`, appends not yet synced are not all dropped: a random part of each stays,
/// its end possibly garbage, as a power loss during the write would leave it.
pub fn revert(
    root: &Path,
    record: &Path,
    torn_seed: Option<u64>,
) -> Result<Reverted, PowerLossError> {
    let bytes = std::fs::read(record).map_err(io_error(record))?;
    let mut model = Model::default();
    let mut input = Reader {
        bytes: &bytes,
        at: 0,
    };
    while let Some(&tag) = bytes.get(input.at) {
        let start = input.at;
        input.at += 1;
        match model.apply(tag, &mut input) {
            Some(Ok(())) => {}
            Some(Err(detail)) => {
                return Err(PowerLossError::BadRecord {
                    path: record.to_path_buf(),
                    at: start,
                    detail,
                });
            }
            // The process was killed while recording this event, so the call it records had
            // not returned: nothing relied on it.
            None => break,
        }
    }
    let mut reverted = Reverted {
        writes: model.writes,
        syncs: model.syncs,
        ..Reverted::default()
    };
    if model.root_pending {
        std::fs::remove_dir_all(root).map_err(io_error(root))?;
        reverted.root_lost = true;
        return Ok(reverted);
    }
    let mut rng = torn_seed.map(|seed| Rng(seed | 1));
    // What each durable name holds, read before anything changes.
    let mut image = Vec::new();
    for (name, ino) in &model.durable_names {
        let kept = model.opaque.contains(ino) || !model.durable.contains_key(ino);
        let bytes = if kept {
            // Bytes the record does not follow stay as the disk has them, under any name.
            let source = std::iter::once(name)
                .filter(|name| model.names.get(*name) == Some(ino))
                .chain(
                    model
                        .names
                        .iter()
                        .filter(|(_, at)| *at == ino)
                        .map(|(n, _)| n),
                )
                .next();
            match source {
                Some(source) => {
                    let path = root.join(source);
                    std::fs::read(&path).map_err(io_error(&path))?
                }
                None => Vec::new(),
            }
        } else {
            let durable = &model.durable[ino].1;
            let current = model.content.get(ino).map_or(&[][..], Vec::as_slice);
            if current.len() > durable.len() {
                reverted.bytes_dropped += (current.len() - durable.len()) as u64;
            }
            let mut bytes = durable.clone();
            if let Some(rng) = rng.as_mut()
                && current.len() > durable.len()
                && current.starts_with(durable)
            {
                let appended = &current[durable.len()..];
                let kept = rng.below(appended.len() as u64 + 1) as usize;
                bytes.extend_from_slice(&appended[..kept]);
                if kept > 0 && rng.below(2) == 0 {
                    let garbage = 1 + rng.below(kept.min(64) as u64) as usize;
                    let len = bytes.len();
                    for byte in &mut bytes[len - garbage..] {
                        *byte = rng.next() as u8;
                    }
                }
                reverted.bytes_dropped -= kept as u64;
                reverted.torn_tails += 1;
            }
            bytes
        };
        image.push((name.clone(), bytes));
    }
    let on_disk = files_under(root).map_err(io_error(root))?;
    for path in &on_disk {
        let name = relative(root, path);
        if !model.durable_names.contains_key(name) {
            std::fs::remove_file(path).map_err(io_error(path))?;
            reverted.names_dropped.push(name.to_path_buf());
        }
    }
    for (name, bytes) in image {
        let path = root.join(&name);
        match std::fs::read(&path) {
            Ok(held) if held == bytes => continue,
            Ok(_) => reverted.files_reverted += 1,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                reverted.names_restored.push(name);
            }
            Err(error) => return Err(io_error(&path)(error)),
        }
        std::fs::write(&path, &bytes).map_err(io_error(&path))?;
    }
    Ok(reverted)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ino = Ino { dev: 1, ino: 10 };
    const B: Ino = Ino { dev: 1, ino: 11 };

    /// Writes `events` as a record, `files` under a new root, and reverts the root.
    fn revert_with(
        files: &[(&str, &[u8])],
        events: Vec<Event>,
        torn_seed: Option<u64>,
    ) -> (tempfile::TempDir, PathBuf, Reverted) {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path().join("raft");
        std::fs::create_dir(&root).unwrap();
        for (name, bytes) in files {
            std::fs::write(root.join(name), bytes).unwrap();
        }
        let record = scratch.path().join("record");
        let bytes: Vec<u8> = events.into_iter().flat_map(|event| event.0).collect();
        std::fs::write(&record, bytes).unwrap();
        let reverted = revert(&root, &record, torn_seed).unwrap();
        (scratch, root, reverted)
    }

    fn names(entries: &[(&str, Ino)]) -> Event {
        let mut event = Event::new(tag::NAMES).u64(entries.len() as u64);
        for (name, ino) in entries {
            event = event.name(Path::new(name)).ino(*ino);
        }
        event
    }

    fn write(ino: Ino, pos: u64, bytes: &[u8]) -> Event {
        Event::new(tag::WRITE).ino(ino).u64(pos).bytes(bytes)
    }

    fn sync(ticket: u64, ino: Ino) -> [Event; 2] {
        [
            Event::new(tag::SYNC_START).u64(ticket).ino(ino),
            Event::new(tag::SYNC_DONE).u64(ticket),
        ]
    }

    #[test]
    fn appends_after_the_last_sync_are_dropped_and_synced_ones_kept() {
        let mut events = vec![
            names(&[("log", A)]),
            Event::new(tag::CONTENT).ino(A).bytes(b"head"),
            write(A, 4, b"-synced"),
        ];
        events.extend(sync(1, A));
        events.push(write(A, 11, b"-unsynced"));
        // A sync that started but never returned covers nothing.
        events.push(Event::new(tag::SYNC_START).u64(2).ino(A));
        let (_scratch, root, reverted) =
            revert_with(&[("log", b"head-synced-unsynced")], events, None);
        assert_eq!(std::fs::read(root.join("log")).unwrap(), b"head-synced");
        assert_eq!(reverted.bytes_dropped, 9);
    }

    #[test]
    fn a_torn_tail_keeps_what_was_synced() {
        let current = b"head-synced-and-a-long-unsynced-tail";
        for seed in 0..20 {
            let mut events = vec![
                names(&[("log", A)]),
                Event::new(tag::CONTENT).ino(A).bytes(b""),
                write(A, 0, b"head-synced"),
            ];
            events.extend(sync(1, A));
            events.push(write(A, 11, &current[11..]));
            let (_scratch, root, _) = revert_with(&[("log", current)], events, Some(seed));
            let left = std::fs::read(root.join("log")).unwrap();
            assert!(left.starts_with(b"head-synced") && left.len() <= current.len());
        }
    }

    #[test]
    fn names_are_as_of_the_last_directory_sync() {
        let mut events = vec![
            names(&[("meta", A)]),
            Event::new(tag::CONTENT).ino(A).bytes(b"old"),
            // A new file replaces "meta" by a rename, synced but its directory not.
            Event::new(tag::CONTENT).ino(B).bytes(b""),
            Event::new(tag::LINK).name(Path::new("meta.tmp")).ino(B),
            write(B, 0, b"new"),
        ];
        events.extend(sync(1, B));
        events.push(Event::new(tag::UNLINK).name(Path::new("meta.tmp")));
        events.push(Event::new(tag::LINK).name(Path::new("meta")).ino(B));
        let (_scratch, root, reverted) = revert_with(&[("meta", b"new")], events, None);
        assert_eq!(std::fs::read(root.join("meta")).unwrap(), b"old");
        assert_eq!(reverted.files_reverted, 1);

        let mut events = vec![
            names(&[]),
            Event::new(tag::CONTENT).ino(A).bytes(b""),
            Event::new(tag::LINK).name(Path::new("made")).ino(A),
            Event::new(tag::CONTENT).ino(B).bytes(b""),
            Event::new(tag::DIR_SYNC_START)
                .u64(1)
                .u64(1)
                .name(Path::new("")),
            Event::new(tag::DIR_SYNC_DONE).u64(1),
            Event::new(tag::LINK).name(Path::new("later")).ino(B),
            write(A, 0, b"never synced"),
        ];
        events.extend(sync(2, B));
        let (_scratch, root, reverted) =
            revert_with(&[("made", b"never synced"), ("later", b"")], events, None);
        assert_eq!(std::fs::read(root.join("made")).unwrap(), b"");
        assert!(!root.join("later").exists());
        assert_eq!(reverted.names_dropped, vec![PathBuf::from("later")]);
    }

    #[test]
    fn a_created_root_is_lost_until_its_parent_is_synced() {
        let events = vec![names(&[]), Event::new(tag::ROOT_CREATED)];
        let (_scratch, root, reverted) = revert_with(&[("log", b"x")], events, None);
        assert!(reverted.root_lost && !root.exists());

        let events = vec![
            names(&[]),
            Event::new(tag::ROOT_CREATED),
            Event::new(tag::DIR_SYNC_START).u64(1).u64(0),
            Event::new(tag::DIR_SYNC_DONE).u64(1),
        ];
        let (_scratch, root, reverted) = revert_with(&[], events, None);
        assert!(!reverted.root_lost && root.exists());
    }
}
