//! Read throughput of the library: single entries by offset and batches by ID range.
//!
//! `cargo bench --bench read` reports entries/s and bytes/s for 100-byte and 1 KiB bodies over
//! a stream of `ENTRIES` entries, read straight from the memory-mapped segments.

mod support;

use std::ops::Bound;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weir::{Durability, StreamId};

const ENTRIES: usize = 200_000;
const RANGE_BATCH: usize = 100;

fn bench_read(c: &mut Criterion) {
    for body_len in [100usize, 1024] {
        let (_dir, store, stream) = support::temp_store(Durability::Never);
        support::fill(&stream, ENTRIES, body_len);
        let mut group = c.benchmark_group(format!("read_{body_len}B"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3));

        group.throughput(Throughput::ElementsAndBytes {
            elements: 1,
            bytes: body_len as u64,
        });
        let mut offset = 0u64;
        group.bench_function(BenchmarkId::new("by_offset", "sequential"), |b| {
            b.iter(|| {
                let entry = stream.read(offset).expect("read").expect("live entry");
                offset = (offset + 1) % ENTRIES as u64;
                entry.body().len()
            });
        });

        group.throughput(Throughput::ElementsAndBytes {
            elements: RANGE_BATCH as u64,
            bytes: (RANGE_BATCH * body_len) as u64,
        });
        let mut after = StreamId::MIN;
        group.bench_function(BenchmarkId::new("by_id_range", RANGE_BATCH), |b| {
            b.iter(|| {
                let mut entries = stream
                    .range(Bound::Excluded(after), Bound::Unbounded, RANGE_BATCH)
                    .expect("range");
                if entries.len() < RANGE_BATCH {
                    entries = stream
                        .range(Bound::Unbounded, Bound::Unbounded, RANGE_BATCH)
                        .expect("range");
                }
                after = entries.last().expect("entries").id;
                entries.iter().map(|e| e.body().len()).sum::<usize>()
            });
        });
        group.finish();
        drop(stream);
        store.close().expect("close");
    }
}

criterion_group!(benches, bench_read);
criterion_main!(benches);
