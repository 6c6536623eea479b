//! One client connection: read, parse complete frames, execute, write replies, in order.
//!
//! Commands are executed in batches: every complete frame already read is run, each write
//! recording what must be flushed in the client's commit batch, and the batch's writes are made durable with one group-commit wait before any of
//! its replies is written. Under `--fsync always` a pipeline of N writes costs one flush round,
//! not N, and no reply ever acknowledges a write that is not yet on disk.
//!
//! A large reply is encoded a part at a time, each part written before the next is encoded, so
//! a client that reads slowly or not at all holds about one part of output, not the whole
//! reply. Every write races the client's kill and the server's shutdown: a client that stopped
//! reading cannot keep itself alive after `CLIENT KILL`, nor the server after SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, watch};

use super::commands::{self, Client, Outcome};
use super::resp::{self, Limits, ParseError, ReplyEncoder, RequestParser, Value};
use super::state::Server;

const READ_CHUNK: usize = 16 * 1024;
/// How much of a large reply is encoded before it is written.
const REPLY_PART: usize = 1 << 20;

/// A client's byte stream: a TCP socket, or a TLS session over one. Generic rather than boxed,
/// so that the plain path compiles to the same code as before TLS existed.
pub(crate) trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> ClientStream for S {}

/// Serves one client until it quits, breaks the protocol, is killed, or the server stops.
pub(crate) async fn serve(server: Arc<Server>, mut socket: impl ClientStream, addr: SocketAddr) {
    let Some((id, kill)) = server.register_client(addr) else {
        let mut out = BytesMut::new();
        Value::error("ERR max number of clients reached").encode(resp::Protocol::Resp2, &mut out);
        if socket.write_all(&out).await.is_ok() {
            let _ = socket.flush().await;
        }
        return;
    };
    let mut connection = Connection {
        parser: RequestParser::new(limits(&server)),
        client: Client::new(id, &server.acl),
        shutdown: server.shutdown.subscribe(),
        server: Arc::clone(&server),
        socket,
        input: BytesMut::with_capacity(READ_CHUNK),
        output: BytesMut::new(),
        encoder: ReplyEncoder::default(),
        kill,
    };
    if let Err(error) = connection.run().await {
        tracing::debug!(client = id, %addr, %error, "connection closed");
    }
    server.unregister_client(id);
}

/// The writes a connection submitted to a cluster's log, oldest first.
#[cfg(feature = "cluster")]
type Replicating = Vec<commands::Replicating>;
#[cfg(not(feature = "cluster"))]
type Replicating = Vec<()>;

/// How a batch of commands ended.
enum BatchEnd {
    /// Every complete frame was run: write the replies and read more.
    NeedMore,
    /// A reply is too large to encode at once: write the replies, the rest of that one part by
    /// part, then run the frames left in the input before reading more.
    LargeReply,
    /// Write the replies, then close (QUIT, a protocol error).
    Close,
    /// Close without writing (the client went away, was killed, overran a limit, or the
    /// server is stopping, SHUTDOWN among the ways).
    Drop,
}

struct Connection<S> {
    server: Arc<Server>,
    socket: S,
    input: BytesMut,
    output: BytesMut,
    /// The large reply being written, part by part.
    encoder: ReplyEncoder,
    // One parser per connection: it remembers how far into an incomplete frame it got, so a
    // large command arriving in many reads is parsed once, not from the start on every read.
    parser: RequestParser,
    client: Client,
    kill: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
}

impl<S: ClientStream> Connection<S> {
    async fn run(&mut self) -> std::io::Result<()> {
        loop {
            let end = self.run_batch().await;
            // Completed even when the batch failed: its writes must not wait for the next one.
            let completed = self.complete().await;
            let end = end?;
            if let Err(error) = completed {
                tracing::error!(client = self.client.id, %error, "writes could not be made durable: closing the connection without acknowledging them");
                return Ok(());
            }
            let more = match end {
                BatchEnd::NeedMore | BatchEnd::LargeReply => self.write_replies().await?,
                BatchEnd::Close => {
                    self.write_replies().await?;
                    return Ok(());
                }
                BatchEnd::Drop => return Ok(()),
            };
            if !more {
                return Ok(());
            }
            if matches!(end, BatchEnd::LargeReply) {
                continue;
            }
            if self.parser.limits().buffer_exceeded(self.input.len()) {
                tracing::warn!(
                    client = self.client.id,
                    bytes = self.input.len(),
                    "closing a client whose query buffer exceeds the limit"
                );
                return Ok(());
            }
            self.reserve_input();
            tokio::select! {
                read = self.socket.read_buf(&mut self.input) => {
                    let read = read?;
                    if read == 0 {
                        return Ok(());
                    }
                    self.server.stats.net_input_bytes.fetch_add(read as u64, Ordering::Relaxed);
                }
                () = self.kill.notified() => return Ok(()),
                _ = self.shutdown.changed() => return Ok(()),
            }
        }
    }

    /// Makes the batch's writes durable before its replies go out.
    async fn complete(&self) -> Result<(), crate::StoreError> {
        match self.server.store() {
            Ok(store) => store.complete(&self.client.commits).await,
            // A reload or shutdown in the batch closed the store, which flushed everything.
            Err(_) => {
                self.client.commits.discard();
                Ok(())
            }
        }
    }

    /// Runs every complete frame in the input.
    async fn run_batch(&mut self) -> std::io::Result<BatchEnd> {
        // One vector for the batch's commands, emptied after each so that the input buffer is
        // not kept shared and can be reused for the next read.
        let mut args = Vec::new();
        // Writes submitted to a cluster's log whose replies come before any later one.
        let mut replicating = Replicating::default();
        loop {
            match self.parser.parse_into(&mut self.input, &mut args) {
                Ok(true) => {}
                Ok(false) => {
                    self.reply_replicated(&mut replicating).await;
                    return Ok(BatchEnd::NeedMore);
                }
                Err(ParseError::Protocol(message)) => {
                    self.reply_replicated(&mut replicating).await;
                    Value::error(format!("ERR Protocol error: {message}"))
                        .encode(self.client.protocol, &mut self.output);
                    return Ok(BatchEnd::Close);
                }
            }
            if !replicating.is_empty() && !self.submitted_in_order(&args) {
                // What this command sees must include the writes before it.
                self.reply_replicated(&mut replicating).await;
            }
            self.client.writes_in_flight = !replicating.is_empty();
            let executed = self.execute(&mut args).await?;
            args.clear();
            let Some(outcome) = executed else {
                return Ok(BatchEnd::Drop);
            };
            let (value, close) = match outcome {
                Outcome::Reply(value) => (value, false),
                Outcome::Close(value) => (value, true),
                Outcome::Block { timeout_reply, .. } => (timeout_reply, false),
                Outcome::Hangup => return Ok(BatchEnd::Drop),
                #[cfg(feature = "cluster")]
                Outcome::Replicating(write) => {
                    replicating.push(write);
                    continue;
                }
            };
            self.reply_replicated(&mut replicating).await;
            if close {
                value.encode(self.client.protocol, &mut self.output);
                return Ok(BatchEnd::Close);
            }
            let done =
                self.encoder
                    .start(value, self.client.protocol, &mut self.output, REPLY_PART);
            if !done {
                return Ok(BatchEnd::LargeReply);
            }
            if self.output.len() > self.server.config.read().max_output_buffer {
                tracing::warn!(
                    client = self.client.id,
                    bytes = self.output.len(),
                    "closing a client whose replies exceed the output buffer limit"
                );
                return Ok(BatchEnd::Drop);
            }
        }
    }

    /// Whether `args` may run before the replies of the writes submitted before it are in.
    fn submitted_in_order(&self, args: &[Bytes]) -> bool {
        #[cfg(feature = "cluster")]
        return commands::submitted_in_order(&self.server, &self.client, args);
        #[cfg(not(feature = "cluster"))]
        {
            let _ = args;
            false
        }
    }

    /// Waits for the replies of the submitted writes, in order, and encodes them.
    async fn reply_replicated(&mut self, replicating: &mut Replicating) {
        #[cfg(feature = "cluster")]
        for write in replicating.drain(..) {
            let value = match write.outcome(&mut self.client).await {
                Outcome::Reply(value) | Outcome::Close(value) => value,
                Outcome::Block { timeout_reply, .. } => timeout_reply,
                Outcome::Hangup | Outcome::Replicating(_) => {
                    Value::error("ERR the replicated command gave no reply")
                }
            };
            value.encode(self.client.protocol, &mut self.output);
        }
        #[cfg(not(feature = "cluster"))]
        let _ = replicating;
    }

    /// Runs one command. While it is blocked, the client is still watched: `None` when it
    /// disconnects (or sends more than the query buffer limit), is killed, or the server stops,
    /// and the command is abandoned (a blocked command has taken nothing yet). Whatever the
    /// client pipelines meanwhile is kept in `input` for later.
    async fn execute(&mut self, args: &mut Vec<Bytes>) -> std::io::Result<Option<Outcome>> {
        let command = commands::execute(&self.server, &mut self.client, args);
        tokio::pin!(command);
        loop {
            if self.input.capacity() - self.input.len() < READ_CHUNK {
                self.input.reserve(READ_CHUNK);
            }
            // Biased: a command that does not block is done at its first poll, before the other
            // branches are looked at.
            tokio::select! {
                biased;
                outcome = &mut command => return Ok(Some(outcome)),
                read = self.socket.read_buf(&mut self.input) => {
                    let read = read?;
                    if read == 0 || self.parser.limits().buffer_exceeded(self.input.len()) {
                        return Ok(None);
                    }
                    self.server.stats.net_input_bytes.fetch_add(read as u64, Ordering::Relaxed);
                }
                () = self.kill.notified() => return Ok(None),
                _ = self.shutdown.changed() => return Ok(None),
            }
        }
    }

    fn reserve_input(&mut self) {
        if self.input.capacity() - self.input.len() < READ_CHUNK {
            self.input.reserve(READ_CHUNK);
        }
    }

    /// Writes the batch's replies, the large one among them part by part. Returns whether the
    /// connection goes on: not when the client is killed or the server stops meanwhile.
    async fn write_replies(&mut self) -> std::io::Result<bool> {
        loop {
            if !self.write_out().await? {
                return Ok(false);
            }
            if !self.encoder.is_encoding() {
                return Ok(true);
            }
            self.encoder.resume(&mut self.output, REPLY_PART);
        }
    }

    /// Writes the output buffer; returns whether the connection goes on. A client that does not
    /// read blocks the write: it still ends when the client is killed or the server stops.
    async fn write_out(&mut self) -> std::io::Result<bool> {
        if self.output.is_empty() {
            return Ok(true);
        }
        // The flush sends what a TLS session still holds of the replies; on TCP it does nothing.
        let written = async {
            self.socket.write_all(&self.output).await?;
            self.socket.flush().await
        };
        tokio::select! {
            written = written => written?,
            () = self.kill.notified() => return Ok(false),
            _ = self.shutdown.changed() => return Ok(false),
        }
        self.server
            .stats
            .net_output_bytes
            .fetch_add(self.output.len() as u64, Ordering::Relaxed);
        self.output.clear();
        Ok(true)
    }
}

fn limits(server: &Server) -> Limits {
    let config = server.config.read();
    Limits {
        max_bulk_len: config.max_bulk_len,
        max_buffered: config.max_query_buffer,
        ..Limits::default()
    }
}
