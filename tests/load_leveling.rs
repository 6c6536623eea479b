//! Load-leveling through the library: a stream's length and size limits with `DISCARD old` or
//! `DISCARD new`, each group's backlog on a controlled clock, and the pending cap with blocked
//! readers.

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

/// Six producers append 40 equal-sized entries each at the same time; returns how many were
/// accepted and how many were refused with an error that `is_refusal` recognises.
fn race_producers(
    stream: &Stream,
    is_refusal: impl Fn(&StoreError) -> bool + Sync,
) -> (usize, usize) {
    let accepted = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..6 {
            let (accepted, refused, is_refusal) = (&accepted, &refused, &is_refusal);
            scope.spawn(move || {
                for i in 0..40 {
                    match stream.append(Message::new(format!("{t}-{i:02}"))) {
                        Ok(_) => accepted.fetch_add(1, Ordering::SeqCst),
                        Err(error) if is_refusal(&error) => refused.fetch_add(1, Ordering::SeqCst),
                        Err(error) => panic!("{error}"),
                    };
                }
            });
        }
    });
    (accepted.into_inner(), refused.into_inner())
}

#[test]
fn discard_new_holds_the_limit_under_concurrent_producers() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock);
    let stream = store.stream(b"s").unwrap();
    limited(&stream, 100, Discard::New, false);
    let refused = |error: &StoreError| matches!(error, StoreError::StreamFull { .. });
    assert_eq!(race_producers(&stream, refused), (100, 140));
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
            max_bytes: Some(0),
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
        dead_letter_refused: None,
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

fn size_limited(stream: &Stream, max_bytes: u64, discard: Discard, work_queue: bool) {
    stream
        .set_config(StreamConfig {
            max_bytes: Some(max_bytes),
            discard,
            work_queue,
            ..StreamConfig::default()
        })
        .unwrap();
}

/// Bytes one entry with this body stores, measured on a scratch stream.
fn stored_size(store: &Store, body: &str) -> u64 {
    let scratch = store.stream(b"scratch").unwrap();
    scratch.append(Message::new(body.to_owned())).unwrap();
    let size = scratch.stored_bytes().unwrap();
    store.delete_stream(b"scratch").unwrap();
    size
}

#[test]
fn discard_new_refuses_appends_past_the_size_limit_until_consumers_catch_up() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock);
    let each = stored_size(&store, "job-0");
    let jobs = store.stream(b"jobs").unwrap();
    size_limited(&jobs, 3 * each, Discard::New, true);
    let workers = jobs
        .create_group(b"workers", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    for i in 0..3 {
        jobs.append(Message::new(format!("job-{i}"))).unwrap();
    }
    assert_eq!(jobs.stored_bytes().unwrap(), 3 * each);
    let (last_id, added) = (jobs.last_id(), jobs.log().entries_added());

    let error = jobs.append(Message::new("job-3")).unwrap_err();
    let StoreError::StreamFullBytes {
        stream,
        stored,
        adding,
        max_bytes,
    } = &error
    else {
        panic!("expected StreamFullBytes, got {error}");
    };
    assert_eq!(
        (stream.as_str(), *stored, *adding, *max_bytes),
        ("jobs", 3 * each, each, 3 * each)
    );
    assert!(
        error
            .to_string()
            .contains(&format!("MAXBYTES {} with DISCARD new", 3 * each))
    );
    // A refused append changes nothing: no entry, no ID, no idempotency key, no bytes.
    assert!(
        jobs.append_idempotent(Message::new("job-3"), b"p", b"1")
            .is_err()
    );
    assert!(jobs.append_batch(&[Message::new("job-3")]).is_err());
    assert_eq!((jobs.len(), jobs.last_id()), (3, last_id));
    assert_eq!(jobs.log().entries_added(), added);
    assert_eq!(jobs.idempotency_keys(), 0);
    assert_eq!(jobs.stored_bytes().unwrap(), 3 * each);

    // An acknowledged entry leaves the work queue and frees its bytes.
    let taken = workers.read(b"w1", 1).unwrap();
    taken[0].ack().unwrap();
    assert_eq!(jobs.stored_bytes().unwrap(), 2 * each);
    jobs.append(Message::new("job-3")).unwrap();
    assert!(jobs.append(Message::new("job-4")).is_err());

    // The limit is a stream setting: it survives a restart.
    drop((jobs, workers));
    store.close().unwrap();
    let store = open(dir.path(), &clock);
    let jobs = store.stream(b"jobs").unwrap();
    assert_eq!(jobs.config().max_bytes, Some(3 * each));
    assert!(matches!(
        jobs.append(Message::new("job-4")),
        Err(StoreError::StreamFullBytes { .. })
    ));
}

#[test]
fn the_first_limit_reached_refuses() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock);
    let small = stored_size(&store, "s");
    let stream = store.stream(b"s").unwrap();
    stream
        .set_config(StreamConfig {
            max_len: Some(3),
            max_bytes: Some(10 * small),
            discard: Discard::New,
            ..StreamConfig::default()
        })
        .unwrap();
    stream.append(Message::new("s")).unwrap();
    stream.append(Message::new("s")).unwrap();
    // Two small entries and one large one: the bytes run out before the count.
    let large = "x".repeat(9 * small as usize);
    assert!(matches!(
        stream.append(Message::new(large)),
        Err(StoreError::StreamFullBytes { .. })
    ));
    stream.append(Message::new("s")).unwrap();
    assert!(matches!(
        stream.append(Message::new("s")),
        Err(StoreError::StreamFull { len: 3, .. })
    ));
}

#[test]
fn an_append_larger_than_the_size_limit_is_refused_under_both_policies() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock);
    let stream = store.stream(b"s").unwrap();
    for discard in [Discard::Old, Discard::New] {
        size_limited(&stream, 256, discard, false);
        stream.append(Message::new("kept")).unwrap();
        let before = (
            stream.len(),
            stream.last_id(),
            stream.stored_bytes().unwrap(),
        );
        let error = stream.append(Message::new("x".repeat(300))).unwrap_err();
        assert!(
            matches!(error, StoreError::LargerThanStream { max_bytes: 256, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("MAXBYTES 256"));
        let batch = [Message::new("y".repeat(100)), Message::new("z".repeat(100))];
        assert!(stream.append_batch(&batch).is_err());
        assert_eq!(
            (
                stream.len(),
                stream.last_id(),
                stream.stored_bytes().unwrap()
            ),
            before
        );
    }
}

#[test]
fn discard_old_drops_the_oldest_entries_past_the_size_limit() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock);
    let each = stored_size(&store, "a");
    let stream = store.stream(b"s").unwrap();
    for body in ["a", "b", "c", "d"] {
        stream.append(Message::new(body)).unwrap();
    }
    // Setting the limit applies it at once, then after every append.
    size_limited(&stream, 3 * each, Discard::Old, false);
    assert_eq!(bodies(&stream), [b"b", b"c", b"d"]);
    stream.append(Message::new("e")).unwrap();
    assert_eq!(bodies(&stream), [b"c", b"d", b"e"]);
    // A larger entry makes room for itself by dropping as many old ones as it needs.
    // Its record stores more than one small entry and at most two.
    let large = "L".repeat(each as usize);
    stream.append(Message::new(large.clone())).unwrap();
    assert_eq!(bodies(&stream), [b"e".to_vec(), large.into_bytes()]);
    assert!(stream.stored_bytes().unwrap() <= 3 * each);
    assert_eq!(stream.log().entries_added(), 6);
}

#[test]
fn discard_new_holds_the_size_limit_under_concurrent_producers() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock);
    // Every body has the same length, so exactly 100 entries fit.
    let each = stored_size(&store, "0-00");
    let stream = store.stream(b"s").unwrap();
    size_limited(&stream, 100 * each, Discard::New, false);
    let refused = |error: &StoreError| matches!(error, StoreError::StreamFullBytes { .. });
    assert_eq!(race_producers(&stream, refused), (100, 140));
    assert_eq!(stream.len(), 100);
    assert_eq!(stream.stored_bytes().unwrap(), 100 * each);
}
