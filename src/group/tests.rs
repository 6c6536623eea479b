//! Random operation sequences over a changing log: after every operation the journaled events
//! must replay (through the codec) to an equal state with consistent indexes, and no entry may
//! ever have two owners; at the end the snapshot and the whole journal must rebuild the state.

use crate::id::StreamId;

use super::event::tests::Rng;
use super::test_log::Fixture;
use super::{Applied, AutoClaim, ClaimOptions, GroupEvent, GroupPolicy, GroupsState, ReadNew};

const GROUPS: [&[u8]; 2] = [b"g", b"h"];
const CONSUMERS: [&[u8]; 4] = [b"ann", b"bob", b"cy", b"dee"];

fn pick<'a>(rng: &mut Rng, names: &[&'a [u8]]) -> &'a [u8] {
    names[rng.below(names.len() as u64) as usize]
}

/// An ID near the log's range: often a live entry, sometimes a gap or one past the end.
fn some_id(rng: &mut Rng, fx: &Fixture) -> StreamId {
    let live = fx.log.live_ids();
    if !live.is_empty() && rng.chance(70) {
        return live[rng.below(live.len() as u64) as usize];
    }
    StreamId::new(rng.below(fx.log.last_id().ms + 3), rng.below(2))
}

fn some_ids(rng: &mut Rng, fx: &Fixture) -> Vec<StreamId> {
    (0..rng.below(5)).map(|_| some_id(rng, fx)).collect()
}

fn random_policy(rng: &mut Rng) -> GroupPolicy {
    GroupPolicy {
        ack_wait_ms: rng.chance(60).then(|| 1 + rng.below(40)),
        max_deliver: rng.chance(50).then(|| 1 + rng.below(3) as u32),
        dead_letter: rng.chance(50).then(|| b"dlq".to_vec()),
        max_ack_pending: rng.chance(30).then(|| 1 + rng.below(8)),
    }
}

fn random_claim_options(rng: &mut Rng, fx: &Fixture, now_ms: u64) -> ClaimOptions {
    ClaimOptions {
        min_idle_ms: rng.below(3) * 20,
        idle_ms: rng.chance(20).then(|| rng.below(now_ms + 10)),
        time_ms: rng.chance(10).then(|| rng.below(now_ms + 10)),
        retry_count: rng.chance(10).then(|| rng.below(4) as u32),
        force: rng.chance(30),
        justid: rng.chance(30),
        last_id: rng.chance(10).then(|| some_id(rng, fx)),
    }
}

/// Checks a successful operation's events, or that a refused one changed nothing.
fn settle<T>(fx: &mut Fixture, result: Result<Applied<T>, super::GroupError>) -> Option<T> {
    match result {
        Ok(applied) => Some(fx.record(applied)),
        Err(_) => {
            fx.record(Applied::unchanged(()));
            None
        }
    }
}

fn step(rng: &mut Rng, fx: &mut Fixture, now_ms: u64) {
    let group = pick(rng, &GROUPS);
    let consumer = pick(rng, &CONSUMERS);
    match rng.below(16) {
        0 | 1 => {
            for _ in 0..=rng.below(3) {
                let next = StreamId::new(fx.log.last_id().ms + 1 + rng.below(2), rng.below(2));
                fx.log.append(next);
            }
        }
        2 => {
            let target = some_id(rng, fx);
            fx.log.delete(target);
        }
        3 => {
            if rng.chance(20) {
                let target = some_id(rng, fx);
                fx.log.trim_below(target);
            } else {
                let applied = fx.state.clamp_to_log(&fx.log);
                fx.record(applied);
            }
        }
        4 => {
            if rng.chance(50) {
                let at = some_id(rng, fx);
                let entries_read = rng.chance(50).then(|| rng.below(20));
                let result = fx.state.create_group(group, at, entries_read);
                settle(fx, result);
            } else {
                let applied = fx.state.destroy_group(group);
                fx.record(applied);
            }
        }
        5 => {
            let result = if rng.chance(50) {
                fx.state.set_policy(group, random_policy(rng))
            } else {
                let at = some_id(rng, fx);
                fx.state
                    .set_id(group, at, rng.chance(50).then(|| rng.below(20)))
            };
            settle(fx, result);
        }
        6 => {
            if rng.chance(50) {
                let result = fx.state.create_consumer(group, consumer, now_ms);
                settle(fx, result);
            } else {
                let result = fx.state.delete_consumer(group, consumer);
                settle(fx, result);
            }
        }
        7..=9 => read(rng, fx, group, consumer, now_ms),
        10 => {
            let after = if rng.chance(50) {
                StreamId::MIN
            } else {
                some_id(rng, fx)
            };
            let max = rng.below(4) as usize;
            let result = fx
                .state
                .read_pending(&fx.log, group, consumer, after, max, now_ms);
            settle(fx, result);
        }
        11 => {
            let ids = some_ids(rng, fx);
            let result = fx.state.ack(group, &ids);
            settle(fx, result);
        }
        12 => {
            let ids = some_ids(rng, fx);
            let owner = rng.chance(50).then_some(consumer);
            let result = fx.state.nack(group, owner, &ids, rng.below(30), now_ms);
            settle(fx, result);
        }
        13 => {
            let ids = some_ids(rng, fx);
            let options = random_claim_options(rng, fx, now_ms);
            let result = fx
                .state
                .claim(&fx.log, group, consumer, &ids, options, now_ms);
            settle(fx, result);
        }
        14 => {
            let request = AutoClaim {
                min_idle_ms: rng.below(3) * 20,
                start: if rng.chance(50) {
                    StreamId::MIN
                } else {
                    some_id(rng, fx)
                },
                count: rng.below(4) as usize,
                justid: rng.chance(30),
            };
            let result = fx
                .state
                .auto_claim(&fx.log, group, consumer, request, now_ms);
            settle(fx, result);
        }
        _ => {
            let ids = some_ids(rng, fx);
            let result = fx.state.commit_dead_letters(group, &ids);
            settle(fx, result);
        }
    }
}

fn read(rng: &mut Rng, fx: &mut Fixture, group: &[u8], consumer: &[u8], now_ms: u64) {
    let request = ReadNew {
        max: rng.below(6) as usize,
        noack: rng.chance(10),
        claim_min_idle_ms: rng.chance(20).then(|| rng.below(3) * 20),
    };
    let result = fx.state.read_new(&fx.log, group, consumer, request, now_ms);
    let Some(outcome) = settle(fx, result) else {
        return;
    };
    assert!(outcome.entries.len() <= request.max);
    let mut handed: Vec<StreamId> = outcome.entries.iter().map(|entry| entry.id).collect();
    handed.sort();
    handed.dedup();
    assert_eq!(
        handed.len(),
        outcome.entries.len(),
        "an entry handed out twice"
    );
    let pending = fx
        .state
        .pending_summary(group)
        .map(|s| s.count)
        .unwrap_or(0);
    for entry in &outcome.entries {
        let is_new = entry.idle_ms.is_none();
        if !(is_new && request.noack) {
            let rows = fx.state.pending_range(group, &one(entry.id), now_ms);
            let owner = rows
                .ok()
                .and_then(|rows| rows.first().map(|row| row.consumer.to_vec()));
            assert_eq!(owner.as_deref(), Some(consumer), "delivered but not owned");
        }
    }
    if let Some(limit) = fx
        .state
        .group_info(&fx.log, group)
        .ok()
        .and_then(|i| i.policy.max_ack_pending)
    {
        let new = outcome
            .entries
            .iter()
            .filter(|entry| entry.idle_ms.is_none())
            .count();
        assert!(
            new == 0 || request.noack || pending as u64 <= limit,
            "max_ack_pending exceeded"
        );
    }
    if !outcome.dead_letters.is_empty() && rng.chance(70) {
        let ids: Vec<StreamId> = outcome
            .dead_letters
            .iter()
            .map(|letter| letter.id)
            .collect();
        let result = fx.state.commit_dead_letters(group, &ids);
        settle(fx, result);
    }
}

fn one(id: StreamId) -> super::PendingQuery<'static> {
    super::PendingQuery {
        start: id,
        end: id,
        count: 1,
        consumer: None,
        min_idle_ms: None,
    }
}

#[test]
fn random_operations_replay_to_the_same_state() {
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut fx = Fixture::with_group(5);
        let mut now_ms = 1_000;
        for _ in 0..1_500 {
            now_ms += rng.below(25);
            step(&mut rng, &mut fx, now_ms);
        }
        fx.check_rebuilds();

        // The journal also replays from its bytes.
        let mut from_bytes = GroupsState::new();
        for event in fx.journal() {
            let decoded = GroupEvent::decode(&event.to_bytes());
            from_bytes.apply(&decoded.unwrap());
        }
        assert_eq!(from_bytes, fx.state, "seed {seed}");
    }
}

#[test]
fn snapshots_taken_midway_continue_like_the_original() {
    let mut rng = Rng(0xDEAD_BEEF);
    let mut fx = Fixture::with_group(5);
    let mut now_ms = 0;
    for round in 0..2_000 {
        now_ms += rng.below(25);
        step(&mut rng, &mut fx, now_ms);
        if round % 250 == 0 {
            fx.check_rebuilds();
        }
    }
}
