//! Work-queue retention: entries go once every group has acknowledged them, and their segments
//! are reclaimed.

use std::sync::Arc;

use weir::{
    Durability, GroupPolicy, GroupStart, LogOptions, Message, Store, StoreOptions, StreamConfig,
};

fn small_segments(dir: &std::path::Path) -> Store {
    let options = StoreOptions {
        durability: Durability::Never,
        log: LogOptions {
            max_segment_bytes: 16 * 1024,
            initial_segment_bytes: 8 * 1024,
            index_interval_bytes: 512,
        },
        ..StoreOptions::default()
    };
    Store::open_with(dir, options).unwrap()
}

#[test]
fn acknowledged_entries_leave_and_their_segments_are_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_segments(dir.path());
    let jobs = store.stream(b"jobs").unwrap();
    jobs.set_config(StreamConfig {
        work_queue: true,
        ..StreamConfig::default()
    })
    .unwrap();
    let first = jobs
        .create_group(b"a", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    let second = jobs
        .create_group(b"b", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    for i in 0..600 {
        jobs.append(Message::new(vec![b'x'; 200]).header("n", i.to_string()))
            .unwrap();
    }
    let segments_before = jobs.log().segment_count();
    assert!(segments_before > 4, "{segments_before} segments");

    let batch = first.read(b"w", 600).unwrap();
    let ids: Vec<_> = batch.iter().map(|d| d.id()).collect();
    assert_eq!(first.ack(&ids).unwrap(), 600);
    assert_eq!(jobs.len(), 600, "group b has acknowledged nothing yet");

    let batch = second.read(b"w", 300).unwrap();
    let ids: Vec<_> = batch.iter().map(|d| d.id()).collect();
    second.ack(&ids).unwrap();
    assert_eq!(jobs.len(), 300, "entries both groups acknowledged are gone");
    assert!(jobs.log().segment_count() < segments_before);

    let batch = second.read(b"w", 300).unwrap();
    let ids: Vec<_> = batch.iter().map(|d| d.id()).collect();
    second.ack(&ids).unwrap();
    assert_eq!(jobs.len(), 0);
    assert_eq!(
        jobs.log().segment_count(),
        1,
        "only the active segment is left"
    );
    let last = jobs.last_id();
    drop((first, second));
    drop(jobs);
    store.close().unwrap();

    let store = small_segments(dir.path());
    let jobs = store.stream(b"jobs").unwrap();
    assert!(jobs.config().work_queue, "the setting survives a restart");
    assert_eq!(jobs.len(), 0);
    assert_eq!(jobs.last_id(), last);
    assert!(jobs.append(Message::new("next")).unwrap().id > last);
}

#[test]
fn an_unacknowledged_entry_holds_back_everything_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_segments(dir.path());
    let jobs: Arc<weir::Stream> = store.stream(b"jobs").unwrap();
    jobs.set_config(StreamConfig {
        work_queue: true,
        ..StreamConfig::default()
    })
    .unwrap();
    let group = jobs
        .create_group(b"g", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    for i in 0..10 {
        jobs.append(Message::new(format!("job {i}"))).unwrap();
    }
    let batch = group.read(b"w", 10).unwrap();
    let later: Vec<_> = batch[3..].iter().map(|d| d.id()).collect();
    group.ack(&later).unwrap();
    assert_eq!(
        jobs.len(),
        10,
        "entries 0..3 are pending: nothing before them is all-acknowledged"
    );
    group.ack(&[batch[0].id(), batch[1].id()]).unwrap();
    assert_eq!(jobs.len(), 8);
    group.ack(&[batch[2].id()]).unwrap();
    assert_eq!(jobs.len(), 0);
}

#[test]
fn a_stream_without_work_queue_retention_keeps_acknowledged_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_segments(dir.path());
    let log = store.stream(b"log").unwrap();
    let group = log
        .create_group(b"g", GroupStart::Beginning, GroupPolicy::default())
        .unwrap();
    log.append(Message::new("kept")).unwrap();
    let batch = group.read(b"w", 1).unwrap();
    batch[0].ack().unwrap();
    assert_eq!(log.len(), 1);
}
