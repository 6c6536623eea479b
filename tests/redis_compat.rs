//! queue-server against a real `redis-server` 7.0, byte for byte: one broad, deterministic
//! stream workload (explicit IDs) runs on both through raw RESP, in RESP2 and then in RESP3,
//! and every reply must be the same bytes. Only what depends on the clock is normalised
//! (the idle times of `XPENDING`, checked to be integers).
//!
//! Skipped (with a message) where `redis-server` is not installed, unless
//! `WEIR_REQUIRE_REDIS=1`.

mod common;
mod real_redis;

use std::net::TcpStream;

use common::{IO_TIMEOUT, Server, encode, read_reply};
use real_redis::RedisServer;

/// Steps whose replies are known to differ: each is still sent to both servers (so the state
/// stays the same), but its reply is not compared. The step as written in [`WORKLOAD`], and
/// why it differs. Empty: every step of the workload answers as Redis 7.0 does.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

/// The workload, one command per line (words split at spaces). Keys: `s` (the main stream),
/// `q` (made by MKSTREAM), `t` (trims), `missing` (never created).
const WORKLOAD: &[&str] = &[
    // XADD: explicit IDs, sequence wildcards, and every kind of refused ID.
    "XADD s 1-1 f v",
    "XADD s 1-2 f v2 g w",
    "XADD s 1-1 f v",
    "XADD s 1-0 f v",
    "XADD s 0-0 f v",
    "XADD s 1-x f v",
    "XADD s -1 f v",
    "XADD s 5-* f v",
    "XADD s 5-* f v",
    "XADD s 3 f v",
    "XADD s 10 f v",
    "XADD s 18446744073709551615-18446744073709551615 f v",
    "XADD s 11-0 f",
    "XADD s",
    "XADD missing NOMKSTREAM 1-1 f v",
    "EXISTS missing",
    "XADD s NOMKSTREAM 12-0 f v",
    "XADD s 12-1 a 1 b 2 c 3",
    "XADD s 12-2 f v",
    "XADD s 13-0 f v",
    "XADD s 14-0 f v",
    "XADD s 15-0 f v",
    "XADD s 16-0 f v",
    "XLEN s",
    "XLEN missing",
    // Exact trimming while adding, and its errors.
    "XADD t 1-0 n 1",
    "XADD t 2-0 n 2",
    "XADD t 3-0 n 3",
    "XADD t MAXLEN 2 4-0 n 4",
    "XADD t MAXLEN = 2 5-0 n 5",
    "XADD t MINID 5 6-0 n 6",
    "XADD t MINID = 6-0 7-0 n 7",
    "XRANGE t - +",
    "XADD t MAXLEN -1 8-0 n 8",
    "XADD t MAXLEN x 8-0 n 8",
    "XADD t MAXLEN 2 LIMIT 10 8-0 n 8",
    "XADD t MAXLEN 2 MINID 1 8-0 n 8",
    "XADD t MINID x 8-0 n 8",
    "XLEN t",
    // Ranges.
    "XRANGE s - +",
    "XRANGE s - + COUNT 2",
    "XRANGE s - + COUNT 0",
    "XRANGE s - + COUNT -1",
    "XRANGE s (1-2 +",
    "XRANGE s (12-0 (14-0",
    "XRANGE s 5 12",
    "XRANGE s 12 12",
    "XRANGE s + -",
    "XRANGE s - + COUNT",
    "XRANGE s - + LIMIT 2",
    "XRANGE s x +",
    "XRANGE s (18446744073709551615-18446744073709551615 +",
    "XRANGE s - (0-0",
    "XRANGE missing - +",
    "XREVRANGE s + -",
    "XREVRANGE s + - COUNT 3",
    "XREVRANGE s (15-0 (5-0",
    "XREVRANGE s - +",
    // Deleting and trimming.
    "XDEL s 13-0 99-0",
    "XDEL s 13-0",
    "XDEL s bad",
    "XDEL missing 1-1",
    "XLEN s",
    "XADD t 9-0 n 9",
    "XADD t 10-0 n 10",
    "XTRIM t MAXLEN 3",
    "XTRIM t MAXLEN = 3",
    "XTRIM t MINID 9",
    "XTRIM t MINID = 10",
    "XTRIM t MAXLEN x",
    "XTRIM t MAXLEN -1",
    "XTRIM t FOO 1",
    "XTRIM t MAXLEN 1 LIMIT 5",
    "XTRIM missing MAXLEN 0",
    "XRANGE t - +",
    // XREAD without groups.
    "XREAD COUNT 1 STREAMS s 0-0",
    "XREAD STREAMS s t 14 5",
    "XREAD STREAMS s missing 0 0",
    "XREAD STREAMS missing 0",
    "XREAD STREAMS s $",
    "XREAD STREAMS s 16-0",
    "XREAD COUNT 0 STREAMS t 0",
    "XREAD BLOCK 10 STREAMS s $",
    "XREAD STREAMS s",
    "XREAD STREAMS s t 0",
    "XREAD COUNT x STREAMS s 0",
    "XREAD STREAMS s bad",
    "XREAD FOO s 0",
    // Groups.
    "XGROUP CREATE s g 0",
    "XGROUP CREATE s g 0",
    "XGROUP CREATE missing g 0",
    "XGROUP CREATE q g $ MKSTREAM",
    "XLEN q",
    "XGROUP CREATE s g2 $ ENTRIESREAD 3",
    "XGROUP CREATE s g3 0 ENTRIESREAD -5",
    "XGROUP CREATE s g3 0 ENTRIESREAD x",
    "XGROUP CREATE s g4 bad",
    "XGROUP CREATE s g5 0 FOO",
    "XGROUP CREATE s",
    "XGROUP CREATECONSUMER s g alice",
    "XGROUP CREATECONSUMER s g alice",
    "XGROUP CREATECONSUMER s nogroup alice",
    "XGROUP CREATECONSUMER missing g alice",
    "XGROUP FOO s g",
    // Reading in a group.
    "XREADGROUP GROUP g alice COUNT 2 STREAMS s >",
    "XREADGROUP GROUP g bob COUNT 3 STREAMS s >",
    "XREADGROUP GROUP g alice STREAMS s 0",
    "XREADGROUP GROUP g alice COUNT 1 STREAMS s 1-1",
    "XREADGROUP GROUP g bob STREAMS s 0",
    "XREADGROUP GROUP g carol NOACK COUNT 1 STREAMS s >",
    "XREADGROUP GROUP g carol STREAMS s 0",
    "XREADGROUP GROUP nogroup alice STREAMS s >",
    "XREADGROUP GROUP g alice STREAMS missing >",
    "XREADGROUP GROUP g alice STREAMS s",
    "XREADGROUP GROUP g alice STREAMS s q >",
    "XREADGROUP GROUP g alice STREAMS s $",
    "XREADGROUP GROUP g STREAMS s >",
    "XREADGROUP GROUP g alice COUNT 1 STREAMS s q > >",
    "XREADGROUP GROUP g dave STREAMS s >",
    "XREADGROUP GROUP g dave STREAMS s >",
    "XREADGROUP GROUP g dave BLOCK 10 STREAMS s >",
    "XGROUP CREATECONSUMER s g dave",
    // Pending entries: the summary, the extended form (idle normalised), per consumer.
    "XPENDING s g",
    "XPENDING s g - + 10",
    "XPENDING s g - + 2",
    "XPENDING s g - + 10 alice",
    "XPENDING s g - + 10 nobody",
    "XPENDING s g (1-1 (12-1 10",
    "XPENDING s g IDLE 0 - + 10",
    "XPENDING s g IDLE 3600000 - + 10",
    "XPENDING s g - + 0",
    "XPENDING s g - + -1",
    "XPENDING s g - +",
    "XPENDING s g x + 10",
    "XPENDING s nogroup",
    "XPENDING missing g",
    "XPENDING s g2",
    // Acknowledging.
    "XACK s g 1-1 99-0",
    "XACK s g 1-1",
    "XACK s g bad",
    "XACK s nogroup 1-2",
    "XACK missing g 1-2",
    "XPENDING s g",
    // Claiming (min idle 0, or one no entry reaches, so that nothing depends on the clock).
    "XCLAIM s g erin 0 1-2",
    "XCLAIM s g erin 0 1-2 JUSTID",
    "XCLAIM s g erin 0 5-0 5-1 RETRYCOUNT 5 JUSTID",
    "XCLAIM s g erin 3600000 10-0",
    "XCLAIM s g erin 0 99-0",
    "XCLAIM s g erin 0 14-0 FORCE JUSTID",
    "XCLAIM s g erin 0 1-2 FOO",
    "XCLAIM s g erin x 1-2",
    "XCLAIM s nogroup erin 0 1-2",
    "XPENDING s g - + 20",
    "XAUTOCLAIM s g frank 0 0-0 COUNT 1",
    "XAUTOCLAIM s g frank 0 0-0 COUNT 2 JUSTID",
    "XAUTOCLAIM s g frank 3600000 0-0",
    "XAUTOCLAIM s g frank 0 0-0 COUNT 0",
    "XAUTOCLAIM s g frank 0 bad",
    "XAUTOCLAIM s nogroup frank 0 0-0",
    "XDEL s 12-0",
    "XAUTOCLAIM s g frank 0 0-0 COUNT 100",
    "XPENDING s g - + 20",
    "XPENDING s g",
    // Moving and removing groups and consumers.
    "XGROUP SETID s g 0 ENTRIESREAD 0",
    "XGROUP SETID s g 12-2",
    "XGROUP SETID s g $",
    "XGROUP SETID s g bad",
    "XGROUP SETID s nogroup 0",
    "XGROUP SETID s g 0 ENTRIESREAD -7",
    "XREADGROUP GROUP g alice COUNT 1 STREAMS s >",
    "XGROUP DELCONSUMER s g bob",
    "XGROUP DELCONSUMER s g bob",
    "XGROUP DELCONSUMER s nogroup bob",
    "XGROUP DESTROY s g2",
    "XGROUP DESTROY s g2",
    "XGROUP DESTROY missing g2",
    "XPENDING s g",
    // XSETID.
    "XSETID s 100-0",
    "XADD s 50-0 f v",
    "XADD s 100-* f v",
    "XSETID s 1-0",
    "XSETID missing 1-0",
    "XSETID s 200-0 ENTRIESADDED 1",
    "XSETID s 200-0 ENTRIESADDED 50 MAXDELETEDID 300-0",
    "XSETID s 200-0 ENTRIESADDED 50 MAXDELETEDID 150-0",
    "XSETID s bad",
    "XSETID s 300-0 FOO 1",
    "XADD s 200-* f v",
    // Approximate trimming: Redis trims whole radix-tree nodes only.
    "XADD a 1-0 n 1",
    "XADD a 2-0 n 2",
    "XADD a 3-0 n 3",
    "XADD a MAXLEN ~ 1 4-0 n 4",
    "XADD a MINID ~ 3 5-0 n 5",
    "XADD a MAXLEN ~ 1 LIMIT 10 6-0 n 6",
    "XTRIM a MAXLEN ~ 1",
    "XTRIM a MINID ~ 4 LIMIT 10",
    "XLEN a",
    "XRANGE a - +",
    // XINFO (times normalised).
    "XINFO STREAM s",
    "XINFO STREAM s FULL",
    "XINFO STREAM s FULL COUNT 1",
    "XINFO GROUPS s",
    "XINFO CONSUMERS s g",
    "XINFO STREAM q",
    "XINFO GROUPS q",
    "XINFO STREAM missing",
    "XINFO GROUPS missing",
    "XINFO CONSUMERS s nogroup",
    // XSETID on an empty stream.
    "XSETID q 5-0 ENTRIESADDED 3 MAXDELETEDID 4-0",
    "XSETID q 3-0",
    "XSETID q 5-0 MAXDELETEDID 6-0",
    "XINFO STREAM q",
    // An emptied stream's last ID may go down, even to 0-0, and new entries follow it.
    "XADD e MAXLEN 0 1000-0 a b",
    "XSETID e 200-0",
    "XINFO STREAM e",
    "XADD e 150-0 a b",
    "XADD e 300-0 a b",
    "XSETID e 100-0",
    "XDEL e 300-0",
    "XSETID e 0-0",
    "XADD e 0-1 a b",
    "XINFO STREAM e",
    "XRANGE e - +",
    "DEL e",
    // An unknown command.
    "XFOO s 1",
    // What is left, and deleting it.
    "XRANGE s - +",
    "XREAD STREAMS s q t 0 0 0",
    "DEL s q t a missing",
    "EXISTS s",
];

/// A raw RESP connection: the bytes of each reply as sent.
struct Raw(TcpStream);

impl Raw {
    fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Raw(stream)
    }

    fn exchange(&mut self, words: &[&str]) -> Vec<u8> {
        use std::io::Write;
        self.0.write_all(&encode(words)).expect("send a command");
        read_reply(&mut self.0)
    }
}

/// A reply parsed just enough to rewrite its time-dependent parts and write it back as it was.
#[derive(Debug, Clone, PartialEq)]
enum Resp {
    /// `+`, `-`, `:`, `_`, `#`, `,`, `(`: a line.
    Line(u8, Vec<u8>),
    /// `$`, `=`, `!`: a length and data (`None` for `$-1`).
    Bulk(u8, Option<Vec<u8>>),
    /// `*`, `~`, `>`, `%`, `|`: items (a map's keys and values alternate; `None` for `*-1`).
    Aggregate(u8, Option<Vec<Resp>>),
}

fn parse(bytes: &[u8]) -> Resp {
    let mut at = 0;
    let value = parse_at(bytes, &mut at);
    assert_eq!(at, bytes.len(), "one reply: {}", bytes.escape_ascii());
    value
}

fn parse_at(bytes: &[u8], at: &mut usize) -> Resp {
    let end = *at + bytes[*at..].windows(2).position(|w| w == b"\r\n").unwrap();
    let kind = bytes[*at];
    let line = bytes[*at + 1..end].to_vec();
    *at = end + 2;
    let number = || -> i64 { String::from_utf8_lossy(&line).parse().unwrap() };
    match kind {
        b'$' | b'=' | b'!' => {
            let Ok(len) = usize::try_from(number()) else {
                return Resp::Bulk(kind, None);
            };
            let data = bytes[*at..*at + len].to_vec();
            *at += len + 2;
            Resp::Bulk(kind, Some(data))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let Ok(count) = usize::try_from(number()) else {
                return Resp::Aggregate(kind, None);
            };
            let per = if matches!(kind, b'%' | b'|') { 2 } else { 1 };
            let items = (0..count * per).map(|_| parse_at(bytes, at)).collect();
            Resp::Aggregate(kind, Some(items))
        }
        _ => Resp::Line(kind, line),
    }
}

fn write(value: &Resp, out: &mut Vec<u8>) {
    match value {
        Resp::Line(kind, line) => {
            out.push(*kind);
            out.extend(line);
        }
        Resp::Bulk(kind, None) => out.extend([*kind, b'-', b'1']),
        Resp::Bulk(kind, Some(data)) => {
            out.push(*kind);
            out.extend(format!("{}\r\n", data.len()).bytes());
            out.extend(data);
        }
        Resp::Aggregate(kind, None) => out.extend([*kind, b'-', b'1']),
        Resp::Aggregate(kind, Some(items)) => {
            let per = if matches!(kind, b'%' | b'|') { 2 } else { 1 };
            out.push(*kind);
            out.extend(format!("{}", items.len() / per).bytes());
            for item in items {
                out.extend(b"\r\n");
                write(item, out);
                out.truncate(out.len() - 2);
            }
        }
    }
    out.extend(b"\r\n");
}

/// The reply with its clock-dependent parts replaced (each must be an integer): the idle time
/// of each row of an extended `XPENDING`, and in `XINFO` the idle and seen times and the
/// delivery times of pending entries.
fn normalised(words: &[&str], reply: Vec<u8>) -> Vec<u8> {
    let mut value = parse(&reply);
    if words[0] == "XPENDING" && words.len() > 3 {
        clock_in_rows(&mut value, 2);
    }
    if words[0] == "XINFO" {
        clock_in_fields(&mut value);
    }
    let mut out = Vec::new();
    write(&value, &mut out);
    out
}

/// Replaces an integer that the clock decides.
fn clock(value: &mut Resp) {
    let Resp::Line(b':', number) = value else {
        panic!("a time should be an integer: {value:?}");
    };
    let text = String::from_utf8_lossy(number).into_owned();
    assert!(text.parse::<i64>().is_ok(), "a time: {text:?}");
    *number = b"<time>".to_vec();
}

/// Replaces item `at` of each row of a list.
fn clock_in_rows(value: &mut Resp, at: usize) {
    if let Resp::Aggregate(_, Some(rows)) = value {
        for row in rows {
            if let Resp::Aggregate(_, Some(items)) = row
                && let Some(item) = items.get_mut(at)
            {
                clock(item);
            }
        }
    }
}

/// In every map of `XINFO`'s reply (a RESP3 map, or a RESP2 flat list of names and values):
/// the values of the time fields, and the delivery times of the pending rows of groups
/// (`[id, consumer, time, count]`) and consumers (`[id, time, count]`).
fn clock_in_fields(value: &mut Resp) {
    let Resp::Aggregate(kind, Some(items)) = value else {
        return;
    };
    let is_map = *kind == b'%' || (items.len() % 2 == 0 && items.iter().step_by(2).all(is_name));
    if is_map {
        for pair in items.chunks_mut(2) {
            let [name, field] = pair else { continue };
            match name_of(name).as_deref() {
                Some("seen-time" | "idle" | "inactive" | "active-time") => clock(field),
                Some("pending") => {
                    if let Resp::Aggregate(_, Some(rows)) = field {
                        let at = rows.first().map_or(0, |row| match row {
                            Resp::Aggregate(_, Some(items)) => items.len() - 2,
                            _ => 0,
                        });
                        if at > 0 {
                            clock_in_rows(field, at);
                        }
                    }
                }
                _ => clock_in_fields(field),
            }
        }
    } else {
        items.iter_mut().for_each(clock_in_fields);
    }
}

fn name_of(value: &Resp) -> Option<String> {
    match value {
        Resp::Bulk(_, Some(data)) => Some(String::from_utf8_lossy(data).into_owned()),
        Resp::Line(b'+', line) => Some(String::from_utf8_lossy(line).into_owned()),
        _ => None,
    }
}

/// Whether an item could be a field name of XINFO's: a lower-case word with dashes.
fn is_name(value: &Resp) -> bool {
    name_of(value).is_some_and(|name| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
    })
}

/// One step whose replies differ.
struct Difference {
    protocol: u8,
    step: &'static str,
    redis: Vec<u8>,
    weir: Vec<u8>,
}

/// Runs the workload on both servers with the protocol given (after `HELLO 3` for RESP3) and
/// returns the steps whose replies differ, apart from the known ones.
fn compare(redis: &mut Raw, weir: &mut Raw, protocol: u8) -> Vec<Difference> {
    let mut differences = Vec::new();
    if protocol == 3 {
        // HELLO's reply names the server and its version: only its success is compared.
        for raw in [&mut *redis, &mut *weir] {
            let hello = raw.exchange(&["HELLO", "3"]);
            assert!(hello.starts_with(b"%"), "{}", hello.escape_ascii());
        }
    }
    let mut redis_errors = 0;
    for &step in WORKLOAD {
        let words: Vec<&str> = step.split(' ').collect();
        let redis_reply = normalised(&words, redis.exchange(&words));
        redis_errors += usize::from(redis_reply.starts_with(b"-"));
        let weir_reply = normalised(&words, weir.exchange(&words));
        let known = KNOWN_DIFFERENCES.iter().any(|(known, _)| *known == step);
        if known && redis_reply == weir_reply {
            eprintln!("RESP{protocol}: {step:?} now matches: remove it from KNOWN_DIFFERENCES");
        }
        if !known && redis_reply != weir_reply {
            differences.push(Difference {
                protocol,
                step,
                redis: redis_reply,
                weir: weir_reply,
            });
        }
    }
    // A workload mistyped into errors would compare little.
    assert!(
        redis_errors * 2 < WORKLOAD.len(),
        "{redis_errors} of {} steps are errors in Redis",
        WORKLOAD.len()
    );
    differences
}

#[test]
fn stream_replies_match_redis_byte_for_byte() {
    let Some(redis_server) = RedisServer::start_or_skip("stream_replies_match_redis_byte_for_byte")
    else {
        return;
    };
    // queue-server answers as Redis 7.0 does; other releases changed some replies.
    let version = redis_server.version();
    if !version.starts_with("7.0.") {
        eprintln!(
            "stream_replies_match_redis_byte_for_byte: skipped, redis-server is {version}, not 7.0"
        );
        return;
    }
    // queue-server answers as the Redis it is compared with.
    let server = Server::start(&["--redis-version", &version]);
    let mut differences = Vec::new();
    for protocol in [2, 3] {
        let mut redis = Raw::connect(redis_server.port());
        let mut weir = Raw::connect(server.port());
        for raw in [&mut redis, &mut weir] {
            assert_eq!(raw.exchange(&["FLUSHALL"]), b"+OK\r\n");
        }
        differences.extend(compare(&mut redis, &mut weir, protocol));
    }
    let report: Vec<String> = differences
        .iter()
        .map(|d| {
            format!(
                "RESP{} {}\n  redis: {}\n  weir:  {}",
                d.protocol,
                d.step,
                d.redis.escape_ascii(),
                d.weir.escape_ascii()
            )
        })
        .collect();
    assert!(
        report.is_empty(),
        "{} replies differ from Redis's:\n{}",
        report.len(),
        report.join("\n")
    );
}

#[test]
fn normalising_keeps_every_other_byte() {
    let reply = b"*2\r\n*4\r\n$3\r\n1-1\r\n$1\r\na\r\n:1234\r\n:1\r\n*-1\r\n".to_vec();
    assert_eq!(
        normalised(&["XPENDING", "s", "g", "-", "+", "10"], reply.clone()),
        b"*2\r\n*4\r\n$3\r\n1-1\r\n$1\r\na\r\n:<time>\r\n:1\r\n*-1\r\n"
    );
    assert_eq!(normalised(&["XRANGE", "s", "-", "+"], reply.clone()), reply);
    let resp3 = b"%1\r\n+a\r\n|1\r\n_\r\n$-1\r\n".to_vec();
    assert_eq!(normalised(&["XINFO"], resp3.clone()), resp3);
    // A consumer of XINFO STREAM FULL, in RESP2: its seen time and its rows' delivery times.
    let consumer = b"*6\r\n$4\r\nname\r\n$1\r\nc\r\n$9\r\nseen-time\r\n:17\r\n\
                     $7\r\npending\r\n*1\r\n*3\r\n$3\r\n1-1\r\n:16\r\n:2\r\n";
    assert_eq!(
        normalised(&["XINFO"], consumer.to_vec()),
        b"*6\r\n$4\r\nname\r\n$1\r\nc\r\n$9\r\nseen-time\r\n:<time>\r\n\
          $7\r\npending\r\n*1\r\n*3\r\n$3\r\n1-1\r\n:<time>\r\n:2\r\n"
    );
}
