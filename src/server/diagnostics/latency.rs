//! `LATENCY`: for each kind of event that took at least `latency-monitor-threshold`
//! milliseconds (0 turns the monitor off), the samples of the last 160 seconds that had one,
//! the latest and the largest.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Seconds with a sample kept per event, as Redis keeps.
const HISTORY_LEN: usize = 160;

/// The kinds of event the monitor samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LatencyEvent {
    /// A command not flagged `fast`.
    Command,
    /// A command flagged `fast`.
    FastCommand,
}

impl LatencyEvent {
    pub(crate) const ALL: [LatencyEvent; 2] = [LatencyEvent::Command, LatencyEvent::FastCommand];

    /// The name Redis gives the event.
    pub(crate) fn name(self) -> &'static str {
        match self {
            LatencyEvent::Command => "command",
            LatencyEvent::FastCommand => "fast-command",
        }
    }

    pub(crate) fn named(name: &[u8]) -> Option<LatencyEvent> {
        Self::ALL
            .into_iter()
            .find(|event| event.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

/// One event's samples: at most one a second, the largest of that second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EventHistory {
    /// `(unix seconds, milliseconds)`, oldest first.
    pub(crate) samples: VecDeque<(u64, u64)>,
    /// The largest sample since the event was last reset.
    pub(crate) max_ms: u64,
}

impl EventHistory {
    fn add(&mut self, unix_secs: u64, ms: u64) {
        self.max_ms = self.max_ms.max(ms);
        if let Some(last) = self.samples.back_mut()
            && last.0 == unix_secs
        {
            last.1 = last.1.max(ms);
            return;
        }
        if self.samples.len() == HISTORY_LEN {
            self.samples.pop_front();
        }
        self.samples.push_back((unix_secs, ms));
    }

    /// The latest sample.
    pub(crate) fn latest(&self) -> Option<(u64, u64)> {
        self.samples.back().copied()
    }
}

#[derive(Debug, Default)]
pub(crate) struct LatencyMonitor {
    threshold_ms: AtomicU64,
    events: Mutex<BTreeMap<LatencyEvent, EventHistory>>,
}

impl LatencyMonitor {
    pub(crate) fn threshold_ms(&self) -> u64 {
        self.threshold_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn set_threshold_ms(&self, ms: u64) {
        self.threshold_ms.store(ms, Ordering::Relaxed);
    }

    /// The milliseconds to sample for a run of `usec`, when the monitor is on and the run
    /// reached its threshold.
    pub(crate) fn worth_sampling(&self, usec: u64) -> Option<u64> {
        let threshold = self.threshold_ms();
        let ms = usec / 1000;
        (threshold > 0 && ms >= threshold).then_some(ms)
    }

    pub(crate) fn sample(&self, event: LatencyEvent, unix_secs: u64, ms: u64) {
        self.events
            .lock()
            .entry(event)
            .or_default()
            .add(unix_secs, ms);
    }

    /// Every event with samples, in event order.
    pub(crate) fn events(&self) -> Vec<(LatencyEvent, EventHistory)> {
        let events = self.events.lock();
        events
            .iter()
            .map(|(event, history)| (*event, history.clone()))
            .collect()
    }

    pub(crate) fn history(&self, event: LatencyEvent) -> Option<EventHistory> {
        self.events.lock().get(&event).cloned()
    }

    /// Forgets the samples of `events` (all with none named); returns how many had any.
    pub(crate) fn reset(&self, events: &[LatencyEvent]) -> usize {
        let mut all = self.events.lock();
        if events.is_empty() {
            let had = all.len();
            all.clear();
            return had;
        }
        events
            .iter()
            .filter(|event| all.remove(event).is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_keep_the_largest_of_each_second_and_160_seconds() {
        let monitor = LatencyMonitor::default();
        assert_eq!(monitor.worth_sampling(u64::MAX), None, "off by default");
        monitor.set_threshold_ms(5);
        assert_eq!(monitor.worth_sampling(4_999), None);
        assert_eq!(monitor.worth_sampling(7_500), Some(7));
        monitor.sample(LatencyEvent::Command, 100, 7);
        monitor.sample(LatencyEvent::Command, 100, 9);
        monitor.sample(LatencyEvent::Command, 101, 6);
        let history = monitor.history(LatencyEvent::Command).unwrap();
        assert_eq!(history.samples, [(100, 9), (101, 6)]);
        assert_eq!((history.latest(), history.max_ms), (Some((101, 6)), 9));
        for second in 0..200 {
            monitor.sample(LatencyEvent::FastCommand, 1000 + second, 5);
        }
        let fast = monitor.history(LatencyEvent::FastCommand).unwrap();
        assert_eq!(fast.samples.len(), HISTORY_LEN);
        assert_eq!(fast.samples[0].0, 1040);
        assert_eq!(monitor.reset(&[LatencyEvent::Command]), 1);
        assert_eq!(monitor.reset(&[]), 1);
        assert!(monitor.events().is_empty());
    }
}
