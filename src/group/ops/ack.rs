//! Acknowledgements, and the dead letters a read hands over.

use super::*;

impl GroupsState {
    /// `XACK`: how many of `ids` were pending; they leave the PEL.
    pub fn ack(&mut self, group: &[u8], ids: &[StreamId]) -> Result<Applied<usize>, GroupError> {
        let acked = self.group(group)?.pending_among(ids, None);
        let mut recorder = Recorder::new(self);
        recorder.emit_batches(&acked, |ids| GroupEvent::Acked {
            group: group.to_vec(),
            ids,
        });
        Ok(recorder.finish(acked.len()))
    }

    /// Step 3 of the dead-letter protocol (see the [module documentation](crate::group)): removes
    /// from the PEL the entries that were appended to the dead-letter stream. Returns how many
    /// were still pending.
    pub fn commit_dead_letters(
        &mut self,
        group: &[u8],
        ids: &[StreamId],
    ) -> Result<Applied<usize>, GroupError> {
        let committed = self.group(group)?.pending_among(ids, None);
        let mut recorder = Recorder::new(self);
        recorder.emit_batches(&committed, |ids| GroupEvent::DeadLettered {
            group: group.to_vec(),
            ids,
        });
        Ok(recorder.finish(committed.len()))
    }
}
