//! Group commit under `Always`: 8 writers, each appending 100-byte entries in batches of 1, 16,
//! 64 or 256 with `append_batch`, which returns once its batch is durable.
//!
//! A writer that waits for every entry alone gets at most one entry per flush, so 8 of them
//! are bounded by 8 entries per fdatasync whatever the engine does. Producers that batch (a
//! Kafka producer's `linger.ms`, a pipelining Redis client) share each flush among all the
//! entries written meanwhile; this shows how far that carries.
//!
//! `cargo bench --bench group_commit` reports entries/s and bytes/s.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weir::{Durability, Message, Stream};

const WRITERS: usize = 8;
const BODY_LEN: usize = 100;

/// Every writer appends `batches` batches of `batch` entries; returns the time taken.
fn append_batches(stream: &Arc<Stream>, batch: usize, batches: u64) -> Duration {
    let messages: Vec<Message> = (0..batch)
        .map(|_| Message::new(vec![b'x'; BODY_LEN]))
        .collect();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..WRITERS {
            scope.spawn(|| {
                for _ in 0..batches {
                    stream.append_batch(&messages).expect("append");
                }
            });
        }
    });
    start.elapsed()
}

fn bench_group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("group_commit_100B/always/8w");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for batch in [1usize, 16, 64, 256] {
        // One criterion iteration is one batch from each writer.
        let entries = (WRITERS * batch) as u64;
        group.throughput(Throughput::ElementsAndBytes {
            elements: entries,
            bytes: entries * BODY_LEN as u64,
        });
        let (_dir, store, stream) = support::temp_store(Durability::Always);
        group.bench_function(BenchmarkId::new("batch", batch), |b| {
            b.iter_custom(|iters| append_batches(&stream, batch, iters));
        });
        drop(stream);
        store.close().expect("close");
    }
    group.finish();
}

criterion_group!(benches, bench_group_commit);
criterion_main!(benches);
