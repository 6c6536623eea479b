//! The Redis protocol (RESP): a request parser with hard limits and a reply encoder for RESP2
//! and RESP3. Pure: no I/O; parsing allocates only the argument list of a complete command.
//!
//! `request` parses what clients send; `reply` encodes what the server answers.

mod reply;
mod request;

pub use reply::{BODY_FIELD, EntryFields, Protocol, ReplyEncoder, Value};
pub use request::{Limits, ParseError, RequestParser, parse_command};
