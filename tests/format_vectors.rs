//! The test vectors of `storage-format.md`, Appendix A, read from the document itself and checked
//! against the engine's encoders and decoders: the document and the code cannot drift apart
//! without this test failing. Each vector is encoded from the values its description gives and
//! compared byte for byte, and decoded back to those values.

use std::collections::BTreeMap;
use std::path::Path;

use weir::cluster::entry_codec::{decode_payload, encode_payload};
use weir::cluster::types::{Command, EntryPayload};
use weir::cluster::wal::{
    RAFT_LOG_KIND, RAFT_META_KIND, WalEntry, WalLogId, WalMeta, WalOptions, WalVote, decode_entry,
};
use weir::codec::{Decoder, Encoder};
use weir::group::durable::{
    GROUP_JOURNAL_KIND, GROUP_SNAPSHOT_FILE, GROUP_SNAPSHOT_KIND, decode_snapshot, encode_snapshot,
};
use weir::group::{Due, GroupEvent, PendingRecord};
use weir::idempotency::{IdempotencyConfig, IdempotencyWindows};
use weir::journal::{self, FileKind, Journal};
use weir::log::{Checkpoint, MetaEvent, MetaState, RecoveryPoint};
use weir::record::{self, IdempotencyKey, NewRecord};
use weir::segment::SegmentHeader;
use weir::stream::{IDEMPOTENCY_SNAPSHOT_FILE, IDEMPOTENCY_SNAPSHOT_KIND};
use weir::{Discard, GroupPolicy, StreamConfig, StreamId};

const DOCUMENT: &str = include_str!("../storage-format.md");

/// The appendix's vectors this file checks; a vector added to the document without a check
/// here fails [`every_vector_of_the_appendix_is_checked`].
const CHECKED: [&str; 13] = [
    "A.1", "A.2", "A.3", "A.4", "A.5", "A.6", "A.7", "A.8", "A.9", "A.10", "A.11", "A.12", "A.13",
];

const META_JOURNAL_KIND: FileKind = FileKind(*b"LMET");
const CHECKPOINT_KIND: FileKind = FileKind(*b"LCKP");

/// One subsection of Appendix A: its prose and the bytes of each of its hex blocks, in order.
struct Vector {
    text: String,
    blocks: Vec<Vec<u8>>,
}

/// Every subsection of Appendix A, by number (`"A.2"`). A hex block is a fenced block of lines
/// `OFFSET: hh hh ...`; each line's offset must be the count of bytes before it, so that a line
/// dropped or duplicated in the document is caught here rather than read as a shorter vector.
fn appendix() -> BTreeMap<String, Vector> {
    let start = DOCUMENT
        .find("\n## Appendix A.")
        .expect("storage-format.md has an Appendix A");
    let mut vectors = BTreeMap::new();
    let mut current: Option<(String, Vector)> = None;
    let mut block: Option<Vec<u8>> = None;
    for line in DOCUMENT[start..].lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            vectors.extend(current.take());
            let number = heading.split_whitespace().next().expect("numbered heading");
            let vector = Vector {
                text: String::new(),
                blocks: Vec::new(),
            };
            current = Some((number.to_string(), vector));
            continue;
        }
        let Some((number, vector)) = current.as_mut() else {
            continue;
        };
        if line.starts_with("```") {
            match block.take() {
                Some(bytes) => vector.blocks.push(bytes),
                None => block = Some(Vec::new()),
            }
        } else if let Some(bytes) = block.as_mut() {
            let (offset, hex) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("{number}: not a hex line: {line:?}"));
            let offset = usize::from_str_radix(offset, 16)
                .unwrap_or_else(|_| panic!("{number}: bad offset in {line:?}"));
            assert_eq!(
                offset,
                bytes.len(),
                "{number}: line {line:?} is out of place"
            );
            for pair in hex.split_whitespace() {
                let byte = u8::from_str_radix(pair, 16)
                    .unwrap_or_else(|_| panic!("{number}: bad byte {pair:?} in {line:?}"));
                bytes.push(byte);
            }
        } else {
            vector.text.push_str(line);
            vector.text.push('\n');
        }
    }
    vectors.extend(current);
    vectors
}

fn vector(number: &str) -> Vector {
    appendix()
        .remove(number)
        .unwrap_or_else(|| panic!("storage-format.md has no vector {number}"))
}

/// The only hex block of a vector.
fn single_block(number: &str) -> Vec<u8> {
    let mut blocks = vector(number).blocks;
    assert_eq!(blocks.len(), 1, "{number} has one hex block");
    blocks.remove(0)
}

fn id(ms: u64, seq: u64) -> StreamId {
    StreamId::new(ms, seq)
}

const T: u64 = 1_700_000_000_000;

/// The bytes of a journal of `kind` and `generation` holding `payloads` as frames, written by
/// the engine's journal writer.
fn journal_bytes(name: &str, kind: FileKind, generation: u64, payloads: &[Vec<u8>]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    let mut journal = Journal::create(&path, kind, generation).expect("create journal");
    for payload in payloads {
        journal.append(payload).expect("append frame");
    }
    journal.sync().expect("sync journal");
    std::fs::read(&path).expect("read journal")
}

/// The frames of journal bytes, read by the engine's journal reader, which must find no damage.
fn journal_frames(name: &str, kind: FileKind, bytes: &[u8]) -> Vec<Vec<u8>> {
    let replay = Journal::decode(Path::new(name), bytes, kind).expect("decode journal");
    assert!(replay.damage.is_none(), "{name}: {:?}", replay.damage);
    replay.frames
}

/// The bytes of a snapshot file written by the engine's snapshot writer.
fn snapshot_bytes(name: &str, kind: FileKind, generation: u64, payload: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    journal::write_snapshot(dir.path(), name, kind, generation, payload).expect("write snapshot");
    std::fs::read(dir.path().join(name)).expect("read snapshot")
}

/// A snapshot file's generation and payload, read by the engine's snapshot reader.
fn snapshot_payload(name: &str, kind: FileKind, bytes: &[u8]) -> (u64, Vec<u8>) {
    let snapshot =
        journal::decode_snapshot(Path::new(name), bytes.to_vec(), kind).expect("decode snapshot");
    (snapshot.generation, snapshot.payload)
}

#[test]
fn every_vector_of_the_appendix_is_checked() {
    let found: Vec<String> = appendix().into_keys().collect();
    let mut checked: Vec<String> = CHECKED.iter().map(ToString::to_string).collect();
    checked.sort();
    assert_eq!(found, checked);
}

#[test]
fn a1_crc() {
    let text = vector("A.1").text;
    let value = text
        .split('`')
        .find_map(|part| part.strip_prefix("0x"))
        .expect("A.1 gives the CRC as `0x...`");
    let expected = u32::from_str_radix(value, 16).expect("hex CRC");
    assert!(text.contains("`123456789`"), "{text}");
    assert_eq!(crc32fast::hash(b"123456789"), expected);
}

#[test]
fn a2_record_with_headers_idempotency_key_and_body() {
    let bytes = single_block("A.2");
    let headers = [(&b"k"[..], &b"v"[..])];
    let record = NewRecord {
        offset: 7,
        id: id(T, 2),
        timestamp_ms: T + 123,
        headers: &headers,
        idempotency: Some(IdempotencyKey {
            producer: b"p1",
            iid: b"42",
        }),
        body: b"hello",
    };
    assert_eq!(record.len(), 91);
    assert_eq!(record.to_vec().expect("encode"), bytes);

    let view = record::decode_verified(&bytes).expect("decode");
    assert_eq!(
        (view.offset, view.id, view.timestamp_ms),
        (7, id(T, 2), T + 123)
    );
    assert_eq!(view.headers().collect::<Vec<_>>(), headers);
    assert_eq!(view.idempotency, record.idempotency);
    assert_eq!((view.body, view.padded_len), (&b"hello"[..], 96));
    let text = vector("A.2").text;
    let stated_crc = text
        .split('`')
        .find_map(|part| part.strip_prefix("0x"))
        .expect("A.2 states the CRC as `0x...`");
    let stated_crc = u32::from_str_radix(stated_crc, 16).expect("hex CRC");
    assert_eq!(record::checksum(&bytes[..record.len()]), stated_crc);
}

#[test]
fn a3_smallest_record() {
    let bytes = single_block("A.3");
    let record = NewRecord::<&[u8]> {
        offset: 0,
        id: id(1, 1),
        timestamp_ms: 0,
        headers: &[],
        idempotency: None,
        body: b"",
    };
    assert_eq!(record.to_vec().expect("encode"), bytes);
    let view = record::decode_verified(&bytes).expect("decode");
    assert_eq!((view.offset, view.id, view.padded_len), (0, id(1, 1), 64));
    assert_eq!(
        (view.header_count(), view.idempotency, view.body),
        (0, None, &b""[..])
    );
}

#[test]
fn a4_segment_header() {
    let bytes = single_block("A.4");
    let header = SegmentHeader {
        base_offset: 0,
        file_len: 262_144,
        created_ms: T,
    };
    assert_eq!(header.encode().to_vec(), bytes);
    assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
}

#[test]
fn a5_meta_journal_with_two_frames() {
    let bytes = single_block("A.5");
    let name = "meta.00000000000000000001.journal";
    let events = [
        MetaEvent::Trim { first_offset: 5 },
        MetaEvent::Delete {
            offsets: vec![6, 9],
            max_deleted_id: id(T, 3),
        },
    ];
    let payloads: Vec<Vec<u8>> = events.iter().map(MetaEvent::encode).collect();
    assert_eq!(journal_bytes(name, META_JOURNAL_KIND, 1, &payloads), bytes);

    let frames = journal_frames(name, META_JOURNAL_KIND, &bytes);
    let decoded: Vec<MetaEvent> = frames
        .iter()
        .map(|frame| MetaEvent::decode(frame).expect("meta event"))
        .collect();
    assert_eq!(decoded, events);
}

#[test]
fn a6_checkpoint_of_a_new_log() {
    let bytes = single_block("A.6");
    let checkpoint = Checkpoint {
        clean: false,
        journal_generation: 1,
        recovery_point: RecoveryPoint {
            segment_base: 0,
            pos: 64,
            next_offset: 0,
            last_id: StreamId::MIN,
        },
        meta: MetaState::default(),
    };
    let payload = checkpoint.encode();
    assert_eq!(payload.len(), 118);
    assert_eq!(
        snapshot_bytes("checkpoint", CHECKPOINT_KIND, 1, &payload),
        bytes
    );

    let (generation, payload) = snapshot_payload("checkpoint", CHECKPOINT_KIND, &bytes);
    assert_eq!(generation, 1);
    assert_eq!(Checkpoint::decode(&payload), Ok(checkpoint));
}

#[test]
fn a7_group_journal_with_three_frames() {
    let bytes = single_block("A.7");
    let name = "groups.00000000000000000001.journal";
    let events = [
        GroupEvent::GroupCreated {
            group: b"g".to_vec(),
            last_delivered: StreamId::MIN,
            entries_read: Some(0),
            policy: GroupPolicy::default(),
        },
        GroupEvent::NewDelivered {
            group: b"g".to_vec(),
            consumer: b"c".to_vec(),
            time_ms: T,
            due_ms: None,
            last_delivered: id(T, 0),
            entries_read: Some(1),
            entries: vec![(id(T, 0), 0)],
        },
        GroupEvent::Acked {
            group: b"g".to_vec(),
            ids: vec![id(T, 0)],
        },
    ];
    let payloads: Vec<Vec<u8>> = events.iter().map(GroupEvent::to_bytes).collect();
    assert_eq!(journal_bytes(name, GROUP_JOURNAL_KIND, 1, &payloads), bytes);

    let frames = journal_frames(name, GROUP_JOURNAL_KIND, &bytes);
    let decoded: Vec<GroupEvent> = frames
        .iter()
        .map(|frame| GroupEvent::decode(frame).expect("group event"))
        .collect();
    assert_eq!(decoded, events);
}

#[test]
fn a8_group_snapshot() {
    let bytes = single_block("A.8");
    let events = vec![
        GroupEvent::GroupCreated {
            group: b"g".to_vec(),
            last_delivered: id(5, 0),
            entries_read: Some(5),
            policy: GroupPolicy::default(),
        },
        GroupEvent::ConsumerCreated {
            group: b"g".to_vec(),
            consumer: b"c".to_vec(),
            seen_ms: 100,
            active_ms: Some(90),
        },
        GroupEvent::PendingRestored {
            group: b"g".to_vec(),
            consumer: b"c".to_vec(),
            entries: vec![PendingRecord {
                id: id(5, 0),
                offset: 4,
                delivered_ms: 90,
                deliveries: 2,
                due: Due::At(120),
            }],
        },
    ];
    let payload = encode_snapshot(&events);
    assert_eq!(payload.len(), 131);
    assert_eq!(
        snapshot_bytes(GROUP_SNAPSHOT_FILE, GROUP_SNAPSHOT_KIND, 2, &payload),
        bytes
    );

    let (generation, payload) = snapshot_payload(GROUP_SNAPSHOT_FILE, GROUP_SNAPSHOT_KIND, &bytes);
    assert_eq!(generation, 2);
    assert_eq!(decode_snapshot(&payload), Ok(events));
}

#[test]
fn a9_idempotency_snapshot() {
    let bytes = single_block("A.9");
    let mut windows = IdempotencyWindows::new(IdempotencyConfig {
        duration_ms: 100_000,
        max_size: 100,
    });
    windows.remember(b"p1", b"42", id(T, 2), T + 123, T + 123);
    let encoded_windows = windows.encode();
    assert_eq!(encoded_windows.len(), 69);
    // The payload as section 12.1 lays it out: the covered next offset, then the windows.
    let mut payload = Encoder::new();
    payload.u64(8).bytes(&encoded_windows);
    let payload = payload.finish();
    assert_eq!(payload.len(), 81);
    assert_eq!(
        snapshot_bytes(
            IDEMPOTENCY_SNAPSHOT_FILE,
            IDEMPOTENCY_SNAPSHOT_KIND,
            1,
            &payload
        ),
        bytes
    );

    let (generation, payload) =
        snapshot_payload(IDEMPOTENCY_SNAPSHOT_FILE, IDEMPOTENCY_SNAPSHOT_KIND, &bytes);
    assert_eq!(generation, 1);
    let mut input = Decoder::new(&payload, "idempotency snapshot");
    assert_eq!(input.u64(), Ok(8));
    let mut decoded = IdempotencyWindows::decode(input.bytes().expect("windows")).expect("decode");
    input.finish().expect("nothing after the windows");
    assert_eq!(decoded.config(), windows.config());
    assert_eq!(decoded.lookup(b"p1", b"42", T + 123), Some(id(T, 2)));
    assert_eq!(decoded.tracked(), 1);
}

#[test]
fn a10_stream_settings() {
    let blocks = vector("A.10").blocks;
    let configs = [
        StreamConfig {
            work_queue: true,
            idempotency_duration_ms: Some(60_000),
            ..StreamConfig::default()
        },
        StreamConfig {
            max_len: Some(3),
            discard: Discard::New,
            ..StreamConfig::default()
        },
        StreamConfig {
            max_bytes: Some(1 << 20),
            discard: Discard::New,
            ..StreamConfig::default()
        },
    ];
    assert_eq!(
        blocks.len(),
        configs.len(),
        "A.10 has one block per setting"
    );
    for (bytes, config) in blocks.iter().zip(configs) {
        assert_eq!(bytes.len(), 18);
        assert_eq!(&config.encode(), bytes, "{config:?}");
        assert_eq!(StreamConfig::decode(bytes), Ok(config));
    }
}

#[test]
fn a11_group_created_with_a_policy() {
    let bytes = single_block("A.11");
    let event = GroupEvent::GroupCreated {
        group: b"g".to_vec(),
        last_delivered: StreamId::MIN,
        entries_read: None,
        policy: GroupPolicy {
            ack_wait_ms: Some(1000),
            max_deliver: Some(3),
            dead_letter: Some(b"dlq".to_vec()),
            max_ack_pending: None,
        },
    };
    assert_eq!(bytes.len(), 46);
    assert_eq!(event.to_bytes(), bytes);
    assert_eq!(GroupEvent::decode(&bytes), Ok(event));
}

#[test]
fn a12_raft_log_file_with_two_entries() {
    let bytes = single_block("A.12");
    let payloads = [
        EntryPayload::Blank,
        EntryPayload::Normal(Command {
            time_ms: T,
            body: bytes::Bytes::from_static(b"hi"),
        }),
    ];
    let entries: Vec<WalEntry> = payloads
        .iter()
        .zip(1..)
        .map(|(payload, index)| WalEntry {
            id: WalLogId {
                term: 1,
                leader: 1,
                index,
            },
            data: encode_payload(payload),
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut wal, _) =
        weir::cluster::wal::Wal::open(dir.path(), WalOptions::default()).expect("open raft log");
    drop(wal.append(&entries).expect("append"));
    drop(wal);
    let name = "raft.00000000000000000001.wal";
    // The file holds the vector, then the zeros written ahead of the next entries (14.4).
    let written = std::fs::read(dir.path().join(name)).expect("read");
    assert!(
        written.starts_with(&bytes),
        "the file does not start with the vector"
    );
    assert_eq!(written.len(), 65_536, "the first chunk written ahead");
    assert!(
        written[bytes.len()..].iter().all(|&byte| byte == 0),
        "something other than zeros follows the entries"
    );

    let frames = journal_frames(name, RAFT_LOG_KIND, &bytes);
    let decoded: Vec<WalEntry> = frames
        .iter()
        .map(|frame| decode_entry(frame).expect("entry"))
        .collect();
    assert_eq!(decoded, entries);
    for (entry, payload) in decoded.iter().zip(&payloads) {
        let read = decode_payload(&entry.data).expect("payload");
        assert_eq!(format!("{read:?}"), format!("{payload:?}"));
    }
}

#[test]
fn a13_raft_meta_file() {
    let bytes = single_block("A.13");
    let meta = WalMeta {
        vote: Some(WalVote {
            term: 1,
            node: 1,
            committed: true,
        }),
        committed: Some(WalLogId {
            term: 1,
            leader: 1,
            index: 2,
        }),
        purged: None,
    };
    let payload = meta.encode();
    assert_eq!(payload.len(), 44);
    assert_eq!(
        snapshot_bytes("raft.meta", RAFT_META_KIND, 1, &payload),
        bytes
    );
    let (generation, payload) = snapshot_payload("raft.meta", RAFT_META_KIND, &bytes);
    assert_eq!(generation, 1);
    assert_eq!(WalMeta::decode(&payload), Ok(meta));
}
