//! weir's own INFO sections: `# Backlog` (every consumer group's backlog) and `# Weir` (the
//! store's size).

use std::fmt::Write as _;

use std::sync::Arc;

use crate::server::keys::key_part;
use crate::store::Store;
use crate::stream::Backlog;

/// `# Weir`: the streams, entries and segments of the stores (every shard's), and where they
/// live.
pub(super) fn weir_section(stores: &[Arc<Store>], dir: &std::path::Path) -> String {
    let size = StoreSize::of(stores);
    format!(
        "# Weir\r\nstreams:{}\r\nentries:{}\r\nsegments:{}\r\nsegment_bytes_on_disk:{}\r\ndata_dir:{}\r\n",
        size.streams,
        size.entries,
        size.segments,
        size.bytes,
        dir.display(),
    )
}

/// The segments, bytes on disk and entries of every stream.
#[derive(Debug, Default)]
pub(super) struct StoreSize {
    pub(super) streams: usize,
    pub(super) segments: usize,
    pub(super) bytes: u64,
    pub(super) entries: u64,
}

impl StoreSize {
    pub(super) fn of(stores: &[Arc<Store>]) -> StoreSize {
        let mut size = StoreSize::default();
        let streams = stores.iter().flat_map(|store| {
            let names = store.stream_names();
            names.into_iter().filter_map(|name| store.get(name))
        });
        for stream in streams {
            size.streams += 1;
            size.segments += stream.segment_count();
            size.bytes += stream.disk_bytes();
            size.entries += stream.len();
        }
        size
    }
}

/// `# Backlog`: totals and maxima first (what an alert watches), then one line per consumer
/// group. Unknown values (a group without pending entries has no oldest pending age) are -1.
pub(super) fn backlog_section(stores: &[Arc<Store>]) -> String {
    let mut totals = BacklogTotals::default();
    let mut lines = String::new();
    let mut named: Vec<(Vec<u8>, &Store)> = stores
        .iter()
        .flat_map(|store| {
            store
                .stream_names()
                .into_iter()
                .map(move |name| (name, &**store))
        })
        .collect();
    named.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (name, store) in &named {
        let Some(stream) = store.get(name) else {
            continue;
        };
        let (db, key) = (name.first().copied().unwrap_or(0), key_part(name));
        for backlog in stream.backlog() {
            let _ = write!(
                lines,
                "group{}:db={db},key={},group={},lag={},pending={},oldest_undelivered_ms={},oldest_pending_ms={}\r\n",
                totals.groups,
                info_escape(key),
                info_escape(&backlog.group),
                or_unknown(backlog.lag),
                backlog.pending,
                or_unknown(backlog.oldest_undelivered_ms),
                or_unknown(backlog.oldest_pending_ms),
            );
            totals.add(&backlog);
        }
    }
    format!(
        "# Backlog\r\nbacklog_groups:{}\r\nbacklog_lag_total:{}\r\nbacklog_pending_total:{}\r\nbacklog_oldest_undelivered_ms_max:{}\r\nbacklog_oldest_pending_ms_max:{}\r\n{lines}",
        totals.groups,
        totals.lag,
        totals.pending,
        or_unknown(totals.oldest_undelivered_ms),
        or_unknown(totals.oldest_pending_ms),
    )
}

/// Sums and maxima over every group's backlog.
#[derive(Default)]
struct BacklogTotals {
    groups: usize,
    lag: u64,
    pending: usize,
    oldest_undelivered_ms: Option<u64>,
    oldest_pending_ms: Option<u64>,
}

impl BacklogTotals {
    fn add(&mut self, backlog: &Backlog) {
        self.groups += 1;
        self.lag = self.lag.saturating_add(backlog.lag.unwrap_or(0));
        self.pending += backlog.pending;
        self.oldest_undelivered_ms = self
            .oldest_undelivered_ms
            .max(backlog.oldest_undelivered_ms);
        self.oldest_pending_ms = self.oldest_pending_ms.max(backlog.oldest_pending_ms);
    }
}

fn or_unknown(value: Option<impl Into<u64>>) -> String {
    value.map_or_else(|| "-1".to_owned(), |v| v.into().to_string())
}

/// A key or group name inside an INFO line: bytes that could break the line's `k=v,k=v` syntax
/// (and anything not printable) become `%` and two hex digits.
fn info_escape(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for &byte in name {
        if byte.is_ascii_alphanumeric() || b"-_.:/{}[]@#".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_names_cannot_break_the_line_syntax() {
        assert_eq!(info_escape(b"orders:eu"), "orders:eu");
        assert_eq!(info_escape(b"a,b=c d\r\n%"), "a%2Cb%3Dc%20d%0D%0A%25");
    }
}
