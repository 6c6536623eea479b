//! A stream's entries a page at a time (`XRANGE key (last + COUNT n`), so that a large stream
//! never sits in memory.

use redis::Cmd;

use crate::Failure;
use crate::conn::Conn;
use crate::reply::{Entry, Id, entries};

/// Reads a stream page by page, in ID order.
pub struct Pages<'k> {
    key: &'k [u8],
    size: usize,
    after: Option<Id>,
    done: bool,
}

impl<'k> Pages<'k> {
    pub fn new(key: &'k [u8], size: usize) -> Pages<'k> {
        Pages {
            key,
            size: size.max(1),
            after: None,
            done: false,
        }
    }

    /// The next page; empty once the stream is read to its end.
    pub fn next(&mut self, con: &mut Conn) -> Result<Vec<Entry>, Failure> {
        if self.done {
            return Ok(Vec::new());
        }
        let start = match self.after {
            Some(id) => format!("({id}"),
            None => "-".to_string(),
        };
        let mut cmd = Cmd::new();
        cmd.arg("XRANGE")
            .arg(self.key)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(self.size);
        let page = entries(&con.call(&cmd)?)?;
        self.done = page.len() < self.size;
        self.after = page.last().map(|entry| entry.id).or(self.after);
        Ok(page)
    }
}
