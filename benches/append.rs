//! Append throughput of the library under each durability policy.
//!
//! `cargo bench --bench append` reports entries/s (criterion's "elements") and bytes/s for
//! 100-byte and 1 KiB bodies: one writer under `Never`, `Interval(1000)` and `Always`, and 8
//! concurrent writers under `Always`, where group commit shares each flush.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weir::{Durability, LogOptions, Message, Store, StoreOptions, Stream};

const BATCH: u64 = 1_000;

fn open(durability: Durability) -> (tempfile::TempDir, Store, Arc<Stream>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = StoreOptions {
        durability,
        log: LogOptions {
            max_segment_bytes: 256 << 20,
            ..LogOptions::default()
        },
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), options).expect("open store");
    let stream = store.stream(b"bench").expect("stream");
    (dir, store, stream)
}

fn append_from(
    writers: usize,
    stream: &Arc<Stream>,
    body: &bytes::Bytes,
    per_writer: u64,
) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..writers {
            scope.spawn(|| {
                for _ in 0..per_writer {
                    stream.append(Message::new(body.clone())).expect("append");
                }
            });
        }
    });
    start.elapsed()
}

fn bench_append(c: &mut Criterion) {
    let cases = [
        ("never", Durability::Never, 1),
        ("interval", Durability::Interval(1000), 1),
        ("always", Durability::Always, 1),
        ("always", Durability::Always, 8),
    ];
    for body_len in [100usize, 1024] {
        let mut group = c.benchmark_group(format!("append_{body_len}B"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3));
        for (policy, durability, writers) in cases {
            let body = bytes::Bytes::from(vec![b'x'; body_len]);
            group.throughput(Throughput::Elements(BATCH));
            let (_dir, store, stream) = open(durability);
            group.bench_function(BenchmarkId::new(policy, format!("{writers}w")), |b| {
                b.iter_custom(|iters| {
                    let per_writer = (iters * BATCH).div_ceil(writers as u64);
                    append_from(writers, &stream, &body, per_writer)
                });
            });
            drop(stream);
            store.close().expect("close");
        }
        group.finish();
    }
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
