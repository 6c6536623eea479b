//! What happened in a simulated run, stamped with the simulated time: faults, crashes, writes.
//! Printed when a run fails, to read the run and replay it from its seed.

use std::fmt::Display;

use parking_lot::Mutex;
use tokio::time::Instant;

pub(super) struct EventLog {
    start: Instant,
    lines: Mutex<Vec<String>>,
}

impl EventLog {
    pub(super) fn new() -> EventLog {
        EventLog {
            start: Instant::now(),
            lines: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn record(&self, event: impl Display) {
        let at = self.start.elapsed().as_millis();
        self.lines.lock().push(format!("{at:>7} ms  {event}"));
    }

    /// The whole log, one event a line.
    pub(super) fn render(&self) -> String {
        self.lines.lock().join("\n")
    }
}
