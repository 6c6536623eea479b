//! Undo records: what a store transaction needs to take back its changes after a crash.
//!
//! Inside a transaction (see [`Store::transaction`](crate::Store::transaction)), every layer
//! that is about to change a stream's files first calls [`before_change`] with a description of
//! how to take the change back: where the log ended, how long a journal was, which directory a
//! deletion moved aside. The store writes that description to its transaction journal (synced,
//! under `Durability::Always`) before the change happens, once per file per transaction. A
//! crash before the transaction commits leaves the journal holding the descriptions, and the
//! next open undoes them all, newest first, so that none of the transaction's changes survive.
//!
//! Outside a transaction [`before_change`] costs one thread-local read. The transaction is the
//! calling thread's: a command of another thread is not part of it (the server runs a
//! transaction with every other command held off).

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::codec::{CodecError, Decoder, Encoder};
use crate::store::ReplicationMark;

/// How to take back a transaction's changes to one file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Undo {
    /// Cut the log in `dir` back to `next_offset` (records from there on are dropped) and its
    /// meta journal of generation `meta_generation` back to `meta_len` bytes.
    Log {
        dir: PathBuf,
        next_offset: u64,
        meta_generation: u64,
        meta_len: u64,
    },
    /// Cut the group journal of generation `generation` in `dir` back to `len` bytes.
    Groups {
        dir: PathBuf,
        generation: u64,
        len: u64,
    },
    /// Remove the stream directory `dir`, which the transaction created.
    Created { dir: PathBuf },
    /// Move the stream directory the transaction deleted back from `trash` to `dir`.
    Deleted { dir: PathBuf, trash: PathBuf },
    /// Write `name` back to the `NAME` file of the stream directory `dir`.
    Renamed { dir: PathBuf, name: Vec<u8> },
    /// Write `previous` back as the store's replication mark (`None`: no mark).
    Mark { previous: Option<ReplicationMark> },
}

/// Which of a directory's files an undo record is for: one record each per transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    Log,
    Groups,
    Created,
    Deleted,
    Name,
}

/// A transaction could not write an undo record down: the change must not happen.
#[derive(Debug, thiserror::Error)]
#[error("could not record how to undo a transaction's change ({0}): the change was not made")]
pub struct UndoError(pub String);

/// Receives the undo records of the transaction running on this thread.
pub(crate) trait Recorder {
    /// Writes `undo` down so that it survives a crash; the change follows only on `Ok`.
    fn record(&mut self, undo: &Undo) -> Result<(), UndoError>;
}

struct Active {
    recorder: Box<dyn Recorder>,
    recorded: HashSet<(PathBuf, Target)>,
}

thread_local! {
    /// Whether `ACTIVE` holds a transaction: a flag with no destructor, so that the check every
    /// append makes is one thread-local load.
    static RECORDING: Cell<bool> = const { Cell::new(false) };
    static ACTIVE: RefCell<Option<Active>> = const { RefCell::new(None) };
}

/// Whether a transaction runs on this thread: changes that cannot be undone (removing files)
/// wait until it is over.
pub(crate) fn recording() -> bool {
    RECORDING.with(Cell::get)
}

/// Called before `dir`'s `target` changes: inside a transaction, and the first time in it for
/// this file, has `undo()` written down before returning. Inlined: outside a transaction, on
/// every append, it is one thread-local load.
#[inline]
pub(crate) fn before_change(
    dir: &Path,
    target: Target,
    undo: impl FnOnce() -> Undo,
) -> Result<(), UndoError> {
    if !recording() {
        return Ok(());
    }
    record_first_change(dir, target, undo)
}

#[cold]
fn record_first_change(
    dir: &Path,
    target: Target,
    undo: impl FnOnce() -> Undo,
) -> Result<(), UndoError> {
    ACTIVE.with(|active| {
        let mut active = active.borrow_mut();
        let Some(active) = active.as_mut() else {
            return Ok(());
        };
        let key = (dir.to_path_buf(), target);
        if active.recorded.contains(&key) {
            return Ok(());
        }
        active.recorder.record(&undo())?;
        active.recorded.insert(key);
        Ok(())
    })
}

/// Runs `work` with `recorder` receiving this thread's undo records; returns the recorder (to
/// commit) with `work`'s output. Transactions do not nest.
pub(crate) fn recording_with<R: Recorder + 'static, T>(
    recorder: R,
    work: impl FnOnce() -> T,
) -> (T, usize) {
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            RECORDING.with(|recording| recording.set(false));
            ACTIVE.with(|active| active.borrow_mut().take());
        }
    }
    ACTIVE.with(|active| {
        let mut active = active.borrow_mut();
        assert!(active.is_none(), "transactions do not nest");
        *active = Some(Active {
            recorder: Box::new(recorder),
            recorded: HashSet::new(),
        });
    });
    RECORDING.with(|recording| recording.set(true));
    let stop = Stop;
    let output = work();
    let recorded = ACTIVE.with(|active| active.borrow().as_ref().map_or(0, |a| a.recorded.len()));
    drop(stop);
    (output, recorded)
}

impl Undo {
    /// The stream directory the record is about; `None` for the store's own replication mark.
    pub(crate) fn dir(&self) -> Option<&Path> {
        match self {
            Undo::Log { dir, .. }
            | Undo::Groups { dir, .. }
            | Undo::Created { dir }
            | Undo::Deleted { dir, .. }
            | Undo::Renamed { dir, .. } => Some(dir),
            Undo::Mark { .. } => None,
        }
    }
}

const TAG_LOG: u8 = 1;
const TAG_GROUPS: u8 = 2;
const TAG_CREATED: u8 = 3;
const TAG_DELETED: u8 = 4;
const TAG_RENAMED: u8 = 5;
const TAG_MARK: u8 = 6;

impl Undo {
    /// The record's bytes, with every directory written as its path relative to `base` (the
    /// store's streams directory), so that a data directory can be moved.
    pub(crate) fn encode(&self, base: &Path) -> Vec<u8> {
        let mut out = Encoder::new();
        let relative = |dir: &Path| {
            dir.strip_prefix(base)
                .unwrap_or(dir)
                .as_os_str()
                .as_encoded_bytes()
                .to_vec()
        };
        match self {
            Undo::Log {
                dir,
                next_offset,
                meta_generation,
                meta_len,
            } => {
                out.u8(TAG_LOG)
                    .bytes(&relative(dir))
                    .u64(*next_offset)
                    .u64(*meta_generation)
                    .u64(*meta_len);
            }
            Undo::Groups {
                dir,
                generation,
                len,
            } => {
                out.u8(TAG_GROUPS)
                    .bytes(&relative(dir))
                    .u64(*generation)
                    .u64(*len);
            }
            Undo::Created { dir } => {
                out.u8(TAG_CREATED).bytes(&relative(dir));
            }
            Undo::Deleted { dir, trash } => {
                out.u8(TAG_DELETED)
                    .bytes(&relative(dir))
                    .bytes(&relative(trash));
            }
            Undo::Renamed { dir, name } => {
                out.u8(TAG_RENAMED).bytes(&relative(dir)).bytes(name);
            }
            Undo::Mark { previous } => {
                out.u8(TAG_MARK).u8(u8::from(previous.is_some()));
                let previous = previous.unwrap_or(ReplicationMark {
                    index: 0,
                    time_ms: 0,
                });
                out.u64(previous.index).u64(previous.time_ms);
            }
        }
        out.finish()
    }

    /// Decodes a record written by [`encode`](Self::encode) with the same `base`. A path that
    /// would leave `base` (an absolute one, or one with `..`) is refused.
    pub(crate) fn decode(bytes: &[u8], base: &Path) -> Result<Undo, CodecError> {
        let mut input = Decoder::new(bytes, "undo record");
        let undo = match input.u8()? {
            TAG_LOG => Undo::Log {
                dir: dir_below(base, input.bytes()?)?,
                next_offset: input.u64()?,
                meta_generation: input.u64()?,
                meta_len: input.u64()?,
            },
            TAG_GROUPS => Undo::Groups {
                dir: dir_below(base, input.bytes()?)?,
                generation: input.u64()?,
                len: input.u64()?,
            },
            TAG_CREATED => Undo::Created {
                dir: dir_below(base, input.bytes()?)?,
            },
            TAG_DELETED => Undo::Deleted {
                dir: dir_below(base, input.bytes()?)?,
                trash: dir_below(base, input.bytes()?)?,
            },
            TAG_RENAMED => Undo::Renamed {
                dir: dir_below(base, input.bytes()?)?,
                name: input.bytes()?.to_vec(),
            },
            TAG_MARK => {
                let present = input.u8()? != 0;
                let mark = ReplicationMark {
                    index: input.u64()?,
                    time_ms: input.u64()?,
                };
                Undo::Mark {
                    previous: present.then_some(mark),
                }
            }
            _ => {
                return Err(CodecError {
                    what: "undo record",
                    detail: "unknown tag",
                });
            }
        };
        input.finish()?;
        Ok(undo)
    }
}

/// `base` joined with a single directory name; anything else is refused.
fn dir_below(base: &Path, name: &[u8]) -> Result<PathBuf, CodecError> {
    let refused = CodecError {
        what: "undo record",
        detail: "a directory that is not one name below the streams directory",
    };
    let name = std::str::from_utf8(name).map_err(|_| refused.clone())?;
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(std::path::Component::Normal(single)), None) => Ok(base.join(single)),
        _ => Err(refused),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Clone)]
    struct Collect(std::rc::Rc<RefCell<Vec<Undo>>>);

    impl Recorder for Collect {
        fn record(&mut self, undo: &Undo) -> Result<(), UndoError> {
            self.0.borrow_mut().push(undo.clone());
            Ok(())
        }
    }

    fn log_undo(dir: &str, next_offset: u64) -> Undo {
        Undo::Log {
            dir: PathBuf::from(dir),
            next_offset,
            meta_generation: 1,
            meta_len: 32,
        }
    }

    #[test]
    fn only_the_first_change_of_each_file_is_recorded_and_only_inside_a_transaction() {
        let seen = Collect::default();
        before_change(Path::new("/s/1"), Target::Log, || log_undo("/s/1", 0)).unwrap();
        let ((), recorded) = recording_with(seen.clone(), || {
            assert!(recording());
            for next_offset in 0..3 {
                before_change(Path::new("/s/1"), Target::Log, || {
                    log_undo("/s/1", next_offset)
                })
                .unwrap();
            }
            before_change(Path::new("/s/2"), Target::Log, || log_undo("/s/2", 7)).unwrap();
        });
        assert!(!recording());
        assert_eq!(recorded, 2);
        assert_eq!(
            *seen.0.borrow(),
            vec![log_undo("/s/1", 0), log_undo("/s/2", 7)]
        );
    }

    #[test]
    fn records_round_trip_relative_to_the_streams_directory() {
        let base = Path::new("/data/streams");
        let records = [
            Undo::Log {
                dir: base.join("1-orders"),
                next_offset: 5,
                meta_generation: 2,
                meta_len: 96,
            },
            Undo::Groups {
                dir: base.join("1-orders"),
                generation: 3,
                len: 40,
            },
            Undo::Created {
                dir: base.join("2-new"),
            },
            Undo::Deleted {
                dir: base.join("3-old"),
                trash: base.join("trash-3-old"),
            },
            Undo::Renamed {
                dir: base.join("4-x"),
                name: b"x".to_vec(),
            },
        ];
        for undo in records {
            let bytes = undo.encode(base);
            assert_eq!(Undo::decode(&bytes, base).unwrap(), undo);
            let moved = Path::new("/elsewhere/streams");
            let decoded = Undo::decode(&bytes, moved).unwrap();
            assert_ne!(decoded, undo, "paths follow the streams directory");
        }
    }

    #[test]
    fn replication_marks_round_trip() {
        let base = Path::new("/data/streams");
        let marks = [
            None,
            Some(ReplicationMark {
                index: 41,
                time_ms: 1_700_000_000_123,
            }),
        ];
        for previous in marks {
            let undo = Undo::Mark { previous };
            assert_eq!(Undo::decode(&undo.encode(base), base).unwrap(), undo);
            assert_eq!(undo.dir(), None);
        }
    }

    /// The example of storage-format.md, section 13.2.
    #[test]
    fn a_log_record_matches_the_documented_bytes() {
        let base = Path::new("/data/streams");
        let undo = Undo::Log {
            dir: base.join("1-orders"),
            next_offset: 5,
            meta_generation: 2,
            meta_len: 96,
        };
        let mut expected = vec![0x01, 0x08, 0, 0, 0];
        expected.extend_from_slice(b"1-orders");
        expected.extend_from_slice(&5u64.to_le_bytes());
        expected.extend_from_slice(&2u64.to_le_bytes());
        expected.extend_from_slice(&96u64.to_le_bytes());
        assert_eq!(undo.encode(base), expected);
    }

    #[test]
    fn a_record_cannot_name_a_directory_outside_the_streams_directory() {
        let base = Path::new("/data/streams");
        for name in ["../../etc", "/etc", "a/b", "", "."] {
            let mut bytes = Encoder::new();
            bytes.u8(TAG_CREATED).bytes(name.as_bytes());
            assert!(
                Undo::decode(&bytes.finish(), base).is_err(),
                "{name:?} accepted"
            );
        }
    }
}
