//! A connection to one of the two servers, which turns error replies into [`Failure`]s that
//! say which server refused which command.

use std::time::Duration;

use redis::{Cmd, ConnectionLike, Value};

use crate::Failure;

/// How long connecting, and waiting for one reply, may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Which server a connection talks to, as messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }
}

pub struct Conn {
    con: redis::Connection,
    side: Side,
}

impl Conn {
    /// Connects (and authenticates, with the credentials in the URL).
    pub fn open(url: &str, side: Side) -> Result<Conn, Failure> {
        let failed = |source| Failure::Connect {
            side: side.name(),
            url: redacted(url),
            source,
        };
        let client = redis::Client::open(url).map_err(failed)?;
        let con = client
            .get_connection_with_timeout(TIMEOUT)
            .map_err(failed)?;
        con.set_read_timeout(Some(TIMEOUT)).map_err(failed)?;
        con.set_write_timeout(Some(TIMEOUT)).map_err(failed)?;
        Ok(Conn { con, side })
    }

    /// One command; an error reply is a failure.
    pub fn call(&mut self, cmd: &Cmd) -> Result<Value, Failure> {
        let reply = self.con.req_command(cmd).map_err(|e| self.io(e))?;
        self.checked(cmd, reply)
    }

    /// Several commands sent at once; the replies in order, an error reply is a failure.
    pub fn pipeline(&mut self, cmds: &[Cmd]) -> Result<Vec<Value>, Failure> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        let mut packed = Vec::new();
        for cmd in cmds {
            packed.extend(cmd.get_packed_command());
        }
        let replies = self
            .con
            .req_packed_commands(&packed, 0, cmds.len())
            .map_err(|e| self.io(e))?;
        cmds.iter()
            .zip(replies)
            .map(|(cmd, reply)| self.checked(cmd, reply))
            .collect()
    }

    fn checked(&self, cmd: &Cmd, reply: Value) -> Result<Value, Failure> {
        match reply {
            Value::ServerError(error) => Err(Failure::Refused {
                side: self.side.name(),
                command: command_text(cmd),
                reply: error.to_string(),
            }),
            reply => Ok(reply),
        }
    }

    fn io(&self, source: redis::RedisError) -> Failure {
        Failure::Io {
            side: self.side.name(),
            source,
        }
    }
}

/// A command's words, escaped and shortened, for an error message.
fn command_text(cmd: &Cmd) -> String {
    const SHOWN_WORDS: usize = 8;
    let words: Vec<String> = cmd
        .args_iter()
        .filter_map(|arg| match arg {
            redis::Arg::Simple(bytes) => Some(bytes.escape_ascii().to_string()),
            _ => None,
        })
        .collect();
    let mut text = words
        .iter()
        .take(SHOWN_WORDS)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    if words.len() > SHOWN_WORDS {
        text.push_str(" …");
    }
    text
}

/// The URL without its password, for messages.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(redacted("redis://:s3cret@h:1/"), "redis://:***@h:1/");
        assert_eq!(redacted("redis://u:p@h:1/2"), "redis://u:***@h:1/2");
        assert_eq!(redacted("redis://h:1/"), "redis://h:1/");
    }

    #[test]
    fn commands_are_shown_short_and_escaped() {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&b"k\x00"[..]).arg("1-1");
        assert_eq!(command_text(&cmd), "XADD k\\x00 1-1");
        let mut long = redis::cmd("XDEL");
        long.arg("k");
        for n in 0..10 {
            long.arg(format!("{n}-0"));
        }
        assert!(command_text(&long).ends_with("4-0 5-0 …"));
    }
}
