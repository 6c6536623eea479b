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

mod snapshot_file;
#[cfg(test)]
pub(crate) mod test_counter;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageIOError,
};
use parking_lot::Mutex;

use crate::journal::JournalError;

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

    /// The whole state, encoded, with its applied index inside.
    fn snapshot(&self) -> Result<Vec<u8>, Self::Error>;

    /// Replaces the whole state with one that [`snapshot`](Self::snapshot) encoded (on this node
    /// or another), its applied index included.
    fn install(&self, state: &[u8]) -> Result<(), Self::Error>;
}

/// What Raft knows of the state machine besides the state.
#[derive(Debug, Default)]
struct Applied {
    last: Option<LogId>,
    membership: StoredMembership,
    snapshot: Option<StoredSnapshot>,
    /// Snapshots built by this process, for their ids.
    built: u64,
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

impl<S: Replicated> StateMachine<S> {
    /// Opens the state machine whose snapshot file lives in `dir`, over `state`. A state behind
    /// the last snapshot (it lost writes the snapshot holds) is restored from the snapshot.
    pub fn open(dir: &Path, state: Arc<S>) -> Result<StateMachine<S>, StateMachineError> {
        let failed = |source: S::Error| StateMachineError::State {
            dir: dir.to_path_buf(),
            source: Box::new(source),
        };
        let snapshot = StoredSnapshot::read(dir)?;
        let mut applied = Applied::default();
        if let Some(snapshot) = snapshot {
            let covered = snapshot.meta.last_log_id.map(|id| id.index);
            if state.applied().map_err(failed)? < covered {
                state.install(&snapshot.state).map_err(failed)?;
            }
            applied.last = snapshot.meta.last_log_id;
            applied.membership = snapshot.meta.last_membership.clone();
            applied.snapshot = Some(snapshot);
        }
        Ok(StateMachine {
            dir: dir.to_path_buf(),
            state,
            applied: Arc::new(Mutex::new(applied)),
        })
    }
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

fn as_snapshot(stored: &StoredSnapshot) -> Snapshot<TypeConfig> {
    Snapshot {
        meta: stored.meta.clone(),
        snapshot: Box::new(Cursor::new(stored.state.clone())),
    }
}

impl<S: Replicated> RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder<S> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Held while the state is read, so that no apply slips between it and `last`.
        let mut applied = self.applied.lock();
        let state = self.state.snapshot().map_err(|error| state_error(&error))?;
        applied.built += 1;
        let snapshot_id = match applied.last {
            Some(last) => format!("{}-{}-{}", last.leader_id.term, last.index, applied.built),
            None => format!("none-{}", applied.built),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: applied.last,
                last_membership: applied.membership.clone(),
                snapshot_id,
            },
            state,
        };
        stored
            .write(&self.dir)
            .map_err(|error| snapshot_error(&error))?;
        let snapshot = as_snapshot(&stored);
        applied.snapshot = Some(stored);
        Ok(snapshot)
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, NodeAddr>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let stored = StoredSnapshot {
            meta: meta.clone(),
            state: snapshot.into_inner(),
        };
        let mut applied = self.applied.lock();
        // The file first: if the state's install fails, reopening restores the state from it.
        stored
            .write(&self.dir)
            .map_err(|error| snapshot_error(&error))?;
        self.state
            .install(&stored.state)
            .map_err(|error| state_error(&error))?;
        applied.last = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        applied.snapshot = Some(stored);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.applied.lock().snapshot.as_ref().map(as_snapshot))
    }
}
