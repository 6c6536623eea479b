//! The read-only analysis of a log's metadata files: the checkpoint, the meta journal it names
//! and the events that journal holds.
//!
//! Nothing here writes or decides what to do: [`Log::open`](super::Log::open) refuses or
//! repairs from these findings (recovery.md, section 1) and `queue-dump` reports them
//! (section 1.14), so the two can never disagree on what metadata a directory holds.

use std::path::Path;

use super::{CHECKPOINT_KIND, Checkpoint, MetaEvent, MetaState};
use crate::codec::CodecError;
use crate::journal::{self, JournalError, JournalEvents, Replay};

/// The checkpoint at `path`: `None` when there is none, and the decoding error when its
/// container is sound but its payload does not decode.
pub(crate) fn read_checkpoint(
    path: &Path,
) -> Result<Option<Result<Checkpoint, CodecError>>, JournalError> {
    let snapshot = journal::read_snapshot(path, CHECKPOINT_KIND)?;
    Ok(snapshot.map(|snapshot| Checkpoint::decode(&snapshot.payload)))
}

/// The generation of the meta journal that holds the changes made after `checkpoint` (the
/// first one when there is no checkpoint).
pub(crate) fn meta_journal_generation(checkpoint: &Checkpoint) -> u64 {
    checkpoint.journal_generation.max(1)
}

/// The meta events of a journal as read from disk.
pub(crate) fn meta_events(replay: Replay) -> JournalEvents<MetaEvent> {
    JournalEvents::decode(replay, MetaEvent::decode)
}

/// The metadata that `saved` (a checkpoint's) becomes once `events` are applied to it.
pub(crate) fn replay_meta(saved: &MetaState, events: &JournalEvents<MetaEvent>) -> MetaState {
    let mut meta = saved.clone();
    events.iter().for_each(|event| meta.apply(event));
    meta
}
