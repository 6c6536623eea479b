//! Logging an error that keeps happening without flooding the log: the first occurrence is
//! logged, the identical ones that follow within an interval are only counted, and the first
//! occurrence after the interval is logged with that count ("repeated 532 times in the last
//! 10 s").

use std::collections::HashMap;

use parking_lot::Mutex;

/// How long identical messages are counted before one is logged again.
pub(crate) const REPEAT_INTERVAL_MS: u64 = 10_000;

/// Most distinct messages counted at once; beyond that, new ones are logged every time.
const MAX_TRACKED: usize = 256;

/// What to do with one occurrence of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Log it: it is new, or the first after a quiet interval.
    Log,
    /// Do not log it: it was logged less than an interval ago.
    Suppressed,
    /// Log it with how many times it was suppressed, over how long.
    Repeated { times: u64, window_ms: u64 },
}

impl Verdict {
    /// What to append to the message when it is logged: `None` when it is not.
    pub(crate) fn note(self) -> Option<String> {
        match self {
            Verdict::Log => Some(String::new()),
            Verdict::Suppressed => None,
            Verdict::Repeated { times, window_ms } => Some(format!(
                " (repeated {times} times in the last {} s)",
                window_ms.div_ceil(1000)
            )),
        }
    }
}

/// Counts repeats of messages, each told apart by a key (its text, with what varies in it).
#[derive(Debug)]
pub(crate) struct RepeatLimiter {
    interval_ms: u64,
    seen: Mutex<HashMap<String, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    logged_ms: u64,
    suppressed: u64,
}

impl Default for RepeatLimiter {
    fn default() -> Self {
        RepeatLimiter::new(REPEAT_INTERVAL_MS)
    }
}

impl RepeatLimiter {
    /// A limiter that logs each message at most once per `interval_ms`.
    pub(crate) fn new(interval_ms: u64) -> Self {
        RepeatLimiter {
            interval_ms,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the occurrence of `key` at `now_ms` is logged.
    pub(crate) fn check(&self, key: &str, now_ms: u64) -> Verdict {
        let mut seen = self.seen.lock();
        if let Some(window) = seen.get_mut(key) {
            let elapsed = now_ms.saturating_sub(window.logged_ms);
            if elapsed < self.interval_ms {
                window.suppressed += 1;
                return Verdict::Suppressed;
            }
            let times = std::mem::take(&mut window.suppressed);
            window.logged_ms = now_ms;
            return match times {
                0 => Verdict::Log,
                times => Verdict::Repeated {
                    times,
                    window_ms: elapsed,
                },
            };
        }
        if seen.len() >= MAX_TRACKED {
            let interval = self.interval_ms;
            seen.retain(|_, window| now_ms.saturating_sub(window.logged_ms) < interval);
        }
        if seen.len() < MAX_TRACKED {
            seen.insert(
                key.to_string(),
                Window {
                    logged_ms: now_ms,
                    suppressed: 0,
                },
            );
        }
        Verdict::Log
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    #[test]
    fn repeats_are_counted_and_reported_once_an_interval() {
        let clock = ManualClock::new(1_000);
        let limiter = RepeatLimiter::new(10_000);
        assert_eq!(limiter.check("disk full", clock.now_ms()), Verdict::Log);
        for _ in 0..532 {
            clock.advance_ms(10);
            assert_eq!(
                limiter.check("disk full", clock.now_ms()),
                Verdict::Suppressed
            );
        }
        assert_eq!(limiter.check("other", clock.now_ms()), Verdict::Log);
        clock.advance_ms(10_000 - 5_320);
        let verdict = limiter.check("disk full", clock.now_ms());
        assert_eq!(
            verdict,
            Verdict::Repeated {
                times: 532,
                window_ms: 10_000
            }
        );
        assert_eq!(
            verdict.note().as_deref(),
            Some(" (repeated 532 times in the last 10 s)")
        );
        assert_eq!(Verdict::Suppressed.note(), None);
        clock.advance_ms(1);
        assert_eq!(
            limiter.check("disk full", clock.now_ms()),
            Verdict::Suppressed
        );
        clock.advance_ms(60_000);
        assert_eq!(
            limiter.check("disk full", clock.now_ms()),
            Verdict::Repeated {
                times: 1,
                window_ms: 60_001
            }
        );
        clock.advance_ms(60_000);
        assert_eq!(limiter.check("disk full", clock.now_ms()), Verdict::Log);
    }

    #[test]
    fn distinct_messages_beyond_the_limit_are_logged_every_time() {
        let limiter = RepeatLimiter::new(10_000);
        for n in 0..MAX_TRACKED {
            assert_eq!(limiter.check(&n.to_string(), 0), Verdict::Log);
        }
        assert_eq!(limiter.check("one more", 1), Verdict::Log);
        assert_eq!(limiter.check("one more", 2), Verdict::Log);
        assert_eq!(limiter.check("0", 3), Verdict::Suppressed);
        // Once the old ones are an interval old, they make room.
        assert_eq!(limiter.check("one more", 10_000), Verdict::Log);
        assert_eq!(limiter.check("one more", 10_001), Verdict::Suppressed);
    }
}
