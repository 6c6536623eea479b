//! Load-leveling through the library: a stream's length limit with `DISCARD old` or `DISCARD
//! new`, each group's backlog on a controlled clock, and the pending cap with blocked readers.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use weir::group::GroupPolicy;
use weir::{
    Backlog, Discard, Durability, GroupStart, ManualClock, Message, SharedClock, Store, StoreError,
    StoreOptions, Stream, StreamConfig,
};

const START_MS: u64 = 1_700_000_000_000;

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Store {
    let options = StoreOptions {
        durability: Durability::Never,
        clock: Arc::clone(clock) as SharedClock,
        ..StoreOptions::default()
    };
    Store::open_with(dir, options).unwrap()
}

fn limited(stream: &Stream, max_len: u64, discard: Discard, work_queue: bool) {
    stream
        .set_config(StreamConfig {
            max_len: Some(max_len),
            discard,
            work_queue,
            ..StreamConfig::default()
        })
        .unwrap();
}

fn bodies(stream: &Stream) -> Vec<Vec<u8>> {
    stream
        .range(Bound::Unbounded, Bound::Unbounded, 100)
        .unwrap()
        .iter()
        .map(|entry| entry.body().to_vec())
        .collect()
}

#[test]
fn discard_new_refuses_appends_until_consumers_catch_up() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock);
    let jobs = store.stream(b"jobs").unwrap();
    limited(&jobs, 3, Discard::New, true);
    let workers = jobs
        .create_group(b"workers", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    for body in ["a", "b", "c"] {
        jobs.append(Message::new(body)).unwrap();
    }
    let last_id = jobs.last_id();

    let error = jobs.append(Message::new("d")).unwrap_err();
    let StoreError::StreamFull {
        stream,
        len,
        max_len,
    } = &error
    else {
        panic!("expected StreamFull, got {error}");
    };
    assert_eq!((stream.as_str(), *len, *max_len), ("jobs", 3, 3));
    assert!(error.to_string().contains("MAXLEN 3 with DISCARD new"));
    // A refused append (or batch) changes nothing, idempotent ones included.
    assert!(jobs.append_batch(&[Message::new("d")]).is_err());
    assert!(
        jobs.append_idempotent(Message::new("d"), b"p", b"1")
            .is_err()
    );
    assert_eq!((jobs.len(), jobs.last_id()), (3, last_id));
    assert_eq!(jobs.log().entries_added(), 3);
    assert_eq!(jobs.idempotency_keys(), 0);

    // Consumers catch up: acknowledged entries leave the work queue, and there is room again.
    let taken = workers.read(b"w1", 2).unwrap();
    assert!(jobs.append(Message::new("d")).is_err());
    for delivery in &taken {
        delivery.ack().unwrap();
    }
    assert_eq!(jobs.len(), 1);
    // Room for two: a batch of three is refused whole, a batch of two goes in.
    let three = [Message::new("d"), Message::new("e"), Message::new("f")];
    assert!(matches!(
        jobs.append_batch(&three),
        Err(StoreError::StreamFull { len: 1, .. })
    ));
    jobs.append_batch(&three[..2]).unwrap();
    assert_eq!(bodies(&jobs), [b"c", b"d", b"e"]);
    assert!(jobs.append(Message::new("f")).is_err());

    // The policy is part of the stream's settings and survives a restart.
    drop((jobs, workers));
    store.close().unwrap();
    let store = open(dir.path(), &clock);
    let jobs = store.stream(b"jobs").unwrap();
    assert_eq!(
        (jobs.config().max_len, jobs.config().discard),
        (Some(3), Discard::New)
    );
    assert!(jobs.append(Message::new("f")).is_err());
    // Raising the limit lets producers in again.
    limited(&jobs, 4, Discard::New, true);
    jobs.append(Message::new("f")).unwrap();
}

#[test]
fn discard_new_holds_the_limit_under_concurrent_producers() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock);
    let stream = store.stream(b"s").unwrap();
    limited(&stream, 100, Discard::New, false);
    let accepted = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..6 {
            let (stream, accepted, refused) = (&stream, &accepted, &refused);
            scope.spawn(move || {
                for i in 0..40 {
                    match stream.append(Message::new(format!("{t}-{i}"))) {
                        Ok(_) => accepted.fetch_add(1, Ordering::SeqCst),
                        Err(StoreError::StreamFull { .. }) => {
                            refused.fetch_add(1, Ordering::SeqCst)
                        }
                        Err(error) => panic!("{error}"),
                    };
                }
            });
        }
    });
    assert_eq!(accepted.load(Ordering::SeqCst), 100);
    assert_eq!(refused.load(Ordering::SeqCst), 140);
    assert_eq!(stream.len(), 100);
}

#[test]
fn discard_old_drops_the_oldest_entries() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock);
    let stream = store.stream(b"s").unwrap();
    for body in ["a", "b", "c", "d"] {
        stream.append(Message::new(body)).unwrap();
    }
    // Setting the limit applies it at once, then after every append.
    limited(&stream, 3, Discard::Old, false);
    assert_eq!(bodies(&stream), [b"b", b"c", b"d"]);
    stream.append(Message::new("e")).unwrap();
    stream
        .append_batch(&[Message::new("f"), Message::new("g")])
        .unwrap();
    assert_eq!(bodies(&stream), [b"e", b"f", b"g"]);
    assert_eq!(stream.log().entries_added(), 7);
}

#[test]
fn unusable_limits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let stream = store.stream(b"s").unwrap();
    for config in [
        StreamConfig {
            max_len: Some(0),
            ..StreamConfig::default()
        },
        StreamConfig {
            expire_idle_ms: Some(0),
            ..StreamConfig::default()
        },
    ] {
        assert!(matches!(
            stream.set_config(config),
            Err(StoreError::InvalidConfig(_))
        ));
    }
    assert_eq!(stream.config(), StreamConfig::default());
}

#[test]
fn backlog_reports_lag_and_ages_on_the_store_clock() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock);
    let stream = store.stream(b"orders").unwrap();
    let group = stream
        .create_group(b"billing", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    let backlog = |lag, pending, undelivered, oldest_pending| Backlog {
        group: b"billing".to_vec(),
        lag: Some(lag),
        pending,
        oldest_undelivered_ms: undelivered,
        oldest_pending_ms: oldest_pending,
    };
    assert_eq!(group.backlog().unwrap(), backlog(0, 0, None, None));

    stream.append(Message::new("first")).unwrap(); // at 0
    clock.advance_ms(1_000);
    stream.append(Message::new("second")).unwrap(); // at 1 000
    clock.advance_ms(500);
    stream.append(Message::new("third")).unwrap(); // at 1 500
    assert_eq!(group.backlog().unwrap(), backlog(3, 0, Some(1_500), None));

    let first = group.read(b"c1", 1).unwrap().remove(0); // delivered at 1 500
    clock.advance_ms(200);
    assert_eq!(
        group.backlog().unwrap(),
        backlog(2, 1, Some(700), Some(200))
    );
    let second = group.read(b"c2", 1).unwrap().remove(0); // delivered at 1 700
    clock.advance_ms(100);
    assert_eq!(
        group.backlog().unwrap(),
        backlog(1, 2, Some(300), Some(300))
    );
    first.ack().unwrap();
    assert_eq!(
        group.backlog().unwrap(),
        backlog(1, 1, Some(300), Some(100))
    );
    second.ack().unwrap();
    group.read(b"c1", 10).unwrap(); // delivered at 1 800
    clock.advance_ms(50);
    assert_eq!(group.backlog().unwrap(), backlog(0, 1, None, Some(50)));

    // Every group of the stream, in name order.
    stream
        .create_group(b"audit", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    let all = stream.backlog();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (
            all[0].group.as_slice(),
            all[0].lag,
            all[0].oldest_undelivered_ms
        ),
        (b"audit".as_slice(), Some(3), Some(1_850))
    );
    assert_eq!(all[1], group.backlog().unwrap());
}

#[test]
fn the_pending_cap_holds_with_blocked_readers_woken_by_acks() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock);
    let stream = store.stream(b"s").unwrap();
    let policy = GroupPolicy {
        max_ack_pending: Some(4),
        ..GroupPolicy::default()
    };
    let group = stream
        .create_group(b"g", GroupStart::Beginning, policy)
        .unwrap();
    for i in 0..60 {
        stream.append(Message::new(format!("{i}"))).unwrap();
    }
    let held = Mutex::new(0usize);
    let most = AtomicUsize::new(0);
    let received = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for c in 0..5 {
            let (group, held, most, received) = (&group, &held, &most, &received);
            scope.spawn(move || {
                let consumer = format!("c{c}");
                while received.lock().len() < 60 {
                    // Blocked readers wait for an ack to make room: no polling here.
                    let got = group
                        .read_blocking(consumer.as_bytes(), 3, Duration::from_millis(100))
                        .unwrap();
                    if got.is_empty() {
                        continue;
                    }
                    {
                        let mut held = held.lock();
                        *held += got.len();
                        most.fetch_max(*held, Ordering::SeqCst);
                    }
                    assert!(group.backlog().unwrap().pending <= 4);
                    received.lock().extend(got.iter().map(|d| d.id()));
                    *held.lock() -= got.len();
                    for delivery in &got {
                        assert!(delivery.ack().unwrap());
                    }
                }
            });
        }
    });
    let most = most.load(Ordering::SeqCst);
    assert!((1..=4).contains(&most), "{most} pending at once");
    let mut received = received.into_inner();
    received.sort();
    received.dedup();
    assert_eq!(received.len(), 60);
}
