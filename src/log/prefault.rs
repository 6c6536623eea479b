//! Faulting a segment's pages in ahead of its writer, on a background thread.
//!
//! The first write to each page of a segment stops in a page fault in which the kernel
//! allocates a page-cache page and zeroes it: in a profile of one writer appending 100-byte
//! entries, that was half of the time of an append. Once a log's writer is well into a segment,
//! it asks for the next [`AHEAD`] bytes to be faulted in ([`Segment::prefault`]) a
//! [`CHUNK`] at a time, and one thread per process does it for every log. Requests that find
//! the thread's queue full are dropped: the writer then faults those pages in itself, as it
//! would without this.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, OnceLock};

use crate::segment::{self, Segment};

/// How far ahead of the writer pages are kept faulted in.
const AHEAD: usize = 8 << 20;
/// The writer asks for more after this much more writing.
const CHUNK: usize = 1 << 20;
/// Bytes of a segment written before its writer asks for pages ahead: a stream that takes a
/// few entries does not have its segment faulted in (and written back as zeros) for nothing.
const AFTER: usize = 64 << 10;
/// Requests waiting for the thread at most (8 MiB each at the very most).
const QUEUE: usize = 64;

/// A range of a segment to fault in.
struct Request {
    segment: Arc<Segment>,
    start: usize,
    end: usize,
}

/// What the writer of one segment has asked for so far.
#[derive(Debug, Clone, Copy)]
pub(super) struct Prefaulted {
    /// Bytes `[0, end)` of the active segment were requested.
    end: usize,
    /// The write position from which to ask for more: a chunk past the last request, never
    /// once the segment's end was asked for.
    next_at: usize,
}

impl Default for Prefaulted {
    fn default() -> Self {
        Prefaulted {
            end: 0,
            next_at: segment::HEADER_LEN + AFTER,
        }
    }
}

impl Prefaulted {
    /// After the writer reached `write_pos` of `segment`: every [`CHUNK`] of writing, asks for
    /// the pages up to [`AHEAD`] beyond it that were not asked for yet.
    pub(super) fn advance(&mut self, segment: &Arc<Segment>, write_pos: usize) {
        if write_pos >= self.next_at {
            self.request(segment, write_pos);
        }
    }

    #[cold]
    fn request(&mut self, segment: &Arc<Segment>, write_pos: usize) {
        let capacity = segment.capacity();
        let start = self.end.max(write_pos);
        let end = write_pos.saturating_add(AHEAD).min(capacity);
        self.next_at = if end >= capacity {
            usize::MAX
        } else {
            write_pos + CHUNK
        };
        if start >= end {
            return;
        }
        self.end = end;
        if let Some(worker) = worker() {
            // A full queue drops the request: see the module documentation.
            let _ = worker.try_send(Request {
                segment: Arc::clone(segment),
                start,
                end,
            });
        }
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
                        request.segment.prefault(request.start, request.end);
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
    use crate::segment::SegmentHeader;

    fn segment(dir: &std::path::Path, file_len: u64) -> Arc<Segment> {
        let header = SegmentHeader {
            base_offset: 0,
            file_len,
            created_ms: 0,
        };
        Arc::new(Segment::create(&dir.join("seg"), header).unwrap().0)
    }

    #[test]
    fn asks_only_once_the_writer_is_well_into_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let segment = segment(dir.path(), 64 << 20);
        let mut prefaulted = Prefaulted::default();
        prefaulted.advance(&segment, segment::HEADER_LEN + 100);
        assert_eq!(prefaulted.end, 0, "a few entries ask for nothing");
        prefaulted.advance(&segment, 1 << 20);
        assert_eq!(prefaulted.end, (1 << 20) + AHEAD);
        prefaulted.advance(&segment, (1 << 20) + 4096);
        assert_eq!(prefaulted.end, (1 << 20) + AHEAD, "less than a chunk more");
        prefaulted.advance(&segment, (2 << 20) + 8);
        assert_eq!(prefaulted.end, (2 << 20) + 8 + AHEAD);
        prefaulted.advance(&segment, (64 << 20) - 4096);
        assert_eq!(prefaulted.end, 64 << 20, "never past the end");
        let before = prefaulted.end;
        prefaulted.advance(&segment, 64 << 20);
        assert_eq!(prefaulted.end, before);
    }

    #[test]
    fn the_tail_of_a_small_segment_is_asked_for_in_one_piece() {
        let dir = tempfile::tempdir().unwrap();
        let segment = segment(dir.path(), 256 << 10);
        let mut prefaulted = Prefaulted::default();
        prefaulted.advance(&segment, 128 << 10);
        assert_eq!(prefaulted.end, 256 << 10);
    }
}
