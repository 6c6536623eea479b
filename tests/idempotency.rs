//! Idempotent appends: duplicates within the window append nothing, across restarts too.

use std::sync::Arc;

use weir::{
    Durability, IdempotentAppend, ManualClock, Message, SharedClock, Store, StoreOptions,
    StreamConfig,
};

const START_MS: u64 = 1_700_000_000_000;

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Store {
    let clock: SharedClock = clock.clone();
    let options = StoreOptions {
        durability: Durability::Always,
        clock,
        ..StoreOptions::default()
    };
    Store::open_with(dir, options).unwrap()
}

#[test]
fn a_duplicate_returns_the_original_id_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let store = open(dir.path(), &clock);
    let orders = store.stream(b"orders").unwrap();
    let first = orders
        .append_idempotent(Message::new("pay"), b"shop", b"1")
        .unwrap();
    let IdempotentAppend::Appended(appended) = first else {
        panic!("first append must be new: {first:?}");
    };
    assert_eq!(
        orders
            .append_idempotent(Message::new("pay"), b"shop", b"1")
            .unwrap(),
        IdempotentAppend::Duplicate(appended.id)
    );
    let other_producer = orders
        .append_idempotent(Message::new("pay"), b"other-shop", b"1")
        .unwrap();
    assert!(matches!(other_producer, IdempotentAppend::Appended(_)));
    assert_eq!(orders.len(), 2);
    let stored = orders.read(appended.offset).unwrap().unwrap();
    let key = stored.record().idempotency.unwrap();
    assert_eq!((key.producer, key.iid), (&b"shop"[..], &b"1"[..]));
}

#[test]
fn the_window_survives_a_clean_restart_and_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let store = open(dir.path(), &clock);
    let orders = store.stream(b"orders").unwrap();
    let before_close = orders
        .append_idempotent(Message::new("a"), b"p", b"before-close")
        .unwrap();
    drop(orders);
    store.close().unwrap();

    let store = open(dir.path(), &clock);
    let orders = store.stream(b"orders").unwrap();
    assert_eq!(
        orders
            .append_idempotent(Message::new("a"), b"p", b"before-close")
            .unwrap(),
        IdempotentAppend::Duplicate(before_close.id())
    );
    let before_crash = orders
        .append_idempotent(Message::new("b"), b"p", b"before-crash")
        .unwrap();
    drop(orders);
    drop(store);

    let store = open(dir.path(), &clock);
    let orders = store.stream(b"orders").unwrap();
    assert_eq!(
        orders
            .append_idempotent(Message::new("b"), b"p", b"before-crash")
            .unwrap(),
        IdempotentAppend::Duplicate(before_crash.id())
    );
    assert_eq!(orders.len(), 2);
}

#[test]
fn keys_expire_after_the_window_and_beyond_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let store = open(dir.path(), &clock);
    let orders = store.stream(b"orders").unwrap();
    orders
        .set_config(StreamConfig {
            idempotency_duration_ms: Some(10_000),
            idempotency_max_size: Some(3),
            ..StreamConfig::default()
        })
        .unwrap();
    orders
        .append_idempotent(Message::new("x"), b"p", b"old")
        .unwrap();
    clock.advance_ms(10_001);
    let again = orders
        .append_idempotent(Message::new("x"), b"p", b"old")
        .unwrap();
    assert!(
        matches!(again, IdempotentAppend::Appended(_)),
        "expired key"
    );

    for iid in [b"k1", b"k2", b"k3", b"k4"] {
        orders
            .append_idempotent(Message::new("y"), b"q", iid)
            .unwrap();
    }
    assert!(
        matches!(
            orders
                .append_idempotent(Message::new("y"), b"q", b"k1")
                .unwrap(),
            IdempotentAppend::Appended(_)
        ),
        "the oldest key went when a fourth arrived"
    );
    assert!(matches!(
        orders
            .append_idempotent(Message::new("y"), b"q", b"k4")
            .unwrap(),
        IdempotentAppend::Duplicate(_)
    ));
    assert!(
        orders
            .set_config(StreamConfig {
                idempotency_max_size: Some(0),
                ..StreamConfig::default()
            })
            .is_err()
    );
}

#[test]
fn a_damaged_snapshot_is_rebuilt_from_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let store = open(dir.path(), &clock);
    let orders = store.stream(b"orders").unwrap();
    let kept = orders
        .append_idempotent(Message::new("a"), b"p", b"kept")
        .unwrap();
    let snapshot = orders.log().dir().join("idempotency.snapshot");
    drop(orders);
    store.close().unwrap();

    let mut bytes = std::fs::read(&snapshot).expect("a clean close saves the windows");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&snapshot, &bytes).unwrap();

    let store = open(dir.path(), &clock);
    let orders = store.stream(b"orders").unwrap();
    assert_eq!(
        orders
            .append_idempotent(Message::new("a"), b"p", b"kept")
            .unwrap(),
        IdempotentAppend::Duplicate(kept.id())
    );
    assert_eq!(orders.len(), 1);
}
