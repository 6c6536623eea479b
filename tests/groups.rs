//! Consumer-group tests through the public API: fan-out to groups and competition inside one,
//! acknowledgement deadlines, negative acknowledgements, the delivery limit and dead letters,
//! crash and damage recovery of the group journal, clamping to a log that lost entries, blocking
//! and async reads, the cap on unacknowledged entries, claims and re-reads, compaction and
//! policy changes.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod journal_support;

use parking_lot::Mutex;
use weir::group::{AutoClaim, ClaimOptions, ClampedGroup, PendingQuery};
use weir::{
    Clock, Delivery, Discard, Durability, Group, GroupPolicy, GroupRecovery, GroupStart,
    LogOptions, ManualClock, Message, PendingDelivery, SharedClock, Store, StoreOptions, Stream,
    StreamConfig, StreamId,
};

mod rng;
use rng::Rng;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const SEGMENT_HEADER: usize = 64;

fn tiny() -> LogOptions {
    LogOptions {
        max_segment_bytes: 64 * 1024,
        initial_segment_bytes: 16 * 1024,
        index_interval_bytes: 512,
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(1_700_000_000_000))
}

fn options(clock: &Arc<ManualClock>, durability: Durability) -> StoreOptions {
    StoreOptions {
        durability,
        log: tiny(),
        clock: Arc::clone(clock) as SharedClock,
        ..StoreOptions::default()
    }
}

fn open(dir: &Path, clock: &Arc<ManualClock>, durability: Durability) -> Store {
    Store::open_with(dir, options(clock, durability)).expect("open store")
}

fn wait_policy(ack_wait_ms: u64) -> GroupPolicy {
    GroupPolicy {
        ack_wait_ms: Some(ack_wait_ms),
        ..GroupPolicy::default()
    }
}

/// One row of the PEL: ID, owner, delivery count.
type Row = (StreamId, Vec<u8>, u32);

fn full_range() -> PendingQuery<'static> {
    PendingQuery {
        start: StreamId::MIN,
        end: StreamId::MAX,
        count: usize::MAX,
        consumer: None,
        min_idle_ms: None,
    }
}

/// The whole PEL of a group, in ID order.
fn pel(stream: &Stream, group: &[u8]) -> Vec<Row> {
    stream.inspect_groups(|state, _| {
        state
            .pending_range(group, &full_range(), 0)
            .expect("pending range")
            .iter()
            .map(|row| (row.id, row.consumer.to_vec(), row.deliveries))
            .collect()
    })
}

/// The PEL as a map from ID to owner and count.
fn pel_map(stream: &Stream, group: &[u8]) -> BTreeMap<StreamId, (Vec<u8>, u32)> {
    pel(stream, group)
        .into_iter()
        .map(|(id, owner, count)| (id, (owner, count)))
        .collect()
}

/// What `XINFO GROUPS` says about a group, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Info {
    consumers: usize,
    pending: usize,
    last_delivered: StreamId,
    entries_read: Option<u64>,
    lag: Option<u64>,
    exhausted: usize,
}

fn info(stream: &Stream, group: &[u8]) -> Info {
    stream.inspect_groups(|state, log| {
        let info = state.group_info(log, group).expect("group info");
        Info {
            consumers: info.consumers,
            pending: info.pending,
            last_delivered: info.last_delivered,
            entries_read: info.entries_read,
            lag: info.lag,
            exhausted: info.exhausted,
        }
    })
}

/// Everything the queries show about a group at `now_ms`: PEL rows with idle times, group
/// information, and each consumer's counts and times.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    rows: Vec<(StreamId, Vec<u8>, u32, u64)>,
    info: Info,
    consumers: Vec<(Vec<u8>, usize, u64, Option<u64>)>,
}

fn observe(stream: &Stream, group: &[u8], now_ms: u64) -> Observed {
    let (rows, consumers) = stream.inspect_groups(|state, _| {
        let rows = state
            .pending_range(group, &full_range(), now_ms)
            .expect("pending range")
            .iter()
            .map(|row| (row.id, row.consumer.to_vec(), row.deliveries, row.idle_ms))
            .collect();
        let consumers = state
            .consumers_info(group, now_ms)
            .expect("consumers")
            .iter()
            .map(|c| (c.name.to_vec(), c.pending, c.seen_ms, c.active_ms))
            .collect();
        (rows, consumers)
    });
    Observed {
        rows,
        info: info(stream, group),
        consumers,
    }
}

fn group_recovery(store: &Store, stream: &[u8]) -> GroupRecovery {
    store
        .recovery()
        .groups
        .iter()
        .find(|(name, _)| name == stream)
        .unwrap_or_else(|| panic!("no group recovery for {}", String::from_utf8_lossy(stream)))
        .1
        .clone()
}

fn ids_of(deliveries: &[Delivery]) -> Vec<StreamId> {
    deliveries.iter().map(Delivery::id).collect()
}

fn append_n(stream: &Stream, count: usize, tag: &str) -> Vec<StreamId> {
    (0..count)
        .map(|i| {
            stream
                .append(Message::new(format!("{tag}-{i}")).header("n", i.to_string()))
                .expect("append")
                .id
        })
        .collect()
}

/// The group journals in a stream's directory: `groups.<generation>.journal`.
fn group_journals(stream_dir: &Path) -> Vec<PathBuf> {
    let mut journals: Vec<PathBuf> = std::fs::read_dir(stream_dir)
        .expect("list stream dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("groups.") && n.ends_with(".journal"))
        })
        .collect();
    journals.sort();
    journals
}

/// The group journal of a stream (there is one outside a compaction).
fn group_journal(stream_dir: &Path) -> PathBuf {
    let journals = group_journals(stream_dir);
    assert_eq!(journals.len(), 1, "one group journal: {journals:?}");
    journals[0].clone()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

/// Where the frames of an undamaged journal end, checking that only zeros follow them.
fn frames_end(journal: &Path) -> u64 {
    let end = journal_support::frames_end(journal);
    let bytes = std::fs::read(journal).expect("read journal");
    assert!(
        bytes[end as usize..].iter().all(|&b| b == 0),
        "zeros after the frames"
    );
    end
}

/// Segment files of a log directory, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// Position, padded length and offset of each record of a segment file (documented layout).
fn raw_records(bytes: &[u8]) -> Vec<(usize, usize, u64)> {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let mut out = Vec::new();
    let mut pos = SEGMENT_HEADER;
    while pos + 64 <= bytes.len() {
        let len = u32_at(pos) as usize;
        if len < 64 || bytes[pos + 8] != 1 || pos + len > bytes.len() {
            break;
        }
        let padded = len.div_ceil(8) * 8;
        out.push((pos, padded, u64_at(pos + 16)));
        pos += padded;
    }
    out
}

/// Overwrites bytes of a file in place (never changing its length).
fn overwrite(path: &Path, at: usize, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for damage");
    let before = file.metadata().expect("stat").len();
    file.write_all_at(data, at as u64).expect("damage");
    file.sync_all().expect("fsync");
    assert_eq!(file.metadata().expect("stat").len(), before);
}

// ---------------------------------------------------------------------------------------------
// 1. Every group sees every entry; consumers of one group compete
// ---------------------------------------------------------------------------------------------

#[test]
fn groups_fan_out_and_competing_consumers_share_every_entry_once() {
    const ENTRIES: usize = 300;
    const CONSUMERS: usize = 4;
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock, Durability::Never);
    let stream = store.stream(b"jobs").unwrap();
    let groups: Vec<Group> = [b"billing".as_slice(), b"shipping"]
        .iter()
        .map(|name| {
            stream
                .create_group(name, GroupStart::Beginning, GroupPolicy::default())
                .unwrap()
        })
        .collect();
    // Per group: entries currently held by a consumer, every delivery, acks so far.
    let held: Vec<Mutex<HashSet<StreamId>>> = groups.iter().map(|_| Mutex::default()).collect();
    let received: Vec<Mutex<Vec<(StreamId, u32)>>> =
        groups.iter().map(|_| Mutex::default()).collect();
    let acked: Vec<AtomicUsize> = groups.iter().map(|_| AtomicUsize::new(0)).collect();
    let appended: Mutex<Vec<StreamId>> = Mutex::default();
    let deadline = Instant::now() + Duration::from_secs(20);

    std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..ENTRIES {
                let id = stream
                    .append(Message::new(format!("job-{i}")))
                    .expect("append")
                    .id;
                appended.lock().push(id);
                if i % 50 == 0 {
                    std::thread::yield_now();
                }
            }
        });
        for (g, group) in groups.iter().enumerate() {
            for c in 0..CONSUMERS {
                let (held, received, acked) = (&held[g], &received[g], &acked[g]);
                scope.spawn(move || {
                    let consumer = format!("worker-{c}");
                    while acked.load(Ordering::SeqCst) < ENTRIES {
                        assert!(Instant::now() < deadline, "consumers made no progress");
                        let batch = group.read(consumer.as_bytes(), 1 + c).expect("read");
                        if batch.is_empty() {
                            std::thread::sleep(Duration::from_micros(200));
                            continue;
                        }
                        for delivery in &batch {
                            assert!(
                                held.lock().insert(delivery.id()),
                                "{} handed to two consumers at once",
                                delivery.id()
                            );
                            received.lock().push((delivery.id(), delivery.deliveries));
                        }
                        for delivery in &batch {
                            assert!(delivery.ack().expect("ack"), "ack of a pending entry");
                            held.lock().remove(&delivery.id());
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        }
    });

    let appended = appended.into_inner();
    assert_eq!(appended.len(), ENTRIES);
    for (g, group) in groups.iter().enumerate() {
        let mut got = received[g].lock().clone();
        assert!(got.iter().all(|&(_, count)| count == 1), "no redelivery");
        got.sort();
        let got: Vec<StreamId> = got.into_iter().map(|(id, _)| id).collect();
        assert_eq!(
            got, appended,
            "group {:?} got every entry exactly once",
            group
        );
        let info = info(&stream, group.name());
        assert_eq!(info.pending, 0);
        assert_eq!(info.consumers, CONSUMERS);
        assert_eq!(info.last_delivered, *appended.last().unwrap());
        assert_eq!(info.lag, Some(0));
    }
    drop(groups);
    drop(stream);
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 2. Redelivery after the acknowledgement deadline
// ---------------------------------------------------------------------------------------------

#[test]
fn an_entry_not_acknowledged_in_time_goes_to_the_next_reader_first() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock, Durability::Never);
    let stream = store.stream(b"s").unwrap();
    let group = stream
        .create_group(b"g", GroupStart::Beginning, wait_policy(1_000))
        .unwrap();
    let ids = append_n(&stream, 3, "e");

    let first = group.read(b"a", 1).unwrap();
    assert_eq!(ids_of(&first), [ids[0]]);
    assert_eq!((first[0].deliveries, first[0].idle_ms), (1, None));

    clock.advance_ms(500);
    let second = group.read(b"b", 1).unwrap();
    assert_eq!(ids_of(&second), [ids[1]], "ids[0] is not due yet");

    clock.advance_ms(499);
    assert!(group.read(b"c", 1).unwrap()[0].id() == ids[2]);
    assert!(
        group.read(b"c", 1).unwrap().is_empty(),
        "still not due at 999 ms"
    );

    clock.advance_ms(2);
    // Due now: handed out before anything new.
    stream.append(Message::new("late")).unwrap();
    let third = group.read(b"d", 1).unwrap();
    assert_eq!(ids_of(&third), [ids[0]]);
    assert_eq!(third[0].deliveries, 2);
    assert_eq!(third[0].idle_ms, Some(1_001));
    assert_eq!(third[0].body(), b"e-0");
    let rows = pel(&stream, b"g");
    assert_eq!(rows[0], (ids[0], b"d".to_vec(), 2), "the PEL owner moved");
    assert_eq!(rows[1], (ids[1], b"b".to_vec(), 1));

    // The redelivery started a new deadline; ids[1] (delivered at 500) is due at 1500.
    clock.advance_ms(999);
    let fourth = group.read(b"e", 2).unwrap();
    assert_eq!(
        fourth
            .iter()
            .map(|d| (d.id(), d.deliveries))
            .collect::<Vec<_>>(),
        [(ids[1], 2), (ids[2], 2)],
        "ids[0] redelivered at 1001 is not due before 2001; the new entry comes after the due ones"
    );
    let fifth = group.read(b"e", 5).unwrap();
    assert_eq!(fifth.len(), 1);
    assert_eq!((fifth[0].body(), fifth[0].deliveries), (&b"late"[..], 1));
    assert!(first[0].ack().unwrap(), "any holder may acknowledge");
    assert!(!third[0].ack().unwrap(), "already acknowledged");
    drop((group, stream));
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 3. Negative acknowledgement with a delay
// ---------------------------------------------------------------------------------------------

#[test]
fn a_nacked_entry_comes_back_after_its_delay() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock, Durability::Never);
    let stream = store.stream(b"s").unwrap();
    let group = stream
        .create_group(b"g", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    let ids = append_n(&stream, 2, "e");
    let got = group.read(b"a", 1).unwrap();
    assert_eq!(ids_of(&got), [ids[0]]);
    assert!(got[0].nack(Duration::from_secs(5)).unwrap());

    assert_eq!(ids_of(&group.read(b"b", 1).unwrap()), [ids[1]]);
    for step in [1_000, 2_000, 1_999] {
        clock.advance_ms(step);
        assert!(
            group.read(b"b", 10).unwrap().is_empty(),
            "redelivered before the delay passed"
        );
    }
    // The owner does not change before the redelivery.
    assert_eq!(pel(&stream, b"g")[0], (ids[0], b"a".to_vec(), 1));
    clock.advance_ms(2);
    let again = group.read(b"b", 10).unwrap();
    assert_eq!(ids_of(&again), [ids[0]]);
    assert_eq!(again[0].deliveries, 2);
    assert_eq!(pel(&stream, b"g")[0], (ids[0], b"b".to_vec(), 2));

    // A zero delay makes it due at once; a nack of an entry that is not pending counts 0.
    assert_eq!(group.nack(&[ids[0]], Duration::ZERO).unwrap(), 1);
    let now = group.read(b"c", 10).unwrap();
    assert_eq!((now[0].id(), now[0].deliveries), (ids[0], 3));
    assert!(now[0].ack().unwrap());
    assert!(!now[0].nack(Duration::ZERO).unwrap());
    assert!(group.read(b"c", 10).unwrap().is_empty());
    drop((group, stream));
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 4. The delivery limit, with and without a dead-letter stream
// ---------------------------------------------------------------------------------------------

fn dlq_policy(max_deliver: u32, dead_letter: Option<&[u8]>) -> GroupPolicy {
    GroupPolicy {
        ack_wait_ms: Some(1_000),
        max_deliver: Some(max_deliver),
        dead_letter: dead_letter.map(<[u8]>::to_vec),
        max_ack_pending: None,
    }
}

fn headers_of(entry: &weir::Entry) -> Vec<(Vec<u8>, Vec<u8>)> {
    entry
        .headers()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn all_entries(stream: &Stream) -> Vec<weir::Entry> {
    stream
        .range(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            usize::MAX,
        )
        .unwrap()
}

/// The dead letter of `id` as the stream `orders` and group `group` write it.
fn expected_dead_letter(id: StreamId, group: &str, deliveries: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    let id = id.to_string();
    let deliveries = deliveries.to_string();
    pairs(&[
        ("kind", "new"),
        ("trace", "t-1"),
        ("dead-letter-stream", "orders"),
        ("dead-letter-id", &id),
        ("dead-letter-group", group),
        ("dead-letter-deliveries", &deliveries),
    ])
}

#[test]
fn the_delivery_after_the_limit_dead_letters_or_exhausts_the_entry() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock, Durability::Always);
    let orders = store.stream(b"orders").unwrap();
    let with_dlq = orders
        .create_group(
            b"g",
            GroupStart::Beginning,
            dlq_policy(3, Some(b"orders-dlq")),
        )
        .unwrap();
    let without = orders
        .create_group(b"h", GroupStart::Beginning, dlq_policy(2, None))
        .unwrap();
    let poison = orders
        .append(
            Message::new("payload-1")
                .header("kind", "new")
                .header("trace", "t-1"),
        )
        .unwrap()
        .id;

    for attempt in 1..=3u32 {
        let got = with_dlq.read(b"a", 1).unwrap();
        assert_eq!(ids_of(&got), [poison]);
        assert_eq!(got[0].deliveries, attempt);
        if attempt <= 2 {
            let got = without.read(b"a", 1).unwrap();
            assert_eq!((got[0].id(), got[0].deliveries), (poison, attempt));
        } else {
            assert!(without.read(b"a", 1).unwrap().is_empty(), "limit reached");
        }
        assert!(store.get(b"orders-dlq").is_none_or(|dlq| dlq.is_empty()));
        clock.advance_ms(1_001);
    }
    let fresh = orders.append(Message::new("payload-2")).unwrap().id;
    // The fourth attempt dead-letters the entry and hands out the next one instead.
    let got = with_dlq.read(b"b", 1).unwrap();
    assert_eq!(ids_of(&got), [fresh]);
    let dlq = store
        .get(b"orders-dlq")
        .expect("dead-letter stream created");
    let letters = all_entries(&dlq);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body(), b"payload-1");
    assert_eq!(
        headers_of(&letters[0]),
        expected_dead_letter(poison, "g", 3)
    );
    assert_eq!(pel(&orders, b"g"), [(fresh, b"b".to_vec(), 1)]);
    assert_eq!(info(&orders, b"g").exhausted, 0);

    // Without a dead-letter stream the entry stays pending and is not handed out again.
    let got = without.read(b"b", 1).unwrap();
    assert_eq!(ids_of(&got), [fresh]);
    assert_eq!(
        pel(&orders, b"h"),
        [(poison, b"a".to_vec(), 2), (fresh, b"b".to_vec(), 1)]
    );
    assert_eq!(info(&orders, b"h").exhausted, 1);
    // Later reads hand out only `fresh`, until it reaches the limit in turn.
    let counted = |got: Vec<Delivery>| -> Vec<(StreamId, u32)> {
        got.iter().map(|d| (d.id(), d.deliveries)).collect()
    };
    clock.advance_ms(5_000);
    assert_eq!(counted(without.read(b"c", 10).unwrap()), [(fresh, 2)]);
    assert_eq!(counted(with_dlq.read(b"c", 10).unwrap()), [(fresh, 2)]);
    clock.advance_ms(5_000);
    assert!(without.read(b"c", 10).unwrap().is_empty());
    assert_eq!(info(&orders, b"h").exhausted, 2);
    assert_eq!(counted(with_dlq.read(b"c", 10).unwrap()), [(fresh, 3)]);
    assert_eq!(all_entries(&dlq).len(), 1, "dead-lettered once");
    clock.advance_ms(5_000);
    assert!(without.read(b"c", 10).unwrap().is_empty());
    assert!(with_dlq.read(b"c", 10).unwrap().is_empty());
    let letters = all_entries(&dlq);
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[1].body(), b"payload-2");
    assert_eq!(
        headers_of(&letters[1]),
        expected_dead_letter(fresh, "g", 3)[2..],
        "no headers of its own"
    );
    assert!(pel(&orders, b"g").is_empty());
    assert_eq!(info(&orders, b"h").exhausted, 2);
    assert_eq!(without.ack(&[poison]).unwrap(), 1);
    assert_eq!(info(&orders, b"h").exhausted, 1);
    assert_eq!(pel(&orders, b"h"), [(fresh, b"c".to_vec(), 2)]);
    drop((with_dlq, without, orders, dlq));
    store.close().unwrap();
}

/// The dead-letter stream `dl` of `orders`' group `g`, made full: `DISCARD new MAXLEN 1`
/// and one entry in it.
fn full_dead_letter_stream(store: &Store) -> Arc<Stream> {
    let dl = store.stream(b"dl").unwrap();
    dl.set_config(StreamConfig {
        max_len: Some(1),
        discard: Discard::New,
        ..StreamConfig::default()
    })
    .unwrap();
    dl.append(Message::new("filler")).unwrap();
    dl
}

fn dead_letter_refusal(stream: &Stream, group: &[u8]) -> Option<String> {
    stream
        .backlog()
        .into_iter()
        .find(|backlog| backlog.group == group)
        .expect("group's backlog")
        .dead_letter_refused
}

#[test]
fn a_full_dead_letter_stream_keeps_its_entries_pending_and_reads_going() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock, Durability::Always);
    let orders = store.stream(b"orders").unwrap();
    let dl = full_dead_letter_stream(&store);
    let policy = GroupPolicy {
        ack_wait_ms: Some(5_000),
        ..dlq_policy(1, Some(b"dl"))
    };
    let g = orders
        .create_group(b"g", GroupStart::Beginning, policy)
        .unwrap();
    let poison = orders.append(Message::new("poison")).unwrap().id;
    assert_eq!(ids_of(&g.read(b"a", 10).unwrap()), [poison]);
    clock.advance_ms(5_001);

    // The read that should dead-letter `poison` hands out the new entry all the same, and
    // only what it handed out changed: `poison` stays pending as it was, `fresh` counts once.
    let fresh = orders.append(Message::new("fresh")).unwrap().id;
    let got = g.read(b"b", 10).unwrap();
    assert_eq!(ids_of(&got), [fresh]);
    assert_eq!(
        pel(&orders, b"g"),
        [(poison, b"a".to_vec(), 1), (fresh, b"b".to_vec(), 1)]
    );
    let refusal = dead_letter_refusal(&orders, b"g").expect("the refusal is visible");
    assert!(refusal.contains("is full"), "{refusal}");
    assert_eq!(all_entries(&dl).len(), 1);

    // Reads soon after do not retry at once; every read still succeeds.
    assert!(g.read(b"b", 10).unwrap().is_empty());
    assert_eq!(pel(&orders, b"g")[0], (poison, b"a".to_vec(), 1));

    // Once the dead-letter stream has room, the next attempt moves `poison` there and only
    // `poison`: `fresh` (delivered once, not yet due) stays pending.
    dl.set_config(StreamConfig::default()).unwrap();
    clock.advance_ms(1_001);
    assert!(g.read(b"b", 10).unwrap().is_empty());
    let letters = all_entries(&dl);
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[1].body(), b"poison");
    assert_eq!(pel(&orders, b"g"), [(fresh, b"b".to_vec(), 1)]);
    assert_eq!(dead_letter_refusal(&orders, b"g"), None);
    drop((g, orders, dl));
    store.close().unwrap();
}

/// How the store goes down between two deliveries.
#[derive(Debug, Clone, Copy)]
enum Restart {
    Clean,
    Crash,
}

#[test]
fn delivery_counts_and_the_limit_survive_restarts() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let poison;
    {
        let store = open(dir.path(), &clock, Durability::Always);
        let orders = store.stream(b"orders").unwrap();
        orders
            .create_group(
                b"g",
                GroupStart::Beginning,
                dlq_policy(3, Some(b"orders-dlq")),
            )
            .unwrap();
        orders
            .create_group(b"h", GroupStart::Beginning, dlq_policy(3, None))
            .unwrap();
        poison = orders
            .append(
                Message::new("payload-1")
                    .header("kind", "new")
                    .header("trace", "t-1"),
            )
            .unwrap()
            .id;
        drop(orders);
        store.close().unwrap();
    }
    let restarts = [
        Restart::Clean,
        Restart::Crash,
        Restart::Crash,
        Restart::Clean,
    ];
    for (attempt, restart) in (1..=4u32).zip(restarts) {
        let store = open(dir.path(), &clock, Durability::Always);
        let orders = store.stream(b"orders").unwrap();
        let g = orders.group(b"g").unwrap();
        let h = orders.group(b"h").unwrap();
        let dlq_len = store.get(b"orders-dlq").map_or(0, |dlq| dlq.len());
        let (got_g, got_h) = (g.read(b"a", 1).unwrap(), h.read(b"a", 1).unwrap());
        if attempt <= 3 {
            assert_eq!(ids_of(&got_g), [poison], "attempt {attempt}");
            assert_eq!(got_g[0].deliveries, attempt, "count after {restart:?}");
            assert_eq!((got_h[0].id(), got_h[0].deliveries), (poison, attempt));
            assert_eq!(dlq_len, 0, "dead-lettered too early");
        } else {
            assert!(got_g.is_empty() && got_h.is_empty(), "attempt {attempt}");
            let dlq = store.get(b"orders-dlq").expect("dead-letter stream");
            let letters = all_entries(&dlq);
            assert_eq!(letters.len(), 1);
            assert_eq!(
                headers_of(&letters[0]),
                expected_dead_letter(poison, "g", 3)
            );
            assert!(pel(&orders, b"g").is_empty());
            assert_eq!(pel(&orders, b"h"), [(poison, b"a".to_vec(), 3)]);
            assert_eq!(info(&orders, b"h").exhausted, 1);
        }
        clock.advance_ms(1_001);
        drop((g, h, orders));
        match restart {
            Restart::Clean => store.close().unwrap(),
            Restart::Crash => drop(store),
        }
    }
    // One more crash and reopen: nothing is dead-lettered twice, the exhausted entry stays so.
    for _ in 0..2 {
        let store = open(dir.path(), &clock, Durability::Always);
        let orders = store.stream(b"orders").unwrap();
        assert!(
            orders
                .group(b"g")
                .unwrap()
                .read(b"z", 10)
                .unwrap()
                .is_empty()
        );
        assert!(
            orders
                .group(b"h")
                .unwrap()
                .read(b"z", 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.get(b"orders-dlq").unwrap().len(), 1);
        assert_eq!(info(&orders, b"h").exhausted, 1);
        assert_eq!(pel(&orders, b"h"), [(poison, b"a".to_vec(), 3)]);
        clock.advance_ms(10_000);
        drop(orders);
        drop(store);
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Acks, PEL, counts and position survive close, crash and a torn journal
// ---------------------------------------------------------------------------------------------

/// Everything a group's durable state should bring back.
fn group_state(stream: &Stream, group: &[u8]) -> (Vec<Row>, Info) {
    (pel(stream, group), info(stream, group))
}

/// a holds 1 and 2, b holds 3 delivered twice (the second time after its deadline), 0 and 4
/// are acknowledged, 5 was never delivered.
fn build_state(stream: &Arc<Stream>, clock: &ManualClock) -> (Group, Vec<StreamId>) {
    let group = stream
        .create_group(b"g", GroupStart::Beginning, wait_policy(1_000))
        .unwrap();
    let ids = append_n(stream, 6, "e");
    assert_eq!(ids_of(&group.read(b"a", 3).unwrap()), ids[..3]);
    clock.advance_ms(10);
    assert_eq!(ids_of(&group.read(b"b", 2).unwrap()), ids[3..5]);
    assert_eq!(group.ack(&[ids[0], ids[4]]).unwrap(), 2);
    clock.advance_ms(1_005);
    // 1 and 2 are due (a's deadline passed): b takes them, then a takes them back by claim.
    let again = group.read(b"b", 2).unwrap();
    assert_eq!(ids_of(&again), ids[1..3]);
    let claimed = group
        .claim(b"a", &ids[1..3], ClaimOptions::default())
        .unwrap();
    assert_eq!(claimed.deliveries.len(), 2);
    assert_eq!(claimed.deliveries[0].deliveries, 3);
    (group, ids)
}

#[test]
fn group_state_survives_a_clean_close() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let (before, ids) = {
        let store = open(dir.path(), &clock, Durability::Interval(1_000));
        let stream = store.stream(b"s").unwrap();
        let (group, ids) = build_state(&stream, &clock);
        let before = group_state(&stream, b"g");
        assert_eq!(
            before.0,
            [
                (ids[1], b"a".to_vec(), 3),
                (ids[2], b"a".to_vec(), 3),
                (ids[3], b"b".to_vec(), 1)
            ]
        );
        drop((group, stream));
        store.close().unwrap();
        (before, ids)
    };
    let store = open(dir.path(), &clock, Durability::Interval(1_000));
    assert!(store.recovery().clean);
    let recovery = group_recovery(&store, b"s");
    assert!(recovery.events_replayed > 0);
    assert_eq!(recovery.journal_damage, None);
    assert!(recovery.clamped.is_empty());
    let stream = store.stream(b"s").unwrap();
    assert_eq!(group_state(&stream, b"g"), before);
    // The group goes on where it stopped: 3 is due (at 1010), then 5 is new; the claimed
    // entries are due again at 2015.
    let group = stream.group(b"g").unwrap();
    let counted = |got: Vec<Delivery>| -> Vec<(StreamId, u32)> {
        got.iter().map(|d| (d.id(), d.deliveries)).collect()
    };
    assert_eq!(
        counted(group.read(b"c", 10).unwrap()),
        [(ids[3], 2), (ids[5], 1)]
    );
    clock.advance_ms(999);
    assert!(group.read(b"c", 10).unwrap().is_empty());
    clock.advance_ms(1);
    assert_eq!(
        counted(group.read(b"c", 10).unwrap()),
        [(ids[1], 4), (ids[2], 4), (ids[3], 3), (ids[5], 2)]
    );
    drop((group, stream));
    store.close().unwrap();
}

#[test]
fn a_crash_under_always_keeps_every_returned_ack_and_count() {
    const THREADS: usize = 3;
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let acked: Mutex<BTreeSet<StreamId>> = Mutex::default();
    let counts: Mutex<BTreeMap<StreamId, u32>> = Mutex::default();
    let seen: Mutex<BTreeSet<(StreamId, u32)>> = Mutex::default();
    let before = {
        let store = open(dir.path(), &clock, Durability::Always);
        let stream = store.stream(b"s").unwrap();
        let group = stream
            .create_group(b"g", GroupStart::Beginning, wait_policy(1_000))
            .unwrap();
        append_n(&stream, 60, "e");
        std::thread::scope(|scope| {
            let mut workers = Vec::new();
            for t in 0..THREADS {
                let (group, acked, counts, seen) = (&group, &acked, &counts, &seen);
                workers.push(scope.spawn(move || {
                    let consumer = format!("c{t}");
                    for round in 0..12 {
                        let got = group.read(consumer.as_bytes(), 2).expect("read");
                        for delivery in &got {
                            assert!(
                                seen.lock().insert((delivery.id(), delivery.deliveries)),
                                "{} delivered twice with count {}",
                                delivery.id(),
                                delivery.deliveries
                            );
                            let mut counts = counts.lock();
                            let count = counts.entry(delivery.id()).or_default();
                            *count = (*count).max(delivery.deliveries);
                        }
                        // Acknowledge the first of each batch (every other round), keep the rest.
                        if let Some(first) = got.first().filter(|_| round % 2 == 0) {
                            first.ack().expect("ack");
                            acked.lock().insert(first.id());
                        }
                    }
                }));
            }
            // The clock moves while they work, so deadlines pass and entries are redelivered.
            while !workers.iter().all(|worker| worker.is_finished()) {
                clock.advance_ms(300);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let before = group_state(&stream, b"g");
        drop((group, stream));
        drop(store);
        before
    };
    let acked = acked.into_inner();
    let counts = counts.into_inner();
    assert!(!acked.is_empty() && counts.len() > acked.len());
    let store = open(dir.path(), &clock, Durability::Always);
    assert!(!store.recovery().clean);
    let recovery = group_recovery(&store, b"s");
    assert_eq!(recovery.journal_damage, None);
    assert!(recovery.clamped.is_empty());
    let stream = store.stream(b"s").unwrap();
    let after = pel_map(&stream, b"g");
    for id in &acked {
        assert!(
            !after.contains_key(id),
            "acknowledged {id} is pending again"
        );
    }
    for (id, &count) in &counts {
        if acked.contains(id) {
            continue;
        }
        let (_, recovered) = after
            .get(id)
            .unwrap_or_else(|| panic!("delivered {id} is no longer pending"));
        assert!(*recovered >= count, "count of {id} went down");
    }
    assert_eq!(after.len(), counts.len() - acked.len());
    assert_eq!(group_state(&stream, b"g"), before);
    drop(stream);
    store.close().unwrap();
}

/// How a group journal's tail is damaged after a crash.
#[derive(Debug, Clone, Copy)]
enum JournalTail {
    /// The last few bytes are cut: the last frame is torn.
    Truncated,
    /// Garbage follows the last frame.
    Garbage,
}

fn torn_group_journal(damage: JournalTail) {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let (journal, before_last, after_last, len_before_last, ids) = {
        let store = open(dir.path(), &clock, Durability::Always);
        let stream = store.stream(b"s").unwrap();
        let (group, ids) = build_state(&stream, &clock);
        let journal = group_journal(stream.log().dir());
        let before_last = group_state(&stream, b"g");
        let len_before_last = frames_end(&journal);
        // The last operation: one ack, one event.
        assert_eq!(group.ack(&[ids[3]]).unwrap(), 1);
        let after_last = group_state(&stream, b"g");
        drop((group, stream));
        drop(store);
        (journal, before_last, after_last, len_before_last, ids)
    };
    let full_len = file_len(&journal);
    let end = frames_end(&journal);
    assert!(end > len_before_last);
    let (expected, position, dropped) = match damage {
        JournalTail::Truncated => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&journal)
                .unwrap();
            file.set_len(end - 3).unwrap();
            (
                before_last.clone(),
                len_before_last,
                end - 3 - len_before_last,
            )
        }
        JournalTail::Garbage => {
            use std::os::unix::fs::FileExt;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&journal)
                .unwrap();
            let mut rng = Rng(7);
            let garbage: Vec<u8> = (0..37).map(|_| rng.next() as u8 | 1).collect();
            // Over the zeros preallocated after the last frame, as a torn append leaves it.
            file.write_all_at(&garbage, end).unwrap();
            let len = file_len(&journal);
            assert!(len >= end + 37 && len == full_len.max(end + 37));
            (after_last.clone(), end, len - end)
        }
    };
    {
        let store = open(dir.path(), &clock, Durability::Always);
        let recovery = group_recovery(&store, b"s");
        let found = recovery
            .journal_damage
            .clone()
            .unwrap_or_else(|| panic!("{damage:?}: no damage reported: {recovery:?}"));
        assert_eq!(found.path, journal);
        assert_eq!(found.position, position, "{damage:?}: {found:?}");
        assert_eq!(found.dropped_bytes, dropped, "{damage:?}: {found:?}");
        assert!(recovery.clamped.is_empty());
        let stream = store.stream(b"s").unwrap();
        assert_eq!(
            group_state(&stream, b"g"),
            expected,
            "{damage:?}: every event before the damage is kept"
        );
        // New events follow the last good frame.
        let group = stream.group(b"g").unwrap();
        assert_eq!(group.ack(&[ids[1]]).unwrap(), 1);
        drop((group, stream));
        drop(store);
    }
    let store = open(dir.path(), &clock, Durability::Always);
    let recovery = group_recovery(&store, b"s");
    assert_eq!(recovery.journal_damage, None, "{damage:?}");
    let stream = store.stream(b"s").unwrap();
    let mut rows = expected.0.clone();
    rows.retain(|row| row.0 != ids[1]);
    assert_eq!(pel(&stream, b"g"), rows, "{damage:?}");
    drop(stream);
    store.close().unwrap();
}

#[test]
fn a_torn_group_journal_tail_keeps_every_event_before_it() {
    torn_group_journal(JournalTail::Truncated);
}

#[test]
fn garbage_after_the_group_journal_keeps_every_event() {
    torn_group_journal(JournalTail::Garbage);
}

// ---------------------------------------------------------------------------------------------
// 6. Groups are clamped to the log
// ---------------------------------------------------------------------------------------------

#[test]
fn claiming_deleted_or_trimmed_entries_drops_them() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock, Durability::Never);
    let stream = store.stream(b"s").unwrap();
    let group = stream
        .create_group(b"g", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    let ids = append_n(&stream, 6, "e");
    assert_eq!(group.read(b"a", 6).unwrap().len(), 6);

    assert_eq!(stream.delete(&[ids[2]]).unwrap(), 1);
    let claimed = group
        .claim(b"b", &[ids[2], ids[3]], ClaimOptions::default())
        .unwrap();
    assert_eq!(claimed.deleted, [ids[2]]);
    assert_eq!(ids_of(&claimed.deliveries), [ids[3]]);
    assert!(!pel_map(&stream, b"g").contains_key(&ids[2]));
    assert_eq!(info(&stream, b"g").pending, 5);

    // Trim 0, 1 (2 is already deleted) and 3.
    assert_eq!(stream.trim_max_len(2, false, None).unwrap(), 3);
    let claimed = group
        .claim(b"b", &[ids[0]], ClaimOptions::default())
        .unwrap();
    assert_eq!(claimed.deleted, [ids[0]]);
    assert!(claimed.deliveries.is_empty());
    let auto = group
        .auto_claim(b"c", AutoClaim::new(0, StreamId::MIN))
        .unwrap();
    assert_eq!(auto.deleted, [ids[1], ids[3]]);
    assert_eq!(ids_of(&auto.deliveries), [ids[4], ids[5]]);
    assert_eq!(auto.next, StreamId::MIN);
    assert_eq!(
        pel(&stream, b"g"),
        [(ids[4], b"c".to_vec(), 2), (ids[5], b"c".to_vec(), 2)]
    );
    drop((group, stream));
    store.close().unwrap();
}

#[test]
fn a_log_that_lost_its_tail_clamps_the_group() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let (ids, log_dir) = {
        let store = open(dir.path(), &clock, Durability::Never);
        let stream = store.stream(b"s").unwrap();
        let group = stream
            .create_group(b"g", GroupStart::Beginning, GroupPolicy::default())
            .unwrap();
        let mut ids = append_n(&stream, 10, "flushed");
        stream.flush().unwrap();
        ids.extend(append_n(&stream, 10, "unflushed"));
        assert_eq!(ids_of(&group.read(b"a", 20).unwrap()), ids);
        assert_eq!(group.ack(&[ids[0], ids[15]]).unwrap(), 2);
        assert_eq!(info(&stream, b"g").last_delivered, ids[19]);
        let log_dir = stream.log().dir().to_path_buf();
        drop((group, stream));
        drop(store);
        (ids, log_dir)
    };
    // The crash loses the unflushed records from the third one on.
    let files = segment_files(&log_dir);
    let last = files.last().unwrap();
    let bytes = std::fs::read(last).unwrap();
    let records = raw_records(&bytes);
    let &(pos, _, offset) = records
        .iter()
        .find(|r| r.2 == 12)
        .expect("record of offset 12 in the last segment");
    assert_eq!(offset, 12);
    overwrite(last, pos, &vec![0; bytes.len() - pos]);

    let lost: Vec<StreamId> = ids[12..]
        .iter()
        .copied()
        .filter(|&id| id != ids[15])
        .collect();
    {
        let store = open(dir.path(), &clock, Durability::Never);
        let stream = store.stream(b"s").unwrap();
        assert_eq!(stream.len(), 12);
        assert_eq!(stream.last_id(), ids[11]);
        let recovery = group_recovery(&store, b"s");
        assert_eq!(recovery.journal_damage, None);
        assert_eq!(
            recovery.clamped,
            [ClampedGroup {
                group: b"g".to_vec(),
                dropped: lost,
                rewound: Some((ids[19], ids[11])),
            }]
        );
        let info = info(&stream, b"g");
        assert_eq!(info.last_delivered, ids[11]);
        assert!(info.last_delivered <= stream.last_id());
        assert_eq!(info.lag, Some(0));
        let rows = pel(&stream, b"g");
        assert_eq!(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ids[1..12].to_vec()
        );
        // New entries are handed out, even where their IDs repeat lost ones.
        let group = stream.group(b"g").unwrap();
        let fresh = append_n(&stream, 2, "after");
        let got = group.read(b"b", 10).unwrap();
        assert_eq!(ids_of(&got), fresh);
        assert_eq!(got[0].body(), b"after-0");
        drop((group, stream));
        drop(store);
    }
    let store = open(dir.path(), &clock, Durability::Never);
    let recovery = group_recovery(&store, b"s");
    assert!(recovery.clamped.is_empty(), "{recovery:?}");
    let stream = store.stream(b"s").unwrap();
    assert_eq!(info(&stream, b"g").pending, 13);
    drop(stream);
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 7. A crash between every pair of operations
// ---------------------------------------------------------------------------------------------

/// What the API said, to compare the recovered group with.
#[derive(Debug, Default)]
struct Model {
    pending: BTreeMap<StreamId, (Vec<u8>, u32)>,
    acked: BTreeSet<StreamId>,
    /// Entries deleted from the stream: a read or claim may drop them from the PEL.
    deleted: BTreeSet<StreamId>,
    last_delivered: StreamId,
}

impl Model {
    /// Entries handed to `consumer` by a read, a claim or a re-read.
    fn delivered(&mut self, consumer: &[u8], deliveries: &[Delivery], count: Count, op: &str) {
        for delivery in deliveries {
            let id = delivery.id();
            assert!(!self.acked.contains(&id), "{op}: acknowledged {id} again");
            assert!(!self.deleted.contains(&id), "{op}: deleted {id} handed out");
            let before = match self.pending.get(&id) {
                Some(&(_, count)) => count,
                None => {
                    assert!(id > self.last_delivered, "{op}: {id} is not new");
                    self.last_delivered = id;
                    0
                }
            };
            let expected = match count {
                Count::Increment => before + 1,
                Count::Keep => before,
            };
            assert_eq!(delivery.deliveries, expected, "{op}: count of {id}");
            self.pending
                .insert(id, (consumer.to_vec(), delivery.deliveries));
        }
    }

    fn dropped(&mut self, ids: &[StreamId], op: &str) {
        for id in ids {
            assert!(self.deleted.contains(id), "{op}: {id} reported deleted");
            assert!(
                self.pending.remove(id).is_some(),
                "{op}: {id} was not pending"
            );
        }
    }

    /// Compares the group with the model; deleted entries a read dropped silently leave it.
    fn check(&mut self, stream: &Stream, context: &str) {
        let actual = pel_map(stream, b"g");
        self.pending
            .retain(|id, _| actual.contains_key(id) || !self.deleted.contains(id));
        assert_eq!(actual, self.pending, "{context}: PEL");
        assert_eq!(
            info(stream, b"g").last_delivered,
            self.last_delivered,
            "{context}: last delivered"
        );
    }
}

#[derive(Debug, Clone, Copy)]
enum Count {
    Increment,
    Keep,
}

/// Random operations, each followed by a crash (drop without close) and a reopen. The recovered
/// group must equal the one before the crash in everything the queries show, and agree with
/// what the API returned. `GROUPS_SEED` and `GROUPS_OPS` run other or longer sequences.
#[test]
fn a_crash_after_any_operation_loses_nothing_that_was_returned() {
    let ops: usize = std::env::var("GROUPS_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(250);
    const CONSUMERS: [&[u8]; 3] = [b"a", b"b", b"c"];
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), &clock, Durability::Always);
        let stream = store.stream(b"s").unwrap();
        let policy = GroupPolicy {
            ack_wait_ms: Some(1_000),
            max_deliver: Some(4),
            ..GroupPolicy::default()
        };
        stream
            .create_group(b"g", GroupStart::Beginning, policy)
            .unwrap();
        drop(stream);
        drop(store);
    }
    let seed = std::env::var("GROUPS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234);
    let mut rng = Rng(seed);
    let mut model = Model::default();
    let mut appended: Vec<StreamId> = Vec::new();
    let mut before_crash: Option<Observed> = None;
    let mut kinds = BTreeMap::<&str, usize>::new();
    let (mut most_deliveries, mut exhausted_seen) = (0, false);
    for step in 0..ops {
        let store = open(dir.path(), &clock, Durability::Always);
        let recovery = group_recovery(&store, b"s");
        assert_eq!(recovery.journal_damage, None, "step {step}");
        assert!(recovery.clamped.is_empty(), "step {step}");
        let stream = store.stream(b"s").unwrap();
        if let Some(before) = &before_crash {
            assert_eq!(
                &observe(&stream, b"g", clock.now_ms()),
                before,
                "the crash after step {} changed the group",
                step - 1
            );
        }
        model.check(&stream, &format!("after the crash before step {step}"));
        let group = stream.group(b"g").unwrap();
        let pending: Vec<StreamId> = model.pending.keys().copied().collect();
        let consumer = *rng.pick(&CONSUMERS);
        let who = String::from_utf8_lossy(consumer).into_owned();
        let roll = rng.below(100);
        let (kind, op) = match roll {
            0..=17 => {
                let count = 1 + rng.below(3) as usize;
                appended.extend(append_n(&stream, count, "op"));
                ("append", format!("append {count}"))
            }
            18..=39 => {
                let max = 1 + rng.below(4) as usize;
                let got = group.read(consumer, max).unwrap();
                let op = format!("read {max} by {who}");
                model.delivered(consumer, &got, Count::Increment, &op);
                ("read", op)
            }
            40..=54 if !pending.is_empty() => {
                let mut list = vec![*rng.pick(&pending), *rng.pick(&pending)];
                if let Some(&old) = model.acked.iter().next() {
                    list.push(old);
                }
                let expected: BTreeSet<StreamId> = list
                    .iter()
                    .copied()
                    .filter(|id| model.pending.contains_key(id))
                    .collect();
                assert_eq!(group.ack(&list).unwrap(), expected.len(), "ack {list:?}");
                for id in expected {
                    model.pending.remove(&id);
                    model.acked.insert(id);
                }
                ("ack", format!("ack {list:?}"))
            }
            55..=62 if !pending.is_empty() => {
                let id = *rng.pick(&pending);
                let delay = Duration::from_millis(rng.below(1_500));
                assert_eq!(group.nack(&[id], delay).unwrap(), 1);
                ("nack", format!("nack {id} {delay:?}"))
            }
            63..=72 if !pending.is_empty() => {
                let list = vec![*rng.pick(&pending), *rng.pick(&pending)];
                let justid = rng.below(3) == 0;
                let options = ClaimOptions {
                    min_idle_ms: rng.below(2) * 700,
                    justid,
                    ..ClaimOptions::default()
                };
                let claimed = group.claim(consumer, &list, options).unwrap();
                let op = format!("claim {list:?} by {who} {options:?}");
                assert!(
                    claimed.deliveries.iter().all(|d| list.contains(&d.id())),
                    "{op}"
                );
                model.dropped(&claimed.deleted, &op);
                let count = if justid {
                    Count::Keep
                } else {
                    Count::Increment
                };
                model.delivered(consumer, &claimed.deliveries, count, &op);
                ("claim", op)
            }
            73..=78 => {
                let request = AutoClaim {
                    count: 1 + rng.below(3) as usize,
                    ..AutoClaim::new(rng.below(3) * 600, *rng.pick(&[StreamId::MIN]))
                };
                let claimed = group.auto_claim(consumer, request).unwrap();
                let op = format!("auto-claim by {who} {request:?}");
                model.dropped(&claimed.deleted, &op);
                model.delivered(consumer, &claimed.deliveries, Count::Increment, &op);
                ("auto-claim", op)
            }
            79..=84 => {
                let history = group.read_pending(consumer, StreamId::MIN, 3).unwrap();
                let op = format!("read pending of {who}");
                let mut live = Vec::new();
                for item in history {
                    match item {
                        PendingDelivery::Live(delivery) => live.push(delivery),
                        PendingDelivery::Deleted(id) => {
                            assert!(model.deleted.contains(&id), "{op}: {id}");
                            assert_eq!(model.pending[&id].0, consumer, "{op}: owner of {id}");
                        }
                    }
                }
                for delivery in &live {
                    assert_eq!(model.pending[&delivery.id()].0, consumer, "{op}");
                }
                model.delivered(consumer, &live, Count::Increment, &op);
                ("read pending", op)
            }
            85..=87 if !appended.is_empty() => {
                let id = *rng.pick(&appended);
                let existed = stream.delete(&[id]).unwrap();
                assert_eq!(existed == 1, !model.deleted.contains(&id), "delete {id}");
                model.deleted.insert(id);
                ("delete", format!("delete {id}"))
            }
            _ => {
                let ms = 100 + rng.below(1_200);
                clock.advance_ms(ms);
                ("advance", format!("advance {ms} ms"))
            }
        };
        *kinds.entry(kind).or_default() += 1;
        model.check(&stream, &format!("step {step} ({op}) before the crash"));
        let observed = observe(&stream, b"g", clock.now_ms());
        exhausted_seen |= observed.info.exhausted > 0;
        let counts = observed.rows.iter().map(|row| row.2);
        most_deliveries = counts.fold(most_deliveries, u32::max);
        before_crash = Some(observed);
        drop((group, stream));
        drop(store);
    }
    let store = open(dir.path(), &clock, Durability::Always);
    let stream = store.stream(b"s").unwrap();
    assert_eq!(
        Some(observe(&stream, b"g", clock.now_ms())),
        before_crash,
        "at the end"
    );
    model.check(&stream, "at the end");
    assert!(model.acked.len() >= 10, "the run acknowledged too little");
    assert!(most_deliveries > 2, "the run redelivered too little");
    assert!(exhausted_seen, "nothing reached the limit");
    assert_eq!(kinds.len(), 9, "some operations never ran: {kinds:?}");
    drop(stream);
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 8. Blocking and async reads
// ---------------------------------------------------------------------------------------------

/// Blocked readers look again for due entries every 250 ms whatever happens; a reader woken
/// by the append itself returns within a few milliseconds of it. The smallest delay over a few
/// rounds tells the two apart without depending on one lucky schedule.
const PROMPT: Duration = Duration::from_millis(100);

#[test]
fn a_blocking_read_times_out_empty_and_wakes_on_append() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock, Durability::Never);
    let stream = store.stream(b"s").unwrap();
    let group = stream
        .create_group(b"g", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();

    let started = Instant::now();
    let got = group
        .read_blocking(b"a", 10, Duration::from_millis(300))
        .unwrap();
    let waited = started.elapsed();
    assert!(got.is_empty());
    assert!(
        waited >= Duration::from_millis(300),
        "returned after {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "returned after {waited:?}");

    let mut fastest = Duration::MAX;
    for round in 0..3 {
        let (got, woke, appended_at) = std::thread::scope(|scope| {
            let appender = scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                let at = Instant::now();
                stream
                    .append(Message::new(format!("wake-{round}")))
                    .unwrap();
                at
            });
            let got = group
                .read_blocking(b"a", 10, Duration::from_secs(10))
                .unwrap();
            (got, Instant::now(), appender.join().unwrap())
        });
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body(), format!("wake-{round}").as_bytes());
        let delay = woke.saturating_duration_since(appended_at);
        assert!(delay < Duration::from_secs(2), "woke {delay:?} after");
        fastest = fastest.min(delay);
        got[0].ack().unwrap();
    }
    assert!(
        fastest < PROMPT,
        "the append did not wake the reader: {fastest:?}"
    );
    drop((group, stream));
    store.close().unwrap();
}

#[test]
fn a_blocking_read_notices_an_ack_deadline_passing() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock, Durability::Never);
    let stream = store.stream(b"s").unwrap();
    let group = stream
        .create_group(b"g", GroupStart::Beginning, wait_policy(1_000))
        .unwrap();
    let id = stream.append(Message::new("slow")).unwrap().id;
    assert_eq!(ids_of(&group.read(b"a", 1).unwrap()), [id]);
    let started = Instant::now();
    let got = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            clock.advance_ms(1_000);
        });
        group
            .read_blocking(b"b", 10, Duration::from_secs(10))
            .unwrap()
    });
    let waited = started.elapsed();
    assert_eq!(ids_of(&got), [id]);
    assert_eq!(got[0].deliveries, 2);
    assert!(waited < Duration::from_secs(3), "noticed after {waited:?}");
    drop((group, stream));
    store.close().unwrap();
}

#[tokio::test]
async fn an_async_read_resolves_after_an_append_from_another_task() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock, Durability::Never);
    let stream = store.stream(b"s").unwrap();
    let group = stream
        .create_group(b"g", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    let nothing = tokio::time::timeout(Duration::from_millis(300), group.read_async(b"a", 10));
    assert!(nothing.await.is_err(), "resolved with nothing appended");

    let mut fastest = Duration::MAX;
    for round in 0..3 {
        let producer = Arc::clone(&stream);
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let at = Instant::now();
            producer
                .append_async(Message::new(format!("async-{round}")))
                .await
                .unwrap();
            at
        });
        let got = tokio::time::timeout(Duration::from_secs(10), group.read_async(b"a", 10))
            .await
            .expect("the read never resolved")
            .unwrap();
        let woke = Instant::now();
        let appended_at = task.await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body(), format!("async-{round}").as_bytes());
        fastest = fastest.min(woke.saturating_duration_since(appended_at));
        got[0].ack().unwrap();
    }
    assert!(
        fastest < PROMPT,
        "the append did not wake the reader: {fastest:?}"
    );
    drop((group, stream));
    store.close().unwrap();
}

/// A read bounded by a timeout that expires while it waits for its flush must not take the
/// entries: they would stay pending for a consumer that never received them. Large appends to
/// another stream keep the flusher busy, so most reads have to wait for their flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_async_read_takes_no_entries() {
    const ENTRIES: usize = 20;
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock, Durability::Always);
    let stream = store.stream(b"s").unwrap();
    let busy = store.stream(b"busy").unwrap();
    let group = stream
        .create_group(b"g", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    let ids = append_n(&stream, ENTRIES, "e");
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let batch = vec![Message::new(vec![7u8; 256 * 1024]); 4];
            while !stop.load(Ordering::SeqCst) {
                busy.append_batch(&batch).expect("append");
            }
        })
    };
    let mut received = Vec::new();
    let mut cancelled = 0;
    for _ in 0..ENTRIES {
        // A zero timeout polls the read once: it completes or is cancelled at once.
        match tokio::time::timeout(Duration::ZERO, group.read_async(b"a", 1)).await {
            Ok(got) => received.extend(ids_of(&got.unwrap())),
            Err(_) => cancelled += 1,
        }
    }
    stop.store(true, Ordering::SeqCst);
    flood.join().unwrap();
    let held: Vec<StreamId> = pel(&stream, b"g").iter().map(|row| row.0).collect();
    assert_eq!(
        held, received,
        "{cancelled} cancelled reads: entries pending that no caller received"
    );
    if received.len() < ENTRIES {
        let rest = tokio::time::timeout(Duration::from_secs(10), group.read_async(b"a", 100))
            .await
            .expect("the remaining entries are handed out")
            .unwrap();
        received.extend(ids_of(&rest));
    }
    assert_eq!(received, ids);
    drop((group, stream));
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 9. The cap on unacknowledged entries
// ---------------------------------------------------------------------------------------------

#[test]
fn max_ack_pending_caps_unacknowledged_entries_across_consumers() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock, Durability::Never);
    let stream = store.stream(b"s").unwrap();
    let capped = GroupPolicy {
        max_ack_pending: Some(3),
        ..GroupPolicy::default()
    };
    let ids = append_n(&stream, 10, "e");

    // One consumer after another.
    let group = stream
        .create_group(b"g", GroupStart::Beginning, capped.clone())
        .unwrap();
    let first = group.read(b"a", 10).unwrap();
    assert_eq!(ids_of(&first), ids[..3]);
    assert!(group.read(b"b", 10).unwrap().is_empty());
    assert!(first[1].ack().unwrap());
    assert_eq!(ids_of(&group.read(b"b", 10).unwrap()), [ids[3]]);
    assert!(group.read(b"c", 10).unwrap().is_empty());
    assert_eq!(group.ack(&[ids[0], ids[2], ids[3]]).unwrap(), 3);
    assert_eq!(ids_of(&group.read(b"c", 10).unwrap()), ids[4..7]);

    // Consumers reading concurrently.
    let group = stream
        .create_group(b"h", GroupStart::Beginning, capped)
        .unwrap();
    let held = Mutex::new(0usize);
    let most = AtomicUsize::new(0);
    let received: Mutex<Vec<StreamId>> = Mutex::default();
    let finished = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    std::thread::scope(|scope| {
        for c in 0..4 {
            let (group, stream, held, most, received, finished) =
                (&group, &stream, &held, &most, &received, &finished);
            scope.spawn(move || {
                let consumer = format!("c{c}");
                while !finished.load(Ordering::SeqCst) {
                    assert!(Instant::now() < deadline, "no progress");
                    let got = group.read(consumer.as_bytes(), 10).expect("read");
                    if got.is_empty() {
                        std::thread::sleep(Duration::from_micros(300));
                        continue;
                    }
                    // Counted up after the read and down before the ack, so the count never
                    // exceeds what the group really has pending.
                    {
                        let mut held = held.lock();
                        *held += got.len();
                        most.fetch_max(*held, Ordering::SeqCst);
                    }
                    assert!(info(stream, b"h").pending <= 3);
                    received.lock().extend(ids_of(&got));
                    std::thread::sleep(Duration::from_millis(1));
                    *held.lock() -= got.len();
                    for delivery in &got {
                        assert!(delivery.ack().expect("ack"));
                    }
                    if received.lock().len() == 10 {
                        finished.store(true, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let most = most.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&most),
        "{most} unacknowledged entries at once"
    );
    let mut received = received.into_inner();
    received.sort();
    assert_eq!(received, ids);
    drop((group, stream));
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 10. Claims, automatic claims and re-reads of a consumer's own entries
// ---------------------------------------------------------------------------------------------

#[test]
fn claims_auto_claims_and_rereads_follow_redis() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock, Durability::Never);
    let stream = store.stream(b"s").unwrap();
    let group = stream
        .create_group(b"g", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    let ids = append_n(&stream, 6, "e");
    assert_eq!(ids_of(&group.read(b"a", 4).unwrap()), ids[..4]);

    // Minimum idle time.
    let min_idle = ClaimOptions {
        min_idle_ms: 1_000,
        ..ClaimOptions::default()
    };
    clock.advance_ms(500);
    assert!(
        group
            .claim(b"b", &[ids[0]], min_idle)
            .unwrap()
            .deliveries
            .is_empty()
    );
    clock.advance_ms(600);
    let claimed = group.claim(b"b", &[ids[0], ids[1]], min_idle).unwrap();
    assert_eq!(
        claimed
            .deliveries
            .iter()
            .map(|d| (d.id(), d.deliveries, d.idle_ms))
            .collect::<Vec<_>>(),
        [(ids[0], 2, Some(1_100)), (ids[1], 2, Some(1_100))]
    );
    assert_eq!(claimed.deliveries[0].body(), b"e-0");
    assert!(
        group
            .claim(b"c", &[ids[0]], min_idle)
            .unwrap()
            .deliveries
            .is_empty(),
        "the claim reset the idle time"
    );

    // JUSTID moves the entry without counting a delivery.
    let justid = ClaimOptions {
        justid: true,
        ..ClaimOptions::default()
    };
    let moved = group.claim(b"c", &[ids[1]], justid).unwrap();
    assert_eq!(moved.deliveries[0].deliveries, 2);
    assert_eq!(pel(&stream, b"g")[1], (ids[1], b"c".to_vec(), 2));

    // Automatic claims walk the PEL with a cursor.
    clock.advance_ms(2_000);
    let first = group
        .auto_claim(
            b"d",
            AutoClaim {
                count: 2,
                ..AutoClaim::new(1_000, StreamId::MIN)
            },
        )
        .unwrap();
    assert_eq!(
        first
            .deliveries
            .iter()
            .map(|d| (d.id(), d.deliveries))
            .collect::<Vec<_>>(),
        [(ids[0], 3), (ids[1], 3)]
    );
    assert_eq!(first.next, ids[2]);
    let rest = group
        .auto_claim(
            b"d",
            AutoClaim {
                count: 2,
                ..AutoClaim::new(1_000, first.next)
            },
        )
        .unwrap();
    assert_eq!(
        rest.deliveries
            .iter()
            .map(|d| (d.id(), d.deliveries))
            .collect::<Vec<_>>(),
        [(ids[2], 2), (ids[3], 2)]
    );
    assert_eq!(rest.next, StreamId::MIN, "the scan is complete");
    let nothing_idle = group
        .auto_claim(b"e", AutoClaim::new(1_000, StreamId::MIN))
        .unwrap();
    assert!(nothing_idle.deliveries.is_empty());
    let quiet = group
        .auto_claim(
            b"e",
            AutoClaim {
                justid: true,
                ..AutoClaim::new(0, StreamId::MIN)
            },
        )
        .unwrap();
    assert_eq!(ids_of(&quiet.deliveries), ids[..4]);
    assert_eq!(
        pel(&stream, b"g")
            .iter()
            .map(|r| (r.1.clone(), r.2))
            .collect::<Vec<_>>(),
        [
            (b"e".to_vec(), 3),
            (b"e".to_vec(), 3),
            (b"e".to_vec(), 2),
            (b"e".to_vec(), 2)
        ],
        "JUSTID leaves the counts"
    );

    // A consumer re-reads its own entries; each re-read counts.
    let history = group.read_pending(b"e", StreamId::MIN, 10).unwrap();
    let live: Vec<(StreamId, u32)> = history
        .iter()
        .map(|item| match item {
            PendingDelivery::Live(delivery) => (delivery.id(), delivery.deliveries),
            PendingDelivery::Deleted(id) => panic!("{id} is not deleted"),
        })
        .collect();
    assert_eq!(live, [(ids[0], 4), (ids[1], 4), (ids[2], 3), (ids[3], 3)]);
    assert!(
        group
            .read_pending(b"a", StreamId::MIN, 10)
            .unwrap()
            .is_empty(),
        "a holds nothing now"
    );
    assert_eq!(stream.delete(&[ids[2]]).unwrap(), 1);
    let history = group.read_pending(b"e", ids[1], 10).unwrap();
    assert_eq!(history.len(), 2);
    assert!(matches!(history[0], PendingDelivery::Deleted(id) if id == ids[2]));
    match &history[1] {
        PendingDelivery::Live(delivery) => {
            assert_eq!((delivery.id(), delivery.deliveries), (ids[3], 4));
            assert_eq!(delivery.body(), b"e-3");
        }
        PendingDelivery::Deleted(id) => panic!("{id} is not deleted"),
    }
    assert_eq!(
        pel(&stream, b"g")[2],
        (ids[2], b"e".to_vec(), 3),
        "a deleted entry stays pending with its count"
    );
    let swept = group
        .auto_claim(b"f", AutoClaim::new(0, StreamId::MIN))
        .unwrap();
    assert_eq!(swept.deleted, [ids[2]]);
    assert_eq!(ids_of(&swept.deliveries), [ids[0], ids[1], ids[3]]);
    drop((group, stream));
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 11. Deleted entries, compaction, policy changes, concurrent dead letters
// ---------------------------------------------------------------------------------------------

#[test]
fn a_deleted_pending_entry_stays_pending_across_reopens() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let ids = {
        let store = open(dir.path(), &clock, Durability::Always);
        let stream = store.stream(b"s").unwrap();
        let group = stream
            .create_group(b"g", GroupStart::Beginning, GroupPolicy::default())
            .unwrap();
        let ids = append_n(&stream, 4, "e");
        assert_eq!(group.read(b"a", 4).unwrap().len(), 4);
        assert_eq!(stream.delete(&[ids[1]]).unwrap(), 1);
        assert_eq!(stream.trim_max_len(2, false, None).unwrap(), 1);
        drop((group, stream));
        store.close().unwrap();
        ids
    };
    for restart in [Restart::Clean, Restart::Crash] {
        let store = open(dir.path(), &clock, Durability::Always);
        let recovery = group_recovery(&store, b"s");
        assert!(recovery.clamped.is_empty(), "{restart:?}: {recovery:?}");
        let stream = store.stream(b"s").unwrap();
        assert_eq!(
            pel(&stream, b"g").iter().map(|r| r.0).collect::<Vec<_>>(),
            ids,
            "{restart:?}: deleted and trimmed entries stay pending, as in Redis"
        );
        drop(stream);
        match restart {
            Restart::Clean => store.close().unwrap(),
            Restart::Crash => drop(store),
        }
    }
    let store = open(dir.path(), &clock, Durability::Always);
    let stream = store.stream(b"s").unwrap();
    let group = stream.group(b"g").unwrap();
    let history = group.read_pending(b"a", StreamId::MIN, 10).unwrap();
    assert!(matches!(history[0], PendingDelivery::Deleted(id) if id == ids[0]));
    assert!(matches!(history[1], PendingDelivery::Deleted(id) if id == ids[1]));
    assert!(matches!(&history[2], PendingDelivery::Live(d) if d.id() == ids[2]));
    let claimed = group.claim(b"b", &ids, ClaimOptions::default()).unwrap();
    assert_eq!(claimed.deleted, ids[..2]);
    assert_eq!(ids_of(&claimed.deliveries), ids[2..]);
    drop((group, stream));
    store.close().unwrap();
}

#[test]
fn compaction_keeps_the_group_state() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock, Durability::Always);
    let stream = store.stream(b"s").unwrap();
    let policy = GroupPolicy {
        ack_wait_ms: Some(1_000),
        max_deliver: Some(2),
        ..GroupPolicy::default()
    };
    let group = stream
        .create_group(b"g", GroupStart::Beginning, policy)
        .unwrap();
    let ids = append_n(&stream, 8, "e");
    assert_eq!(group.read(b"a", 5).unwrap().len(), 5);
    clock.advance_ms(500);
    assert_eq!(group.ack(&[ids[3]]).unwrap(), 1);
    assert_eq!(group.nack(&[ids[2]], Duration::from_secs(60)).unwrap(), 1);
    clock.advance_ms(501);
    assert_eq!(ids_of(&group.read(b"b", 2).unwrap()), ids[..2]);
    clock.advance_ms(1_001);
    // 4 was due first: it goes to c; 0 and 1 (delivered twice) wait for a later read.
    assert_eq!(ids_of(&group.read(b"c", 1).unwrap()), [ids[4]]);
    // Grow the journal past the compaction threshold: every event names a consumer with a long
    // name (150 x 60 KB). The maintenance thread compacts it, possibly before the loop ends.
    let long = vec![b'x'; 60_000];
    let journal = group_journal(stream.log().dir());
    for _ in 0..150 {
        clock.advance_ms(1);
        assert!(group.read(&long, 0).unwrap().is_empty());
    }
    let before = observe(&stream, b"g", clock.now_ms());
    let deadline = Instant::now() + Duration::from_secs(10);
    // Compaction creates the next journal, writes the snapshot, then removes the old journal.
    while group_journals(stream.log().dir()).contains(&journal) {
        assert!(Instant::now() < deadline, "the journal was never compacted");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(stream.log().dir().join("groups.snapshot").exists());
    assert_ne!(group_journal(stream.log().dir()), journal);
    assert_eq!(observe(&stream, b"g", clock.now_ms()), before);
    // Changes after the compaction go to the new journal.
    assert_eq!(group.ack(&[ids[4]]).unwrap(), 1);
    assert_eq!(ids_of(&group.read(b"d", 1).unwrap()), [ids[5]]);
    assert_eq!(
        info(&stream, b"g").exhausted,
        2,
        "0 and 1 reached the limit"
    );
    let after = observe(&stream, b"g", clock.now_ms());
    drop((group, stream));
    drop(store);

    let store = open(dir.path(), &clock, Durability::Always);
    let recovery = group_recovery(&store, b"s");
    assert_eq!(recovery.journal_damage, None);
    assert!(
        recovery.events_replayed < 100,
        "the snapshot holds most of the state: {recovery:?}"
    );
    let stream = store.stream(b"s").unwrap();
    assert_eq!(observe(&stream, b"g", clock.now_ms()), after);
    assert_eq!(info(&stream, b"g").exhausted, 2);
    // Due times survived too: 2 comes back only after its minute.
    let group = stream.group(b"g").unwrap();
    clock.advance_ms(50_000);
    let counted = |got: Vec<Delivery>| -> Vec<(StreamId, u32)> {
        got.iter().map(|d| (d.id(), d.deliveries)).collect()
    };
    assert_eq!(
        counted(group.read(b"e", 10).unwrap()),
        [(ids[5], 2), (ids[6], 1), (ids[7], 1)]
    );
    clock.advance_ms(10_000);
    assert_eq!(
        counted(group.read(b"e", 10).unwrap()),
        [(ids[6], 2), (ids[7], 2), (ids[2], 2)]
    );
    assert_eq!(info(&stream, b"g").exhausted, 3);
    drop((group, stream));
    store.close().unwrap();
}

#[test]
fn policy_changes_and_administration_survive_a_crash() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let (ids, before) = {
        let store = open(dir.path(), &clock, Durability::Always);
        let stream = store.stream(b"orders").unwrap();
        let group = stream
            .create_group(b"g", GroupStart::Beginning, dlq_policy(1, None))
            .unwrap();
        let ids = append_n(&stream, 6, "e");
        assert_eq!(ids_of(&group.read(b"a", 2).unwrap()), ids[..2]);
        clock.advance_ms(1_001);
        // Both reached the limit of one delivery: exhausted, and the read goes on with 2.
        assert_eq!(ids_of(&group.read(b"b", 1).unwrap()), [ids[2]]);
        assert_eq!(info(&stream, b"g").exhausted, 2);
        // NOACK: 3 is passed without entering the PEL.
        let noack = weir::group::ReadNew {
            noack: true,
            ..weir::group::ReadNew::count(1)
        };
        assert_eq!(ids_of(&group.read_with(b"c", noack).unwrap()), [ids[3]]);
        assert!(group.create_consumer(b"idle").unwrap());
        assert_eq!(group.delete_consumer(b"b").unwrap(), 1);
        // A dead-letter stream now: the exhausted entries are judged again by the next read.
        group
            .set_policy(dlq_policy(2, Some(b"orders-dlq")))
            .unwrap();
        let before = observe(&stream, b"g", clock.now_ms());
        assert_eq!(before.info.exhausted, 0);
        assert_eq!(before.info.last_delivered, ids[3]);
        drop((group, stream));
        drop(store);
        (ids, before)
    };
    let store = open(dir.path(), &clock, Durability::Always);
    let stream = store.stream(b"orders").unwrap();
    assert_eq!(observe(&stream, b"g", clock.now_ms()), before);
    let group = stream.group(b"g").unwrap();
    // 0 and 1 (one delivery each) are below the new limit: delivered again, then 4 and 5.
    let got = group.read(b"d", 10).unwrap();
    assert_eq!(
        got.iter()
            .map(|d| (d.id(), d.deliveries))
            .collect::<Vec<_>>(),
        [(ids[0], 2), (ids[1], 2), (ids[4], 1), (ids[5], 1)]
    );
    clock.advance_ms(1_001);
    assert_eq!(
        group
            .read(b"d", 10)
            .unwrap()
            .iter()
            .map(|d| (d.id(), d.deliveries))
            .collect::<Vec<_>>(),
        [(ids[4], 2), (ids[5], 2)]
    );
    let dlq = store.get(b"orders-dlq").expect("dead letters");
    assert_eq!(
        all_entries(&dlq)
            .iter()
            .map(|e| e.body().to_vec())
            .collect::<Vec<_>>(),
        [b"e-0".to_vec(), b"e-1".to_vec()]
    );
    // Moving the group back hands out entries again, from the start.
    group.set_position(StreamId::MIN, Some(0)).unwrap();
    drop((group, stream, dlq));
    drop(store);
    let store = open(dir.path(), &clock, Durability::Always);
    let stream = store.stream(b"orders").unwrap();
    let group = stream.group(b"g").unwrap();
    assert_eq!(info(&stream, b"g").last_delivered, StreamId::MIN);
    assert_eq!(ids_of(&group.read(b"e", 2).unwrap()), ids[..2]);
    drop((group, stream));
    store.close().unwrap();
}

#[test]
fn concurrent_readers_dead_letter_each_entry_once() {
    const ENTRIES: usize = 40;
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock, Durability::Never);
    let orders = store.stream(b"orders").unwrap();
    let group = orders
        .create_group(
            b"g",
            GroupStart::Beginning,
            GroupPolicy {
                ack_wait_ms: Some(100),
                ..dlq_policy(2, Some(b"orders-dlq"))
            },
        )
        .unwrap();
    let ids = append_n(&orders, ENTRIES, "e");
    let deliveries: Mutex<Vec<(StreamId, u32)>> = Mutex::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    let dlq_len = || store.get(b"orders-dlq").map_or(0, |dlq| dlq.len());
    std::thread::scope(|scope| {
        let mut readers = Vec::new();
        for r in 0..4 {
            let (group, deliveries, dlq_len) = (&group, &deliveries, &dlq_len);
            readers.push(scope.spawn(move || {
                let consumer = format!("r{r}");
                while dlq_len() < ENTRIES as u64 {
                    assert!(Instant::now() < deadline, "entries never reached the DLQ");
                    let got = group.read(consumer.as_bytes(), 3).expect("read");
                    let mut deliveries = deliveries.lock();
                    deliveries.extend(got.iter().map(|d| (d.id(), d.deliveries)));
                }
            }));
        }
        while !readers.iter().all(|reader| reader.is_finished()) {
            clock.advance_ms(60);
            std::thread::sleep(Duration::from_micros(500));
        }
    });
    let mut deliveries = deliveries.into_inner();
    deliveries.sort();
    let expected: Vec<(StreamId, u32)> = ids.iter().flat_map(|&id| [(id, 1), (id, 2)]).collect();
    assert_eq!(deliveries, expected, "each entry delivered exactly twice");
    let dlq = store.get(b"orders-dlq").unwrap();
    let mut letters: Vec<StreamId> = all_entries(&dlq)
        .iter()
        .map(|entry| {
            let headers = headers_of(entry);
            assert_eq!(headers[headers.len() - 1].1, b"2");
            let id = &headers[headers.len() - 3].1;
            std::str::from_utf8(id).unwrap().parse().unwrap()
        })
        .collect();
    letters.sort();
    assert_eq!(letters, ids, "each entry dead-lettered exactly once");
    assert!(pel(&orders, b"g").is_empty());
    drop((group, orders, dlq));
    store.close().unwrap();
}
