//! `queue-dump` run as a program on data directories written through the library: the summary,
//! `--verify` on clean and damaged files, entry listings, JSON, and its exit codes; and on the
//! data directory of a `queue-server`.

mod cluster_support;
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use weir::cluster::wal::{Wal, WalEntry, WalLogId, WalOptions, WalVote};
use weir::{
    Discard, Durability, GroupPolicy, GroupStart, LogOptions, ManualClock, Message, SharedClock,
    Store, StoreOptions, StreamConfig, StreamId,
};

fn dump(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_queue-dump"))
        .args(args)
        .output()
        .expect("run queue-dump")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The time the store's clock starts at: IDs are `1700000000000-N` and later.
const START_MS: u64 = 1_700_000_000_000;

/// Four streams: `orders` spread over several segments, with a deletion, a group `workers`
/// holding pending entries and a group `billing` whose delivery limit dead-lettered an entry
/// into `orders-dlq`; `audit\x00log` with a binary body. The store is closed before the tool
/// runs.
fn write_store(dir: &Path) -> Vec<StreamId> {
    let clock = Arc::new(ManualClock::new(START_MS));
    let options = StoreOptions {
        durability: Durability::Always,
        log: LogOptions {
            max_segment_bytes: 64 * 1024,
            initial_segment_bytes: 4096,
            index_interval_bytes: 512,
        },
        clock: Arc::clone(&clock) as SharedClock,
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir, options).expect("open store");
    let orders = store.stream(b"orders").expect("stream");
    let mut ids = Vec::new();
    for i in 0..200 {
        let body = format!("order-body-{i:04}-{}", "x".repeat(40));
        let appended = orders
            .append(Message::new(body).header("kind", "new-order"))
            .expect("append");
        ids.push(appended.id);
    }
    assert_eq!(orders.delete(&[ids[150]]).expect("delete"), 1);
    let group = orders
        .create_group(b"workers", GroupStart::Beginning, GroupPolicy::default())
        .expect("group");
    let delivered = group.read(b"alice", 3).expect("read");
    assert_eq!(delivered.len(), 3);
    assert_eq!(group.ack(&[delivered[0].id()]).expect("ack"), 1);

    let billing = orders
        .create_group(b"billing", GroupStart::Beginning, billing_policy())
        .expect("group");
    for _ in 0..2 {
        let got = billing.read(b"bob", 1).expect("read");
        assert_eq!(got[0].id(), ids[0]);
        clock.advance_ms(1_001);
    }
    // The third delivery is past the limit: ids[0] goes to the dead-letter stream.
    let got = billing.read(b"bob", 1).expect("read");
    assert_eq!(got[0].id(), ids[1]);
    let dlq = store.get(b"orders-dlq").expect("dead-letter stream");
    assert_eq!(dlq.len(), 1);

    let audit = store.stream(b"audit\x00log").expect("stream");
    audit
        .append(Message::new(vec![0u8, 1, 2, 255]))
        .expect("append");
    store.close().expect("close");
    ids
}

fn billing_policy() -> GroupPolicy {
    GroupPolicy {
        ack_wait_ms: Some(1_000),
        max_deliver: Some(2),
        dead_letter: Some(b"orders-dlq".to_vec()),
        max_ack_pending: None,
    }
}

fn stream_dir(dir: &Path, name: &[u8]) -> PathBuf {
    for entry in fs::read_dir(dir.join("streams")).expect("list") {
        let path = entry.expect("entry").path();
        if fs::read(path.join("NAME")).is_ok_and(|n| n == name) {
            return path;
        }
    }
    panic!("no stream directory for {name:?}");
}

fn segments(stream: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(stream)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    found.sort();
    found
}

fn position_of(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn run_ok(args: &[&str]) -> String {
    let output = dump(args);
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}\n{stdout}\n{stderr}"
    );
    stdout
}

fn run_json(args: &[&str]) -> serde_json::Value {
    let output = dump(args);
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}\n{stdout}\n{stderr}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{stdout}"))
}

/// Runs a form that must fail to run, and returns its message.
fn run_failing(args: &[&str]) -> String {
    let output = dump(args);
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{args:?}\n{stdout}\n{stderr}"
    );
    assert!(stdout.is_empty(), "{args:?} printed a result: {stdout}");
    stderr
}

/// Runs `--verify` on damaged data: exit code 1, and the line naming `file` at `byte`.
fn verify_finds(path: &str, file: &str, byte: Option<u64>, what: &str) -> String {
    let output = dump(&["--verify", path]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let place = match byte {
        Some(byte) => format!("{file} at byte {byte}: "),
        None => format!("{file} at byte "),
    };
    stdout
        .lines()
        .find(|l| l.starts_with("damage:") && l.contains(&place) && l.contains(what))
        .unwrap_or_else(|| panic!("no damage line for {place}… {what}:\n{stdout}"))
        .to_owned()
}

/// Where the frames of a journal end, as `queue-dump` lists them: a group journal's file goes on
/// with the zeros it preallocates.
fn journal_end(journal: &Path) -> u64 {
    let value = run_json(&[journal.to_str().expect("utf-8 path"), "--json"]);
    let last = value["frames"]
        .as_array()
        .and_then(|frames| frames.last())
        .cloned()
        .expect("a frame");
    let (pos, len) = (last["pos"].as_u64(), last["len"].as_u64());
    pos.zip(len).map(|(pos, len)| pos + 8 + len).expect("frame")
}

/// `segment`'s report in the JSON summary of `dir`.
fn segment_json(dir: &str, segment: &Path) -> serde_json::Value {
    let value = run_json(&["--json", dir]);
    let file = segment.to_str().expect("utf-8 path");
    value["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .flat_map(|s| s["segments"].as_array().expect("segments").iter())
        .find(|s| s["file"] == file)
        .cloned()
        .unwrap_or_else(|| panic!("no segment {file} in {value}"))
}

#[test]
fn summary_names_streams_segments_and_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_store(dir.path());
    let stdout = run_ok(&[dir.path().to_str().expect("utf-8 path")]);
    assert!(stdout.contains("closed cleanly), 3 stream(s)"), "{stdout}");
    assert!(stdout.contains("stream \"orders\""), "{stdout}");
    assert!(stdout.contains("stream \"orders-dlq\""), "{stdout}");
    assert!(stdout.contains("stream \"audit\\x00log\""), "{stdout}");
    assert!(stdout.contains("length 199  entries-added 200"), "{stdout}");
    assert!(
        stdout.contains("max-deleted-id 1700000000000-150"),
        "{stdout}"
    );
    assert!(stdout.contains("offsets 0..200  deleted 1"), "{stdout}");
    assert!(
        stdout.contains("retention: max-age none, max-bytes none"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "00000000000000000000.seg  base 0  offsets 0..=27  IDs 1700000000000-0..=1700000000000-27  records 28  deleted 0"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("records 113  deleted 1"), "{stdout}");
    assert!(stdout.contains("sealed  index ok"), "{stdout}");
    assert!(stdout.contains("active  index ok"), "{stdout}");
    assert!(
        stdout.contains("\"workers\"  last-delivered 1700000000000-2"),
        "{stdout}"
    );
    assert!(stdout.contains("consumer \"alice\"  pending 2"), "{stdout}");
    assert!(
        stdout.contains(
            "\"billing\"  last-delivered 1700000000000-1  entries-read -  lag -  pending 1  policy ack-wait 1000 ms, max-deliver 2, dead-letter \"orders-dlq\""
        ),
        "{stdout}"
    );
    assert!(stdout.contains("settings: work-queue off"), "{stdout}");
    assert!(stdout.contains("checkpoint: clean"), "{stdout}");
    assert!(!stdout.contains("problems"), "{stdout}");
}

#[test]
fn json_summary_parses_and_holds_the_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = write_store(dir.path());
    let value = run_json(&["--json", dir.path().to_str().expect("utf-8 path")]);
    assert_eq!(value["damage"], 0);
    assert_eq!(value["closed_cleanly"], true);
    assert_eq!(value["raft"], serde_json::Value::Null, "no raft/ directory");
    let streams = value["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 3);
    let orders = streams
        .iter()
        .find(|s| s["name"] == "orders")
        .expect("orders");
    assert_eq!(orders["length"], 199);
    assert_eq!(orders["entries_added"], 200);
    assert_eq!(orders["deleted"], 1);
    assert_eq!(orders["max_deleted_id"], ids[150].to_string());
    assert_eq!(orders["retention"]["max_bytes"], serde_json::Value::Null);
    let segments = orders["segments"].as_array().expect("segments");
    assert_eq!(segments.len(), 4);
    assert_eq!(segments[0]["first_id"], ids[0].to_string());
    assert_eq!(segments[0]["active"], false);
    assert_eq!(segments[3]["active"], true);
    let deleted: u64 = segments
        .iter()
        .map(|s| s["deleted"].as_u64().expect("deleted"))
        .sum();
    assert_eq!(deleted, 1);
    let groups = orders["groups"].as_array().expect("groups");
    assert_eq!(groups[0]["name"], "billing");
    assert_eq!(groups[0]["pending"], 1);
    assert_eq!(groups[0]["policy"]["ack_wait_ms"], 1000);
    assert_eq!(groups[0]["policy"]["max_deliver"], 2);
    assert_eq!(groups[0]["policy"]["dead_letter"], "orders-dlq");
    assert_eq!(groups[1]["name"], "workers");
    assert_eq!(groups[1]["pending"], 2);
    assert_eq!(groups[1]["consumers"][0]["name"], "alice");
    assert_eq!(groups[1]["consumers"][0]["pending"], 2);
    assert!(groups[1].get("pending_entries").is_none(), "{}", groups[1]);
    let audit = streams
        .iter()
        .find(|s| s["name"] == "audit\\x00log")
        .expect("audit stream, its name escaped");
    assert_eq!(audit["length"], 1);
}

#[test]
fn one_stream_is_summarised() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_store(dir.path());
    let path = dir.path().to_str().expect("utf-8 path");
    let stdout = run_ok(&[path, "--stream", "orders"]);
    assert!(stdout.starts_with("stream \"orders\""), "{stdout}");
    assert!(stdout.contains("length 199"), "{stdout}");
    assert!(stdout.contains("segments (4):"), "{stdout}");
    assert!(stdout.contains("groups (2):"), "{stdout}");
    assert!(!stdout.contains("orders-dlq\"  (directory"), "{stdout}");
    assert!(!stdout.contains("order-body-"), "no entries: {stdout}");

    let value = run_json(&[path, "--stream", "orders-dlq", "--json"]);
    assert_eq!(value["name"], "orders-dlq");
    assert_eq!(value["length"], 1);
    assert_eq!(value["groups"].as_array().map(Vec::len), Some(0));
}

#[test]
fn a_servers_key_is_found_by_its_plain_name() {
    let data = tempfile::tempdir().expect("data directory");
    let server = common::Server::start_in(data.path(), &[]);
    let mut con = server.conn();
    common::run(&mut con, &["XADD", "orders", "1-1", "item", "book"]);
    common::run(&mut con, &["SELECT", "3"]);
    common::run(&mut con, &["XADD", "orders", "1-1", "item", "pen"]);
    common::run(&mut con, &["XADD", "orders", "1-2", "item", "ink"]);
    assert!(server.terminate().success());
    let path = data.path().to_str().expect("utf-8 path");

    let stdout = run_ok(&[path, "--stream", "orders"]);
    assert!(stdout.starts_with("stream \"\\x00orders\""), "{stdout}");
    assert!(stdout.contains("length 1 "), "{stdout}");
    let value = run_json(&[path, "--stream", "orders", "--records", "--json"]);
    assert_eq!(value["records"][0]["body"], "");
    assert_eq!(value["records"][0]["headers"][0][1], "book");

    let stdout = run_ok(&[path, "--stream", "\\x03orders"]);
    assert!(stdout.starts_with("stream \"\\x03orders\""), "{stdout}");
    assert!(stdout.contains("length 2 "), "{stdout}");
}

#[test]
fn limits_discard_policy_and_idle_expiry_are_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open store");
    let jobs = store.stream(b"jobs").expect("stream");
    jobs.append(Message::new("job")).expect("append");
    jobs.set_config(StreamConfig {
        max_len: Some(50),
        max_bytes: Some(4096),
        discard: Discard::New,
        expire_idle_ms: Some(600_000),
        ..StreamConfig::default()
    })
    .expect("settings");
    drop(jobs);
    store.close().expect("close");
    let path = dir.path().to_str().expect("utf-8 path");

    let stdout = run_ok(&[path, "--stream", "jobs"]);
    assert!(
        stdout.contains(
            "settings: work-queue off, idempotency window default duration, default size, max-len 50, max-bytes 4096, discard new, expire-idle 600000 ms"
        ),
        "{stdout}"
    );
    let settings = &run_json(&[path, "--stream", "jobs", "--json"])["settings"];
    assert_eq!(settings["max_len"], 50);
    assert_eq!(settings["max_bytes"], 4096);
    assert_eq!(settings["discard"], "new");
    assert_eq!(settings["expire_idle_ms"], 600_000);
}

#[test]
fn records_list_every_entry_with_its_state_headers_and_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = write_store(dir.path());
    let path = dir.path().to_str().expect("utf-8 path");
    let from = ids[149].to_string();
    let output = dump(&[
        path,
        "--stream",
        "orders",
        "--records",
        "--from",
        &from,
        "--count",
        "3",
    ]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("3 entries listed"), "{stderr}");
    let heads: Vec<&str> = stdout.lines().filter(|l| l.starts_with("offset")).collect();
    assert_eq!(heads.len(), 3, "{stdout}");
    assert!(
        heads[0].starts_with(&format!(
            "offset 149  id {}  time 2023-11-14T22:13:20.000Z  size 144 bytes  byte ",
            ids[149]
        )),
        "{stdout}"
    );
    assert!(heads[0].ends_with("crc ok  live"), "{stdout}");
    assert!(heads[1].ends_with("crc ok  deleted"), "{stdout}");
    assert!(heads[2].ends_with("crc ok  live"), "{stdout}");
    assert!(stdout.contains("order-body-0150"), "{stdout}");
    assert!(!stdout.contains("order-body-0152"), "{stdout}");
    assert!(
        stdout.contains("header \"kind\" = \"new-order\""),
        "{stdout}"
    );

    // Binary bodies are escaped; the escaped name finds the stream.
    let stdout = run_ok(&[path, "--stream", "audit\\x00log", "--records"]);
    assert!(stdout.contains("body \"\\x00\\x01\\x02\\xff\""), "{stdout}");
    let stdout = run_ok(&[
        path,
        "--stream",
        "orders",
        "--records",
        "--count",
        "1",
        "--hex",
    ]);
    assert!(stdout.contains("|order-body-0000-|"), "{stdout}");
    // The dead letter carries where it came from.
    let stdout = run_ok(&[path, "--stream", "orders-dlq", "--records"]);
    assert!(
        stdout.contains(&format!("header \"dead-letter-id\" = \"{}\"", ids[0])),
        "{stdout}"
    );
    assert!(
        stdout.contains("header \"dead-letter-group\" = \"billing\""),
        "{stdout}"
    );

    let value = run_json(&[
        path,
        "--stream",
        "orders",
        "--records",
        "--from",
        &from,
        "--count",
        "2",
        "--json",
        "--hex",
    ]);
    assert_eq!(value["listed"], 2);
    assert_eq!(value["stream"], "orders");
    let records = value["records"].as_array().expect("records");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["offset"], 149);
    assert_eq!(records[0]["id"], ids[149].to_string());
    assert_eq!(records[0]["timestamp_ms"], START_MS);
    assert_eq!(records[0]["crc"], "ok");
    assert_eq!(records[0]["state"], "live");
    assert_eq!(records[1]["state"], "deleted");
    assert_eq!(records[0]["headers"][0][0], "kind");
    assert_eq!(records[0]["headers"][0][1], "new-order");
    let body = records[0]["body"].as_str().expect("body");
    assert!(body.starts_with("order-body-0149-"), "{body}");
    let hex: String = body.bytes().map(|b| format!("{b:02x}")).collect();
    assert_eq!(records[0]["body_hex"], hex);
    assert!(records[0]["pos"].as_u64().is_some() && records[0]["size"] == 144);
}

#[test]
fn trimmed_entries_still_on_disk_are_marked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let events = store.stream(b"events").expect("stream");
    for i in 0..10 {
        events
            .append(Message::new(format!("e{i}")))
            .expect("append");
    }
    assert_eq!(events.trim_max_len(4, false, None).expect("trim"), 6);
    store.close().expect("close");
    let path = dir.path().to_str().expect("utf-8 path");
    let value = run_json(&[path, "--stream", "events", "--records", "--json"]);
    let states: Vec<&str> = value["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["state"].as_str().expect("state"))
        .collect();
    assert_eq!(states, [&["trimmed"; 6][..], &["live"; 4]].concat());
    let stdout = run_ok(&[path, "--stream", "events"]);
    assert!(stdout.contains("length 4"), "{stdout}");
    assert!(stdout.contains("offsets 6..10"), "{stdout}");
}

#[test]
fn a_group_and_its_pending_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = write_store(dir.path());
    let path = dir.path().to_str().expect("utf-8 path");
    let stdout = run_ok(&[path, "--stream", "orders", "--group", "billing"]);
    assert!(stdout.contains("group \"billing\""), "{stdout}");
    assert!(
        stdout.contains("policy: ack-wait 1000 ms, max-deliver 2, dead-letter \"orders-dlq\""),
        "{stdout}"
    );
    assert!(stdout.contains("consumer \"bob\"  pending 1"), "{stdout}");
    assert!(!stdout.contains("pending entries"), "{stdout}");
    assert!(!stdout.contains("\"workers\""), "{stdout}");

    let stdout = run_ok(&[
        path,
        "--stream",
        "orders",
        "--group",
        "workers",
        "--pending",
    ]);
    assert!(stdout.contains("pending entries (2):"), "{stdout}");
    for id in [ids[1], ids[2]] {
        assert!(
            stdout.contains(&format!(
                "{id}  consumer \"alice\"  delivered 2023-11-14T22:13:20.000Z  idle "
            )),
            "{stdout}"
        );
    }
    assert!(stdout.contains("deliveries 1"), "{stdout}");

    let value = run_json(&[
        path,
        "--stream",
        "orders",
        "--group",
        "billing",
        "--pending",
        "--json",
    ]);
    assert_eq!(value["stream"], "orders");
    let group = &value["group"];
    assert_eq!(group["name"], "billing");
    assert_eq!(group["last_delivered"], ids[1].to_string());
    assert_eq!(group["policy"]["dead_letter"], "orders-dlq");
    let pending = group["pending_entries"]
        .as_array()
        .expect("pending entries");
    assert_eq!(pending.len(), 1, "ids[0] was dead-lettered");
    assert_eq!(pending[0]["id"], ids[1].to_string());
    assert_eq!(pending[0]["consumer"], "bob");
    assert_eq!(pending[0]["deliveries"], 1);
    assert_eq!(pending[0]["delivered_ms"], START_MS + 2_002);
    assert_eq!(group["consumers"][0]["name"], "bob");

    let message = run_failing(&[path, "--stream", "orders", "--group", "nope"]);
    assert!(
        message.contains(
            "stream \"orders\" has no group named \"nope\" (its groups: \"billing\", \"workers\")"
        ),
        "{message}"
    );
}

#[test]
fn single_files_are_read_on_their_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = write_store(dir.path());
    let orders = stream_dir(dir.path(), b"orders");
    let first = segments(&orders)[0].clone();
    let first = first.to_str().expect("utf-8 path");
    let stdout = run_ok(&[first, "--records"]);
    assert!(stdout.contains("base 0"), "{stdout}");
    assert!(stdout.contains("order-body-0000"), "{stdout}");
    assert!(
        stdout.contains("checked the segment: no damage found"),
        "{stdout}"
    );
    let value = run_json(&[first, "--json"]);
    assert_eq!(value["kind"], "segment");
    assert_eq!(value["segment"]["records"], 28);
    assert!(
        value["segment"]["active"].is_null(),
        "unknown for a file alone"
    );
    let value = run_json(&[first, "--json", "--records", "--count", "2"]);
    assert_eq!(value["listed"], 2);
    assert_eq!(value["records"][1]["offset"], 1);
    assert_eq!(value["segment"]["base_offset"], 0);

    let journal = orders.join("groups.00000000000000000001.journal");
    let journal = journal.to_str().expect("utf-8 path");
    let stdout = run_ok(&[journal]);
    assert!(stdout.starts_with("group journal "), "{stdout}");
    assert!(stdout.contains("generation 1, 10 frame(s):"), "{stdout}");
    assert!(
        stdout.contains(&format!("dead-lettered  group \"billing\" {}", ids[0])),
        "{stdout}"
    );
    let value = run_json(&[journal, "--json"]);
    assert_eq!(value["kind"], "group journal");
    let frames = value["frames"].as_array().expect("frames");
    assert_eq!(frames[0]["pos"], 32);
    assert_eq!(frames[0]["event"], "group-created");
    assert_eq!(frames.last().expect("frame")["event"], "dead-lettered");
    assert_eq!(
        value["groups"][1]["pending_entries"][0]["consumer"],
        "alice"
    );

    let checkpoint = orders.join("checkpoint");
    let value = run_json(&[checkpoint.to_str().expect("utf-8 path"), "--json"]);
    assert_eq!(value["kind"], "checkpoint");
    assert_eq!(value["checkpoint"]["clean"], true);
    assert_eq!(value["checkpoint"]["next_offset"], 200);
    assert_eq!(value["meta"]["deleted_offsets"][0], 150);
    // Its generation depends on how many checkpoints the background maintenance took.
    let meta = fs::read_dir(&orders)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("meta.") && n.ends_with(".journal"))
        })
        .expect("meta journal");
    let stdout = run_ok(&[meta.to_str().expect("utf-8 path")]);
    assert!(stdout.starts_with("meta journal "), "{stdout}");

    let name = orders.join("NAME");
    let message = run_failing(&[name.to_str().expect("utf-8 path")]);
    assert!(
        message.contains("not a file queue-dump reads on its own"),
        "{message}"
    );
    let message = run_failing(&[journal, "--records"]);
    assert!(
        message.contains("--records lists the entries of a segment"),
        "{message}"
    );
}

#[test]
fn a_group_snapshot_is_read_on_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let orders = store.stream(b"orders").expect("stream");
    let group = orders
        .create_group(b"g", GroupStart::Beginning, GroupPolicy::default())
        .expect("group");
    // More than the 8 MiB of journal at which the store's maintenance compacts the group
    // state into a snapshot: every read journals the consumer's (long) name.
    let consumer = vec![b'c'; 60 * 1024];
    for delivered in 0..200 {
        orders.append(Message::new("x")).expect("append");
        let got = group.read(&consumer, 1).expect("read");
        if delivered >= 3 {
            group.ack(&[got[0].id()]).expect("ack");
        }
    }
    let snapshot = stream_dir(dir.path(), b"orders").join("groups.snapshot");
    // Maintenance runs in the background every half second.
    for _ in 0..600 {
        if snapshot.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(snapshot.exists(), "the group journal was never compacted");
    store.close().expect("close");
    let value = run_json(&[snapshot.to_str().expect("utf-8 path"), "--json"]);
    assert_eq!(value["kind"], "group snapshot");
    assert_eq!(value["groups"][0]["name"], "g");
    assert_eq!(value["groups"][0]["pending"], 3);
}

#[test]
fn verify_is_clean_then_names_each_damaged_file_and_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_store(dir.path());
    let path = dir.path().to_str().expect("utf-8 path");
    let output = dump(&["--verify", path]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        stdout,
        "checked 3 stream(s), 6 segment(s), 202 record(s): no damage found\n"
    );
    assert!(
        stderr.is_empty(),
        "no progress bar when stderr is not a terminal: {stderr}"
    );
    let value = run_json(&["--verify", "--json", path]);
    assert_eq!(
        (value["verified"].clone(), value["damage"].clone()),
        (true.into(), 0.into())
    );

    let orders = stream_dir(dir.path(), b"orders");
    let segs = segments(&orders);
    assert_eq!(segs.len(), 4, "need sealed segments: {segs:?}");

    // A flipped byte inside a record body of the first (sealed) segment.
    let mut bytes = fs::read(&segs[0]).expect("read segment");
    let at = position_of(&bytes, b"order-body-0003-").expect("record body");
    bytes[at + 12] ^= 0x20;
    fs::write(&segs[0], &bytes).expect("write segment");
    let line = verify_finds(path, "00000000000000000000.seg", None, "offset 3 is lost");
    let record_start = line
        .split("at byte ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse::<usize>().ok())
        .expect("position");
    assert!(record_start < at && at - record_start < 128, "{line}");
    // The listing shows the damaged region in place, between offsets 2 and 4.
    let stdout = run_ok(&[path, "--stream", "orders", "--records", "--count", "5"]);
    let damaged = format!("damaged bytes {record_start}..");
    let lines: Vec<&str> = stdout.lines().collect();
    let at_line = lines
        .iter()
        .position(|l| l.starts_with(&damaged))
        .unwrap_or_else(|| panic!("no {damaged}: {stdout}"));
    assert!(lines[at_line + 1].starts_with("offset 4 "), "{stdout}");
    let value = run_json(&[
        path,
        "--stream",
        "orders",
        "--records",
        "--count",
        "5",
        "--json",
    ]);
    let items = value["records"].as_array().expect("records");
    assert_eq!(items[3]["crc"], "bad", "{value}");
    assert_eq!(items[3]["pos"], record_start);
    assert_eq!(items[4]["offset"], 4);

    // A wrong magic number in the header of the second segment.
    let mut bytes = fs::read(&segs[1]).expect("read segment");
    bytes[0..8].copy_from_slice(b"NOTASEG\0");
    fs::write(&segs[1], &bytes).expect("write segment");
    verify_finds(
        path,
        "00000000000000000028.seg",
        Some(0),
        "bad segment header: wrong magic number; its records show which offsets it holds: the next open rebuilds the header",
    );
    // The same file alone is damaged, not unreadable.
    let output = dump(&["--verify", segs[1].to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1), "{:?}", text(&output));

    // A torn tail: half a record after the last record of the active segment.
    let active = &segs[3];
    let end = segment_json(path, active)["used_bytes"]
        .as_u64()
        .expect("used bytes") as usize;
    let mut bytes = fs::read(active).expect("read segment");
    // The last record is 144 bytes long, like every `orders` record.
    let partial = bytes[end - 144..end - 84].to_vec();
    bytes[end..end + 60].copy_from_slice(&partial);
    fs::write(active, &bytes).expect("write segment");
    verify_finds(
        path,
        "00000000000000000197.seg",
        Some(end as u64),
        "torn tail",
    );

    // A zeroed page of an index file.
    let index = orders.join("00000000000000000084.index");
    let len = fs::metadata(&index).expect("index").len() as usize;
    let mut bytes = fs::read(&index).expect("read index");
    let page = len.min(4096);
    bytes[..page].fill(0);
    fs::write(&index, &bytes).expect("write index");
    verify_finds(
        path,
        "00000000000000000084.index",
        Some(len as u64 - 4),
        "index checksum mismatch",
    );

    // A group journal cut a few bytes short of the end of its frames.
    let journal = orders.join("groups.00000000000000000001.journal");
    let len = journal_end(&journal);
    assert!(
        fs::metadata(&journal).expect("journal").len() > len,
        "zeros follow the frames"
    );
    let output = dump(&["--verify", journal.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .expect("open journal");
    file.set_len(len - 3).expect("truncate");
    drop(file);
    let line = verify_finds(
        path,
        "groups.00000000000000000001.journal",
        None,
        "bytes are not good frames",
    );
    assert!(line.contains("last "), "{line}");
    let output = dump(&["--verify", journal.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1), "{:?}", text(&output));

    // The summary still runs and reports the problems, with a zero exit code.
    let stdout = run_ok(&[path]);
    assert!(stdout.contains("problems"), "{stdout}");
    // The JSON verification carries the same damage, each with file and position.
    let output = dump(&["--verify", "--json", path]);
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert!(value["damage"].as_u64().is_some_and(|n| n >= 5), "{value}");
    let findings = value["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .flat_map(|s| s["findings"].as_array().expect("findings").iter())
        .filter(|f| f["severity"] == "damage");
    for finding in findings {
        assert!(finding["file"].as_str().is_some(), "{finding}");
        assert!(finding["detail"].as_str().is_some(), "{finding}");
    }
}

#[test]
fn a_missing_or_foreign_directory_and_bad_arguments_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing");
    let message = run_failing(&["--verify", missing.to_str().expect("utf-8 path")]);
    assert!(
        message.contains("missing: no such file or directory"),
        "{message}"
    );

    let message = run_failing(&["--verify", dir.path().to_str().expect("utf-8 path")]);
    assert!(message.contains("not a weir data directory"), "{message}");

    let sharded = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(sharded.path().join("shards").join("0")).expect("mkdir");
    let message = run_failing(&[sharded.path().to_str().expect("utf-8 path")]);
    assert!(
        message.contains("sharded cluster node") && message.contains("shards/<n>"),
        "{message}"
    );

    write_store(dir.path());
    let path = dir.path().to_str().expect("utf-8 path");
    for (args, expected) in [
        (&[][..], "required arguments were not provided"),
        (&["--bogus", path][..], "unexpected argument '--bogus'"),
        (&[path, "--from", "1-0"][..], "--records"),
        (
            &[path, "--stream", "orders", "--count", "3"][..],
            "--records",
        ),
        (&[path, "--stream", "orders", "--hex"][..], "--records"),
        (&[path, "--group", "workers"][..], "--stream"),
        (&[path, "--stream", "orders", "--pending"][..], "--group"),
        (
            &[
                path,
                "--stream",
                "orders",
                "--group",
                "workers",
                "--records",
            ][..],
            "cannot be used with",
        ),
        (
            &[path, "--verify", "--stream", "orders"][..],
            "cannot be used with",
        ),
        (
            &[
                path,
                "--stream",
                "orders",
                "--records",
                "--from",
                "not-an-id",
            ][..],
            "invalid value 'not-an-id'",
        ),
        (
            &[path, "--stream", "orders", "--records", "--count", "all"][..],
            "invalid value 'all' for '--count <N>'",
        ),
        (&[path, "--records"][..], "--records needs --stream KEY"),
        (&[path, "--stream", "nope"][..], "no stream named \"nope\""),
    ] {
        let message = run_failing(args);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
    let segment = segments(&stream_dir(dir.path(), b"orders"))[0].clone();
    let message = run_failing(&[segment.to_str().expect("utf-8 path"), "--stream", "orders"]);
    assert!(
        message.contains("--stream needs a data directory"),
        "{message}"
    );
}

/// A pseudo-terminal of 100 columns: `(controller, terminal)`.
fn pseudo_terminal() -> (fs::File, fs::File) {
    use std::os::fd::FromRawFd;
    let (mut controller, mut terminal) = (0, 0);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two new descriptors into the integers given, which are then owned
    // by the files made from them and by nothing else.
    let opened = unsafe {
        libc::openpty(
            &mut controller,
            &mut terminal,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are not owned elsewhere.
    unsafe {
        (
            fs::File::from_raw_fd(controller),
            fs::File::from_raw_fd(terminal),
        )
    }
}

#[test]
fn a_progress_bar_is_drawn_on_a_terminal_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_store(dir.path());
    let (mut controller, terminal) = pseudo_terminal();
    let output = Command::new(env!("CARGO_BIN_EXE_queue-dump"))
        .args(["--verify", dir.path().to_str().expect("utf-8 path")])
        .stderr(terminal)
        .output()
        .expect("run queue-dump");
    assert_eq!(output.status.code(), Some(0));
    // The report itself still goes, unchanged, to the pipe.
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "checked 3 stream(s), 6 segment(s), 202 record(s): no damage found\n"
    );
    // The child has exited and the command's copy of the terminal is closed: what it drew is
    // all in the controller's buffer.
    let mut drawn = vec![0u8; 64 * 1024];
    let len = std::io::Read::read(&mut controller, &mut drawn).expect("read the terminal");
    let drawn = String::from_utf8_lossy(&drawn[..len]);
    assert!(drawn.contains("reading segments ["), "{drawn:?}");
}

/// Every file under `dir` with its bytes.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in fs::read_dir(&path).expect("list") {
                stack.push(entry.expect("entry").path());
            }
        } else {
            out.push((path.clone(), fs::read(&path).expect("read")));
        }
    }
    out.sort();
    out
}

#[test]
fn nothing_is_written_even_to_damaged_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_store(dir.path());
    let orders = stream_dir(dir.path(), b"orders");
    // Damage the engine would repair at its next open: a torn journal tail and garbage after
    // the last record of the active segment.
    let journal = orders.join("groups.00000000000000000001.journal");
    let len = journal_end(&journal);
    fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .and_then(|f| f.set_len(len - 5))
        .expect("truncate");
    let last = segments(&orders).pop().expect("segment");
    let mut bytes = fs::read(&last).expect("read");
    let end = bytes.len() - 64;
    bytes[end..end + 8].copy_from_slice(b"garbage!");
    fs::write(&last, &bytes).expect("write");
    let before = contents(dir.path());
    let path = dir.path().to_str().expect("utf-8 path");
    assert_eq!(dump(&["--verify", path]).status.code(), Some(1));
    let journal = journal.to_str().expect("utf-8 path");
    let last = last.to_str().expect("utf-8 path");
    for args in [
        &[path][..],
        &["--json", path],
        &[path, "--stream", "orders"],
        &[path, "--stream", "orders", "--records", "--json"],
        &[
            path,
            "--stream",
            "orders",
            "--group",
            "workers",
            "--pending",
        ],
        &[last, "--records"],
        &[journal],
    ] {
        assert_eq!(dump(args).status.code(), Some(0), "{args:?}");
    }
    assert_eq!(dump(&["--verify", journal]).status.code(), Some(1));
    assert_eq!(contents(dir.path()), before, "queue-dump changed a file");
}

#[test]
fn verify_runs_beside_an_open_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_store(dir.path());
    let store = Store::open(dir.path()).expect("reopen");
    let orders = store.stream(b"orders").expect("stream");
    for i in 0..20 {
        orders
            .append(Message::new(format!("late-{i}")))
            .expect("append");
    }
    let path = dir.path().to_str().expect("utf-8 path");
    let output = dump(&["--verify", path]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let output = dump(&[path]);
    let (stdout, _) = text(&output);
    assert!(stdout.contains("length 219"), "{stdout}");
    // The store was neither locked nor disturbed.
    orders.append(Message::new("after")).expect("append");
    store.close().expect("close");
    assert_eq!(dump(&["--verify", path]).status.code(), Some(0));
}

#[test]
fn garbage_in_every_file_is_reported_never_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_store(dir.path());
    let path = dir.path().to_str().expect("utf-8 path");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (round, (file, original)) in contents(dir.path()).into_iter().enumerate() {
        if original.is_empty() || file.ends_with("NAME") {
            continue;
        }
        // Garbage over a stretch of the file, then the file cut short.
        let mut bytes = original.clone();
        let at = (next() as usize) % bytes.len();
        let end = (at + 1 + (next() as usize) % 200).min(bytes.len());
        for b in &mut bytes[at..end] {
            *b = next() as u8;
        }
        for damaged in [bytes.clone(), bytes[..at].to_vec()] {
            fs::write(&file, &damaged).expect("write");
            let file_alone = file.to_str().expect("utf-8 path");
            for args in [
                &["--verify", path][..],
                &[path],
                &[path, "--stream", "orders", "--records", "--json"],
                &[
                    path,
                    "--stream",
                    "orders",
                    "--group",
                    "workers",
                    "--pending",
                ],
                &["--verify", file_alone],
            ] {
                let output = dump(args);
                let (stdout, stderr) = text(&output);
                assert!(
                    matches!(output.status.code(), Some(0..=2)),
                    "round {round}, {}: {:?}\n{stdout}\n{stderr}",
                    file.display(),
                    output.status
                );
            }
        }
        fs::write(&file, &original).expect("restore");
    }
    assert_eq!(dump(&["--verify", path]).status.code(), Some(0));
}

#[test]
fn a_damaged_or_wrong_index_file_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_store(dir.path());
    let path = dir.path().to_str().expect("utf-8 path");
    let orders = stream_dir(dir.path(), b"orders");
    let first = orders.join("00000000000000000000.index");
    let second = orders.join("00000000000000000028.index");
    assert!(
        first.exists() && second.exists(),
        "sealed segments have index files"
    );

    let original = fs::read(&first).expect("read index");
    let mut bytes = original.clone();
    bytes[30] ^= 0x01;
    fs::write(&first, &bytes).expect("write index");
    let output = dump(&["--verify", path]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("00000000000000000000.index at byte 296: index checksum mismatch"),
        "{stdout}"
    );

    // A valid index file that describes another segment's records.
    fs::write(&first, &original).expect("restore index");
    fs::copy(&first, &second).expect("copy index");
    let output = dump(&["--verify", path]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "00000000000000000028.index at byte 16: index file belongs to another segment"
        ),
        "{stdout}"
    );
}

/// After a crash, the active segment's index written by the last checkpoint describes the
/// records up to the checkpoint: `--verify` accepts it as the active segment's shorter index,
/// and reports it when it is damaged.
#[test]
fn the_active_segments_index_left_by_a_checkpoint_is_verified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf-8 path");
    let options = StoreOptions {
        durability: Durability::Never,
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), options).expect("open store");
    let stream = store.stream(b"crashed").expect("stream");
    for i in 0..100 {
        stream
            .append(Message::new(format!("before the checkpoint {i}")))
            .expect("append");
    }
    let point = stream.log().checkpoint().expect("checkpoint");
    for i in 0..20 {
        stream
            .append(Message::new(format!("after the checkpoint {i}")))
            .expect("append");
    }
    drop(stream);
    drop(store);

    let crashed = stream_dir(dir.path(), b"crashed");
    let active = segments(&crashed).pop().expect("a segment");
    let index = crashed.join(format!("{:020}.index", point.segment_base));
    let bytes = fs::read(&index).expect("the checkpoint wrote the active segment's index");
    let stdout = run_ok(&["--verify", path]);
    assert!(
        stdout.contains("records were written after it (stale)"),
        "{stdout}"
    );
    assert_eq!(segment_json(path, &active)["index"], "stale");

    let mut damaged = bytes.clone();
    damaged[24] ^= 0x08;
    fs::write(&index, &damaged).expect("write index");
    verify_finds(
        path,
        &format!("{:020}.index", point.segment_base),
        Some(bytes.len() as u64 - 4),
        "index checksum mismatch",
    );
}

/// A command entry's payload (storage-format.md 14.2): tag 1, the leader's time, the body.
fn command_payload(body: &[u8]) -> Vec<u8> {
    let mut payload = vec![1u8];
    payload.extend_from_slice(&START_MS.to_le_bytes());
    payload.extend_from_slice(&(body.len() as u32).to_le_bytes());
    payload.extend_from_slice(body);
    payload
}

fn raft_entry(index: u64, term: u64) -> WalEntry {
    WalEntry {
        id: WalLogId {
            term,
            leader: 1,
            index,
        },
        // The first entry of each term is the new leader's blank one.
        data: if index == 1 || index == 11 {
            vec![0]
        } else {
            command_payload(format!("command-{index:03}").as_bytes())
        },
    }
}

/// A cluster node's data directory: a store, and in `raft/` a log of entries 1..=30 (term 1 up
/// to 10, term 2 after) spread over several files, voted in term 2, committed up to 25.
fn write_node(dir: &Path) -> PathBuf {
    Store::open(dir)
        .expect("open store")
        .close()
        .expect("close");
    let raft = dir.join("raft");
    let options = WalOptions {
        max_file_bytes: 256,
        ..WalOptions::default()
    };
    let (mut wal, _) = Wal::open(&raft, options).expect("open raft log");
    wal.save_vote(WalVote {
        term: 2,
        node: 1,
        committed: true,
    })
    .expect("vote");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for batch in [1..8, 8..15, 15..31] {
        let entries: Vec<WalEntry> = batch
            .map(|index| raft_entry(index, if index <= 10 { 1 } else { 2 }))
            .collect();
        let pending = wal.append(&entries).expect("append").expect("a flush");
        runtime.block_on(pending.wait()).expect("flush");
    }
    wal.save_committed(raft_entry(25, 2).id).expect("commit");
    raft
}

fn raft_files(raft: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(raft)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_nodes_raft_log_is_summarised_beside_its_streams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raft = write_node(dir.path());
    let files = raft_files(&raft);
    assert!(files.len() > 2, "need several log files: {files:?}");
    let path = dir.path().to_str().expect("utf-8 path");
    let summary = run_ok(&[path]);
    assert!(summary.starts_with("data directory "), "{summary}");
    for line in [
        "  vote: term 2, node 1, committed\n",
        "  commit point: 25 (term 2, leader 1)\n",
        "  purge point: none\n",
        "  last log id: 30 (term 2, leader 1)\n",
        "  snapshot: none\n",
        &format!("  files ({}):\n", files.len()),
        "    raft.00000000000000000001.wal  entries 1..=7 (7)  bytes ",
    ] {
        assert!(summary.contains(line), "no {line:?} in:\n{summary}");
    }

    let value = run_json(&["--json", path]);
    let log = &value["raft"];
    assert_eq!(log["vote"]["term"], 2);
    assert_eq!(log["vote"]["committed"], true);
    assert_eq!(log["committed"]["index"], 25);
    assert_eq!(log["purged"], serde_json::Value::Null);
    assert_eq!(log["last_log_id"]["index"], 30);
    assert_eq!(log["last_log_id"]["term"], 2);
    assert_eq!(log["snapshot"], serde_json::Value::Null);
    let reported = log["files"].as_array().expect("files");
    assert_eq!(reported.len(), files.len());
    assert_eq!(reported[0]["first_index"], 1);
    assert_eq!(reported[0]["last_index"], 7);
    assert_eq!(reported[0]["entries"], 7);
    let entries: u64 = reported.iter().filter_map(|f| f["entries"].as_u64()).sum();
    assert_eq!(entries, 30);
    assert!(reported[0]["used_bytes"].as_u64() <= reported[0]["bytes"].as_u64());

    // The log directory, and one of its files, given on their own.
    let raft_path = raft.to_str().expect("utf-8 path");
    let alone = run_ok(&[raft_path]);
    assert!(
        alone.contains("  last log id: 30 (term 2, leader 1)\n"),
        "{alone}"
    );
    assert_eq!(
        run_json(&["--json", raft_path])["raft"]["committed"]["index"],
        25
    );
    let file = run_ok(&[files[1].to_str().expect("utf-8 path")]);
    assert!(
        file.contains("  raft.00000000000000000008.wal  entries 8..=14 (7)"),
        "{file}"
    );
    assert!(
        file.ends_with("checked the raft log file: no damage found\n"),
        "{file}"
    );
}

#[test]
fn a_raft_logs_entries_are_listed_by_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raft = write_node(dir.path());
    let raft_path = raft.to_str().expect("utf-8 path");
    let listing = run_ok(&[raft_path, "--records", "--from", "10", "--count", "3"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    assert!(
        lines[0].starts_with("index 10  term 1  leader 1  command  data "),
        "{listing}"
    );
    assert!(
        lines[1].starts_with("index 11  term 2  leader 1  blank  data 1 bytes"),
        "{listing}"
    );
    let value = run_json(&[raft_path, "--records", "--json"]);
    assert_eq!(value["listed"], 30);
    assert_eq!(value["records"][29]["index"], 30);
    assert_eq!(value["records"][29]["kind"], "command");
}

#[test]
fn verify_checks_the_raft_log_torn_tail_and_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raft = write_node(dir.path());
    let path = dir.path().to_str().expect("utf-8 path");
    let files = raft_files(&raft);
    let output = dump(&["--verify", path]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        stdout,
        format!(
            "checked 0 stream(s), 0 segment(s), 0 record(s), the Raft log's {} file(s) and 30 \
             entries: no damage found\n",
            files.len()
        )
    );
    let raft_path = raft.to_str().expect("utf-8 path");
    assert_eq!(dump(&["--verify", raft_path]).status.code(), Some(0));

    // A torn write after the last entry, above the commit point: noted, not damage.
    let last = files.last().expect("a file");
    let used = run_json(&["--json", raft_path])["raft"]["files"]
        .as_array()
        .and_then(|files| files.last())
        .and_then(|file| file["used_bytes"].as_u64())
        .expect("used bytes");
    let file = fs::OpenOptions::new().write(true).open(last).expect("open");
    file.set_len(used - 2).expect("cut");
    let output = dump(&["--verify", path]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("note: ") && stdout.contains("torn write"),
        "{stdout}"
    );

    // A flipped byte in a committed entry of an older file: damage.
    let second = &files[1];
    let mut bytes = fs::read(second).expect("read");
    let at = position_of(&bytes, b"command-010").expect("entry 10");
    bytes[at + 4] ^= 0x20;
    fs::write(second, &bytes).expect("write");
    let line = verify_finds(
        path,
        "raft.00000000000000000008.wal",
        None,
        "entry at index 10",
    );
    assert!(line.contains("later files go on"), "{line}");
    let value = dump(&["--verify", "--json", path]);
    assert_eq!(value.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&value.stdout).expect("json");
    assert_eq!(value["damage"], 1);
    assert_eq!(value["raft"]["findings"][0]["severity"], "damage");
    assert_eq!(dump(&["--verify", raft_path]).status.code(), Some(1));
    assert_eq!(
        dump(&["--verify", second.to_str().expect("utf-8 path")])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn a_raft_log_is_read_without_writing_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raft = write_node(dir.path());
    let last = raft_files(&raft).pop().expect("a file");
    let len = fs::metadata(&last).expect("stat").len();
    // Garbage after the entries, a leftover temporary file: what an open would repair.
    let mut bytes = fs::read(&last).expect("read");
    let end = bytes.len() - 16;
    bytes[end..].copy_from_slice(&[0xAB; 16]);
    fs::write(&last, &bytes).expect("write");
    fs::write(raft.join("raft.00000000000000000099.wal.tmp"), b"partial").expect("write");
    let before = contents(dir.path());
    let path = dir.path().to_str().expect("utf-8 path");
    for args in [&["--verify", path][..], &[path], &["--json", path]] {
        dump(args);
    }
    assert_eq!(contents(dir.path()), before, "the tool wrote something");
    assert_eq!(fs::metadata(&last).expect("stat").len(), len);
}

/// The loopback network of the node this file starts (tests/cluster_support): apart from the
/// cluster tests' (61 to 68, and 70 to 169 for the fault schedules).
const NODE_NET: u8 = 201;

#[test]
fn a_live_nodes_log_and_snapshot_verify_clean_beside_it() {
    let cluster = cluster_support::Cluster::start(NODE_NET, 1, "always");
    let mut conn = cluster.conn(1).expect("connect");
    // More entries than two snapshot intervals (200 in the harness): the node snapshots its
    // store and purges its log below the snapshot.
    for n in 0..450 {
        cluster_support::query(&mut conn, &["XADD", "orders", "*", "n", &n.to_string()])
            .expect("XADD");
    }
    let dir = cluster.dir(1).to_path_buf();
    let path = dir.to_str().expect("utf-8 path").to_owned();
    cluster_support::eventually("a snapshot and a purged log", || {
        let value = run_json(&["--json", &path]);
        !value["raft"]["snapshot"].is_null() && !value["raft"]["purged"].is_null()
    });
    // The node goes on writing (its leader's ticks) while the tool reads.
    let output = dump(&["--verify", "--json", &path]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let log = &value["raft"];
    assert_eq!(log["vote"]["node"], 1);
    let snapshot = &log["snapshot"];
    assert_eq!(snapshot["data_bytes"], snapshot["data_len"]);
    assert!(snapshot["archive_files"].as_u64() > Some(0), "{snapshot}");
    let committed = log["committed"]["index"].as_u64().expect("a commit point");
    let last = log["last_log_id"]["index"].as_u64().expect("a last log id");
    let purged = log["purged"]["index"].as_u64().expect("a purge point");
    assert!(purged < committed && committed <= last, "{log}");
    let first = log["files"][0]["first_index"].as_u64().expect("a log file");
    assert!(first <= purged + 1, "{log}");
    let raft = dir.join("raft");
    let listing = run_ok(&[
        raft.to_str().expect("utf-8 path"),
        "--records",
        "--from",
        &(purged + 1).to_string(),
        "--count",
        "2",
    ]);
    assert!(
        listing.starts_with(&format!("index {}  term ", purged + 1)),
        "{listing}"
    );
}
