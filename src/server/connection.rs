//! One client connection: read, parse complete frames, execute, write replies, in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::commands::{self, Client, Outcome};
use super::resp::{self, Limits, ParseError, RequestParser, Value};
use super::state::Server;

const READ_CHUNK: usize = 16 * 1024;

/// Serves one client until it quits, breaks the protocol, is killed, or the server stops.
pub(crate) async fn serve(server: Arc<Server>, mut socket: TcpStream, addr: SocketAddr) {
    let Some((id, kill)) = server.register_client(addr) else {
        let mut out = BytesMut::new();
        Value::error("ERR max number of clients reached").encode(resp::Protocol::Resp2, &mut out);
        let _ = socket.write_all(&out).await;
        return;
    };
    let _ = socket.set_nodelay(true);
    let needs_auth = server.config.read().requirepass.is_some();
    let mut client = Client::new(id, !needs_auth);
    let mut shutdown = server.shutdown.subscribe();
    if let Err(error) = run(&server, &mut socket, &mut client, &kill, &mut shutdown).await {
        tracing::debug!(client = id, %addr, %error, "connection closed");
    }
    server.unregister_client(id);
}

async fn run(
    server: &Arc<Server>,
    socket: &mut TcpStream,
    client: &mut Client,
    kill: &tokio::sync::Notify,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = BytesMut::new();
    // One parser per connection: it remembers how far into an incomplete frame it got, so a
    // large command arriving in many reads is parsed once, not from the start on every read.
    let mut parser = RequestParser::new(limits(server));
    loop {
        loop {
            match parser.parse(&mut input) {
                Ok(Some(args)) => {
                    let Some(outcome) = execute(
                        server, socket, &mut input, &parser, client, args, kill, shutdown,
                    )
                    .await?
                    else {
                        return Ok(());
                    };
                    let close = match outcome {
                        Outcome::Reply(value) => {
                            value.encode(client.protocol, &mut output);
                            false
                        }
                        Outcome::Close(value) => {
                            value.encode(client.protocol, &mut output);
                            true
                        }
                        Outcome::Block { timeout_reply, .. } => {
                            timeout_reply.encode(client.protocol, &mut output);
                            false
                        }
                    };
                    if close {
                        return write_out(server, socket, &mut output).await;
                    }
                    if output.len() > server.config.read().max_output_buffer {
                        tracing::warn!(
                            client = client.id,
                            bytes = output.len(),
                            "closing a client whose replies exceed the output buffer limit"
                        );
                        return Ok(());
                    }
                }
                Ok(None) => break,
                Err(ParseError::Protocol(message)) => {
                    Value::error(format!("ERR Protocol error: {message}"))
                        .encode(client.protocol, &mut output);
                    return write_out(server, socket, &mut output).await;
                }
            }
        }
        write_out(server, socket, &mut output).await?;
        if parser.limits().buffer_exceeded(input.len()) {
            tracing::warn!(
                client = client.id,
                bytes = input.len(),
                "closing a client whose query buffer exceeds the limit"
            );
            return Ok(());
        }
        if input.capacity() - input.len() < READ_CHUNK {
            input.reserve(READ_CHUNK);
        }
        tokio::select! {
            read = socket.read_buf(&mut input) => {
                let read = read?;
                if read == 0 {
                    return Ok(());
                }
                server.stats.net_input_bytes.fetch_add(read as u64, Ordering::Relaxed);
            }
            () = kill.notified() => return Ok(()),
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// Runs one command. While it is blocked, the client is still watched: `None` when it
/// disconnects (or sends more than the query buffer limit), is killed, or the server stops, and
/// the command is abandoned (a blocked command has taken nothing yet). Whatever the client
/// pipelines meanwhile is kept in `input` for later.
#[allow(clippy::too_many_arguments)]
async fn execute(
    server: &Arc<Server>,
    socket: &mut TcpStream,
    input: &mut BytesMut,
    parser: &RequestParser,
    client: &mut Client,
    args: Vec<bytes::Bytes>,
    kill: &tokio::sync::Notify,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<Option<Outcome>> {
    let command = commands::execute(server, client, args);
    tokio::pin!(command);
    loop {
        if input.capacity() - input.len() < READ_CHUNK {
            input.reserve(READ_CHUNK);
        }
        // Biased: a command that does not block is done at its first poll, before the other
        // branches are looked at.
        tokio::select! {
            biased;
            outcome = &mut command => return Ok(Some(outcome)),
            read = socket.read_buf(input) => {
                let read = read?;
                if read == 0 || parser.limits().buffer_exceeded(input.len()) {
                    return Ok(None);
                }
                server.stats.net_input_bytes.fetch_add(read as u64, Ordering::Relaxed);
            }
            () = kill.notified() => return Ok(None),
            _ = shutdown.changed() => return Ok(None),
        }
    }
}

async fn write_out(
    server: &Server,
    socket: &mut TcpStream,
    output: &mut BytesMut,
) -> std::io::Result<()> {
    if output.is_empty() {
        return Ok(());
    }
    socket.write_all(output).await?;
    server
        .stats
        .net_output_bytes
        .fetch_add(output.len() as u64, Ordering::Relaxed);
    output.clear();
    Ok(())
}

fn limits(server: &Server) -> Limits {
    let config = server.config.read();
    Limits {
        max_bulk_len: config.max_bulk_len,
        max_buffered: config.max_query_buffer,
        ..Limits::default()
    }
}
