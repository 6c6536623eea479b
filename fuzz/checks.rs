//! The properties each fuzz target checks, one function per target. The fuzz targets call
//! them on the fuzzer's inputs; `tests/fuzz_corpus.rs` calls them on every file of the seed
//! corpus (`fuzz/corpus/TARGET/`), so `cargo test` replays the corpus without a fuzzer.
//!
//! Every function panics when a property fails and returns normally otherwise.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use weir::StreamId;
use weir::group::durable::{
    DurableGroups, GROUP_JOURNAL_KIND, GROUP_SNAPSHOT_FILE, GROUP_SNAPSHOT_KIND, decode_snapshot,
    encode_snapshot, group_journal_name,
};
use weir::group::{EntrySource, GroupEvent, GroupPolicy, GroupsState, ReadNew, StreamFacts};
use weir::journal;
use weir::log::{IdSpec, Log, LogOptions, NewEntry, index_file_name, segment_file_name};
use weir::record::{self, NewRecord};
use weir::segment::{ScanItem, Scanner};
use weir::server::resp::{Limits, RequestParser};
use weir::server::{FsyncPolicy, Server, ServerConfig};

/// What a target checks on one input.
pub type Check = fn(&[u8]);

/// The targets by name, as `fuzz/corpus/` names its directories.
pub const TARGETS: &[(&str, Check)] = &[
    ("record_decode", record_decode),
    ("segment_recovery", segment_recovery),
    ("group_recovery", group_recovery),
    ("resp_parser", resp_parser),
    ("commands", commands),
];

const NOW_MS: u64 = 1_700_000_000_000;
const SEGMENT_HEADER: usize = 64;

/// A temporary directory, in memory when the system has `/dev/shm`: the checks create and
/// sync files on every input, and a disk's syncs would slow the fuzzer a hundredfold.
fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().expect("temporary directory")
}

/// Bytes `at..at+8` of `data` as a little-endian number, zero-padded.
fn number(data: &[u8], at: usize) -> u64 {
    let mut bytes = [0; 8];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(bytes)
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

fn reencode(view: &record::RecordView<'_>) -> Vec<u8> {
    let headers: Vec<(&[u8], &[u8])> = view.headers().collect();
    assert_eq!(headers.len(), view.header_count(), "every header iterates");
    let record = NewRecord {
        offset: view.offset,
        id: view.id,
        timestamp_ms: view.timestamp_ms,
        headers: &headers,
        idempotency: view.idempotency,
        body: view.body,
    };
    assert_eq!(record.padded_len(), view.padded_len, "sizes agree");
    record.to_vec().expect("a decoded record encodes")
}

/// Decoding any bytes never panics; a record that decodes encodes back to the same bytes; a
/// record built from the input encodes and decodes back to itself.
pub fn record_decode(data: &[u8]) {
    if let Ok(view) = record::decode(data) {
        let bytes = reencode(&view);
        let len = record::peek(data).expect("a decoded record peeks").len;
        assert_eq!(
            bytes[..len],
            data[..len],
            "decode then encode gives the same bytes"
        );
    }
    if let Ok(view) = record::decode_verified(data) {
        let bytes = reencode(&view);
        assert_eq!(
            record::decode(&bytes),
            Ok(view),
            "decode then encode then decode"
        );
    }

    // The input as the fields of a record.
    let parts: Vec<&[u8]> = data.splitn(6, |&b| b == 0xff).collect();
    let part = |i: usize| parts.get(i).copied().unwrap_or_default();
    let headers: Vec<(&[u8], &[u8])> = part(1)
        .chunks(7)
        .map(|chunk| chunk.split_at(chunk.len() / 2))
        .collect();
    let idempotency = (!part(2).is_empty()).then(|| record::IdempotencyKey {
        producer: part(2),
        iid: part(3),
    });
    let record = NewRecord {
        offset: number(part(0), 0),
        id: StreamId::new(number(part(0), 8), number(part(0), 16)),
        timestamp_ms: number(part(0), 24),
        headers: &headers,
        idempotency,
        body: part(4),
    };
    let bytes = record.to_vec().expect("a small record encodes");
    let view = record::decode(&bytes).expect("an encoded record decodes");
    assert_eq!(
        (view.offset, view.id, view.timestamp_ms, view.body),
        (record.offset, record.id, record.timestamp_ms, record.body)
    );
    assert_eq!(view.idempotency, record.idempotency);
    assert!(
        view.headers().eq(headers.iter().copied()),
        "headers round-trip"
    );
}

// ---------------------------------------------------------------------------------------------
// Segment recovery
// ---------------------------------------------------------------------------------------------

fn log_options() -> LogOptions {
    LogOptions {
        max_segment_bytes: 16 * 1024,
        initial_segment_bytes: 8 * 1024,
        index_interval_bytes: 256,
    }
}

/// Every entry a log serves, as (offset, record bytes).
fn all_records(log: &Log) -> BTreeMap<u64, Vec<u8>> {
    let entries = log
        .range(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            usize::MAX,
        )
        .expect("reading a recovered log");
    entries
        .iter()
        .map(|entry| {
            let bytes = entry.record_bytes().to_vec();
            record::decode(&bytes).expect("a served record is valid");
            (entry.offset, bytes)
        })
        .collect()
}

/// Opening a log whose segment holds arbitrary bytes behind a valid header never panics, and
/// what it serves is valid; a valid log with arbitrary damage keeps every record before the
/// first damaged byte and reports every record it dropped.
pub fn segment_recovery(data: &[u8]) {
    let dir = scratch_dir();
    let first_segment = dir.path().join(segment_file_name(0));
    let mode = data.first().copied().unwrap_or(0);
    let (log, _) = Log::open(dir.path(), log_options(), false, NOW_MS).expect("a new log");
    if mode % 2 == 0 {
        drop(log);
        let mut image = std::fs::read(&first_segment).expect("read segment");
        let room = image.len() - SEGMENT_HEADER;
        let garbage = &data[1.min(data.len())..];
        let garbage = &garbage[..garbage.len().min(room)];
        image[SEGMENT_HEADER..SEGMENT_HEADER + garbage.len()].copy_from_slice(garbage);
        std::fs::write(&first_segment, &image).expect("write segment");
        if let Ok((log, _)) = Log::open(dir.path(), log_options(), false, NOW_MS) {
            all_records(&log);
        }
        return;
    }
    // Enough entries, some large, to fill more than one segment.
    let flags = data.get(1).copied().unwrap_or(0);
    let count = 1 + usize::from(flags % 48);
    for i in 0..count {
        let len = usize::from(data.get(2 + i).copied().unwrap_or(7)) * 2;
        let body = vec![i as u8; len];
        let headers = [(b"n".as_slice(), &body[..len.min(5)])];
        let entry = NewEntry {
            id: IdSpec::Auto,
            headers: &headers,
            body: &body,
            idempotency: None,
        };
        log.append(&[entry], NOW_MS + i as u64).expect("append");
    }
    drop(log);
    // Every segment's bytes beyond its header, one after the other: damage lands anywhere in
    // them, and a record lies before the damage when it ends before the first changed byte.
    let segments = segment_files(dir.path());
    let clean: Vec<Vec<u8>> = segments
        .iter()
        .map(|(_, path)| std::fs::read(path).expect("read segment"))
        .collect();
    let mut records = Vec::new();
    let mut start = 0;
    for ((base, _), bytes) in segments.iter().zip(&clean) {
        for item in Scanner::new(bytes, SEGMENT_HEADER, *base) {
            if let ScanItem::Record { pos, record } = item {
                let span =
                    start + pos - SEGMENT_HEADER..start + pos - SEGMENT_HEADER + record.padded_len;
                let len = record::peek(&bytes[pos..]).expect("a clean record").len;
                records.push((span, record.offset, bytes[pos..pos + len].to_vec()));
            }
        }
        start += bytes.len() - SEGMENT_HEADER;
    }
    assert_eq!(
        records.len(),
        count,
        "every appended record is in a segment"
    );
    let mut damaged = clean.clone();
    let damages = data.get(2 + count..).unwrap_or_default();
    for damage in damages.chunks(3) {
        let mut at = number(damage, 0) as u16 as usize % start;
        let value = damage.get(2).copied().unwrap_or(0);
        for bytes in &mut damaged {
            let room = bytes.len() - SEGMENT_HEADER;
            if at < room {
                bytes[SEGMENT_HEADER + at] = value;
                break;
            }
            at -= room;
        }
    }
    let first_change = clean
        .iter()
        .zip(&damaged)
        .flat_map(|(a, b)| a[SEGMENT_HEADER..].iter().zip(&b[SEGMENT_HEADER..]))
        .position(|(a, b)| a != b);
    for ((_, path), bytes) in segments.iter().zip(&damaged) {
        std::fs::write(path, bytes).expect("write segment");
    }
    if flags & 0x80 != 0 {
        // Index files are caches: damage to them must cost nothing.
        for (base, _) in &segments {
            let index = dir.path().join(index_file_name(*base));
            let Ok(mut bytes) = std::fs::read(&index) else {
                continue;
            };
            if !bytes.is_empty() {
                for damage in damages.chunks(3) {
                    let at = number(damage, 0) as u16 as usize % bytes.len();
                    bytes[at] ^= damage.get(2).copied().unwrap_or(1) | 1;
                }
                std::fs::write(&index, &bytes).expect("write index");
            }
        }
    }
    let Ok((log, report)) = Log::open(dir.path(), log_options(), false, NOW_MS) else {
        return;
    };
    let served = all_records(&log);
    let mut missing = 0;
    for (span, offset, original) in &records {
        match served.get(offset) {
            // Padding is not part of the record: damage there changes nothing.
            Some(bytes) => assert_eq!(
                bytes.get(..original.len()),
                Some(&original[..]),
                "record {offset} changed"
            ),
            None => {
                missing += 1;
                assert!(
                    first_change.is_some_and(|change| change < span.end),
                    "record {offset} before the damage at {first_change:?} was dropped"
                );
            }
        }
    }
    assert!(
        missing == 0 || report.found_damage(),
        "{missing} records dropped without a report: {report:?}"
    );
    for offset in served.keys() {
        assert!(
            records.iter().any(|r| r.1 == *offset),
            "invented record {offset}"
        );
    }
}

/// The segment files of a log directory with their base offsets, oldest first.
fn segment_files(dir: &std::path::Path) -> Vec<(u64, std::path::PathBuf)> {
    let mut files: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(dir)
        .expect("list log directory")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let base = name.strip_suffix(".seg")?.parse().ok()?;
            Some((base, path))
        })
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------
// Group journal and snapshot recovery
// ---------------------------------------------------------------------------------------------

/// A log of entries `1-0 ..= 40-0` at offsets 0..40, as groups see it.
struct Entries;

const ENTRIES: u64 = 40;

impl EntrySource for Entries {
    fn entries_after(&self, after: StreamId, max: usize) -> Vec<(StreamId, u64)> {
        let first = if after.seq == 0 {
            after.ms + 1
        } else {
            after.ms + 2
        };
        (first..=ENTRIES)
            .take(max)
            .map(|ms| (StreamId::new(ms, 0), ms - 1))
            .collect()
    }

    fn lookup(&self, id: StreamId) -> Option<u64> {
        (id.seq == 0 && (1..=ENTRIES).contains(&id.ms)).then(|| id.ms - 1)
    }

    fn facts(&self) -> StreamFacts {
        StreamFacts {
            entries_added: ENTRIES,
            length: ENTRIES,
            first_id: StreamId::new(1, 0),
            last_id: StreamId::new(ENTRIES, 0),
            max_deleted_id: StreamId::MIN,
        }
    }
}

/// Runs one group operation picked by `op` on the groups.
fn group_operation(groups: &mut DurableGroups, op: &[u8], now_ms: u64) {
    let group: &[u8] = if op[0] % 2 == 0 { b"g" } else { b"h" };
    let consumer: &[u8] = [b"a".as_slice(), b"b", b"c"][usize::from(op[1] % 3)];
    // Within the log, so that recovery's clamp to the log changes nothing.
    let id = StreamId::new(u64::from(op[2]) % (ENTRIES + 1), 0);
    let _ = match op[0] % 8 {
        0 | 1 => groups.apply(|state| {
            let policy = GroupPolicy {
                ack_wait_ms: (op[1] % 2 == 0).then_some(50),
                max_deliver: (op[2] % 3 == 0).then_some(2),
                ..GroupPolicy::default()
            };
            state.create_group_with(group, id, None, policy)
        }),
        2 | 3 => groups
            .apply(|state| {
                state.read_new(
                    &Entries,
                    group,
                    consumer,
                    ReadNew::count(usize::from(op[2] % 4)),
                    now_ms,
                )
            })
            .map(drop),
        4 => groups.apply(|state| state.ack(group, &[id])).map(drop),
        5 => groups
            .apply(|state| state.nack(group, None, &[id], u64::from(op[1]), now_ms))
            .map(drop),
        6 => groups
            .apply(|state| state.delete_consumer(group, consumer))
            .map(drop),
        _ => groups
            .apply(|state| Ok(state.destroy_group(group)))
            .map(drop),
    };
}

/// Opening groups whose journal or snapshot holds arbitrary bytes never panics; a valid journal
/// with arbitrary damage keeps every event before the first damaged byte and reports the rest.
pub fn group_recovery(data: &[u8]) {
    let dir = scratch_dir();
    let journal_path = dir.path().join(group_journal_name(1));
    let mode = data.first().copied().unwrap_or(0) % 3;
    let rest = &data[1.min(data.len())..];
    let (mut groups, _) = DurableGroups::open(dir.path(), &Entries).expect("new groups");
    match mode {
        0 => {
            drop(groups);
            let mut journal = std::fs::OpenOptions::new()
                .append(true)
                .open(&journal_path)
                .expect("open journal");
            journal.write_all(rest).expect("append garbage");
            drop(journal);
            if let Ok((groups, _)) = DurableGroups::open(dir.path(), &Entries) {
                groups.state().snapshot_events();
            }
        }
        1 => {
            drop(groups);
            if let Ok(events) = decode_snapshot(rest) {
                assert_eq!(encode_snapshot(&events), rest, "snapshot round trip");
            }
            journal::write_snapshot(
                dir.path(),
                GROUP_SNAPSHOT_FILE,
                GROUP_SNAPSHOT_KIND,
                1,
                rest,
            )
            .expect("write snapshot");
            if let Ok((groups, _)) = DurableGroups::open(dir.path(), &Entries) {
                groups.state().snapshot_events();
            }
        }
        _ => {
            let (ops, damage) = rest.split_at(rest.len().min(3 * 24));
            let header = std::fs::metadata(&journal_path).expect("stat").len() as usize;
            for (i, op) in ops.chunks_exact(3).enumerate() {
                group_operation(&mut groups, op, NOW_MS + 10 * i as u64);
            }
            let live = groups.state().snapshot_events();
            drop(groups);
            let clean = std::fs::read(&journal_path).expect("read journal");
            // The state after each event of the journal, with where its frame ends.
            let replay = journal::Journal::decode(&journal_path, &clean, GROUP_JOURNAL_KIND)
                .expect("the undamaged journal reads");
            assert_eq!(replay.damage, None, "the undamaged journal is whole");
            let mut state = GroupsState::new();
            let mut end = header as u64;
            let mut states = vec![(end, state.snapshot_events())];
            for frame in &replay.frames {
                state.apply(&GroupEvent::decode(frame).expect("a journaled event decodes"));
                end += 8 + frame.len() as u64;
                states.push((end, state.snapshot_events()));
            }
            assert_eq!(
                states.last().map(|s| &s.1),
                Some(&live),
                "replay rebuilds the state"
            );
            // The frames and the first bytes of the zeros preallocated after them: damage and
            // cuts land there rather than far into the zeros.
            let frames_end = states.last().map_or(header, |last| last.0 as usize);
            let mut damaged = clean[..clean.len().min(frames_end + 64)].to_vec();
            if damaged.len() > header {
                let span = damaged.len() - header;
                for change in damage.chunks(3) {
                    let at = header + (number(change, 0) as u16 as usize) % span;
                    damaged[at] = change.get(2).copied().unwrap_or(0);
                }
            }
            let cut = damage.first().map_or(damaged.len(), |&cut| {
                damaged.len() - usize::from(cut).min(damaged.len() - header)
            });
            damaged.truncate(cut);
            std::fs::write(&journal_path, &damaged).expect("write journal");
            let first_change = clean
                .iter()
                .zip(&damaged)
                .position(|(a, b)| a != b)
                .unwrap_or(damaged.len()) as u64;
            let (groups, recovery) =
                DurableGroups::open(dir.path(), &Entries).expect("damage after the header opens");
            let kept = states
                .iter()
                .rev()
                .find(|(end, _)| *end <= first_change)
                .expect("the empty journal is before any damage");
            assert_eq!(
                groups.state().snapshot_events(),
                kept.1,
                "every event before the damage at {first_change} is kept"
            );
            // A journal that ends right after the kept events, cut there or holding only zeros
            // from there on (as the space a group journal preallocates does), looks like a
            // shorter journal; any other damage that loses events must be reported.
            let lost_events = states.last().is_some_and(|last| last.1 != kept.1);
            let looks_shorter = damaged
                .get(kept.0 as usize..)
                .is_some_and(|rest| rest.iter().all(|&b| b == 0));
            assert!(
                !lost_events || looks_shorter || recovery.journal_damage.is_some(),
                "events lost without a report"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RESP parser
// ---------------------------------------------------------------------------------------------

/// Limits small enough for inputs to exceed every one of them.
fn small_limits() -> Limits {
    Limits {
        max_bulk_len: 16,
        max_array_len: 4,
        max_inline_len: 32,
        max_buffered: usize::MAX,
    }
}

/// The most bytes one command can take within `limits`: an array header line, then each
/// argument's header line, bytes and line end. A parser waiting for more than this is buffering
/// a command it should already have refused.
fn largest_command(limits: &Limits) -> usize {
    let line = limits.max_inline_len + 2;
    line + limits.max_array_len * (line + limits.max_bulk_len + 2)
}

type Parsed = Vec<Result<Vec<Vec<u8>>, String>>;

/// Parses everything in `buf` with `parser` until it needs more bytes or fails.
fn drain(parser: &mut RequestParser, buf: &mut BytesMut, out: &mut Parsed) -> bool {
    loop {
        match parser.parse(buf) {
            Ok(Some(args)) => {
                let limits = parser.limits();
                assert!(args.len() <= limits.max_array_len.max(limits.max_inline_len));
                for arg in &args {
                    assert!(arg.len() <= limits.max_bulk_len.max(limits.max_inline_len));
                }
                out.push(Ok(args.iter().map(|arg| arg.to_vec()).collect()));
            }
            Ok(None) => {
                assert!(
                    buf.len() <= largest_command(parser.limits()),
                    "waiting with {} bytes buffered: more than any command within the limits",
                    buf.len()
                );
                return true;
            }
            Err(error) => {
                out.push(Err(error.to_string()));
                return false;
            }
        }
    }
}

/// The parser never panics, keeps every argument within the limits, and gives the same
/// commands whether the bytes arrive at once or a few at a time.
pub fn resp_parser(data: &[u8]) {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let mut whole = Parsed::new();
    let mut buf = BytesMut::from(input);
    drain(
        &mut RequestParser::new(small_limits()),
        &mut buf,
        &mut whole,
    );

    let mut pieces = Parsed::new();
    let mut parser = RequestParser::new(small_limits());
    let mut buf = BytesMut::new();
    let sizes = [1, 2, 3, 5, 8, 13, 64];
    for (i, chunk) in input
        .chunks(sizes[usize::from(step) % sizes.len()])
        .enumerate()
    {
        buf.extend_from_slice(chunk);
        if !drain(&mut parser, &mut buf, &mut pieces) {
            break;
        }
        if i % 7 == 3 {
            // A parser may be replaced between reads (the connection keeps one, but the
            // one-shot `parse_command` must agree with it).
            parser = RequestParser::new(small_limits());
        }
    }
    assert_eq!(pieces, whole, "partial frames resume to the same commands");
}

// ---------------------------------------------------------------------------------------------
// Commands against an in-process server
// ---------------------------------------------------------------------------------------------

static PANICKED: AtomicBool = AtomicBool::new(false);

/// What stops the in-process server: its shutdown signal, its thread, its data directory.
type ServerHandle = (
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
    std::path::PathBuf,
);

static SERVER: Mutex<Option<ServerHandle>> = Mutex::new(None);

/// Removes the server's data directory when a fuzzer exits (libFuzzer ends with `exit`), so
/// runs leave nothing behind; the server itself goes with the process.
extern "C" fn remove_server_dir() {
    if let Ok(server) = SERVER.try_lock() {
        if let Some((_, _, dir)) = server.as_ref() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Stops the in-process server (closing its store cleanly) and removes its data directory.
/// A fuzzer never calls it: the server lives as long as the process.
pub fn stop_server() {
    let handle = SERVER.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some((shutdown, thread, dir)) = handle {
        let _ = shutdown.send(());
        thread.join().expect("the server thread ends");
        std::fs::remove_dir_all(&dir).expect("remove the server's data directory");
    }
}

/// An in-process server on a loopback port, started once per process.
fn server_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            previous(info);
        }));
        let dir = scratch_dir().keep();
        let config = ServerConfig {
            dir: dir.clone(),
            port: 0,
            fsync: FsyncPolicy::No,
            ..ServerConfig::default()
        };
        let (ready, port) = std::sync::mpsc::channel();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let server = Server::open(config.clone()).expect("open server");
                let listeners = weir::server::listen(&server).await.expect("listen");
                let address = listeners.plain_address().expect("a plain listener");
                ready.send(address.port()).expect("report port");
                weir::server::serve(server, listeners, async {
                    let _ = stopped.await;
                })
                .await
                .expect("the server closes its store cleanly");
            });
        });
        *SERVER.lock().unwrap_or_else(|e| e.into_inner()) = Some((shutdown, thread, dir));
        // SAFETY: registers a function without arguments that touches only Rust statics and
        // the file system; it runs once, at exit.
        let registered = unsafe { libc::atexit(remove_server_dir) };
        assert_eq!(registered, 0, "register the exit cleanup");
        port.recv().expect("the server started")
    })
}

/// Arguments of one command line, made safe to run in a loop: no command that blocks for
/// long, changes the server's configuration, or kills clients.
fn sanitized(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args: Vec<Vec<u8>> = line
        .split(|&b| b == b' ')
        .filter(|arg| !arg.is_empty())
        .take(24)
        .map(<[u8]>::to_vec)
        .collect();
    let name = args.first()?.to_ascii_lowercase();
    let sub = args.get(1).map(|arg| arg.to_ascii_lowercase());
    let forbidden = match name.as_slice() {
        b"config" => sub.as_deref() != Some(b"get"),
        b"client" => sub.as_deref() == Some(b"kill"),
        b"debug" => sub.as_deref() != Some(b"reload"),
        _ => false,
    };
    if forbidden {
        return None;
    }
    for i in 1..args.len() {
        if args[i - 1].eq_ignore_ascii_case(b"block") {
            args[i] = b"1".to_vec();
        }
    }
    Some(args)
}

fn encode(args: &[Vec<u8>], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Sends `request`, closes the sending side, and reads every reply until the server closes.
fn exchange(port: u16, request: &[u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    socket.write_all(request).expect("send commands");
    socket.shutdown(Shutdown::Write).expect("half-close");
    let mut replies = Vec::new();
    socket
        .read_to_end(&mut replies)
        .expect("the server answers every command and closes");
    replies
}

/// Any sequence of commands (one per line, arguments separated by spaces) leaves the server
/// without a panic and still answering.
pub fn commands(data: &[u8]) {
    let port = server_port();
    let mut request = Vec::new();
    encode(&[b"FLUSHALL".to_vec()], &mut request);
    for line in data.split(|&b| b == b'\n').take(48) {
        if let Some(args) = sanitized(line) {
            encode(&args, &mut request);
        }
    }
    exchange(port, &request);
    assert!(!PANICKED.load(Ordering::SeqCst), "a command panicked");
    let mut ping = Vec::new();
    encode(&[b"PING".to_vec()], &mut ping);
    assert_eq!(
        exchange(port, &ping),
        b"+PONG\r\n",
        "the server still answers"
    );
}
