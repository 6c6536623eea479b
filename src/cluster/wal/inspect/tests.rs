//! The inspection reaches the conclusions recovery reaches, and writes nothing.

use std::path::Path;

use super::*;
use crate::cluster::wal::tests::SMALL_FILES;
use crate::cluster::wal::{Wal, WalOptions, WalVote};

fn entry(index: u64, term: u64) -> WalEntry {
    WalEntry {
        id: WalLogId {
            term,
            leader: 1,
            index,
        },
        data: vec![index as u8; (index % 5) as usize * 4],
    }
}

/// A log of entries 1..=20 over several files, committed up to 15, with a vote.
fn twenty(dir: &Path) {
    let (mut wal, _) = Wal::open(dir, SMALL_FILES).unwrap();
    wal.save_vote(WalVote {
        term: 2,
        node: 1,
        committed: true,
    })
    .unwrap();
    for (range, term) in [(1..8, 1), (8..14, 1), (14..21, 2)] {
        let batch: Vec<WalEntry> = range.map(|index| entry(index, term)).collect();
        let pending = wal.append(&batch).unwrap().unwrap();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(pending.wait())
            .unwrap();
    }
    wal.save_committed(entry(15, 2).id).unwrap();
}

/// Every file of the directory with its bytes.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|item| {
            let path = item.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = contents(dir)
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_clean_log_is_described_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    twenty(dir.path());
    let before = contents(dir.path());
    let inspection = inspect(dir.path()).unwrap();
    assert_eq!(contents(dir.path()), before, "nothing written");
    assert_eq!(inspection.damage, None);
    assert_eq!(inspection.torn_tail, None);
    assert_eq!(inspection.term_regression, None);
    assert_eq!(
        inspection.meta.vote,
        Some(WalVote {
            term: 2,
            node: 1,
            committed: true
        })
    );
    assert_eq!(inspection.meta.committed, Some(entry(15, 2).id));
    assert_eq!(inspection.last_log_id, Some(entry(20, 2).id));
    assert!(inspection.files.len() > 1, "{:?}", inspection.files);
    let held: u64 = inspection.files.iter().map(|file| file.entries).sum();
    assert_eq!(held, 20);
    for file in &inspection.files {
        assert!(file.used_bytes <= file.bytes, "{file:?}");
    }
    let entries = inspection.read(5..9).unwrap();
    assert_eq!(
        entries,
        (5..9).map(|index| entry(index, 1)).collect::<Vec<_>>()
    );
}

/// The end of the last file's entries.
fn used(dir: &Path) -> (PathBuf, u64) {
    let inspection = inspect(dir).unwrap();
    let last = inspection.files.last().unwrap();
    (last.path.clone(), last.used_bytes)
}

#[test]
fn a_torn_tail_above_the_commit_point_is_a_torn_write_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    twenty(dir.path());
    let (last, end) = used(dir.path());
    let file = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(end - 3).unwrap();
    let before = contents(dir.path());
    let inspection = inspect(dir.path()).unwrap();
    assert_eq!(contents(dir.path()), before, "the torn tail is not cut");
    assert_eq!(inspection.damage, None);
    assert_eq!(
        inspection.torn_tail.as_ref().map(|torn| &torn.path),
        Some(&last)
    );
    assert_eq!(inspection.last_log_id, Some(entry(19, 2).id));
    let alone = inspect_file(&last).unwrap();
    assert!(alone.damage.is_none(), "{alone:?}");
    assert!(alone.torn_tail.is_some());
}

#[test]
fn a_flipped_byte_in_a_committed_entry_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    twenty(dir.path());
    let first = log_files(dir.path()).remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[HEADER_LEN + FRAME_HEADER_LEN + 30] ^= 0x40;
    std::fs::write(&first, &bytes).unwrap();
    let inspection = inspect(dir.path()).unwrap();
    assert!(
        matches!(
            &inspection.damage,
            Some(WalDamage::BrokenFile { path, index: 2, .. }) if path == &first
        ),
        "{:?}",
        inspection.damage
    );
    assert!(!inspection.unread.is_empty(), "later files are not read");
    let alone = inspect_file(&first).unwrap();
    assert!(
        matches!(alone.damage, Some(WalDamage::BrokenFile { index: 2, .. })),
        "{alone:?}"
    );
    assert_eq!(alone.file.entries, 1);
}

#[test]
fn a_missing_file_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    twenty(dir.path());
    let middle = log_files(dir.path()).remove(1);
    std::fs::remove_file(&middle).unwrap();
    let inspection = inspect(dir.path()).unwrap();
    assert!(
        matches!(inspection.damage, Some(WalDamage::Gap { expected, found, .. }) if found > expected),
        "{:?}",
        inspection.damage
    );
}

#[test]
fn a_log_ending_before_the_commit_point_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    twenty(dir.path());
    let last = log_files(dir.path()).pop().unwrap();
    std::fs::remove_file(&last).unwrap();
    let inspection = inspect(dir.path()).unwrap();
    assert!(
        matches!(
            inspection.damage,
            Some(WalDamage::MissingCommitted { committed: 15, .. })
        ),
        "{:?}",
        inspection.damage
    );
}

#[test]
fn a_term_going_down_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.append(&[entry(1, 3), entry(2, 2)]).unwrap();
    drop(wal);
    let inspection = inspect(dir.path()).unwrap();
    let regression = inspection.term_regression.expect("the term going down");
    assert_eq!(
        (regression.index, regression.term, regression.previous),
        (2, 2, 3)
    );
}

#[test]
fn a_file_with_a_foreign_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.7.wal");
    std::fs::write(&path, b"x").unwrap();
    assert!(matches!(
        inspect_file(&path),
        Err(WalError::NotALogFile { .. })
    ));
}
