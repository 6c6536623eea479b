//! What the server remembers about slow commands for `SLOWLOG` and `LATENCY`. Both look at the
//! run time dispatch already measures for `INFO commandstats`; a command below both thresholds
//! costs two relaxed loads.

mod latency;
mod slowlog;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

pub(crate) use latency::{LatencyEvent, LatencyMonitor};
pub(crate) use slowlog::{SlowEntry, SlowLog};

/// The slow log and the latency monitor.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    pub(crate) slowlog: SlowLog,
    pub(crate) latency: LatencyMonitor,
}

/// One command run, as the slow log and the latency monitor see it.
#[derive(Debug)]
pub(crate) struct Run<'a> {
    pub(crate) name: &'static str,
    pub(crate) args: &'a [Bytes],
    /// Whether the command is flagged `fast` (its latency event is `fast-command`).
    pub(crate) fast: bool,
    /// Whether the command is flagged `skip_slowlog` (EXEC: its commands are logged instead).
    pub(crate) skip_slowlog: bool,
    pub(crate) took: Duration,
}

/// Who ran a command, for the slow log; looked up only when a run is slow enough to log.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) name: Option<Bytes>,
}

impl Diagnostics {
    /// Whether a run that took `took` is slow enough for the slow log or the latency monitor:
    /// what every command asks, so it reads two atomics and nothing else.
    pub(crate) fn interested(&self, took: Duration) -> bool {
        let usec = micros(took);
        self.latency.worth_sampling(usec).is_some() || self.slowlog.is_slow(usec)
    }

    /// Records `run` where it is slow enough, at `unix_ms`, by `caller`.
    pub(crate) fn record(&self, run: &Run<'_>, unix_ms: u64, caller: Caller) {
        let usec = micros(run.took);
        if let Some(ms) = self.latency.worth_sampling(usec) {
            let event = if run.fast {
                LatencyEvent::FastCommand
            } else {
                LatencyEvent::Command
            };
            self.latency.sample(event, unix_ms / 1000, ms);
        }
        if !run.skip_slowlog && self.slowlog.is_slow(usec) {
            self.slowlog.push(run, usec, unix_ms / 1000, caller);
        }
    }
}

fn micros(time: Duration) -> u64 {
    u64::try_from(time.as_micros()).unwrap_or(u64::MAX)
}
