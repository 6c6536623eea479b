//! The operations: each checks its arguments and plans from the current state and the log
//! without changing anything, then emits its events through a [`Recorder`]. An error therefore
//! always means nothing changed.

use std::collections::HashSet;
use std::ops::Bound;

use crate::id::StreamId;

use super::consumers::ConsumerId;
use super::event::{DeliveryCount, GroupEvent};
use super::pel::Clock;
use super::state::{Group, GroupsState, Recorder};
use super::{Applied, EntrySource, GroupError, GroupPolicy, MAX_EVENT_BATCH, check_name};

/// `XAUTOCLAIM` examines at most this many PEL entries per entry it may return (Redis's
/// `attempts_factor`).
const AUTO_CLAIM_ATTEMPTS_FACTOR: usize = 10;

/// A read examines at most this many undeliverable eligible entries (vanished, exhausted, dead
/// letters) per entry it may hand out, and at least [`MIN_READ_SCAN`], so one read stays
/// bounded when many entries reach the delivery limit at once.
const READ_SCAN_FACTOR: usize = 10;
const MIN_READ_SCAN: usize = 1000;

/// What [`GroupsState::read_new`] is asked for: `XREADGROUP … STREAMS key >`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadNew {
    /// Most entries to hand out, redeliveries included (`COUNT`; pass `usize::MAX` when Redis
    /// would have no limit: no `COUNT`, or `COUNT 0`).
    pub max: usize,
    /// New entries do not enter the PEL (`NOACK`). Redelivered entries always stay pending.
    pub noack: bool,
    /// Also hand out pending entries idle at least this long (Redis 8.4's `CLAIM min-idle`).
    pub claim_min_idle_ms: Option<u64>,
}

impl ReadNew {
    /// Up to `max` entries, to be acknowledged, without claiming idle entries.
    pub fn count(max: usize) -> Self {
        ReadNew {
            max,
            noack: false,
            claim_min_idle_ms: None,
        }
    }
}

/// One entry handed to a consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The entry's ID.
    pub id: StreamId,
    /// The entry's offset in the log (to read its body).
    pub offset: u64,
    /// Deliveries so far, this one included (after a claim: as the claim set it).
    pub deliveries: u32,
    /// For an entry that was pending: milliseconds since its previous delivery (what Redis 8.4
    /// reports for claimed entries). `None` for an entry delivered for the first time.
    pub idle_ms: Option<u64>,
}

/// An entry to append to the group's dead-letter stream before
/// [`GroupsState::commit_dead_letters`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The entry's ID.
    pub id: StreamId,
    /// The entry's offset in the log.
    pub offset: u64,
    /// How many times it was delivered.
    pub deliveries: u32,
}

/// What [`GroupsState::read_new`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Entries handed out: redeliveries first, in the order they became eligible, then new
    /// entries in ID order.
    pub entries: Vec<Delivery>,
    /// Pending entries dropped from the PEL because the log no longer holds them.
    pub deleted: Vec<StreamId>,
    /// Entries that reached the delivery limit and were marked exhausted (no dead-letter
    /// stream).
    pub exhausted: Vec<StreamId>,
    /// Entries that reached the delivery limit, still pending: append them to the dead-letter
    /// stream, then commit them.
    pub dead_letters: Vec<DeadLetter>,
    /// The read stopped after examining its limit of undeliverable entries, before considering
    /// new ones: read again rather than block.
    pub scan_limited: bool,
}

/// One entry of a consumer's history ([`GroupsState::read_pending`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryEntry {
    /// The entry, delivered once more.
    Live(Delivery),
    /// The log no longer holds it; it stays pending (Redis replies `[id, nil]`).
    Deleted(StreamId),
}

/// `XCLAIM` options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClaimOptions {
    /// Skip entries idle less than this (`min-idle-time`).
    pub min_idle_ms: u64,
    /// Set the delivery time to now − this (`IDLE`).
    pub idle_ms: Option<u64>,
    /// Set the delivery time to this Unix time (`TIME`); wins over `idle_ms`.
    pub time_ms: Option<u64>,
    /// Set the delivery counter (`RETRYCOUNT`).
    pub retry_count: Option<u32>,
    /// Create a PEL entry for an entry of the stream that is not pending (`FORCE`).
    pub force: bool,
    /// Leave the delivery counter unchanged (`JUSTID`).
    pub justid: bool,
    /// Move the last-delivered ID forward to this (`LASTID`); never moves it back.
    pub last_id: Option<StreamId>,
}

impl ClaimOptions {
    /// The delivery time the claim records: as asked, but never in the future or before the
    /// epoch (Redis falls back to now in both cases).
    fn delivered_ms(&self, now_ms: u64) -> u64 {
        let asked = self.time_ms.or_else(|| {
            self.idle_ms
                .map(|idle_ms| now_ms.checked_sub(idle_ms).unwrap_or(now_ms))
        });
        asked.filter(|&time_ms| time_ms <= now_ms).unwrap_or(now_ms)
    }

    fn count(&self) -> DeliveryCount {
        match self.retry_count {
            Some(value) => DeliveryCount::Set(value),
            None if self.justid => DeliveryCount::Keep,
            None => DeliveryCount::Increment,
        }
    }
}

/// What [`GroupsState::claim`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimOutcome {
    /// Entries now owned by the consumer, in the order asked.
    pub claimed: Vec<Delivery>,
    /// Pending entries dropped because the log no longer holds them.
    pub deleted: Vec<StreamId>,
}

/// What [`GroupsState::auto_claim`] is asked for: `XAUTOCLAIM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AutoClaim {
    /// Claim entries idle at least this long.
    pub min_idle_ms: u64,
    /// Scan the PEL from this ID, inclusive.
    pub start: StreamId,
    /// Most entries to claim (deleted ones count too); at least 1.
    pub count: usize,
    /// Leave delivery counters unchanged.
    pub justid: bool,
}

impl AutoClaim {
    /// `XAUTOCLAIM … min-idle start` with Redis's default `COUNT 100`.
    pub fn new(min_idle_ms: u64, start: StreamId) -> Self {
        AutoClaim {
            min_idle_ms,
            start,
            count: 100,
            justid: false,
        }
    }
}

/// What [`GroupsState::auto_claim`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AutoClaimOutcome {
    /// Where the next call should start; `0-0` when the scan reached the end of the PEL.
    pub next: StreamId,
    /// Entries now owned by the consumer, in ID order.
    pub claimed: Vec<Delivery>,
    /// Pending entries dropped because the log no longer holds them.
    pub deleted: Vec<StreamId>,
}

/// An entry after the group's position that a read passes, with the group's read counter
/// once past it.
struct NewEntry {
    id: StreamId,
    offset: u64,
    entries_read: Option<u64>,
    /// False when the same read already redelivered, exhausted or dead-lettered it (possible
    /// once the group's ID was set back below pending entries): it is passed, not handed out.
    handed_out: bool,
}

/// What a read will do, decided before anything changes.
struct ReadPlan {
    /// The redeliveries, and what happens to undeliverable eligible entries.
    redeliveries: ReadOutcome,
    /// The entries after the group's position that the read passes.
    fresh: Vec<NewEntry>,
    /// The deadline of every entry the read hands out.
    due_ms: Option<u64>,
    noack: bool,
}

impl GroupsState {
    pub(crate) fn group(&self, name: &[u8]) -> Result<&Group, GroupError> {
        self.groups.get(name).ok_or_else(|| GroupError::NoGroup {
            group: name.to_vec(),
        })
    }

    /// `XGROUP CREATE`: a group positioned after `last_delivered` (the caller resolves `$` to
    /// the stream's last ID), with a read counter if known (`ENTRIESREAD`).
    pub fn create_group(
        &mut self,
        group: &[u8],
        last_delivered: StreamId,
        entries_read: Option<u64>,
    ) -> Result<Applied<()>, GroupError> {
        self.create_group_with(group, last_delivered, entries_read, GroupPolicy::default())
    }

    /// [`create_group`](Self::create_group) with a policy, in one event: a crash keeps both or
    /// neither.
    pub fn create_group_with(
        &mut self,
        group: &[u8],
        last_delivered: StreamId,
        entries_read: Option<u64>,
        policy: GroupPolicy,
    ) -> Result<Applied<()>, GroupError> {
        policy.validate()?;
        check_name(group)?;
        if self.has_group(group) {
            return Err(GroupError::GroupExists {
                group: group.to_vec(),
            });
        }
        let mut recorder = Recorder::new(self);
        recorder.emit(GroupEvent::GroupCreated {
            group: group.to_vec(),
            last_delivered,
            entries_read,
            policy,
        });
        Ok(recorder.finish(()))
    }

    /// `XGROUP DESTROY`: whether the group existed.
    pub fn destroy_group(&mut self, group: &[u8]) -> Applied<bool> {
        if !self.has_group(group) {
            return Applied::unchanged(false);
        }
        let mut recorder = Recorder::new(self);
        recorder.emit(GroupEvent::GroupDestroyed {
            group: group.to_vec(),
        });
        recorder.finish(true)
    }

    /// `XGROUP SETID`: moves the group anywhere, replacing its read counter (`None` when
    /// `ENTRIESREAD` is not given, as Redis does). Pending entries stay.
    pub fn set_id(
        &mut self,
        group: &[u8],
        last_delivered: StreamId,
        entries_read: Option<u64>,
    ) -> Result<Applied<()>, GroupError> {
        self.group(group)?;
        let mut recorder = Recorder::new(self);
        recorder.emit(GroupEvent::GroupIdSet {
            group: group.to_vec(),
            last_delivered,
            entries_read,
        });
        Ok(recorder.finish(()))
    }

    /// Replaces the group's policy (see [`GroupPolicy::validate`]).
    pub fn set_policy(
        &mut self,
        group: &[u8],
        policy: GroupPolicy,
    ) -> Result<Applied<()>, GroupError> {
        policy.validate()?;
        self.group(group)?;
        let mut recorder = Recorder::new(self);
        recorder.emit(GroupEvent::PolicySet {
            group: group.to_vec(),
            policy,
        });
        Ok(recorder.finish(()))
    }

    /// `XGROUP CREATECONSUMER`: whether the consumer was created.
    pub fn create_consumer(
        &mut self,
        group: &[u8],
        consumer: &[u8],
        now_ms: u64,
    ) -> Result<Applied<bool>, GroupError> {
        let creation = self.group(group)?.creation(group, consumer, now_ms)?;
        let created = creation.is_some();
        let mut recorder = Recorder::new(self);
        recorder.emit_all(creation);
        Ok(recorder.finish(created))
    }

    /// `XGROUP DELCONSUMER`: how many pending entries the consumer held; they leave the PEL.
    pub fn delete_consumer(
        &mut self,
        group: &[u8],
        consumer: &[u8],
    ) -> Result<Applied<usize>, GroupError> {
        let Some(held) = self
            .group(group)?
            .consumers
            .by_name(consumer)
            .map(|state| state.pending)
        else {
            return Ok(Applied::unchanged(0));
        };
        let mut recorder = Recorder::new(self);
        recorder.emit(GroupEvent::ConsumerDeleted {
            group: group.to_vec(),
            consumer: consumer.to_vec(),
        });
        Ok(recorder.finish(held))
    }

    /// `XREADGROUP … >`: hands `consumer` the due pending entries first (and, with
    /// `claim_min_idle_ms`, those idle that long), then new entries, creating the consumer if
    /// needed. See the [module documentation](super) for the delivery limit and dead letters.
    ///
    /// New entries stop at the group's `max_ack_pending` (unless `noack`); redeliveries do not.
    /// Due entries whose log entry vanished are dropped and listed in
    /// [`ReadOutcome::deleted`].
    pub fn read_new<S: EntrySource + ?Sized>(
        &mut self,
        source: &S,
        group: &[u8],
        consumer: &[u8],
        request: ReadNew,
        now_ms: u64,
    ) -> Result<Applied<ReadOutcome>, GroupError> {
        let state = self.group(group)?;
        let creation = state.creation(group, consumer, now_ms)?;
        let plan = state.plan_read(source, request, now_ms);
        let mut recorder = Recorder::new(self);
        recorder.emit_all(creation);
        let outcome = recorder.record_read(group, consumer, plan, now_ms);
        recorder.mark_seen(group, consumer, now_ms);
        Ok(recorder.finish(outcome))
    }

    /// `XREADGROUP … STREAMS key <id>`: up to `max` of the consumer's own pending entries with an
    /// ID greater than `after`, each delivered once more. Entries whose log entry vanished are
    /// returned as [`HistoryEntry::Deleted`] and stay pending, as in Redis.
    pub fn read_pending<S: EntrySource + ?Sized>(
        &mut self,
        source: &S,
        group: &[u8],
        consumer: &[u8],
        after: StreamId,
        max: usize,
        now_ms: u64,
    ) -> Result<Applied<Vec<HistoryEntry>>, GroupError> {
        let state = self.group(group)?;
        let creation = state.creation(group, consumer, now_ms)?;
        let history: Vec<HistoryEntry> = state
            .consumers
            .id(consumer)
            .into_iter()
            .flat_map(|owner| state.pel.owned_from(owner, Bound::Excluded(after)))
            .take(max)
            .map(|(id, entry)| match source.lookup(id) {
                Some(offset) => HistoryEntry::Live(Delivery {
                    id,
                    offset,
                    deliveries: entry.deliveries.saturating_add(1),
                    idle_ms: Some(entry.idle_ms(now_ms)),
                }),
                None => HistoryEntry::Deleted(id),
            })
            .collect();
        let reread: Vec<StreamId> = history
            .iter()
            .filter_map(|entry| match entry {
                HistoryEntry::Live(delivery) => Some(delivery.id),
                HistoryEntry::Deleted(_) => None,
            })
            .collect();
        let due_ms = state.policy.deadline(now_ms);

        let mut recorder = Recorder::new(self);
        recorder.emit_all(creation);
        recorder.emit_batches(&reread, |ids| GroupEvent::Reread {
            group: group.to_vec(),
            consumer: consumer.to_vec(),
            time_ms: now_ms,
            due_ms,
            ids,
        });
        recorder.mark_seen(group, consumer, now_ms);
        Ok(recorder.finish(history))
    }

    /// `XACK`: how many of `ids` were pending; they leave the PEL.
    pub fn ack(&mut self, group: &[u8], ids: &[StreamId]) -> Result<Applied<usize>, GroupError> {
        let acked = self.group(group)?.pending_among(ids, None);
        let mut recorder = Recorder::new(self);
        recorder.emit_batches(&acked, |ids| GroupEvent::Acked {
            group: group.to_vec(),
            ids,
        });
        Ok(recorder.finish(acked.len()))
    }

    /// Step 3 of the dead-letter protocol (see the [module documentation](super)): removes
    /// from the PEL the entries that were appended to the dead-letter stream. Returns how many
    /// were still pending.
    pub fn commit_dead_letters(
        &mut self,
        group: &[u8],
        ids: &[StreamId],
    ) -> Result<Applied<usize>, GroupError> {
        let committed = self.group(group)?.pending_among(ids, None);
        let mut recorder = Recorder::new(self);
        recorder.emit_batches(&committed, |ids| GroupEvent::DeadLettered {
            group: group.to_vec(),
            ids,
        });
        Ok(recorder.finish(committed.len()))
    }

    /// `XCLAIM`: gives `consumer` (created if needed) the listed entries that are pending and
    /// idle at least `min_idle_ms` (with `force`, also entries of the stream that are not
    /// pending). Pending entries whose log entry vanished are dropped and reported as deleted;
    /// IDs listed twice count once. The delivery limit does not apply.
    pub fn claim<S: EntrySource + ?Sized>(
        &mut self,
        source: &S,
        group: &[u8],
        consumer: &[u8],
        ids: &[StreamId],
        options: ClaimOptions,
        now_ms: u64,
    ) -> Result<Applied<ClaimOutcome>, GroupError> {
        let state = self.group(group)?;
        let creation = state.creation(group, consumer, now_ms)?;
        let outcome = state.plan_claim(source, ids, options, now_ms);
        let raised = options
            .last_id
            .filter(|&last_id| last_id > state.last_delivered)
            .map(|last_id| GroupEvent::GroupIdSet {
                group: group.to_vec(),
                last_delivered: last_id,
                entries_read: state.entries_read,
            });
        let delivered_ms = options.delivered_ms(now_ms);
        let claims = Claims {
            claimed: &outcome.claimed,
            deleted: &outcome.deleted,
            delivered_ms,
            due_ms: state.policy.deadline(delivered_ms),
            count: options.count(),
        };
        let mut recorder = Recorder::new(self);
        recorder.emit_all(creation);
        recorder.emit_all(raised);
        recorder.record_claims(group, consumer, &claims, now_ms);
        Ok(recorder.finish(outcome))
    }

    /// `XAUTOCLAIM`: scans at most 10 × `count` PEL entries from `start`, claiming for
    /// `consumer` those idle at least `min_idle_ms` until `count` entries were claimed or found
    /// deleted (deleted ones are dropped). Entries that reached the group's delivery limit are
    /// skipped.
    pub fn auto_claim<S: EntrySource + ?Sized>(
        &mut self,
        source: &S,
        group: &[u8],
        consumer: &[u8],
        request: AutoClaim,
        now_ms: u64,
    ) -> Result<Applied<AutoClaimOutcome>, GroupError> {
        if request.count == 0 {
            return Err(GroupError::ZeroCount);
        }
        let state = self.group(group)?;
        let creation = state.creation(group, consumer, now_ms)?;
        let outcome = state.plan_auto_claim(source, request, now_ms);
        let claims = Claims {
            claimed: &outcome.claimed,
            deleted: &outcome.deleted,
            delivered_ms: now_ms,
            due_ms: state.policy.deadline(now_ms),
            count: request.delivery_count(),
        };
        let mut recorder = Recorder::new(self);
        recorder.emit_all(creation);
        recorder.record_claims(group, consumer, &claims, now_ms);
        Ok(recorder.finish(outcome))
    }
}

impl AutoClaim {
    fn delivery_count(&self) -> DeliveryCount {
        if self.justid {
            DeliveryCount::Keep
        } else {
            DeliveryCount::Increment
        }
    }
}

/// What a claim records: the entries taken and dropped, and how the taken ones change.
struct Claims<'a> {
    claimed: &'a [Delivery],
    deleted: &'a [StreamId],
    delivered_ms: u64,
    due_ms: Option<u64>,
    count: DeliveryCount,
}

impl Group {
    /// The event creating `consumer`, or `None` if it exists.
    fn creation(
        &self,
        group: &[u8],
        consumer: &[u8],
        now_ms: u64,
    ) -> Result<Option<GroupEvent>, GroupError> {
        check_name(consumer)?;
        if self.consumers.id(consumer).is_some() {
            return Ok(None);
        }
        if self.consumers.is_full() {
            return Err(GroupError::TooManyConsumers);
        }
        Ok(Some(GroupEvent::ConsumerCreated {
            group: group.to_vec(),
            consumer: consumer.to_vec(),
            seen_ms: now_ms,
            active_ms: None,
        }))
    }

    /// Which of `ids` an `XCLAIM` takes, and which it drops as deleted.
    fn plan_claim<S: EntrySource + ?Sized>(
        &self,
        source: &S,
        ids: &[StreamId],
        options: ClaimOptions,
        now_ms: u64,
    ) -> ClaimOutcome {
        let count = options.count();
        let mut outcome = ClaimOutcome::default();
        let mut visited = HashSet::new();
        for &id in ids {
            if !visited.insert(id) {
                continue;
            }
            let pending = self.pel.get(id);
            let Some(offset) = source.lookup(id) else {
                if pending.is_some() {
                    outcome.deleted.push(id);
                }
                continue;
            };
            let before = match pending {
                Some(entry) if entry.idle_ms(now_ms) < options.min_idle_ms => continue,
                Some(entry) => Some(entry),
                None if options.force => None,
                None => continue,
            };
            outcome.claimed.push(Delivery {
                id,
                offset,
                // A forced entry counts as delivered once before, as in Redis.
                deliveries: count.after(before.map_or(1, |entry| entry.deliveries)),
                idle_ms: before.map(|entry| entry.idle_ms(now_ms)),
            });
        }
        outcome
    }

    /// What an `XAUTOCLAIM` takes and drops, and where the next one starts.
    fn plan_auto_claim<S: EntrySource + ?Sized>(
        &self,
        source: &S,
        request: AutoClaim,
        now_ms: u64,
    ) -> AutoClaimOutcome {
        let count = request.delivery_count();
        let mut outcome = AutoClaimOutcome::default();
        let mut remaining = request.count;
        let mut attempts = request.count.saturating_mul(AUTO_CLAIM_ATTEMPTS_FACTOR);
        let mut scan = self.pel.iter_from(Bound::Included(request.start));
        outcome.next = loop {
            if attempts == 0 || remaining == 0 {
                break scan.next().map_or(StreamId::MIN, |(id, _)| id);
            }
            attempts -= 1;
            let Some((id, entry)) = scan.next() else {
                break StreamId::MIN;
            };
            let Some(offset) = source.lookup(id) else {
                outcome.deleted.push(id);
                remaining -= 1;
                continue;
            };
            if entry.idle_ms(now_ms) < request.min_idle_ms
                || self.policy.is_exhausted(entry.deliveries)
            {
                continue;
            }
            outcome.claimed.push(Delivery {
                id,
                offset,
                deliveries: count.after(entry.deliveries),
                idle_ms: Some(entry.idle_ms(now_ms)),
            });
            remaining -= 1;
        };
        outcome
    }

    /// The distinct IDs among `ids` that are pending (and owned by `owner`, if given), in the
    /// order first listed.
    pub(super) fn pending_among(
        &self,
        ids: &[StreamId],
        owner: Option<ConsumerId>,
    ) -> Vec<StreamId> {
        let mut visited = HashSet::new();
        ids.iter()
            .copied()
            .filter(|id| {
                self.pel
                    .get(*id)
                    .is_some_and(|entry| owner.is_none_or(|owner| entry.owner == owner))
                    && visited.insert(*id)
            })
            .collect()
    }

    /// Whether [`eligible`](Self::eligible) would name any entry.
    pub(crate) fn has_eligible(&self, claim_min_idle_ms: Option<u64>, now_ms: u64) -> bool {
        let due = self
            .pel
            .earliest(Clock::Due)
            .is_some_and(|due_ms| due_ms <= now_ms);
        let idle = claim_min_idle_ms.is_some_and(|min_idle| {
            self.pel
                .earliest(Clock::Delivery)
                .is_some_and(|delivered_ms| delivered_ms.saturating_add(min_idle) <= now_ms)
        });
        due || idle
    }

    /// IDs of pending entries eligible for redelivery at `now_ms`, in the order they became
    /// eligible: due entries at their due time, and (with a claim minimum idle time) idle ones
    /// at delivery time + that minimum. An entry may appear twice.
    fn eligible(
        &self,
        claim_min_idle_ms: Option<u64>,
        now_ms: u64,
    ) -> impl Iterator<Item = StreamId> {
        let due = self.pel.by_time(Clock::Due, now_ms);
        let idle = claim_min_idle_ms
            .and_then(|min_idle| Some((now_ms.checked_sub(min_idle)?, min_idle)))
            .into_iter()
            .flat_map(|(delivered_by, min_idle)| {
                self.pel
                    .by_time(Clock::Delivery, delivered_by)
                    .map(move |(delivered_ms, id)| (delivered_ms.saturating_add(min_idle), id))
            });
        merge_ascending(due, idle).map(|(_, id)| id)
    }

    fn plan_read<S: EntrySource + ?Sized>(
        &self,
        source: &S,
        request: ReadNew,
        now_ms: u64,
    ) -> ReadPlan {
        let redeliveries = self.plan_redeliveries(source, request, now_ms);
        let fresh = if redeliveries.scan_limited {
            Vec::new()
        } else {
            let room = self.room_for_new(
                request,
                redeliveries.entries.len(),
                redeliveries.deleted.len(),
            );
            let handled: HashSet<StreamId> = redeliveries
                .entries
                .iter()
                .map(|entry| entry.id)
                .chain(redeliveries.exhausted.iter().copied())
                .chain(redeliveries.dead_letters.iter().map(|letter| letter.id))
                .collect();
            self.plan_new(source, room, &handled)
        };
        ReadPlan {
            redeliveries,
            fresh,
            due_ms: self.policy.deadline(now_ms),
            noack: request.noack,
        }
    }

    /// Decides what happens to each eligible entry, without changing anything.
    fn plan_redeliveries<S: EntrySource + ?Sized>(
        &self,
        source: &S,
        request: ReadNew,
        now_ms: u64,
    ) -> ReadOutcome {
        let mut outcome = ReadOutcome::default();
        let scan_limit = request
            .max
            .saturating_mul(READ_SCAN_FACTOR)
            .max(MIN_READ_SCAN);
        let mut undeliverable = 0;
        let mut visited = HashSet::new();
        for id in self.eligible(request.claim_min_idle_ms, now_ms) {
            if outcome.entries.len() >= request.max {
                break;
            }
            if undeliverable >= scan_limit {
                outcome.scan_limited = true;
                break;
            }
            if !visited.insert(id) {
                continue;
            }
            let Some(entry) = self.pel.get(id) else {
                continue;
            };
            let Some(offset) = source.lookup(id) else {
                outcome.deleted.push(id);
                undeliverable += 1;
                continue;
            };
            if self.policy.is_exhausted(entry.deliveries) {
                undeliverable += 1;
                if self.policy.dead_letter.is_some() {
                    outcome.dead_letters.push(DeadLetter {
                        id,
                        offset,
                        deliveries: entry.deliveries,
                    });
                } else {
                    outcome.exhausted.push(id);
                }
                continue;
            }
            outcome.entries.push(Delivery {
                id,
                offset,
                deliveries: entry.deliveries.saturating_add(1),
                idle_ms: Some(entry.idle_ms(now_ms)),
            });
        }
        outcome
    }

    /// How many new entries a read may still hand out.
    fn room_for_new(&self, request: ReadNew, redelivered: usize, dropped: usize) -> usize {
        let room = request.max.saturating_sub(redelivered);
        match self.policy.max_ack_pending {
            Some(limit) if !request.noack => {
                let pending = self.pel.len().saturating_sub(dropped) as u64;
                let free = usize::try_from(limit.saturating_sub(pending)).unwrap_or(usize::MAX);
                room.min(free)
            }
            _ => room,
        }
    }

    /// Up to `room` entries after the group's position, with the read counter Redis would keep
    /// after each; those in `handled` are passed without being handed out.
    fn plan_new<S: EntrySource + ?Sized>(
        &self,
        source: &S,
        room: usize,
        handled: &HashSet<StreamId>,
    ) -> Vec<NewEntry> {
        if room == 0 {
            return Vec::new();
        }
        let facts = source.facts();
        let mut last = self.last_delivered;
        let mut entries_read = self.entries_read;
        let mut fresh = Vec::new();
        for (id, offset) in source.entries_after(last, room) {
            // IDs must grow past the group's position: anything else from the source is ignored
            // rather than moving the group backwards.
            if id <= last || fresh.len() == room {
                continue;
            }
            entries_read = facts.entries_read_after(entries_read, id);
            last = id;
            fresh.push(NewEntry {
                id,
                offset,
                entries_read,
                handed_out: !handled.contains(&id),
            });
        }
        fresh
    }
}

impl Recorder<'_> {
    fn emit_all(&mut self, events: impl IntoIterator<Item = GroupEvent>) {
        for event in events {
            self.emit(event);
        }
    }

    /// Emits a read's events and returns what it handed out.
    fn record_read(
        &mut self,
        group: &[u8],
        consumer: &[u8],
        plan: ReadPlan,
        now_ms: u64,
    ) -> ReadOutcome {
        let mut outcome = plan.redeliveries;
        self.emit_batches(&outcome.deleted, |ids| GroupEvent::Dropped {
            group: group.to_vec(),
            ids,
        });
        self.emit_batches(&outcome.exhausted, |ids| GroupEvent::Exhausted {
            group: group.to_vec(),
            ids,
        });
        let redelivered: Vec<StreamId> = outcome.entries.iter().map(|entry| entry.id).collect();
        self.emit_batches(&redelivered, |ids| GroupEvent::Redelivered {
            group: group.to_vec(),
            consumer: consumer.to_vec(),
            time_ms: now_ms,
            due_ms: plan.due_ms,
            ids,
        });
        // With NOACK nothing enters the PEL: one event moves the group's position.
        let batch_len = if plan.noack {
            usize::MAX
        } else {
            MAX_EVENT_BATCH
        };
        for batch in plan.fresh.chunks(batch_len) {
            let Some(last) = batch.last() else {
                continue;
            };
            let handed_out = batch.iter().filter(|entry| entry.handed_out && !plan.noack);
            self.emit(GroupEvent::NewDelivered {
                group: group.to_vec(),
                consumer: consumer.to_vec(),
                time_ms: now_ms,
                due_ms: plan.due_ms,
                last_delivered: last.id,
                entries_read: last.entries_read,
                entries: handed_out.map(|entry| (entry.id, entry.offset)).collect(),
            });
        }
        let handed_out = plan.fresh.iter().filter(|entry| entry.handed_out);
        outcome.entries.extend(handed_out.map(|entry| Delivery {
            id: entry.id,
            offset: entry.offset,
            deliveries: 1,
            idle_ms: None,
        }));
        outcome
    }

    /// Emits a claim's events: deleted entries dropped, claimed ones moved to `consumer`.
    fn record_claims(&mut self, group: &[u8], consumer: &[u8], claims: &Claims<'_>, now_ms: u64) {
        self.emit_batches(claims.deleted, |ids| GroupEvent::Dropped {
            group: group.to_vec(),
            ids,
        });
        let entries: Vec<(StreamId, u64)> = claims
            .claimed
            .iter()
            .map(|claimed| (claimed.id, claimed.offset))
            .collect();
        self.emit_batches(&entries, |entries| GroupEvent::Claimed {
            group: group.to_vec(),
            consumer: consumer.to_vec(),
            time_ms: now_ms,
            delivered_ms: claims.delivered_ms,
            due_ms: claims.due_ms,
            count: claims.count,
            entries,
        });
        self.mark_seen(group, consumer, now_ms);
    }

    /// Records an interaction of `consumer` unless an event of this operation already did.
    fn mark_seen(&mut self, group: &[u8], consumer: &[u8], now_ms: u64) {
        let seen_ms = self
            .state
            .groups
            .get(group)
            .and_then(|state| state.consumers.by_name(consumer))
            .map(|state| state.seen_ms);
        if seen_ms != Some(now_ms) {
            self.emit(GroupEvent::ConsumerSeen {
                group: group.to_vec(),
                consumer: consumer.to_vec(),
                time_ms: now_ms,
            });
        }
    }
}

/// Merges two ascending sequences into one.
fn merge_ascending<T: Ord>(
    first: impl Iterator<Item = T>,
    second: impl Iterator<Item = T>,
) -> impl Iterator<Item = T> {
    let mut first = first.peekable();
    let mut second = second.peekable();
    std::iter::from_fn(move || match (first.peek(), second.peek()) {
        (Some(a), Some(b)) if b < a => second.next(),
        (Some(_), _) => first.next(),
        (None, _) => second.next(),
    })
}

#[cfg(test)]
mod tests {
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
                HistoryEntry::Live(Delivery {
                    id: id(1),
                    offset: 0,
                    deliveries: 2,
                    idle_ms: Some(7)
                }),
                HistoryEntry::Deleted(id(2)),
                HistoryEntry::Live(Delivery {
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
            [Delivery {
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
}
