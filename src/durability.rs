//! When data reaches the disk: the durability policy and the group-commit flusher.
//!
//! Writers put bytes into memory (the segment map, a journal's page cache) and then, depending on
//! the policy, ask the [`Syncer`] to make them durable. The syncer runs one background thread
//! that flushes every object asked for since its last round, then completes every ticket issued
//! before that round started: concurrent writers share one msync/fdatasync (group commit), so
//! throughput grows with concurrency instead of being capped at one write per flush.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;

/// How eagerly writes are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A write returns only once it is on disk (msync/fdatasync), shared by concurrent writers.
    Always,
    /// A background flusher writes everything out every this many milliseconds (Redis's
    /// `appendfsync everysec` is `Interval(1000)`): a crash loses at most about that much.
    Interval(u64),
    /// The operating system decides; a clean shutdown still flushes everything.
    Never,
}

/// A flush failed: what was written may not be on disk.
#[derive(Debug, Clone, thiserror::Error)]
#[error("flush to disk failed: {0}")]
pub struct FlushError(pub Arc<str>);

impl FlushError {
    /// Wraps any error's message.
    pub fn from_error(error: &dyn std::error::Error) -> Self {
        FlushError(error.to_string().into())
    }
}

/// Something whose written data can be forced to disk.
pub trait Flush: Send + Sync {
    /// Makes everything written to this object so far durable.
    fn flush(&self) -> Result<(), FlushError>;
}

/// Writes whose flush a caller collects, to make them durable together before it acknowledges
/// any of them: a server answering a pipeline of commands pays one group-commit round for the
/// whole pipeline, not one per write. Filled through [`Commit::Into`], emptied by
/// [`Syncer::complete`].
#[derive(Default)]
pub(crate) struct CommitBatch {
    pending: Mutex<Vec<Arc<dyn Flush>>>,
}

impl CommitBatch {
    fn add(&self, object: &Arc<dyn Flush>) {
        add_dirty(&mut self.pending.lock(), object);
    }

    fn take(&self) -> Vec<Arc<dyn Flush>> {
        std::mem::take(&mut *self.pending.lock())
    }

    /// Forgets what the batch holds: for writes to a store that closed (and so flushed them)
    /// since.
    pub(crate) fn discard(&self) {
        self.pending.lock().clear();
    }
}

impl std::fmt::Debug for CommitBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CommitBatch")
            .field(&self.pending.lock().len())
            .finish()
    }
}

/// How a write is made durable under [`Durability::Always`]: every write method of a stream or
/// group takes one, so who waits for the disk is stated at the call, never ambient.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Commit<'a> {
    /// The write waits for its flush before it returns (what the library's methods do).
    Wait,
    /// The write records what must be flushed in the batch; the caller completes the batch
    /// before acknowledging anything the write did.
    Into(&'a CommitBatch),
}

/// What the flusher has done since it started: how well group commit shares its flushes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Flush rounds run.
    pub rounds: u64,
    /// Commit requests those rounds completed: one per write that waited for the disk, or per
    /// pipelined batch of a server connection. `requests / rounds` is how many shared a flush.
    pub requests: u64,
    /// Time spent flushing, in microseconds.
    pub flush_us: u64,
    /// The longest round, in microseconds.
    pub max_flush_us: u64,
}

impl FlushStats {
    fn add_round(&mut self, requests: u64, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.rounds += 1;
        self.requests += requests;
        self.flush_us = self.flush_us.saturating_add(micros);
        self.max_flush_us = self.max_flush_us.max(micros);
    }
}

/// A position in the sequence of flush requests; complete once a flush round covering it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Ticket(u64);

struct State {
    dirty: Vec<Arc<dyn Flush>>,
    requested: u64,
    completed: u64,
    failure: Option<(u64, FlushError)>,
    shutdown: bool,
    /// The round that will cover the requests made from now until the flusher starts it.
    next_round: Arc<Round>,
    stats: FlushStats,
}

/// One flush round, as its async waiters see it. Each waits on the round that covers its
/// request, so the end of a round wakes exactly the requests it made durable: with many
/// connections in flight, waking every waiter at every round would mostly wake requests
/// that the next round covers.
#[derive(Default)]
struct Round {
    ended: AtomicBool,
    notify: Notify,
}

impl Round {
    fn end(&self) {
        self.ended.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    async fn ended(&self) {
        // Registered before the check: an end between the two still wakes this waiter.
        let notified = self.notify.notified();
        if !self.ended.load(Ordering::Acquire) {
            notified.await;
        }
    }
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    done: Condvar,
    interval: Option<Duration>,
}

/// The group-commit flusher of one store.
pub struct Syncer {
    shared: Arc<Shared>,
    policy: Durability,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer")
            .field("policy", &self.policy)
            .finish()
    }
}

impl Syncer {
    /// Starts the flusher thread (none for [`Durability::Never`]).
    pub fn start(policy: Durability) -> std::io::Result<Syncer> {
        let interval = match policy {
            Durability::Interval(ms) => Some(Duration::from_millis(ms.max(1))),
            _ => None,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                dirty: Vec::new(),
                requested: 0,
                completed: 0,
                failure: None,
                shutdown: false,
                next_round: Arc::default(),
                stats: FlushStats::default(),
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            interval,
        });
        let thread = match policy {
            Durability::Never => None,
            _ => {
                let shared = Arc::clone(&shared);
                Some(
                    std::thread::Builder::new()
                        .name("weir-flusher".into())
                        .spawn(move || run_flusher(&shared))?,
                )
            }
        };
        Ok(Syncer {
            shared,
            policy,
            thread,
        })
    }

    /// What the flusher has done so far.
    pub fn stats(&self) -> FlushStats {
        self.shared.state.lock().stats
    }

    /// The policy this syncer enforces.
    pub fn policy(&self) -> Durability {
        self.policy
    }

    /// Records that `object` has unflushed data, for the next interval flush.
    pub fn mark_dirty(&self, object: &Arc<dyn Flush>) {
        if self.thread.is_none() {
            return;
        }
        let mut state = self.shared.state.lock();
        add_dirty(&mut state.dirty, object);
    }

    /// Asks for `object` to be flushed; the ticket completes when it is, at the end of the
    /// round returned with it.
    fn request(&self, object: &Arc<dyn Flush>) -> (Ticket, Arc<Round>) {
        let mut state = self.shared.state.lock();
        add_dirty(&mut state.dirty, object);
        state.requested += 1;
        let ticket = Ticket(state.requested);
        let round = Arc::clone(&state.next_round);
        drop(state);
        self.shared.work.notify_one();
        (ticket, round)
    }

    /// Makes a batch's commits durable (under [`Durability::Always`]) with one wait, and empties
    /// it for the next batch.
    pub(crate) async fn complete(&self, batch: &CommitBatch) -> Result<(), FlushError> {
        match self.request_batch(batch) {
            Some((ticket, round)) => self.wait_async(ticket, round).await,
            None => Ok(()),
        }
    }

    /// The blocking form of [`complete`](Self::complete), for a thread that may block.
    #[cfg(feature = "cluster")]
    pub(crate) fn complete_now(&self, batch: &CommitBatch) -> Result<(), FlushError> {
        match self.request_batch(batch) {
            Some((ticket, _)) => self.wait(ticket),
            None => Ok(()),
        }
    }

    /// Empties `batch`: under [`Durability::Always`], asks for each of its objects to be flushed
    /// and returns the last ticket, whose round covers them all (`None` when there is nothing to
    /// wait for); otherwise marks them dirty.
    fn request_batch(&self, batch: &CommitBatch) -> Option<(Ticket, Arc<Round>)> {
        let pending = batch.take();
        if self.policy != Durability::Always {
            for object in &pending {
                self.mark_dirty(object);
            }
            return None;
        }
        pending
            .iter()
            .fold(None, |_, object| Some(self.request(object)))
    }

    /// Under [`Durability::Always`], flushes `object` and waits, or records it in the batch
    /// (as `commit` says); otherwise marks it dirty.
    pub(crate) fn commit(
        &self,
        object: &Arc<dyn Flush>,
        commit: Commit<'_>,
    ) -> Result<(), FlushError> {
        match (self.policy, commit) {
            (Durability::Always, Commit::Into(batch)) => {
                batch.add(object);
                Ok(())
            }
            (Durability::Always, Commit::Wait) => {
                let (ticket, _) = self.request(object);
                self.wait(ticket)
            }
            _ => {
                self.mark_dirty(object);
                Ok(())
            }
        }
    }

    /// The async form of waiting for a commit: under [`Durability::Always`], flushes `object`
    /// without blocking a thread; otherwise marks it dirty.
    pub(crate) async fn commit_async(&self, object: &Arc<dyn Flush>) -> Result<(), FlushError> {
        if self.policy != Durability::Always {
            self.mark_dirty(object);
            return Ok(());
        }
        let (ticket, round) = self.request(object);
        self.wait_async(ticket, round).await
    }

    /// Asks now for `object` to be flushed and returns what resolves once it is durable (under
    /// [`Durability::Always`]; otherwise `object` is only marked dirty and the wait returns at
    /// once). For a writer that goes on writing while the flush runs: asking at the write, not at
    /// the first poll of a wait, lets its next writes join the same flush round.
    #[cfg(feature = "cluster")]
    pub(crate) fn request_flush(self: &Arc<Self>, object: &Arc<dyn Flush>) -> PendingFlush {
        if self.policy != Durability::Always {
            self.mark_dirty(object);
            return PendingFlush {
                syncer: Arc::clone(self),
                ticket: None,
            };
        }
        PendingFlush {
            syncer: Arc::clone(self),
            ticket: Some(self.request(object)),
        }
    }

    /// Blocks until the ticket's flush round has finished.
    fn wait(&self, ticket: Ticket) -> Result<(), FlushError> {
        let mut state = self.shared.state.lock();
        loop {
            if let Some(result) = outcome(&state, ticket) {
                return result;
            }
            self.shared.done.wait(&mut state);
        }
    }

    /// Waits, without blocking a thread, until the ticket's flush round has finished.
    async fn wait_async(&self, ticket: Ticket, mut round: Arc<Round>) -> Result<(), FlushError> {
        loop {
            round = {
                let state = self.shared.state.lock();
                if let Some(result) = outcome(&state, ticket) {
                    return result;
                }
                // Only until `round` ends, which completes the ticket: a later round is never
                // needed, but waiting for it would still be correct.
                if round.ended.load(Ordering::Acquire) {
                    Arc::clone(&state.next_round)
                } else {
                    round
                }
            };
            round.ended().await;
        }
    }
}

/// A flush asked for when data was written (`Syncer::request_flush`): waiting for it returns
/// once that data is durable.
#[cfg(feature = "cluster")]
pub struct PendingFlush {
    syncer: Arc<Syncer>,
    ticket: Option<(Ticket, Arc<Round>)>,
}

#[cfg(feature = "cluster")]
impl PendingFlush {
    /// Waits, without blocking a thread, until the flush asked for has finished.
    pub async fn wait(self) -> Result<(), FlushError> {
        match self.ticket {
            Some((ticket, round)) => self.syncer.wait_async(ticket, round).await,
            None => Ok(()),
        }
    }
}

#[cfg(feature = "cluster")]
impl std::fmt::Debug for PendingFlush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingFlush")
            .field("ticket", &self.ticket.as_ref().map(|(ticket, _)| ticket.0))
            .finish()
    }
}

fn outcome(state: &State, ticket: Ticket) -> Option<Result<(), FlushError>> {
    if let Some((first_failed, error)) = &state.failure
        && ticket.0 >= *first_failed
    {
        return Some(Err(error.clone()));
    }
    if state.completed >= ticket.0 {
        return Some(Ok(()));
    }
    if state.shutdown {
        return Some(Err(FlushError(
            "the store was closed before the flush".into(),
        )));
    }
    None
}

fn add_dirty(dirty: &mut Vec<Arc<dyn Flush>>, object: &Arc<dyn Flush>) {
    if !dirty.iter().any(|known| Arc::ptr_eq(known, object)) {
        dirty.push(Arc::clone(object));
    }
}

fn run_flusher(shared: &Shared) {
    loop {
        let mut state = shared.state.lock();
        while state.requested == state.completed && !state.shutdown {
            match shared.interval {
                Some(interval) => {
                    let timed_out = shared.work.wait_for(&mut state, interval).timed_out();
                    if timed_out && !state.dirty.is_empty() {
                        break;
                    }
                }
                None => shared.work.wait(&mut state),
            }
        }
        let batch = std::mem::take(&mut state.dirty);
        let covered = state.requested;
        let round = std::mem::take(&mut state.next_round);
        let first_in_batch = state.completed + 1;
        let stopping = state.shutdown;
        drop(state);

        let began = std::time::Instant::now();
        let result = batch.iter().try_for_each(|object| object.flush());
        let took = began.elapsed();
        drop(batch);

        let mut state = shared.state.lock();
        let requests = covered - state.completed;
        state.stats.add_round(requests, took);
        if let Err(error) = result
            && state.failure.is_none()
        {
            tracing::error!(%error, "flush failed: durable writes stop until restart");
            state.failure = Some((first_in_batch, error));
        }
        state.completed = covered;
        let finished = stopping && state.dirty.is_empty() && state.requested == covered;
        if finished {
            // Nothing waits on it now, and nothing will: later requests see the shutdown.
            state.next_round.end();
        }
        drop(state);
        shared.done.notify_all();
        round.end();
        if finished {
            return;
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shared.state.lock().shutdown = true;
        self.shared.work.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counter {
        flushes: AtomicUsize,
        fail: bool,
    }

    impl Flush for Counter {
        fn flush(&self) -> Result<(), FlushError> {
            self.flushes.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            if self.fail {
                Err(FlushError("disk on fire".into()))
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn concurrent_commits_share_flushes() {
        let syncer = Arc::new(Syncer::start(Durability::Always).unwrap());
        let counter = Arc::new(Counter::default());
        let object: Arc<dyn Flush> = counter.clone();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let syncer = Arc::clone(&syncer);
                let object = Arc::clone(&object);
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        syncer.commit(&object, Commit::Wait).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let flushes = counter.flushes.load(Ordering::SeqCst);
        assert!(
            (1..400).contains(&flushes),
            "{flushes} flushes for 400 commits"
        );
    }

    #[test]
    fn a_failed_flush_fails_its_waiters_and_every_later_one() {
        let syncer = Syncer::start(Durability::Always).unwrap();
        let object: Arc<dyn Flush> = Arc::new(Counter {
            fail: true,
            ..Counter::default()
        });
        assert!(syncer.commit(&object, Commit::Wait).is_err());
        let healthy: Arc<dyn Flush> = Arc::new(Counter::default());
        assert!(syncer.commit(&healthy, Commit::Wait).is_err());
    }

    #[test]
    fn interval_flushes_dirty_objects_in_the_background() {
        let syncer = Syncer::start(Durability::Interval(5)).unwrap();
        let counter = Arc::new(Counter::default());
        let object: Arc<dyn Flush> = counter.clone();
        syncer.commit(&object, Commit::Wait).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while counter.flushes.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(counter.flushes.load(Ordering::SeqCst) >= 1);
    }

    #[tokio::test]
    async fn stats_count_rounds_and_the_requests_they_completed() {
        let syncer = Syncer::start(Durability::Always).unwrap();
        let object: Arc<dyn Flush> = Arc::new(Counter::default());
        for _ in 0..3 {
            syncer.commit(&object, Commit::Wait).unwrap();
        }
        let batch = CommitBatch::default();
        for _ in 0..10 {
            syncer.commit(&object, Commit::Into(&batch)).unwrap();
        }
        syncer.complete(&batch).await.unwrap();
        let stats = syncer.stats();
        assert_eq!((stats.rounds, stats.requests), (4, 4));
        assert!(
            stats.max_flush_us >= 2_000,
            "each flush sleeps 2 ms: {stats:?}"
        );
        assert!(stats.flush_us >= 4 * 2_000, "{stats:?}");
    }

    #[tokio::test]
    async fn deferred_commits_wait_once_at_completion() {
        let syncer = Syncer::start(Durability::Always).unwrap();
        let counter = Arc::new(Counter::default());
        let object: Arc<dyn Flush> = counter.clone();
        let batch = CommitBatch::default();
        for _ in 0..100 {
            syncer.commit(&object, Commit::Into(&batch)).unwrap();
        }
        assert_eq!(
            counter.flushes.load(Ordering::SeqCst),
            0,
            "nothing flushed yet"
        );
        syncer.complete(&batch).await.unwrap();
        assert_eq!(
            counter.flushes.load(Ordering::SeqCst),
            1,
            "one flush for 100 commits"
        );
        syncer.complete(&batch).await.unwrap();
        assert_eq!(
            counter.flushes.load(Ordering::SeqCst),
            1,
            "a completed batch is empty"
        );
    }

    /// Counts flushes begun and ended.
    #[derive(Default)]
    struct Rounds {
        begun: AtomicUsize,
        ended: AtomicUsize,
    }

    impl Flush for Rounds {
        fn flush(&self) -> Result<(), FlushError> {
            self.begun.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_micros(300));
            self.ended.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_async_commits_each_wait_for_a_flush_begun_after_them() {
        let syncer = Arc::new(Syncer::start(Durability::Always).unwrap());
        let rounds = Arc::new(Rounds::default());
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (syncer, rounds) = (Arc::clone(&syncer), Arc::clone(&rounds));
                tokio::spawn(async move {
                    let object: Arc<dyn Flush> = rounds.clone();
                    for _ in 0..20 {
                        let begun_before = rounds.begun.load(Ordering::SeqCst);
                        syncer.commit_async(&object).await.unwrap();
                        assert!(rounds.ended.load(Ordering::SeqCst) > begun_before);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let flushes = rounds.ended.load(Ordering::SeqCst);
        assert!(flushes < 320, "{flushes} flushes for 320 commits");
    }

    #[tokio::test]
    async fn a_requested_flush_runs_before_anyone_waits_for_it() {
        let syncer = Arc::new(Syncer::start(Durability::Always).unwrap());
        let counter = Arc::new(Counter::default());
        let object: Arc<dyn Flush> = counter.clone();
        let pending = syncer.request_flush(&object);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while counter.flushes.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(counter.flushes.load(Ordering::SeqCst), 1);
        pending.wait().await.unwrap();
        let lazy = Arc::new(Syncer::start(Durability::Never).unwrap());
        lazy.request_flush(&object).wait().await.unwrap();
        assert_eq!(
            counter.flushes.load(Ordering::SeqCst),
            1,
            "no flush under Never"
        );
    }

    #[tokio::test]
    async fn async_commit_resolves_after_the_flush() {
        let syncer = Syncer::start(Durability::Always).unwrap();
        let counter = Arc::new(Counter::default());
        let object: Arc<dyn Flush> = counter.clone();
        syncer.commit_async(&object).await.unwrap();
        assert!(counter.flushes.load(Ordering::SeqCst) >= 1);
    }
}
