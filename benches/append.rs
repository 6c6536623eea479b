//! Append throughput of the library under each durability policy.
//!
//! `cargo bench --bench append` reports entries/s (criterion's "elements") and bytes/s for
//! 100-byte and 1 KiB bodies: 1, 8 and 64 concurrent writers under `Never`, `Interval(1000)`
//! and `Always`, where group commit shares each flush among the writers waiting for it.
//! `append_batch_*` has one writer hand over a thousand entries per `append_batch` call: the
//! per-entry cost without the per-call one (and, under `Always`, one flush per thousand).
//! `segment_pages` measures what the kernel charges for the first write to each 4 KiB page of a
//! new segment, without and after [`Segment::prefault`]: the ceiling for appends whose pages
//! the prefault thread cannot fault in fast enough.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weir::segment::{Segment, SegmentHeader};
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

const PAGE: usize = 4096;
/// Pages of each segment the page benchmark writes to.
const SEGMENT_PAGES: usize = 16 << 10;

/// Writes one byte to each page of a new 64 MiB segment, `prefault`ing it first (untimed) or not.
fn first_writes(dir: &std::path::Path, serial: u64, prefault: bool) -> Duration {
    let header = SegmentHeader {
        base_offset: serial,
        file_len: (SEGMENT_PAGES * PAGE) as u64,
        created_ms: 0,
    };
    let path = dir.join(format!("{serial}.seg"));
    let (segment, mut appender) = Segment::create(&path, header).expect("create segment");
    if prefault {
        segment.prefault(0, segment.capacity());
    }
    // The first page holds the header: start at the second, a page at a time.
    appender
        .append(&segment, PAGE - weir::segment::HEADER_LEN, |_| {
            Ok::<(), ()>(())
        })
        .expect("append")
        .expect("fill");
    let start = Instant::now();
    for _ in 1..SEGMENT_PAGES {
        appender
            .append(&segment, PAGE, |page| {
                page[0] = 1;
                Ok::<(), ()>(())
            })
            .expect("append")
            .expect("fill");
    }
    let elapsed = start.elapsed();
    drop(segment);
    std::fs::remove_file(&path).expect("remove segment");
    elapsed
}

fn bench_segment_pages(c: &mut Criterion) {
    let mut group = c.benchmark_group("segment_pages");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::ElementsAndBytes {
        elements: (SEGMENT_PAGES - 1) as u64,
        bytes: ((SEGMENT_PAGES - 1) * PAGE) as u64,
    });
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut serial = 0;
    for (name, prefault) in [("first_write", false), ("after_prefault", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        serial += 1;
                        first_writes(dir.path(), serial, prefault)
                    })
                    .sum()
            });
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_append,
    bench_append_batch,
    bench_segment_pages
);
criterion_main!(benches);
