//! Where Redis would have cut a stream into radix-tree nodes, so that approximate trimming
//! (`MAXLEN ~`, `MINID ~`, `LIMIT`) removes what Redis removes and `XINFO STREAM` reports the
//! tree Redis would have.
//!
//! Redis keeps a stream as listpacks of entries ("nodes"). An entry goes into the newest node
//! unless that node already holds `stream-node-max-entries` entries (live or deleted), or its
//! bytes plus the new entry's field and value lengths reach `stream-node-max-bytes`; then a new
//! node starts. Deleting entries does not shrink a node, but a node whose every entry is gone is
//! removed, so the next append starts a new one. An approximate trim removes whole nodes from
//! the head while what remains stays at or above the threshold, and at most `LIMIT` live
//! entries in all.
//!
//! The model is kept in memory and follows the log: before every deletion or trim it takes in
//! the entries appended since the last time, in order, so a deletion is seen after the
//! appends that preceded it, as Redis saw it. It is built on first use (after a restart, or
//! when a stream is first trimmed this way) from the entries not trimmed, deleted ones
//! included, as if they had been appended in one go under the limits then in force: the first
//! trims of a stream whose oldest node was cut by an exact trim, whose newest node was emptied
//! by deletions, or whose nodes formed under other limits, may then cut elsewhere than Redis
//! would have. Nothing is written to disk: the trim itself is the log's usual trim point, and
//! space comes back by whole segments.

use std::collections::VecDeque;

use super::listpack::{EMPTY_LISTPACK, integer_len, string_len};
use super::radix;
use crate::id::StreamId;
use crate::log::{Entry, Log, LogError, MetaState};

/// Redis's `stream-node-max-entries` and `stream-node-max-bytes`: where a node closes. Zero
/// lifts a limit (bytes are then capped at Redis's listpack maximum of 1 GiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLimits {
    /// Entries (live or deleted) a node holds at most.
    pub max_entries: u64,
    /// Bytes a node reaches at most.
    pub max_bytes: u64,
}

impl Default for NodeLimits {
    /// Redis's defaults: 100 entries, 4096 bytes.
    fn default() -> Self {
        NodeLimits {
            max_entries: 100,
            max_bytes: 4096,
        }
    }
}

impl NodeLimits {
    /// Redis's `LIMIT` when an approximate trim gives none: 100 nodes' worth of entries,
    /// 10,000 when nodes have no entry limit, never more than a million.
    pub fn default_trim_limit(&self) -> u64 {
        match self.max_entries.saturating_mul(100) {
            0 => 10_000,
            limit => limit.min(1_000_000),
        }
    }

    /// The byte limit as Redis applies it.
    fn byte_cap(&self) -> u64 {
        const LISTPACK_MAX: u64 = 1 << 30;
        match self.max_bytes {
            0 => LISTPACK_MAX,
            bytes => bytes.min(LISTPACK_MAX),
        }
    }
}

/// What an approximate trim keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Threshold {
    /// At least this many entries.
    MaxLen(u64),
    /// Every entry with this ID or above.
    MinId(StreamId),
}

/// One node: the offsets `[start, end)` of the entries appended into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Node {
    start: u64,
    end: u64,
    /// The ID of its first entry (its key in the radix tree).
    first_id: StreamId,
    /// The ID of its last entry, deleted or not (what `MINID ~` compares).
    last_id: StreamId,
}

/// The newest node while entries may still go into it.
#[derive(Debug, Clone)]
struct OpenNode {
    /// The field names of its first entry (its "master entry").
    master_fields: Vec<Vec<u8>>,
    /// Bytes of its master fields, their count and their terminator.
    master_bytes: usize,
    /// Bytes of its entries.
    entries_bytes: usize,
}

/// The nodes of one stream's live entries.
#[derive(Debug, Clone, Default)]
pub(super) struct NodeModel {
    nodes: VecDeque<Node>,
    open: Option<OpenNode>,
    /// Entries before this offset are taken in.
    end: u64,
}

/// Entries read at a time while catching up.
const CATCH_UP_BATCH: usize = 512;

impl NodeModel {
    /// Bytes the model's nodes take in memory.
    pub(super) fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.nodes.capacity() * std::mem::size_of::<Node>()
    }

    /// A model of `log` as if its live entries had been appended in one go.
    pub(super) fn build(log: &Log, limits: NodeLimits) -> Result<NodeModel, LogError> {
        let mut model = NodeModel {
            end: log.meta().first_offset,
            ..NodeModel::default()
        };
        model.catch_up(log, limits)?;
        Ok(model)
    }

    /// Takes in the entries appended since the last call.
    pub(super) fn catch_up(&mut self, log: &Log, limits: NodeLimits) -> Result<(), LogError> {
        let meta = log.meta();
        let next = log.next_offset();
        if self.end > next {
            // The log went back (a transaction undone): start again from what it holds.
            *self = NodeModel::default();
        }
        self.end = self.end.max(meta.first_offset);
        self.forget_gone(&meta);
        while self.end < next {
            let batch = log.read_from_with_deleted(self.end, CATCH_UP_BATCH)?;
            let Some(last) = batch.last().map(|entry| entry.offset) else {
                break;
            };
            for entry in batch.iter().filter(|entry| entry.offset < next) {
                self.add(entry, &meta, limits);
            }
            self.end = (last + 1).min(next);
        }
        self.end = next;
        Ok(())
    }

    /// Drops the nodes whose every entry is gone; closes the newest one if it is among them
    /// (Redis removed it, so the next entry starts a node).
    fn forget_gone(&mut self, meta: &MetaState) {
        self.nodes.retain(|node| live(node, meta) > 0);
        let open_survives = self.nodes.back().is_some_and(|node| node.end == self.end);
        if !open_survives {
            self.open = None;
        }
    }

    /// Adds one entry, in a new node when the newest is full.
    fn add(&mut self, entry: &Entry, meta: &MetaState, limits: NodeLimits) {
        let fields = fields_of(entry);
        let new_lengths: u64 = fields
            .iter()
            .map(|(name, value)| (name.len() + value.len()) as u64)
            .sum();
        let fits = match (&self.open, self.nodes.back()) {
            (Some(open), Some(node)) => {
                let held = node.end - node.start;
                let deleted = held - live(node, meta);
                let bytes = EMPTY_LISTPACK
                    + integer_len(held as i64 - deleted as i64)
                    + integer_len(deleted as i64)
                    + open.master_bytes
                    + open.entries_bytes;
                (bytes as u64).saturating_add(new_lengths) < limits.byte_cap()
                    && (limits.max_entries == 0 || held < limits.max_entries)
            }
            _ => false,
        };
        if !fits {
            self.start_node(entry, &fields);
        }
        let (Some(open), Some(node)) = (self.open.as_mut(), self.nodes.back_mut()) else {
            return;
        };
        open.entries_bytes += entry_bytes(entry.id, node.first_id, &fields, open);
        node.end = entry.offset + 1;
        node.last_id = entry.id;
    }

    fn start_node(&mut self, entry: &Entry, fields: &[(Vec<u8>, Vec<u8>)]) {
        let master_fields: Vec<Vec<u8>> = fields.iter().map(|(name, _)| name.clone()).collect();
        let master_bytes = integer_len(fields.len() as i64)
            + master_fields
                .iter()
                .map(|name| string_len(name))
                .sum::<usize>()
            + integer_len(0);
        self.open = Some(OpenNode {
            master_fields,
            master_bytes,
            entries_bytes: 0,
        });
        self.nodes.push_back(Node {
            start: entry.offset,
            end: entry.offset,
            first_id: entry.id,
            last_id: entry.id,
        });
    }

    /// The trim point (first offset kept) of an approximate trim to `threshold` removing at
    /// most `limit` live entries (`None`: no limit), as Redis's `streamTrim` does it.
    pub(super) fn trim_point(
        &self,
        meta: &MetaState,
        length: u64,
        threshold: Threshold,
        limit: Option<u64>,
    ) -> u64 {
        let mut length = length;
        let mut removed = 0u64;
        let mut point = meta.first_offset;
        for node in &self.nodes {
            if let Threshold::MaxLen(max_len) = threshold
                && length <= max_len
            {
                break;
            }
            let entries = live(node, meta);
            if limit.is_some_and(|limit| removed + entries > limit) {
                break;
            }
            let whole_node_goes = match threshold {
                Threshold::MaxLen(max_len) => length - entries >= max_len,
                Threshold::MinId(min_id) => node.last_id < min_id,
            };
            if !whole_node_goes {
                break;
            }
            length -= entries;
            removed += entries;
            point = point.max(node.end);
        }
        point
    }

    /// `radix-tree-keys` and `radix-tree-nodes`: the nodes holding live entries, and the
    /// nodes of a radix tree keyed by their first IDs.
    pub(super) fn radix_counts(&self, meta: &MetaState) -> (u64, u64) {
        let keys: Vec<StreamId> = self
            .nodes
            .iter()
            .filter(|node| live(node, meta) > 0)
            .map(|node| node.first_id)
            .collect();
        (keys.len() as u64, radix::rax_nodes(keys))
    }
}

/// Live entries of `node`.
fn live(node: &Node, meta: &MetaState) -> u64 {
    let from = node.start.max(meta.first_offset);
    if from >= node.end {
        return 0;
    }
    (node.end - from) - meta.deleted_between(from, node.end) as u64
}

/// The field name a body is counted under: the one the Redis protocol shows it under.
const BODY_FIELD: &[u8] = b"$body";

/// An entry's field/value pairs as Redis would hold them: its headers, and its body (when it
/// has one) as one more pair.
fn fields_of(entry: &Entry) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = entry
        .headers()
        .map(|(name, value)| (name.to_vec(), value.to_vec()))
        .collect();
    let body = entry.body();
    if !body.is_empty() {
        fields.push((BODY_FIELD.to_vec(), body.to_vec()));
    }
    fields
}

/// Bytes an entry takes in a node whose first entry is `first_id`: flags, ID deltas, the
/// field names unless they repeat the master entry's, the values and the element count.
fn entry_bytes(
    id: StreamId,
    first_id: StreamId,
    fields: &[(Vec<u8>, Vec<u8>)],
    open: &OpenNode,
) -> usize {
    const FLAGS: i64 = 2;
    let same_fields = fields.len() == open.master_fields.len()
        && fields
            .iter()
            .zip(&open.master_fields)
            .all(|((name, _), master)| name == master);
    // Redis subtracts unsigned and stores the difference as a signed 64-bit integer.
    let ms_delta = id.ms.wrapping_sub(first_id.ms) as i64;
    let seq_delta = id.seq.wrapping_sub(first_id.seq) as i64;
    let values: usize = fields.iter().map(|(_, value)| string_len(value)).sum();
    let count = fields.len() as i64;
    let (names, elements) = if same_fields {
        (0, count + 3)
    } else {
        let names: usize = fields.iter().map(|(name, _)| string_len(name)).sum();
        (integer_len(count) + names, 2 * count + 4)
    };
    integer_len(FLAGS)
        + integer_len(ms_delta)
        + integer_len(seq_delta)
        + names
        + values
        + integer_len(elements)
}
