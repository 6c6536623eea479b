//! Every file-system call that changes the disk or makes it durable, in one place.
//!
//! Creating, preallocating, writing, truncating, mapping, syncing (fdatasync, msync, a
//! directory's fsync), setting permissions, renaming, linking and removing all go through the functions here, so
//! that each exists once and so that tests can make any one of them fail: under `cfg(test)`,
//! [`fault`] injects a full disk, an I/O error, a short write or a crash at a chosen call within
//! a chosen directory, and every multi-step operation of the engine is tested with a fault at
//! each of its steps. Reads (`read`, `read_dir`, `metadata`) stay with their callers: a failed
//! read changes nothing on disk.
//!
//! Which call makes what durable:
//! * [`sync_data`] / [`sync_all`]: the file's bytes (and, for `sync_all`, its metadata);
//! * [`msync`]: a range of a mapped file's bytes;
//! * [`sync_dir`]: the names created, renamed or removed in a directory. A new file, a rename or
//!   a removal survives a power loss only after its directory is synced.
//!
//! Without `cfg(test)` the fault check compiles to nothing: the functions are the plain calls.
//!
//! With the test feature `power-loss-record`, each call that changes the disk or syncs it also
//! goes through a hook of [`power_loss`], which records it when it touches the directory a test
//! named, so that the test can later put that directory back to what a power loss would leave.
//! Without the feature the hooks are empty and inlined away.

#[cfg(test)]
pub(crate) mod fault;
pub mod names;
#[cfg(feature = "power-loss-record")]
pub mod power_loss;
pub(crate) mod slot_file;

#[cfg(feature = "power-loss-record")]
use power_loss::hooks as record;

/// The power-loss hooks of a build without `power-loss-record`: each runs its call, nothing more.
#[cfg(not(feature = "power-loss-record"))]
mod record {
    use std::fs::File;
    use std::io;
    use std::path::Path;

    #[inline(always)]
    pub(crate) fn create(
        _path: &Path,
        _truncate: bool,
        op: impl FnOnce() -> io::Result<File>,
    ) -> io::Result<File> {
        op()
    }

    #[inline(always)]
    pub(crate) fn write(
        _file: &File,
        _path: &Path,
        _bytes: &[u8],
        _at: Option<u64>,
        op: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        op()
    }

    #[inline(always)]
    pub(crate) fn resize(
        _file: &File,
        _path: &Path,
        op: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        op()
    }

    #[inline(always)]
    pub(crate) fn map<T>(
        _file: &File,
        _path: &Path,
        op: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        op()
    }

    #[inline(always)]
    pub(crate) fn sync(
        _file: &File,
        _path: &Path,
        op: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        op()
    }

    #[inline(always)]
    pub(crate) fn sync_dir(_dir: &Path, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        op()
    }

    #[inline(always)]
    pub(crate) fn rename(
        _from: &Path,
        _to: &Path,
        op: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        op()
    }

    #[inline(always)]
    pub(crate) fn hard_link(_to: &Path, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        op()
    }

    #[inline(always)]
    pub(crate) fn remove_file(_path: &Path, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        op()
    }

    #[inline(always)]
    pub(crate) fn remove_dir_all(
        _path: &Path,
        op: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        op()
    }

    #[inline(always)]
    pub(crate) fn create_dir(_path: &Path, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        op()
    }
}

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use memmap2::{MmapOptions, MmapRaw};

/// The kinds of call, as the fault injector tells them apart (only it reads them).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Create,
    Open,
    Preallocate,
    Write,
    SetLen,
    Map,
    SyncData,
    Msync,
    SyncDir,
    Rename,
    Link,
    Remove,
    CreateDir,
    RemoveDir,
    SetPermissions,
}

#[cfg(test)]
#[inline]
fn check(op: Op, path: &Path) -> io::Result<()> {
    fault::check(op, path)
}

#[cfg(not(test))]
#[inline(always)]
fn check(_op: Op, _path: &Path) -> io::Result<()> {
    Ok(())
}

/// Creates `path`, which must not exist, open for reading and writing.
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    check(Op::Create, path)?;
    record::create(path, false, || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    })
}

/// Creates `path`, or truncates it if it exists, open for reading and writing.
pub(crate) fn create_truncate(path: &Path) -> io::Result<File> {
    check(Op::Create, path)?;
    record::create(path, true, || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    })
}

/// Opens `path` for writing, creating it empty if missing and never truncating it.
pub(crate) fn open_or_create(path: &Path) -> io::Result<File> {
    check(Op::Create, path)?;
    record::create(path, false, || {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
    })
}

/// Opens an existing file, for reading and, if `writable`, writing.
pub(crate) fn open_existing(path: &Path, writable: bool) -> io::Result<File> {
    if writable {
        check(Op::Open, path)?;
    }
    OpenOptions::new().read(true).write(writable).open(path)
}

/// Reserves `len` bytes of disk for `file` from its start (`fallocate`), so that writing into
/// that range can never fail for lack of space. Fails with `Unsupported` where the file system
/// has no `fallocate`; `ENOSPC` and `EFBIG` come back as such.
pub(crate) fn preallocate(file: &File, path: &Path, len: u64) -> io::Result<()> {
    check(Op::Preallocate, path)?;
    record::resize(file, path, || {
        match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::OPNOTSUPP) => Err(io::ErrorKind::Unsupported.into()),
            Err(errno) => Err(errno.into()),
        }
    })
}

/// Writes all of `bytes` at `pos`, whatever the file's cursor.
pub(crate) fn write_all_at(file: &File, path: &Path, bytes: &[u8], pos: u64) -> io::Result<()> {
    check_write(path, bytes, |part| file.write_all_at(part, pos))?;
    record::write(file, path, bytes, Some(pos), || {
        file.write_all_at(bytes, pos)
    })
}

/// Writes all of `bytes` at the file's cursor.
pub(crate) fn write_all(mut file: &File, path: &Path, bytes: &[u8]) -> io::Result<()> {
    check_write(path, bytes, |part| file.write_all(part))?;
    record::write(file, path, bytes, None, || file.write_all(bytes))
}

#[cfg(test)]
fn check_write(
    path: &Path,
    bytes: &[u8],
    write_part: impl FnOnce(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    fault::check_write(path, bytes, write_part)
}

#[cfg(not(test))]
#[inline(always)]
fn check_write(
    _path: &Path,
    _bytes: &[u8],
    _write_part: impl FnOnce(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    Ok(())
}

/// Sets the file's length, cutting or extending it.
pub(crate) fn set_len(file: &File, path: &Path, len: u64) -> io::Result<()> {
    check(Op::SetLen, path)?;
    record::resize(file, path, || file.set_len(len))
}

/// Maps the whole file, shared, for reading and writing.
pub(crate) fn map(file: &File, path: &Path) -> io::Result<MmapRaw> {
    check(Op::Map, path)?;
    record::map(file, path, || MmapOptions::new().map_raw(file))
}

/// Maps the whole file, shared, for reading only.
pub(crate) fn map_read_only(file: &File) -> io::Result<MmapRaw> {
    MmapOptions::new().map_raw_read_only(file)
}

/// Makes `[start, start + len)` of a mapped file durable (msync, on Linux a range-limited
/// fdatasync).
pub(crate) fn msync(map: &MmapRaw, path: &Path, start: usize, len: usize) -> io::Result<()> {
    check(Op::Msync, path)?;
    map.flush_range(start, len)
}

/// Makes the file's bytes durable (fdatasync).
pub(crate) fn sync_data(file: &File, path: &Path) -> io::Result<()> {
    check(Op::SyncData, path)?;
    record::sync(file, path, || file.sync_data())
}

/// Makes the file's bytes and metadata durable (fsync).
pub(crate) fn sync_all(file: &File, path: &Path) -> io::Result<()> {
    check(Op::SyncData, path)?;
    record::sync(file, path, || file.sync_all())
}

/// Makes the names in `dir` durable: files created, renamed or removed in it.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    check(Op::SyncDir, dir)?;
    record::sync_dir(dir, || File::open(dir).and_then(|handle| handle.sync_all()))
}

/// Renames `from` to `to`, replacing `to` atomically if it exists. Durable once the
/// directories of both are synced.
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    check(Op::Rename, from)?;
    record::rename(from, to, || std::fs::rename(from, to))
}

/// Gives the file `from` the second name `to`, which must not exist.
pub(crate) fn hard_link(from: &Path, to: &Path) -> io::Result<()> {
    check(Op::Link, to)?;
    record::hard_link(to, || std::fs::hard_link(from, to))
}

/// Removes a file.
pub(crate) fn remove_file(path: &Path) -> io::Result<()> {
    check(Op::Remove, path)?;
    record::remove_file(path, || std::fs::remove_file(path))
}

/// Removes a file if it exists.
pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match remove_file(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Creates a directory, which must not exist.
pub(crate) fn create_dir(path: &Path) -> io::Result<()> {
    check(Op::CreateDir, path)?;
    record::create_dir(path, || std::fs::create_dir(path))
}

/// Creates a directory and any missing parents.
pub(crate) fn create_dir_all(path: &Path) -> io::Result<()> {
    check(Op::CreateDir, path)?;
    record::create_dir(path, || std::fs::create_dir_all(path))
}

/// Removes a directory and everything in it.
pub(crate) fn remove_dir_all(path: &Path) -> io::Result<()> {
    check(Op::RemoveDir, path)?;
    record::remove_dir_all(path, || std::fs::remove_dir_all(path))
}

/// How much of a file [`write_file`] makes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteSync {
    /// Nothing: the file is a cache, rebuilt from other files whenever it is lost or stale.
    Cache,
    /// Its bytes (fdatasync): enough for a file whose metadata nothing reads but its length.
    Data,
    /// Its bytes and metadata (fsync).
    All,
}

/// Gives `file` (at `path`) the permissions `permissions`.
pub(crate) fn set_permissions(
    file: &File,
    path: &Path,
    permissions: std::fs::Permissions,
) -> io::Result<()> {
    check(Op::SetPermissions, path)?;
    file.set_permissions(permissions)
}

/// Writes a small file whole (creating or truncating it) and syncs it as `sync` says; its name
/// is durable only once the directory is synced.
pub(crate) fn write_file(path: &Path, bytes: &[u8], sync: WriteSync) -> io::Result<()> {
    let file = create_truncate(path)?;
    write_all(&file, path, bytes)?;
    match sync {
        WriteSync::Cache => Ok(()),
        WriteSync::Data => sync_data(&file, path),
        WriteSync::All => sync_all(&file, path),
    }
}

/// Writes a small file whole and makes its bytes durable (not its name: sync the directory).
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_file(path, bytes, WriteSync::All)
}

/// Puts a file under the name `path` only once it is complete: `prepare` writes it under `tmp`
/// (and syncs it, if it must survive a power loss), then `tmp` is renamed over `path`, replacing
/// any file there atomically. If either step fails, `tmp` is removed (best effort: the next
/// attempt recreates it, and opening removes leftovers) and `path` is as it was. The directory
/// is not synced: the caller syncs it (see [`replace_durably`]) when the new name must survive a
/// power loss, possibly after acting on the file being in place.
pub(crate) fn place<T, E>(
    tmp: &Path,
    path: &Path,
    prepare: impl FnOnce() -> Result<T, E>,
    rename_failed: impl FnOnce(io::Error) -> E,
) -> Result<T, E> {
    let placed = prepare().and_then(|value| {
        rename(tmp, path).map_err(rename_failed)?;
        Ok(value)
    });
    if placed.is_err() {
        let _ = remove_file(tmp);
    }
    placed
}

/// Replaces `path` with a file holding `bytes`, atomically: written to `tmp`, synced, renamed
/// over `path`, and the directory synced. A crash at any step leaves the old file or the new
/// one, never a mix; a failure removes `tmp` (best effort: the next replace recreates it).
pub(crate) fn replace_durably(path: &Path, tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    place(tmp, path, || write_durably(tmp, bytes), |error| error)?;
    sync_dir(parent_dir(path))
}

/// The directory holding `path` (`.` for a bare name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}
