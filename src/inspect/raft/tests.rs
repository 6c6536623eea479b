//! The snapshot's data file is checked against what `raft.snapshot` records, and stray snapshot
//! files are noted.

use super::*;
use crate::cluster::state_machine::RAFT_SNAPSHOT_KIND;
use crate::cluster::wal::meta::put_log_id;
use crate::codec::Encoder;
use crate::journal;
use crate::names::raft_snapshot_data_name;
use crate::{Message, Store};

const LAST: WalLogId = WalLogId {
    term: 3,
    leader: 2,
    index: 40,
};

/// Writes `raft.snapshot` naming data file 7 of `data_len` bytes: its payload as
/// storage-format.md 14.5 lays it out, with a membership of one voter and no node.
fn write_stored_snapshot(dir: &Path, data_len: u64) {
    let mut out = Encoder::new();
    put_log_id(&mut out, Some(LAST));
    put_log_id(&mut out, None);
    out.u64(1).u64(1).u64(2).u64(0);
    out.bytes(b"3-40-1").u64(7).u64(data_len);
    journal::write_snapshot(
        dir,
        RAFT_SNAPSHOT_FILE,
        RAFT_SNAPSHOT_KIND,
        1,
        &out.finish(),
    )
    .unwrap();
}

/// A store snapshot archive of a store with one entry, as data file 7.
fn write_archive(dir: &Path) -> PathBuf {
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    store
        .stream(b"s")
        .unwrap()
        .append(Message::new("x"))
        .unwrap();
    let mut archive = Vec::new();
    store.freeze().unwrap().write_archive(&mut archive).unwrap();
    store.close().unwrap();
    let path = dir.join(raft_snapshot_data_name(7));
    std::fs::write(&path, &archive).unwrap();
    path
}

fn details(report: &RaftReport) -> Vec<(Severity, String)> {
    report
        .findings
        .iter()
        .map(|finding| (finding.severity, finding.detail.clone()))
        .collect()
}

#[test]
fn a_whole_snapshot_is_described() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_archive(dir.path());
    write_stored_snapshot(dir.path(), std::fs::metadata(&data).unwrap().len());
    let report = inspect_raft(dir.path());
    assert_eq!(details(&report), Vec::new());
    let snapshot = report.snapshot.expect("a snapshot");
    assert_eq!(snapshot.last_log_id, Some(LAST));
    assert_eq!(snapshot.data_file, data);
    assert_eq!(snapshot.data_bytes, Some(snapshot.data_len));
    assert!(snapshot.archive_files.is_some_and(|files| files > 1));
}

#[test]
fn a_data_file_of_another_length_missing_or_damaged_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_archive(dir.path());
    let len = std::fs::metadata(&data).unwrap().len();
    write_stored_snapshot(dir.path(), len + 1);
    let found = details(&inspect_raft(dir.path()));
    assert!(
        matches!(&found[..], [(Severity::Damage, detail)] if detail.contains("raft.snapshot records")),
        "{found:?}"
    );

    write_stored_snapshot(dir.path(), len);
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&data, &bytes).unwrap();
    let found = details(&inspect_raft(dir.path()));
    assert!(
        matches!(&found[..], [(Severity::Damage, detail)] if detail.contains("archive")),
        "{found:?}"
    );

    std::fs::remove_file(&data).unwrap();
    let report = inspect_raft(dir.path());
    assert_eq!(report.snapshot.as_ref().and_then(|s| s.data_bytes), None);
    let found = details(&report);
    assert!(
        matches!(&found[..], [(Severity::Damage, detail)] if detail.contains("missing")),
        "{found:?}"
    );
}

#[test]
fn stray_snapshot_files_are_noted_and_garbage_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(raft_snapshot_data_name(3)), b"old").unwrap();
    std::fs::write(dir.path().join(RAFT_SNAPSHOT_BUILDING_FILE), b"new").unwrap();
    std::fs::write(dir.path().join(RAFT_SNAPSHOT_FILE), b"garbage").unwrap();
    let found = details(&inspect_raft(dir.path()));
    let notes = found
        .iter()
        .filter(|(severity, _)| *severity == Severity::Note);
    assert_eq!(notes.count(), 2, "{found:?}");
    let damage = found
        .iter()
        .filter(|(severity, _)| *severity == Severity::Damage);
    assert_eq!(damage.count(), 1, "{found:?}");
}
