//! `queue-dump` run as a program on data directories written through the library: the summary,
//! `--verify` on clean and damaged files, entry listings, JSON, and its exit codes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use weir::{
    Durability, GroupPolicy, GroupStart, LogOptions, Message, Store, StoreOptions, StreamId,
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

/// Two streams, one spread over several segments, with a deletion and a group holding pending
/// entries; the store is closed before the tool runs.
fn write_store(dir: &Path) -> Vec<StreamId> {
    let options = StoreOptions {
        durability: Durability::Always,
        log: LogOptions {
            max_segment_bytes: 64 * 1024,
            initial_segment_bytes: 4096,
            index_interval_bytes: 512,
        },
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
    let audit = store.stream(b"audit\x00log").expect("stream");
    audit
        .append(Message::new(vec![0u8, 1, 2, 255]))
        .expect("append");
    store.close().expect("close");
    ids
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

#[test]
fn summary_names_streams_segments_and_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_store(dir.path());
    let output = dump(&[dir.path().to_str().expect("utf-8 path")]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("stream \"orders\""), "{stdout}");
    assert!(stdout.contains("stream \"audit\\x00log\""), "{stdout}");
    assert!(stdout.contains("length 199"), "{stdout}");
    assert!(stdout.contains("entries-added 200"), "{stdout}");
    assert!(stdout.contains("00000000000000000000.seg"), "{stdout}");
    assert!(stdout.contains("\"workers\""), "{stdout}");
    assert!(stdout.contains("pending 2"), "{stdout}");
    assert!(stdout.contains("consumer \"alice\"  pending 2"), "{stdout}");
    assert!(stdout.contains("index ok"), "{stdout}");
    assert!(stdout.contains("settings: work-queue off"), "{stdout}");
    assert!(stdout.contains("checkpoint: clean"), "{stdout}");
}

#[test]
fn json_summary_parses_and_holds_the_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = write_store(dir.path());
    let output = dump(&["--json", dir.path().to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    let streams = value["streams"].as_array().expect("streams");
    let orders = streams
        .iter()
        .find(|s| s["name"] == "orders")
        .expect("orders");
    assert_eq!(orders["length"], 199);
    assert_eq!(orders["max_deleted_id"], ids[150].to_string());
    assert_eq!(orders["groups"][0]["pending"], 2);
    assert_eq!(value["damage"], 0);
}

#[test]
fn entries_of_one_stream_are_listed_with_headers_and_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = write_store(dir.path());
    let path = dir.path().to_str().expect("utf-8 path");
    let from = ids[10].to_string();
    let output = dump(&[path, "--stream", "orders", "--from", &from, "--count", "2"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("offset 10  id {}", ids[10])),
        "{stdout}"
    );
    assert!(stdout.contains("order-body-0011"), "{stdout}");
    assert!(!stdout.contains("order-body-0012"), "{stdout}");
    assert!(
        stdout.contains("header \"kind\" = \"new-order\""),
        "{stdout}"
    );

    let output = dump(&[path, "--stream", "audit\\x00log"]);
    let (stdout, _) = text(&output);
    assert!(stdout.contains("body \"\\x00\\x01\\x02\\xff\""), "{stdout}");
    let output = dump(&[path, "--stream", "orders", "--count", "1", "--hex"]);
    let (stdout, _) = text(&output);
    assert!(stdout.contains("|order-body-0000-|"), "{stdout}");

    let output = dump(&[path, "--stream", "nope"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_single_segment_file_is_dumped() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_store(dir.path());
    let first = segments(&stream_dir(dir.path(), b"orders"))[0].clone();
    let output = dump(&[first.to_str().expect("utf-8 path"), "--records"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("base 0"), "{stdout}");
    assert!(stdout.contains("order-body-0000"), "{stdout}");
}

#[test]
fn verify_is_clean_then_names_each_damaged_file_and_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_store(dir.path());
    let path = dir.path().to_str().expect("utf-8 path");
    let output = dump(&["--verify", path]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("no damage found"), "{stdout}");

    let orders = stream_dir(dir.path(), b"orders");
    let segs = segments(&orders);
    assert!(segs.len() >= 3, "need sealed segments: {segs:?}");

    // A flipped byte inside a record body of the first (sealed) segment.
    let mut bytes = fs::read(&segs[0]).expect("read segment");
    let at = position_of(&bytes, b"order-body-0003-").expect("record body");
    bytes[at + 12] ^= 0x20;
    fs::write(&segs[0], &bytes).expect("write segment");
    let output = dump(&["--verify", path]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("damage:") && l.contains("00000000000000000000.seg at byte"))
        .unwrap_or_else(|| panic!("no damage line for the segment: {stdout}"));
    assert!(line.contains("offset 3 is lost"), "{line}");
    let record_start = line
        .split("at byte ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse::<usize>().ok())
        .expect("position");
    assert!(record_start < at && at - record_start < 128, "{line}");

    // A wrong magic number in the header of the second segment.
    let mut bytes = fs::read(&segs[1]).expect("read segment");
    bytes[0..8].copy_from_slice(b"NOTASEG\0");
    fs::write(&segs[1], &bytes).expect("write segment");
    let name = segs[1]
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_owned();
    let output = dump(&["--verify", path]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{name} at byte 0: bad segment header: wrong magic"
        )),
        "{stdout}"
    );

    // A group journal cut a few bytes short.
    let journal = orders.join("groups.00000000000000000001.journal");
    let len = fs::metadata(&journal).expect("journal").len();
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .expect("open journal");
    file.set_len(len - 3).expect("truncate");
    drop(file);
    let output = dump(&["--verify", path]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("damage:")
            && l.contains("groups.00000000000000000001.journal at byte")),
        "{stdout}"
    );
    // The summary still runs and reports the problems, with a zero exit code.
    let output = dump(&[path]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("problems"), "{stdout}");
    // The JSON verification carries the same damage.
    let output = dump(&["--verify", "--json", path]);
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert!(value["damage"].as_u64().is_some_and(|n| n >= 3), "{value}");
}

#[test]
fn a_missing_or_foreign_directory_and_bad_arguments_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing");
    let output = dump(&["--verify", missing.to_str().expect("utf-8 path")]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("missing"), "{stderr}");

    let output = dump(&["--verify", dir.path().to_str().expect("utf-8 path")]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("not a weir data directory"), "{stderr}");

    assert_eq!(dump(&[]).status.code(), Some(2));
    assert_eq!(dump(&["--bogus", "x"]).status.code(), Some(2));
    assert_eq!(dump(&["x", "--from", "1-0"]).status.code(), Some(2));
    assert_eq!(
        dump(&["x", "--verify", "--stream", "s"]).status.code(),
        Some(2)
    );
    let output = dump(&["x", "--stream", "s", "--from", "not-an-id"]);
    assert_eq!(output.status.code(), Some(2));
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
    let len = fs::metadata(&journal).expect("journal").len();
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
    assert_eq!(dump(&[path]).status.code(), Some(0));
    assert_eq!(dump(&["--json", path]).status.code(), Some(0));
    assert_eq!(dump(&[path, "--stream", "orders"]).status.code(), Some(0));
    let last = last.to_str().expect("utf-8 path");
    assert_eq!(dump(&[last, "--records"]).status.code(), Some(0));
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
            for args in [
                &["--verify", path][..],
                &[path],
                &[path, "--stream", "orders"],
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
        stdout.contains("00000000000000000000.index: index checksum mismatch"),
        "{stdout}"
    );

    // A valid index file that describes another segment's records.
    fs::write(&first, &original).expect("restore index");
    fs::copy(&first, &second).expect("copy index");
    let output = dump(&["--verify", path]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("00000000000000000028.index: index file belongs to another segment"),
        "{stdout}"
    );
}
