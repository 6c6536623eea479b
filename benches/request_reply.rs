//! Request/response round trips and the cost of a stream's limits on appends.
//!
//! `cargo bench --bench request_reply` reports:
//! - `round_trip`: requests answered per second with 1 and 8 requester threads (each with its
//!   own reply stream) against two responder threads, under `Never` and `Always`; responders
//!   answer each request with `Delivery::reply` (`each`) or a whole read with
//!   `Delivery::reply_all` (`batch`, 8 requesters only, where there is something to batch);
//! - `append_limits`: single-entry appends per second of 100-byte bodies with no limit, with
//!   `DISCARD old` at `MAXLEN` and at `MAXBYTES` (a trim after every append), and with
//!   `DISCARD new` at a `MAXBYTES` never reached (the check before every append).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weir::{
    Delivery, Discard, Durability, Group, GroupPolicy, GroupStart, Message, Store, StoreOptions,
    StreamConfig,
};

/// Long enough never to pass: a timeout would be a bug, not a slow run.
const PATIENT: Duration = Duration::from_secs(60);

fn open(durability: Durability) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = StoreOptions {
        durability,
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), options).expect("open store");
    (dir, store)
}

/// How a responder answers the requests of one read.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Each,
    Batch,
}

/// Answers requests until `done` is set.
fn respond_until(group: &Group, consumer: &[u8], answer: Answer, done: &AtomicBool) {
    while !done.load(Ordering::Relaxed) {
        let batch = group
            .read_blocking(consumer, 8, Duration::from_millis(20))
            .expect("read requests");
        match answer {
            Answer::Each => {
                for request in &batch {
                    request.reply("answer").expect("reply");
                }
            }
            Answer::Batch => {
                let replies = batch.iter().map(|d| (d, Message::new("answer")));
                Delivery::reply_all(replies).expect("replies");
            }
        }
    }
}

fn bench_round_trip(c: &mut Criterion) {
    let mut bench = c.benchmark_group("round_trip");
    bench.sample_size(10);
    let cases = [
        (1usize, Answer::Each),
        (8, Answer::Each),
        (8, Answer::Batch),
    ];
    for durability in [Durability::Never, Durability::Always] {
        for (requesters, answer) in cases {
            let (_dir, store) = open(durability);
            let requests = store.stream(b"requests").expect("stream");
            // A work queue, as a service's request stream would be: answered requests go.
            let work_queue = StreamConfig {
                work_queue: true,
                ..StreamConfig::default()
            };
            requests.set_config(work_queue).expect("settings");
            let group = requests
                .create_group(b"service", GroupStart::End, GroupPolicy::default())
                .expect("group");
            let clients: Vec<_> = (0..requesters)
                .map(|_| store.requester().expect("requester"))
                .collect();
            let done = AtomicBool::new(false);
            bench.throughput(Throughput::Elements(requesters as u64));
            let id = BenchmarkId::new(format!("{durability:?}/{answer:?}"), requesters);
            std::thread::scope(|scope| {
                for consumer in [b"r1", b"r2"] {
                    let (group, done) = (&group, &done);
                    scope.spawn(move || respond_until(group, consumer, answer, done));
                }
                // One iteration: every requester thread sends one request and gets its reply.
                bench.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        let start = Instant::now();
                        std::thread::scope(|inner| {
                            for client in &clients {
                                let requests = &requests;
                                inner.spawn(move || {
                                    for _ in 0..iters {
                                        client
                                            .request_blocking(
                                                requests,
                                                Message::new("question"),
                                                PATIENT,
                                            )
                                            .expect("reply");
                                    }
                                });
                            }
                        });
                        start.elapsed()
                    });
                });
                done.store(true, Ordering::Relaxed);
            });
        }
    }
    bench.finish();
}

/// Entries appended between two untimed trims to empty: keeps the files small while measuring.
const CHUNK: u64 = 10_000;

fn bench_append_limits(c: &mut Criterion) {
    let mut bench = c.benchmark_group("append_limits");
    bench.sample_size(10).throughput(Throughput::Elements(1));
    let limited = |max_len, max_bytes, discard| StreamConfig {
        max_len,
        max_bytes,
        discard,
        ..StreamConfig::default()
    };
    let cases = [
        ("none", StreamConfig::default()),
        ("old_maxlen_1000", limited(Some(1000), None, Discard::Old)),
        (
            "old_maxbytes_256KiB",
            limited(None, Some(256 << 10), Discard::Old),
        ),
        (
            "new_maxbytes_unreached",
            limited(None, Some(1 << 40), Discard::New),
        ),
    ];
    for (name, config) in cases {
        let (_dir, store) = open(Durability::Never);
        let stream = store.stream(b"bench").expect("stream");
        stream.set_config(config).expect("settings");
        let body = vec![b'x'; 100];
        bench.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let chunk = left.min(CHUNK);
                    let start = Instant::now();
                    for _ in 0..chunk {
                        stream.append(Message::new(body.clone())).expect("append");
                    }
                    timed += start.elapsed();
                    stream.trim_max_len(0, false, None).expect("trim");
                    left -= chunk;
                }
                timed
            });
        });
    }
    bench.finish();
}

criterion_group!(benches, bench_round_trip, bench_append_limits);
criterion_main!(benches);
