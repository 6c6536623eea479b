//! Opening a store: after a clean shutdown, and after a crash with an unflushed tail.
//!
//! `cargo bench --bench recovery` builds one store of 1 KiB entries, `WEIR_BENCH_STORE_MIB`
//! MiB in all (256 by default; set 4096 to measure a 4 GiB store), then times
//! - `clean`: open after `close()`, which trusts the checkpoint and scans nothing;
//! - `crash_tail_NMiB`: open after the store was dropped without `close()` (as a crash leaves
//!   it) with N MiB appended since the last checkpoint; recovery scans that tail only.
//!
//! Throughput is the store's size per open, so a figure that does not grow with the store shows
//! up as rising bytes/s.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weir::{Durability, Store};

const BODY_LEN: usize = 1024;
const DEFAULT_STORE_MIB: u64 = 256;

fn store_mib() -> u64 {
    match std::env::var("WEIR_BENCH_STORE_MIB") {
        Ok(text) => text
            .parse()
            .expect("WEIR_BENCH_STORE_MIB must be a whole number of MiB"),
        Err(_) => DEFAULT_STORE_MIB,
    }
}

fn entries_for(mib: u64) -> usize {
    ((mib << 20) / BODY_LEN as u64) as usize
}

/// A closed store of `mib` MiB of entries.
fn build(mib: u64) -> tempfile::TempDir {
    let (dir, store, stream) = support::temp_store(Durability::Never);
    support::fill(&stream, entries_for(mib), BODY_LEN);
    drop(stream);
    store.close().expect("close");
    dir
}

/// Opens the store and reports how long that took and what recovery scanned.
fn timed_open(dir: &Path) -> (Duration, Store, u64) {
    let start = Instant::now();
    let (store, stream) = support::open_in(dir, Durability::Never);
    let elapsed = start.elapsed();
    drop(stream);
    let scanned = store
        .recovery()
        .streams
        .iter()
        .map(|(_, report)| report.scanned_bytes)
        .sum();
    (elapsed, store, scanned)
}

fn bench_recovery(c: &mut Criterion) {
    let mib = store_mib();
    let dir = build(mib);
    let mut group = c.benchmark_group(format!("open_{mib}MiB"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Bytes(mib << 20));

    group.bench_function(BenchmarkId::new("after", "clean"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (elapsed, store, scanned) = timed_open(dir.path());
                assert_eq!(scanned, 0, "a clean open scans nothing");
                total += elapsed;
                store.close().expect("close");
            }
            total
        });
    });

    for tail_mib in [1u64, 16] {
        let tail = entries_for(tail_mib);
        let id = BenchmarkId::new("after", format!("crash_tail_{tail_mib}MiB"));
        let mut scanned_most = 0;
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (_, store, _) = timed_open(dir.path());
                    support::fill(
                        &store.stream(support::STREAM).expect("stream"),
                        tail,
                        BODY_LEN,
                    );
                    drop(store);
                    let (elapsed, store, scanned) = timed_open(dir.path());
                    scanned_most = scanned_most.max(scanned);
                    total += elapsed;
                    store.close().expect("close");
                }
                total
            });
        });
        println!("crash with a {tail_mib} MiB tail: recovery scanned at most {scanned_most} bytes");
    }
    group.finish();
}

criterion_group!(benches, bench_recovery);
criterion_main!(benches);
