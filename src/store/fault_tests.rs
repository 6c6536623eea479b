//! The store's own multi-step operations, each with a fault at each of its file-system calls:
//! creating, deleting and renaming a stream, a clean close (which writes the idempotency
//! snapshot and every checkpoint), and the open after a crash (which repairs). Each must fail
//! cleanly or complete: a reopen finds what the process showed, or (after a crash, or a
//! failure that says so) what was there before.

use std::ops::Bound;
use std::path::Path;

use crate::fs::fault::{self, Fault};
use crate::{Durability, IdempotentAppend, Message, Store, StoreError, StoreOptions};

const FAULTS: [Fault; 4] = [Fault::DiskFull, Fault::Io, Fault::ShortWrite, Fault::Crash];

fn open(dir: &Path) -> Store {
    let options = StoreOptions {
        durability: Durability::Always,
        ..StoreOptions::default()
    };
    Store::open_with(dir, options).unwrap()
}

/// Every stream's name and bodies, and how many idempotency keys each remembers.
type Observed = Vec<(Vec<u8>, Vec<Vec<u8>>, usize)>;

fn observe(store: &Store) -> Observed {
    store
        .stream_names()
        .into_iter()
        .map(|name| {
            let stream = store.get(&name).unwrap();
            let bodies = stream
                .range(Bound::Unbounded, Bound::Unbounded, usize::MAX)
                .unwrap()
                .iter()
                .map(|entry| entry.body().to_vec())
                .collect();
            (name, bodies, stream.idempotency_keys())
        })
        .collect()
}

fn prepare(dir: &Path) {
    let store = open(dir);
    let orders = store.stream(b"orders").unwrap();
    for n in 0..3 {
        let appended = orders
            .append_idempotent(Message::new(format!("order {n}")), b"shop", &[n])
            .unwrap();
        assert!(matches!(appended, IdempotentAppend::Appended(_)));
    }
    store
        .stream(b"old")
        .unwrap()
        .append(Message::new("x"))
        .unwrap();
    store.close().unwrap();
}

/// Runs `operation` on a prepared store once per call it makes, with each fault there.
/// `midway` gives, from the state before, the states a crash may also leave halfway.
fn at_each_step(
    operation: impl Fn(&Store) -> Result<(), StoreError>,
    midway: impl Fn(&Observed) -> Vec<Observed>,
) {
    let (before, calls) = {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let store = open(dir.path());
        let before = observe(&store);
        let counting = fault::count(dir.path());
        operation(&store).unwrap();
        let calls = counting.calls();
        drop(counting);
        let after = observe(&store);
        drop(store);
        assert_eq!(observe(&open(dir.path())), after, "without a fault");
        (before, calls)
    };
    let midway = midway(&before);
    for at in 0..calls {
        for fault in FAULTS {
            let dir = tempfile::tempdir().unwrap();
            prepare(dir.path());
            let store = open(dir.path());
            let plan = fault::inject(dir.path(), at, fault);
            let outcome = operation(&store);
            let live = observe(&store);
            drop(store);
            let step = format!("{fault:?} at call {at} ({:?})", plan.log().last());
            drop(plan);
            let found = observe(&open(dir.path()));
            let allowed: Vec<&Observed> = match (fault, &outcome) {
                (Fault::Crash, _) => [&before, &live].into_iter().chain(&midway).collect(),
                (_, Ok(())) => vec![&live],
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
fn creating_a_stream_fails_cleanly_or_completes_at_each_step() {
    at_each_step(
        |store| {
            store.stream(b"new")?.append(Message::new("first"))?;
            Ok(())
        },
        // Created but not yet appended to: an empty stream, as XGROUP CREATE MKSTREAM makes.
        |before| {
            let mut created = before.clone();
            created.push((b"new".to_vec(), Vec::new(), 0));
            created.sort();
            vec![created]
        },
    );
}

#[test]
fn deleting_a_stream_fails_cleanly_or_completes_at_each_step() {
    at_each_step(
        |store| store.delete_stream(b"old").map(drop),
        |_| Vec::new(),
    );
}

#[test]
fn renaming_a_stream_fails_cleanly_or_completes_at_each_step() {
    at_each_step(
        |store| store.rename_stream(b"old", b"orders").map(drop),
        // The target deleted, the source not yet renamed.
        |before| {
            vec![
                before
                    .iter()
                    .filter(|(name, ..)| name != b"orders")
                    .cloned()
                    .collect(),
            ]
        },
    );
}

#[test]
fn an_idempotent_append_fails_cleanly_or_completes_at_each_step() {
    at_each_step(
        |store| {
            store
                .stream(b"orders")?
                .append_idempotent(Message::new("order 9"), b"shop", b"9")?;
            store.flush()
        },
        |_| Vec::new(),
    );
}

/// A clean close writes every idempotency snapshot, checkpoint and the CLEAN marker; whatever
/// call fails, the next open finds every entry and idempotency key.
#[test]
fn closing_the_store_fails_cleanly_or_completes_at_each_step() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let expected = observe(&open(dir.path()));
    let calls = {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let store = open(dir.path());
        let counting = fault::count(dir.path());
        store.close().unwrap();
        counting.calls()
    };
    for at in 0..calls {
        for fault in FAULTS {
            let dir = tempfile::tempdir().unwrap();
            prepare(dir.path());
            let store = open(dir.path());
            let plan = fault::inject(dir.path(), at, fault);
            let closed = store.close();
            drop(plan);
            let reopened = open(dir.path());
            assert_eq!(
                observe(&reopened),
                expected,
                "{fault:?} at {at}: {closed:?}"
            );
        }
    }
}

/// The open after a crash repairs: a torn tail cut, a checkpoint written. A fault during it
/// must leave files that the next open still recovers, with nothing acknowledged lost.
#[test]
fn recovery_fails_cleanly_or_completes_at_each_step() {
    let crashed = |dir: &Path| {
        prepare(dir);
        let store = open(dir);
        store
            .stream(b"orders")
            .unwrap()
            .append(Message::new("after the close"))
            .unwrap();
        drop(store);
    };
    let (expected, calls) = {
        let dir = tempfile::tempdir().unwrap();
        crashed(dir.path());
        let counting = fault::count(dir.path());
        let store = open(dir.path());
        (observe(&store), counting.calls())
    };
    for at in 0..calls {
        for fault in FAULTS {
            let dir = tempfile::tempdir().unwrap();
            crashed(dir.path());
            let plan = fault::inject(dir.path(), at, fault);
            let options = StoreOptions {
                durability: Durability::Always,
                ..StoreOptions::default()
            };
            if let Ok(store) = Store::open_with(dir.path(), options) {
                assert_eq!(observe(&store), expected, "{fault:?} at {at}: opened wrong");
            }
            drop(plan);
            assert_eq!(
                observe(&open(dir.path())),
                expected,
                "{fault:?} at {at}: the open after the failed one"
            );
        }
    }
}
