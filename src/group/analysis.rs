//! The read-only analysis of a stream's consumer-group files: what the snapshot holds, which
//! journal generation it names, and the events that journal holds.
//!
//! Nothing here writes or decides what to do:
//! [`DurableGroups::open`](super::durable::DurableGroups::open) refuses or repairs from these
//! findings (recovery.md, section 2) and `queue-dump` reports them (section 1.14), so the two
//! can never disagree on what group state a directory holds.

use std::path::Path;

use super::GroupEvent;
use super::durable::{GROUP_JOURNAL_KIND, GROUP_SNAPSHOT_KIND, decode_snapshot};
use crate::codec::CodecError;
use crate::journal::{self, Journal, JournalError, JournalEvents, Replay};

/// What a group snapshot holds.
#[derive(Debug)]
pub(crate) struct SnapshotContent {
    /// The generation of the journal that follows the snapshot.
    pub(crate) generation: u64,
    /// The snapshot's events, or why its payload does not decode though its container is sound.
    pub(crate) events: Result<Vec<GroupEvent>, CodecError>,
}

/// The group snapshot at `path`, or `None` when there is none.
pub(crate) fn read_group_snapshot(path: &Path) -> Result<Option<SnapshotContent>, JournalError> {
    let snapshot = journal::read_snapshot(path, GROUP_SNAPSHOT_KIND)?;
    Ok(snapshot.map(|snapshot| SnapshotContent {
        generation: snapshot.generation,
        events: decode_snapshot(&snapshot.payload),
    }))
}

/// The generation of the group journal that follows `snapshot` (the first one without a
/// snapshot).
pub(crate) fn group_journal_generation(snapshot: Option<&SnapshotContent>) -> u64 {
    snapshot.map_or(1, |snapshot| snapshot.generation)
}

/// The group events of a journal as read from disk.
pub(crate) fn group_events(replay: Replay) -> JournalEvents<GroupEvent> {
    JournalEvents::decode(replay, GroupEvent::decode)
}

/// Reads the group journal at `path` without writing anything and decodes its events.
pub(crate) fn read_group_journal(path: &Path) -> Result<JournalEvents<GroupEvent>, JournalError> {
    Journal::read(path, GROUP_JOURNAL_KIND).map(group_events)
}
