//! Faulting a segment's pages in ahead of its writer, on a background thread.
//!
//! The first write to each page of a segment stops in a page fault in which the kernel
//! allocates a page-cache page and zeroes it: in a profile of one writer appending 100-byte
//! entries, that was half of the time of an append. A writer that fills a [`CHUNK`] of its
//! segment within [`QUICK`] asks for the next [`AHEAD`] bytes to be faulted in
//! ([`Segment::prefault`]), and again every chunk while it keeps that pace; one thread per
//! process does it for every log. Slower writers pay for their own faults, which cost them
//! little: this way the pages faulted in and not yet written (dirty zeros, written back to disk
//! if they wait long) are at most [`AHEAD`] per fast writer. Requests that find the thread's
//! queue full are dropped: the writer then faults those pages in itself, as without this.

use std::ops::Range;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::segment::Segment;

/// How far ahead of a fast writer pages are kept faulted in.
const AHEAD: usize = 8 << 20;
/// The writer looks at its pace, and asks for more, after each this many bytes.
const CHUNK: usize = 1 << 20;
/// A writer that fills a chunk within this time is fast enough to be prefaulted for (1 MiB/s:
/// below that, its own faults cost it under a millisecond a second).
const QUICK: Duration = Duration::from_secs(1);
/// Requests waiting for the thread at most (8 MiB each at the very most).
const QUEUE: usize = 64;

/// A range of a segment to fault in.
struct Request {
    segment: Arc<Segment>,
    range: Range<usize>,
}

/// What the writer of one segment has asked for so far.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Prefaulted {
    /// Bytes `[0, end)` of the active segment were asked for.
    end: usize,
    /// The write position from which to look again: a chunk past the last look, never once
    /// the segment's end was asked for.
    next_at: usize,
    /// When the writer was last looked at.
    looked_at: Option<Instant>,
}

impl Prefaulted {
    /// After the writer reached `write_pos` of `segment`: see the module documentation.
    pub(super) fn advance(&mut self, segment: &Arc<Segment>, write_pos: usize) {
        if write_pos >= self.next_at {
            self.look(segment, write_pos);
        }
    }

    /// The state for the segment that follows this one: nothing asked for in it yet, but the
    /// writer's pace is known, so that a fast writer is kept ahead from its first append there.
    pub(super) fn next_segment(&self) -> Prefaulted {
        Prefaulted {
            looked_at: self.looked_at,
            ..Prefaulted::default()
        }
    }

    #[cold]
    fn look(&mut self, segment: &Arc<Segment>, write_pos: usize) {
        let Some(range) = self.plan(segment.capacity(), write_pos, Instant::now()) else {
            return;
        };
        if let Some(worker) = worker() {
            // A full queue drops the request: see the module documentation.
            let _ = worker.try_send(Request {
                segment: Arc::clone(segment),
                range,
            });
        }
    }

    /// The range to ask for now that the writer is at `write_pos` of a segment of `capacity`
    /// bytes, at `now`; `None` for a slow writer or when all is asked for already.
    fn plan(&mut self, capacity: usize, write_pos: usize, now: Instant) -> Option<Range<usize>> {
        let quick = self
            .looked_at
            .is_some_and(|then| now.saturating_duration_since(then) <= QUICK);
        self.looked_at = Some(now);
        self.next_at = write_pos.saturating_add(CHUNK);
        let start = self.end.max(write_pos);
        let end = write_pos.saturating_add(AHEAD).min(capacity);
        if !quick || start >= end {
            return None;
        }
        self.end = end;
        if end == capacity {
            self.next_at = usize::MAX;
        }
        Some(start..end)
    }
}

/// The process's prefault thread, started on first use; `None` if it could not be started
/// (then nothing is faulted in ahead, which costs only speed).
fn worker() -> Option<&'static SyncSender<Request>> {
    static WORKER: OnceLock<Option<SyncSender<Request>>> = OnceLock::new();
    WORKER
        .get_or_init(|| {
            let (sender, receiver) = sync_channel::<Request>(QUEUE);
            let spawned = std::thread::Builder::new()
                .name("weir-prefault".into())
                .spawn(move || {
                    for request in receiver {
                        request
                            .segment
                            .prefault(request.range.start, request.range.end);
                    }
                });
            match spawned {
                Ok(_) => Some(sender),
                Err(error) => {
                    tracing::warn!(%error, "could not start the prefault thread; appends fault pages in themselves");
                    None
                }
            }
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEGMENT: usize = 64 << 20;

    #[test]
    fn a_fast_writer_is_kept_ahead_of_a_chunk_at_a_time() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut prefaulted = Prefaulted::default();
        assert_eq!(
            prefaulted.plan(SEGMENT, 64, at(0)),
            None,
            "no pace known yet"
        );
        assert_eq!(prefaulted.next_at, 64 + CHUNK);
        let pos = 64 + CHUNK;
        assert_eq!(
            prefaulted.plan(SEGMENT, pos, at(10)),
            Some(pos..pos + AHEAD)
        );
        let later = pos + CHUNK;
        assert_eq!(
            prefaulted.plan(SEGMENT, later, at(20)),
            Some(pos + AHEAD..later + AHEAD),
            "only what was not asked for"
        );
        let near_end = SEGMENT - 4096;
        assert_eq!(
            prefaulted.plan(SEGMENT, near_end, at(30)),
            Some(near_end..SEGMENT),
            "from where the writer is, never past the end"
        );
        assert_eq!(prefaulted.next_at, usize::MAX, "nothing more to look at");
    }

    #[test]
    fn a_fast_writer_is_kept_ahead_from_the_start_of_its_next_segment() {
        let start = Instant::now();
        let mut prefaulted = Prefaulted::default();
        assert_eq!(prefaulted.plan(SEGMENT, SEGMENT - CHUNK, start), None);
        let mut next = prefaulted.next_segment();
        let soon = start + Duration::from_millis(50);
        assert_eq!(next.plan(SEGMENT, 64 + 200, soon), Some(264..264 + AHEAD));
        let mut slow = prefaulted.next_segment();
        assert_eq!(slow.plan(SEGMENT, 264, start + 2 * QUICK), None);
    }

    #[test]
    fn a_slow_writer_faults_its_own_pages() {
        let start = Instant::now();
        let mut prefaulted = Prefaulted::default();
        assert_eq!(prefaulted.plan(SEGMENT, 64, start), None);
        let slow = start + QUICK + Duration::from_millis(1);
        assert_eq!(prefaulted.plan(SEGMENT, 64 + CHUNK, slow), None);
        assert_eq!(prefaulted.end, 0);
        assert_eq!(prefaulted.next_at, 64 + 2 * CHUNK, "looked at again later");
        let quick_again = slow + Duration::from_millis(100);
        let pos = 64 + 2 * CHUNK;
        assert_eq!(
            prefaulted.plan(SEGMENT, pos, quick_again),
            Some(pos..pos + AHEAD)
        );
    }

    #[test]
    fn the_tail_of_a_small_segment_is_asked_for_in_one_piece() {
        let start = Instant::now();
        let small = 2 << 20;
        let mut prefaulted = Prefaulted::default();
        assert_eq!(prefaulted.plan(small, 64, start), None);
        assert_eq!(
            prefaulted.plan(small, 64 + CHUNK, start + Duration::from_millis(5)),
            Some(64 + CHUNK..small)
        );
    }
}
