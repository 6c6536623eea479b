//! A snapshot's data file as openraft reads it (to send it in chunks) and writes it (a chunk
//! received from the leader), and as a state writes itself into it: positional reads and
//! writes through the crate's file calls, so that every byte written goes where the file-system
//! fault and power-loss models see it. Each call completes at once, a chunk at a time, as the
//! Raft log's own file calls do.

use std::fmt;
use std::io::{self, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use crate::fs;

/// An open snapshot data file and a position in it.
pub struct SnapshotData {
    file: std::fs::File,
    path: PathBuf,
    position: u64,
}

impl fmt::Debug for SnapshotData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotData")
            .field("path", &self.path)
            .field("position", &self.position)
            .finish()
    }
}

impl SnapshotData {
    /// Creates `path` empty (truncating a leftover of that name), for writing.
    pub fn create(path: &Path) -> io::Result<SnapshotData> {
        Ok(SnapshotData {
            file: fs::create_truncate(path)?,
            path: path.to_path_buf(),
            position: 0,
        })
    }

    /// Opens `path`, an existing snapshot data file, for reading.
    pub fn open(path: &Path) -> io::Result<SnapshotData> {
        Ok(SnapshotData {
            file: fs::open_existing(path, false)?,
            path: path.to_path_buf(),
            position: 0,
        })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes what was written durable (`fdatasync`).
    pub fn sync(&self) -> io::Result<()> {
        fs::sync_data(&self.file, &self.path)
    }

    fn write_here(&mut self, bytes: &[u8]) -> io::Result<usize> {
        fs::write_all_at(&self.file, &self.path, bytes, self.position)?;
        self.position += bytes.len() as u64;
        Ok(bytes.len())
    }

    fn seek_to(&mut self, to: SeekFrom) -> io::Result<u64> {
        let invalid = || io::Error::new(io::ErrorKind::InvalidInput, "seek outside the file");
        let from_end = |len: u64, delta: i64| len.checked_add_signed(delta).ok_or_else(invalid);
        self.position = match to {
            SeekFrom::Start(position) => position,
            SeekFrom::End(delta) => from_end(self.file.metadata()?.len(), delta)?,
            SeekFrom::Current(delta) => from_end(self.position, delta)?,
        };
        Ok(self.position)
    }
}

impl Write for SnapshotData {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write_here(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for SnapshotData {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let read = this
            .file
            .read_at(buf.initialize_unfilled(), this.position)?;
        buf.advance(read);
        this.position += read as u64;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SnapshotData {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().write_here(bytes))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Nothing to do: the writes are made at once, and whoever installs the snapshot syncs it.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncSeek for SnapshotData {
    fn start_seek(self: Pin<&mut Self>, to: SeekFrom) -> io::Result<()> {
        self.get_mut().seek_to(to).map(|_| ())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.position))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn chunks_written_at_offsets_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot.receiving");
        let mut data = SnapshotData::create(&path).unwrap();
        data.seek(SeekFrom::Start(3)).await.unwrap();
        AsyncWriteExt::write_all(&mut data, b"def").await.unwrap();
        data.seek(SeekFrom::Start(0)).await.unwrap();
        AsyncWriteExt::write_all(&mut data, b"abc").await.unwrap();
        data.sync().unwrap();
        let mut reading = SnapshotData::open(&path).unwrap();
        assert_eq!(reading.seek(SeekFrom::End(0)).await.unwrap(), 6);
        assert_eq!(reading.seek(SeekFrom::Current(-4)).await.unwrap(), 2);
        let mut rest = String::new();
        reading.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "cdef");
        assert!(reading.seek(SeekFrom::Current(-7)).await.is_err());
    }
}
