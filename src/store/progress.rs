//! Reporting how far opening a data directory has got: a store with many streams, or one that
//! crashed and must scan its segments, takes a while to open, and an operator wants to see it
//! move rather than wait for one line at the end.

use std::sync::Arc;

use crate::clock::SharedClock;

/// How often, in milliseconds of the store's clock, progress is reported while a store opens.
pub const RECOVERY_PROGRESS_INTERVAL_MS: u64 = 5_000;

/// How far opening a store has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryProgress {
    /// Streams recovered so far.
    pub streams_done: usize,
    /// Streams in the data directory.
    pub streams_total: usize,
    /// Bytes of segments scanned so far (streams closed cleanly are not scanned).
    pub bytes_scanned: u64,
    /// Milliseconds since opening began.
    pub elapsed_ms: u64,
}

/// Receives a [`RecoveryProgress`] at most once every [`RECOVERY_PROGRESS_INTERVAL_MS`] while
/// a store opens; the first comes once that much time has passed, so a quick open reports
/// nothing. The default logs it (target `weir::store::progress`, level info).
#[derive(Clone)]
pub struct ProgressHook(Arc<dyn Fn(&RecoveryProgress) + Send + Sync>);

impl ProgressHook {
    /// A hook that calls `report`.
    pub fn new(report: impl Fn(&RecoveryProgress) + Send + Sync + 'static) -> Self {
        ProgressHook(Arc::new(report))
    }
}

impl Default for ProgressHook {
    fn default() -> Self {
        ProgressHook::new(log_progress)
    }
}

impl std::fmt::Debug for ProgressHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressHook")
    }
}

fn log_progress(progress: &RecoveryProgress) {
    tracing::info!(
        streams_done = progress.streams_done,
        streams_total = progress.streams_total,
        bytes_scanned = progress.bytes_scanned,
        elapsed_ms = progress.elapsed_ms,
        "recovering the data directory: {} of {} streams done",
        progress.streams_done,
        progress.streams_total
    );
}

/// Counts the streams an open has recovered and calls the hook when an interval has passed.
pub(super) struct ProgressReporter<'a> {
    hook: &'a ProgressHook,
    clock: &'a SharedClock,
    started_ms: u64,
    reported_ms: u64,
    progress: RecoveryProgress,
}

impl<'a> ProgressReporter<'a> {
    /// Opening began at `started_ms` and has `streams_total` streams to recover.
    pub(super) fn start(
        hook: &'a ProgressHook,
        clock: &'a SharedClock,
        started_ms: u64,
        streams_total: usize,
    ) -> Self {
        ProgressReporter {
            hook,
            clock,
            started_ms,
            reported_ms: started_ms,
            progress: RecoveryProgress {
                streams_done: 0,
                streams_total,
                bytes_scanned: 0,
                elapsed_ms: 0,
            },
        }
    }

    /// One more stream is recovered, after scanning `bytes_scanned` bytes.
    pub(super) fn stream_done(&mut self, bytes_scanned: u64) {
        self.progress.streams_done += 1;
        self.progress.bytes_scanned += bytes_scanned;
        let now_ms = self.clock.now_ms();
        if now_ms.saturating_sub(self.reported_ms) >= RECOVERY_PROGRESS_INTERVAL_MS {
            self.reported_ms = now_ms;
            self.progress.elapsed_ms = now_ms.saturating_sub(self.started_ms);
            (self.hook.0)(&self.progress);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use parking_lot::Mutex;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::stream::Message;
    use crate::{Store, StoreOptions};

    /// A clock that moves a second forward each time it is read: a slow open.
    #[derive(Debug)]
    struct SlowClock(AtomicU64);

    impl Clock for SlowClock {
        fn now_ms(&self) -> u64 {
            self.0.fetch_add(1_000, Ordering::SeqCst)
        }
    }

    const STREAMS: usize = 12;

    fn reopen(dir: &std::path::Path, clock: SharedClock) -> Vec<RecoveryProgress> {
        let reports = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&reports);
        let options = StoreOptions {
            clock,
            recovery_progress: ProgressHook::new(move |progress| seen.lock().push(*progress)),
            ..StoreOptions::default()
        };
        Store::open_with(dir, options).unwrap().close().unwrap();
        reports.lock().clone()
    }

    #[test]
    fn a_slow_open_reports_progress_at_a_bounded_rate() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for n in 0..STREAMS {
            store
                .stream(format!("s{n}"))
                .unwrap()
                .append(Message::new("x"))
                .unwrap();
        }
        drop(store);

        let reports = reopen(dir.path(), Arc::new(SlowClock(AtomicU64::new(1_000_000))));
        assert!(!reports.is_empty());
        assert!(reports.iter().all(|r| r.streams_total == STREAMS));
        for pair in reports.windows(2) {
            assert!(pair[1].streams_done > pair[0].streams_done, "{reports:?}");
            assert!(
                pair[1].bytes_scanned >= pair[0].bytes_scanned,
                "{reports:?}"
            );
            let apart = pair[1].elapsed_ms - pair[0].elapsed_ms;
            assert!(apart >= RECOVERY_PROGRESS_INTERVAL_MS, "{reports:?}");
        }
        let last = reports[reports.len() - 1];
        assert!(last.streams_done <= STREAMS && last.elapsed_ms >= RECOVERY_PROGRESS_INTERVAL_MS);
        assert!(
            last.bytes_scanned > 0,
            "a store dropped without closing is scanned"
        );

        let quick = reopen(dir.path(), Arc::new(ManualClock::new(1_000_000)));
        assert_eq!(quick, [], "an open that takes no time reports nothing");
    }
}
