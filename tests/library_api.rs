//! The library as an embedder meets it: names as text, a group a program can ask for at every
//! start, and errors that print names as text.

use weir::{ErrorKind, GroupPolicy, GroupStart, Message, Store};

#[test]
fn names_are_any_bytes_text_included() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let orders = store.stream("orders").unwrap();
    orders.append(Message::new("first")).unwrap();
    assert_eq!(store.get(b"orders").unwrap().len(), 1);
    assert_eq!(store.get(String::from("orders")).unwrap().len(), 1);
    assert!(store.rename_stream("orders", "archive").unwrap());
    assert!(store.get("orders").is_none());
    assert!(store.delete_stream(b"archive").unwrap());
    assert!(store.stream_names().is_empty());
}

#[test]
fn ensure_group_creates_once_and_then_returns_the_group_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let jobs = store.stream("jobs").unwrap();
    for n in 0..3 {
        jobs.append(Message::new(format!("job {n}"))).unwrap();
    }
    let workers = jobs
        .ensure_group("workers", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    assert_eq!(workers.read(b"w1", 2).unwrap().len(), 2);
    // A second start of the same program: no GroupExists, and the position is kept.
    let again = jobs
        .ensure_group("workers", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    let rest = again.read(b"w1", 10).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].body(), b"job 2");
    let error = jobs
        .create_group("workers", GroupStart::Beginning, GroupPolicy::default())
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::GroupExists);
}

#[test]
fn errors_print_names_as_text_under_debug_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let error = store.stream("jobs").unwrap().group("workers").unwrap_err();
    let debug = format!("{error:?}");
    assert!(debug.contains("NoGroup"), "{debug}");
    assert!(debug.contains("\"workers\""), "{debug}");
    assert!(!debug.contains("[119, 111"), "{debug}");
}
