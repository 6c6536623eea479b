//! weir: a durable, log-structured queue engine.
//!
//! Producers append entries to named streams; every entry gets a dense offset and a Redis-style
//! `ms-seq` ID, is checksummed, and lives in preallocated, memory-mapped segment files. Nothing
//! that was acknowledged under [`Durability::Always`] is lost to a crash, and recovery skips
//! damaged records without giving up the good ones around them.
//!
//! ```
//! use std::ops::Bound;
//! use weir::{Durability, Message, Store, StoreOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let options = StoreOptions { durability: Durability::Always, ..StoreOptions::default() };
//! let store = Store::open_with(dir.path(), options).unwrap();
//! let orders = store.stream(b"orders").unwrap();
//! orders.append(Message::new("first").header("kind", "new-order")).unwrap();
//! orders.append(Message::new("second")).unwrap();
//!
//! let entries = orders.range(Bound::Unbounded, Bound::Unbounded, 10).unwrap();
//! assert_eq!(entries.len(), 2);
//! assert_eq!(entries[0].body(), b"first");
//! store.close().unwrap();
//!
//! // Reopening after a clean close scans nothing.
//! let store = Store::open(dir.path()).unwrap();
//! assert!(store.recovery().clean);
//! assert_eq!(store.stream(b"orders").unwrap().len(), 2);
//! ```

pub mod clock;
pub mod cluster;
pub mod codec;
pub mod durability;
pub mod error;
mod fs;
pub mod group;
pub mod id;
pub mod idempotency;
pub mod inspect;
pub mod journal;
pub mod log;
pub mod record;
pub mod segment;
pub mod server;
mod signal;
pub mod store;
pub mod stream;
mod undo;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use durability::Durability;
pub use error::{ErrorKind, StoreError as Error};
pub use fs::names;
pub use group::GroupPolicy;
pub use group::durable::GroupRecovery;
pub use id::{ParseIdError, StreamId};
pub use log::{Appended, Entry, IdSpec, LogOptions, RecoveryReport, Retention};
pub use store::{Store, StoreError, StoreOptions, StoreRecovery};
pub use stream::{
    Backlog, CORRELATION_ID, Claimed, Delivery, Discard, Group, GroupStart, IdempotentAppend,
    Message, PendingDelivery, REPLY_TO, RequestError, Requester, Stream, StreamConfig,
};
