//! Per-command and per-error counters for `INFO commandstats`, `INFO errorstats`,
//! `total_error_replies` and the metrics endpoint's latency histograms. Every command touches
//! three relaxed atomics of its own slot, so counting costs the hot path next to nothing and
//! clients never contend on a lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Latency buckets: a run of up to 2^i microseconds falls in bucket `i`, the last one takes
/// every longer run. Powers of two make the bucket a count of leading zeros, not a search.
pub(crate) const LATENCY_BUCKETS: usize = 26;

/// The upper bound of each latency bucket but the last, in microseconds.
#[cfg(feature = "cli")]
pub(crate) fn bucket_bound_usec(bucket: usize) -> u64 {
    1 << bucket
}

/// The bucket of a run of `usec` microseconds.
fn bucket_of(usec: u64) -> usize {
    let bits = u64::BITS - usec.saturating_sub(1).leading_zeros();
    usize::try_from(bits).map_or(LATENCY_BUCKETS - 1, |bits| bits.min(LATENCY_BUCKETS - 1))
}

/// One command's (or subcommand's) counters.
#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    usec: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    /// Runs in each latency bucket (not cumulative).
    runs: [AtomicU64; LATENCY_BUCKETS],
}

/// How long one command's runs took: runs per bucket (not cumulative) and their total time.
/// Read by the metrics endpoint, which only the binaries' `cli` feature builds.
#[cfg(feature = "cli")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunTimes {
    pub(crate) runs: [u64; LATENCY_BUCKETS],
    pub(crate) usec: u64,
}

#[cfg(feature = "cli")]
impl RunTimes {
    pub(crate) fn count(&self) -> u64 {
        self.runs.iter().sum()
    }
}

/// What `INFO commandstats` shows for one command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CallCounts {
    pub(crate) calls: u64,
    pub(crate) usec: u64,
    pub(crate) rejected: u64,
    pub(crate) failed: u64,
}

/// Counters for every command slot the command table numbers.
#[derive(Debug)]
pub(crate) struct CommandStats {
    slots: Box<[Counters]>,
}

impl CommandStats {
    pub(crate) fn new(slots: usize) -> Self {
        CommandStats {
            slots: (0..slots).map(|_| Counters::default()).collect(),
        }
    }

    /// A call that ran, failing (an error reply) or not.
    pub(crate) fn called(&self, slot: usize, failed: bool) {
        if let Some(counters) = self.slots.get(slot) {
            counters.calls.fetch_add(1, Ordering::Relaxed);
            if failed {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Time a call spent running (a blocked call runs more than once; waiting does not count).
    pub(crate) fn ran_for(&self, slot: usize, time: Duration) {
        if let Some(counters) = self.slots.get(slot) {
            let usec = u64::try_from(time.as_micros()).unwrap_or(u64::MAX);
            counters.usec.fetch_add(usec, Ordering::Relaxed);
            counters.runs[bucket_of(usec)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The latency histogram of one slot; `None` for a slot the table does not number.
    #[cfg(feature = "cli")]
    pub(crate) fn run_times(&self, slot: usize) -> Option<RunTimes> {
        let counters = self.slots.get(slot)?;
        Some(RunTimes {
            runs: std::array::from_fn(|at| counters.runs[at].load(Ordering::Relaxed)),
            usec: counters.usec.load(Ordering::Relaxed),
        })
    }

    /// A call refused before it ran (wrong arity, not authenticated, not allowed in MULTI).
    pub(crate) fn rejected(&self, slot: usize) {
        if let Some(counters) = self.slots.get(slot) {
            counters.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn counts(&self, slot: usize) -> CallCounts {
        self.slots
            .get(slot)
            .map_or_else(CallCounts::default, |c| CallCounts {
                calls: c.calls.load(Ordering::Relaxed),
                usec: c.usec.load(Ordering::Relaxed),
                rejected: c.rejected.load(Ordering::Relaxed),
                failed: c.failed.load(Ordering::Relaxed),
            })
    }

    pub(crate) fn reset(&self) {
        for counters in self.slots.iter() {
            for counter in [
                &counters.calls,
                &counters.usec,
                &counters.rejected,
                &counters.failed,
            ]
            .into_iter()
            .chain(&counters.runs)
            {
                counter.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// How many distinct error codes are counted; later new codes are not, as in Redis, so that a
/// client inventing codes cannot grow the table without bound.
const MAX_ERROR_CODES: usize = 128;

/// Error replies: in all, and by code (the error's first word).
#[derive(Debug, Default)]
pub(crate) struct ErrorStats {
    total: AtomicU64,
    by_code: Mutex<BTreeMap<String, u64>>,
}

impl ErrorStats {
    /// Counts the error reply `text` (`NOGROUP No such key …`).
    pub(crate) fn count(&self, text: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let code = error_code(text);
        let mut by_code = self.by_code.lock();
        if let Some(count) = by_code.get_mut(code) {
            *count += 1;
        } else if by_code.len() < MAX_ERROR_CODES {
            by_code.insert(code.to_owned(), 1);
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Each code with its count, in code order.
    pub(crate) fn by_code(&self) -> Vec<(String, u64)> {
        self.by_code
            .lock()
            .iter()
            .map(|(code, count)| (code.clone(), *count))
            .collect()
    }

    pub(crate) fn reset(&self) {
        self.total.store(0, Ordering::Relaxed);
        self.by_code.lock().clear();
    }
}

/// An error's code as Redis takes it: the text before the first space when that space comes
/// within the first 31 bytes, else `ERR`.
fn error_code(text: &str) -> &str {
    match text.bytes().take(31).position(|b| b == b' ') {
        Some(end) => &text[..end],
        None => "ERR",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_count_by_their_first_word() {
        let errors = ErrorStats::default();
        errors.count("NOGROUP No such key 's' or consumer group 'g'");
        errors.count("ERR syntax error");
        errors.count("NOGROUP No such consumer group");
        errors.count("A-CODE-LONGER-THAN-THIRTY-ONE-BYTES then text");
        assert_eq!(errors.total(), 4);
        assert_eq!(
            errors.by_code(),
            [("ERR".to_owned(), 2), ("NOGROUP".to_owned(), 2)]
        );
    }

    #[test]
    fn new_error_codes_stop_being_counted_past_the_limit() {
        let errors = ErrorStats::default();
        for code in 0..MAX_ERROR_CODES + 10 {
            errors.count(&format!("E{code} text"));
        }
        assert_eq!(errors.by_code().len(), MAX_ERROR_CODES);
        assert_eq!(errors.total(), MAX_ERROR_CODES as u64 + 10);
    }

    #[test]
    fn calls_time_and_refusals_add_up_per_slot() {
        let stats = CommandStats::new(2);
        stats.called(1, false);
        stats.called(1, true);
        stats.ran_for(1, Duration::from_micros(30));
        stats.rejected(1);
        stats.called(7, false);
        assert_eq!(
            stats.counts(1),
            CallCounts {
                calls: 2,
                usec: 30,
                rejected: 1,
                failed: 1
            }
        );
        assert_eq!(stats.counts(0), CallCounts::default());
        stats.reset();
        assert_eq!(stats.counts(1), CallCounts::default());
    }

    #[cfg(feature = "cli")]
    #[test]
    fn runs_fall_in_power_of_two_buckets() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 1);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(4), 2);
        assert_eq!(bucket_of(5), 3);
        assert_eq!(bucket_of(1 << 20), 20);
        assert_eq!(bucket_of(u64::MAX), LATENCY_BUCKETS - 1);
        let stats = CommandStats::new(1);
        for usec in [1, 3, 4, 1000, 1 << 40] {
            stats.ran_for(0, Duration::from_micros(usec));
        }
        let times = stats.run_times(0).unwrap();
        assert_eq!(times.count(), 5);
        assert_eq!((times.runs[0], times.runs[2], times.runs[10]), (1, 2, 1));
        assert_eq!(times.runs[LATENCY_BUCKETS - 1], 1);
        assert_eq!(times.usec, 1 + 3 + 4 + 1000 + (1 << 40));
        assert!(stats.run_times(1).is_none());
        stats.reset();
        assert_eq!(stats.run_times(0).map(|times| times.count()), Some(0));
    }
}
