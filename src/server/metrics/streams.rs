//! Per-stream and per-group figures, read from the store when scraped. A store can hold very
//! many streams: only the [`LABELLED_STREAMS`] longest get labelled figures, so a scrape's work
//! and size stay bounded; `weir_streams_omitted` says how many were left out.

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::DescriptorEncoder;

use super::encode::{counters, gauge, gauges, seconds_of_ms};
use crate::server::keys::key_part;
use crate::server::state::Server;
use crate::stream::{GroupDetails, Stream};

/// How many streams a scrape labels at most, longest first.
pub(crate) const LABELLED_STREAMS: usize = 500;

type StreamLabels = [(&'static str, String); 2];
type GroupLabels = [(&'static str, String); 3];

/// A labelled stream's figures.
struct StreamRow {
    labels: StreamLabels,
    length: u64,
    stored_bytes: Option<u64>,
    disk_bytes: u64,
    entries_added: u64,
    groups: Vec<GroupDetails>,
}

pub(super) fn encode(server: &Server, out: &mut DescriptorEncoder) -> fmt::Result {
    let streams = match server.stores() {
        Ok(stores) => stores
            .iter()
            .flat_map(|store| {
                let names = store.stream_names();
                names.into_iter().filter_map(|name| store.get(name))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let total = streams.len();
    let rows = longest(streams, LABELLED_STREAMS);
    gauge(out, "weir_streams", "Streams in the store.", total as f64)?;
    gauge(
        out,
        "weir_streams_omitted",
        "Streams left out of the labelled figures (only the longest are labelled).",
        (total - rows.len()) as f64,
    )?;
    stream_figures(out, &rows)?;
    group_figures(out, &rows)
}

/// The `limit` longest streams' figures, longest first.
fn longest(streams: Vec<Arc<Stream>>, limit: usize) -> Vec<StreamRow> {
    let mut by_length: Vec<(u64, Arc<Stream>)> = streams
        .into_iter()
        .map(|stream| (stream.len(), stream))
        .collect();
    by_length.sort_by_key(|(length, _)| std::cmp::Reverse(*length));
    by_length.truncate(limit);
    by_length
        .into_iter()
        .map(|(length, stream)| {
            let name = stream.name();
            StreamRow {
                labels: [
                    ("db", name.first().copied().unwrap_or_default().to_string()),
                    (
                        "stream",
                        String::from_utf8_lossy(key_part(&name)).into_owned(),
                    ),
                ],
                length,
                stored_bytes: stream.stored_bytes().ok(),
                disk_bytes: stream.disk_bytes(),
                entries_added: stream.facts().entries_added,
                groups: stream.group_details(),
            }
        })
        .collect()
}

fn stream_figures(out: &mut DescriptorEncoder, rows: &[StreamRow]) -> fmt::Result {
    gauges(
        out,
        "weir_stream_length",
        "Live entries of the stream.",
        rows.iter().map(|r| (r.labels.clone(), r.length as f64)),
    )?;
    gauges(
        out,
        "weir_stream_stored_bytes",
        "Bytes the stream's live entries store (what a byte limit counts).",
        rows.iter()
            .filter_map(|r| Some((r.labels.clone(), r.stored_bytes? as f64))),
    )?;
    gauges(
        out,
        "weir_stream_disk_bytes",
        "Bytes of the stream's segment files on disk.",
        rows.iter().map(|r| (r.labels.clone(), r.disk_bytes as f64)),
    )?;
    counters(
        out,
        "weir_stream_entries_added",
        "Entries ever appended to the stream, deleted and trimmed ones included.",
        rows.iter().map(|r| (r.labels.clone(), r.entries_added)),
    )
}

/// Each labelled stream's groups, with their labels.
fn groups(rows: &[StreamRow]) -> Vec<(GroupLabels, &GroupDetails)> {
    rows.iter()
        .flat_map(|row| {
            row.groups.iter().map(|group| {
                let [db, stream] = row.labels.clone();
                let name = ("group", String::from_utf8_lossy(&group.name).into_owned());
                ([db, stream, name], group)
            })
        })
        .collect()
}

fn group_figures(out: &mut DescriptorEncoder, rows: &[StreamRow]) -> fmt::Result {
    let groups = groups(rows);
    let each = |figure: fn(&GroupDetails) -> Option<f64>| {
        groups
            .iter()
            .filter_map(move |(labels, group)| Some((labels.clone(), figure(group)?)))
    };
    gauges(
        out,
        "weir_group_lag",
        "Entries not yet delivered to the group (absent when unknown after deletions).",
        each(|g| g.lag.map(|lag| lag as f64)),
    )?;
    gauges(
        out,
        "weir_group_pending",
        "Entries delivered to the group and not yet acknowledged.",
        each(|g| Some(g.pending as f64)),
    )?;
    gauges(
        out,
        "weir_group_consumers",
        "Consumers of the group.",
        each(|g| Some(g.consumers as f64)),
    )?;
    gauges(
        out,
        "weir_group_oldest_pending_age_seconds",
        "Time since the longest-waiting pending entry was delivered (0 when none is pending).",
        each(|g| Some(seconds_of_ms(g.backlog.oldest_pending_ms.unwrap_or(0)))),
    )?;
    gauges(
        out,
        "weir_group_oldest_undelivered_age_seconds",
        "Time since the oldest entry not yet delivered was appended (0 when all were).",
        each(|g| Some(seconds_of_ms(g.backlog.oldest_undelivered_ms.unwrap_or(0)))),
    )?;
    group_counters(out, &groups)
}

fn group_counters(
    out: &mut DescriptorEncoder,
    groups: &[(GroupLabels, &GroupDetails)],
) -> fmt::Result {
    let each = |figure: fn(&GroupDetails) -> u64| {
        groups
            .iter()
            .map(move |(labels, group)| (labels.clone(), figure(group)))
    };
    counters(
        out,
        "weir_group_delivered",
        "Entries the group handed to a consumer for the first time (since the stream was opened).",
        each(|g| g.activity.delivered),
    )?;
    counters(
        out,
        "weir_group_redelivered",
        "Pending entries the group handed out again (since the stream was opened).",
        each(|g| g.activity.redelivered),
    )?;
    counters(
        out,
        "weir_group_dead_lettered",
        "Entries the group moved to its dead-letter stream (since the stream was opened).",
        each(|g| g.activity.dead_lettered),
    )
}
