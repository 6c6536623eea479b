//! A transaction across streams, groups and the stream directory, with a crash or a disk fault
//! at each of its file-system calls: after a reopen the store shows all of its changes or none.

use std::ops::Bound;
use std::path::Path;

use crate::fs::fault::{self, Fault};
use crate::{Durability, GroupPolicy, GroupStart, Message, Store, StoreOptions};

fn open(dir: &Path, durability: Durability) -> Store {
    let options = StoreOptions {
        durability,
        ..StoreOptions::default()
    };
    Store::open_with(dir, options).unwrap()
}

/// What a check can see of the store, in a form two states compare by.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    names: Vec<Vec<u8>>,
    bodies: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    pending: usize,
}

fn observe(store: &Store) -> Observed {
    let names = store.stream_names();
    let bodies = names
        .iter()
        .map(|name| {
            let stream = store.get(name).unwrap();
            let entries = stream
                .range(Bound::Unbounded, Bound::Unbounded, usize::MAX)
                .unwrap();
            let bodies = entries.iter().map(|e| e.body().to_vec()).collect();
            (name.clone(), bodies)
        })
        .collect();
    let pending = store
        .get(b"in")
        .unwrap()
        .inspect_groups(|state, _| state.pending_summary(b"g").unwrap().count);
    Observed {
        names,
        bodies,
        pending,
    }
}

/// `in` with three entries delivered through group `g`, plus streams `gone` and `old`.
fn prepare(dir: &Path, durability: Durability) {
    let store = open(dir, durability);
    let input = store.stream(b"in").unwrap();
    for n in 0..3 {
        input.append(Message::new(format!("job {n}"))).unwrap();
    }
    input
        .create_group(b"g", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    input.group(b"g").unwrap().read(b"worker", 3).unwrap();
    store
        .stream(b"gone")
        .unwrap()
        .append(Message::new("x"))
        .unwrap();
    store
        .stream(b"old")
        .unwrap()
        .append(Message::new("y"))
        .unwrap();
    store.close().unwrap();
}

/// Acknowledges a job and forwards it to a new stream, appends to and deletes from `in`,
/// deletes one stream and renames another: every kind of change a transaction can undo.
/// The commit's outcome, holding the work's.
type Outcome = Result<Result<(), crate::StoreError>, crate::StoreError>;

fn transaction(store: &Store) -> Outcome {
    store.transaction(|| -> Result<(), crate::StoreError> {
        let input = store.stream(b"in")?;
        let job = input
            .range(Bound::Unbounded, Bound::Unbounded, 1)?
            .remove(0);
        input.group(b"g")?.ack(&[job.id])?;
        store
            .stream(b"out")?
            .append(Message::new(job.body().to_vec()))?;
        input.append(Message::new("job 3"))?;
        let last = input
            .range(Bound::Unbounded, Bound::Unbounded, usize::MAX)?
            .pop()
            .map(|entry| entry.id);
        input.delete(&last.into_iter().collect::<Vec<_>>())?;
        store.delete_stream(b"gone")?;
        store.rename_stream(b"old", b"new")?;
        Ok(())
    })
}

fn before_and_after(durability: Durability) -> (Observed, Observed, u64) {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path(), durability);
    let store = open(dir.path(), durability);
    let before = observe(&store);
    let counting = fault::count(dir.path());
    transaction(&store).unwrap().unwrap();
    let calls = counting.calls();
    drop(counting);
    let after = observe(&store);
    assert_ne!(before, after);
    drop(store);
    let reopened = open(dir.path(), durability);
    assert_eq!(
        observe(&reopened),
        after,
        "a committed transaction survives"
    );
    (before, after, calls)
}

fn all_or_nothing_at_each_step(durability: Durability) {
    let (before, after, calls) = before_and_after(durability);
    for at in 0..calls {
        for fault in [Fault::Crash, Fault::Io, Fault::DiskFull] {
            let dir = tempfile::tempdir().unwrap();
            prepare(dir.path(), durability);
            let store = open(dir.path(), durability);
            let plan = fault::inject(dir.path(), at, fault);
            let outcome = transaction(&store);
            let live = observe(&store);
            drop(store);
            let log = plan.log();
            drop(plan);
            let reopened = open(dir.path(), durability);
            let found = observe(&reopened);
            let step = format!("{fault:?} at call {at} ({:?})", log.get(at as usize));
            let allowed: Vec<&Observed> = match (fault, &outcome) {
                // The process died: whatever it had done in memory is gone with it.
                (Fault::Crash, _) => vec![&before, &after],
                // Committed: what the process showed, including any command that failed.
                (_, Ok(_)) => vec![&live],
                (_, Err(_)) => vec![&before, &live],
            };
            assert!(
                allowed.contains(&&found),
                "{step}: outcome {outcome:?}\nallowed {allowed:?}\nfound {found:?}"
            );
        }
    }
}

#[test]
fn a_crash_at_any_step_leaves_all_of_a_transaction_or_none_under_always() {
    all_or_nothing_at_each_step(Durability::Always);
}

#[test]
fn a_crash_at_any_step_leaves_all_of_a_transaction_or_none_under_interval() {
    all_or_nothing_at_each_step(Durability::Interval(1000));
}

#[test]
fn a_committed_transaction_leaves_an_empty_journal() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path(), Durability::Always);
    let store = open(dir.path(), Durability::Always);
    transaction(&store).unwrap().unwrap();
    drop(store);
    let reopened = open(dir.path(), Durability::Always);
    assert_eq!(reopened.recovery().undone_changes, 0);
}

#[test]
fn a_transaction_inside_another_joins_it_and_another_store_stays_out() {
    let dir = tempfile::tempdir().unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Durability::Always);
    let other = open(other_dir.path(), Durability::Always);
    store
        .transaction(|| {
            store
                .stream(b"a")
                .unwrap()
                .append(Message::new("outer"))
                .unwrap();
            store
                .transaction(|| store.stream(b"a").unwrap().append(Message::new("inner")))
                .unwrap()
                .unwrap();
            other
                .stream(b"b")
                .unwrap()
                .append(Message::new("elsewhere"))
                .unwrap();
        })
        .unwrap();
    drop(store);
    drop(other);
    let store = open(dir.path(), Durability::Always);
    assert_eq!(store.get(b"a").unwrap().len(), 2);
    let other = open(other_dir.path(), Durability::Always);
    assert_eq!(other.get(b"b").unwrap().len(), 1);
    assert_eq!(other.recovery().undone_changes, 0);
}
