//! weir: a durable, log-structured queue engine.

pub mod clock;
pub mod id;
pub mod record;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use id::{ParseIdError, StreamId};
