//! A minimal pipelining RESP2 client: requests are written in batches, replies read in order.

use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A reply, as far as the load generator needs to look into it.
#[derive(Debug)]
pub enum Reply {
    Simple(Vec<u8>),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply's elements, or nothing for a nil or non-array reply.
    pub fn items(&self) -> &[Reply] {
        match self {
            Reply::Array(Some(items)) => items,
            _ => &[],
        }
    }

    /// The bytes of a bulk or simple string.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(Some(bytes)) | Reply::Simple(bytes) => Some(bytes),
            _ => None,
        }
    }
}

pub struct Connection {
    stream: TcpStream,
    input: BytesMut,
    output: Vec<u8>,
}

impl Connection {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            input: BytesMut::with_capacity(64 << 10),
            output: Vec::with_capacity(64 << 10),
        })
    }

    /// Queues a command; [`send`](Self::send) writes every queued one.
    pub fn queue(&mut self, args: &[&[u8]]) {
        self.output
            .extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            self.output
                .extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            self.output.extend_from_slice(arg);
            self.output.extend_from_slice(b"\r\n");
        }
    }

    pub async fn send(&mut self) -> std::io::Result<()> {
        self.stream.write_all(&self.output).await?;
        self.output.clear();
        Ok(())
    }

    /// The next reply, reading from the socket until one is complete.
    pub async fn reply(&mut self) -> std::io::Result<Reply> {
        loop {
            if let Some((reply, used)) = parse(&self.input)? {
                self.input.advance(used);
                return Ok(reply);
            }
            if self.stream.read_buf(&mut self.input).await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
        }
    }

    /// Sends one command and waits for its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> std::io::Result<Reply> {
        self.queue(args);
        self.send().await?;
        self.reply().await
    }
}

fn protocol_error(detail: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, detail.to_string())
}

/// One complete reply at the start of `buf` and the bytes it took; `None` if more are needed.
fn parse(buf: &[u8]) -> std::io::Result<Option<(Reply, usize)>> {
    let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, line)) = buf[..line_end].split_first() else {
        return Err(protocol_error("empty reply line"));
    };
    let after_line = line_end + 2;
    let number = || -> std::io::Result<i64> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| protocol_error("bad length or integer in a reply"))
    };
    match kind {
        b'+' => Ok(Some((Reply::Simple(line.to_vec()), after_line))),
        b'-' => Ok(Some((
            Reply::Error(String::from_utf8_lossy(line).into_owned()),
            after_line,
        ))),
        b':' => Ok(Some((Reply::Integer(number()?), after_line))),
        b'$' => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Some((Reply::Bulk(None), after_line)));
            };
            if buf.len() < after_line + len + 2 {
                return Ok(None);
            }
            let bulk = buf[after_line..after_line + len].to_vec();
            Ok(Some((Reply::Bulk(Some(bulk)), after_line + len + 2)))
        }
        b'*' => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Some((Reply::Array(None), after_line)));
            };
            let mut items = Vec::with_capacity(len);
            let mut used = after_line;
            for _ in 0..len {
                match parse(&buf[used..])? {
                    Some((item, took)) => {
                        items.push(item);
                        used += took;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(items)), used)))
        }
        _ => Err(protocol_error(
            "unknown reply type (the load generator speaks RESP2)",
        )),
    }
}
