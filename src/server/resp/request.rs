//! Request parsing for the Redis protocol (RESP), with hard limits. Pure: no I/O; parsing
//! allocates only the argument list of a complete command.
//!
//! Requests follow Redis's `networking.c`. A request is either a multibulk array
//!
//! ```text
//! *<count>\r\n  then <count> times  $<len>\r\n<len bytes>\r\n
//! ```
//!
//! or an inline command: one line ended by `\n` (an optional `\r` before it is dropped), split
//! into words like `redis-cli` does (`sdssplitargs`), with double and single quotes. Empty
//! lines, `*0` and `*-1` carry no command and are skipped.
//!
//! Deliberate differences from Redis, none of which changes how a well-formed request parses:
//! the `\n` after a header line's `\r` and the `\r\n` after bulk data are checked (Redis skips
//! those bytes unseen, so a wrong length silently splices data into the next argument); a line
//! is judged too long by its first bytes alone, so the outcome never depends on how the bytes
//! were split into reads; and inline commands are binary-safe (Redis stops at a NUL byte).

use bytes::{Buf, Bytes, BytesMut};

use super::reply::Value;

/// Hard limits on what a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string argument (Redis's `proto-max-bulk-len`).
    pub max_bulk_len: usize,
    /// Most arguments in one multibulk command.
    pub max_array_len: usize,
    /// Longest inline command and longest `*`/`$` header line (Redis's `PROTO_INLINE_MAX_SIZE`).
    pub max_inline_len: usize,
    /// Most bytes an unfinished command may occupy (Redis's `client-query-buffer-limit`).
    pub max_buffered: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_array_len: 1024 * 1024,
            max_inline_len: 64 * 1024,
            max_buffered: 1024 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Whether a query buffer of `buffered` bytes that holds no complete command is over the
    /// limit: Redis closes such a client without a reply, as it can never be served.
    pub fn buffer_exceeded(&self, buffered: usize) -> bool {
        buffered > self.max_buffered
    }
}

/// Why the bytes a client sent are not a request. The connection replies with
/// [`reply`](Self::reply) and closes, as Redis does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The text that follows `ERR Protocol error: `, worded as Redis words it.
    #[error("Protocol error: {0}")]
    Protocol(String),
}

impl ParseError {
    /// The error reply Redis sends before closing the connection.
    pub fn reply(&self) -> Value {
        Value::err(self)
    }
}

fn protocol_error(text: &str) -> ParseError {
    ParseError::Protocol(text.to_owned())
}

/// Parses one command from the start of `buf`.
///
/// `Ok(Some(args))`: a complete command, whose bytes were split off `buf`; the arguments share
/// that allocation. `Ok(None)`: `buf` ends inside a command (or is empty) and that command's
/// bytes were left in place; empty commands before it were dropped. `Err`: the command at the
/// start of `buf` (after any dropped empty ones) is not a request, and was left in place.
///
/// Each call starts from the beginning of the pending command, so a client trickling in a
/// large command costs time quadratic in its size; a connection should keep a
/// [`RequestParser`], which resumes where it stopped.
pub fn parse_command(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ParseError> {
    RequestParser::new(*limits).parse(buf)
}

/// After a large command the argument spans keep at most this capacity, so one huge command
/// does not pin memory for the rest of the connection.
const KEPT_SPANS: usize = 1024;

/// An incremental request parser: it remembers how much of the pending command it has
/// already checked, so each read costs time in proportion to the new bytes only.
///
/// Between calls the caller may only append to the buffer; the parser alone consumes from it.
#[derive(Debug, Clone)]
pub struct RequestParser {
    limits: Limits,
    progress: Progress,
    /// Where each complete argument of the pending multibulk command lies in the buffer.
    spans: Vec<std::ops::Range<usize>>,
}

/// How far the command at the start of the buffer has been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Nothing checked yet.
    Start,
    /// An inline command whose first `scanned` bytes hold no `\n`.
    Inline { scanned: usize },
    /// A multibulk command whose count line's first `scanned` bytes hold no `\r`.
    Count { scanned: usize },
    /// A multibulk command of `expected` arguments: `seen` of them are complete and end at
    /// `at`, and the `scanned` bytes from `at` hold no `\r`.
    Args {
        expected: usize,
        seen: usize,
        at: usize,
        scanned: usize,
    },
}

impl Progress {
    /// Whether this progress can describe `buf`: false when the caller broke the contract
    /// by consuming or replacing bytes, in which case parsing starts over.
    fn fits(&self, buf: &[u8]) -> bool {
        let multibulk = buf.first() == Some(&b'*');
        match *self {
            Progress::Start => true,
            Progress::Inline { scanned } => !multibulk && scanned <= buf.len(),
            Progress::Count { scanned } => multibulk && scanned <= buf.len(),
            Progress::Args { at, scanned, .. } => {
                multibulk && at.checked_add(scanned).is_some_and(|end| end <= buf.len())
            }
        }
    }
}

/// What one parsing step found at the start of the buffer.
enum Step {
    Incomplete(Progress),
    /// An empty command of this many bytes.
    Skip(usize),
    Inline {
        len: usize,
        args: Vec<InlineArg>,
    },
    /// A multibulk command of this many bytes, its arguments in `spans`.
    Multibulk {
        len: usize,
    },
}

/// An inline argument: a span of the line when it holds no quotes, else its decoded bytes.
enum InlineArg {
    Span(std::ops::Range<usize>),
    Owned(Vec<u8>),
}

/// The result of looking for a line terminator.
enum Search {
    Found(usize),
    /// Not there yet; this many bytes of the line are known not to hold it.
    Missing(usize),
    TooLong,
}

/// Looks for `terminator` among the first `window` bytes of the line starting at `start`,
/// skipping the first `scanned` bytes, which are known not to hold it.
fn search_line(buf: &[u8], start: usize, scanned: usize, terminator: u8, window: usize) -> Search {
    let end = start.saturating_add(window).min(buf.len());
    let from = start.saturating_add(scanned).min(end);
    let found = buf
        .get(from..end)
        .and_then(|bytes| bytes.iter().position(|&b| b == terminator));
    match found {
        Some(offset) => Search::Found(from + offset),
        None if end.saturating_sub(start) >= window => Search::TooLong,
        None => Search::Missing(end.saturating_sub(start)),
    }
}

impl RequestParser {
    /// A parser enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            progress: Progress::Start,
            spans: Vec::new(),
        }
    }

    /// The limits this parser enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Enforces `limits` from now on. A pending command is checked again from its start, as
    /// what was accepted under the old limits may not be under the new ones.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
        self.progress = Progress::Start;
    }

    /// Parses one command from the start of `buf`, with the results of [`parse_command`],
    /// resuming the checks where the previous call stopped.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ParseError> {
        let mut args = Vec::new();
        Ok(self.parse_into(buf, &mut args)?.then_some(args))
    }

    /// [`parse`](Self::parse) into `args`, which is cleared first and filled when a command is
    /// complete (the result is then `true`): a connection reuses one vector for every command.
    pub fn parse_into(
        &mut self,
        buf: &mut BytesMut,
        args: &mut Vec<Bytes>,
    ) -> Result<bool, ParseError> {
        args.clear();
        loop {
            if !self.progress.fits(buf) {
                self.progress = Progress::Start;
            }
            let step = self.step(buf);
            if !matches!(step, Ok(Step::Incomplete(_))) {
                self.progress = Progress::Start;
            }
            match step? {
                Step::Incomplete(progress) => {
                    self.progress = progress;
                    return Ok(false);
                }
                Step::Skip(len) => buf.advance(len),
                Step::Inline { len, args: inline } => {
                    let frame = buf.split_to(len).freeze();
                    args.extend(inline.into_iter().map(|arg| match arg {
                        InlineArg::Span(span) => frame.slice(span),
                        InlineArg::Owned(bytes) => Bytes::from(bytes),
                    }));
                    return Ok(true);
                }
                Step::Multibulk { len } => {
                    let frame = buf.split_to(len).freeze();
                    args.extend(self.spans.drain(..).map(|span| frame.slice(span)));
                    self.spans.shrink_to(KEPT_SPANS);
                    return Ok(true);
                }
            }
        }
    }

    fn step(&mut self, buf: &[u8]) -> Result<Step, ParseError> {
        match (self.progress, buf.first()) {
            (_, None) => Ok(Step::Incomplete(Progress::Start)),
            (Progress::Inline { scanned }, _) => self.inline(buf, scanned),
            (Progress::Count { scanned }, _) => self.count(buf, scanned),
            (
                Progress::Args {
                    expected,
                    seen,
                    at,
                    scanned,
                },
                _,
            ) => self.args(buf, expected, seen, at, scanned),
            (Progress::Start, Some(b'*')) => self.count(buf, 0),
            (Progress::Start, Some(_)) => self.inline(buf, 0),
        }
    }

    fn inline(&self, buf: &[u8], scanned: usize) -> Result<Step, ParseError> {
        let max = self.limits.max_inline_len;
        // The window leaves room for the "\r\n" after a line of the largest allowed length.
        let newline = match search_line(buf, 0, scanned, b'\n', max.saturating_add(2)) {
            Search::Found(newline) => newline,
            Search::Missing(scanned) => return Ok(Step::Incomplete(Progress::Inline { scanned })),
            Search::TooLong => return Err(protocol_error("too big inline request")),
        };
        let line = &buf[..newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > max {
            return Err(protocol_error("too big inline request"));
        }
        let args = split_inline(line)?;
        if args.is_empty() {
            return Ok(Step::Skip(newline + 1));
        }
        Ok(Step::Inline {
            len: newline + 1,
            args,
        })
    }

    fn count(&mut self, buf: &[u8], scanned: usize) -> Result<Step, ParseError> {
        let window = self.limits.max_inline_len.saturating_add(1);
        let (count, next) = match quick_header(buf, 0, window) {
            Some((count, next)) => (i64::try_from(count).unwrap_or(i64::MAX), next),
            None => match self.header(buf, 0, scanned, Header::Count)? {
                Line::Complete { digits, next } => (
                    parse_int(digits).ok_or_else(|| Header::Count.invalid())?,
                    next,
                ),
                Line::Pending { scanned } => {
                    return Ok(Step::Incomplete(Progress::Count { scanned }));
                }
            },
        };
        if count <= 0 {
            return Ok(Step::Skip(next));
        }
        let expected = usize::try_from(count)
            .ok()
            .filter(|&count| count <= self.limits.max_array_len)
            .ok_or_else(|| Header::Count.invalid())?;
        self.spans.clear();
        self.args(buf, expected, 0, next, 0)
    }

    fn args(
        &mut self,
        buf: &[u8],
        expected: usize,
        mut seen: usize,
        mut at: usize,
        mut scanned: usize,
    ) -> Result<Step, ParseError> {
        while seen < expected {
            match buf.get(at) {
                None => break,
                Some(b'$') => {}
                Some(&other) => {
                    return Err(ParseError::Protocol(format!(
                        "expected '$', got '{}'",
                        char::from(other)
                    )));
                }
            }
            let window = self.limits.max_inline_len.saturating_add(1);
            let (len, data_at) = match quick_header(buf, at, window) {
                Some(header) => header,
                None => match self.header(buf, at, scanned, Header::Bulk)? {
                    Line::Complete { digits, next } => {
                        let len = parse_int(digits)
                            .and_then(|len| usize::try_from(len).ok())
                            .ok_or_else(|| Header::Bulk.invalid())?;
                        (len, next)
                    }
                    Line::Pending { scanned: now } => {
                        scanned = now;
                        break;
                    }
                },
            };
            if len > self.limits.max_bulk_len {
                return Err(Header::Bulk.invalid());
            }
            let data_end = data_at
                .checked_add(len)
                .ok_or_else(|| Header::Bulk.invalid())?;
            let after = buf.get(data_end..).unwrap_or_default();
            let trailer = &after[..after.len().min(2)];
            if !b"\r\n".starts_with(trailer) {
                return Err(Header::Bulk.invalid());
            }
            if trailer.len() < 2 {
                // The data has not all arrived. Its header is read again next time: a few
                // bytes, as a valid length has at most 20 digits.
                scanned = 0;
                break;
            }
            self.spans.push(data_at..data_end);
            seen += 1;
            at = data_end + 2;
            scanned = 0;
        }
        if seen < expected {
            return Ok(Step::Incomplete(Progress::Args {
                expected,
                seen,
                at,
                scanned,
            }));
        }
        Ok(Step::Multibulk { len: at })
    }

    /// Reads the `*` or `$` header line starting at `start`, whose first `scanned` bytes are
    /// known to hold no `\r`.
    fn header<'a>(
        &self,
        buf: &'a [u8],
        start: usize,
        scanned: usize,
        header: Header,
    ) -> Result<Line<'a>, ParseError> {
        // Redis gives up on a header once more than `PROTO_INLINE_MAX_SIZE` bytes arrived
        // without its `\r`.
        let window = self.limits.max_inline_len.saturating_add(1);
        match search_line(buf, start, scanned, b'\r', window) {
            Search::Found(cr) => match buf.get(cr + 1) {
                // The `\r` is found again next time, at once.
                None => Ok(Line::Pending {
                    scanned: cr - start,
                }),
                Some(b'\n') => Ok(Line::Complete {
                    digits: buf.get(start + 1..cr).unwrap_or_default(),
                    next: cr + 2,
                }),
                Some(_) => Err(header.invalid()),
            },
            Search::Missing(scanned) => Ok(Line::Pending { scanned }),
            Search::TooLong => Err(header.too_big()),
        }
    }
}

/// The most digits [`quick_header`] reads: more could overflow, and such lengths are
/// refused anyway.
const QUICK_DIGITS: usize = 18;

/// The number and the position after the `*<count>\r\n` or `$<len>\r\n` header at `at` when
/// it is complete and well-formed, read in one pass over its bytes; `None` leaves every other
/// case, errors included, to the general path. It accepts exactly what the general path
/// accepts: no leading zero, no sign, and the `\r` within `window` bytes of the `*` or `$`.
fn quick_header(buf: &[u8], at: usize, window: usize) -> Option<(usize, usize)> {
    let digits_at = at.checked_add(1)?;
    let rest = buf.get(digits_at..)?;
    let mut len: usize = 0;
    for (count, &byte) in rest.iter().enumerate().take(QUICK_DIGITS + 1) {
        match byte {
            b'0'..=b'9' if count < QUICK_DIGITS && (count == 0 || len > 0) => {
                len = len * 10 + usize::from(byte - b'0');
            }
            b'\r' if count > 0 && count + 1 < window && rest.get(count + 1) == Some(&b'\n') => {
                return Some((len, digits_at + count + 2));
            }
            _ => return None,
        }
    }
    None
}

/// The two kinds of header line, which Redis words errors about differently.
#[derive(Debug, Clone, Copy)]
enum Header {
    /// `*<count>`.
    Count,
    /// `$<len>`.
    Bulk,
}

impl Header {
    fn invalid(self) -> ParseError {
        protocol_error(match self {
            Header::Count => "invalid multibulk length",
            Header::Bulk => "invalid bulk length",
        })
    }

    fn too_big(self) -> ParseError {
        protocol_error(match self {
            Header::Count => "too big mbulk count string",
            Header::Bulk => "too big bulk count string",
        })
    }
}

/// A header line, read or still arriving.
enum Line<'a> {
    Complete {
        digits: &'a [u8],
        next: usize,
    },
    /// Its `\r\n` has not arrived; this many of its bytes hold no `\r`.
    Pending {
        scanned: usize,
    },
}

/// Parses a decimal integer exactly as Redis's `string2ll`: an optional `-`, then digits with
/// no leading zero (a lone `0` aside), no `+`, no spaces, no overflow.
fn parse_int(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'0'] => return Some(0),
        [b'-', digits @ ..] => (true, digits),
        digits => (false, digits),
    };
    if !matches!(digits.first(), Some(b'1'..=b'9')) {
        return None;
    }
    let mut value: u64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    if negative {
        0_i64.checked_sub_unsigned(value)
    } else {
        i64::try_from(value).ok()
    }
}

/// Splits an inline command into arguments like Redis's `sdssplitargs`: words separated by
/// spaces and tabs, `"..."` with the escapes `\n \r \t \b \a \xHH` (any other escaped byte
/// stands for itself) and `'...'` with only `\'`. A closing quote must end its word.
fn split_inline(line: &[u8]) -> Result<Vec<InlineArg>, ParseError> {
    let unbalanced = || protocol_error("unbalanced quotes in request");
    let mut args = Vec::new();
    let mut at = 0;
    loop {
        // Between words Redis skips everything `isspace` accepts.
        while line.get(at).is_some_and(|&b| is_space(b)) {
            at += 1;
        }
        if at == line.len() {
            return Ok(args);
        }
        let start = at;
        while line
            .get(at)
            .is_some_and(|&b| !ends_word(b) && b != b'"' && b != b'\'')
        {
            at += 1;
        }
        if !matches!(line.get(at), Some(b'"' | b'\'')) {
            args.push(InlineArg::Span(start..at));
            continue;
        }
        // A quote: the word is decoded into its own buffer from here on.
        let mut word = line[start..at].to_vec();
        loop {
            match line.get(at) {
                None => break,
                Some(&b) if ends_word(b) => {
                    at += 1;
                    break;
                }
                Some(&quote @ (b'"' | b'\'')) => {
                    at = read_quoted(line, at + 1, quote, &mut word).ok_or_else(unbalanced)?;
                    break;
                }
                Some(&b) => {
                    word.push(b);
                    at += 1;
                }
            }
        }
        args.push(InlineArg::Owned(word));
    }
}

/// Bytes `sdssplitargs` ends an unquoted word at (NUL aside: this parser is binary-safe).
fn ends_word(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// C's `isspace`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Decodes a quoted string whose content starts at `at` into `word`. Returns where parsing
/// continues after the closing quote, or None when the quotes are unbalanced.
fn read_quoted(line: &[u8], mut at: usize, quote: u8, word: &mut Vec<u8>) -> Option<usize> {
    loop {
        let b = *line.get(at)?;
        if b == quote {
            // The closing quote must be followed by a space or the end of the line.
            return match line.get(at + 1) {
                Some(&next) if !is_space(next) => None,
                _ => Some(at + 1),
            };
        }
        match (quote, b, line.get(at + 1).copied()) {
            (b'"', b'\\', Some(b'x')) => {
                let high = line.get(at + 2).and_then(|&h| hex_value(h));
                let low = line.get(at + 3).and_then(|&l| hex_value(l));
                if let (Some(high), Some(low)) = (high, low) {
                    word.push(high << 4 | low);
                    at += 4;
                } else {
                    word.push(b'x');
                    at += 2;
                }
            }
            (b'"', b'\\', Some(escaped)) => {
                word.push(match escaped {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                });
                at += 2;
            }
            (b'\'', b'\\', Some(b'\'')) => {
                word.push(b'\'');
                at += 2;
            }
            _ => {
                word.push(b);
                at += 1;
            }
        }
    }
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything parsing one input produced: the commands, then the error or the bytes of an
    /// unfinished command left in the buffer.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        commands: Vec<Vec<Vec<u8>>>,
        error: Option<ParseError>,
        rest: Vec<u8>,
    }

    fn to_vecs(args: Vec<Bytes>) -> Vec<Vec<u8>> {
        args.into_iter().map(|arg| arg.to_vec()).collect()
    }

    /// Feeds `input` in pieces of the given lengths (the rest in one last piece), parsing
    /// every complete command after each piece, with one parser or a fresh one per call.
    fn feed(input: &[u8], pieces: &[usize], limits: Limits, stateful: bool) -> Outcome {
        let mut parser = RequestParser::new(limits);
        let mut buf = BytesMut::new();
        let mut commands = Vec::new();
        let mut fed = 0;
        let mut pieces = pieces.iter().copied();
        loop {
            let take = pieces
                .next()
                .unwrap_or(input.len() - fed)
                .min(input.len() - fed);
            buf.extend_from_slice(&input[fed..fed + take]);
            fed += take;
            loop {
                let before = buf.clone();
                let parsed = if stateful {
                    parser.parse(&mut buf)
                } else {
                    parse_command(&mut buf, &limits)
                };
                match parsed {
                    Ok(Some(args)) => {
                        assert!(buf.len() < before.len(), "a command consumes bytes");
                        commands.push(to_vecs(args));
                    }
                    Ok(None) => break,
                    Err(error) => {
                        assert!(before.ends_with(&buf), "an error consumes no command");
                        let mut rest = buf.to_vec();
                        rest.extend_from_slice(&input[fed..]);
                        return Outcome {
                            commands,
                            error: Some(error),
                            rest,
                        };
                    }
                }
            }
            if fed == input.len() {
                return Outcome {
                    commands,
                    error: None,
                    rest: buf.to_vec(),
                };
            }
        }
    }

    fn whole(input: &[u8], limits: Limits) -> Outcome {
        feed(input, &[], limits, true)
    }

    fn commands(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let outcome = whole(input, Limits::default());
        assert_eq!(
            outcome.error,
            None,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
        assert!(
            outcome.rest.is_empty(),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
        outcome.commands
    }

    fn command(input: &[u8]) -> Vec<Vec<u8>> {
        let mut all = commands(input);
        assert_eq!(all.len(), 1, "input {:?}", String::from_utf8_lossy(input));
        all.remove(0)
    }

    fn words(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|word| word.as_bytes().to_vec()).collect()
    }

    fn error_of(input: &[u8], limits: Limits) -> String {
        match whole(input, limits).error {
            Some(ParseError::Protocol(text)) => text,
            None => panic!("no error for {:?}", String::from_utf8_lossy(input)),
        }
    }

    fn small_limits() -> Limits {
        Limits {
            max_bulk_len: 32,
            max_array_len: 8,
            max_inline_len: 16,
            max_buffered: 256,
        }
    }

    #[test]
    fn multibulk_commands() {
        assert_eq!(
            command(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"),
            words(&["SET", "k", ""])
        );
        // Bulk data is binary: CR, LF, NUL and '*' inside are data.
        assert_eq!(
            command(b"*2\r\n$4\r\nECHO\r\n$6\r\na\r\n\0*$\r\n"),
            vec![b"ECHO".to_vec(), b"a\r\n\0*$".to_vec()]
        );
        assert_eq!(command(b"*1\r\n$4\r\nPING\r\n"), words(&["PING"]));
    }

    #[test]
    fn one_pass_headers_agree_with_the_general_path() {
        let digits = [
            "0",
            "7",
            "10",
            "007",
            "-1",
            "+5",
            " 5",
            "123456789012345678",
        ];
        let longer = "1234567890123456789";
        let endings = ["\r\n", "\r", "\rx", "\n", "", "x\r\n"];
        for window in [2, 3, 4, 8, 20, 65_537] {
            let parser = RequestParser::new(Limits {
                max_inline_len: window - 1,
                ..Limits::default()
            });
            for text in digits.iter().chain([&longer]) {
                for ending in endings {
                    let header = format!("${text}{ending}");
                    let quick = quick_header(header.as_bytes(), 0, window);
                    let general = match parser.header(header.as_bytes(), 0, 0, Header::Bulk) {
                        Ok(Line::Complete { digits, next }) => parse_int(digits)
                            .and_then(|len| usize::try_from(len).ok())
                            .map(|len| (len, next)),
                        _ => None,
                    };
                    // Past its digit limit the one-pass reader leaves valid headers too.
                    if quick.is_some() || text.len() <= QUICK_DIGITS {
                        assert_eq!(quick, general, "{header:?} in a window of {window}");
                    }
                }
            }
        }
        assert_eq!(quick_header(b"$5\r\nhello\r\n", 0, 100), Some((5, 4)));
    }

    #[test]
    fn arguments_share_the_frame() {
        let mut buf = BytesMut::from(&b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n*1\r\n$4\r\nPI"[..]);
        let args = parse_command(&mut buf, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(args, vec![Bytes::from("ECHO"), Bytes::from("hello")]);
        // Both arguments are views of the frame's allocation, where the frame holds them.
        assert_eq!(args[1].as_ptr() as usize - args[0].as_ptr() as usize, 10);
        assert_eq!(&buf[..], b"*1\r\n$4\r\nPI");
    }

    #[test]
    fn inline_commands() {
        assert_eq!(command(b"PING\r\n"), words(&["PING"]));
        assert_eq!(command(b"PING\n"), words(&["PING"]));
        assert_eq!(command(b"  set\t a   b \r\n"), words(&["set", "a", "b"]));
        // A vertical tab separates words only between them, like `isspace` versus the word
        // terminators in `sdssplitargs`.
        assert_eq!(command(b"a\x0bb \x0bc\n"), words(&["a\x0bb", "c"]));
        assert_eq!(command(b"a\rb\n"), words(&["a", "b"]));
        assert_eq!(
            command(b"set \"a b\" 'c d' \"\" ''\r\n"),
            words(&["set", "a b", "c d", "", ""])
        );
        assert_eq!(
            command(b"echo \"\\n\\r\\t\\b\\a\\\\\\\"\\x41\\x7a\\xzz\\q\"\n"),
            vec![b"echo".to_vec(), b"\n\r\t\x08\x07\\\"Azxzzq".to_vec()]
        );
        assert_eq!(command(b"echo \"\\x4\"\n"), words(&["echo", "x4"]));
        assert_eq!(command(b"echo \"\\xff\\x00\"\n")[1], vec![0xff, 0]);
        assert_eq!(
            command(b"echo 'it\\'s' 'a\\nb' '\"'\n"),
            words(&["echo", "it's", "a\\nb", "\""])
        );
        // A quote inside a word opens a quoted part of the same word.
        assert_eq!(command(b"a\"b c\" d\n"), words(&["ab c", "d"]));
        assert_eq!(command(b"\"a\"\t'b'\x0c\"c\"\n"), words(&["a", "b", "c"]));
        // Inline commands are binary-safe.
        assert_eq!(command(b"a\0b\n"), vec![b"a\0b".to_vec()]);
        assert_eq!(
            command(b"\xff\xfe x\n"),
            vec![b"\xff\xfe".to_vec(), b"x".to_vec()]
        );
    }

    #[test]
    fn unbalanced_quotes() {
        for input in [
            &b"set \"a\n"[..],
            b"set 'a\n",
            b"set \"a\"b\n",
            b"set 'a'b\n",
            b"set \"a\\\"\n",
            b"set \"a\\\n",
            b"set 'a\\'\n",
            b"\"\n",
        ] {
            assert_eq!(
                error_of(input, Limits::default()),
                "unbalanced quotes in request",
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn empty_commands_are_skipped() {
        assert_eq!(
            commands(b"\r\n\n  \t\r\n*0\r\n*-1\r\n*-7\r\nPING\r\n\n"),
            vec![words(&["PING"])]
        );
        let outcome = whole(b"\r\n\n*0\r\n   \n", Limits::default());
        assert_eq!(
            outcome,
            Outcome {
                commands: vec![],
                error: None,
                rest: vec![]
            }
        );
        // Skipped commands before an unfinished one are consumed; the unfinished one is not.
        let outcome = whole(b"\n*0\r\n*1\r\n$4\r\nPI", Limits::default());
        assert_eq!(outcome.rest, b"*1\r\n$4\r\nPI");
    }

    #[test]
    fn pipelined_commands() {
        let input = b"PING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\necho \"x y\"\n\n*1\r\n$4\r\nQUIT\r\n";
        assert_eq!(
            commands(input),
            vec![
                words(&["PING"]),
                words(&["ECHO", "hi"]),
                words(&["echo", "x y"]),
                words(&["QUIT"]),
            ]
        );
    }

    const VALID: &[&[u8]] = &[
        b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n",
        b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n",
        b"*1\r\n$12\r\nab\r\n\r\ncd\r\n\r\n\r\n",
        b"*0\r\n*1\r\n$4\r\nPING\r\n",
        b"PING\r\n",
        b"set \"a \\x41\\\"\" 'b\\'c'  d\r\n",
        b"\r\n\nGET k\n",
        b"*2\r\n$1\r\na\r\n$1\r\nb\r\nPING\r\n*1\r\n$3\r\nGET\r\nx y\n",
    ];

    #[test]
    fn every_split_point_resumes() {
        let limits = Limits::default();
        for input in VALID {
            let expected = whole(input, limits);
            assert_eq!(expected.error, None);
            assert!(expected.rest.is_empty());
            for split in 0..=input.len() {
                for stateful in [true, false] {
                    assert_eq!(
                        feed(input, &[split], limits, stateful),
                        expected,
                        "{:?} split at {split}",
                        String::from_utf8_lossy(input)
                    );
                }
            }
            for stateful in [true, false] {
                assert_eq!(feed(input, &[1; 256], limits, stateful), expected);
            }
        }
        // Every split of all of them back to back, and the state kept across the commands.
        let all: Vec<u8> = VALID.concat();
        let expected = whole(&all, limits);
        for split in 0..=all.len() {
            assert_eq!(feed(&all, &[split], limits, true), expected);
        }
    }

    #[test]
    fn a_partial_command_consumes_nothing() {
        for input in [VALID[0], VALID[1], VALID[2], VALID[4], VALID[5]] {
            for end in 0..input.len() {
                let mut buf = BytesMut::from(&input[..end]);
                assert_eq!(parse_command(&mut buf, &Limits::default()), Ok(None));
                assert_eq!(&buf[..], &input[..end]);
            }
        }
    }

    #[test]
    fn the_parser_resumes_where_it_stopped() {
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = BytesMut::from(&b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$10\r\n12"[..]);
        assert_eq!(parser.parse(&mut buf), Ok(None));
        assert_eq!(
            parser.progress,
            Progress::Args {
                expected: 3,
                seen: 2,
                at: 18,
                scanned: 0
            }
        );
        buf.extend_from_slice(b"34567890\r\n");
        assert_eq!(
            to_vecs(parser.parse(&mut buf).unwrap().unwrap()),
            words(&["a", "b", "1234567890"])
        );
        assert_eq!(parser.progress, Progress::Start);
        // A header line being searched is not searched again from its start.
        let mut buf = BytesMut::from(&b"*1\r\n$123"[..]);
        assert_eq!(parser.parse(&mut buf), Ok(None));
        assert_eq!(
            parser.progress,
            Progress::Args {
                expected: 1,
                seen: 0,
                at: 4,
                scanned: 4
            }
        );
        let mut buf = BytesMut::from(&b"GET abc"[..]);
        let mut parser = RequestParser::new(Limits::default());
        assert_eq!(parser.parse(&mut buf), Ok(None));
        assert_eq!(parser.progress, Progress::Inline { scanned: 7 });
        assert_eq!(parser.limits(), &Limits::default());
        // New limits apply to the pending command too.
        parser.set_limits(Limits {
            max_inline_len: 4,
            ..Limits::default()
        });
        assert_eq!(
            parser.parse(&mut buf),
            Err(ParseError::Protocol("too big inline request".into()))
        );
    }

    #[test]
    fn a_parser_handed_other_bytes_starts_over() {
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$5\r\nab"[..]);
        assert_eq!(parser.parse(&mut buf), Ok(None));
        let mut other = BytesMut::from(&b"PING\r\n"[..]);
        assert_eq!(
            parser.parse(&mut other).map(|args| args.map(to_vecs)),
            Ok(Some(words(&["PING"])))
        );
        assert_eq!(parser.parse(&mut buf), Ok(None));
        let mut short = BytesMut::from(&b"*1\r\n$1\r\nx\r\n"[..]);
        assert_eq!(
            parser.parse(&mut short).map(|args| args.map(to_vecs)),
            Ok(Some(words(&["x"])))
        );
    }

    #[test]
    fn protocol_errors_use_redis_wording() {
        let limits = Limits::default();
        let cases: &[(&[u8], &str)] = &[
            (b"*abc\r\n", "invalid multibulk length"),
            (b"*\r\n", "invalid multibulk length"),
            (b"*01\r\n", "invalid multibulk length"),
            (b"*+1\r\n", "invalid multibulk length"),
            (b"*-0\r\n", "invalid multibulk length"),
            (b"*1 \r\n", "invalid multibulk length"),
            (b"*1048577\r\n", "invalid multibulk length"),
            (b"*99999999999999999999\r\n", "invalid multibulk length"),
            (b"*1\rx", "invalid multibulk length"),
            (b"*1\r\n$abc\r\n", "invalid bulk length"),
            (b"*1\r\n$-1\r\n", "invalid bulk length"),
            (b"*1\r\n$\r\n", "invalid bulk length"),
            (b"*1\r\n$536870913\r\n", "invalid bulk length"),
            (b"*1\r\n$3\rx", "invalid bulk length"),
            // The data must end with CRLF exactly where its length says.
            (b"*1\r\n$3\r\nabcd\r\n", "invalid bulk length"),
            (b"*1\r\n$3\r\nab\r\n\r\n", "invalid bulk length"),
            (b"*1\r\n$3\r\nabc\n", "invalid bulk length"),
            (b"*1\r\nfoo\r\n", "expected '$', got 'f'"),
            (b"*2\r\n$3\r\nfoo\r\n:1\r\n", "expected '$', got ':'"),
            (b"*1\r\n\r\n", "expected '$', got '\r'"),
        ];
        for (input, message) in cases {
            assert_eq!(
                error_of(input, limits),
                *message,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // The first byte decides, before the header line is complete.
        assert_eq!(error_of(b"*1\r\nx", limits), "expected '$', got 'x'");
        let reply = ParseError::Protocol("invalid bulk length".into()).reply();
        let mut encoded = BytesMut::new();
        reply.encode(crate::server::resp::Protocol::Resp2, &mut encoded);
        assert_eq!(
            &encoded[..],
            b"-ERR Protocol error: invalid bulk length\r\n"
        );
        assert_eq!(
            ParseError::Protocol("x".into()).to_string(),
            "Protocol error: x"
        );
    }

    #[test]
    fn limits_bound_counts_and_lengths() {
        let limits = small_limits();
        assert_eq!(error_of(b"*9\r\n", limits), "invalid multibulk length");
        assert_eq!(
            whole(b"*8\r\n", limits),
            Outcome {
                commands: vec![],
                error: None,
                rest: b"*8\r\n".to_vec()
            }
        );
        assert_eq!(error_of(b"*1\r\n$33\r\n", limits), "invalid bulk length");
        let mut at_limit = b"*1\r\n$32\r\n".to_vec();
        at_limit.extend_from_slice(&[b'x'; 32]);
        at_limit.extend_from_slice(b"\r\n");
        assert_eq!(
            whole(&at_limit, limits).commands,
            vec![vec![vec![b'x'; 32]]]
        );
        // A huge declared count or length is refused or waited for, never allocated.
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = BytesMut::from(&b"*1048576\r\n$536870912\r\n"[..]);
        assert_eq!(parser.parse(&mut buf), Ok(None));
        assert_eq!(parser.spans.capacity(), 0);
        assert!(Limits::default().buffer_exceeded(1024 * 1024 * 1024 + 1));
        assert!(!Limits::default().buffer_exceeded(1024 * 1024 * 1024));
    }

    #[test]
    fn too_long_lines() {
        let limits = Limits::default();
        let max = limits.max_inline_len;
        // An inline line of the largest size is accepted, with either terminator.
        for terminator in [&b"\r\n"[..], b"\n"] {
            let mut line = vec![b'a'; max];
            line.extend_from_slice(terminator);
            assert_eq!(whole(&line, limits).commands, vec![vec![vec![b'a'; max]]]);
            let mut line = vec![b'a'; max + 1];
            line.extend_from_slice(terminator);
            assert_eq!(error_of(&line, limits), "too big inline request");
        }
        // Unterminated: waited for while it could still fit, refused once it cannot.
        assert_eq!(whole(&vec![b'a'; max + 1], limits).error, None);
        assert_eq!(
            error_of(&vec![b'a'; max + 2], limits),
            "too big inline request"
        );
        let mut count = b"*".to_vec();
        count.extend_from_slice(&vec![b'1'; max - 1]);
        assert_eq!(whole(&count, limits).error, None);
        count.push(b'1');
        assert_eq!(error_of(&count, limits), "too big mbulk count string");
        let mut bulk = b"*1\r\n$".to_vec();
        bulk.extend_from_slice(&vec![b'1'; max - 1]);
        assert_eq!(whole(&bulk, limits).error, None);
        bulk.push(b'1');
        assert_eq!(error_of(&bulk, limits), "too big bulk count string");
        // The same outcome when the bytes arrive one at a time.
        assert_eq!(
            feed(&bulk, &vec![1; bulk.len()], limits, true).error,
            Some(ParseError::Protocol("too big bulk count string".into()))
        );
    }

    #[test]
    fn spans_do_not_keep_a_huge_capacity() {
        let mut input = b"*5000\r\n".to_vec();
        for _ in 0..5000 {
            input.extend_from_slice(b"$1\r\nx\r\n");
        }
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(parser.parse(&mut buf).unwrap().unwrap().len(), 5000);
        assert!(parser.spans.capacity() < 5000);
    }

    #[test]
    fn integers_parse_like_string2ll() {
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b"-1"), Some(-1));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999999",
        ] {
            assert_eq!(parse_int(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// xorshift64*: deterministic, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pieces(&mut self, len: usize) -> Vec<usize> {
            (0..len).map(|_| self.below(6)).collect()
        }
    }

    /// Parsing `input` whole, in random pieces, and byte by byte, with one parser or a fresh
    /// one per call, gives the same commands and the same error.
    fn check_consistent(input: &[u8], limits: Limits, rng: &mut Rng) {
        let expected = whole(input, limits);
        let pieces = rng.pieces(input.len());
        let bytes = vec![1; input.len()];
        for stateful in [true, false] {
            assert_eq!(
                feed(input, &pieces, limits, stateful),
                expected,
                "{input:?}"
            );
            assert_eq!(feed(input, &bytes, limits, stateful), expected, "{input:?}");
        }
    }

    #[test]
    fn garbage_never_panics_and_splitting_never_matters() {
        const ALPHABET: &[u8] = b"**$$\r\n\r\n0123456789-  \t\"'\\xaF\x0b\0";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let len = rng.below(48);
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.below(16) == 0 {
                        rng.next() as u8
                    } else {
                        ALPHABET[rng.below(ALPHABET.len())]
                    }
                })
                .collect();
            let limits = if round % 2 == 0 {
                small_limits()
            } else {
                Limits::default()
            };
            check_consistent(&input, limits, &mut rng);
        }
    }

    #[test]
    fn mutated_commands_never_panic_and_splitting_never_matters() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let all = VALID.concat();
        for round in 0..20_000 {
            let mut input = if round % 3 == 0 {
                all.clone()
            } else {
                VALID[rng.below(VALID.len())].to_vec()
            };
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(input.len() + 1);
                match rng.below(5) {
                    0 if at < input.len() => input[at] ^= 1 << rng.below(8),
                    1 if at < input.len() => {
                        input.remove(at);
                    }
                    2 => input.insert(at, b"*$\r\n-09 \"'"[rng.below(10)]),
                    3 => input.truncate(at),
                    _ => {
                        let end = (at + rng.below(8)).min(input.len());
                        let copy = input[at..end].to_vec();
                        input.splice(at..at, copy);
                    }
                }
            }
            let limits = if round % 2 == 0 {
                small_limits()
            } else {
                Limits::default()
            };
            check_consistent(&input, limits, &mut rng);
        }
    }
}
