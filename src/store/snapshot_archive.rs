//! The store snapshot archive (storage-format.md 15): a stream of files, each with its path, its
//! length, the bytes before its zero tail and a CRC, ended by the count of files. Pure encoding
//! and decoding over `Read` and `Write`; which files go in, and where they land, is
//! [`super::snapshot`]'s job.

use std::io::{self, Read, Write};

/// The archive's first four bytes.
pub(crate) const ARCHIVE_MAGIC: [u8; 4] = *b"WSNA";
/// The only version written and read.
pub(crate) const ARCHIVE_VERSION: u32 = 1;
const TAG_END: u8 = 0;
const TAG_FILE: u8 = 1;
/// Longest path an archive may name: longer is refused as damage before anything is allocated.
pub(crate) const MAX_PATH_BYTES: usize = 1024;
const COPY_CHUNK: usize = 1 << 20;

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ArchiveError {
    /// Reading the archive failed, or writing a file out of it did.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The archive is not one, or is damaged or cut short.
    #[error("{0}")]
    Damaged(String),
}

fn damaged(detail: impl Into<String>) -> ArchiveError {
    ArchiveError::Damaged(detail.into())
}

/// One file of an archive, before its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileHeader {
    /// Relative, `/`-separated path (validated by the caller).
    pub path: String,
    /// The file's length; the bytes after `data_len` are zeros.
    pub len: u64,
    /// How many bytes of data follow.
    pub data_len: u64,
}

/// Writes an archive into `out`.
pub(crate) struct ArchiveWriter<W: Write> {
    out: W,
    files: u64,
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts an archive: writes its magic and version.
    pub fn new(mut out: W) -> io::Result<ArchiveWriter<W>> {
        out.write_all(&ARCHIVE_MAGIC)?;
        out.write_all(&ARCHIVE_VERSION.to_le_bytes())?;
        Ok(ArchiveWriter { out, files: 0 })
    }

    /// Adds the file `header` describes, its `data_len` bytes read from `data`.
    pub fn file(&mut self, header: &FileHeader, data: &mut impl Read) -> io::Result<()> {
        debug_assert!(header.data_len <= header.len);
        debug_assert!(header.path.len() <= MAX_PATH_BYTES);
        let path_len = u16::try_from(header.path.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path too long"))?;
        let mut hasher = crc32fast::Hasher::new();
        let mut put = |bytes: &[u8], out: &mut W| {
            hasher.update(bytes);
            out.write_all(bytes)
        };
        put(&[TAG_FILE], &mut self.out)?;
        put(&path_len.to_le_bytes(), &mut self.out)?;
        put(header.path.as_bytes(), &mut self.out)?;
        put(&header.len.to_le_bytes(), &mut self.out)?;
        put(&header.data_len.to_le_bytes(), &mut self.out)?;
        let mut left = header.data_len;
        let mut buffer = vec![0u8; COPY_CHUNK];
        while left > 0 {
            let take = usize::try_from(left).map_or(COPY_CHUNK, |left| left.min(COPY_CHUNK));
            let chunk = &mut buffer[..take];
            data.read_exact(chunk)?;
            put(chunk, &mut self.out)?;
            left -= take as u64;
        }
        self.out.write_all(&hasher.finalize().to_le_bytes())?;
        self.files += 1;
        Ok(())
    }

    /// Ends the archive with its count of files; answers the output.
    pub fn finish(mut self) -> io::Result<W> {
        let mut end = vec![TAG_END];
        end.extend_from_slice(&self.files.to_le_bytes());
        let crc = crc32fast::hash(&end);
        self.out.write_all(&end)?;
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads an archive, file by file.
pub(crate) struct ArchiveReader<R: Read> {
    input: R,
    files: u64,
    /// The header of the file whose data is next, with the CRC of the entry so far.
    pending: Option<(FileHeader, crc32fast::Hasher)>,
}

impl<R: Read> ArchiveReader<R> {
    /// Checks the archive's magic and version.
    pub fn new(mut input: R) -> Result<ArchiveReader<R>, ArchiveError> {
        let mut head = [0u8; 8];
        read_exact(&mut input, &mut head, "its header")?;
        if head[..4] != ARCHIVE_MAGIC {
            return Err(damaged("it does not start with the magic WSNA"));
        }
        let version = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if version != ARCHIVE_VERSION {
            return Err(damaged(format!(
                "its version is {version}; this build reads version {ARCHIVE_VERSION}"
            )));
        }
        Ok(ArchiveReader {
            input,
            files: 0,
            pending: None,
        })
    }

    /// The next file's header, `None` at the archive's end (whose file count is checked). The
    /// previous file's data must have been taken with [`copy_data`](Self::copy_data).
    pub fn next_file(&mut self) -> Result<Option<FileHeader>, ArchiveError> {
        assert!(
            self.pending.is_none(),
            "a file's data was not taken before the next file"
        );
        let mut hasher = crc32fast::Hasher::new();
        let tag = self.take::<1>(&mut hasher, "a tag")?[0];
        match tag {
            TAG_END => self.end(hasher).map(|()| None),
            TAG_FILE => {
                let header = self.file_header(&mut hasher)?;
                self.pending = Some((header.clone(), hasher));
                Ok(Some(header))
            }
            other => Err(damaged(format!("unknown tag {other}"))),
        }
    }

    fn file_header(&mut self, hasher: &mut crc32fast::Hasher) -> Result<FileHeader, ArchiveError> {
        let path_len = usize::from(u16::from_le_bytes(self.take(hasher, "a path length")?));
        if path_len == 0 || path_len > MAX_PATH_BYTES {
            return Err(damaged(format!("a path of {path_len} bytes")));
        }
        let mut path = vec![0u8; path_len];
        read_exact(&mut self.input, &mut path, "a path")?;
        hasher.update(&path);
        let path = String::from_utf8(path).map_err(|_| damaged("a path is not UTF-8"))?;
        let len = u64::from_le_bytes(self.take(hasher, "a file length")?);
        let data_len = u64::from_le_bytes(self.take(hasher, "a data length")?);
        if data_len > len {
            return Err(damaged(format!(
                "{path}: {data_len} bytes of data for a file of {len}"
            )));
        }
        Ok(FileHeader {
            path,
            len,
            data_len,
        })
    }

    fn end(&mut self, mut hasher: crc32fast::Hasher) -> Result<(), ArchiveError> {
        let files = u64::from_le_bytes(self.take(&mut hasher, "the file count")?);
        let crc = u32::from_le_bytes(self.take(&mut crc32fast::Hasher::new(), "the end's CRC")?);
        if crc != hasher.finalize() {
            return Err(damaged("the end's CRC does not match"));
        }
        if files != self.files {
            return Err(damaged(format!(
                "it ends saying {files} files but holds {}",
                self.files
            )));
        }
        Ok(())
    }

    /// Copies the data of the file [`next_file`](Self::next_file) returned into `out`, and
    /// checks the entry's CRC. `out` has then received bytes that may be damaged: on an error
    /// the caller discards what it wrote.
    pub fn copy_data(&mut self, out: &mut impl Write) -> Result<(), ArchiveError> {
        let Some((header, mut hasher)) = self.pending.take() else {
            return Err(damaged("data asked for before a file header"));
        };
        let mut left = header.data_len;
        let mut buffer = vec![0u8; COPY_CHUNK];
        while left > 0 {
            let take = usize::try_from(left).map_or(COPY_CHUNK, |left| left.min(COPY_CHUNK));
            let chunk = &mut buffer[..take];
            read_exact(&mut self.input, chunk, "a file's data")?;
            hasher.update(chunk);
            out.write_all(chunk)?;
            left -= take as u64;
        }
        let crc = u32::from_le_bytes(self.take(&mut crc32fast::Hasher::new(), "a file's CRC")?);
        if crc != hasher.finalize() {
            return Err(damaged(format!("{}: the CRC does not match", header.path)));
        }
        self.files += 1;
        Ok(())
    }

    fn take<const N: usize>(
        &mut self,
        hasher: &mut crc32fast::Hasher,
        what: &str,
    ) -> Result<[u8; N], ArchiveError> {
        let mut bytes = [0u8; N];
        read_exact(&mut self.input, &mut bytes, what)?;
        hasher.update(&bytes);
        Ok(bytes)
    }
}

/// Reads a whole archive, checking its header, every file's CRC and the count at its end,
/// writing nothing: the number of files it holds.
#[cfg(any(test, feature = "cluster"))]
pub(crate) fn check_archive(input: impl Read) -> Result<u64, ArchiveError> {
    let mut reader = ArchiveReader::new(input)?;
    let mut files = 0;
    while reader.next_file()?.is_some() {
        reader.copy_data(&mut io::sink())?;
        files += 1;
    }
    Ok(files)
}

fn read_exact(input: &mut impl Read, into: &mut [u8], what: &str) -> Result<(), ArchiveError> {
    input.read_exact(into).map_err(|error| {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            damaged(format!("it ends inside {what}"))
        } else {
            ArchiveError::Io(error)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(files: &[(&str, u64, &[u8])]) -> Vec<u8> {
        let mut writer = ArchiveWriter::new(Vec::new()).unwrap();
        for (path, len, data) in files {
            let header = FileHeader {
                path: (*path).to_owned(),
                len: *len,
                data_len: data.len() as u64,
            };
            writer.file(&header, &mut &data[..]).unwrap();
        }
        writer.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<(FileHeader, Vec<u8>)>, ArchiveError> {
        let mut reader = ArchiveReader::new(bytes)?;
        let mut files = Vec::new();
        while let Some(header) = reader.next_file()? {
            let mut data = Vec::new();
            reader.copy_data(&mut data)?;
            files.push((header, data));
        }
        Ok(files)
    }

    #[test]
    fn files_round_trip_with_their_lengths() {
        let bytes = archive(&[
            ("streams/1-a/NAME", 1, b"a"),
            ("replication.mark", 64, b"xy"),
        ]);
        let files = read_all(&bytes).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].0.path, "streams/1-a/NAME");
        assert_eq!(files[0].1, b"a");
        assert_eq!((files[1].0.len, files[1].0.data_len), (64, 2));
        assert_eq!(read_all(&archive(&[])).unwrap(), Vec::new());
    }

    #[test]
    fn a_check_counts_the_files_and_refuses_a_cut() {
        let bytes = archive(&[("a", 1, b"x"), ("b", 0, b"")]);
        assert_eq!(check_archive(&bytes[..]).unwrap(), 2);
        assert!(check_archive(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn the_layout_matches_the_format_description() {
        let bytes = archive(&[("a", 3, b"x")]);
        let mut expected = b"WSNA\x01\0\0\0".to_vec();
        let entry_start = expected.len();
        expected.extend_from_slice(&[1, 1, 0, b'a']);
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.push(b'x');
        let crc = crc32fast::hash(&expected[entry_start..]);
        expected.extend_from_slice(&crc.to_le_bytes());
        let end = [0, 1, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(&end);
        expected.extend_from_slice(&crc32fast::hash(&end).to_le_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused() {
        let bytes = archive(&[("streams/1-a/x", 10, b"0123456789"), ("m", 4, b"ab")]);
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x40;
            assert!(read_all(&flipped).is_err(), "flip at {at} went unnoticed");
            assert!(
                read_all(&bytes[..at]).is_err(),
                "cut at {at} went unnoticed"
            );
        }
    }

    #[test]
    fn hostile_lengths_are_refused_before_allocating() {
        let mut bytes = b"WSNA\x01\0\0\0".to_vec();
        bytes.extend_from_slice(&[1, 0xff, 0xff]);
        assert!(matches!(read_all(&bytes), Err(ArchiveError::Damaged(_))));
        let mut bytes = b"WSNA\x01\0\0\0".to_vec();
        bytes.extend_from_slice(&[1, 1, 0, b'a']);
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        let error = read_all(&bytes).unwrap_err().to_string();
        assert!(error.contains("bytes of data for a file of 1"), "{error}");
        assert!(read_all(b"WSNB\x01\0\0\0\0").is_err());
        assert!(read_all(b"WSNA\x02\0\0\0\0").is_err());
    }
}
