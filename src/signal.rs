//! Wake-ups for readers waiting for new data (a stream's appends, the server's writes), without
//! polling.
//!
//! A change bumps an atomic counter and, only when someone waits, takes the lock and wakes the
//! waiters: every append notifies, and locking a mutex and a watch channel per append with
//! nobody waiting cost more than writing the entry. No wake-up is lost: the notifier bumps the
//! counter and then reads the number of waiters; a waiter counts itself and then reads the
//! counter (all sequentially consistent), so either the notifier sees the waiter and wakes it
//! under the lock, or the waiter sees the new count and does not wait.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

/// A counter bumped after every change, waited on by blocking and async readers.
#[derive(Debug)]
pub(crate) struct ChangeSignal {
    generation: AtomicU64,
    /// Blocking and async waiters between counting themselves in and out.
    waiters: AtomicUsize,
    /// Held to wake waiters, and by a blocking waiter from its check of the counter until it
    /// sleeps, so that a wake-up cannot fall in between.
    lock: Mutex<()>,
    changed: Condvar,
    /// Bumped (under `lock`) for async waiters.
    watch: watch::Sender<u64>,
}

/// Counts a waiter in for as long as it lives (an async wait may be dropped at any await).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(waiters: &'a AtomicUsize) -> Self {
        waiters.fetch_add(1, Ordering::SeqCst);
        Waiting(waiters)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ChangeSignal {
    pub(crate) fn new() -> Self {
        ChangeSignal {
            generation: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            changed: Condvar::new(),
            watch: watch::channel(0).0,
        }
    }

    /// The current generation: read it before looking for entries, then wait for a change.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Wakes every waiter. Called after every append or write command: with nobody waiting, it
    /// costs one atomic increment.
    pub(crate) fn notify(&self) {
        let now = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        if self.waiters.load(Ordering::SeqCst) == 0 {
            return;
        }
        let guard = self.lock.lock();
        self.watch.send_modify(|value| *value = now);
        drop(guard);
        self.changed.notify_all();
    }

    /// Blocks until the generation moves past `seen` or `deadline` passes; returns whether it
    /// moved.
    pub(crate) fn wait_past(&self, seen: u64, deadline: Instant) -> bool {
        let _waiting = Waiting::new(&self.waiters);
        let mut guard = self.lock.lock();
        while self.generation() == seen {
            if self.changed.wait_until(&mut guard, deadline).timed_out() {
                break;
            }
        }
        self.generation() != seen
    }

    /// Waits, without blocking a thread, until the generation moves past `seen`.
    pub(crate) async fn changed_past(&self, seen: u64) {
        let _waiting = Waiting::new(&self.waiters);
        let mut receiver = {
            // Under the lock notifiers send under: a send after this is seen by `changed`, and
            // one before it bumped the counter first, which the check below reads.
            let _guard = self.lock.lock();
            self.watch.subscribe()
        };
        while self.generation() == seen {
            if receiver.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_blocking_waiter_wakes_for_a_change_after_its_look() {
        let signal = Arc::new(ChangeSignal::new());
        for _ in 0..200 {
            let seen = signal.generation();
            let notifier = {
                let signal = Arc::clone(&signal);
                std::thread::spawn(move || signal.notify())
            };
            // A deadline far enough never to pass: a lost wake-up hangs the test, it does not
            // time it.
            let far = Instant::now() + Duration::from_secs(3600);
            assert!(signal.wait_past(seen, far));
            notifier.join().unwrap();
        }
        assert_eq!(signal.generation(), 200);
    }

    #[test]
    fn a_blocking_wait_ends_at_its_deadline_without_a_change() {
        let signal = ChangeSignal::new();
        assert!(!signal.wait_past(signal.generation(), Instant::now()));
        signal.notify();
        assert!(signal.wait_past(0, Instant::now()), "already moved");
    }

    #[test]
    fn an_async_waiter_wakes_for_a_change_after_its_look() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let signal = Arc::new(ChangeSignal::new());
        runtime.block_on(async {
            for _ in 0..200 {
                let seen = signal.generation();
                let notifier = {
                    let signal = Arc::clone(&signal);
                    tokio::spawn(async move { signal.notify() })
                };
                signal.changed_past(seen).await;
                notifier.await.unwrap();
            }
        });
        assert_eq!(signal.waiters.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_dropped_async_wait_counts_itself_out() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let signal = ChangeSignal::new();
        runtime.block_on(async {
            let waiting = signal.changed_past(0);
            tokio::select! {
                () = waiting => panic!("nothing changed"),
                () = tokio::task::yield_now() => {}
            }
        });
        assert_eq!(signal.waiters.load(Ordering::SeqCst), 0);
        signal.notify();
        assert_eq!(signal.generation(), 1);
    }
}
