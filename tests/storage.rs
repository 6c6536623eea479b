//! Storage-engine tests through the public API: appends and reads across many segments, IDs,
//! clean and crash reopens with damaged files, the directory lock, a full disk, hostile stream
//! names, deletion, trimming, retention and the durability policies.

use std::collections::BTreeSet;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use weir::log::LogError;
use weir::{
    Durability, Entry, GroupPolicy, GroupStart, IdSpec, LogOptions, ManualClock, Message,
    RecoveryReport, Retention, SharedClock, Store, StoreError, StoreOptions, Stream, StreamId,
};

mod rng;
use rng::Rng;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const SEGMENT_HEADER: usize = 64;
const PAGE: usize = 4096;

fn tiny() -> LogOptions {
    LogOptions {
        max_segment_bytes: 64 * 1024,
        initial_segment_bytes: 16 * 1024,
        index_interval_bytes: 512,
    }
}

fn options(clock: &Arc<ManualClock>, durability: Durability) -> StoreOptions {
    StoreOptions {
        durability,
        log: tiny(),
        clock: Arc::clone(clock) as SharedClock,
        ..StoreOptions::default()
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(1_700_000_000_000))
}

/// What the test wrote: the model every read is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    offset: u64,
    id: StreamId,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
}

impl Written {
    fn message(&self) -> Message {
        let mut message = Message::new(self.body.clone());
        for (name, value) in &self.headers {
            message = message.header(name.clone(), value.clone());
        }
        message
    }
}

/// A body of `len` bytes that names its entry, so that a misplaced body is noticed.
fn body_for(tag: u64, len: usize) -> Vec<u8> {
    let mut body: Vec<u8> = (0..len)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(tag * 7) as u8)
        .collect();
    let label = format!("<{tag}>");
    if len >= label.len() {
        body[..label.len()].copy_from_slice(label.as_bytes());
    }
    body
}

fn headers_for(tag: u64, count: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..count)
        .map(|h| {
            (
                format!("h{h}").into_bytes(),
                format!("v{tag}-{h}").into_bytes(),
            )
        })
        .collect()
}

/// Appends one entry built from `tag`, returning what was written.
fn append_tagged(
    stream: &Stream,
    tag: u64,
    body_len: usize,
    header_count: usize,
    id: IdSpec,
) -> Written {
    let mut written = Written {
        offset: 0,
        id: StreamId::MIN,
        headers: headers_for(tag, header_count),
        body: body_for(tag, body_len),
    };
    let appended = stream
        .append(written.message().id_spec(id))
        .expect("append");
    written.offset = appended.offset;
    written.id = appended.id;
    written
}

/// Appends `count` entries of about `body_len` bytes with automatic IDs.
fn fill(stream: &Stream, model: &mut Vec<Written>, count: usize, body_len: usize) {
    for _ in 0..count {
        let tag = model.len() as u64;
        let written = append_tagged(
            stream,
            tag,
            body_len + (tag as usize % 5),
            (tag % 3) as usize,
            IdSpec::Auto,
        );
        assert_eq!(written.offset, tag, "offsets are dense");
        model.push(written);
    }
}

fn assert_entry(entry: &Entry, want: &Written) {
    assert_eq!(entry.offset, want.offset, "offset");
    assert_eq!(entry.id, want.id, "id of offset {}", want.offset);
    assert_eq!(
        entry.body(),
        &want.body[..],
        "body of offset {}",
        want.offset
    );
    let headers: Vec<(Vec<u8>, Vec<u8>)> = entry
        .headers()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(headers, want.headers, "headers of offset {}", want.offset);
}

fn assert_entries(got: &[Entry], want: &[&Written]) {
    assert_eq!(
        got.iter().map(|e| e.offset).collect::<Vec<_>>(),
        want.iter().map(|w| w.offset).collect::<Vec<_>>(),
        "offsets returned"
    );
    for (entry, written) in got.iter().zip(want) {
        assert_entry(entry, written);
    }
}

/// Every live entry, oldest first.
fn all_entries(stream: &Stream) -> Vec<Entry> {
    stream
        .range(Bound::Unbounded, Bound::Unbounded, usize::MAX)
        .expect("range")
}

/// Checks that the stream holds exactly `want` (live entries, in order) through every read path.
fn assert_holds(stream: &Stream, want: &[&Written]) {
    assert_eq!(stream.len(), want.len() as u64, "len");
    assert_entries(&all_entries(stream), want);
    let mut reversed = stream
        .range_rev(Bound::Unbounded, Bound::Unbounded, usize::MAX)
        .expect("range_rev");
    reversed.reverse();
    assert_entries(&reversed, want);
    for written in want {
        let entry = stream
            .read(written.offset)
            .expect("read")
            .unwrap_or_else(|| panic!("offset {} is missing", written.offset));
        assert_entry(&entry, written);
    }
}

fn report_of<'a>(store: &'a Store, name: &[u8]) -> &'a RecoveryReport {
    &store
        .recovery()
        .streams
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no recovery report for {}", String::from_utf8_lossy(name)))
        .1
}

/// A later open may scan a damaged segment again and report the same lost offsets (they are
/// already deleted, so nothing changes), but nothing else: no other offset, no torn tail.
fn assert_no_new_damage(report: &RecoveryReport, already_lost: &BTreeSet<u64>) {
    assert!(report.torn_tail.is_none(), "{report:?}");
    assert!(report.journal_damage.is_none(), "{report:?}");
    for lost in &report.lost {
        assert!(
            lost.offsets.clone().all(|o| already_lost.contains(&o)),
            "new damage reported: {report:?}"
        );
    }
}

/// Runs `setup` (which opens a store, writes, and drops the store without closing it) again
/// until it completes before the store's first maintenance round (500 ms after the open) could
/// have written a checkpoint: the crash tests damage bytes that must lie after the recovery
/// point, as they would after a real crash.
fn before_first_checkpoint<T>(mut setup: impl FnMut() -> T) -> T {
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let out = setup();
        if started.elapsed() < std::time::Duration::from_millis(300) {
            return out;
        }
    }
    panic!("the setup never completed within 300 ms");
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

fn segment_base(path: &Path) -> u64 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("segment file name")
}

/// A record found by walking a segment file's bytes with the documented layout.
#[derive(Debug, Clone, Copy)]
struct RawRecord {
    pos: usize,
    len: usize,
    padded: usize,
    offset: u64,
}

impl RawRecord {
    fn end(&self) -> usize {
        self.pos + self.padded
    }

    /// Byte range of the body inside the file.
    fn body(&self, bytes: &[u8]) -> std::ops::Range<usize> {
        let headers_len = u32_at(bytes, self.pos + 48) as usize;
        let idempotency_len = u32_at(bytes, self.pos + 52) as usize;
        let body_len = u32_at(bytes, self.pos + 56) as usize;
        let start = self.pos + 64 + headers_len + idempotency_len;
        start..start + body_len
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn raw_records(bytes: &[u8]) -> Vec<RawRecord> {
    let mut out = Vec::new();
    let mut pos = SEGMENT_HEADER;
    while pos + 64 <= bytes.len() {
        let len = u32_at(bytes, pos) as usize;
        if len < 64 || bytes[pos + 8] != 1 || pos + len > bytes.len() {
            break;
        }
        let padded = len.div_ceil(8) * 8;
        out.push(RawRecord {
            pos,
            len,
            padded,
            offset: u64_at(bytes, pos + 16),
        });
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
    assert_eq!(
        file.metadata().expect("stat").len(),
        before,
        "damage must not change the file length"
    );
}

fn file_len(path: &Path) -> usize {
    std::fs::metadata(path).expect("stat").len() as usize
}

// ---------------------------------------------------------------------------------------------
// 1. Appends, reads and ranges across many segments
// ---------------------------------------------------------------------------------------------

fn model_range(model: &[Written], from: Bound<StreamId>, to: Bound<StreamId>) -> Vec<&Written> {
    model
        .iter()
        .filter(|w| (from, to).contains(&w.id))
        .collect()
}

fn random_bound(rng: &mut Rng, model: &[Written]) -> Bound<StreamId> {
    let pick = &model[rng.below(model.len() as u64) as usize];
    let id = match rng.below(4) {
        // An ID that exists.
        0 | 1 => pick.id,
        // Just before or after an existing ID (usually absent).
        2 => pick.id.predecessor().unwrap_or(pick.id),
        _ => pick.id.successor().unwrap_or(pick.id),
    };
    match rng.below(5) {
        0 => Bound::Unbounded,
        1 | 2 => Bound::Included(id),
        _ => Bound::Excluded(id),
    }
}

/// Compares bounded forward and reverse ranges with the model of live entries.
fn check_random_ranges(stream: &Stream, live: &[&Written], rng: &mut Rng, rounds: usize) {
    let owned: Vec<Written> = live.iter().map(|w| (*w).clone()).collect();
    for _ in 0..rounds {
        let from = random_bound(rng, &owned);
        let to = random_bound(rng, &owned);
        let max = match rng.below(3) {
            0 => 1 + rng.below(3) as usize,
            1 => 1 + rng.below(100) as usize,
            _ => usize::MAX,
        };
        let want = model_range(&owned, from, to);
        let forward: Vec<&Written> = want.iter().copied().take(max).collect();
        assert_entries(&stream.range(from, to, max).unwrap(), &forward);
        let reverse: Vec<&Written> = want.iter().rev().copied().take(max).collect();
        assert_entries(&stream.range_rev(to, from, max).unwrap(), &reverse);
    }
}

#[test]
fn append_read_and_range_across_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let stream = store.stream(b"many").unwrap();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut model: Vec<Written> = Vec::new();
    for tag in 0..3000u64 {
        let body_len = match rng.below(40) {
            0 => 10 * 1024 + rng.below(64) as usize,
            1..=4 => 0,
            5..=10 => rng.below(16) as usize,
            11..=30 => rng.below(300) as usize,
            _ => 300 + rng.below(900) as usize,
        };
        let header_count = rng.below(4) as usize;
        // IDs: mostly automatic with a clock that sometimes stands still, sometimes explicit
        // with gaps, sometimes `ms-*`.
        let last = model.last().map_or(StreamId::MIN, |w| w.id);
        let spec = match rng.below(10) {
            0 => IdSpec::Explicit(StreamId::new(
                last.ms + rng.below(3),
                last.seq + 1 + rng.below(5),
            )),
            1 => IdSpec::AutoSeq(last.ms + rng.below(2)),
            _ => IdSpec::Auto,
        };
        if rng.below(3) == 0 {
            clock.advance_ms(rng.below(4));
        }
        let written = append_tagged(&stream, tag, body_len, header_count, spec);
        assert_eq!(written.offset, tag, "offsets are dense from 0");
        assert!(written.id > last, "IDs strictly increase");
        model.push(written);
    }
    assert!(
        stream.log().segment_count() >= 10,
        "only {} segments",
        stream.log().segment_count()
    );
    assert_eq!(stream.len(), model.len() as u64);
    assert_eq!(stream.last_id(), model.last().unwrap().id);
    assert_eq!(stream.log().entries_added(), model.len() as u64);

    for written in &model {
        let entry = stream
            .read(written.offset)
            .unwrap()
            .expect("every offset is readable");
        assert_entry(&entry, written);
    }
    assert!(stream.read(model.len() as u64).unwrap().is_none());
    assert!(stream.read(u64::MAX).unwrap().is_none());

    let all: Vec<&Written> = model.iter().collect();
    assert_holds(&stream, &all);

    for _ in 0..300 {
        let from = random_bound(&mut rng, &model);
        let to = random_bound(&mut rng, &model);
        let max = match rng.below(4) {
            0 => 1,
            1 => 1 + rng.below(10) as usize,
            2 => 1 + rng.below(500) as usize,
            _ => usize::MAX,
        };
        let want = model_range(&model, from, to);
        let got = stream.range(from, to, max).unwrap();
        let want_forward: Vec<&Written> = want.iter().copied().take(max).collect();
        assert_entries(&got, &want_forward);
        // Reverse: from the high bound down to the low one.
        let got = stream.range_rev(to, from, max).unwrap();
        let want_reverse: Vec<&Written> = want.iter().rev().copied().take(max).collect();
        assert_entries(&got, &want_reverse);
    }

    // Edge bounds.
    let first = model.first().unwrap().id;
    let last = model.last().unwrap().id;
    assert!(
        stream
            .range(Bound::Included(first), Bound::Included(first), 10)
            .unwrap()
            .len()
            == 1
    );
    assert!(
        stream
            .range(Bound::Excluded(last), Bound::Unbounded, 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        stream
            .range_rev(Bound::Unbounded, Bound::Excluded(last), 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        stream
            .range(Bound::Unbounded, Bound::Unbounded, 0)
            .unwrap()
            .is_empty()
    );
    assert!(
        stream
            .range(Bound::Included(last), Bound::Included(first), 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        stream
            .range_rev(Bound::Unbounded, Bound::Unbounded, 1)
            .unwrap()[0]
            .id,
        last
    );
    drop(stream);
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 2. IDs
// ---------------------------------------------------------------------------------------------

fn assert_too_small(result: Result<weir::Appended, StoreError>) {
    match result {
        Err(StoreError::Log(LogError::IdTooSmall { .. })) => {}
        other => panic!("expected an ID-too-small error, got {other:?}"),
    }
}

#[test]
fn explicit_and_automatic_ids() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(5_000));
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();

    // A fresh stream: 0-0 is never valid, `0-*` gives 0-1.
    let fresh = store.stream(b"fresh").unwrap();
    match fresh.append(Message::new("x").id(StreamId::MIN)) {
        Err(StoreError::Log(LogError::IdZero)) => {}
        other => panic!("0-0 must be rejected, got {other:?}"),
    }
    assert_eq!(fresh.len(), 0);
    assert_eq!(
        fresh
            .append(Message::new("x").id_spec(IdSpec::AutoSeq(0)))
            .unwrap()
            .id,
        StreamId::new(0, 1)
    );
    assert_eq!(
        fresh
            .append(Message::new("y").id_spec(IdSpec::AutoSeq(0)))
            .unwrap()
            .id,
        StreamId::new(0, 2)
    );

    let stream = store.stream(b"ids").unwrap();
    let id = |ms, seq| StreamId::new(ms, seq);
    let mut expected = Vec::new();
    let mut push = |stream: &Stream, spec: IdSpec, want: StreamId| {
        let appended = stream
            .append(Message::new(format!("{want}")).id_spec(spec))
            .unwrap();
        assert_eq!(appended.id, want, "{spec:?}");
        assert_eq!(appended.offset, expected.len() as u64);
        expected.push(want);
    };
    // A clock that goes nowhere: the sequence is bumped.
    push(&stream, IdSpec::Auto, id(5_000, 0));
    push(&stream, IdSpec::Auto, id(5_000, 1));
    push(&stream, IdSpec::Auto, id(5_000, 2));
    clock.advance_ms(1);
    push(&stream, IdSpec::Auto, id(5_001, 0));
    // `ms-*`.
    push(&stream, IdSpec::AutoSeq(5_001), id(5_001, 1));
    push(&stream, IdSpec::AutoSeq(6_000), id(6_000, 0));
    push(&stream, IdSpec::AutoSeq(6_000), id(6_000, 1));
    // Explicit.
    push(&stream, IdSpec::Explicit(id(6_000, 5)), id(6_000, 5));
    // The clock (5001) is behind the last ID (6000-5): the sequence is bumped.
    push(&stream, IdSpec::Auto, id(6_000, 6));
    clock.set_ms(7_000);
    push(&stream, IdSpec::Auto, id(7_000, 0));
    push(&stream, IdSpec::Auto, id(7_000, 1));

    let len = stream.len();
    let last = stream.last_id();
    assert_eq!(last, id(7_000, 1));
    // Rejected: equal, smaller, 0-0, `ms-*` with an older millisecond.
    assert_too_small(stream.append(Message::new("equal").id(last)));
    assert_too_small(stream.append(Message::new("smaller").id(id(7_000, 0))));
    assert_too_small(stream.append(Message::new("smaller").id(id(1, 99))));
    assert_too_small(stream.append(Message::new("older ms").id_spec(IdSpec::AutoSeq(6_999))));
    match stream.append(Message::new("zero").id(StreamId::MIN)) {
        Err(StoreError::Log(LogError::IdZero)) => {}
        other => panic!("0-0 must be rejected, got {other:?}"),
    }
    // A batch with one bad ID writes nothing at all.
    let batch = [
        Message::new("ok").id(id(8_000, 0)),
        Message::new("bad").id(id(7_500, 0)),
    ];
    assert!(stream.append_batch(&batch).is_err());
    assert!(stream.append_batch(&[]).is_err());
    assert_eq!(stream.len(), len, "nothing written by rejected appends");
    assert_eq!(stream.last_id(), last);
    assert!(stream.read(len).unwrap().is_none());
    assert_eq!(stream.log().entries_added(), len);
    // The next append takes the next offset, as if nothing had been tried.
    push(&stream, IdSpec::Explicit(id(7_000, 2)), id(7_000, 2));
    let ids: Vec<StreamId> = all_entries(&stream).iter().map(|e| e.id).collect();
    assert_eq!(ids, expected);
    for (offset, want) in expected.iter().enumerate() {
        let entry = stream.read(offset as u64).unwrap().unwrap();
        assert_eq!(entry.id, *want);
        assert_eq!(entry.body(), want.to_string().as_bytes());
    }

    // After a reopen the last ID is kept: automatic IDs continue above it even though the clock
    // is behind.
    drop((stream, fresh));
    store.close().unwrap();
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let stream = store.stream(b"ids").unwrap();
    assert_eq!(stream.last_id(), id(7_000, 2));
    assert_eq!(
        stream.append(Message::new("after")).unwrap().id,
        id(7_000, 3)
    );
    assert_too_small(stream.append(Message::new("equal").id(id(7_000, 3))));
    drop(stream);
    store.close().unwrap();
}

#[test]
fn ids_run_out_at_the_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let stream = store.stream(b"max").unwrap();
    let near = StreamId::new(u64::MAX, u64::MAX - 1);
    stream.append(Message::new("a").id(near)).unwrap();
    // `ms-*` and `*` still find the very last ID ...
    let last = stream
        .append(Message::new("b").id_spec(IdSpec::AutoSeq(u64::MAX)))
        .unwrap();
    assert_eq!(last.id, StreamId::MAX);
    // ... and then nothing is left.
    match stream.append(Message::new("c")) {
        Err(StoreError::Log(LogError::IdExhausted)) => {}
        other => panic!("expected IdExhausted, got {other:?}"),
    }
    assert!(
        stream
            .append(Message::new("d").id_spec(IdSpec::AutoSeq(u64::MAX)))
            .is_err()
    );
    assert_too_small(stream.append(Message::new("e").id(StreamId::MAX)));
    assert_eq!(stream.len(), 2);
    assert_eq!(stream.last_id(), StreamId::MAX);
    assert!(stream.read(2).unwrap().is_none());
    drop(stream);
    store.close().unwrap();
}

/// Records larger than the first segment, and larger than the largest segment size.
#[test]
fn records_larger_than_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut model = Vec::new();
    let sizes = [
        20 * 1024,
        10,
        100 * 1024,
        0,
        64 * 1024,
        5,
        63 * 1024,
        200 * 1024,
        1,
    ];
    {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        let stream = store.stream(b"big").unwrap();
        for (tag, &size) in sizes.iter().enumerate() {
            let written = append_tagged(&stream, tag as u64, size, 1, IdSpec::Auto);
            assert_eq!(written.offset, tag as u64);
            model.push(written);
            let all: Vec<&Written> = model.iter().collect();
            assert_holds(&stream, &all);
        }
        // No empty segment file is left behind, and each file starts at a record.
        let bases: Vec<u64> = segment_files(stream.log().dir())
            .iter()
            .map(|p| segment_base(p))
            .collect();
        assert_eq!(bases.len(), stream.log().segment_count());
        for file in segment_files(stream.log().dir()) {
            let records = raw_records(&std::fs::read(&file).unwrap());
            assert!(!records.is_empty(), "{} is empty", file.display());
            assert_eq!(records[0].offset, segment_base(&file));
        }
        drop(stream);
        store.close().unwrap();
    }
    let all: Vec<&Written> = model.iter().collect();
    for crash in [false, true, false] {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        assert!(!report_of(&store, b"big").found_damage());
        let stream = store.stream(b"big").unwrap();
        assert_holds(&stream, &all);
        drop(stream);
        if crash {
            drop(store);
        } else {
            store.close().unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Clean reopen
// ---------------------------------------------------------------------------------------------

#[test]
fn clean_reopen_scans_nothing_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut model = Vec::new();
    {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Interval(5))).unwrap();
        let stream = store.stream(b"clean").unwrap();
        fill(&stream, &mut model, 400, 700);
        assert!(stream.log().segment_count() >= 4);
        let empty = store.stream(b"empty").unwrap();
        assert!(empty.is_empty());
        drop((stream, empty));
        store.close().unwrap();
    }
    let store = Store::open_with(dir.path(), options(&clock, Durability::Interval(5))).unwrap();
    assert!(store.recovery().clean);
    assert_eq!(store.recovery().streams.len(), 2);
    for (name, report) in &store.recovery().streams {
        let name = String::from_utf8_lossy(name);
        assert!(report.clean, "{name}: {report:?}");
        assert_eq!(report.scanned_bytes, 0, "{name}: {report:?}");
        assert!(!report.found_damage(), "{name}: {report:?}");
    }
    assert_eq!(report_of(&store, b"clean").entries, 400);
    let stream = store.stream(b"clean").unwrap();
    let all: Vec<&Written> = model.iter().collect();
    assert_holds(&stream, &all);
    assert_eq!(stream.last_id(), model.last().unwrap().id);
    assert_eq!(stream.log().entries_added(), 400);
    fill(&stream, &mut model, 50, 100);
    let all: Vec<&Written> = model.iter().collect();
    assert_holds(&stream, &all);
    assert!(store.stream(b"empty").unwrap().is_empty());
    drop(stream);
    store.close().unwrap();

    // And once more, after appending in the reopened store.
    let store = Store::open_with(dir.path(), options(&clock, Durability::Interval(5))).unwrap();
    assert!(store.recovery().clean);
    assert_eq!(report_of(&store, b"clean").scanned_bytes, 0);
    let stream = store.stream(b"clean").unwrap();
    assert_holds(&stream, &all);
    drop(stream);
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 4. Crash reopen with a damaged tail
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum TailDamage {
    /// Zeroes from the middle of an unflushed record to the end of the file.
    ZeroFromMidRecord,
    /// Zeroes the last 4 KiB page holding records, which starts after the flushed point.
    ZeroPage,
    /// Writes garbage after the last record.
    Garbage,
}

fn crash_with_tail_damage(damage: TailDamage) {
    let clock = clock();
    let (dir, model, log_dir, flushed_count, flushed_file, flushed_end) =
        before_first_checkpoint(|| {
            let dir = tempfile::tempdir().unwrap();
            let mut model = Vec::new();
            let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
            let stream = store.stream(b"crash").unwrap();
            fill(&stream, &mut model, 120, 300);
            stream.flush().unwrap();
            let flushed_count = model.len() as u64;
            let log_dir = stream.log().dir().to_path_buf();
            let last_file = segment_files(&log_dir).pop().unwrap();
            let flushed_end = raw_records(&std::fs::read(&last_file).unwrap())
                .last()
                .unwrap()
                .end();
            // Unflushed: enough to span several pages after the flushed point.
            fill(&stream, &mut model, 40, 350);
            drop(stream);
            drop(store);
            (dir, model, log_dir, flushed_count, last_file, flushed_end)
        });
    let last_file = segment_files(&log_dir).pop().unwrap();
    let bytes = std::fs::read(&last_file).unwrap();
    let records = raw_records(&bytes);
    let end = records.last().unwrap().end();
    // Only bytes after the flushed point are damaged.
    let damage_from = if last_file == flushed_file {
        flushed_end
    } else {
        SEGMENT_HEADER
    };
    let unflushed: Vec<RawRecord> = records
        .iter()
        .copied()
        .filter(|r| r.pos >= damage_from)
        .collect();
    assert!(
        unflushed.len() >= 4,
        "the test needs unflushed records in the last file"
    );
    assert_eq!(unflushed.last().unwrap().offset, model.len() as u64 - 1);
    let survivors = match damage {
        TailDamage::ZeroFromMidRecord => {
            let victim = unflushed[unflushed.len() / 2];
            let at = victim.pos + victim.len / 2;
            overwrite(&last_file, at, &vec![0; bytes.len() - at]);
            victim.offset
        }
        TailDamage::ZeroPage => {
            let page = (damage_from.div_ceil(PAGE)..)
                .map(|p| p * PAGE)
                .take_while(|&p| p < end)
                .filter(|&p| records.iter().all(|r| r.pos != p))
                .last()
                .expect("a page starting inside an unflushed record");
            assert!(page + PAGE >= end, "nothing valid follows the zeroed page");
            overwrite(&last_file, page, &[0; PAGE]);
            records
                .iter()
                .find(|r| r.pos < page && page < r.end())
                .unwrap()
                .offset
        }
        TailDamage::Garbage => {
            let mut rng = Rng(99);
            let garbage: Vec<u8> = (0..300).map(|_| rng.next() as u8 | 1).collect();
            overwrite(&last_file, end + 24, &garbage);
            // And some further away, beyond what the appends after the reopen will cover.
            let far = (end + 8_000).min(bytes.len() - garbage.len());
            overwrite(&last_file, far, &garbage);
            model.len() as u64
        }
    };
    assert!(survivors >= flushed_count);
    let kept: Vec<&Written> = model[..survivors as usize].iter().collect();

    // First reopen: the flushed entries are there, the tail is reported, appends continue.
    let mut appended = Vec::new();
    {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        assert!(!store.recovery().clean);
        let report = report_of(&store, b"crash").clone();
        let tail = report
            .torn_tail
            .clone()
            .unwrap_or_else(|| panic!("{damage:?}: no torn tail in {report:?}"));
        assert_eq!(tail.file, last_file);
        assert!(tail.bytes > 0);
        assert!(report.lost.is_empty(), "{damage:?}: {report:?}");
        assert_eq!(report.entries, survivors);
        let stream = store.stream(b"crash").unwrap();
        assert_eq!(
            tail.pos as usize,
            raw_records(&std::fs::read(&last_file).unwrap())
                .last()
                .unwrap()
                .end()
        );
        assert_holds(&stream, &kept);
        assert_eq!(stream.last_id(), kept.last().unwrap().id);
        // Nothing past the survivors, in particular no half-written entry.
        for offset in survivors..model.len() as u64 + 5 {
            assert!(
                stream.read(offset).unwrap().is_none(),
                "offset {offset} was never fully written"
            );
        }
        for i in 0..5u64 {
            let tag = 10_000 + i;
            let written = append_tagged(&stream, tag, 200, 1, IdSpec::Auto);
            assert_eq!(written.offset, survivors + i);
            appended.push(written);
        }
        stream.flush().unwrap();
        let mut now: Vec<&Written> = kept.clone();
        now.extend(appended.iter());
        assert_holds(&stream, &now);
        drop(stream);
        drop(store);
    }
    // Second reopen (after another crash): the same state and no damage.
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let report = report_of(&store, b"crash");
    assert!(
        !report.found_damage(),
        "{damage:?}: second reopen found {report:?}"
    );
    let stream = store.stream(b"crash").unwrap();
    let mut now: Vec<&Written> = kept.clone();
    now.extend(appended.iter());
    assert_holds(&stream, &now);
    drop(stream);
    store.close().unwrap();
}

#[test]
fn crash_reopen_cuts_a_tail_zeroed_from_mid_record() {
    crash_with_tail_damage(TailDamage::ZeroFromMidRecord);
}

#[test]
fn crash_reopen_cuts_a_zeroed_page() {
    crash_with_tail_damage(TailDamage::ZeroPage);
}

#[test]
fn crash_reopen_cuts_garbage_after_the_last_record() {
    crash_with_tail_damage(TailDamage::Garbage);
}

/// A crash right after a roll: the first record of the newest segment is torn. The segment
/// stays (empty) and appending continues in it.
#[test]
fn crash_reopen_with_the_first_record_of_a_new_segment_torn() {
    let clock = clock();
    let (dir, model, log_dir) = before_first_checkpoint(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Vec::new();
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        let stream = store.stream(b"roll").unwrap();
        while stream.log().segment_count() < 2 {
            fill(&stream, &mut model, 1, 600);
        }
        let log_dir = stream.log().dir().to_path_buf();
        drop(stream);
        drop(store);
        (dir, model, log_dir)
    });
    let last_file = segment_files(&log_dir).pop().unwrap();
    let base = segment_base(&last_file);
    assert_eq!(base, model.len() as u64 - 1);
    let records = raw_records(&std::fs::read(&last_file).unwrap());
    assert_eq!(records.len(), 1);
    let at = records[0].pos + 100;
    overwrite(&last_file, at, &vec![0; file_len(&last_file) - at]);
    let kept: Vec<&Written> = model[..base as usize].iter().collect();

    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let report = report_of(&store, b"roll").clone();
    let tail = report.torn_tail.clone().expect("torn tail");
    assert_eq!(tail.file, last_file);
    assert_eq!(tail.pos, SEGMENT_HEADER as u64);
    assert!(report.lost.is_empty(), "{report:?}");
    let stream = store.stream(b"roll").unwrap();
    assert_holds(&stream, &kept);
    assert_eq!(stream.last_id(), kept.last().unwrap().id);
    // A record too large for the (empty) recovered segment, then a small one.
    let big = append_tagged(&stream, 900, 40 * 1024, 1, IdSpec::Auto);
    assert_eq!(big.offset, base);
    let small = append_tagged(&stream, 901, 10, 1, IdSpec::Auto);
    let mut now = kept.clone();
    now.push(&big);
    now.push(&small);
    assert_holds(&stream, &now);
    stream.flush().unwrap();
    drop(stream);
    drop(store);
    for crash in [true, false, false] {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        assert!(!report_of(&store, b"roll").found_damage());
        let stream = store.stream(b"roll").unwrap();
        assert_holds(&stream, &now);
        drop(stream);
        if crash {
            drop(store);
        } else {
            store.close().unwrap();
        }
    }
}

/// After a crash that left the newest segment empty, trimming removes every sealed segment,
/// including the one holding the last entry: the last ID and entries-added must survive anyway.
#[test]
fn last_id_survives_when_the_segment_holding_it_is_removed() {
    let clock = clock();
    let (dir, mut model, log_dir) = before_first_checkpoint(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Vec::new();
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        let stream = store.stream(b"empty-tip").unwrap();
        while stream.log().segment_count() < 3 {
            fill(&stream, &mut model, 1, 600);
        }
        let log_dir = stream.log().dir().to_path_buf();
        drop(stream);
        drop(store);
        (dir, model, log_dir)
    });
    // The only record of the newest segment never reached the disk.
    let last_file = segment_files(&log_dir).pop().unwrap();
    overwrite(
        &last_file,
        SEGMENT_HEADER,
        &vec![0; file_len(&last_file) - SEGMENT_HEADER],
    );
    model.pop();
    let last_id = model.last().unwrap().id;
    let added = model.len() as u64;
    {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        let stream = store.stream(b"empty-tip").unwrap();
        assert_eq!(stream.last_id(), last_id);
        assert_eq!(stream.log().entries_added(), added);
        stream.trim_max_len(0, false, None).unwrap();
        assert_eq!(
            stream.log().segment_count(),
            1,
            "only the empty active segment is left"
        );
        assert_eq!(stream.len(), 0);
        assert_eq!(stream.last_id(), last_id);
        stream.flush().unwrap();
        drop(stream);
        drop(store);
    }
    for crash in [true, false, false] {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        let stream = store.stream(b"empty-tip").unwrap();
        assert_eq!(stream.len(), 0);
        assert!(all_entries(&stream).is_empty());
        assert_eq!(stream.last_id(), last_id, "crash: {crash}");
        assert_eq!(stream.log().entries_added(), added);
        drop(stream);
        if crash {
            drop(store);
        } else {
            store.close().unwrap();
        }
    }
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let stream = store.stream(b"empty-tip").unwrap();
    assert_too_small(stream.append(Message::new("x").id(last_id)));
    let next = stream.append(Message::new("next")).unwrap();
    assert_eq!(next.offset, added);
    assert!(next.id > last_id);
    drop(stream);
    store.close().unwrap();
}

/// Records that a clean close made durable are damaged at the end of the last segment: they are
/// reported lost, and neither their offsets nor their IDs are handed out again.
#[test]
fn damage_before_the_recovery_point_never_reuses_offsets_or_ids() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut model = Vec::new();
    let log_dir = {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        let stream = store.stream(b"durable").unwrap();
        fill(&stream, &mut model, 150, 300);
        let log_dir = stream.log().dir().to_path_buf();
        drop(stream);
        store.close().unwrap();
        log_dir
    };
    let last_file = segment_files(&log_dir).pop().unwrap();
    let records = raw_records(&std::fs::read(&last_file).unwrap());
    let victim = records[records.len() - 3];
    let at = victim.pos + victim.len / 2;
    overwrite(&last_file, at, &vec![0; file_len(&last_file) - at]);
    let lost: BTreeSet<u64> = (victim.offset..model.len() as u64).collect();
    let last_id = model.last().unwrap().id;

    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let report = report_of(&store, b"durable").clone();
    let reported: BTreeSet<u64> = report.lost.iter().flat_map(|l| l.offsets.clone()).collect();
    assert_eq!(reported, lost, "{report:?}");
    let stream = store.stream(b"durable").unwrap();
    assert_holds(&stream, &live(&model, &lost));
    assert_eq!(stream.last_id(), last_id, "the last ID went back");
    assert_eq!(stream.log().entries_added(), model.len() as u64);
    assert_too_small(stream.append(Message::new("x").id(last_id)));
    let next = append_tagged(&stream, 9_000, 100, 1, IdSpec::Auto);
    assert_eq!(next.offset, model.len() as u64, "an offset was reused");
    assert!(next.id > last_id);
    model.push(next);
    stream.flush().unwrap();
    drop(stream);
    drop(store);
    for crash in [true, false, false] {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        assert_no_new_damage(report_of(&store, b"durable"), &lost);
        let stream = store.stream(b"durable").unwrap();
        assert_holds(&stream, &live(&model, &lost));
        assert_eq!(stream.last_id(), model.last().unwrap().id);
        drop(stream);
        if crash {
            drop(store);
        } else {
            store.close().unwrap();
        }
    }
}

/// A crash loses the unflushed end of a sealed segment while the segment after it survived:
/// the records in between are reported lost, the rest is kept, and later opens agree.
#[test]
fn crash_reopen_with_a_lost_tail_in_a_sealed_segment() {
    // From the middle of a record (its header survives) ...
    lost_tail_in_a_sealed_segment(|victim| victim.pos + victim.len / 2);
    // ... and from just after its length and CRC fields (nothing record-like survives).
    lost_tail_in_a_sealed_segment(|victim| victim.pos + 8);
}

fn lost_tail_in_a_sealed_segment(zero_from: impl Fn(&RawRecord) -> usize) {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut model = Vec::new();
    let (log_dir, flushed_count) = {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        let stream = store.stream(b"gap").unwrap();
        fill(&stream, &mut model, 60, 300);
        stream.flush().unwrap();
        let flushed_count = model.len() as u64;
        let segments = stream.log().segment_count();
        while stream.log().segment_count() < segments + 2 {
            fill(&stream, &mut model, 1, 300);
        }
        let log_dir = stream.log().dir().to_path_buf();
        drop(stream);
        drop(store);
        (log_dir, flushed_count)
    };
    let files = segment_files(&log_dir);
    let victim_file = files[files.len() - 2].clone();
    let bytes = std::fs::read(&victim_file).unwrap();
    let records = raw_records(&bytes);
    let victim = records[records.len() * 2 / 3];
    assert!(victim.offset >= flushed_count);
    let at = zero_from(&victim);
    overwrite(&victim_file, at, &vec![0; bytes.len() - at]);
    let next_base = segment_base(&files[files.len() - 1]);
    let lost: BTreeSet<u64> = (victim.offset..next_base).collect();

    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let report = report_of(&store, b"gap").clone();
    assert_eq!(report.lost.len(), 1, "{report:?}");
    assert_eq!(report.lost[0].file, victim_file);
    assert_eq!(report.lost[0].offsets, victim.offset..next_base);
    assert_eq!(report.lost[0].pos, victim.pos as u64);
    let stream = store.stream(b"gap").unwrap();
    assert_holds(&stream, &live(&model, &lost));
    assert_eq!(stream.last_id(), model.last().unwrap().id);
    let next = append_tagged(&stream, 7_000, 100, 1, IdSpec::Auto);
    assert_eq!(next.offset, model.len() as u64);
    model.push(next);
    stream.flush().unwrap();
    drop(stream);
    drop(store);

    // Another crash, then a clean close: the same state every time, and nothing new reported.
    for crash in [true, false, false] {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        assert_no_new_damage(report_of(&store, b"gap"), &lost);
        let stream = store.stream(b"gap").unwrap();
        assert_holds(&stream, &live(&model, &lost));
        drop(stream);
        if crash {
            drop(store);
        } else {
            store.close().unwrap();
        }
    }
}

/// A crash loses one page in the middle of the unflushed part of the last segment while records
/// after it reached the disk: exactly the records touching the page are lost.
#[test]
fn crash_reopen_with_a_zeroed_page_in_the_middle_of_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut model = Vec::new();
    let (log_dir, flushed_end) = {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        let stream = store.stream(b"hole").unwrap();
        // A first segment of 16 KiB, then one of 32 KiB holding everything else.
        while stream.log().segment_count() < 2 {
            fill(&stream, &mut model, 1, 200);
        }
        fill(&stream, &mut model, 10, 200);
        stream.flush().unwrap();
        let log_dir = stream.log().dir().to_path_buf();
        let last = segment_files(&log_dir).pop().unwrap();
        let flushed_end = raw_records(&std::fs::read(&last).unwrap())
            .last()
            .unwrap()
            .end();
        fill(&stream, &mut model, 60, 200);
        assert_eq!(stream.log().segment_count(), 2);
        drop(stream);
        drop(store);
        (log_dir, flushed_end)
    };
    let last_file = segment_files(&log_dir).pop().unwrap();
    let records = raw_records(&std::fs::read(&last_file).unwrap());
    let page = flushed_end.div_ceil(PAGE) * PAGE + PAGE;
    assert!(
        records.last().unwrap().end() > page + 2 * PAGE,
        "records follow the hole"
    );
    overwrite(&last_file, page, &[0; PAGE]);
    let lost: BTreeSet<u64> = records
        .iter()
        .filter(|r| r.end() > page && r.pos < page + PAGE)
        .map(|r| r.offset)
        .collect();
    assert!(lost.len() >= 2);

    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let report = report_of(&store, b"hole").clone();
    let reported: BTreeSet<u64> = report.lost.iter().flat_map(|l| l.offsets.clone()).collect();
    assert_eq!(reported, lost, "{report:?}");
    assert!(report.lost.iter().all(|l| l.file == last_file));
    assert!(report.torn_tail.is_none(), "{report:?}");
    let stream = store.stream(b"hole").unwrap();
    assert_holds(&stream, &live(&model, &lost));
    let next = append_tagged(&stream, 7_000, 100, 1, IdSpec::Auto);
    assert_eq!(next.offset, model.len() as u64);
    model.push(next);
    stream.flush().unwrap();
    drop(stream);
    drop(store);

    for crash in [true, false, false] {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        assert_no_new_damage(report_of(&store, b"hole"), &lost);
        let stream = store.stream(b"hole").unwrap();
        assert_holds(&stream, &live(&model, &lost));
        drop(stream);
        if crash {
            drop(store);
        } else {
            store.close().unwrap();
        }
    }
}

/// A crash after a clean reopen: sealed segments from before are trusted through their indexes,
/// the newer ones are scanned, and nothing is lost or invented.
#[test]
fn crash_after_a_clean_reopen_keeps_everything_written() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut model = Vec::new();
    {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Interval(5))).unwrap();
        let stream = store.stream(b"again").unwrap();
        fill(&stream, &mut model, 200, 500);
        drop(stream);
        store.close().unwrap();
    }
    for round in 0..3 {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Interval(5))).unwrap();
        assert!(!report_of(&store, b"again").found_damage(), "round {round}");
        let stream = store.stream(b"again").unwrap();
        let all: Vec<&Written> = model.iter().collect();
        assert_holds(&stream, &all);
        fill(&stream, &mut model, 150, 500);
        stream.flush().unwrap();
        drop(stream);
        drop(store);
    }
    let store = Store::open_with(dir.path(), options(&clock, Durability::Interval(5))).unwrap();
    let stream = store.stream(b"again").unwrap();
    let all: Vec<&Written> = model.iter().collect();
    assert_holds(&stream, &all);
    drop(stream);
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 5. A flipped byte in a sealed segment
// ---------------------------------------------------------------------------------------------

/// Which record of a sealed segment gets a flipped byte.
#[derive(Debug, Clone, Copy)]
enum Victim {
    First,
    Middle,
    Last,
}

/// Flips a byte in the body of a record of the second-to-last segment; returns the file, the
/// damaged record's offset and its position.
fn flip_in_sealed_segment(log_dir: &Path, which: Victim) -> (PathBuf, u64, usize) {
    let files = segment_files(log_dir);
    assert!(files.len() >= 3);
    let file = files[files.len() - 2].clone();
    let bytes = std::fs::read(&file).unwrap();
    let records = raw_records(&bytes);
    assert!(records.len() >= 5);
    let victim = match which {
        Victim::Middle => records[records.len() / 2],
        Victim::First => records[0],
        Victim::Last => records[records.len() - 1],
    };
    let body = victim.body(&bytes);
    assert!(body.len() > 10);
    let at = body.start + body.len() / 2;
    overwrite(&file, at, &[bytes[at] ^ 0x20]);
    (file, victim.offset, victim.pos)
}

fn assert_one_lost(stream: &Stream, model: &[Written], lost: u64) {
    for written in model {
        let entry = stream.read(written.offset).unwrap();
        if written.offset == lost {
            assert!(entry.is_none(), "the damaged entry must not be returned");
        } else {
            assert_entry(
                &entry.unwrap_or_else(|| panic!("offset {} lost", written.offset)),
                written,
            );
        }
    }
    let want: Vec<&Written> = model.iter().filter(|w| w.offset != lost).collect();
    assert_entries(&all_entries(stream), &want);
    let mut reversed = stream
        .range_rev(Bound::Unbounded, Bound::Unbounded, usize::MAX)
        .unwrap();
    reversed.reverse();
    assert_entries(&reversed, &want);
    // Neighbours by offset and a range across the damage.
    let l = lost as usize;
    assert_entry(&stream.read(lost - 1).unwrap().unwrap(), &model[l - 1]);
    assert_entry(&stream.read(lost + 1).unwrap().unwrap(), &model[l + 1]);
    let across = stream
        .range(
            Bound::Included(model[l - 3].id),
            Bound::Included(model[l + 3].id),
            100,
        )
        .unwrap();
    assert_entries(
        &across,
        &[
            &model[l - 3],
            &model[l - 2],
            &model[l - 1],
            &model[l + 1],
            &model[l + 2],
            &model[l + 3],
        ],
    );
    let across = stream
        .range(Bound::Excluded(model[l - 1].id), Bound::Unbounded, 2)
        .unwrap();
    assert_entries(&across, &[&model[l + 1], &model[l + 2]]);
    let across = stream
        .range_rev(
            Bound::Included(model[l + 2].id),
            Bound::Excluded(model[l - 3].id),
            100,
        )
        .unwrap();
    assert_entries(
        &across,
        &[&model[l + 2], &model[l + 1], &model[l - 1], &model[l - 2]],
    );
    let exact = stream
        .range(
            Bound::Included(model[l].id),
            Bound::Included(model[l].id),
            10,
        )
        .unwrap();
    assert!(exact.is_empty());
}

fn flip_then_clean_reopen(which: Victim) {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut model = Vec::new();
    let log_dir = {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        let stream = store.stream(b"rot").unwrap();
        fill(&stream, &mut model, 300, 400);
        let log_dir = stream.log().dir().to_path_buf();
        drop(stream);
        store.close().unwrap();
        log_dir
    };
    let (file, lost, _) = flip_in_sealed_segment(&log_dir, which);
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let found_by_open = report_of(&store, b"rot").lost.clone();
    assert!(
        found_by_open
            .iter()
            .all(|l| l.file == file && l.offsets == (lost..lost + 1)),
        "{found_by_open:?}"
    );
    let stream = store.stream(b"rot").unwrap();
    assert_one_lost(&stream, &model, lost);
    if found_by_open.is_empty() {
        // Damage first met by a read is reported there.
        let seen = stream.log().damage_seen();
        assert!(
            seen.iter()
                .any(|l| l.file == file && l.offsets == (lost..lost + 1)),
            "{seen:?}"
        );
    }
    assert_eq!(stream.last_id(), model.last().unwrap().id);
    let next = append_tagged(&stream, 5_000, 10, 0, IdSpec::Auto);
    assert_eq!(next.offset, model.len() as u64);
    model.push(next);
    drop(stream);
    store.close().unwrap();

    // Reopening again (clean, then after a crash) finds the same entries.
    for crash in [false, true] {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        let stream = store.stream(b"rot").unwrap();
        assert_one_lost(&stream, &model, lost);
        drop(stream);
        if crash {
            drop(store);
        } else {
            store.close().unwrap();
        }
    }
}

/// The lag of group `g` of a stream, as `XINFO GROUPS` reports it.
fn lag_of(stream: &Stream) -> Option<u64> {
    stream.inspect_groups(|state, log| state.group_info(log, b"g").expect("group g").lag)
}

#[test]
fn a_damaged_record_a_read_skips_stops_counting_in_the_length() {
    for which in [Victim::Middle, Victim::First, Victim::Last] {
        length_after_damage_found_by_a_read(which);
    }
}

fn length_after_damage_found_by_a_read(which: Victim) {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut model = Vec::new();
    let log_dir = {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        let stream = store.stream(b"rot").unwrap();
        fill(&stream, &mut model, 300, 400);
        stream
            .create_group(b"g", GroupStart::Beginning, GroupPolicy::default())
            .unwrap();
        let log_dir = stream.log().dir().to_path_buf();
        drop(stream);
        store.close().unwrap();
        log_dir
    };
    let (_, lost, _) = flip_in_sealed_segment(&log_dir, which);
    let live = model.len() as u64 - 1;
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let stream = store.stream(b"rot").unwrap();
    assert_one_lost(&stream, &model, lost);
    assert_eq!(
        stream.len(),
        live,
        "{which:?}: reads skip it, the length too"
    );
    assert_eq!(lag_of(&stream), Some(live));
    drop(stream);
    store.close().unwrap();

    for crash in [false, true] {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        let stream = store.stream(b"rot").unwrap();
        assert_eq!(
            stream.len(),
            live,
            "{which:?}: after a reopen too (crash: {crash})"
        );
        assert_eq!(lag_of(&stream), Some(live));
        assert_one_lost(&stream, &model, lost);
        drop(stream);
        if crash {
            drop(store);
        } else {
            store.close().unwrap();
        }
    }
}

/// Flips one byte at `at` of the header of segment `which` (an index into the sorted segment
/// files), reopens cleanly or after a crash, and checks that nothing is lost and that the
/// rebuilt header stays rebuilt.
fn header_flip_then_reopen(which: usize, at: usize, crash: bool) {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut model = Vec::new();
    let log_dir = {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        let stream = store.stream(b"rot").unwrap();
        fill(&stream, &mut model, 300, 400);
        stream.flush().unwrap();
        let log_dir = stream.log().dir().to_path_buf();
        drop(stream);
        if crash {
            drop(store);
        } else {
            store.close().unwrap();
        }
        log_dir
    };
    let files = segment_files(&log_dir);
    assert!(files.len() >= 3);
    let file = files[which.min(files.len() - 1)].clone();
    let byte = std::fs::read(&file).unwrap()[at];
    overwrite(&file, at, &[byte ^ 0x10]);
    let context = format!("byte {at} of {} (crash: {crash})", file.display());

    let store = Store::open_with(dir.path(), options(&clock, Durability::Never))
        .unwrap_or_else(|error| panic!("{context}: {error}"));
    let report = report_of(&store, b"rot");
    let rebuilt: Vec<&Path> = report
        .rebuilt_headers
        .iter()
        .map(|r| r.file.as_path())
        .collect();
    assert_eq!(rebuilt, [file.as_path()], "{context}");
    assert!(report.lost.is_empty(), "{context}: {:?}", report.lost);
    let stream = store.stream(b"rot").unwrap();
    assert_entries(&all_entries(&stream), &model.iter().collect::<Vec<_>>());
    model.push(append_tagged(&stream, 9_000, 10, 0, IdSpec::Auto));
    drop(stream);
    store.close().unwrap();

    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    assert!(
        report_of(&store, b"rot").rebuilt_headers.is_empty(),
        "{context}"
    );
    let stream = store.stream(b"rot").unwrap();
    assert_entries(&all_entries(&stream), &model.iter().collect::<Vec<_>>());
}

#[test]
fn a_flipped_byte_in_a_segment_header_loses_nothing() {
    // Magic, base offset, file length, creation time, reserved bytes, checksum.
    let positions = [2, 17, 25, 33, 44, 61];
    for (i, at) in positions.into_iter().enumerate() {
        // The first, a middle and the active segment, after a clean close or a crash.
        for which in [0, 1, usize::MAX] {
            header_flip_then_reopen(which, at, i % 2 == 1);
        }
    }
}

fn flip_then_crash_reopen(which: Victim) {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut model = Vec::new();
    let log_dir = {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        let stream = store.stream(b"rot").unwrap();
        fill(&stream, &mut model, 300, 400);
        stream.flush().unwrap();
        let log_dir = stream.log().dir().to_path_buf();
        drop(stream);
        drop(store);
        log_dir
    };
    let (file, lost, pos) = flip_in_sealed_segment(&log_dir, which);
    // The index of a sealed segment is a cache that is never fsynced: a crash may lose it, and
    // then recovery has to scan the segment.
    let index = file.with_extension("index");
    if index.exists() {
        std::fs::remove_file(&index).unwrap();
    }
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let report = report_of(&store, b"rot").clone();
    assert_eq!(report.lost.len(), 1, "{report:?}");
    assert_eq!(report.lost[0].file, file);
    assert_eq!(report.lost[0].offsets, lost..lost + 1);
    assert_eq!(report.lost[0].pos, pos as u64);
    assert_eq!(report.lost_records(), 1);
    assert!(report.torn_tail.is_none(), "{report:?}");
    assert_eq!(report.entries, model.len() as u64 - 1);
    let stream = store.stream(b"rot").unwrap();
    assert_eq!(stream.len(), model.len() as u64 - 1);
    assert_one_lost(&stream, &model, lost);
    assert_eq!(stream.last_id(), model.last().unwrap().id);
    let next = append_tagged(&stream, 5_000, 10, 0, IdSpec::Auto);
    assert_eq!(next.offset, model.len() as u64);
    model.push(next);
    drop(stream);
    store.close().unwrap();

    // The loss is settled: later opens (clean, after a crash, clean again) find the same state
    // and report nothing new.
    for crash in [false, true, false] {
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        assert_no_new_damage(report_of(&store, b"rot"), &BTreeSet::from([lost]));
        let stream = store.stream(b"rot").unwrap();
        assert_eq!(stream.len(), model.len() as u64 - 1);
        assert_one_lost(&stream, &model, lost);
        drop(stream);
        if crash {
            drop(store);
        } else {
            store.close().unwrap();
        }
    }
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_loses_one_record_after_a_clean_close() {
    flip_then_clean_reopen(Victim::Middle);
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_loses_one_record_after_a_crash() {
    flip_then_crash_reopen(Victim::Middle);
}

#[test]
fn a_flipped_byte_in_the_first_or_last_record_of_a_sealed_segment_after_a_clean_close() {
    flip_then_clean_reopen(Victim::First);
    flip_then_clean_reopen(Victim::Last);
}

#[test]
fn a_flipped_byte_in_the_first_or_last_record_of_a_sealed_segment_after_a_crash() {
    flip_then_crash_reopen(Victim::First);
    flip_then_crash_reopen(Victim::Last);
}

// ---------------------------------------------------------------------------------------------
// 6. Directory lock
// ---------------------------------------------------------------------------------------------

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path()).unwrap();
    first
        .stream(b"s")
        .unwrap()
        .append(Message::new("one"))
        .unwrap();
    match Store::open(dir.path()) {
        Err(StoreError::Locked(path)) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    // Refused again: a failed attempt must not have broken the lock.
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::Locked(_))
    ));
    drop(first);
    let second = Store::open(dir.path()).unwrap();
    assert_eq!(
        second
            .stream(b"s")
            .unwrap()
            .read(0)
            .unwrap()
            .unwrap()
            .body(),
        b"one"
    );
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::Locked(_))
    ));
    second.close().unwrap();
    let third = Store::open(dir.path()).unwrap();
    assert!(third.recovery().clean);
    third.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 7. Full disk
// ---------------------------------------------------------------------------------------------

const FULL_DISK_ENV: &str = "WEIR_TEST_FULL_DISK_DIR";
/// The largest file the child may create: the first two segments (16 and 32 KiB) fit, the
/// third (64 KiB) does not.
const FILE_SIZE_LIMIT: u64 = 40 * 1024;

fn full_disk_child(dir: &str) {
    use rustix::process::{Resource, Rlimit, setrlimit};
    // SAFETY: setting a signal disposition to SIG_IGN at the start of a single-threaded child.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    setrlimit(
        Resource::Fsize,
        Rlimit {
            current: Some(FILE_SIZE_LIMIT),
            maximum: Some(FILE_SIZE_LIMIT),
        },
    )
    .unwrap();
    let clock = clock();
    let store = Store::open_with(dir, options(&clock, Durability::Always)).unwrap();
    let stream = store.stream(b"full").unwrap();
    let mut acked = 0u64;
    loop {
        assert!(acked < 100_000, "no error after {acked} appends");
        let message = Message::new(body_for(acked, 500)).header("n", acked.to_string());
        match stream.append(message) {
            Ok(appended) => {
                assert_eq!(appended.offset, acked);
                acked += 1;
            }
            Err(error) => {
                println!("APPEND-ERROR: {error}");
                break;
            }
        }
    }
    // A second attempt fails the same way rather than crashing.
    let again = stream.append(Message::new(body_for(acked, 500)).header("n", acked.to_string()));
    assert!(again.is_err(), "{again:?}");
    println!("ACKED {acked}");
}

#[test]
fn full_disk_is_an_error_not_a_signal() {
    if let Ok(dir) = std::env::var(FULL_DISK_ENV) {
        full_disk_child(&dir);
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "full_disk_is_an_error_not_a_signal",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FULL_DISK_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.signal(),
        None,
        "child killed by a signal\n{stdout}\n{stderr}"
    );
    assert!(output.status.success(), "child failed\n{stdout}\n{stderr}");
    assert!(stdout.contains("APPEND-ERROR"), "{stdout}\n{stderr}");
    let acked: u64 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("ACKED "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ACKED line\n{stdout}\n{stderr}"));
    assert!(acked > 20, "{acked} entries fit before the disk filled");

    // Every acknowledged entry is readable after a reopen, and no file is larger than the limit.
    let clock = clock();
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let stream = store.stream(b"full").unwrap();
    assert!(stream.len() >= acked);
    for offset in 0..acked {
        let entry = stream
            .read(offset)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged {offset} lost"));
        assert_eq!(entry.body(), &body_for(offset, 500)[..]);
        let headers: Vec<_> = entry.headers().collect();
        assert_eq!(headers, vec![(&b"n"[..], offset.to_string().as_bytes())]);
    }
    for file in segment_files(stream.log().dir()) {
        assert!(
            file_len(&file) as u64 <= FILE_SIZE_LIMIT,
            "{}",
            file.display()
        );
    }
    let next = stream.append(Message::new("after")).unwrap();
    assert_eq!(next.offset, stream.log().next_offset() - 1);
    drop(stream);
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 8. Hostile stream names
// ---------------------------------------------------------------------------------------------

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        out.push(path.clone());
        if entry.file_type().unwrap().is_dir() {
            walk(&path, out);
        }
    }
}

#[test]
fn hostile_names_are_distinct_streams_inside_the_directory() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut names: Vec<Vec<u8>> = vec![
        b"/".to_vec(),
        b"..".to_vec(),
        b".".to_vec(),
        b"../../x".to_vec(),
        b"../data/streams".to_vec(),
        b"/etc/passwd".to_vec(),
        b"\0".to_vec(),
        b"a\0b".to_vec(),
        vec![b'n'; 10_000],
        [vec![b'n'; 9_999], vec![b'm']].concat(),
        vec![b'N'; 10_000],
        b"Orders".to_vec(),
        b"orders".to_vec(),
        b"ORDERS".to_vec(),
        b"streams".to_vec(),
        b"LOCK".to_vec(),
        vec![0xff, 0xfe, b'/', 0x80],
    ];
    let body = |i: usize| format!("body of stream {i}").into_bytes();
    {
        let store = Store::open(&data).unwrap();
        for (i, name) in names.iter().enumerate() {
            let stream = store.stream(name).unwrap();
            assert_eq!(stream.name(), &name[..]);
            assert_eq!(stream.append(Message::new(body(i))).unwrap().offset, 0);
        }
        for (i, name) in names.iter().enumerate() {
            let stream = store.stream(name).unwrap();
            assert_eq!(stream.len(), 1, "stream {i} is shared with another name");
            assert_eq!(stream.read(0).unwrap().unwrap().body(), &body(i)[..]);
        }
        store.close().unwrap();
    }
    // Nothing was created next to the data directory, and everything inside stays inside.
    let beside: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("data")]);
    let canonical = data.canonicalize().unwrap();
    let mut paths = Vec::new();
    walk(&data, &mut paths);
    for path in &paths {
        assert!(path.starts_with(&data), "{}", path.display());
        assert!(
            path.canonicalize().unwrap().starts_with(&canonical),
            "{}",
            path.display()
        );
        assert!(path.file_name().unwrap().len() <= 255);
    }

    let store = Store::open(&data).unwrap();
    names.sort();
    assert_eq!(store.stream_names(), names);
    for (i, name) in names.iter().enumerate() {
        let stream = store
            .get(name)
            .unwrap_or_else(|| panic!("stream {i} missing after reopen"));
        assert_eq!(stream.len(), 1);
    }
    // Data survived with the right names (bodies were tagged by the original order).
    let original_order: Vec<Vec<u8>> = vec![
        b"/".to_vec(),
        b"..".to_vec(),
        b".".to_vec(),
        b"../../x".to_vec(),
        b"../data/streams".to_vec(),
        b"/etc/passwd".to_vec(),
        b"\0".to_vec(),
        b"a\0b".to_vec(),
        vec![b'n'; 10_000],
        [vec![b'n'; 9_999], vec![b'm']].concat(),
        vec![b'N'; 10_000],
        b"Orders".to_vec(),
        b"orders".to_vec(),
        b"ORDERS".to_vec(),
        b"streams".to_vec(),
        b"LOCK".to_vec(),
        vec![0xff, 0xfe, b'/', 0x80],
    ];
    for (i, name) in original_order.iter().enumerate() {
        let stream = store.get(name).unwrap();
        assert_eq!(stream.read(0).unwrap().unwrap().body(), &body(i)[..]);
    }
    // Deleting one leaves the others alone.
    assert!(store.delete_stream(b"orders").unwrap());
    assert!(!store.delete_stream(b"orders").unwrap());
    assert_eq!(store.get(b"Orders").unwrap().len(), 1);
    assert!(store.get(b"orders").is_none());
    store.close().unwrap();
    let store = Store::open(&data).unwrap();
    assert_eq!(store.stream_names().len(), names.len() - 1);
    assert!(store.get(b"orders").is_none());
    assert_eq!(
        store
            .get(b"ORDERS")
            .unwrap()
            .read(0)
            .unwrap()
            .unwrap()
            .body(),
        &body(original_order.iter().position(|n| n == b"ORDERS").unwrap())[..]
    );
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 9. Delete, trim, retention
// ---------------------------------------------------------------------------------------------

fn live<'a>(model: &'a [Written], gone: &BTreeSet<u64>) -> Vec<&'a Written> {
    model.iter().filter(|w| !gone.contains(&w.offset)).collect()
}

#[test]
fn deleted_entries_vanish_and_stay_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut model = Vec::new();
    let mut gone = BTreeSet::new();
    let store = Store::open_with(dir.path(), options(&clock, Durability::Interval(5))).unwrap();
    let stream = store.stream(b"del").unwrap();
    fill(&stream, &mut model, 200, 300);
    let last_id = stream.last_id();
    assert_eq!(stream.log().meta().max_deleted_id, StreamId::MIN);

    // First, middle, last, an absent ID, and a duplicate.
    let targets = [
        model[0].id,
        model[57].id,
        model[199].id,
        StreamId::new(1, 1),
        model[57].id,
        model[120].id,
    ];
    assert_eq!(stream.delete(&targets).unwrap(), 4);
    gone.extend([0, 57, 199, 120]);
    assert_eq!(
        stream.delete(&[model[57].id]).unwrap(),
        0,
        "already deleted"
    );
    assert_eq!(stream.delete(&[]).unwrap(), 0);
    assert_eq!(
        stream.last_id(),
        last_id,
        "deleting the last entry never lowers the last ID"
    );
    assert_eq!(stream.log().meta().max_deleted_id, model[199].id);
    assert_holds(&stream, &live(&model, &gone));
    for offset in &gone {
        assert!(stream.read(*offset).unwrap().is_none());
    }
    // Many scattered deletions, then bounded ranges around them.
    let mut rng = Rng(0xdead_beef);
    let scattered: Vec<StreamId> = (0..60).map(|_| model[rng.below(200) as usize].id).collect();
    let before = stream.len();
    let count = stream.delete(&scattered).unwrap();
    for id in &scattered {
        gone.insert(model.iter().find(|w| w.id == *id).unwrap().offset);
    }
    assert_eq!(stream.len(), before - count as u64);
    assert_eq!(stream.len(), 200 - gone.len() as u64);
    check_random_ranges(&stream, &live(&model, &gone), &mut rng, 150);
    assert!(
        stream
            .range(
                Bound::Included(model[57].id),
                Bound::Included(model[57].id),
                5
            )
            .unwrap()
            .is_empty()
    );
    assert_eq!(stream.log().entries_added(), 200);

    // Deleting a smaller ID later keeps the largest in max_deleted_id.
    assert_eq!(stream.delete(&[model[10].id]).unwrap(), 1);
    gone.insert(10);
    assert_eq!(stream.log().meta().max_deleted_id, model[199].id);
    // New entries get IDs above the deleted last one.
    let next = append_tagged(&stream, 200, 50, 1, IdSpec::Auto);
    assert_eq!(next.offset, 200);
    assert!(next.id > last_id);
    model.push(next);
    assert_too_small(stream.append(Message::new("x").id(last_id)));
    assert_holds(&stream, &live(&model, &gone));

    // Clean reopen.
    drop(stream);
    store.close().unwrap();
    let store = Store::open_with(dir.path(), options(&clock, Durability::Interval(5))).unwrap();
    let stream = store.stream(b"del").unwrap();
    assert_holds(&stream, &live(&model, &gone));
    assert_eq!(stream.log().meta().max_deleted_id, model[199].id);
    assert_eq!(stream.last_id(), model[200].id);

    // Delete the newest entry, then crash.
    let other = (150..200u64).find(|o| !gone.contains(o)).unwrap();
    assert_eq!(
        stream
            .delete(&[model[200].id, model[other as usize].id])
            .unwrap(),
        2
    );
    gone.extend([200, other]);
    let last_id = stream.last_id();
    assert_eq!(last_id, model[200].id);
    let max_deleted = stream.log().meta().max_deleted_id;
    assert_eq!(max_deleted, model[200].id);
    stream.flush().unwrap();
    drop(stream);
    drop(store);
    let store = Store::open_with(dir.path(), options(&clock, Durability::Interval(5))).unwrap();
    assert!(!report_of(&store, b"del").found_damage());
    let stream = store.stream(b"del").unwrap();
    assert_holds(&stream, &live(&model, &gone));
    assert_eq!(stream.last_id(), last_id);
    assert_eq!(stream.log().meta().max_deleted_id, max_deleted);
    assert_eq!(stream.log().entries_added(), 201);
    let next = stream.append(Message::new("after crash")).unwrap();
    assert_eq!(next.offset, 201);
    assert!(next.id > last_id);
    drop(stream);
    store.close().unwrap();
}

/// Offsets of the first entry of each segment file.
fn bases(stream: &Stream) -> Vec<u64> {
    segment_files(stream.log().dir())
        .iter()
        .map(|p| segment_base(p))
        .collect()
}

#[test]
fn trimming_by_length_and_min_id() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();

    // Exact MAXLEN, with deleted entries in the part that stays and the part that goes.
    let stream = store.stream(b"exact").unwrap();
    let mut model = Vec::new();
    let mut gone = BTreeSet::new();
    fill(&stream, &mut model, 400, 300);
    let files_before = bases(&stream);
    assert!(files_before.len() >= 4);
    assert_eq!(stream.delete(&[model[3].id, model[350].id]).unwrap(), 2);
    gone.extend([3, 350]);
    assert_eq!(stream.trim_max_len(1_000, false, None).unwrap(), 0);
    let removed = stream.trim_max_len(150, false, None).unwrap();
    assert_eq!(stream.len(), 150);
    assert_eq!(removed, 398 - 150);
    // The newest 150 live entries remain.
    let mut kept = live(&model, &gone);
    let dropped = kept.len() - 150;
    for w in &kept[..dropped] {
        gone.insert(w.offset);
    }
    kept.drain(..dropped);
    assert_holds(&stream, &kept);
    for w in &model {
        if gone.contains(&w.offset) {
            assert!(stream.read(w.offset).unwrap().is_none());
        }
    }
    // Sealed segments holding only trimmed entries are gone from the disk.
    let first_live = kept[0].offset;
    let files_after = bases(&stream);
    assert!(files_after.len() < files_before.len());
    assert_eq!(
        files_after.iter().filter(|&&b| b <= first_live).count(),
        1,
        "{files_after:?} {first_live}"
    );
    assert_eq!(stream.last_id(), model[399].id);
    assert_eq!(stream.log().entries_added(), 400);

    // Approximate MAXLEN removes whole nodes (of Redis's 4096 bytes here, a dozen entries of
    // 300 bytes) from the head, never going below the target, and space comes back by whole
    // segments.
    let approx = store.stream(b"approx").unwrap();
    let mut amodel = Vec::new();
    fill(&approx, &mut amodel, 400, 300);
    let removed = approx.trim_max_len(100, true, None).unwrap();
    let len = approx.len();
    assert!((100..120).contains(&len), "{len}");
    assert_eq!(removed, 400 - len);
    let first = all_entries(&approx)[0].offset;
    let akept: Vec<&Written> = amodel[first as usize..].iter().collect();
    assert_holds(&approx, &akept);
    // With a limit, at most that many entries go (whole nodes only).
    let removed = approx.trim_max_len(0, true, Some(1)).unwrap();
    assert_eq!(removed, 0, "no whole node fits in a limit of 1");
    let before = approx.len();
    let removed = approx.trim_max_len(0, true, Some(50)).unwrap();
    assert!((1..=50).contains(&removed), "{removed}");
    assert_eq!(approx.len(), before - removed);

    // MINID: everything below the ID goes, the ID itself stays.
    let minid = store.stream(b"minid").unwrap();
    let mmodel: Vec<Written> = (0..300u64)
        .map(|i| {
            append_tagged(
                &minid,
                i,
                300,
                1,
                IdSpec::Explicit(StreamId::new(1_000 + i * 10, 0)),
            )
        })
        .collect();
    assert_eq!(minid.trim_min_id(mmodel[0].id, false, None).unwrap(), 0);
    let removed = minid.trim_min_id(mmodel[123].id, false, None).unwrap();
    assert_eq!(removed, 123);
    let mkept: Vec<&Written> = mmodel[123..].iter().collect();
    assert_holds(&minid, &mkept);
    // An ID between two entries.
    let between = mmodel[130].id.successor().unwrap();
    assert!(between < mmodel[131].id);
    assert_eq!(minid.trim_min_id(between, false, None).unwrap(), 8);
    let mkept: Vec<&Written> = mmodel[131..].iter().collect();
    assert_holds(&minid, &mkept);
    // Approximate MINID keeps at least every entry at or above the ID.
    let removed = minid.trim_min_id(mmodel[250].id, true, None).unwrap();
    let first = all_entries(&minid)[0].offset;
    assert!((131..=250).contains(&first));
    assert_eq!(removed, first - 131);
    let mkept: Vec<&Written> = mmodel[first as usize..].iter().collect();
    assert_holds(&minid, &mkept);

    // Everything survives a clean reopen.
    drop((stream, approx, minid));
    store.close().unwrap();
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    assert_holds(&store.get(b"exact").unwrap(), &kept);
    assert_holds(
        &store.get(b"approx").unwrap(),
        &amodel[(400 - store.get(b"approx").unwrap().len()) as usize..]
            .iter()
            .collect::<Vec<_>>(),
    );
    assert_holds(&store.get(b"minid").unwrap(), &mkept);
    // Trim again, then crash: the trim is kept.
    let exact = store.get(b"exact").unwrap();
    let removed = exact.trim_max_len(100, false, None).unwrap();
    assert_eq!(removed, 50);
    let kept: Vec<&Written> = kept[50..].to_vec();
    assert_holds(&exact, &kept);
    exact.flush().unwrap();
    drop(exact);
    drop(store);
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    assert!(!report_of(&store, b"exact").found_damage());
    assert_holds(&store.get(b"exact").unwrap(), &kept);
    assert_holds(&store.get(b"minid").unwrap(), &mkept);
    assert_eq!(store.get(b"exact").unwrap().log().entries_added(), 400);
    store.close().unwrap();
}

#[test]
fn retention_removes_whole_sealed_segments_and_keeps_the_last_id() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();

    // By size: only the active segment may remain.
    let by_size = store.stream(b"size").unwrap();
    let mut model = Vec::new();
    fill(&by_size, &mut model, 300, 400);
    let files = segment_files(by_size.log().dir());
    assert!(files.len() >= 4);
    by_size
        .set_retention(Retention {
            max_age_ms: None,
            max_bytes: Some(1),
        })
        .unwrap();
    let after = segment_files(by_size.log().dir());
    assert_eq!(
        after,
        vec![files.last().unwrap().clone()],
        "only the active segment is kept"
    );
    let first = segment_base(&after[0]);
    let kept: Vec<&Written> = model[first as usize..].iter().collect();
    assert!(!kept.is_empty());
    assert_holds(&by_size, &kept);
    assert_eq!(by_size.enforce_retention().unwrap(), 0);
    // Appending more rolls new segments, which retention removes again.
    fill(&by_size, &mut model, 200, 400);
    by_size.enforce_retention().unwrap();
    assert_eq!(by_size.log().segment_count(), 1);
    assert_eq!(segment_files(by_size.log().dir()).len(), 1);
    let first = segment_base(&segment_files(by_size.log().dir())[0]);
    let kept: Vec<&Written> = model[first as usize..].iter().collect();
    assert_holds(&by_size, &kept);

    // By age: segments whose newest entry is old go, newer ones stay.
    let by_age = store.stream(b"age").unwrap();
    let mut amodel = Vec::new();
    fill(&by_age, &mut amodel, 150, 400);
    let old_count = amodel.len();
    clock.advance_ms(100_000);
    fill(&by_age, &mut amodel, 150, 400);
    let before = bases(&by_age);
    by_age
        .set_retention(Retention {
            max_age_ms: Some(50_000),
            max_bytes: None,
        })
        .unwrap();
    let after = bases(&by_age);
    let first = after[0];
    assert!(after.len() < before.len());
    assert!(
        first <= old_count as u64,
        "a segment holding new entries was removed"
    );
    // Every remaining sealed segment's newest entry is recent; the first kept holds new entries.
    let next_after_first = after.get(1).copied().unwrap_or(amodel.len() as u64);
    assert!(next_after_first > old_count as u64);
    let kept: Vec<&Written> = amodel[first as usize..].iter().collect();
    assert_holds(&by_age, &kept);
    // Time passes: every sealed segment is old, the active one is still kept.
    clock.advance_ms(1_000_000);
    by_age.enforce_retention().unwrap();
    assert_eq!(by_age.log().segment_count(), 1);
    assert_eq!(segment_files(by_age.log().dir()).len(), 1);

    // Trim everything away: the last ID and entries-added survive reopens.
    let last_id = by_age.last_id();
    let added = by_age.log().entries_added();
    by_age.trim_max_len(0, false, None).unwrap();
    assert_eq!(by_age.len(), 0);
    assert!(all_entries(&by_age).is_empty());
    assert_eq!(by_age.last_id(), last_id);
    assert_eq!(by_age.log().entries_added(), added);
    drop((by_size, by_age));
    store.close().unwrap();

    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let by_age = store.stream(b"age").unwrap();
    assert_eq!(by_age.len(), 0);
    assert!(all_entries(&by_age).is_empty());
    assert_eq!(by_age.last_id(), last_id);
    assert_eq!(by_age.log().entries_added(), added);
    assert_eq!(by_age.log().meta().retention.max_age_ms, Some(50_000));
    // Appends continue after the old ones, even with a clock far behind the last ID.
    assert_too_small(by_age.append(Message::new("x").id(last_id)));
    let next = by_age.append(Message::new("after")).unwrap();
    assert_eq!(next.offset, added);
    assert!(next.id > last_id);
    // Trim that one away as well, then crash.
    by_age.trim_max_len(0, false, None).unwrap();
    by_age.flush().unwrap();
    drop(by_age);
    drop(store);
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let by_age = store.stream(b"age").unwrap();
    assert_eq!(by_age.len(), 0);
    assert_eq!(by_age.last_id(), next.id);
    assert_eq!(by_age.log().entries_added(), added + 1);
    let after = by_age.append(Message::new("again")).unwrap();
    assert_eq!(after.offset, added + 1);
    assert!(after.id > next.id);
    let by_size = store.stream(b"size").unwrap();
    let first = segment_base(&segment_files(by_size.log().dir())[0]);
    let kept: Vec<&Written> = model[first as usize..].iter().collect();
    assert_holds(&by_size, &kept);
    drop((by_age, by_size));
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 10. Durability policies
// ---------------------------------------------------------------------------------------------

#[test]
fn always_durability_with_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = Store::open_with(dir.path(), options(&clock, Durability::Always)).unwrap();
    assert_eq!(store.durability(), Durability::Always);
    let stream = store.stream(b"always").unwrap();
    const THREADS: u64 = 8;
    const EACH: u64 = 40;
    let writing = std::sync::atomic::AtomicBool::new(true);
    let results: Vec<Vec<(u64, StreamId, Vec<u8>)>> = std::thread::scope(|scope| {
        // A reader alongside the writers: what it sees is always a dense prefix, in ID order.
        let reader = {
            let stream = Arc::clone(&stream);
            let writing = &writing;
            scope.spawn(move || {
                let mut rounds = 0;
                while writing.load(std::sync::atomic::Ordering::Acquire) || rounds == 0 {
                    let seen = all_entries(&stream);
                    for (i, entry) in seen.iter().enumerate() {
                        assert_eq!(entry.offset, i as u64, "a reader saw a hole");
                    }
                    assert!(seen.windows(2).all(|w| w[0].id < w[1].id));
                    if let Some(last) = seen.last() {
                        assert!(stream.read(last.offset).unwrap().is_some());
                    }
                    rounds += 1;
                }
            })
        };
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let stream = Arc::clone(&stream);
                let clock = Arc::clone(&clock);
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..EACH {
                        let body = format!("thread {t} entry {i}").into_bytes();
                        let appended = stream
                            .append(Message::new(body.clone()).header("t", t.to_string()))
                            .expect("every append succeeds");
                        mine.push((appended.offset, appended.id, body));
                        if i % 7 == 0 {
                            clock.advance_ms(1);
                        }
                    }
                    mine
                })
            })
            .collect();
        let results = handles.into_iter().map(|h| h.join().unwrap()).collect();
        writing.store(false, std::sync::atomic::Ordering::Release);
        reader.join().unwrap();
        results
    });
    let mut offsets = BTreeSet::new();
    for mine in &results {
        // Each thread's own entries are in order.
        assert!(mine.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
        for (offset, id, body) in mine {
            assert!(offsets.insert(*offset), "offset {offset} given twice");
            let entry = stream.read(*offset).unwrap().unwrap();
            assert_eq!(entry.id, *id);
            assert_eq!(entry.body(), &body[..]);
        }
    }
    assert_eq!(
        offsets,
        (0..THREADS * EACH).collect::<BTreeSet<_>>(),
        "offsets are dense"
    );
    assert_eq!(stream.len(), THREADS * EACH);
    let ids: Vec<StreamId> = all_entries(&stream).iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    drop(stream);
    // Everything acknowledged under Always is there after a crash.
    drop(store);
    let store = Store::open_with(dir.path(), options(&clock, Durability::Always)).unwrap();
    let stream = store.stream(b"always").unwrap();
    assert_eq!(stream.len(), THREADS * EACH);
    assert!(!report_of(&store, b"always").found_damage());
    drop(stream);
    store.close().unwrap();
}

#[tokio::test]
async fn append_async_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = Store::open_with(dir.path(), options(&clock, Durability::Always)).unwrap();
    let stream = store.stream(b"async").unwrap();
    for i in 0..20u64 {
        let appended = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.append_async(Message::new(format!("async {i}"))),
        )
        .await
        .expect("append_async resolves")
        .unwrap();
        assert_eq!(appended.offset, i);
    }
    assert_eq!(stream.read(19).unwrap().unwrap().body(), b"async 19");
    drop(stream);
    store.close().unwrap();

    // Under the interval policy it resolves without waiting for the flusher.
    let store =
        Store::open_with(dir.path(), options(&clock, Durability::Interval(60_000))).unwrap();
    let stream = store.stream(b"async").unwrap();
    let appended = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.append_async(Message::new("late")),
    )
    .await
    .expect("append_async must not wait for the interval")
    .unwrap();
    assert_eq!(appended.offset, 20);
    drop(stream);
    store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_append_async_under_always() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = Store::open_with(dir.path(), options(&clock, Durability::Always)).unwrap();
    let stream = store.stream(b"tasks").unwrap();
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let stream = Arc::clone(&stream);
            tokio::spawn(async move {
                let mut offsets = Vec::new();
                for i in 0..10u64 {
                    let appended = stream
                        .append_async(Message::new(format!("{t}-{i}")))
                        .await
                        .unwrap();
                    offsets.push(appended.offset);
                }
                offsets
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    for task in tasks {
        for offset in task.await.unwrap() {
            assert!(all.insert(offset));
        }
    }
    assert_eq!(all, (0..80).collect::<BTreeSet<_>>());
    assert_eq!(stream.len(), 80);
    drop(stream);
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 11. Crash reopen from the active segment's index, persisted by the checkpoint
// ---------------------------------------------------------------------------------------------

/// What happens to the unflushed tail before the reopen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterPoint {
    Intact,
    /// A byte of one record's body changes: that record is lost, the ones after it stay.
    DamagedRecord,
    /// Everything from the middle of a record on is zeroed: a torn tail.
    Torn,
}

/// A crashed store whose last segment holds records after the recovery point of an explicit
/// checkpoint. Returns the directory, the model, the log directory and the checkpoint's position
/// in the last segment (read from the index file the checkpoint wrote).
fn crashed_after_checkpoint(
    clock: &Arc<ManualClock>,
) -> (tempfile::TempDir, Vec<Written>, PathBuf, usize) {
    before_first_checkpoint(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Vec::new();
        let store = Store::open_with(dir.path(), options(clock, Durability::Never)).unwrap();
        let stream = store.stream(b"tail").unwrap();
        fill(&stream, &mut model, 200, 300);
        let point = stream.log().checkpoint().unwrap();
        fill(&stream, &mut model, 30, 300);
        let log_dir = stream.log().dir().to_path_buf();
        drop(stream);
        drop(store);
        let last = segment_files(&log_dir).pop().unwrap();
        assert_eq!(
            segment_base(&last),
            point.segment_base,
            "the tail must stay in the checkpoint's segment"
        );
        assert_eq!(index_end(&log_dir, &last), point.pos as usize);
        (dir, model, log_dir, point.pos as usize)
    })
}

/// `end_pos` of a segment's index file.
fn index_end(log_dir: &Path, segment: &Path) -> usize {
    u64_at(&std::fs::read(index_path(log_dir, segment)).unwrap(), 24) as usize
}

fn index_path(log_dir: &Path, segment: &Path) -> PathBuf {
    log_dir.join(format!("{:020}.index", segment_base(segment)))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

type Observed = Vec<(u64, StreamId, Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>)>;

fn observed(entries: &[Entry]) -> Observed {
    entries
        .iter()
        .map(|e| {
            let headers = e.headers().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
            (e.offset, e.id, e.body().to_vec(), headers)
        })
        .collect()
}

/// Everything a reader sees: by offset (one by one and in batches) and by ID range both ways.
fn observe_stream(stream: &Stream) -> (Observed, Observed, Observed, Observed, StreamId) {
    let all = all_entries(stream);
    let mid = all[all.len() / 2].id;
    let by_offset: Vec<Entry> = (0..stream.log().next_offset() + 3)
        .filter_map(|offset| stream.read(offset).unwrap())
        .collect();
    let from_mid = stream
        .range(Bound::Included(mid), Bound::Unbounded, 50)
        .unwrap();
    let back = stream
        .range_rev(Bound::Excluded(mid), Bound::Unbounded, usize::MAX)
        .unwrap();
    (
        observed(&all),
        observed(&by_offset),
        observed(&from_mid),
        observed(&back),
        stream.last_id(),
    )
}

/// Opens `dir` and a copy of it without the persisted index of the last segment (which the
/// engine then rescans whole), and checks that both recover exactly the same stream. Returns
/// the report of `dir`'s open and the bytes the full rescan scanned.
fn open_beside_full_rescan(
    clock: &Arc<ManualClock>,
    dir: &Path,
    log_dir: &Path,
) -> (RecoveryReport, u64) {
    let rescan = tempfile::tempdir().unwrap();
    copy_dir(dir, rescan.path());
    let rescan_log = rescan.path().join(log_dir.strip_prefix(dir).unwrap());
    let last = segment_files(&rescan_log).pop().unwrap();
    std::fs::remove_file(index_path(&rescan_log, &last)).unwrap();

    let full_store = Store::open_with(rescan.path(), options(clock, Durability::Never)).unwrap();
    let store = Store::open_with(dir, options(clock, Durability::Never)).unwrap();
    let full = report_of(&full_store, b"tail").clone();
    let report = report_of(&store, b"tail").clone();
    let losses = |r: &RecoveryReport| -> Vec<(u64, std::ops::Range<u64>)> {
        r.lost.iter().map(|l| (l.pos, l.offsets.clone())).collect()
    };
    assert_eq!(losses(&report), losses(&full));
    let torn = |r: &RecoveryReport| r.torn_tail.as_ref().map(|t| (t.pos, t.bytes));
    assert_eq!(torn(&report), torn(&full));
    assert_eq!(report.entries, full.entries);
    let stream = store.stream(b"tail").unwrap();
    let full_stream = full_store.stream(b"tail").unwrap();
    assert_eq!(observe_stream(&stream), observe_stream(&full_stream));
    assert_eq!(stream.log().next_offset(), full_stream.log().next_offset());
    assert_eq!(stream.log().meta(), full_stream.log().meta());
    (report, full.scanned_bytes)
}

fn crash_reopen_from_the_persisted_index(after: AfterPoint) {
    let clock = clock();
    let (dir, model, log_dir, point) = crashed_after_checkpoint(&clock);
    let last = segment_files(&log_dir).pop().unwrap();
    let bytes = std::fs::read(&last).unwrap();
    let tail: Vec<RawRecord> = raw_records(&bytes)
        .into_iter()
        .filter(|r| r.pos >= point)
        .collect();
    assert_eq!(tail.len(), 30, "the tail is what followed the checkpoint");
    let victim = tail[tail.len() / 2];
    let gone: BTreeSet<u64> = match after {
        AfterPoint::Intact => BTreeSet::new(),
        AfterPoint::DamagedRecord => {
            let body = victim.body(&bytes);
            overwrite(&last, body.start + 2, &[!bytes[body.start + 2]]);
            BTreeSet::from([victim.offset])
        }
        AfterPoint::Torn => {
            let at = victim.pos + victim.len / 2;
            overwrite(&last, at, &vec![0; bytes.len() - at]);
            (victim.offset..model.len() as u64).collect()
        }
    };

    let (report, full_scan) = open_beside_full_rescan(&clock, dir.path(), &log_dir);
    assert_eq!(
        report.scanned_bytes,
        full_scan - (point - SEGMENT_HEADER) as u64,
        "{after:?}: only the tail is scanned"
    );
    let reported: BTreeSet<u64> = report.lost.iter().flat_map(|l| l.offsets.clone()).collect();
    match after {
        AfterPoint::Torn => {
            assert!(reported.is_empty(), "{report:?}");
            assert!(report.torn_tail.is_some(), "{report:?}");
        }
        _ => {
            assert_eq!(reported, gone, "{after:?}: {report:?}");
            assert!(report.torn_tail.is_none(), "{report:?}");
        }
    }
    // The open settled into a checkpoint with its own index: a second crash open scans nothing
    // and keeps the same entries.
    let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
    let again = report_of(&store, b"tail");
    assert_eq!(again.scanned_bytes, 0, "{again:?}");
    assert_no_new_damage(again, &gone);
    let stream = store.stream(b"tail").unwrap();
    let kept: Vec<&Written> = match after {
        AfterPoint::Torn => model.iter().filter(|w| w.offset < victim.offset).collect(),
        _ => live(&model, &gone),
    };
    assert_holds(&stream, &kept);
    drop(stream);
    store.close().unwrap();
}

#[test]
fn crash_reopen_scans_only_the_tail_after_the_persisted_index() {
    crash_reopen_from_the_persisted_index(AfterPoint::Intact);
}

#[test]
fn crash_reopen_from_the_persisted_index_skips_a_damaged_record_in_the_tail() {
    crash_reopen_from_the_persisted_index(AfterPoint::DamagedRecord);
}

#[test]
fn crash_reopen_from_the_persisted_index_cuts_a_torn_tail() {
    crash_reopen_from_the_persisted_index(AfterPoint::Torn);
}

#[test]
fn a_damaged_stale_or_truncated_persisted_index_falls_back_to_the_full_scan() {
    let clock = clock();
    for spoil in ["flipped byte", "truncated", "stale"] {
        let (dir, mut model, log_dir, _) = crashed_after_checkpoint(&clock);
        let last = segment_files(&log_dir).pop().unwrap();
        let index = index_path(&log_dir, &last);
        let bytes = std::fs::read(&index).unwrap();
        match spoil {
            "flipped byte" => overwrite(&index, 40, &[bytes[40] ^ 1]),
            "truncated" => std::fs::write(&index, &bytes[..bytes.len() - 32]).unwrap(),
            _ => {
                // A later crash open checkpoints again; the earlier index comes back.
                let store =
                    Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
                let stream = store.stream(b"tail").unwrap();
                fill(&stream, &mut model, 10, 300);
                drop(stream);
                drop(store);
                std::fs::write(&index, &bytes).unwrap();
            }
        }
        let (report, full_scan) = open_beside_full_rescan(&clock, dir.path(), &log_dir);
        assert_eq!(report.scanned_bytes, full_scan, "{spoil}: {report:?}");
        assert!(!report.found_damage(), "{spoil}: {report:?}");
        let store = Store::open_with(dir.path(), options(&clock, Durability::Never)).unwrap();
        let stream = store.stream(b"tail").unwrap();
        assert_holds(&stream, &model.iter().collect::<Vec<_>>());
        drop(stream);
        store.close().unwrap();
    }
}

/// Entries, a deletion and a group's deliveries and acks, left by a crash (no close): the meta
/// and group journals hold frames the next open must replay.
fn crashed_with_journals(dir: &std::path::Path) -> (Vec<Vec<u8>>, usize) {
    let store = Store::open_with(
        dir,
        weir::StoreOptions {
            durability: Durability::Always,
            ..weir::StoreOptions::default()
        },
    )
    .unwrap();
    let stream = store.stream(b"jobs").unwrap();
    for n in 0..10 {
        stream
            .append(weir::Message::new(format!("job {n}")))
            .unwrap();
    }
    let first = stream.range(Bound::Unbounded, Bound::Unbounded, 1).unwrap()[0].id;
    stream.delete(&[first]).unwrap();
    let group = stream
        .create_group(
            b"g",
            weir::GroupStart::Beginning,
            weir::GroupPolicy::default(),
        )
        .unwrap();
    let delivered = group.read(b"c", 4).unwrap();
    delivered[0].ack().unwrap();
    let bodies = live_bodies(&stream);
    (bodies, 3)
}

fn live_bodies(stream: &weir::Stream) -> Vec<Vec<u8>> {
    stream
        .range(Bound::Unbounded, Bound::Unbounded, usize::MAX)
        .unwrap()
        .iter()
        .map(|entry| entry.body().to_vec())
        .collect()
}

#[test]
fn a_flipped_byte_in_a_journal_header_loses_nothing() {
    for (file_prefix, at) in [
        ("meta.", 0),
        ("meta.", 9),
        ("meta.", 20),
        ("meta.", 30),
        ("groups.", 3),
        ("groups.", 13),
        ("groups.", 17),
        ("groups.", 29),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (bodies, pending) = crashed_with_journals(dir.path());
        let stream_dir = std::fs::read_dir(dir.path().join("streams"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .next()
            .unwrap();
        let journal = std::fs::read_dir(&stream_dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with(file_prefix) && name.ends_with(".journal")
            })
            .unwrap();
        let mut bytes = std::fs::read(&journal).unwrap();
        assert!(bytes.len() > 32, "{journal:?} holds frames");
        bytes[at] ^= 0x10;
        std::fs::write(&journal, &bytes).unwrap();

        let store = Store::open(dir.path()).unwrap();
        let stream = store.stream(b"jobs").unwrap();
        let case = format!("{file_prefix} byte {at}");
        assert_eq!(live_bodies(&stream), bodies, "{case}");
        let summary = stream.inspect_groups(|state, _| state.pending_summary(b"g").unwrap().count);
        assert_eq!(summary, pending, "{case}");
        let rebuilt = file_prefix == "meta."
            && !report_of(&store, b"jobs").rebuilt_headers.is_empty()
            || file_prefix == "groups."
                && store.recovery().groups[0]
                    .1
                    .rebuilt_journal_header
                    .is_some();
        assert!(rebuilt, "{case}: the rebuilt header is reported");
        drop(stream);
        store.close().unwrap();
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(
            live_bodies(&again.stream(b"jobs").unwrap()),
            bodies,
            "{case}, reopened"
        );
    }
}
