//! The Raft log's own tests: reopening after a crash at each file-system call of each
//! operation, torn tails, damage in older files, truncation, purging, and random sequences
//! against a model.

use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::fs::fault::{self, Fault};

/// Files that take a few entries each, so that a handful of entries spans several.
pub(super) const SMALL_FILES: WalOptions = WalOptions {
    max_file_bytes: 160,
    durability: Durability::Always,
    commit_save_interval: None,
};

fn entry(index: u64, term: u64) -> WalEntry {
    WalEntry {
        id: WalLogId {
            term,
            leader: term % 3,
            index,
        },
        data: (0..(index % 7) * 5).map(|i| (i + index) as u8).collect(),
    }
}

fn entries(range: Range<u64>, term: u64) -> Vec<WalEntry> {
    range.map(|index| entry(index, term)).collect()
}

fn open(dir: &Path) -> (Wal, WalRecovery) {
    Wal::open(dir, SMALL_FILES).unwrap()
}

fn all(wal: &Wal) -> Vec<WalEntry> {
    wal.read(0..u64::MAX).unwrap()
}

/// Appends and waits for the flush: what openraft's callback reports.
fn append_durably(wal: &mut Wal, batch: &[WalEntry]) -> Result<(), String> {
    let pending = wal.append(batch).map_err(|error| error.to_string())?;
    match pending {
        Some(pending) => block_on(pending.wait()).map_err(|error| error.to_string()),
        None => Ok(()),
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|item| item.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    files.sort();
    files
}

/// A log of entries 1..=20 in several files, the last five synced but not committed.
fn twenty(dir: &Path) -> Wal {
    let (mut wal, _) = open(dir);
    for (range, term) in [(1..5, 1), (5..9, 1), (9..11, 1), (11..15, 2), (15..21, 2)] {
        append_durably(&mut wal, &entries(range, term)).unwrap();
    }
    wal.save_committed(entry(15, 2).id).unwrap();
    assert!(log_files(dir).len() > 2, "{:?}", log_files(dir));
    wal
}

#[test]
fn entries_read_back_across_files_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let wal = twenty(dir.path());
    assert_eq!(
        all(&wal),
        entries(1..11, 1)
            .into_iter()
            .chain(entries(11..21, 2))
            .collect::<Vec<_>>()
    );
    assert_eq!(wal.read(5..8).unwrap(), entries(5..8, 1));
    assert_eq!(wal.last_log_id(), Some(entry(20, 2).id));
    let before = all(&wal);
    drop(wal);
    let (wal, recovery) = open(dir.path());
    assert_eq!(recovery, WalRecovery::default());
    assert_eq!(all(&wal), before);
    assert_eq!(wal.meta().committed, Some(entry(15, 2).id));
}

#[test]
fn a_commit_save_interval_writes_the_commit_point_at_most_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        commit_save_interval: Some(std::time::Duration::from_secs(3600)),
        ..SMALL_FILES
    };
    let (mut wal, _) = Wal::open(dir.path(), options).unwrap();
    append_durably(&mut wal, &entries(1..5, 1)).unwrap();
    wal.save_committed(entry(2, 1).id).unwrap();
    wal.save_committed(entry(4, 1).id).unwrap();
    assert_eq!(wal.meta().committed, Some(entry(4, 1).id));
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), options).unwrap();
    assert_eq!(
        wal.meta().committed,
        Some(entry(2, 1).id),
        "the second save waits"
    );
    drop(wal);
    // A vote rewrites `raft.meta` with the commit point as it stands; a new process saves its
    // first commit point at once, then waits again.
    let (mut wal, _) = Wal::open(dir.path(), options).unwrap();
    wal.save_vote(WalVote {
        term: 2,
        node: 1,
        committed: false,
    })
    .unwrap();
    wal.save_committed(entry(3, 1).id).unwrap();
    wal.save_committed(entry(4, 1).id).unwrap();
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), options).unwrap();
    assert_eq!(wal.meta().committed, Some(entry(3, 1).id));
}

#[test]
fn appends_must_follow_the_last_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = twenty(dir.path());
    let error = wal.append(&[entry(22, 2)]).unwrap_err();
    assert!(
        matches!(
            error,
            WalError::NotContiguous {
                expected: 21,
                found: 22,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(all(&wal).len(), 20);
}

#[test]
fn truncate_then_append_rewrites_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = twenty(dir.path());
    let files_before = log_files(dir.path()).len();
    wal.truncate_from(17).unwrap();
    assert_eq!(wal.last_log_id(), Some(entry(16, 2).id));
    append_durably(&mut wal, &entries(17..19, 3)).unwrap();
    let expected: Vec<WalEntry> = entries(1..11, 1)
        .into_iter()
        .chain(entries(11..17, 2))
        .chain(entries(17..19, 3))
        .collect();
    assert_eq!(all(&wal), expected);
    assert!(log_files(dir.path()).len() <= files_before);
    drop(wal);
    let (wal, recovery) = open(dir.path());
    assert!(
        recovery.is_whole() && recovery.torn_tail.is_none(),
        "{recovery:?}"
    );
    assert_eq!(all(&wal), expected);
}

#[test]
fn truncating_committed_entries_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = twenty(dir.path());
    let error = wal.truncate_from(15).unwrap_err();
    assert!(
        matches!(error, WalError::TruncateCommitted { kept: 15, .. }),
        "{error}"
    );
    assert_eq!(all(&wal).len(), 20);
}

#[test]
fn purge_drops_whole_files_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = twenty(dir.path());
    let files_before = log_files(dir.path()).len();
    wal.purge_to(entry(12, 2).id).unwrap();
    assert!(log_files(dir.path()).len() < files_before);
    assert_eq!(all(&wal), entries(13..21, 2));
    drop(wal);
    let (mut wal, recovery) = open(dir.path());
    assert!(recovery.is_whole(), "{recovery:?}");
    assert_eq!(all(&wal), entries(13..21, 2));
    assert_eq!(wal.meta().purged, Some(entry(12, 2).id));
    // Past the end: the log is empty and continues after the purge point.
    wal.purge_to(entry(30, 4).id).unwrap();
    assert!(all(&wal).is_empty());
    assert!(log_files(dir.path()).is_empty());
    assert_eq!(wal.last_log_id(), Some(entry(30, 4).id));
    append_durably(&mut wal, &[entry(31, 4)]).unwrap();
    drop(wal);
    let (wal, recovery) = open(dir.path());
    assert!(recovery.is_whole(), "{recovery:?}");
    assert_eq!(all(&wal), vec![entry(31, 4)]);
}

/// Where the entries of the undamaged log file at `path` end: its zeros written ahead follow.
fn entries_end(path: &Path) -> u64 {
    let (journal, replay) = Journal::open(path, RAFT_LOG_KIND).unwrap();
    assert!(replay.damage.is_none(), "{:?}", replay.damage);
    journal.len_bytes()
}

#[test]
fn a_log_file_is_preallocated_ahead_of_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let wal = twenty(dir.path());
    drop(wal);
    let last = log_files(dir.path()).pop().unwrap();
    let end = entries_end(&last);
    let bytes = std::fs::read(&last).unwrap();
    assert!(bytes.len() as u64 > end, "no zeros written ahead");
    assert!(bytes[end as usize..].iter().all(|&byte| byte == 0));
}

#[test]
fn a_torn_tail_above_the_commit_point_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let wal = twenty(dir.path());
    drop(wal);
    let last = log_files(dir.path()).pop().unwrap();
    let len = entries_end(&last);
    let file = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(len - 3).unwrap();
    let (mut wal, recovery) = open(dir.path());
    assert!(recovery.is_whole(), "{recovery:?}");
    let torn = recovery.torn_tail.expect("the cut is reported");
    assert_eq!(torn.path, last);
    assert_eq!(wal.last_log_id(), Some(entry(19, 2).id));
    append_durably(&mut wal, &[entry(20, 3)]).unwrap();
    assert_eq!(wal.read(20..21).unwrap(), vec![entry(20, 3)]);
}

#[test]
fn a_lost_committed_entry_is_damage_and_nothing_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = twenty(dir.path());
    wal.save_committed(entry(20, 2).id).unwrap();
    drop(wal);
    let last = log_files(dir.path()).pop().unwrap();
    let len = entries_end(&last);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (mut wal, recovery) = open(dir.path());
    assert!(
        matches!(
            &recovery.damage,
            Some(WalDamage::LostCommitted {
                index: 20,
                committed: 20,
                ..
            })
        ),
        "{recovery:?}"
    );
    assert_eq!(
        std::fs::metadata(&last).unwrap().len(),
        len - 3,
        "nothing cut"
    );
    assert_eq!(all(&wal).len(), 19);
    let refused = wal.save_vote(WalVote {
        term: 9,
        node: 1,
        committed: false,
    });
    assert!(
        matches!(refused, Err(WalError::Damaged { .. })),
        "{refused:?}"
    );
    assert!(matches!(
        wal.append(&[entry(20, 3)]),
        Err(WalError::Damaged { .. })
    ));
}

#[test]
fn a_flipped_byte_in_an_older_file_is_damage_and_nothing_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let wal = twenty(dir.path());
    let first_file_entries = wal.files[0].slots.len() as u64;
    let second = wal.files[1].path.clone();
    let position = wal.files[1].slots[1].position + 12;
    drop(wal);
    let files_before: Vec<(PathBuf, u64)> = log_files(dir.path())
        .into_iter()
        .map(|path| {
            let len = std::fs::metadata(&path).unwrap().len();
            (path, len)
        })
        .collect();
    let mut bytes = std::fs::read(&second).unwrap();
    bytes[position as usize] ^= 0x40;
    std::fs::write(&second, &bytes).unwrap();
    let (wal, recovery) = open(dir.path());
    match &recovery.damage {
        Some(WalDamage::BrokenFile { path, index, .. }) => {
            assert_eq!(path, &second);
            assert_eq!(*index, first_file_entries + 2);
        }
        other => panic!("expected a broken file, got {other:?}"),
    }
    assert_eq!(all(&wal), entries(1..first_file_entries + 2, 1));
    let files_after: Vec<(PathBuf, u64)> = log_files(dir.path())
        .into_iter()
        .map(|path| {
            let len = std::fs::metadata(&path).unwrap().len();
            (path, len)
        })
        .collect();
    assert_eq!(files_after, files_before, "no file removed or cut");
}

#[test]
fn a_missing_middle_file_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let wal = twenty(dir.path());
    let middle = wal.files[1].path.clone();
    drop(wal);
    std::fs::remove_file(&middle).unwrap();
    let (_, recovery) = open(dir.path());
    assert!(
        matches!(recovery.damage, Some(WalDamage::Gap { .. })),
        "{recovery:?}"
    );
}

/// What an operation under a crash may leave, checked after reopening.
fn crash_at_every_call(
    name: &str,
    operation: impl Fn(&mut Wal) -> bool,
    check: impl Fn(&Wal, bool),
) {
    let mut n = 0;
    loop {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = twenty(dir.path());
        let plan = fault::inject(dir.path(), n, Fault::Crash);
        let succeeded = operation(&mut wal);
        let fired = plan.fired();
        let log = plan.log();
        drop(wal);
        drop(plan);
        let (wal, recovery) = open(dir.path());
        assert!(
            recovery.is_whole(),
            "{name}, crash at call {n} of {log:?}: {recovery:?}"
        );
        assert!(
            !(fired && succeeded),
            "{name}: crashed at call {n} yet reported success"
        );
        check(&wal, succeeded);
        if !fired {
            assert!(succeeded, "{name} without a crash succeeds");
            assert!(n > 0, "{name} makes file-system calls");
            return;
        }
        n += 1;
    }
}

fn before_and_after(wal: &Wal) -> Vec<WalEntry> {
    let entries = all(wal);
    for pair in entries.windows(2) {
        assert_eq!(pair[0].id.index + 1, pair[1].id.index, "consecutive");
    }
    entries
}

#[test]
fn a_crash_during_an_append_keeps_every_acknowledged_entry() {
    let original: Vec<WalEntry> = entries(1..11, 1)
        .into_iter()
        .chain(entries(11..21, 2))
        .collect();
    // Large enough to roll to a new file.
    let batch = entries(21..30, 3);
    crash_at_every_call(
        "append",
        |wal| append_durably(wal, &batch).is_ok(),
        |wal, acknowledged| {
            let found = before_and_after(wal);
            assert_eq!(found[..20], original[..], "the old entries stay");
            assert_eq!(
                found[20..],
                batch[..found.len() - 20],
                "a prefix of the batch"
            );
            if acknowledged {
                assert_eq!(found.len(), 29, "an acknowledged batch is all there");
            }
        },
    );
}

#[test]
fn a_crash_during_a_truncation_leaves_a_prefix() {
    let original: Vec<WalEntry> = entries(1..11, 1)
        .into_iter()
        .chain(entries(11..21, 2))
        .collect();
    crash_at_every_call(
        "truncate",
        |wal| wal.truncate_from(16).is_ok(),
        |wal, done| {
            let found = before_and_after(wal);
            assert!(found.len() >= 15, "committed entries stay");
            assert_eq!(found[..], original[..found.len()]);
            if done {
                assert_eq!(found.len(), 15);
            }
        },
    );
}

#[test]
fn a_crash_during_a_purge_keeps_everything_after_it() {
    let original: Vec<WalEntry> = entries(1..11, 1)
        .into_iter()
        .chain(entries(11..21, 2))
        .collect();
    crash_at_every_call(
        "purge",
        |wal| wal.purge_to(entry(12, 2).id).is_ok(),
        |wal, done| {
            let found = before_and_after(wal);
            assert_eq!(found.last(), original.last());
            assert!(found.len() >= 8);
            if done {
                assert_eq!(found[..], original[12..]);
            }
        },
    );
}

#[test]
fn a_crash_while_saving_the_vote_leaves_the_old_vote_or_the_new() {
    let vote = WalVote {
        term: 7,
        node: 2,
        committed: false,
    };
    crash_at_every_call(
        "save_vote",
        |wal| wal.save_vote(vote).is_ok(),
        |wal, done| {
            let saved = wal.meta().vote;
            assert!(saved.is_none() || saved == Some(vote), "{saved:?}");
            if done {
                assert_eq!(saved, Some(vote));
            }
            assert_eq!(wal.meta().committed, Some(entry(15, 2).id));
            assert_eq!(all(wal).len(), 20);
        },
    );
}

#[derive(Debug, Clone)]
enum Op {
    Append { count: u64, new_term: bool },
    Truncate { back: u64 },
    Purge { ahead: u64 },
    Commit,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1..6u64, any::<bool>()).prop_map(|(count, new_term)| Op::Append { count, new_term }),
        2 => (0..6u64).prop_map(|back| Op::Truncate { back }),
        1 => (0..8u64).prop_map(|ahead| Op::Purge { ahead }),
        1 => Just(Op::Commit),
        1 => Just(Op::Reopen),
    ]
}

/// The log as a list of entries after a purge point.
#[derive(Debug, Default)]
struct Model {
    entries: Vec<WalEntry>,
    purged: Option<WalLogId>,
    committed: Option<u64>,
    term: u64,
}

impl Model {
    fn next_index(&self) -> u64 {
        match (self.entries.last(), self.purged) {
            (Some(last), _) => last.id.index + 1,
            (None, Some(purged)) => purged.index + 1,
            (None, None) => 1,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_operations_match_a_model(ops in proptest::collection::vec(op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions {
            max_file_bytes: 120,
            durability: Durability::Never,
            commit_save_interval: None,
        };
        let (mut wal, _) = Wal::open(dir.path(), options).unwrap();
        let mut model = Model { term: 1, ..Model::default() };
        for op in ops {
            match op {
                Op::Append { count, new_term } => {
                    model.term += u64::from(new_term);
                    let next = model.next_index();
                    let batch = entries(next..next + count, model.term);
                    wal.append(&batch).unwrap();
                    model.entries.extend(batch);
                }
                Op::Truncate { back } => {
                    let from = model.next_index().saturating_sub(back).max(1);
                    let kept = model.committed.max(model.purged.map(|p| p.index));
                    let result = wal.truncate_from(from);
                    if kept.is_some_and(|kept| from <= kept) {
                        prop_assert!(result.is_err());
                    } else {
                        result.unwrap();
                        model.entries.retain(|e| e.id.index < from);
                    }
                }
                Op::Purge { ahead } => {
                    let first = model.entries.first().map_or(model.next_index(), |e| e.id.index);
                    let to = first + ahead;
                    let id = model
                        .entries
                        .iter()
                        .find(|e| e.id.index == to)
                        .map_or(WalLogId { term: model.term, leader: 0, index: to }, |e| e.id);
                    if model.purged.is_none_or(|purged| purged.index < to) {
                        model.purged = Some(id);
                        model.entries.retain(|e| e.id.index > to);
                    }
                    wal.purge_to(id).unwrap();
                }
                Op::Commit => {
                    if let Some(last) = model.entries.last() {
                        wal.save_committed(last.id).unwrap();
                        model.committed = Some(last.id.index);
                    }
                }
                Op::Reopen => {
                    drop(wal);
                    let (reopened, recovery) = Wal::open(dir.path(), options).unwrap();
                    prop_assert_eq!(recovery, WalRecovery::default());
                    wal = reopened;
                }
            }
            prop_assert_eq!(&all(&wal), &model.entries);
            let last = model.entries.last().map(|e| e.id).or(model.purged);
            prop_assert_eq!(wal.last_log_id(), last);
        }
    }
}

#[test]
fn a_new_log_directory_is_made_durable_in_its_parent() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("raft");
    let calls = fault::count(parent.path());
    drop(open(&dir));
    let synced_parent = calls
        .log()
        .iter()
        .any(|(op, path)| *op == crate::fs::Op::SyncDir && path == parent.path());
    assert!(synced_parent, "{:?}", calls.log());
}
