use super::read::MIN_READ_SCAN;
use super::*;
use crate::group::test_log::Fixture;
use crate::group::{Due, PendingQuery};

fn id(ms: u64) -> StreamId {
    StreamId::new(ms, 0)
}

fn ids(list: &[u64]) -> Vec<StreamId> {
    list.iter().map(|&ms| id(ms)).collect()
}

fn owned(owner: &str, list: &[(u64, u32)]) -> Vec<(u64, String, u32)> {
    list.iter()
        .map(|&(ms, deliveries)| (ms, owner.to_string(), deliveries))
        .collect()
}

fn wait(ack_wait_ms: u64) -> GroupPolicy {
    GroupPolicy {
        ack_wait_ms: Some(ack_wait_ms),
        ..GroupPolicy::default()
    }
}

#[test]
fn group_lifecycle_follows_xgroup() {
    let mut fx = Fixture::with_group(3);
    assert_eq!(
        fx.state.create_group(b"g", StreamId::MIN, None),
        Err(GroupError::GroupExists {
            group: b"g".to_vec()
        })
    );
    let long = vec![b'x'; crate::group::MAX_NAME_LEN + 1];
    assert!(matches!(
        fx.state.create_group(&long, StreamId::MIN, None),
        Err(GroupError::NameTooLong { .. })
    ));
    let applied = fx.state.set_id(b"g", id(2), None);
    fx.record(applied.unwrap());
    assert_eq!(fx.info().last_delivered, id(2));
    assert_eq!(fx.info().entries_read, None);
    assert_eq!(fx.read(b"c", 10, 1), [3]);

    let applied = fx.state.destroy_group(b"g");
    assert!(fx.record(applied));
    let applied = fx.state.destroy_group(b"g");
    assert!(!fx.record(applied));
    let missing = GroupError::NoGroup {
        group: b"g".to_vec(),
    };
    assert_eq!(fx.state.ack(b"g", &[]), Err(missing.clone()));
    assert_eq!(
        fx.state
            .read_new(&fx.log, b"g", b"c", ReadNew::count(1), 0)
            .err(),
        Some(missing.clone())
    );
    assert_eq!(fx.state.floor(b"g"), Err(missing));
    fx.check_rebuilds();
}

#[test]
fn policies_are_validated() {
    let mut fx = Fixture::with_group(0);
    for bad in [
        GroupPolicy {
            ack_wait_ms: Some(0),
            ..GroupPolicy::default()
        },
        GroupPolicy {
            max_ack_pending: Some(0),
            ..GroupPolicy::default()
        },
        GroupPolicy {
            dead_letter: Some(Vec::new()),
            ..GroupPolicy::default()
        },
    ] {
        assert!(matches!(
            fx.state.set_policy(b"g", bad),
            Err(GroupError::InvalidPolicy(_))
        ));
    }
    fx.set_policy(wait(10));
    assert_eq!(fx.info().policy.ack_wait_ms, Some(10));
}

#[test]
fn consumers_are_created_once_and_deleted_with_their_entries() {
    let mut fx = Fixture::with_group(4);
    let applied = fx.state.create_consumer(b"g", b"a", 5);
    assert!(fx.record(applied.unwrap()));
    let applied = fx.state.create_consumer(b"g", b"a", 6);
    assert!(!fx.record(applied.unwrap()));
    fx.read(b"a", 2, 7);
    fx.read(b"b", 2, 7);
    let applied = fx.state.delete_consumer(b"g", b"a");
    assert_eq!(fx.record(applied.unwrap()), 2);
    let applied = fx.state.delete_consumer(b"g", b"a");
    assert_eq!(fx.record(applied.unwrap()), 0);
    assert_eq!(fx.pending(), owned("b", &[(3, 1), (4, 1)]));
    fx.check_rebuilds();
}

#[test]
fn new_entries_go_to_one_consumer_each_in_order() {
    let mut fx = Fixture::with_group(5);
    assert_eq!(fx.read(b"a", 2, 10), [1, 2]);
    assert_eq!(fx.read(b"b", 2, 11), [3, 4]);
    assert_eq!(fx.read(b"a", 10, 12), [5]);
    assert_eq!(fx.read(b"b", 10, 13), Vec::<u64>::new());
    let mut expected = owned("a", &[(1, 1), (2, 1)]);
    expected.extend(owned("b", &[(3, 1), (4, 1)]));
    expected.extend(owned("a", &[(5, 1)]));
    assert_eq!(fx.pending(), expected);
    let info = fx.info();
    assert_eq!(info.last_delivered, id(5));
    assert_eq!(info.entries_read, Some(5));
    assert_eq!(info.lag, Some(0));
    let consumers = fx.state.consumers_info(b"g", 20).unwrap();
    assert_eq!(consumers[1].name, b"b");
    assert_eq!(consumers[1].seen_ms, 13);
    assert_eq!(consumers[1].active_ms, Some(11));
    assert_eq!(consumers[1].inactive_ms, Some(9));
    fx.check_rebuilds();
}

#[test]
fn an_empty_read_only_marks_the_consumer_seen() {
    let mut fx = Fixture::with_group(0);
    let applied = fx
        .state
        .read_new(&fx.log, b"g", b"a", ReadNew::count(5), 10);
    let applied = applied.unwrap();
    assert_eq!(applied.events.len(), 1, "the consumer is created, seen now");
    fx.record(applied);
    let applied = fx
        .state
        .read_new(&fx.log, b"g", b"a", ReadNew::count(5), 10);
    assert!(
        applied.as_ref().unwrap().events.is_empty(),
        "same millisecond"
    );
    fx.record(applied.unwrap());
    let applied = fx
        .state
        .read_new(&fx.log, b"g", b"a", ReadNew::count(5), 11);
    assert!(matches!(
        applied.as_ref().unwrap().events.as_slice(),
        [GroupEvent::ConsumerSeen { time_ms: 11, .. }]
    ));
    fx.record(applied.unwrap());
    let consumers = fx.state.consumers_info(b"g", 11).unwrap();
    assert_eq!((consumers[0].seen_ms, consumers[0].active_ms), (11, None));
}

#[test]
fn noack_moves_the_group_without_pending_entries() {
    let mut fx = Fixture::with_group(3);
    let request = ReadNew {
        noack: true,
        ..ReadNew::count(2)
    };
    let outcome = fx.read_with(b"a", request, 5);
    assert_eq!(outcome.entries.len(), 2);
    assert!(fx.pending().is_empty());
    assert_eq!(fx.info().last_delivered, id(2));
    assert_eq!(fx.info().entries_read, Some(2));
    assert_eq!(fx.state.consumers_info(b"g", 5).unwrap()[0].active_ms, None);
    assert_eq!(fx.state.floor(b"g"), Ok(id(2).successor().unwrap()));
}

#[test]
fn ack_counts_pending_entries_once() {
    let mut fx = Fixture::with_group(3);
    fx.read(b"a", 3, 1);
    assert_eq!(fx.ack(&[1, 1, 9]), 1);
    assert_eq!(fx.ack(&[1]), 0);
    assert_eq!(fx.ack(&[2, 3]), 2);
    assert!(fx.pending().is_empty());
}

#[test]
fn expired_ack_deadlines_are_redelivered_before_new_entries() {
    let mut fx = Fixture::with_group(6);
    fx.set_policy(wait(100));
    assert_eq!(fx.read(b"a", 2, 0), [1, 2]);
    assert_eq!(fx.read(b"b", 1, 10), [3]);
    assert_eq!(fx.read(b"c", 1, 99), [4], "nothing is due yet");
    // At 110 entries 1, 2 (due at 100) and 3 (due at 110) are due, in due-time order.
    let outcome = fx.read_with(b"c", ReadNew::count(5), 110);
    let got: Vec<(u64, u32, Option<u64>)> = outcome
        .entries
        .iter()
        .map(|entry| (entry.id.ms, entry.deliveries, entry.idle_ms))
        .collect();
    assert_eq!(
        got,
        [
            (1, 2, Some(110)),
            (2, 2, Some(110)),
            (3, 2, Some(100)),
            (5, 1, None),
            (6, 1, None)
        ]
    );
    let pending = fx.pending();
    assert!(pending.iter().all(|(_, owner, _)| owner == "c"));
    // The redelivery set a new deadline.
    let entry = fx.state.groups[b"g".as_slice()].pel.get(id(1)).unwrap();
    assert_eq!(entry.due, Due::At(210));
    assert_eq!(fx.read(b"a", 5, 150), Vec::<u64>::new());
    fx.check_rebuilds();
}

#[test]
fn redeliveries_respect_count() {
    let mut fx = Fixture::with_group(4);
    fx.set_policy(wait(10));
    fx.read(b"a", 3, 0);
    assert_eq!(fx.read(b"b", 2, 50), [1, 2]);
    assert_eq!(fx.read(b"b", 5, 50), [3, 4]);
}

#[test]
fn nack_releases_entries_after_a_delay() {
    let mut fx = Fixture::with_group(5);
    fx.read(b"a", 3, 0);
    fx.read(b"b", 1, 0);
    assert_eq!(fx.nack(Some(b"a"), &[2, 4, 9], 50, 10), 1, "b owns 4");
    assert_eq!(fx.nack(Some(b"nobody"), &[1], 0, 10), 0);
    assert_eq!(fx.read(b"c", 1, 59), [5]);
    assert_eq!(fx.nack(None, &[3], 0, 60), 1);
    // 2 became due at 60 and 3 at 60: both before anything new.
    assert_eq!(fx.read(b"c", 5, 60), [2, 3]);
    assert_eq!(
        fx.pending()
            .iter()
            .map(|(ms, owner, n)| (*ms, owner.as_str(), *n))
            .collect::<Vec<_>>(),
        [
            (1, "a", 1),
            (2, "c", 2),
            (3, "c", 2),
            (4, "b", 1),
            (5, "c", 1)
        ]
    );
    // Without an ack deadline a redelivered entry is not scheduled again.
    assert_eq!(fx.read(b"c", 5, 1_000_000), Vec::<u64>::new());
    fx.check_rebuilds();
}

#[test]
fn exhausted_entries_stay_pending_without_a_dead_letter_stream() {
    let mut fx = Fixture::with_group(2);
    fx.set_policy(GroupPolicy {
        max_deliver: Some(2),
        ..wait(10)
    });
    assert_eq!(fx.read(b"a", 1, 0), [1]);
    assert_eq!(fx.read(b"a", 1, 10), [1]);
    let outcome = fx.read_with(b"b", ReadNew::count(5), 20);
    assert_eq!(outcome.exhausted, ids(&[1]));
    assert!(outcome.dead_letters.is_empty());
    assert_eq!(
        outcome.entries.iter().map(|e| e.id.ms).collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(fx.info().exhausted, 1);
    assert_eq!(fx.info().oldest_delivery_ms, Some(10));
    assert_eq!(fx.pending()[0], (1, "a".to_string(), 2));
    // Never handed out again, whatever the wait or a claim-by-idle read.
    let request = ReadNew {
        claim_min_idle_ms: Some(0),
        ..ReadNew::count(5)
    };
    let outcome = fx.read_with(b"b", request, 10_000);
    assert_eq!(
        outcome.entries.iter().map(|e| e.id.ms).collect::<Vec<_>>(),
        [2]
    );
    assert!(outcome.exhausted.is_empty());
    // Entry 2 is now on its last delivery: auto-claiming skips both.
    let applied = fx.state.auto_claim(
        &fx.log,
        b"g",
        b"b",
        AutoClaim::new(0, StreamId::MIN),
        10_000,
    );
    assert!(fx.record(applied.unwrap()).claimed.is_empty());
    // Raising the limit lets the next read judge the exhausted entry again.
    fx.set_policy(GroupPolicy {
        max_deliver: Some(3),
        ..wait(10)
    });
    assert_eq!(fx.info().exhausted, 0);
    assert_eq!(fx.read(b"b", 5, 10_001), [1]);
    assert_eq!(fx.pending()[0], (1, "b".to_string(), 3));
    assert_eq!(fx.ack(&[1]), 1);
    fx.check_rebuilds();
}

#[test]
fn dead_letters_are_planned_then_committed() {
    let mut fx = Fixture::with_group(3);
    fx.set_policy(GroupPolicy {
        max_deliver: Some(1),
        dead_letter: Some(b"dlq".to_vec()),
        ..wait(10)
    });
    fx.read(b"a", 2, 0);
    let outcome = fx.read_with(b"b", ReadNew::count(5), 10);
    let letters: Vec<(u64, u64, u32)> = outcome
        .dead_letters
        .iter()
        .map(|letter| (letter.id.ms, letter.offset, letter.deliveries))
        .collect();
    assert_eq!(letters, [(1, 0, 1), (2, 1, 1)]);
    assert_eq!(
        outcome.entries.iter().map(|e| e.id.ms).collect::<Vec<_>>(),
        [3]
    );
    // Until committed they stay pending and are planned again.
    assert_eq!(fx.pending().len(), 3);
    let again = fx.read_with(b"b", ReadNew::count(5), 11);
    assert_eq!(again.dead_letters.len(), 2);
    let applied = fx.state.commit_dead_letters(b"g", &ids(&[1, 2, 2, 7]));
    let applied = applied.unwrap();
    assert!(matches!(
        applied.events.as_slice(),
        [GroupEvent::DeadLettered { ids, .. }] if ids.len() == 2
    ));
    assert_eq!(fx.record(applied), 2);
    assert_eq!(fx.pending(), owned("b", &[(3, 1)]));
    assert_eq!(fx.info().exhausted, 0);
    fx.check_rebuilds();
}

#[test]
fn a_flood_of_dead_letters_is_handled_in_bounded_reads() {
    let total = MIN_READ_SCAN as u64 + 5;
    let mut fx = Fixture::with_group(total + 1);
    fx.set_policy(GroupPolicy {
        max_deliver: Some(1),
        dead_letter: Some(b"dlq".to_vec()),
        ..wait(10)
    });
    fx.read(b"a", total as usize, 0);
    let outcome = fx.read_with(b"a", ReadNew::count(1), 10);
    assert!(outcome.scan_limited);
    assert!(
        outcome.entries.is_empty(),
        "no new entry before the backlog"
    );
    assert_eq!(outcome.dead_letters.len(), MIN_READ_SCAN);
    let committed: Vec<StreamId> = outcome.dead_letters.iter().map(|d| d.id).collect();
    let applied = fx.state.commit_dead_letters(b"g", &committed);
    fx.record(applied.unwrap());
    let outcome = fx.read_with(b"a", ReadNew::count(1), 10);
    assert!(!outcome.scan_limited);
    assert_eq!(outcome.dead_letters.len(), 5);
    assert_eq!(
        outcome.entries.iter().map(|e| e.id.ms).collect::<Vec<_>>(),
        [total + 1]
    );
}

#[test]
fn max_ack_pending_stops_new_entries_only() {
    let mut fx = Fixture::with_group(10);
    fx.set_policy(GroupPolicy {
        max_ack_pending: Some(3),
        ..wait(100)
    });
    assert_eq!(fx.read(b"a", 10, 0), [1, 2, 3]);
    assert_eq!(fx.read(b"b", 10, 1), Vec::<u64>::new());
    assert_eq!(fx.ack(&[2]), 1);
    assert_eq!(fx.read(b"b", 10, 2), [4]);
    // Due entries are still redelivered at the limit.
    assert_eq!(fx.read(b"b", 10, 100), [1, 3]);
    // NOACK reads add nothing pending, so the limit does not hold them back.
    let request = ReadNew {
        noack: true,
        ..ReadNew::count(2)
    };
    let outcome = fx.read_with(b"c", request, 101);
    assert_eq!(
        outcome.entries.iter().map(|e| e.id.ms).collect::<Vec<_>>(),
        [5, 6]
    );
    fx.check_rebuilds();
}

#[test]
fn due_entries_gone_from_the_log_are_dropped() {
    let mut fx = Fixture::with_group(4);
    fx.set_policy(wait(10));
    fx.read(b"a", 3, 0);
    fx.log.delete(id(2));
    let outcome = fx.read_with(b"b", ReadNew::count(10), 10);
    assert_eq!(outcome.deleted, ids(&[2]));
    assert_eq!(
        outcome.entries.iter().map(|e| e.id.ms).collect::<Vec<_>>(),
        [1, 3, 4]
    );
    assert_eq!(
        fx.pending().iter().map(|p| p.0).collect::<Vec<_>>(),
        [1, 3, 4]
    );
    fx.check_rebuilds();
}

#[test]
fn claim_by_idle_time_takes_the_longest_idle_first() {
    let mut fx = Fixture::with_group(5);
    fx.read(b"a", 1, 30);
    fx.read(b"b", 1, 10);
    fx.read(b"c", 1, 20);
    let request = ReadNew {
        claim_min_idle_ms: Some(15),
        ..ReadNew::count(10)
    };
    // At 40: entry 2 idle 30, entry 3 idle 20, entry 1 idle 10 (not enough).
    let outcome = fx.read_with(b"d", request, 40);
    let got: Vec<(u64, Option<u64>)> = outcome
        .entries
        .iter()
        .map(|entry| (entry.id.ms, entry.idle_ms))
        .collect();
    assert_eq!(got, [(2, Some(30)), (3, Some(20)), (4, None), (5, None)]);
    // NOACK does not apply to claimed entries.
    let request = ReadNew {
        noack: true,
        claim_min_idle_ms: Some(0),
        ..ReadNew::count(1)
    };
    let outcome = fx.read_with(b"e", request, 41);
    assert_eq!(outcome.entries[0].id, id(1));
    assert_eq!(fx.pending()[0], (1, "e".to_string(), 2));
    fx.check_rebuilds();
}

#[test]
fn due_and_idle_entries_merge_by_eligibility_and_appear_once() {
    let mut fx = Fixture::with_group(3);
    fx.read(b"a", 3, 0);
    fx.nack(None, &[3], 5, 0);
    fx.nack(None, &[1], 20, 0);
    let request = ReadNew {
        claim_min_idle_ms: Some(10),
        ..ReadNew::count(10)
    };
    // 3 due at 5; 1 and 2 idle enough at 10; 1 also due at 20.
    assert_eq!(
        fx.read_with(b"b", request, 30)
            .entries
            .iter()
            .map(|e| e.id.ms)
            .collect::<Vec<_>>(),
        [3, 1, 2]
    );
}

#[test]
fn read_pending_rereads_the_consumers_own_history() {
    let mut fx = Fixture::with_group(5);
    fx.read(b"a", 3, 0);
    fx.read(b"b", 2, 0);
    fx.log.delete(id(2));
    let applied = fx
        .state
        .read_pending(&fx.log, b"g", b"a", StreamId::MIN, 10, 7);
    let history = fx.record(applied.unwrap());
    assert_eq!(
        history,
        [
            HistoryEntry::Live(Handout {
                id: id(1),
                offset: 0,
                deliveries: 2,
                idle_ms: Some(7)
            }),
            HistoryEntry::Deleted(id(2)),
            HistoryEntry::Live(Handout {
                id: id(3),
                offset: 2,
                deliveries: 2,
                idle_ms: Some(7)
            }),
        ]
    );
    // The deleted entry stays pending and keeps its count, as in Redis.
    assert_eq!(fx.pending()[1], (2, "a".to_string(), 1));
    let applied = fx.state.read_pending(&fx.log, b"g", b"a", id(1), 1, 8);
    assert_eq!(fx.record(applied.unwrap()), [HistoryEntry::Deleted(id(2))]);
    let applied = fx
        .state
        .read_pending(&fx.log, b"g", b"new", StreamId::MIN, 10, 9);
    assert!(fx.record(applied.unwrap()).is_empty());
    assert_eq!(fx.state.consumers_info(b"g", 9).unwrap().len(), 3);
    fx.check_rebuilds();
}

#[test]
fn reread_resets_the_ack_deadline() {
    let mut fx = Fixture::with_group(1);
    fx.set_policy(wait(100));
    fx.read(b"a", 1, 0);
    let applied = fx
        .state
        .read_pending(&fx.log, b"g", b"a", StreamId::MIN, 10, 90);
    fx.record(applied.unwrap());
    assert_eq!(fx.read(b"b", 10, 150), Vec::<u64>::new());
    assert_eq!(fx.read(b"b", 10, 190), [1]);
}

fn claim(
    fx: &mut Fixture,
    consumer: &[u8],
    list: &[u64],
    options: ClaimOptions,
    now_ms: u64,
) -> ClaimOutcome {
    let applied = fx
        .state
        .claim(&fx.log, b"g", consumer, &ids(list), options, now_ms);
    fx.record(applied.unwrap())
}

#[test]
fn claim_follows_xclaim() {
    let mut fx = Fixture::with_group(6);
    fx.read(b"a", 4, 0);
    let min_idle = ClaimOptions {
        min_idle_ms: 50,
        ..ClaimOptions::default()
    };
    assert!(claim(&mut fx, b"b", &[1], min_idle, 40).claimed.is_empty());
    let outcome = claim(&mut fx, b"b", &[1, 1, 9], min_idle, 60);
    assert_eq!(
        outcome.claimed,
        [Handout {
            id: id(1),
            offset: 0,
            deliveries: 2,
            idle_ms: Some(60)
        }]
    );
    // The claim reset the idle time: a second claimer finds nothing.
    assert!(claim(&mut fx, b"c", &[1], min_idle, 61).claimed.is_empty());

    fx.log.delete(id(2));
    let outcome = claim(&mut fx, b"b", &[2, 3], ClaimOptions::default(), 70);
    assert_eq!(outcome.deleted, ids(&[2]));
    assert_eq!(outcome.claimed.len(), 1);
    assert_eq!(
        fx.pending().iter().map(|p| p.0).collect::<Vec<_>>(),
        [1, 3, 4]
    );

    let justid = ClaimOptions {
        justid: true,
        idle_ms: Some(30),
        ..ClaimOptions::default()
    };
    let outcome = claim(&mut fx, b"c", &[4], justid, 100);
    assert_eq!(outcome.claimed[0].deliveries, 1);
    let rows = fx.state.pending_range(b"g", &full_range(), 100).unwrap();
    assert_eq!((rows[2].consumer, rows[2].idle_ms), (b"c".as_slice(), 30));

    let retry = ClaimOptions {
        retry_count: Some(7),
        justid: true,
        time_ms: Some(80),
        ..ClaimOptions::default()
    };
    claim(&mut fx, b"c", &[3], retry, 100);
    let rows = fx.state.pending_range(b"g", &full_range(), 100).unwrap();
    assert_eq!((rows[1].idle_ms, rows[1].deliveries), (20, 7));

    // Times in the future, or idle times before the epoch, fall back to now.
    let future = ClaimOptions {
        time_ms: Some(500),
        ..ClaimOptions::default()
    };
    claim(&mut fx, b"c", &[3], future, 100);
    let too_idle = ClaimOptions {
        idle_ms: Some(500),
        ..ClaimOptions::default()
    };
    claim(&mut fx, b"c", &[4], too_idle, 100);
    let rows = fx.state.pending_range(b"g", &full_range(), 100).unwrap();
    assert_eq!((rows[1].idle_ms, rows[2].idle_ms), (0, 0));
    fx.check_rebuilds();
}

fn full_range() -> PendingQuery<'static> {
    PendingQuery {
        start: StreamId::MIN,
        end: StreamId::MAX,
        count: usize::MAX,
        consumer: None,
        min_idle_ms: None,
    }
}

#[test]
fn forced_claims_need_the_entry_in_the_log() {
    let mut fx = Fixture::with_group(3);
    let force = ClaimOptions {
        force: true,
        min_idle_ms: 1_000,
        ..ClaimOptions::default()
    };
    let outcome = claim(&mut fx, b"a", &[2, 9], force, 5);
    assert_eq!(outcome.claimed.len(), 1, "9 is not in the log");
    assert!(outcome.deleted.is_empty());
    assert_eq!(fx.pending(), owned("a", &[(2, 2)]));
    let justid = ClaimOptions {
        justid: true,
        ..force
    };
    claim(&mut fx, b"a", &[3], justid, 5);
    assert_eq!(fx.pending()[1], (3, "a".to_string(), 1));
    let plain = claim(&mut fx, b"b", &[1], ClaimOptions::default(), 5);
    assert!(plain.claimed.is_empty(), "not pending, not forced");
    // Forced entries are not new deliveries: the group's position does not move.
    assert_eq!(fx.info().last_delivered, StreamId::MIN);
    assert_eq!(fx.read(b"b", 10, 6), [1, 2, 3]);
    fx.check_rebuilds();
}

#[test]
fn lastid_only_moves_forward() {
    let mut fx = Fixture::with_group(5);
    fx.read(b"a", 3, 0);
    let back = ClaimOptions {
        last_id: Some(id(2)),
        ..ClaimOptions::default()
    };
    claim(&mut fx, b"a", &[], back, 1);
    assert_eq!(fx.info().last_delivered, id(3));
    let forward = ClaimOptions {
        last_id: Some(id(4)),
        ..ClaimOptions::default()
    };
    claim(&mut fx, b"a", &[], forward, 1);
    assert_eq!(fx.info().last_delivered, id(4));
    assert_eq!(fx.info().entries_read, Some(3), "LASTID leaves the counter");
    assert_eq!(fx.read(b"a", 10, 2), [5]);
}

fn auto_claim(fx: &mut Fixture, request: AutoClaim, now_ms: u64) -> AutoClaimOutcome {
    let applied = fx.state.auto_claim(&fx.log, b"g", b"z", request, now_ms);
    fx.record(applied.unwrap())
}

#[test]
fn auto_claim_follows_xautoclaim() {
    let mut fx = Fixture::with_group(30);
    fx.read(b"a", 25, 0);
    fx.read(b"b", 5, 90);
    let request = AutoClaim {
        count: 2,
        ..AutoClaim::new(50, StreamId::MIN)
    };
    let outcome = auto_claim(&mut fx, request, 100);
    assert_eq!(
        outcome.claimed.iter().map(|c| c.id.ms).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(outcome.next, id(3));
    assert_eq!(outcome.claimed[0].deliveries, 2);

    // Deleted entries count towards COUNT and are reported.
    fx.log.delete(id(3));
    fx.log.delete(id(4));
    let outcome = auto_claim(
        &mut fx,
        AutoClaim {
            start: outcome.next,
            ..request
        },
        100,
    );
    assert_eq!(outcome.deleted, ids(&[3, 4]));
    assert!(outcome.claimed.is_empty());
    assert_eq!(outcome.next, id(5));

    // At most 10 x COUNT entries are examined: 26..=30 are not idle enough.
    let request = AutoClaim {
        count: 1,
        justid: true,
        ..AutoClaim::new(50, id(26))
    };
    let outcome = auto_claim(&mut fx, request, 100);
    assert!(outcome.claimed.is_empty());
    assert_eq!(outcome.next, StreamId::MIN, "the scan reached the end");
    let request = AutoClaim {
        count: 1,
        ..AutoClaim::new(0, id(5))
    };
    let scanned = auto_claim(
        &mut fx,
        AutoClaim {
            justid: true,
            ..request
        },
        100,
    );
    assert_eq!(scanned.claimed[0].deliveries, 1, "JUSTID keeps the counter");
    assert_eq!(scanned.next, id(6));

    let long = AutoClaim {
        count: 1,
        ..AutoClaim::new(1_000, StreamId::MIN)
    };
    let outcome = auto_claim(&mut fx, long, 100);
    assert!(outcome.claimed.is_empty());
    // Ten entries examined: 1, 2, 5 and 6..=12 (3 and 4 were dropped).
    assert_eq!(outcome.next, id(13));
    assert_eq!(
        fx.state
            .auto_claim(&fx.log, b"g", b"z", AutoClaim { count: 0, ..long }, 1),
        Err(GroupError::ZeroCount)
    );
    fx.check_rebuilds();
}

#[test]
fn a_group_set_back_reassigns_pending_entries_it_delivers_again() {
    let mut fx = Fixture::with_group(3);
    fx.read(b"a", 3, 0);
    claim(&mut fx, b"a", &[2], ClaimOptions::default(), 1);
    let applied = fx.state.set_id(b"g", StreamId::MIN, Some(0));
    fx.record(applied.unwrap());
    assert_eq!(fx.read(b"b", 2, 5), [1, 2]);
    assert_eq!(
        fx.pending()
            .iter()
            .map(|(ms, owner, n)| (*ms, owner.as_str(), *n))
            .collect::<Vec<_>>(),
        [(1, "b", 1), (2, "b", 1), (3, "a", 1)]
    );
    fx.check_rebuilds();
}

#[test]
fn an_entry_due_again_is_not_also_handed_out_as_new() {
    let mut fx = Fixture::with_group(3);
    fx.set_policy(wait(10));
    fx.read(b"a", 2, 0);
    let applied = fx.state.set_id(b"g", StreamId::MIN, Some(0));
    fx.record(applied.unwrap());
    // 1 and 2 are due; passing them as new must not hand them out a second time.
    assert_eq!(fx.read(b"b", 10, 20), [1, 2, 3]);
    assert_eq!(fx.pending(), owned("b", &[(1, 2), (2, 2), (3, 1)]));
    assert_eq!(fx.info().last_delivered, id(3));
    fx.check_rebuilds();
}

#[test]
fn the_read_counter_follows_redis_through_deletions() {
    let mut fx = Fixture::with_group(6);
    assert_eq!(fx.read(b"a", 2, 0), [1, 2]);
    assert_eq!(fx.info().entries_read, Some(2));
    assert_eq!(fx.info().lag, Some(4));
    // A tombstone ahead of the group makes both the counter and the lag unknown...
    fx.log.delete(id(4));
    assert_eq!(fx.info().lag, None);
    assert_eq!(fx.read(b"a", 1, 0), [3]);
    assert_eq!(fx.info().entries_read, None);
    // ...until the group passes the tombstone: lag is then known again, the counter is not.
    assert_eq!(fx.read(b"a", 1, 0), [5]);
    assert_eq!(fx.info().entries_read, None);
    assert_eq!(fx.info().lag, None);
    // Reaching the last entry re-anchors the counter.
    assert_eq!(fx.read(b"a", 1, 0), [6]);
    assert_eq!(fx.info().entries_read, Some(6));
    assert_eq!(fx.info().lag, Some(0));
    fx.log.append(id(7));
    assert_eq!(fx.read(b"a", 1, 0), [7]);
    assert_eq!(fx.info().entries_read, Some(7));
    fx.check_rebuilds();
}

#[test]
fn a_group_created_in_a_trimmed_stream_estimates_its_counter() {
    let mut fx = Fixture::with_group(0);
    fx.log.append_range(1..=10);
    fx.log.trim_below(id(5));
    let applied = fx.state.create_group(b"h", StreamId::MIN, None);
    fx.record(applied.unwrap());
    assert_eq!(fx.state.group_info(&fx.log, b"h").unwrap().lag, Some(6));
    let applied = fx.state.read_new(&fx.log, b"h", b"a", ReadNew::count(1), 0);
    assert_eq!(fx.record(applied.unwrap()).entries[0].id, id(5));
    let info = fx.state.group_info(&fx.log, b"h").unwrap();
    assert_eq!((info.entries_read, info.lag), (Some(5), Some(5)));
}

#[test]
fn oversized_consumer_names_are_refused_before_anything_changes() {
    let mut fx = Fixture::with_group(1);
    let long = vec![b'c'; crate::group::MAX_NAME_LEN + 1];
    let before = fx.state.clone();
    assert!(
        fx.state
            .read_new(&fx.log, b"g", &long, ReadNew::count(1), 0)
            .is_err()
    );
    assert!(
        fx.state
            .claim(&fx.log, b"g", &long, &[], ClaimOptions::default(), 0)
            .is_err()
    );
    assert_eq!(fx.state, before);
}
