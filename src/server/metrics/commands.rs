//! Per-command figures: calls, refusals and failures, and a latency histogram of each
//! command's runs, from the counters `INFO commandstats` reads. Commands never called are left
//! out.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::encode::{counters, seconds_of_us};
use crate::server::command_stats::{CallCounts, LATENCY_BUCKETS, RunTimes, bucket_bound_usec};
use crate::server::commands::stats_names;
use crate::server::state::Server;

/// A called command's label and figures.
struct Called {
    label: [(&'static str, &'static str); 1],
    counts: CallCounts,
    times: Option<RunTimes>,
}

pub(super) fn encode(server: &Server, out: &mut DescriptorEncoder) -> fmt::Result {
    let stats = &server.stats.commands;
    let called: Vec<Called> = stats_names()
        .map(|(name, slot)| Called {
            label: [("cmd", name)],
            counts: stats.counts(slot),
            times: stats.run_times(slot),
        })
        .filter(|called| called.counts != CallCounts::default())
        .collect();
    counters(
        out,
        "weir_command_calls",
        "Calls of each command (subcommands as container|sub).",
        called.iter().map(|c| (c.label, c.counts.calls)),
    )?;
    counters(
        out,
        "weir_command_failed_calls",
        "Calls of each command that answered with an error.",
        called.iter().map(|c| (c.label, c.counts.failed)),
    )?;
    counters(
        out,
        "weir_command_rejected_calls",
        "Calls of each command refused before they ran.",
        called.iter().map(|c| (c.label, c.counts.rejected)),
    )?;
    durations(out, &called)
}

/// `weir_command_duration_seconds`: each run's time (a blocking command runs once per look).
fn durations(out: &mut DescriptorEncoder, called: &[Called]) -> fmt::Result {
    let timed: Vec<_> = called
        .iter()
        .filter_map(|c| c.times.map(|times| (c.label, times)))
        .filter(|(_, times)| times.count() > 0)
        .collect();
    if timed.is_empty() {
        return Ok(());
    }
    let mut family = out.encode_descriptor(
        "weir_command_duration_seconds",
        "Time each command's runs took.",
        None,
        MetricType::Histogram,
    )?;
    for (label, times) in timed {
        let buckets: Vec<(f64, u64)> = times
            .runs
            .iter()
            .enumerate()
            .map(|(at, &runs)| (upper_bound(at), runs))
            .collect();
        family
            .encode_family(&label)?
            .encode_histogram::<NoLabelSet>(
                seconds_of_us(times.usec),
                times.count(),
                &buckets,
                None,
            )?;
    }
    Ok(())
}

fn upper_bound(bucket: usize) -> f64 {
    if bucket + 1 == LATENCY_BUCKETS {
        f64::INFINITY
    } else {
        seconds_of_us(bucket_bound_usec(bucket))
    }
}
