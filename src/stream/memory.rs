//! What a stream holds in memory, by part: what `MEMORY USAGE` reports. The entries themselves
//! live in memory-mapped segment files, which the page cache holds and may drop: they are not
//! counted here (see [`Stream::disk_bytes`]).

use super::Stream;

/// A stream's memory in bytes, by part. Each part counts its elements as allocated, without
/// the allocator's or the trees' per-node overhead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamMemory {
    /// The stream's own structure.
    pub stream: u64,
    /// The log: its segments' indexes and the offsets deleted inside it.
    pub log: u64,
    /// The consumer groups: names, pending lists, consumers.
    pub groups: u64,
    /// The idempotency windows: producers and the keys remembered.
    pub idempotency: u64,
    /// The model of Redis's nodes, once trimming or `XINFO` needed it.
    pub nodes: u64,
}

impl StreamMemory {
    /// All the parts together.
    pub fn total(&self) -> u64 {
        self.stream + self.log + self.groups + self.idempotency + self.nodes
    }
}

impl Stream {
    /// What the stream holds in memory now.
    pub fn memory(&self) -> StreamMemory {
        StreamMemory {
            stream: (std::mem::size_of::<Stream>() + self.name.read().len()) as u64,
            log: self.log.resident_bytes(),
            groups: self.groups.lock().state().resident_bytes(),
            idempotency: self.idempotency.lock().heap_bytes() as u64,
            nodes: self
                .nodes
                .lock()
                .as_ref()
                .map_or(0, |model| model.heap_bytes() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{GroupStart, Message, Store};

    #[test]
    fn memory_grows_with_the_index_and_the_pending_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stream = store.stream(b"jobs").unwrap();
        let empty = stream.memory();
        assert_eq!((empty.groups, empty.idempotency, empty.nodes), (0, 0, 0));
        for n in 0..2000 {
            stream
                .append(Message::new(vec![b'x'; 100 + n % 7]))
                .unwrap();
        }
        let filled = stream.memory();
        assert!(filled.log > empty.log, "{filled:?} {empty:?}");
        let group = stream
            .create_group(b"workers", GroupStart::Beginning, Default::default())
            .unwrap();
        let created = stream.memory().groups;
        assert!(created > 0);
        group.read(b"w1", 500).unwrap();
        let reading = stream.memory();
        assert!(reading.groups > created, "{reading:?}");
        assert_eq!(reading.total(), {
            let m = reading;
            m.stream + m.log + m.groups + m.idempotency + m.nodes
        });
    }
}
