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

#![warn(missing_docs)]

pub mod clock;
// The replicated cluster's layer (consensus on openraft), compiled with the default feature
// `cluster`: an application that embeds the library alone leaves it out, and openraft with it.
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod durability;
pub mod error;
mod fs;
// Test machinery: the power-loss model a fault test reverts a killed node's files with.
#[cfg(feature = "power-loss-record")]
pub use fs::power_loss;
pub mod group;
pub mod id;
pub mod idempotency;
pub mod inspect;
mod repeated;
pub mod server;
mod signal;
pub mod store;
pub mod stream;
mod undo;

// The layers below streams and the store are the engine's own. The non-default feature
// `internals` makes them public, hidden from the documentation, for the fuzz targets, the
// benches and the tests of the byte layouts, which exercise record decoding, segment recovery
// and the file formats directly; an application never needs them.
#[cfg(feature = "internals")]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod codec;
#[cfg(not(feature = "internals"))]
mod codec;
#[cfg(feature = "internals")]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod journal;
#[cfg(not(feature = "internals"))]
mod journal;
#[cfg(feature = "internals")]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod log;
#[cfg(not(feature = "internals"))]
mod log;
#[cfg(feature = "internals")]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod record;
#[cfg(not(feature = "internals"))]
mod record;
#[cfg(feature = "internals")]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod segment;
#[cfg(not(feature = "internals"))]
mod segment;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use durability::Durability;
pub use error::{ErrorKind, StoreError as Error};
pub use fs::names;
pub use group::GroupPolicy;
pub use group::durable::GroupRecovery;
pub use id::{ParseIdError, StreamId};
pub use journal::JournalDamage;
pub use log::{
    Appended, Entry, IdSpec, LogError, LogOptions, LostRange, RebuiltHeader, RecoveryReport,
    Retention, TornTail,
};
pub use store::{
    AfterMachineCrash, ReplicationMark, Store, StoreError, StoreOptions, StoreRecovery,
    TimedChanges,
};
pub use stream::{
    Backlog, CORRELATION_ID, Claimed, Delivery, Discard, Group, GroupStart, IdempotentAppend,
    Message, PendingDelivery, REPLY_TO, RequestError, Requester, Stream, StreamConfig,
};
