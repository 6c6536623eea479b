//! Wake-ups for readers waiting for new data (a stream's appends, the server's writes), without
//! polling.

use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

/// A counter bumped after every change, waited on by blocking and async readers.
#[derive(Debug)]
pub(crate) struct ChangeSignal {
    generation: Mutex<u64>,
    changed: Condvar,
    watch: watch::Sender<u64>,
}

impl ChangeSignal {
    pub(crate) fn new() -> Self {
        ChangeSignal {
            generation: Mutex::new(0),
            changed: Condvar::new(),
            watch: watch::channel(0).0,
        }
    }

    /// The current generation: read it before looking for entries, then wait for a change.
    pub(crate) fn generation(&self) -> u64 {
        *self.generation.lock()
    }

    /// Wakes every waiter. Called after every append or write command, so with nobody waiting
    /// it only bumps the counter: waking a watch channel's receivers takes several locks even
    /// when there are none, which cost more than the append itself.
    pub(crate) fn notify(&self) {
        let mut generation = self.generation.lock();
        *generation += 1;
        let now = *generation;
        // Under the lock that `changed_past` subscribes under: an async waiter either subscribed
        // before and is counted here, or subscribes after and reads `now`.
        let async_waiters = self.watch.receiver_count() > 0;
        self.watch.send_if_modified(|value| {
            *value = now;
            async_waiters
        });
        drop(generation);
        self.changed.notify_all();
    }

    /// Blocks until the generation moves past `seen` or `deadline` passes; returns whether it
    /// moved.
    pub(crate) fn wait_past(&self, seen: u64, deadline: Instant) -> bool {
        let mut generation = self.generation.lock();
        while *generation == seen {
            if self
                .changed
                .wait_until(&mut generation, deadline)
                .timed_out()
            {
                return *generation != seen;
            }
        }
        true
    }

    /// Waits, without blocking a thread, until the generation moves past `seen`.
    pub(crate) async fn changed_past(&self, seen: u64) {
        let mut receiver = {
            let _generation = self.generation.lock();
            self.watch.subscribe()
        };
        while *receiver.borrow_and_update() == seen {
            if receiver.changed().await.is_err() {
                return;
            }
        }
    }
}
