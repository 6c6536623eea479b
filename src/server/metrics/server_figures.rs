//! The server's own figures: connections, commands in all, flushes, memory, and what the last
//! opening of the store recovered.

use std::fmt;
use std::sync::atomic::Ordering;

use prometheus_client::encoding::DescriptorEncoder;

use super::encode::{counter, gauge, seconds_of_us};
use crate::server::process;
use crate::server::state::Server;

pub(super) fn encode(server: &Server, out: &mut DescriptorEncoder) -> fmt::Result {
    connections(server, out)?;
    flushes(server, out)?;
    recovery(server, out)?;
    let memory = process::memory();
    gauge(
        out,
        "weir_resident_memory_bytes",
        "Memory the process holds in RAM, mapped segment pages included.",
        memory.rss as f64,
    )?;
    gauge(
        out,
        "weir_heap_memory_bytes",
        "Anonymous memory the process holds in RAM: heap and stacks, without segment pages.",
        memory.heap as f64,
    )?;
    gauge(
        out,
        "weir_uptime_seconds",
        "Seconds since the server started.",
        server.started.elapsed().as_secs_f64(),
    )
}

fn connections(server: &Server, out: &mut DescriptorEncoder) -> fmt::Result {
    let stats = &server.stats;
    gauge(
        out,
        "weir_connected_clients",
        "Clients connected now.",
        server.clients.lock().len() as f64,
    )?;
    gauge(
        out,
        "weir_blocked_clients",
        "Clients waiting in a blocking command now.",
        server.blocked_clients.load(Ordering::Relaxed) as f64,
    )?;
    counter(
        out,
        "weir_connections_received",
        "Connections accepted since the start (or CONFIG RESETSTAT).",
        stats.connections_received.load(Ordering::Relaxed),
    )?;
    counter(
        out,
        "weir_rejected_connections",
        "Connections refused because maxclients was reached.",
        stats.rejected_connections.load(Ordering::Relaxed),
    )?;
    counter(
        out,
        "weir_commands_processed",
        "Commands run.",
        stats.commands_processed.load(Ordering::Relaxed),
    )?;
    counter(
        out,
        "weir_error_replies",
        "Error replies sent.",
        stats.errors.total(),
    )
}

/// The flusher of the open store; it counts from the store's opening.
fn flushes(server: &Server, out: &mut DescriptorEncoder) -> fmt::Result {
    let flushes = server
        .store()
        .map(|store| store.flush_stats())
        .unwrap_or_default();
    counter(
        out,
        "weir_flush_rounds",
        "Flush rounds the group-commit flusher ran.",
        flushes.rounds,
    )?;
    counter(
        out,
        "weir_flush_requests",
        "Commit requests the flush rounds completed.",
        flushes.requests,
    )?;
    counter(
        out,
        "weir_flush_duration_seconds",
        "Time spent in flush rounds.",
        seconds_of_us(flushes.flush_us),
    )?;
    gauge(
        out,
        "weir_flush_duration_max_seconds",
        "The longest flush round.",
        seconds_of_us(flushes.max_flush_us),
    )
}

fn recovery(server: &Server, out: &mut DescriptorEncoder) -> fmt::Result {
    let recovery = server.recovery();
    gauge(
        out,
        "weir_recovery_clean_shutdown",
        "1 when the store was last opened after a clean close (or new), 0 after a crash.",
        f64::from(u8::from(recovery.clean || recovery.new_directory)),
    )?;
    gauge(
        out,
        "weir_recovery_streams",
        "Streams the last opening of the store recovered.",
        recovery.streams.len() as f64,
    )?;
    gauge(
        out,
        "weir_recovery_entries",
        "Entries the last opening of the store recovered.",
        recovery.entries() as f64,
    )?;
    gauge(
        out,
        "weir_recovery_lost_records",
        "Damaged records the last opening of the store dropped.",
        recovery.lost_records() as f64,
    )?;
    gauge(
        out,
        "weir_recovery_undone_changes",
        "Changes of an interrupted transaction the last opening undid.",
        recovery.undone_changes as f64,
    )
}
