//! Approximate trimming (`MAXLEN ~`, `MINID ~`, `LIMIT`) and the radix-tree figures of `XINFO
//! STREAM`, through the library: each workload was run on Redis 7.0.15, and the counts it
//! returned are written down here.

use std::sync::Arc;

use bytes::Bytes;
use weir::stream::{NodeLimits, RadixTree};
use weir::{Message, Store, Stream, StreamId};

fn add(stream: &Stream, ms: u64, seq: u64, fields: &[(&str, String)]) {
    let mut message = Message::new(Bytes::new()).id(StreamId::new(ms, seq));
    for (name, value) in fields {
        message = message.header(name.to_string(), value.clone());
    }
    stream.append(message).unwrap();
}

/// Entries `from-0` through `to-0`, each `f v`.
fn add_plain(stream: &Stream, from: u64, to: u64) {
    for ms in from..=to {
        add(stream, ms, 0, &[("f", "v".into())]);
    }
}

/// `(XLEN, radix-tree-keys, radix-tree-nodes)`.
fn shape(stream: &Stream) -> (u64, u64, u64) {
    let RadixTree { keys, nodes } = stream.radix_tree().unwrap();
    (stream.len(), keys, nodes)
}

/// Redis's default limit for `~` without `LIMIT`.
fn approx(stream: &Stream, max_len: u64) -> u64 {
    let limit = stream.node_limits().default_trim_limit();
    stream.trim_max_len(max_len, true, Some(limit)).unwrap()
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn stream(store: &Store, name: &str) -> Arc<Stream> {
    store.stream(name).unwrap()
}

#[test]
fn whole_nodes_of_a_hundred_entries_go() {
    let (_dir, store) = open();
    let s = stream(&store, "s");
    add_plain(&s, 1, 555);
    assert_eq!(approx(&s, 444), 100);
    assert_eq!(shape(&s), (455, 5, 14));

    let s2 = stream(&store, "s2");
    for ms in 1..=1000 {
        add_plain(&s2, ms, ms);
        approx(&s2, 600);
    }
    assert_eq!(shape(&s2), (600, 6, 17));

    let s3 = stream(&store, "s3");
    add(&s3, 1, 0, &[("a", "1".into())]);
    add(&s3, 2, 0, &[("b", "2".into())]);
    assert_eq!(s3.trim_max_len(0, true, Some(2)).unwrap(), 2);
    assert_eq!(shape(&s3), (0, 0, 1));
}

#[test]
fn a_limit_below_a_node_removes_nothing_and_zero_lifts_it() {
    let (_dir, store) = open();
    let s = stream(&store, "s");
    add_plain(&s, 1, 20_000);
    assert_eq!(s.trim_max_len(0, true, Some(150)).unwrap(), 100);
    assert_eq!(s.trim_max_len(0, true, Some(99)).unwrap(), 0);
    assert_eq!(approx(&s, 0), 10_000, "100 nodes by default");
    assert_eq!(s.trim_max_len(0, true, None).unwrap(), 9_900);
}

#[test]
fn entries_of_different_sizes_fill_nodes_by_bytes() {
    let (_dir, store) = open();
    let s = stream(&store, "s4");
    for ms in 1..=400u64 {
        let value = format!("x{}", "x".repeat((ms * 37 % 300) as usize));
        add(&s, ms, 0, &[("f", value)]);
    }
    assert_eq!(shape(&s), (400, 17, 38));
    assert_eq!(approx(&s, 300), 97);
    assert_eq!(shape(&s), (303, 13, 30));
    assert_eq!(s.trim_max_len(100, true, Some(50)).unwrap(), 26);
    let limit = Some(s.node_limits().default_trim_limit());
    assert_eq!(
        s.trim_min_id(StreamId::new(250, 0), true, limit).unwrap(),
        124
    );
    assert_eq!(shape(&s), (153, 7, 17));
}

#[test]
fn deleted_entries_stay_in_their_nodes() {
    let (_dir, store) = open();
    let s = stream(&store, "s5");
    add_plain(&s, 1, 300);
    let odd: Vec<StreamId> = (1..60).step_by(2).map(|ms| StreamId::new(ms, 0)).collect();
    assert_eq!(s.delete(&odd).unwrap(), 30);
    assert_eq!(shape(&s), (270, 3, 8));
    assert_eq!(approx(&s, 230), 0);
    assert_eq!(approx(&s, 150), 70);
    assert_eq!(shape(&s), (200, 2, 6));
}

#[test]
fn exact_trims_mark_entries_and_an_emptied_last_node_closes() {
    let (_dir, store) = open();
    let s = stream(&store, "s6");
    for ms in 1..=250 {
        add_plain(&s, ms, ms);
        s.trim_max_len(10, false, None).unwrap();
        // An approximate trim that removes nothing keeps the model following every step.
        approx(&s, 1_000);
    }
    add_plain(&s, 251, 400);
    assert_eq!(shape(&s), (160, 2, 6));
    assert_eq!(approx(&s, 0), 160);
    assert_eq!(shape(&s), (0, 0, 1));

    let s7 = stream(&store, "s7");
    add_plain(&s7, 1, 5);
    approx(&s7, 1_000);
    let first_five: Vec<StreamId> = (1..=5).map(|ms| StreamId::new(ms, 0)).collect();
    s7.delete(&first_five).unwrap();
    add_plain(&s7, 6, 155);
    assert_eq!(shape(&s7), (150, 2, 6));
    assert_eq!(approx(&s7, 40), 100);
    assert_eq!(shape(&s7), (50, 1, 2));
}

#[test]
fn entries_with_other_fields_than_the_first_weigh_their_names() {
    let (_dir, store) = open();
    let s = stream(&store, "s8");
    for i in 1..=300u64 {
        if i % 3 == 0 {
            add(
                &s,
                i,
                i,
                &[("a", "1".into()), ("b", (i * 1000).to_string())],
            );
        } else {
            add(&s, i, i, &[("a", i.to_string())]);
        }
    }
    assert_eq!(shape(&s), (300, 3, 8));
    let limit = Some(s.node_limits().default_trim_limit());
    assert_eq!(
        s.trim_min_id(StreamId::new(150, 0), true, limit).unwrap(),
        100
    );
    assert_eq!(shape(&s), (200, 2, 6));
}

#[test]
fn node_limits_follow_the_store_setting() {
    let (_dir, store) = open();
    store.set_node_limits(NodeLimits {
        max_entries: 10,
        max_bytes: 4096,
    });
    let s = stream(&store, "s9");
    add_plain(&s, 1, 95);
    assert_eq!(shape(&s), (95, 10, 22));
    assert_eq!(approx(&s, 50), 40);
    assert_eq!(approx(&s, 0), 55);

    store.set_node_limits(NodeLimits {
        max_entries: 0,
        max_bytes: 200,
    });
    let s10 = stream(&store, "s10");
    for ms in 1..=95 {
        add(&s10, ms, 0, &[("field", format!("value{ms}"))]);
    }
    assert_eq!(shape(&s10), (95, 10, 22));
    assert_eq!(approx(&s10, 50), 41);
    assert_eq!(shape(&s10), (54, 6, 14));
}

/// The trim point is the log's own: after a crash (no clean close) the stream reopens trimmed,
/// and the model is rebuilt from what is left.
#[test]
fn an_approximate_trim_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let s = stream(&store, "s");
        add_plain(&s, 1, 555);
        assert_eq!(approx(&s, 444), 100);
        s.flush().unwrap();
        // Dropped without close: the next open recovers as after a crash.
        drop(s);
        drop(store);
    }
    let store = Store::open(dir.path()).unwrap();
    let s = stream(&store, "s");
    assert_eq!(s.len(), 455);
    let all = std::ops::Bound::Unbounded;
    assert_eq!(s.range(all, all, 1).unwrap()[0].id, StreamId::new(101, 0));
    // Rebuilt from the first entry kept on, in nodes of 100 again (as Redis has them).
    assert_eq!(approx(&s, 300), 100);
    assert_eq!(shape(&s), (355, 4, 11));
}

/// The ID of the stream's first live entry.
fn first_id(stream: &Stream) -> StreamId {
    let first = stream
        .range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, 1)
        .unwrap();
    first[0].id
}

#[test]
fn an_exact_trim_with_a_limit_removes_at_most_that_many_live_entries() {
    // What a cluster node makes of `~ … LIMIT n`: exact, and capped.
    let (_dir, store) = open();
    let s = stream(&store, "s");
    add_plain(&s, 1, 50);
    s.delete(&[StreamId::new(2, 0)]).unwrap();
    assert_eq!(s.trim_max_len(10, false, Some(5)).unwrap(), 5);
    assert_eq!((s.len(), first_id(&s)), (44, StreamId::new(7, 0)));
    assert_eq!(
        s.trim_min_id(StreamId::new(40, 0), false, Some(3)).unwrap(),
        3
    );
    assert_eq!((s.len(), first_id(&s)), (41, StreamId::new(10, 0)));
    assert_eq!(s.trim_max_len(10, false, None).unwrap(), 31);
    assert_eq!((s.len(), first_id(&s)), (10, StreamId::new(41, 0)));
}
