//! Append throughput of the library under each durability policy.
//!
//! `cargo bench --bench append` reports entries/s (criterion's "elements") and bytes/s for
//! 100-byte and 1 KiB bodies: 1, 8 and 64 concurrent writers under `Never`, `Interval(1000)`
//! and `Always`, where group commit shares each flush among the writers waiting for it.
//! `append_batch_*` has one writer hand over a thousand entries per `append_batch` call: the
//! per-entry cost without the per-call one (and, under `Always`, one flush per thousand).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weir::{Durability, Message, Stream};

const BATCH: u64 = 1_000;

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
    let policies = [
        ("never", Durability::Never),
        ("interval", Durability::Interval(1000)),
        ("always", Durability::Always),
    ];
    for body_len in [100usize, 1024] {
        let mut group = c.benchmark_group(format!("append_{body_len}B"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3));
        for (policy, durability) in policies {
            for writers in [1usize, 8, 64] {
                let body = bytes::Bytes::from(vec![b'x'; body_len]);
                group.throughput(Throughput::ElementsAndBytes {
                    elements: BATCH,
                    bytes: BATCH * body_len as u64,
                });
                let (_dir, store, stream) = support::temp_store(durability);
                group.bench_function(BenchmarkId::new(policy, format!("{writers}w")), |b| {
                    b.iter_custom(|iters| {
                        let per_writer = (iters * BATCH).div_ceil(writers as u64);
                        append_from(writers, &stream, &body, per_writer)
                    });
                });
                drop(stream);
                store.close().expect("close");
            }
        }
        group.finish();
    }
}

fn bench_append_batch(c: &mut Criterion) {
    let policies = [
        ("never", Durability::Never),
        ("interval", Durability::Interval(1000)),
        ("always", Durability::Always),
    ];
    for body_len in [100usize, 1024] {
        let mut group = c.benchmark_group(format!("append_batch_{body_len}B"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3));
        group.throughput(Throughput::ElementsAndBytes {
            elements: BATCH,
            bytes: BATCH * body_len as u64,
        });
        let batch: Vec<Message> = (0..BATCH)
            .map(|_| Message::new(vec![b'x'; body_len]))
            .collect();
        for (policy, durability) in policies {
            let (_dir, store, stream) = support::temp_store(durability);
            group.bench_function(BenchmarkId::new(policy, "1w"), |b| {
                b.iter(|| stream.append_batch(&batch).expect("append"));
            });
            drop(stream);
            store.close().expect("close");
        }
        group.finish();
    }
}

criterion_group!(benches, bench_append, bench_append_batch);
criterion_main!(benches);
