//! Consumer-group throughput and memory.
//!
//! `cargo bench --bench groups` reports read+ack throughput (entries/s) for one group with batches
//! of 1 and 100, and four groups reading the same entries, under `Never` and `Always`; then it
//! prints the heap bytes one pending entry costs, counted by a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weir::{Durability, Group, GroupPolicy, GroupStart, Message, Store, StoreOptions, Stream};

struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ENTRIES: usize = 20_000;

fn open(durability: Durability) -> (tempfile::TempDir, Store, Arc<Stream>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = StoreOptions {
        durability,
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), options).expect("open store");
    let stream = store.stream(b"bench").expect("stream");
    (dir, store, stream)
}

fn fill(stream: &Stream, count: usize) {
    let messages: Vec<Message> = (0..1000).map(|_| Message::new(vec![b'x'; 100])).collect();
    for _ in 0..count / 1000 {
        stream.append_batch(&messages).expect("append");
    }
}

/// Reads and acknowledges `count` entries through `groups`, `batch` at a time.
fn consume(groups: &[Group], batch: usize, count: usize) -> Duration {
    let start = Instant::now();
    for group in groups {
        let mut done = 0;
        while done < count {
            let deliveries = group.read(b"consumer", batch).expect("read");
            if deliveries.is_empty() {
                break;
            }
            let ids: Vec<_> = deliveries.iter().map(|d| d.id()).collect();
            group.ack(&ids).expect("ack");
            done += ids.len();
        }
    }
    start.elapsed()
}

fn bench_read_ack(c: &mut Criterion) {
    let mut bench = c.benchmark_group("read_ack");
    bench
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let cases = [
        ("never", Durability::Never, 1, 1),
        ("never", Durability::Never, 100, 1),
        ("never", Durability::Never, 100, 4),
        ("always", Durability::Always, 1, 1),
        ("always", Durability::Always, 100, 1),
    ];
    for (policy, durability, batch, group_count) in cases {
        let per_iteration = if batch == 1 && durability == Durability::Always {
            200
        } else {
            2_000
        };
        bench.throughput(Throughput::Elements((per_iteration * group_count) as u64));
        let id = BenchmarkId::new(policy, format!("batch{batch}_groups{group_count}"));
        bench.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let (_dir, store, stream) = open(durability);
                let total = per_iteration * iters as usize;
                fill(&stream, total.div_ceil(1000) * 1000);
                let groups: Vec<Group> = (0..group_count)
                    .map(|g| {
                        stream
                            .create_group(
                                format!("g{g}").as_bytes(),
                                GroupStart::Beginning,
                                GroupPolicy::default(),
                            )
                            .expect("group")
                    })
                    .collect();
                let elapsed = consume(&groups, batch, total);
                drop(groups);
                drop(stream);
                store.close().expect("close");
                elapsed
            });
        });
    }
    bench.finish();
}

fn report_pending_memory(_: &mut Criterion) {
    let (_dir, store, stream) = open(Durability::Never);
    fill(&stream, ENTRIES * 10);
    let group = stream
        .create_group(b"g", GroupStart::Beginning, GroupPolicy::default())
        .expect("group");
    let before = ALLOCATED.load(Ordering::Relaxed);
    let mut pending = 0;
    while pending < ENTRIES * 10 {
        let got = group.read(b"consumer", 1000).expect("read").len();
        if got == 0 {
            break;
        }
        pending += got;
    }
    let after = ALLOCATED.load(Ordering::Relaxed);
    println!(
        "pending entry memory: {} entries pending, {:.1} heap bytes each",
        pending,
        (after - before) as f64 / pending as f64
    );
    drop(group);
    drop(stream);
    store.close().expect("close");
}

criterion_group!(benches, bench_read_ack, report_pending_memory);
criterion_main!(benches);
