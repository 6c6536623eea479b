//! Reads: handing out new entries and redeliveries (`XREADGROUP`), and re-reading a
//! consumer's own history.

use super::*;

/// A read examines at most this many undeliverable eligible entries (vanished, exhausted, dead
/// letters) per entry it may hand out, and at least [`MIN_READ_SCAN`], so one read stays
/// bounded when many entries reach the delivery limit at once.
pub(super) const READ_SCAN_FACTOR: usize = 10;

pub(super) const MIN_READ_SCAN: usize = 1000;

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
pub struct Handout {
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
    pub entries: Vec<Handout>,
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
    Live(Handout),
    /// The log no longer holds it; it stays pending (Redis replies `[id, nil]`).
    Deleted(StreamId),
}

/// An entry after the group's position that a read passes, with the group's read counter
/// once past it.
pub(super) struct Unread {
    id: StreamId,
    offset: u64,
    entries_read: Option<u64>,
    /// False when the same read already redelivered, exhausted or dead-lettered it (possible
    /// once the group's ID was set back below pending entries): it is passed, not handed out.
    handed_out: bool,
}

/// What a read will do, decided before anything changes.
pub(super) struct ReadPlan {
    /// The redeliveries, and what happens to undeliverable eligible entries.
    redeliveries: ReadOutcome,
    /// The entries after the group's position that the read passes.
    fresh: Vec<Unread>,
    /// The deadline of every entry the read hands out.
    due_ms: Option<u64>,
    noack: bool,
}

impl GroupsState {
    /// `XREADGROUP … >`: hands `consumer` the due pending entries first (and, with
    /// `claim_min_idle_ms`, those idle that long), then new entries, creating the consumer if
    /// needed. See the [module documentation](crate::group) for the delivery limit and dead letters.
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
                Some(offset) => HistoryEntry::Live(Handout {
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
}

impl GroupState {
    /// Whether [`eligible`](Self::eligible) would name any entry.
    pub(crate) fn has_eligible(&self, claim_min_idle_ms: Option<u64>, now_ms: u64) -> bool {
        let due = self
            .pel
            .earliest(Timeline::Due)
            .is_some_and(|due_ms| due_ms <= now_ms);
        let idle = claim_min_idle_ms.is_some_and(|min_idle| {
            self.pel
                .earliest(Timeline::Delivery)
                .is_some_and(|delivered_ms| delivered_ms.saturating_add(min_idle) <= now_ms)
        });
        due || idle
    }

    /// IDs of pending entries eligible for redelivery at `now_ms`, in the order they became
    /// eligible: due entries at their due time, and (with a claim minimum idle time) idle ones
    /// at delivery time + that minimum. An entry may appear twice.
    pub(super) fn eligible(
        &self,
        claim_min_idle_ms: Option<u64>,
        now_ms: u64,
    ) -> impl Iterator<Item = StreamId> {
        let due = self.pel.by_time(Timeline::Due, now_ms);
        let idle = claim_min_idle_ms
            .and_then(|min_idle| Some((now_ms.checked_sub(min_idle)?, min_idle)))
            .into_iter()
            .flat_map(|(delivered_by, min_idle)| {
                self.pel
                    .by_time(Timeline::Delivery, delivered_by)
                    .map(move |(delivered_ms, id)| (delivered_ms.saturating_add(min_idle), id))
            });
        merge_ascending(due, idle).map(|(_, id)| id)
    }

    pub(super) fn plan_read<S: EntrySource + ?Sized>(
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
    pub(super) fn plan_redeliveries<S: EntrySource + ?Sized>(
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
            outcome.entries.push(Handout {
                id,
                offset,
                deliveries: entry.deliveries.saturating_add(1),
                idle_ms: Some(entry.idle_ms(now_ms)),
            });
        }
        outcome
    }

    /// How many new entries a read may still hand out.
    pub(super) fn room_for_new(
        &self,
        request: ReadNew,
        redelivered: usize,
        dropped: usize,
    ) -> usize {
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
    pub(super) fn plan_new<S: EntrySource + ?Sized>(
        &self,
        source: &S,
        room: usize,
        handled: &HashSet<StreamId>,
    ) -> Vec<Unread> {
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
            fresh.push(Unread {
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
    /// Emits a read's events and returns what it handed out.
    pub(super) fn record_read(
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
        outcome.entries.extend(handed_out.map(|entry| Handout {
            id: entry.id,
            offset: entry.offset,
            deliveries: 1,
            idle_ms: None,
        }));
        outcome
    }
}

/// Merges two ascending sequences into one.
pub(super) fn merge_ascending<T: Ord>(
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
