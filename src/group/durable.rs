//! Consumer-group state on disk: a snapshot plus a journal of the events since.
//!
//! Files in the stream's directory (containers from `journal.rs`; layouts in
//! `storage-format.md`, "Consumer group files"):
//!
//! * `groups.snapshot` (kind `GRPS`): the whole state as events, each a `u32` length and the
//!   event's bytes, back to back; its generation names the journal that follows it;
//! * `groups.<20-digit generation>.journal` (kind `GRPJ`): one event per frame.
//!
//! Every operation's events are written to the journal before its result is returned (a killed
//! process loses nothing); whether they are also flushed before returning is the store's
//! durability policy. Compaction writes a new journal, then a new snapshot naming it, then
//! removes the old journal: a crash at any step leaves a snapshot whose journal exists.

use std::path::{Path, PathBuf};

use super::analysis::{
    group_events, group_journal_generation, read_group_journal, read_group_snapshot,
};
use super::{Applied, ClampedGroup, EntrySource, GroupError, GroupEvent, GroupsState};
use crate::codec::{CodecError, Decoder, Encoder};
use crate::fs::{self, names};
use crate::journal::{
    self, FileKind, Journal, JournalDamage, JournalError, JournalEvents, JournalSync,
};
use crate::undo::{self, Target, Undo, UndoError};

/// Kind tag of group journals.
pub const GROUP_JOURNAL_KIND: FileKind = FileKind(*b"GRPJ");
/// Kind tag of group snapshots.
pub const GROUP_SNAPSHOT_KIND: FileKind = FileKind(*b"GRPS");
/// A journal larger than this is compacted into a new snapshot.
pub const COMPACT_AT_BYTES: u64 = 8 << 20;

pub use crate::fs::names::{GROUP_SNAPSHOT_FILE, group_journal_name};

/// Errors of the group persistence layer.
#[derive(Debug, thiserror::Error)]
pub enum GroupStoreError {
    /// An operation on the groups' state was refused.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// The group journal or snapshot failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Writing down how to undo a transaction's changes failed.
    #[error(transparent)]
    Undo(#[from] UndoError),
    /// A snapshot or journal frame passed its checksum but does not decode.
    #[error(
        "{path}: {detail}: the file holds group state this version cannot read; run the version that wrote it"
    )]
    Undecodable {
        /// The snapshot or journal.
        path: PathBuf,
        /// What does not decode.
        detail: String,
    },
    /// The group snapshot is damaged. Removing it alone would not work (the journals after it
    /// refuse to replay without it), so the message says what would.
    #[error(
        "{path} is damaged ({detail}): the consumer groups' state (positions, pending entries, delivery counts) cannot be rebuilt from the stream; restore it from a backup, or move it and every groups.*.journal file of that directory away to start the stream's groups afresh"
    )]
    DamagedSnapshot {
        /// The snapshot.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// An event of the snapshot or journal contradicts the state the events before it built
    /// (it names a group that does not exist, or creates one that does): the operations never
    /// write such an event, so the file is corrupt though its checksums pass.
    #[error(
        "{path}: event {index} cannot apply ({source}): the file contradicts itself; restore it from a backup"
    )]
    Inconsistent {
        /// The snapshot or journal.
        path: PathBuf,
        /// The event's position among the file's events, from 0.
        index: usize,
        /// Why it cannot apply.
        #[source]
        source: GroupError,
    },
    /// Group journals exist without the snapshot that names their generation.
    #[error(
        "{0} holds group journals but no {GROUP_SNAPSHOT_FILE}: restore the snapshot from a backup, or move the journals away to start the groups afresh"
    )]
    MissingSnapshot(PathBuf),
    /// An earlier journal write failed, so memory is ahead of the disk.
    #[error(
        "consumer-group state of {0} stopped taking changes after a failed journal write: restart to recover from disk"
    )]
    Poisoned(PathBuf),
}

/// What opening the group state found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRecovery {
    /// Events replayed from the journal after the snapshot.
    pub events_replayed: usize,
    /// Damage at the end of the journal: changes after it are lost.
    pub journal_damage: Option<JournalDamage>,
    /// Groups clamped to what the log recovered (pending entries dropped, positions rewound).
    pub clamped: Vec<ClampedGroup>,
    /// What was wrong with the journal's header, rebuilt from its file name.
    pub rebuilt_journal_header: Option<String>,
}

/// The consumer groups of one stream, with their journal.
#[derive(Debug)]
pub struct DurableGroups {
    dir: PathBuf,
    state: GroupsState,
    journal: Journal,
    poisoned: bool,
}

impl DurableGroups {
    /// Loads the snapshot, replays the journal, then clamps the state to the recovered log and
    /// journals what clamping changed.
    pub fn open<S: EntrySource + ?Sized>(
        dir: &Path,
        source: &S,
    ) -> Result<(DurableGroups, GroupRecovery), GroupStoreError> {
        let (mut state, generation) = load_snapshot(dir)?;
        let path = dir.join(group_journal_name(generation));
        let mut recovery = GroupRecovery::default();
        let mut journal = if path.exists() {
            let (journal, replay, rebuilt) =
                Journal::open_repairing(&path, GROUP_JOURNAL_KIND, generation)?;
            recovery.rebuilt_journal_header = rebuilt;
            let events = group_events(replay);
            replay_events(&mut state, &path, &events)?;
            recovery.events_replayed = events.events.len();
            recovery.journal_damage = events.damage;
            journal
        } else {
            Journal::create(&path, GROUP_JOURNAL_KIND, generation)?
        };
        journal.preallocate_ahead();
        remove_other_journals(dir, generation)?;
        let mut groups = DurableGroups {
            dir: dir.to_path_buf(),
            state,
            journal,
            poisoned: false,
        };
        #[cfg(debug_assertions)]
        groups.state.check_invariants();
        let clamped = groups.state.clamp_to_log(source);
        recovery.clamped = groups.record(clamped)?;
        if let Some(damage) = &recovery.journal_damage {
            tracing::error!(%damage, "group journal damaged: changes after the damage are lost");
        }
        for clamp in &recovery.clamped {
            tracing::warn!(
                group = %String::from_utf8_lossy(&clamp.group),
                dropped = clamp.dropped.len(),
                rewound = ?clamp.rewound,
                "consumer group clamped to the recovered log"
            );
        }
        Ok((groups, recovery))
    }

    /// The state, for queries.
    pub fn state(&self) -> &GroupsState {
        &self.state
    }

    /// Runs an operation on the state and journals the events it applied.
    pub fn apply<T>(
        &mut self,
        operation: impl FnOnce(&mut GroupsState) -> Result<Applied<T>, GroupError>,
    ) -> Result<T, GroupStoreError> {
        self.check_healthy()?;
        self.before_change()?;
        let applied = operation(&mut self.state)?;
        let recorded = self.record(applied);
        self.debug_check_invariants();
        recorded
    }

    /// In debug builds, checks the state's invariants after each change while the state is
    /// small enough for a full walk to stay cheap (larger ones are checked at open); release
    /// builds check nothing here.
    fn debug_check_invariants(&self) {
        /// Pending entries (all groups) up to which every change is followed by a full check.
        const CHECK_EVERY_CHANGE_UP_TO: usize = 4096;
        if cfg!(debug_assertions) && self.state.pending_len() <= CHECK_EVERY_CHANGE_UP_TO {
            #[cfg(debug_assertions)]
            self.state.check_invariants();
        }
    }

    /// Inside a store transaction, writes down how to undo the journal's growth before its
    /// first change (see [`undo`]).
    fn before_change(&self) -> Result<(), UndoError> {
        undo::before_change(&self.dir, Target::Groups, || Undo::Groups {
            dir: self.dir.clone(),
            generation: self.journal.generation(),
            len: self.journal.len_bytes(),
        })
    }

    /// Journals already-applied events, all with one write. If it fails, memory is taken back
    /// to what the disk holds, so that the failed operation changed nothing; only if that
    /// fails too do the groups stop taking changes until a restart.
    fn record<T>(&mut self, applied: Applied<T>) -> Result<T, GroupStoreError> {
        if applied.events.is_empty() {
            return Ok(applied.output);
        }
        self.before_change()?;
        let written = self
            .journal
            .append_each(&applied.events, |event, frame| event.encode(frame));
        if let Err(error) = written {
            if let Err(reload) = self.reload() {
                tracing::error!(dir = %self.dir.display(), %reload, "could not reload consumer-group state after a failed journal write");
                self.poisoned = true;
            }
            return Err(error.into());
        }
        Ok(applied.output)
    }

    /// Rebuilds the state from the snapshot and the journal as they are on disk.
    fn reload(&mut self) -> Result<(), GroupStoreError> {
        let (mut state, generation) = load_snapshot(&self.dir)?;
        let path = self.dir.join(group_journal_name(generation));
        let events = read_group_journal(&path)?;
        replay_events(&mut state, &path, &events)?;
        self.state = state;
        Ok(())
    }

    fn check_healthy(&self) -> Result<(), GroupStoreError> {
        if self.poisoned {
            return Err(GroupStoreError::Poisoned(self.dir.clone()));
        }
        Ok(())
    }

    /// A handle that fdatasyncs the current journal.
    pub fn sync_handle(&self) -> JournalSync {
        self.journal.sync_handle()
    }

    /// Whether the journal has grown enough to be worth compacting.
    pub fn wants_compaction(&self) -> bool {
        self.journal.len_bytes() > COMPACT_AT_BYTES
    }

    /// Replaces snapshot and journal with a snapshot of the current state and an empty journal.
    /// The old journal is synced first, so the new snapshot never holds less than the disk had.
    /// A failure before the new snapshot is in place changes nothing; one after it (the
    /// directory's sync) stops the groups taking changes, since the disk may name either
    /// generation after a power loss.
    pub fn compact(&mut self) -> Result<(), GroupStoreError> {
        self.check_healthy()?;
        self.journal.sync()?;
        let generation = self.journal.generation() + 1;
        let new_path = self.dir.join(group_journal_name(generation));
        // Named by no snapshot: a journal left by an attempt that failed halfway holds nothing.
        fs::remove_if_exists(&new_path).map_err(|source| JournalError::Io {
            path: new_path.clone(),
            source,
        })?;
        let mut new_journal = Journal::create(&new_path, GROUP_JOURNAL_KIND, generation)?;
        new_journal.preallocate_ahead();
        let mut snapshot = SnapshotEncoder::with_capacity(self.state.snapshot_len_hint());
        self.state.snapshot_each(|event| snapshot.add(&event));
        let payload = snapshot.finish();
        let placed = journal::place_snapshot(
            &self.dir,
            GROUP_SNAPSHOT_FILE,
            GROUP_SNAPSHOT_KIND,
            generation,
            &payload,
        );
        if let Err(error) = placed {
            drop(new_journal);
            let _ = fs::remove_file(&new_path);
            return Err(error.into());
        }
        let old = std::mem::replace(&mut self.journal, new_journal);
        let old_path = old.path().to_path_buf();
        drop(old);
        if let Err(error) = journal::sync_dir(&self.dir) {
            self.poisoned = true;
            return Err(error.into());
        }
        if let Err(error) = fs::remove_file(&old_path) {
            tracing::warn!(path = %old_path.display(), %error, "could not remove a compacted group journal; it is removed at the next open");
        }
        Ok(())
    }
}

/// The state the snapshot holds, and the generation of the journal that follows it (1 with no
/// snapshot).
fn load_snapshot(dir: &Path) -> Result<(GroupsState, u64), GroupStoreError> {
    let snapshot_path = dir.join(GROUP_SNAPSHOT_FILE);
    let mut state = GroupsState::new();
    let saved = read_group_snapshot(&snapshot_path).map_err(|error| match error {
        JournalError::SnapshotCorrupt { path, detail } => {
            GroupStoreError::DamagedSnapshot { path, detail }
        }
        error => error.into(),
    })?;
    let generation = group_journal_generation(saved.as_ref());
    let Some(snapshot) = saved else {
        refuse_orphan_journals(dir)?;
        return Ok((state, generation));
    };
    let events = snapshot.events.map_err(|e| GroupStoreError::Undecodable {
        path: snapshot_path.clone(),
        detail: e.to_string(),
    })?;
    apply_all(&mut state, &snapshot_path, events.iter())?;
    Ok((state, generation))
}

/// Applies a journal's events; one that does not decode is an error, as replaying around it
/// could apply later changes without it.
fn replay_events(
    state: &mut GroupsState,
    path: &Path,
    events: &JournalEvents<GroupEvent>,
) -> Result<(), GroupStoreError> {
    if let Some(undecodable) = &events.undecodable {
        return Err(GroupStoreError::Undecodable {
            path: path.to_path_buf(),
            detail: undecodable.detail.clone(),
        });
    }
    apply_all(state, path, events.iter())
}

/// Applies replayed events in order; one that contradicts the state before it is an error
/// naming the file and the event's place in it, not an event silently skipped.
fn apply_all<'e>(
    state: &mut GroupsState,
    path: &Path,
    events: impl Iterator<Item = &'e GroupEvent>,
) -> Result<(), GroupStoreError> {
    for (index, event) in events.enumerate() {
        state
            .apply_checked(event)
            .map_err(|source| GroupStoreError::Inconsistent {
                path: path.to_path_buf(),
                index,
                source,
            })?;
    }
    Ok(())
}

/// Cuts the group journal of `generation` in `dir` back to `len` bytes: a store transaction's
/// changes, undone after a crash (see [`undo`]).
pub(crate) fn roll_back(dir: &Path, generation: u64, len: u64) -> Result<(), GroupStoreError> {
    journal::cut(&dir.join(group_journal_name(generation)), len)?;
    Ok(())
}

/// The snapshot payload: every event as a `u32` length and its bytes.
pub fn encode_snapshot(events: &[GroupEvent]) -> Vec<u8> {
    let mut snapshot = SnapshotEncoder::default();
    for event in events {
        snapshot.add(event);
    }
    snapshot.finish()
}

/// Builds a snapshot payload one event at a time.
#[derive(Default)]
struct SnapshotEncoder {
    out: Encoder,
    /// One event's encoding, reused.
    event: Vec<u8>,
}

impl SnapshotEncoder {
    /// An encoder with room for `bytes` bytes: a large snapshot is then one allocation, which
    /// the allocator returns to the system once freed, rather than a trail of outgrown ones it
    /// may keep.
    fn with_capacity(bytes: usize) -> Self {
        SnapshotEncoder {
            out: Encoder::with_capacity(bytes),
            event: Vec::new(),
        }
    }

    fn add(&mut self, event: &GroupEvent) {
        self.event.clear();
        event.encode(&mut self.event);
        self.out.bytes(&self.event);
    }

    fn finish(self) -> Vec<u8> {
        self.out.finish()
    }
}

/// Parses a snapshot payload.
pub fn decode_snapshot(payload: &[u8]) -> Result<Vec<GroupEvent>, CodecError> {
    let mut input = Decoder::new(payload, "group snapshot");
    let mut events = Vec::new();
    while !input.is_empty() {
        let bytes = input.bytes()?;
        events.push(GroupEvent::decode(bytes).map_err(|_| CodecError {
            what: "group snapshot",
            detail: "holds an undecodable event",
        })?);
    }
    Ok(events)
}

/// Without a snapshot only a first-generation journal can exist: a later one means the snapshot
/// that named it was lost, and replaying the journal alone would rebuild a wrong state.
/// With no snapshot, the groups start from `groups.1.journal`. Another journal is fine only as
/// the empty one a first compaction creates before its snapshot is in place (a crash there
/// leaves both); one holding frames means the snapshot that named it is missing.
fn refuse_orphan_journals(dir: &Path) -> Result<(), GroupStoreError> {
    let first = group_journal_name(1);
    let has_first = dir.join(&first).exists();
    let entries = std::fs::read_dir(dir).map_err(|source| JournalError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !names::is_group_journal(name) || name == first {
            continue;
        }
        let empty = entry
            .metadata()
            .is_ok_and(|meta| meta.len() <= journal::HEADER_LEN as u64);
        if !(has_first && empty) {
            return Err(GroupStoreError::MissingSnapshot(dir.to_path_buf()));
        }
    }
    Ok(())
}

fn remove_other_journals(dir: &Path, keep: u64) -> Result<(), GroupStoreError> {
    let keep_name = group_journal_name(keep);
    let entries = std::fs::read_dir(dir).map_err(|source| JournalError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if names::is_group_journal_or_leftover(name) && name != keep_name {
            let path = entry.path();
            fs::remove_file(&path).map_err(|source| JournalError::Io { path, source })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::fault::{self, Fault};
    use crate::group::ReadNew;
    use crate::group::test_log::TestLog;
    use crate::id::StreamId;

    fn log_with(entries: u64) -> TestLog {
        let mut log = TestLog::new();
        log.append_range(1..=entries);
        log
    }

    fn deliver(groups: &mut DurableGroups, log: &TestLog, count: usize, now_ms: u64) {
        groups
            .apply(|state| state.read_new(log, b"g", b"c", ReadNew::count(count), now_ms))
            .unwrap();
    }

    const FAULTS: [Fault; 4] = [Fault::NoSpace, Fault::Io, Fault::ShortWrite, Fault::Crash];

    #[test]
    fn a_journaled_event_for_a_missing_group_fails_the_open() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(1);
        drop(DurableGroups::open(dir.path(), &log).unwrap());
        let path = dir.path().join(group_journal_name(1));
        let (mut journal, _) = Journal::open(&path, GROUP_JOURNAL_KIND).unwrap();
        let stray = GroupEvent::Acked {
            group: b"nowhere".to_vec(),
            ids: vec![StreamId::new(1, 0)],
        };
        let mut frame = Vec::new();
        stray.encode(&mut frame);
        journal.append(&frame).unwrap();
        journal.sync().unwrap();
        drop(journal);
        let error = DurableGroups::open(dir.path(), &log).unwrap_err();
        assert!(
            matches!(
                error,
                GroupStoreError::Inconsistent {
                    index: 0,
                    source: GroupError::NoGroup { .. },
                    ..
                }
            ),
            "{error}"
        );
    }

    /// Groups with a delivery and an ack journaled and synced.
    fn prepared(dir: &Path, log: &TestLog) -> DurableGroups {
        let (mut groups, _) = DurableGroups::open(dir, log).unwrap();
        groups
            .apply(|state| state.create_group(b"g", StreamId::MIN, None))
            .unwrap();
        deliver(&mut groups, log, 10, 1_000);
        groups
            .apply(|state| state.ack(b"g", &[StreamId::new(2, 0)]))
            .unwrap();
        groups.sync_handle().sync().unwrap();
        groups
    }

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn journals_preallocate_before_and_after_a_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(50);
        let mut groups = prepared(dir.path(), &log);
        let first = dir.path().join(group_journal_name(1));
        assert!(file_len(&first) > groups.journal.len_bytes(), "zeros ahead");
        groups.compact().unwrap();
        assert!(!first.exists());
        let second = dir.path().join(group_journal_name(2));
        assert_eq!(file_len(&second), journal::HEADER_LEN as u64);
        deliver(&mut groups, &log, 5, 2_000);
        groups.sync_handle().sync().unwrap();
        let chunk = file_len(&second);
        assert!(
            chunk > groups.journal.len_bytes(),
            "the new journal grows ahead too"
        );
        drop(groups);

        let (mut reopened, recovery) = DurableGroups::open(dir.path(), &log).unwrap();
        assert_eq!(recovery.journal_damage, None, "the zeros are the end");
        assert_eq!(recovery.events_replayed, 1);
        deliver(&mut reopened, &log, 5, 3_000);
        reopened.sync_handle().sync().unwrap();
        assert_eq!(
            file_len(&second),
            chunk,
            "a reopened journal writes into its chunk"
        );
        let expected = reopened.state().clone();
        drop(reopened);
        let (again, recovery) = DurableGroups::open(dir.path(), &log).unwrap();
        assert_eq!(again.state(), &expected);
        assert_eq!(recovery.events_replayed, 2);
    }

    #[test]
    fn a_compaction_fails_cleanly_or_completes_at_each_step() {
        let log = log_with(50);
        let calls = {
            let dir = tempfile::tempdir().unwrap();
            let mut groups = prepared(dir.path(), &log);
            let counting = fault::count(dir.path());
            groups.compact().unwrap();
            counting.calls()
        };
        for at in 0..calls {
            for fault in FAULTS {
                let dir = tempfile::tempdir().unwrap();
                let mut groups = prepared(dir.path(), &log);
                let before = groups.state().clone();
                let plan = fault::inject(dir.path(), at, fault);
                let compacted = groups.compact();
                let crashed = fault == Fault::Crash;
                drop(plan);
                let mut expected = before.clone();
                if !crashed {
                    assert_eq!(groups.state(), &before, "{fault:?} at {at}");
                    // Unless it had to stop taking changes, the groups go on, durably.
                    let delivered = groups
                        .apply(|state| state.read_new(&log, b"g", b"c", ReadNew::count(1), 5_000));
                    if delivered.is_ok() && groups.sync_handle().sync().is_ok() {
                        expected = groups.state().clone();
                    } else {
                        assert!(
                            compacted.is_err(),
                            "{fault:?} at {at}: a compaction that succeeded left the groups unusable"
                        );
                    }
                }
                drop(groups);
                let (reopened, _) = DurableGroups::open(dir.path(), &log)
                    .unwrap_or_else(|error| panic!("{fault:?} at {at}: reopen failed: {error}"));
                assert_eq!(reopened.state(), &expected, "{fault:?} at {at}");
            }
        }
    }

    #[test]
    fn a_failed_journal_write_changes_nothing_and_the_next_change_works() {
        let log = log_with(50);
        for fault in [Fault::NoSpace, Fault::Io, Fault::ShortWrite] {
            let dir = tempfile::tempdir().unwrap();
            let mut groups = prepared(dir.path(), &log);
            let before = groups.state().clone();
            let plan = fault::inject(dir.path(), 0, fault);
            assert!(
                groups
                    .apply(|state| state.ack(b"g", &[StreamId::new(3, 0)]))
                    .is_err()
            );
            drop(plan);
            assert_eq!(
                groups.state(),
                &before,
                "{fault:?}: the failed ack changed memory"
            );
            let acked = groups
                .apply(|state| state.ack(b"g", &[StreamId::new(3, 0)]))
                .unwrap();
            assert_eq!(acked, 1, "{fault:?}");
            let after = groups.state().clone();
            groups.sync_handle().sync().unwrap();
            drop(groups);
            let (reopened, _) = DurableGroups::open(dir.path(), &log).unwrap();
            assert_eq!(reopened.state(), &after, "{fault:?}");
        }
    }

    #[test]
    fn reopening_replays_the_journal_and_compaction_keeps_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(50);
        let (mut groups, recovery) = DurableGroups::open(dir.path(), &log).unwrap();
        assert_eq!(recovery, GroupRecovery::default());
        groups
            .apply(|state| state.create_group(b"g", StreamId::MIN, None))
            .unwrap();
        deliver(&mut groups, &log, 20, 1_000);
        groups
            .apply(|state| state.ack(b"g", &[StreamId::new(3, 0), StreamId::new(4, 0)]))
            .unwrap();
        let before = groups.state().clone();
        drop(groups);

        let (mut groups, recovery) = DurableGroups::open(dir.path(), &log).unwrap();
        assert_eq!(groups.state(), &before);
        assert!(recovery.events_replayed >= 3);
        groups.compact().unwrap();
        deliver(&mut groups, &log, 5, 2_000);
        let after = groups.state().clone();
        drop(groups);

        let (groups, recovery) = DurableGroups::open(dir.path(), &log).unwrap();
        assert_eq!(groups.state(), &after);
        assert_eq!(
            recovery.events_replayed, 1,
            "only the read after compaction is replayed"
        );
        let journals = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".journal")
            })
            .count();
        assert_eq!(journals, 1, "the compacted journal is gone");
    }

    #[test]
    fn dropped_references_replay_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(10);
        let (mut groups, _) = DurableGroups::open(dir.path(), &log).unwrap();
        for group in [&b"g"[..], b"h"] {
            groups
                .apply(|state| state.create_group(group, StreamId::MIN, None))
                .unwrap();
            groups
                .apply(|state| state.read_new(&log, group, b"c", ReadNew::count(4), 1_000))
                .unwrap();
        }
        let gone = [StreamId::new(2, 0), StreamId::new(3, 0)];
        let dropped = groups
            .apply(|state| Ok(state.drop_references(&gone)))
            .unwrap();
        assert_eq!(dropped, 4);
        let before = groups.state().clone();
        // No clean close: the journal alone must bring the drops back.
        drop(groups);

        let (groups, recovery) = DurableGroups::open(dir.path(), &log).unwrap();
        assert_eq!(groups.state(), &before);
        assert!(recovery.events_replayed >= 6);
        for group in [&b"g"[..], b"h"] {
            let summary = groups.state().pending_summary(group).unwrap();
            assert_eq!(summary.count, 2);
            assert!(!gone.iter().any(|&id| groups.state().references(id)));
        }
    }

    #[test]
    fn pending_entries_beyond_a_lost_tail_are_dropped_and_deleted_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_with(10);
        let (mut groups, _) = DurableGroups::open(dir.path(), &log).unwrap();
        groups
            .apply(|state| state.create_group(b"g", StreamId::MIN, None))
            .unwrap();
        deliver(&mut groups, &log, 10, 1_000);
        drop(groups);

        log.delete(StreamId::new(2, 0));
        let shorter = log_with(6);
        let mut shorter_with_delete = shorter.clone();
        shorter_with_delete.delete(StreamId::new(2, 0));
        let (groups, recovery) = DurableGroups::open(dir.path(), &shorter_with_delete).unwrap();
        let summary = groups.state().pending_summary(b"g").unwrap();
        assert_eq!(
            summary.count, 6,
            "entries 7..=10 were lost, entry 2 was deleted"
        );
        assert_eq!(recovery.clamped.len(), 1);
        assert_eq!(recovery.clamped[0].dropped.len(), 4);
        assert_eq!(
            recovery.clamped[0].rewound,
            Some((StreamId::new(10, 0), StreamId::new(6, 0)))
        );
    }

    /// A group created and compacted into a snapshot at generation 2.
    fn compacted(dir: &Path, log: &TestLog) {
        let (mut groups, _) = DurableGroups::open(dir, log).unwrap();
        groups
            .apply(|state| state.create_group(b"g", StreamId::MIN, None))
            .unwrap();
        groups.compact().unwrap();
    }

    #[test]
    fn journals_without_their_snapshot_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(5);
        compacted(dir.path(), &log);
        std::fs::remove_file(dir.path().join(GROUP_SNAPSHOT_FILE)).unwrap();
        let error = DurableGroups::open(dir.path(), &log).unwrap_err();
        assert!(
            matches!(error, GroupStoreError::MissingSnapshot(_)),
            "{error}"
        );
    }

    #[test]
    fn a_damaged_snapshot_is_refused_with_what_would_work() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(5);
        compacted(dir.path(), &log);
        let path = dir.path().join(GROUP_SNAPSHOT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let error = DurableGroups::open(dir.path(), &log).unwrap_err();
        assert!(
            matches!(error, GroupStoreError::DamagedSnapshot { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("groups.*.journal"), "{error}");
    }

    #[test]
    fn snapshot_payload_round_trip_and_garbage() {
        let events = vec![GroupEvent::GroupDestroyed {
            group: b"x".to_vec(),
        }];
        assert_eq!(decode_snapshot(&encode_snapshot(&events)).unwrap(), events);
        assert!(decode_snapshot(&[1, 0, 0, 0, 0]).is_err());
        assert!(decode_snapshot(&[9, 9]).is_err());
    }
}
