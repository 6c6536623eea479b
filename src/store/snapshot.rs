//! A snapshot of a whole store, for a replicated node to send to one that fell behind the Raft
//! log its leader kept (storage-format.md 15): every stream directory's files and the
//! replication mark, as an archive ([`super::snapshot_archive`]).
//!
//! [`Store::freeze`] gathers the files while nothing changes the store, so that they are what a
//! `kill -9` at that moment would leave, which the store's crash recovery opens whole: segments
//! as hard links (sealed ones never change again, the active one only past the end of its data,
//! which is recorded), sealed segments' indexes as hard links too, the other files as copies. [`FrozenStore::write_archive`] then writes the archive from those while commands go
//! on.
//! [`Store::install_snapshot`] unpacks an archive beside a closed store's files, syncs it, and
//! only then swaps it in; the replication mark is removed first and written last, so a crash in
//! the middle leaves a store with no mark, which its node fills again from its own snapshot.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::fs;
use crate::names::{
    self, CLEAN_FILE, REPLICATION_MARK_FILE, STREAMS_DIR, TMP_SUFFIX, TRANSACTION_FILE,
};

use super::snapshot_archive::{
    ArchiveError, ArchiveReader, ArchiveWriter, FileHeader, MAX_PATH_BYTES,
};
use super::{Store, StoreError, io_error, lock_directory};

/// Prefix of the directories the store's files are gathered in for a snapshot.
pub const FROZEN_PREFIX: &str = "snapshot.frozen.";
/// Where an archive is unpacked before it replaces the store's files.
pub const INSTALLING_DIR: &str = "snapshot.installing";
/// Where the replaced streams go until they are removed.
pub const REPLACED_STREAMS_DIR: &str = "streams.replaced";
/// The zero tail is looked for in steps of this many bytes from a file's end.
const TAIL_STEP: u64 = 64 << 10;
const ZEROS_CHUNK: usize = 1 << 20;

/// What a snapshot held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// Files in it.
    pub files: u64,
    /// Bytes of data in it (files without their zero tails).
    pub data_bytes: u64,
}

/// A store's files as they were at one moment, gathered under `DIR/snapshot.frozen.<n>/` for a
/// snapshot archive; removed when dropped.
#[derive(Debug)]
pub struct FrozenStore {
    dir: PathBuf,
    /// Where the data of each linked active segment ended at that moment: appends after it
    /// land beyond it, in the same file.
    data_ends: BTreeMap<PathBuf, u64>,
}

impl Drop for FrozenStore {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), %error, "could not remove a snapshot's gathered files; the store's next open removes them");
        }
    }
}

impl FrozenStore {
    /// Writes the gathered files into `out` as a snapshot archive (storage-format.md 15).
    /// Nothing is synced: the archive is `out`'s to make durable.
    pub fn write_archive(&self, out: impl Write) -> Result<SnapshotSummary, StoreError> {
        let dir = &self.dir;
        let mut writer = ArchiveWriter::new(out).map_err(io_error("write a snapshot of", dir))?;
        let mut summary = SnapshotSummary::default();
        let mark = dir.join(REPLICATION_MARK_FILE);
        if mark.exists() {
            add_file(
                &mut writer,
                &mark,
                REPLICATION_MARK_FILE,
                None,
                &mut summary,
            )?;
        }
        for stream_dir in stream_dirs(&dir.join(STREAMS_DIR))? {
            let dir_name = file_name(&stream_dir);
            for file in stream_files(&stream_dir)? {
                let relative = format!("{STREAMS_DIR}/{dir_name}/{}", file_name(&file));
                let data_end = self.data_ends.get(&file).copied();
                add_file(&mut writer, &file, &relative, data_end, &mut summary)?;
            }
        }
        writer
            .finish()
            .map_err(io_error("write a snapshot of", dir))?;
        Ok(summary)
    }
}

impl Store {
    /// Gathers the store's files as they are now, for [`FrozenStore::write_archive`]: the
    /// replication mark and every stream directory's files. Segments are hard links: sealed
    /// ones never change again, and the active one only takes appends after the end of its
    /// data, which is recorded. The other files (journals, checkpoint, snapshots of groups and
    /// idempotency windows, indexes of active segments) are copies of their data.
    ///
    /// The caller makes sure that no command changes the store meanwhile; maintenance and
    /// transactions are held off here. It takes about the time to copy each stream's journals
    /// and find the end of its active segment's data, whatever the size of the store.
    pub fn freeze(&self) -> Result<FrozenStore, StoreError> {
        let shared = &self.shared;
        let _one_at_a_time = shared.transaction_lock.lock();
        let _no_maintenance = shared.maintenance_pass.lock();
        let number = shared.frozen_count.fetch_add(1, Ordering::Relaxed);
        let mut frozen = FrozenStore {
            dir: shared.dir.join(format!("{FROZEN_PREFIX}{number}")),
            data_ends: BTreeMap::new(),
        };
        let streams = frozen.dir.join(STREAMS_DIR);
        for dir in [&frozen.dir, &streams] {
            fs::create_dir(dir).map_err(io_error("create directory", dir))?;
        }
        let mark = shared.dir.join(REPLICATION_MARK_FILE);
        if mark.exists() {
            copy_data(&mark, &frozen.dir.join(REPLICATION_MARK_FILE))?;
        }
        for stream_dir in stream_dirs(&shared.dir.join(STREAMS_DIR))? {
            let gathered = streams.join(file_name(&stream_dir));
            fs::create_dir(&gathered).map_err(io_error("create directory", &gathered))?;
            let files = stream_files(&stream_dir)?;
            let active = files
                .iter()
                .filter_map(|file| names::segment_base(&file_name(file)))
                .max();
            for file in files {
                let name = file_name(&file);
                let to = gathered.join(&name);
                if is_sealed(&name, active) {
                    fs::hard_link(&file, &to).map_err(io_error("link", &file))?;
                } else if names::segment_base(&name).is_some() {
                    let data_end = data_end_of(&file)?;
                    fs::hard_link(&file, &to).map_err(io_error("link", &file))?;
                    frozen.data_ends.insert(to, data_end);
                } else {
                    copy_data(&file, &to)?;
                }
            }
        }
        Ok(frozen)
    }

    /// Replaces the content of the store in `dir`, which must be closed, with the archive at
    /// `archive`. The archive is unpacked and synced beside the store first; a damaged archive
    /// leaves the store as it was. Every file and directory written is synced before this
    /// returns.
    pub fn install_snapshot(dir: &Path, archive: &Path) -> Result<SnapshotSummary, StoreError> {
        let _lock = lock_directory(dir)?;
        let staging = dir.join(INSTALLING_DIR);
        let replaced = dir.join(REPLACED_STREAMS_DIR);
        remove_leftover(&staging)?;
        remove_leftover(&replaced)?;
        fs::create_dir(&staging).map_err(io_error("create directory", &staging))?;
        fs::create_dir(&staging.join(STREAMS_DIR))
            .map_err(io_error("create directory", &staging))?;
        let summary = match unpack(archive, &staging) {
            Ok(summary) => summary,
            Err(error) => {
                let _ = fs::remove_dir_all(&staging);
                return Err(error);
            }
        };
        swap_in(dir, &staging, &replaced)?;
        Ok(summary)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The stream directories, in name order, leftovers of creations and deletions left out.
fn stream_dirs(streams_dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(streams_dir).map_err(io_error("list", streams_dir))? {
        let entry = entry.map_err(io_error("list", streams_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !names::is_stream_leftover(&name) && names::directory_number(&name).is_some() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// A stream directory's files, in name order, temporary files left out.
fn stream_files(stream_dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(stream_dir).map_err(io_error("list", stream_dir))? {
        let entry = entry.map_err(io_error("list", stream_dir))?;
        let is_file = entry
            .file_type()
            .map_err(io_error("list", stream_dir))?
            .is_file();
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_file && !name.ends_with(TMP_SUFFIX) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Adds the file at `path` as `relative`, its data ending at `data_end` if given, else before its
/// zero tail.
fn add_file<W: Write>(
    writer: &mut ArchiveWriter<W>,
    path: &Path,
    relative: &str,
    data_end: Option<u64>,
    summary: &mut SnapshotSummary,
) -> Result<(), StoreError> {
    let mut file = File::open(path).map_err(io_error("open", path))?;
    let len = file.metadata().map_err(io_error("stat", path))?.len();
    let data_len = match data_end {
        Some(end) => end.min(len),
        None => end_of_data(&mut file, len).map_err(io_error("read", path))?,
    };
    file.seek(SeekFrom::Start(0))
        .map_err(io_error("read", path))?;
    let header = FileHeader {
        path: relative.to_owned(),
        len,
        data_len,
    };
    writer
        .file(&header, &mut BufReader::new(file))
        .map_err(io_error("copy into a snapshot", path))?;
    summary.files += 1;
    summary.data_bytes += data_len;
    Ok(())
}

/// Where the data of the file at `path` ends, before its zero tail.
fn data_end_of(path: &Path) -> Result<u64, StoreError> {
    let mut file = File::open(path).map_err(io_error("open", path))?;
    let len = file.metadata().map_err(io_error("stat", path))?.len();
    end_of_data(&mut file, len).map_err(io_error("read", path))
}

/// The length of `file` without its tail of zeros: preallocated space is not copied.
fn end_of_data(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut buffer = vec![0u8; TAIL_STEP as usize];
    while end > 0 {
        let start = end.saturating_sub(TAIL_STEP);
        let chunk = &mut buffer[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(last) = chunk.iter().rposition(|&byte| byte != 0) {
            return Ok(start + last as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Whether a stream file never changes again: a segment below the active (last) one, or such a
/// segment's index.
fn is_sealed(name: &str, active: Option<u64>) -> bool {
    let segment = match names::index_segment_name(name) {
        Some(segment) => names::segment_base(&segment),
        None => names::segment_base(name),
    };
    segment.is_some_and(|base| active.is_some_and(|active| base < active))
}

/// Copies `from`'s bytes up to its zero tail into the new file `to`, which gets `from`'s
/// length (the tail left as a hole: the copy is scratch, read once for the archive).
fn copy_data(from: &Path, to: &Path) -> Result<(), StoreError> {
    let mut source = File::open(from).map_err(io_error("open", from))?;
    let len = source.metadata().map_err(io_error("stat", from))?.len();
    let data_len = end_of_data(&mut source, len).map_err(io_error("read", from))?;
    source
        .seek(SeekFrom::Start(0))
        .map_err(io_error("read", from))?;
    let target = fs::create_new(to).map_err(io_error("create", to))?;
    std::io::copy(&mut (&mut source).take(data_len), &mut &target)
        .map_err(io_error("copy", from))?;
    fs::set_len(&target, to, len).map_err(io_error("resize", to))?;
    Ok(())
}

/// Removes what snapshots leave in a store directory a crash interrupted: files gathered for
/// an archive, an archive being installed, streams an installed archive replaced. Called with
/// the store's lock held and nothing else open.
pub(super) fn remove_snapshot_leftovers(dir: &Path) -> Result<(), StoreError> {
    for item in std::fs::read_dir(dir).map_err(io_error("list", dir))? {
        let item = item.map_err(io_error("list", dir))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with(FROZEN_PREFIX) || name == INSTALLING_DIR || name == REPLACED_STREAMS_DIR
        {
            remove_leftover(&item.path())?;
        }
    }
    Ok(())
}

fn remove_leftover(path: &Path) -> Result<(), StoreError> {
    if path.exists() {
        fs::remove_dir_all(path).map_err(io_error("remove", path))?;
    }
    Ok(())
}

/// Where an archive's `path` lands under `staging`: the replication mark, or a file directly in
/// a stream directory. Anything else (`..`, absolute paths, deeper or temporary names, a
/// directory that is not a stream's) is damage, refused before anything is written for it.
fn destination(staging: &Path, path: &str) -> Result<PathBuf, StoreError> {
    let refuse = |why: &str| StoreError::BadSnapshot {
        detail: format!("it names the file {path:?}, which {why}"),
    };
    if path == REPLICATION_MARK_FILE {
        return Ok(staging.join(path));
    }
    let parts: Vec<&str> = path.split('/').collect();
    let [STREAMS_DIR, dir_name, file_name] = parts[..] else {
        return Err(refuse(
            "is neither the replication mark nor in a stream directory",
        ));
    };
    let plain = |name: &str| {
        !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains('\0')
            && !name.contains('\\')
            && name.len() <= MAX_PATH_BYTES
    };
    if !plain(dir_name)
        || names::is_stream_leftover(dir_name)
        || names::directory_number(dir_name).is_none()
    {
        return Err(refuse("is not in a stream directory"));
    }
    if !plain(file_name) || file_name.ends_with(TMP_SUFFIX) {
        return Err(refuse("is not a stream file"));
    }
    Ok(staging.join(STREAMS_DIR).join(dir_name).join(file_name))
}

fn bad_archive(archive: &Path) -> impl Fn(ArchiveError) -> StoreError + '_ {
    move |error| match error {
        ArchiveError::Io(source) => StoreError::Io {
            op: "read the snapshot",
            path: archive.to_path_buf(),
            source,
        },
        ArchiveError::Damaged(detail) => StoreError::BadSnapshot { detail },
    }
}

/// Unpacks `archive` into `staging`, syncing every file and directory it creates.
fn unpack(archive: &Path, staging: &Path) -> Result<SnapshotSummary, StoreError> {
    let input = File::open(archive).map_err(io_error("open", archive))?;
    let bad = bad_archive(archive);
    let mut reader = ArchiveReader::new(BufReader::new(input)).map_err(&bad)?;
    let mut summary = SnapshotSummary::default();
    let mut dirs = vec![staging.to_path_buf(), staging.join(STREAMS_DIR)];
    while let Some(header) = reader.next_file().map_err(&bad)? {
        let path = destination(staging, &header.path)?;
        let parent = fs::parent_dir(&path).to_path_buf();
        if !dirs.contains(&parent) {
            fs::create_dir(&parent).map_err(io_error("create directory", &parent))?;
            dirs.push(parent);
        }
        let file = fs::create_new(&path).map_err(|error| match error.kind() {
            std::io::ErrorKind::AlreadyExists => StoreError::BadSnapshot {
                detail: format!("it names {} twice", header.path),
            },
            _ => io_error("create", &path)(error),
        })?;
        let mut out = BufWriter::new(&file);
        reader.copy_data(&mut out).map_err(&bad)?;
        out.flush().map_err(io_error("write", &path))?;
        drop(out);
        reserve(&file, &path, header.len)?;
        fs::sync_all(&file, &path).map_err(io_error("sync", &path))?;
        summary.files += 1;
        summary.data_bytes += header.data_len;
    }
    for dir in dirs.iter().rev() {
        fs::sync_dir(dir).map_err(io_error("sync directory", dir))?;
    }
    Ok(summary)
}

/// Gives `file` its full length, the part after its data reserved on disk (as a segment's
/// preallocation), so that a store through a map into it can never hit a hole on a full disk.
fn reserve(file: &File, path: &Path, len: u64) -> Result<(), StoreError> {
    match fs::preallocate(file, path, len) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::Unsupported => {
            write_zeros_to(file, path, len)
        }
        Err(error) => Err(io_error("reserve space for", path)(error)),
    }
}

fn write_zeros_to(file: &File, path: &Path, len: u64) -> Result<(), StoreError> {
    let mut at = file.metadata().map_err(io_error("stat", path))?.len();
    let zeros = vec![0u8; ZEROS_CHUNK];
    while at < len {
        let take = (len - at).min(ZEROS_CHUNK as u64) as usize;
        fs::write_all_at(file, path, &zeros[..take], at).map_err(io_error("write", path))?;
        at += take as u64;
    }
    Ok(())
}

/// Replaces the store's streams and mark with the unpacked ones. The mark goes first and comes
/// back last: a store without a mark is one its node installs a snapshot into again.
fn swap_in(dir: &Path, staging: &Path, replaced: &Path) -> Result<(), StoreError> {
    let sync = |path: &Path| fs::sync_dir(path).map_err(io_error("sync directory", path));
    for name in [REPLICATION_MARK_FILE, CLEAN_FILE, TRANSACTION_FILE] {
        let path = dir.join(name);
        fs::remove_if_exists(&path).map_err(io_error("remove", &path))?;
    }
    sync(dir)?;
    let streams = dir.join(STREAMS_DIR);
    if streams.exists() {
        fs::rename(&streams, replaced).map_err(io_error("rename", &streams))?;
    }
    let unpacked = staging.join(STREAMS_DIR);
    fs::rename(&unpacked, &streams).map_err(io_error("rename", &unpacked))?;
    sync(dir)?;
    let mark = staging.join(REPLICATION_MARK_FILE);
    if mark.exists() {
        let target = dir.join(REPLICATION_MARK_FILE);
        fs::rename(&mark, &target).map_err(io_error("rename", &mark))?;
        sync(dir)?;
    }
    remove_leftover(replaced)?;
    remove_leftover(staging)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;
    use crate::store::ReplicationMark;

    fn snapshot_of(store: &Store, into: &Path) -> SnapshotSummary {
        let file = File::create(into).unwrap();
        let frozen = store.freeze().unwrap();
        let summary = frozen.write_archive(BufWriter::new(file)).unwrap();
        drop(frozen);
        let leftovers: Vec<_> = std::fs::read_dir(store.dir())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|item| {
                item.file_name()
                    .to_string_lossy()
                    .starts_with(FROZEN_PREFIX)
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        summary
    }

    fn entries(store: &Store, name: &[u8]) -> Vec<Vec<u8>> {
        let stream = store.get(name).unwrap();
        stream
            .range(
                std::ops::Bound::Unbounded,
                std::ops::Bound::Unbounded,
                10_000,
            )
            .unwrap()
            .into_iter()
            .map(|entry| entry.body().to_vec())
            .collect()
    }

    #[test]
    fn a_store_installed_from_its_snapshot_holds_the_same_streams_and_mark() {
        let source = tempfile::tempdir().unwrap();
        let store = Store::open(source.path()).unwrap();
        for i in 0..50 {
            store
                .stream(b"orders")
                .unwrap()
                .append(Message::new(format!("order {i}")))
                .unwrap();
        }
        store.stream(b"../../x").unwrap();
        let mark = ReplicationMark {
            index: 9,
            time_ms: 1_000,
        };
        store.transaction_marked(mark, || ()).unwrap();
        let archive = source.path().join("archive");
        let summary = snapshot_of(&store, &archive);
        assert!(summary.files >= 4, "{summary:?}");
        store.stream(b"later").unwrap();

        let target = tempfile::tempdir().unwrap();
        let other = Store::open(target.path()).unwrap();
        other.stream(b"replaced").unwrap();
        drop(other);
        let installed = Store::install_snapshot(target.path(), &archive).unwrap();
        assert_eq!(installed, summary);
        let store_copy = Store::open(target.path()).unwrap();
        assert_eq!(
            store_copy.stream_names(),
            [b"../../x".to_vec(), b"orders".to_vec()]
        );
        assert_eq!(entries(&store_copy, b"orders"), entries(&store, b"orders"));
        assert_eq!(store_copy.replication_mark(), Some(mark));
        assert!(!target.path().join(INSTALLING_DIR).exists());
        assert!(!target.path().join(REPLACED_STREAMS_DIR).exists());
    }

    #[test]
    fn a_frozen_store_is_not_changed_by_later_appends_rolls_and_trims() {
        let options = || crate::store::StoreOptions {
            log: crate::log::LogOptions {
                max_segment_bytes: 16 << 10,
                initial_segment_bytes: 4 << 10,
                index_interval_bytes: 256,
            },
            ..crate::store::StoreOptions::default()
        };
        let source = tempfile::tempdir().unwrap();
        let store = Store::open_with(source.path(), options()).unwrap();
        let stream = store.stream(b"s").unwrap();
        let append = |from: usize, to: usize| {
            for i in from..to {
                stream.append(Message::new(format!("{i:0>200}"))).unwrap();
            }
        };
        append(0, 300);
        let expected = entries(&store, b"s");
        let frozen = store.freeze().unwrap();
        let linked = std::fs::read_dir(frozen.dir.join(STREAMS_DIR))
            .unwrap()
            .filter_map(Result::ok)
            .flat_map(|dir| {
                std::fs::read_dir(dir.path())
                    .unwrap()
                    .filter_map(Result::ok)
            })
            .filter(|file| {
                use std::os::unix::fs::MetadataExt;
                file.metadata().unwrap().nlink() > 1
            })
            .count();
        assert!(linked >= 2, "no sealed segment was linked: {linked}");
        // New records, new segments, and the oldest segments removed by a trim.
        append(300, 600);
        stream.trim_max_len(100, false, None).unwrap();
        let archive = source.path().join("archive");
        frozen
            .write_archive(BufWriter::new(File::create(&archive).unwrap()))
            .unwrap();
        drop(frozen);

        let target = tempfile::tempdir().unwrap();
        Store::install_snapshot(target.path(), &archive).unwrap();
        let copy = Store::open_with(target.path(), options()).unwrap();
        assert_eq!(entries(&copy, b"s"), expected);
    }

    #[test]
    fn a_damaged_or_hostile_archive_leaves_the_store_as_it_was() {
        let source = tempfile::tempdir().unwrap();
        let store = Store::open(source.path()).unwrap();
        store
            .stream(b"s")
            .unwrap()
            .append(Message::new("x"))
            .unwrap();
        let archive = source.path().join("archive");
        snapshot_of(&store, &archive);
        let bytes = std::fs::read(&archive).unwrap();

        let mut hostile = ArchiveWriter::new(Vec::new()).unwrap();
        let header = FileHeader {
            path: "streams/../../escaped".into(),
            len: 1,
            data_len: 1,
        };
        hostile.file(&header, &mut &b"x"[..]).unwrap();
        let hostile = hostile.finish().unwrap();
        let mut flipped = bytes.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 1;
        let cut = bytes[..bytes.len() - 3].to_vec();

        for damaged in [hostile, flipped, cut] {
            let target = tempfile::tempdir().unwrap();
            Store::open(target.path())
                .unwrap()
                .stream(b"kept")
                .unwrap()
                .append(Message::new("y"))
                .unwrap();
            let path = target.path().join("archive");
            std::fs::write(&path, &damaged).unwrap();
            let error = Store::install_snapshot(target.path(), &path).unwrap_err();
            assert!(matches!(error, StoreError::BadSnapshot { .. }), "{error}");
            let reopened = Store::open(target.path()).unwrap();
            assert_eq!(reopened.stream_names(), [b"kept".to_vec()]);
            assert!(!target.path().join(INSTALLING_DIR).exists());
            assert!(!target.path().parent().unwrap().join("escaped").exists());
        }
    }

    #[test]
    fn an_open_store_cannot_be_installed_into() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let archive = dir.path().join("archive");
        snapshot_of(&store, &archive);
        let error = Store::install_snapshot(dir.path(), &archive).unwrap_err();
        assert!(matches!(error, StoreError::Locked(_)), "{error}");
    }

    #[test]
    fn destinations_stay_inside_the_staging_directory() {
        let staging = Path::new("/data/snapshot.installing");
        assert!(destination(staging, "replication.mark").is_ok());
        assert!(destination(staging, "streams/3-orders/00000000000000000000.seg").is_ok());
        for hostile in [
            "../x",
            "/etc/passwd",
            "streams/3-a/../../x",
            "streams/../x/y",
            "streams/3-a/b/c",
            "streams/tmp-3/x",
            "streams/trash-3-a/x",
            "streams/abc/x",
            "streams/3-a/x.tmp",
            "streams/3-a/",
            "LOCK",
            "raft/raft.meta",
        ] {
            assert!(destination(staging, hostile).is_err(), "{hostile}");
        }
    }
}
