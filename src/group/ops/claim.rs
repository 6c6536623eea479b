//! Moving pending entries to another consumer: `XCLAIM` and `XAUTOCLAIM`.

use super::*;

/// `XAUTOCLAIM` examines at most this many PEL entries per entry it may return (Redis's
/// `attempts_factor`).
pub(super) const AUTO_CLAIM_ATTEMPTS_FACTOR: usize = 10;

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
    pub(super) fn delivered_ms(&self, now_ms: u64) -> u64 {
        let asked = self.time_ms.or_else(|| {
            self.idle_ms
                .map(|idle_ms| now_ms.checked_sub(idle_ms).unwrap_or(now_ms))
        });
        asked.filter(|&time_ms| time_ms <= now_ms).unwrap_or(now_ms)
    }

    pub(super) fn count(&self) -> DeliveryCount {
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
    pub claimed: Vec<Handout>,
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
    pub claimed: Vec<Handout>,
    /// Pending entries dropped because the log no longer holds them.
    pub deleted: Vec<StreamId>,
}

impl GroupsState {
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
    pub(super) fn delivery_count(&self) -> DeliveryCount {
        if self.justid {
            DeliveryCount::Keep
        } else {
            DeliveryCount::Increment
        }
    }
}

/// What a claim records: the entries taken and dropped, and how the taken ones change.
pub(super) struct Claims<'a> {
    claimed: &'a [Handout],
    deleted: &'a [StreamId],
    delivered_ms: u64,
    due_ms: Option<u64>,
    count: DeliveryCount,
}

impl GroupState {
    /// Which of `ids` an `XCLAIM` takes, and which it drops as deleted.
    pub(super) fn plan_claim<S: EntrySource + ?Sized>(
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
            outcome.claimed.push(Handout {
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
    pub(super) fn plan_auto_claim<S: EntrySource + ?Sized>(
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
            outcome.claimed.push(Handout {
                id,
                offset,
                deliveries: count.after(entry.deliveries),
                idle_ms: Some(entry.idle_ms(now_ms)),
            });
            remaining -= 1;
        };
        outcome
    }
}

impl Recorder<'_> {
    /// Emits a claim's events: deleted entries dropped, claimed ones moved to `consumer`.
    pub(super) fn record_claims(
        &mut self,
        group: &[u8],
        consumer: &[u8],
        claims: &Claims<'_>,
        now_ms: u64,
    ) {
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
}
