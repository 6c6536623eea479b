//! Setup shared by the library benchmarks.
// Each benchmark compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use weir::{Durability, LogOptions, Message, Store, StoreOptions, Stream};

/// The benchmarks' stream name.
pub const STREAM: &[u8] = b"bench";

/// Opens the store in `dir` with 256 MiB segments, so rolls stay rare and every figure is about
/// steady-state appends and reads.
pub fn open_in(dir: &Path, durability: Durability) -> (Store, Arc<Stream>) {
    let options = StoreOptions {
        durability,
        log: LogOptions {
            max_segment_bytes: 256 << 20,
            ..LogOptions::default()
        },
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir, options).expect("open store");
    let stream = store.stream(STREAM).expect("stream");
    (store, stream)
}

/// A new store in a temporary directory.
pub fn temp_store(durability: Durability) -> (tempfile::TempDir, Store, Arc<Stream>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (store, stream) = open_in(dir.path(), durability);
    (dir, store, stream)
}

/// Appends `count` entries with `body_len`-byte bodies, a thousand per batch.
pub fn fill(stream: &Stream, count: usize, body_len: usize) {
    let batch: Vec<Message> = (0..1000)
        .map(|_| Message::new(vec![b'x'; body_len]))
        .collect();
    let mut left = count;
    while left > 0 {
        let n = left.min(batch.len());
        stream.append_batch(&batch[..n]).expect("append");
        left -= n;
    }
}
