//! Request/response over streams.
//!
//! A [`Requester`] owns a reply stream. It appends a request to any stream with two headers,
//! [`REPLY_TO`] (the reply stream's name) and [`CORRELATION_ID`] (unique per requester), and waits
//! for an entry with the same correlation ID on its reply stream. A consumer answers with
//! [`Delivery::reply`], which appends the reply (carrying the correlation ID) to the `reply-to`
//! stream, makes it durable, and only then acknowledges the request. A responder that fails
//! between the two leaves the request pending, so it is delivered again and answered twice: the
//! requester keeps the first reply and ignores the second. Replies that arrive after their
//! request timed out are dropped the same way.
//!
//! Waiting reuses the streams' append signal: an append to the reply stream wakes every waiter,
//! which reads the new replies once for all of them (whoever wakes first files each reply under
//! its correlation ID) and takes its own.
//!
//! Reply streams are created on demand with [`reply_stream_config`]: retention removes old
//! replies, and a reply stream that nobody holds and nobody appended to for an hour (its
//! requester went away) is deleted by the store's maintenance.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use super::{Delivery, Group, Message, Stream, StreamConfig};
use crate::error::StoreError;
use crate::id::StreamId;
use crate::log::{Entry, Retention};

/// The header naming the stream a reply goes to.
pub const REPLY_TO: &str = "reply-to";
/// The header that ties a reply to its request.
pub const CORRELATION_ID: &str = "correlation-id";

/// How long a reply stream lives without appends once no requester holds it, and how old a
/// sealed segment of replies gets before retention removes it.
pub const REPLY_STREAM_TTL: Duration = Duration::from_secs(3600);

/// Replies read from the reply stream at a time.
const REPLY_BATCH: usize = 256;

/// The settings of a reply stream: idle expiry and age retention, both [`REPLY_STREAM_TTL`].
pub fn reply_stream_config() -> (StreamConfig, Retention) {
    let ttl_ms = u64::try_from(REPLY_STREAM_TTL.as_millis()).unwrap_or(u64::MAX);
    let config = StreamConfig {
        expire_idle_ms: Some(ttl_ms),
        ..StreamConfig::default()
    };
    let retention = Retention {
        max_age_ms: Some(ttl_ms),
        max_bytes: None,
    };
    (config, retention)
}

/// Applies [`reply_stream_config`] to a stream just created.
pub(crate) fn prepare_reply_stream(stream: &Stream) -> Result<(), StoreError> {
    let (config, retention) = reply_stream_config();
    stream.set_config(config)?;
    stream.set_retention(retention)
}

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Sending the request or reading replies failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No reply came in time. A reply arriving later is dropped.
    #[error(
        "no reply to request {correlation_id} within {timeout:?}: check that a consumer reads the request stream, or allow more time"
    )]
    Timeout {
        /// The request's correlation ID.
        correlation_id: String,
        /// How long the requester waited.
        timeout: Duration,
    },
}

/// Sends requests and waits for their replies on a reply stream of its own.
///
/// ```
/// use std::time::Duration;
/// use weir::{GroupStart, Message, Store};
///
/// # let dir = tempfile::tempdir().unwrap();
/// let store = Store::open(dir.path()).unwrap();
/// let prices = store.stream(b"prices").unwrap();
/// let service = prices.create_group(b"service", GroupStart::Beginning, Default::default()).unwrap();
/// let requester = store.requester().unwrap();
/// let responder = std::thread::spawn(move || {
///     let request = service.read_blocking(b"r1", 1, Duration::from_secs(10)).unwrap().remove(0);
///     let answer = format!("price of {}: 12", String::from_utf8_lossy(request.body()));
///     request.reply(answer).unwrap();
/// });
/// let reply = requester
///     .request_blocking(&prices, Message::new("apples"), Duration::from_secs(10))
///     .unwrap();
/// assert_eq!(reply.body(), b"price of apples: 12");
/// responder.join().unwrap();
/// ```
pub struct Requester {
    replies: Arc<Stream>,
    reply_to: Bytes,
    next_correlation: AtomicU64,
    inbox: Mutex<Inbox>,
}

impl std::fmt::Debug for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requester")
            .field("reply_to", &String::from_utf8_lossy(&self.reply_to))
            .finish()
    }
}

/// Replies read so far, filed under the correlation IDs still awaited.
struct Inbox {
    /// The last reply-stream ID read.
    cursor: StreamId,
    /// `None` until the reply arrives; an ID missing here is not awaited (any more).
    awaited: HashMap<Bytes, Option<Entry>>,
}

/// Stops awaiting a correlation ID when its wait ends, whichever way (a cancelled future too).
struct Awaiting<'a> {
    requester: &'a Requester,
    correlation_id: Bytes,
}

impl Drop for Awaiting<'_> {
    fn drop(&mut self) {
        self.requester
            .inbox
            .lock()
            .awaited
            .remove(&self.correlation_id);
    }
}

impl Awaiting<'_> {
    fn timeout(&self, timeout: Duration) -> RequestError {
        RequestError::Timeout {
            correlation_id: String::from_utf8_lossy(&self.correlation_id).into_owned(),
            timeout,
        }
    }
}

impl Requester {
    /// A requester reading replies from `replies`, starting after its current last entry.
    pub(crate) fn new(replies: Arc<Stream>) -> Requester {
        Requester {
            reply_to: replies.public_name(),
            inbox: Mutex::new(Inbox {
                cursor: replies.last_id(),
                awaited: HashMap::new(),
            }),
            replies,
            next_correlation: AtomicU64::new(1),
        }
    }

    /// The reply stream's name: the value of every request's `reply-to` header.
    pub fn reply_to(&self) -> &[u8] {
        &self.reply_to
    }

    /// The reply stream.
    pub fn reply_stream(&self) -> &Arc<Stream> {
        &self.replies
    }

    /// Appends `message` to `target` as a request and waits up to `timeout` for its reply,
    /// blocking the thread. Other requests of the same requester may wait at the same time.
    pub fn request_blocking(
        &self,
        target: &Stream,
        message: Message,
        timeout: Duration,
    ) -> Result<Entry, RequestError> {
        let deadline = Instant::now() + timeout;
        let (message, awaiting) = self.prepare(message);
        target.append(message)?;
        loop {
            let seen = self.replies.appended.generation();
            if let Some(reply) = self.take_reply(&awaiting.correlation_id)? {
                return Ok(reply);
            }
            if Instant::now() >= deadline {
                return Err(awaiting.timeout(timeout));
            }
            self.replies.appended.wait_past(seen, deadline);
        }
    }

    /// The async form of [`request_blocking`](Self::request_blocking): waits without blocking a
    /// thread. Dropping the future abandons the request (its reply, if any, is dropped).
    pub async fn request(
        &self,
        target: &Stream,
        message: Message,
        timeout: Duration,
    ) -> Result<Entry, RequestError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let (message, awaiting) = self.prepare(message);
        target.append_async(message).await?;
        loop {
            let seen = self.replies.appended.generation();
            if let Some(reply) = self.take_reply(&awaiting.correlation_id)? {
                return Ok(reply);
            }
            let changed = self.replies.appended.changed_past(seen);
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return match self.take_reply(&awaiting.correlation_id)? {
                    Some(reply) => Ok(reply),
                    None => Err(awaiting.timeout(timeout)),
                };
            }
        }
    }

    /// Adds the request headers and starts awaiting the reply (before the request is sent, so
    /// that no reply can come first).
    fn prepare(&self, message: Message) -> (Message, Awaiting<'_>) {
        let number = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        let correlation_id = Bytes::from(number.to_string());
        self.inbox
            .lock()
            .awaited
            .insert(correlation_id.clone(), None);
        let message = message
            .header(REPLY_TO, self.reply_to.clone())
            .header(CORRELATION_ID, correlation_id.clone());
        let awaiting = Awaiting {
            requester: self,
            correlation_id,
        };
        (message, awaiting)
    }

    /// Files every new reply under its correlation ID, then takes this one's, if it came.
    fn take_reply(&self, correlation_id: &Bytes) -> Result<Option<Entry>, StoreError> {
        let mut inbox = self.inbox.lock();
        loop {
            let batch =
                self.replies
                    .range(Bound::Excluded(inbox.cursor), Bound::Unbounded, REPLY_BATCH)?;
            let Some(last) = batch.last() else {
                break;
            };
            inbox.cursor = last.id;
            for reply in batch {
                let Some(id) = header(&reply, CORRELATION_ID) else {
                    continue;
                };
                // Only the first reply to an awaited request is kept: duplicates and late
                // replies are dropped here.
                if let Some(slot @ None) = inbox.awaited.get_mut(id) {
                    *slot = Some(reply);
                }
            }
        }
        Ok(inbox.awaited.get_mut(correlation_id).and_then(Option::take))
    }
}

/// The value of an entry's header.
fn header<'a>(entry: &'a Entry, name: &str) -> Option<&'a [u8]> {
    entry
        .headers()
        .find(|(key, _)| *key == name.as_bytes())
        .map(|(_, value)| value)
}

impl Delivery {
    /// Answers a request: appends `body` to the stream named by its `reply-to` header (created
    /// if needed), with its `correlation-id`, makes the reply durable whatever the store's
    /// policy, and only then acknowledges the request. Returns what [`ack`](Self::ack) returns.
    /// A failure between the two leaves the request pending: it is answered again later, and
    /// the requester ignores the second reply.
    pub fn reply(&self, body: impl Into<Bytes>) -> Result<bool, StoreError> {
        self.reply_with(Message::new(body))
    }

    /// [`reply`](Self::reply) with a whole message (headers of its own, such as a status).
    pub fn reply_with(&self, message: Message) -> Result<bool, StoreError> {
        Ok(Delivery::reply_all([(self, message)])? == 1)
    }

    /// Answers several requests at once, each as [`reply_with`](Self::reply_with) would: every
    /// reply is appended (those to the same reply stream in one write), each reply stream
    /// written to is flushed once, whatever the store's policy, and only then are the requests
    /// acknowledged, with one commit per group. A batch of replies thus costs one flush per
    /// reply stream plus one per group instead of several per reply. Returns how many requests
    /// were still pending. Every delivery is checked first: when one is not a request, nothing
    /// is written. A failure part way leaves the requests not yet acknowledged pending (their
    /// replies may be written already): they are answered again, and requesters ignore the
    /// second replies.
    pub fn reply_all<'a>(
        replies: impl IntoIterator<Item = (&'a Delivery, Message)>,
    ) -> Result<usize, StoreError> {
        let addressed = replies
            .into_iter()
            .map(|(delivery, message)| delivery.address(message))
            .collect::<Result<Vec<_>, _>>()?;
        let mut targets: Vec<(Arc<Stream>, Vec<Message>)> = Vec::new();
        let mut answered = Vec::with_capacity(addressed.len());
        for (delivery, reply_to, message) in addressed {
            let target = delivery.group().stream().reply_stream(reply_to)?;
            match targets.iter_mut().find(|(t, _)| Arc::ptr_eq(t, &target)) {
                Some((_, messages)) => messages.push(message),
                None => targets.push((target, vec![message])),
            }
            answered.push(delivery);
        }
        for (target, messages) in &targets {
            target.write(messages, |_| {})?;
        }
        for (target, _) in &targets {
            target.flush()?;
        }
        let mut acks: Vec<(&Group, Vec<StreamId>)> = Vec::new();
        for delivery in answered {
            let group = delivery.group();
            let same = |(g, _): &&mut (&Group, Vec<StreamId>)| {
                Arc::ptr_eq(g.stream(), group.stream()) && g.name() == group.name()
            };
            match acks.iter_mut().find(same) {
                Some((_, ids)) => ids.push(delivery.id()),
                None => acks.push((group, vec![delivery.id()])),
            }
        }
        let mut acknowledged = 0;
        for (group, ids) in &acks {
            acknowledged += group.ack(ids)?;
        }
        Ok(acknowledged)
    }

    /// The reply stream named by the request and `message` carrying its correlation ID; an
    /// error when the entry is not a request.
    fn address(&self, message: Message) -> Result<(&Delivery, &[u8], Message), StoreError> {
        let entry = self.entry();
        let missing = |header: &'static str| StoreError::NotARequest {
            id: entry.id,
            header,
        };
        let reply_to = header(entry, REPLY_TO).ok_or_else(|| missing(REPLY_TO))?;
        let correlation_id =
            header(entry, CORRELATION_ID).ok_or_else(|| missing(CORRELATION_ID))?;
        let message = message.header(CORRELATION_ID, Bytes::copy_from_slice(correlation_id));
        Ok((self, reply_to, message))
    }
}

impl Stream {
    /// The stream a reply to a request of this stream goes to (same namespace), created as a
    /// reply stream if needed.
    fn reply_stream(&self, reply_to: &[u8]) -> Result<Arc<Stream>, StoreError> {
        let resolver = self.resolver.upgrade().ok_or(StoreError::Closed)?;
        resolver.resolve_with(&self.namespaced(reply_to), &prepare_reply_stream)
    }
}
