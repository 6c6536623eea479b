//! openraft's state machine as an adapter over [`Replicated`], the narrow interface the store
//! implements: apply a command at an index, report the last index applied, and save or restore
//! the whole state.
//!
//! The store records the index of the last command it applied with its own data, atomically
//! with the command's effect, so it knows after a restart which commands it already holds. The
//! adapter keeps what only Raft needs (the last entry applied, blank and membership entries
//! included, and the membership) in memory and in the snapshot file; after a restart openraft
//! applies again the committed entries after the last snapshot, and the adapter hands the store
//! only those above the store's own applied index, so no command takes effect twice.

mod snapshot_data;
mod snapshot_file;
#[cfg(test)]
pub(crate) mod test_counter;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageIOError,
};
use parking_lot::Mutex;

use crate::fs;
use crate::journal::JournalError;
use crate::names::{
    RAFT_SNAPSHOT_BUILDING_FILE, RAFT_SNAPSHOT_RECEIVING_FILE, raft_snapshot_data_sequence,
};

pub use snapshot_data::SnapshotData;
pub use snapshot_file::{RAFT_SNAPSHOT_KIND, StoredSnapshot};

use super::types::{
    Command, Entry, LogId, NodeAddr, NodeId, Reply, StorageError, StoredMembership, TypeConfig,
};

/// What the replicated state (the store) provides to the cluster.
///
/// Calls come one at a time, in log order.
pub trait Replicated: Send + Sync + 'static {
    /// Why the state could not apply, save or restore.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The index of the last command whose effect the state holds, as its own data records it;
    /// `None` for a state that never applied one.
    fn applied(&self) -> Result<Option<u64>, Self::Error>;

    /// Applies `commands`, each with its index (ascending, all above
    /// [`applied`](Self::applied)), recording the last index atomically with their effects,
    /// and returns one reply per command. The effects must depend on the state and the commands
    /// alone (each command carries the time to use), so every node computes the same.
    fn apply(&self, commands: &[(u64, Command)]) -> Result<Vec<Reply>, Self::Error>;

    /// Holds the whole state as it is now, with its applied index inside, to be written out
    /// later, while commands go on being applied. No command is applied during the call.
    fn freeze(&self) -> Result<FrozenState<Self::Error>, Self::Error>;

    /// Replaces the whole state with the one a [`FrozenState`] wrote (on this node or
    /// another) into the file `data`, its applied index included. A state that fails to
    /// install must be left as it was, or so that [`applied`](Self::applied) is below the
    /// snapshot's index, so that the next open installs it again.
    fn install(&self, data: &Path) -> Result<(), Self::Error>;
}

/// A state held by [`Replicated::freeze`]: writes itself into a snapshot's data file.
pub type FrozenState<E> = Box<dyn FnOnce(&mut dyn Write) -> Result<(), E> + Send>;

/// What Raft knows of the state machine besides the state.
#[derive(Debug, Default)]
struct Applied {
    last: Option<LogId>,
    membership: StoredMembership,
    snapshot: Option<StoredSnapshot>,
    /// Snapshots built by this process, for their ids.
    built: u64,
    /// The number the next snapshot data file gets.
    next_data: u64,
}

impl Applied {
    fn take_data_number(&mut self) -> u64 {
        let number = self.next_data;
        self.next_data += 1;
        number
    }
}

/// openraft's state machine over a [`Replicated`] state.
pub struct StateMachine<S: Replicated> {
    /// The log's (or state's) directory.
    dir: PathBuf,
    state: Arc<S>,
    applied: Arc<Mutex<Applied>>,
}

/// Why the state machine could not open.
#[derive(Debug, thiserror::Error)]
pub enum StateMachineError {
    /// The snapshot file could not be read or written.
    #[error(transparent)]
    Snapshot(#[from] JournalError),
    /// A snapshot data file could not be found, read or removed.
    #[error("{op} {}: {source}; the node cannot serve its snapshot: check the disk", .path.display())]
    Io {
        /// The call, as a verb.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The state failed to report or restore itself.
    #[error("the replicated state failed while opening beside {}: {source}", .dir.display())]
    State {
        /// The directory concerned.
        dir: PathBuf,
        /// The state's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateMachineError {
    let path = path.to_path_buf();
    move |source| StateMachineError::Io { op, path, source }
}

impl<S: Replicated> StateMachine<S> {
    /// Opens the state machine whose snapshot file lives in `dir`, over `state`. A state behind
    /// the last snapshot (it lost writes the snapshot holds) is restored from the snapshot.
    /// Data files of older snapshots, and snapshots a crash interrupted, are removed.
    pub fn open(dir: &Path, state: Arc<S>) -> Result<StateMachine<S>, StateMachineError> {
        let failed = |source: S::Error| StateMachineError::State {
            dir: dir.to_path_buf(),
            source: Box::new(source),
        };
        let snapshot = StoredSnapshot::read(dir)?;
        remove_stale_snapshot_files(dir, snapshot.as_ref().map(|snapshot| snapshot.data))
            .map_err(io_error("remove stale snapshot files in", dir))?;
        let mut applied = Applied {
            next_data: 1,
            ..Applied::default()
        };
        if let Some(snapshot) = snapshot {
            let data = snapshot.data_path(dir);
            if !data.exists() {
                return Err(io_error("open", &data)(std::io::ErrorKind::NotFound.into()));
            }
            let covered = snapshot.meta.last_log_id.map(|id| id.index);
            if state.applied().map_err(failed)? < covered {
                state.install(&data).map_err(failed)?;
            }
            applied.last = snapshot.meta.last_log_id;
            applied.membership = snapshot.meta.last_membership.clone();
            applied.next_data = snapshot.data + 1;
            applied.snapshot = Some(snapshot);
        }
        Ok(StateMachine {
            dir: dir.to_path_buf(),
            state,
            applied: Arc::new(Mutex::new(applied)),
        })
    }
}

/// Bytes a state's snapshot is gathered into before each write into the data file.
const WRITE_BUFFER: usize = 1 << 20;

/// Removes every snapshot data file but number `keep`, and the files of snapshots being built
/// or received.
fn remove_stale_snapshot_files(dir: &Path, keep: Option<u64>) -> std::io::Result<()> {
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let stale = match raft_snapshot_data_sequence(name) {
            Some(number) => Some(number) != keep,
            None => name == RAFT_SNAPSHOT_BUILDING_FILE || name == RAFT_SNAPSHOT_RECEIVING_FILE,
        };
        if stale {
            fs::remove_file(&item.path())?;
        }
    }
    Ok(())
}

/// Makes `from` the snapshot data file number `data` in `dir`, durably; answers its path and
/// length.
fn place_data_file(dir: &Path, from: &Path, data: u64) -> std::io::Result<(PathBuf, u64)> {
    let to = dir.join(crate::names::raft_snapshot_data_name(data));
    fs::rename(from, &to)?;
    fs::sync_dir(dir)?;
    let len = std::fs::metadata(&to)?.len();
    Ok((to, len))
}

/// Opens a snapshot's data file for openraft to send.
fn open_data(dir: &Path, stored: &StoredSnapshot) -> std::io::Result<Snapshot<TypeConfig>> {
    Ok(Snapshot {
        meta: stored.meta.clone(),
        snapshot: Box::new(SnapshotData::open(&stored.data_path(dir))?),
    })
}

/// Builds a snapshot of the state as it is when [`build_snapshot`] runs.
///
/// [`build_snapshot`]: RaftSnapshotBuilder::build_snapshot
pub struct SnapshotBuilder<S: Replicated> {
    /// The log's (or state's) directory.
    dir: PathBuf,
    state: Arc<S>,
    applied: Arc<Mutex<Applied>>,
}

fn state_error<E: std::error::Error + 'static>(error: &E) -> StorageError {
    StorageIOError::write_state_machine(AnyError::new(error)).into()
}

fn snapshot_error<E: std::error::Error + 'static>(error: &E) -> StorageError {
    StorageIOError::write_snapshot(None, AnyError::new(error)).into()
}

impl<S: Replicated> RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder<S> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Held while the state is frozen, so that no apply slips between it and `last`; not
        // while it is written out.
        let (frozen, last, membership) = {
            let applied = self.applied.lock();
            let frozen = self.state.freeze().map_err(|error| state_error(&error))?;
            (frozen, applied.last, applied.membership.clone())
        };
        let building = self.dir.join(RAFT_SNAPSHOT_BUILDING_FILE);
        let data = SnapshotData::create(&building).map_err(|error| snapshot_error(&error))?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, data);
        frozen(&mut out).map_err(|error| state_error(&error))?;
        let written = out
            .into_inner()
            .map_err(|error| snapshot_error(error.error()))?;
        written.sync().map_err(|error| snapshot_error(&error))?;
        let mut applied = self.applied.lock();
        // A snapshot installed from the leader while this one was written is newer: keep it.
        if let Some(current) = &applied.snapshot
            && current.meta.last_log_id > last
        {
            let current = current.clone();
            drop(applied);
            remove_older_data(&self.dir, current.data);
            return open_data(&self.dir, &current).map_err(|error| snapshot_error(&error));
        }
        let data = applied.take_data_number();
        let (_, data_len) =
            place_data_file(&self.dir, &building, data).map_err(|error| snapshot_error(&error))?;
        applied.built += 1;
        let snapshot_id = match last {
            Some(last) => format!("{}-{}-{}", last.leader_id.term, last.index, applied.built),
            None => format!("none-{}", applied.built),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: last,
                last_membership: membership,
                snapshot_id,
            },
            data,
            data_len,
        };
        // The data file is durable before the file naming it is replaced.
        stored
            .write(&self.dir)
            .map_err(|error| snapshot_error(&error))?;
        applied.snapshot = Some(stored.clone());
        drop(applied);
        remove_older_data(&self.dir, data);
        open_data(&self.dir, &stored).map_err(|error| snapshot_error(&error))
    }
}

/// Removes the data files of snapshots older than number `current`: a failure only leaves a
/// file that the next open removes.
fn remove_older_data(dir: &Path, current: u64) {
    if let Err(error) = remove_stale_snapshot_files(dir, Some(current)) {
        tracing::warn!(dir = %dir.display(), %error, "could not remove an old snapshot's files; the next start removes them");
    }
}

impl<S: Replicated> RaftStateMachine<TypeConfig> for StateMachine<S> {
    type SnapshotBuilder = SnapshotBuilder<S>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.applied.lock();
        Ok((applied.last, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = self.applied.lock();
        let held = self.state.applied().map_err(|error| state_error(&error))?;
        let mut commands = Vec::new();
        // Per entry: where its reply comes from, the state's batch or nowhere.
        let mut from_state = Vec::new();
        let mut last = None;
        for entry in entries {
            let index = entry.log_id.index;
            match entry.payload {
                // Applied before a restart: its effect is in the state, its client long answered.
                EntryPayload::Normal(_) if held.is_some_and(|held| index <= held) => {
                    from_state.push(false);
                }
                EntryPayload::Normal(command) => {
                    commands.push((index, command));
                    from_state.push(true);
                }
                EntryPayload::Blank => from_state.push(false),
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    from_state.push(false);
                }
            }
            last = Some(entry.log_id);
        }
        let mut answers = if commands.is_empty() {
            Vec::new()
        } else {
            self.state.apply(&commands).map_err(|error| {
                let failed_at = last.unwrap_or_default();
                StorageError::from(StorageIOError::apply(failed_at, AnyError::new(&error)))
            })?
        }
        .into_iter();
        if last.is_some() {
            applied.last = last;
        }
        Ok(from_state
            .into_iter()
            .map(|from_state| {
                from_state
                    .then(|| answers.next())
                    .flatten()
                    .unwrap_or_else(Reply::empty)
            })
            .collect())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder<S> {
        SnapshotBuilder {
            dir: self.dir.clone(),
            state: Arc::clone(&self.state),
            applied: Arc::clone(&self.applied),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotData>, StorageError> {
        let receiving = self.dir.join(RAFT_SNAPSHOT_RECEIVING_FILE);
        SnapshotData::create(&receiving)
            .map(Box::new)
            .map_err(|error| snapshot_error(&error))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, NodeAddr>,
        snapshot: Box<SnapshotData>,
    ) -> Result<(), StorageError> {
        let failed = |error: &dyn std::error::Error| -> StorageError {
            StorageIOError::write_snapshot(Some(meta.signature()), AnyError::error(error)).into()
        };
        snapshot.sync().map_err(|error| failed(&error))?;
        let mut applied = self.applied.lock();
        let data = applied.take_data_number();
        let (data_path, data_len) =
            place_data_file(&self.dir, snapshot.path(), data).map_err(|error| failed(&error))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
            data_len,
        };
        // The file first: if the state's install fails, reopening restores the state from it.
        stored.write(&self.dir).map_err(|error| failed(&error))?;
        self.state
            .install(&data_path)
            .map_err(|error| state_error(&error))?;
        applied.last = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        applied.snapshot = Some(stored);
        drop(applied);
        remove_older_data(&self.dir, data);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored = self.applied.lock().snapshot.clone();
        stored
            .map(|stored| open_data(&self.dir, &stored))
            .transpose()
            .map_err(|error| snapshot_error(&error))
    }
}
