//! Time, behind a trait so that tests control it.
//!
//! All deadlines (ack timeouts, idempotency windows, retention by age) are computed from a
//! [`Clock`]. The wall clock can jump backwards (NTP, a VM restored from a snapshot); the
//! [`SystemClock`] never reports a time earlier than one it already reported, so a backward jump
//! of J milliseconds delays deadlines by at most J and never fires one early.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of Unix time in milliseconds that never goes backwards.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch; never smaller than a value returned before.
    fn now_ms(&self) -> u64;
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's wall clock, made monotonic.
#[derive(Debug, Default)]
pub struct SystemClock {
    highest_seen_ms: AtomicU64,
}

impl SystemClock {
    /// A new wall clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new wall clock behind a shared handle.
    pub fn shared() -> SharedClock {
        Arc::new(Self::new())
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // Whole seconds and the milliseconds of the rest, in u64: `as_millis` divides a u128,
        // which cost more than reading the clock (this runs once per append).
        let wall_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
            d.as_secs()
                .saturating_mul(1000)
                .saturating_add(u64::from(d.subsec_millis()))
        });
        // A read-modify-write only when the clock moved on (once a millisecond at most): the
        // load alone keeps the guarantee, since the value it returns was stored before.
        let highest = self.highest_seen_ms.load(Ordering::Acquire);
        if wall_ms <= highest {
            return highest;
        }
        let previous = self.highest_seen_ms.fetch_max(wall_ms, Ordering::AcqRel);
        previous.max(wall_ms)
    }
}

/// A clock that moves only when told to: for tests and simulations.
///
/// ```
/// use weir::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance_ms(250);
/// assert_eq!(clock.now_ms(), 1_250);
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        ManualClock {
            now_ms: AtomicU64::new(start_ms),
        }
    }

    /// Moves the clock forward.
    pub fn advance_ms(&self, delta_ms: u64) {
        self.now_ms.fetch_add(delta_ms, Ordering::AcqRel);
    }

    /// Sets the clock; a value in the past is ignored, as a real clock reading would be.
    pub fn set_ms(&self, now_ms: u64) {
        self.now_ms.fetch_max(now_ms, Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_never_goes_back() {
        let clock = SystemClock::new();
        let first = clock.now_ms();
        clock
            .highest_seen_ms
            .store(first + 60_000, Ordering::Release);
        assert_eq!(clock.now_ms(), first + 60_000);
        clock.highest_seen_ms.store(first, Ordering::Release);
        let wall = clock.now_ms();
        assert!(wall >= first);
        assert!(clock.now_ms() >= wall);
    }

    #[test]
    fn system_clock_reads_unix_milliseconds() {
        let expected = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap();
        let read = SystemClock::new().now_ms();
        assert!(read >= expected, "{read} < {expected}");
        assert!(read - expected < 60_000, "{read} is far from {expected}");
    }

    #[test]
    fn manual_clock_ignores_the_past() {
        let clock = ManualClock::new(100);
        clock.set_ms(50);
        assert_eq!(clock.now_ms(), 100);
        clock.set_ms(150);
        assert_eq!(clock.now_ms(), 150);
    }
}
