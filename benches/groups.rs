//! Consumer-group throughput and memory.
//!
//! `cargo bench --bench groups` reports read+ack throughput (entries/s and bytes/s) for one
//! group with batches of 1 and 100, and four groups reading the same entries, under `Never` and
//! `Always`; claim and auto-claim throughput over a pending list of `LARGE_PEL` entries; then it
//! prints the heap bytes one pending entry costs, counted by a counting allocator.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weir::group::{AutoClaim, ClaimOptions};
use weir::{Durability, Group, GroupPolicy, GroupStart, Stream, StreamId};

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

/// Pending entries in the claim benchmarks' pending list.
const LARGE_PEL: usize = 200_000;
const CLAIM_BATCH: usize = 100;

const BODY_LEN: u64 = 100;

fn fill(stream: &Stream, count: usize) {
    support::fill(stream, count, BODY_LEN as usize);
}

/// Throughput of `count` entries of `BODY_LEN` bytes.
fn entries(count: u64) -> Throughput {
    Throughput::ElementsAndBytes {
        elements: count,
        bytes: count * BODY_LEN,
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
        ("always", Durability::Always, 100, 4),
    ];
    for (policy, durability, batch, group_count) in cases {
        let per_iteration = if batch == 1 && durability == Durability::Always {
            200
        } else {
            2_000
        };
        bench.throughput(entries((per_iteration * group_count) as u64));
        let id = BenchmarkId::new(policy, format!("batch{batch}_groups{group_count}"));
        bench.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let (_dir, store, stream) = support::temp_store(durability);
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

/// A group whose pending list holds `LARGE_PEL` entries, all owned by consumer `a`.
fn large_pel(stream: &Arc<Stream>) -> Group {
    fill(stream, LARGE_PEL);
    let group = stream
        .create_group(b"g", GroupStart::Beginning, GroupPolicy::default())
        .expect("group");
    while !group.read(b"a", 10_000).expect("read").is_empty() {}
    group
}

fn bench_claim(c: &mut Criterion) {
    let (_dir, store, stream) = support::temp_store(Durability::Never);
    let group = large_pel(&stream);
    let ids: Vec<StreamId> = stream
        .range(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            LARGE_PEL,
        )
        .expect("range")
        .iter()
        .map(|entry| entry.id)
        .collect();
    let mut bench = c.benchmark_group(format!("claim_pel{LARGE_PEL}"));
    bench
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    bench.throughput(entries(CLAIM_BATCH as u64));

    let consumers: [&[u8]; 2] = [b"a", b"b"];
    let mut turn = 0usize;
    bench.bench_function(BenchmarkId::new("xclaim", CLAIM_BATCH), |b| {
        b.iter(|| {
            let chunk = ids
                .chunks(CLAIM_BATCH)
                .nth(turn % (LARGE_PEL / CLAIM_BATCH));
            let consumer = consumers[(turn / (LARGE_PEL / CLAIM_BATCH)) % 2];
            turn += 1;
            let claimed = group
                .claim(consumer, chunk.expect("chunk"), ClaimOptions::default())
                .expect("claim");
            claimed.deliveries.len()
        });
    });

    let mut cursor = StreamId::MIN;
    let mut lap = 0usize;
    bench.bench_function(BenchmarkId::new("xautoclaim", CLAIM_BATCH), |b| {
        b.iter(|| {
            let request = AutoClaim {
                count: CLAIM_BATCH,
                ..AutoClaim::new(0, cursor)
            };
            let claimed = group
                .auto_claim(consumers[lap % 2], request)
                .expect("auto-claim");
            cursor = claimed.next;
            if cursor == StreamId::MIN {
                lap += 1;
            }
            claimed.deliveries.len()
        });
    });
    bench.finish();
    drop(group);
    drop(stream);
    store.close().expect("close");
}

fn report_pending_memory(_: &mut Criterion) {
    let (_dir, store, stream) = support::temp_store(Durability::Never);
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

criterion_group!(benches, bench_read_ack, bench_claim, report_pending_memory);
criterion_main!(benches);
