//! `SLOWLOG`: the most recent commands that ran longer than `slowlog-log-slower-than`
//! microseconds, at most `slowlog-max-len` of them, newest first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use super::{Caller, Run};

/// Redis's defaults: 10 ms, 128 entries.
const DEFAULT_SLOWER_THAN_USEC: i64 = 10_000;
const DEFAULT_MAX_LEN: usize = 128;
/// How many arguments (the name included) and how many bytes of each an entry keeps, as Redis.
const MAX_ARGS: usize = 32;
const MAX_ARG_BYTES: usize = 128;

/// One logged command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlowEntry {
    pub(crate) id: u64,
    /// Unix time in seconds when the command finished.
    pub(crate) unix_secs: u64,
    pub(crate) usec: u64,
    /// The command and its arguments, shortened as Redis shortens them.
    pub(crate) args: Vec<Bytes>,
    /// `ip:port` of the client.
    pub(crate) client: String,
    pub(crate) client_name: Bytes,
}

#[derive(Debug)]
pub(crate) struct SlowLog {
    /// Negative: nothing is logged; 0: everything is.
    slower_than_usec: AtomicI64,
    max_len: AtomicUsize,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<SlowEntry>>,
}

impl Default for SlowLog {
    fn default() -> Self {
        SlowLog {
            slower_than_usec: AtomicI64::new(DEFAULT_SLOWER_THAN_USEC),
            max_len: AtomicUsize::new(DEFAULT_MAX_LEN),
            next_id: AtomicU64::new(0),
            entries: Mutex::default(),
        }
    }
}

impl SlowLog {
    pub(crate) fn slower_than_usec(&self) -> i64 {
        self.slower_than_usec.load(Ordering::Relaxed)
    }

    pub(crate) fn set_slower_than_usec(&self, usec: i64) {
        self.slower_than_usec.store(usec, Ordering::Relaxed);
    }

    pub(crate) fn max_len(&self) -> usize {
        self.max_len.load(Ordering::Relaxed)
    }

    /// Sets the most entries kept, dropping the oldest beyond it.
    pub(crate) fn set_max_len(&self, max_len: usize) {
        self.max_len.store(max_len, Ordering::Relaxed);
        self.entries.lock().truncate(max_len);
    }

    pub(crate) fn is_slow(&self, usec: u64) -> bool {
        let threshold = self.slower_than_usec();
        threshold >= 0 && i128::from(usec) >= i128::from(threshold)
    }

    pub(crate) fn push(&self, run: &Run<'_>, usec: u64, unix_secs: u64, caller: Caller) {
        let entry = SlowEntry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            unix_secs,
            usec,
            args: shortened(&redacted(run.name, run.args)),
            client: caller.addr.map(|addr| addr.to_string()).unwrap_or_default(),
            client_name: caller.name.unwrap_or_default(),
        };
        let max_len = self.max_len();
        let mut entries = self.entries.lock();
        entries.push_front(entry);
        entries.truncate(max_len);
    }

    /// The newest `count` entries (all with `None`), newest first.
    pub(crate) fn newest(&self, count: Option<usize>) -> Vec<SlowEntry> {
        let entries = self.entries.lock();
        let count = count.unwrap_or(entries.len());
        entries.iter().take(count).cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub(crate) fn reset(&self) {
        self.entries.lock().clear();
    }
}

/// The arguments with passwords replaced, so that the log never shows them: those of AUTH and
/// HELLO, and the value of `CONFIG SET requirepass`.
fn redacted(name: &str, args: &[Bytes]) -> Vec<Bytes> {
    const HIDDEN: Bytes = Bytes::from_static(b"(redacted)");
    let hides = |at: usize| match name {
        "auth" | "hello" => at > 0,
        "config" => at > 2 && at % 2 == 1 && args[at - 1].eq_ignore_ascii_case(b"requirepass"),
        _ => false,
    };
    args.iter()
        .enumerate()
        .map(|(at, arg)| if hides(at) { HIDDEN } else { arg.clone() })
        .collect()
}

/// At most [`MAX_ARGS`] arguments, the last of a longer call saying how many more there were,
/// each cut to [`MAX_ARG_BYTES`] with a note of how many bytes more it had.
fn shortened(args: &[Bytes]) -> Vec<Bytes> {
    let kept = if args.len() > MAX_ARGS {
        MAX_ARGS - 1
    } else {
        args.len()
    };
    let mut out: Vec<Bytes> = args[..kept].iter().map(shortened_arg).collect();
    if kept < args.len() {
        let more = args.len() - kept;
        out.push(Bytes::from(format!("... ({more} more arguments)")));
    }
    out
}

fn shortened_arg(arg: &Bytes) -> Bytes {
    if arg.len() <= MAX_ARG_BYTES {
        return arg.clone();
    }
    let mut cut = arg[..MAX_ARG_BYTES].to_vec();
    let more = arg.len() - MAX_ARG_BYTES;
    cut.extend_from_slice(format!("... ({more} more bytes)").as_bytes());
    Bytes::from(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|word| Bytes::from(word.to_string()))
            .collect()
    }

    #[test]
    fn long_calls_and_long_arguments_are_shortened() {
        let many: Vec<Bytes> = (0..40).map(|n| Bytes::from(n.to_string())).collect();
        let short = shortened(&many);
        assert_eq!(short.len(), MAX_ARGS);
        assert_eq!(short[MAX_ARGS - 1], "... (9 more arguments)");
        let long = shortened(&[Bytes::from(vec![b'x'; 130])]);
        assert_eq!(long[0].len(), MAX_ARG_BYTES + "... (2 more bytes)".len());
        assert!(long[0].ends_with(b"... (2 more bytes)"));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redacted("auth", &args(&["AUTH", "secret"])),
            args(&["AUTH", "(redacted)"])
        );
        assert_eq!(
            redacted(
                "config",
                &args(&["CONFIG", "SET", "maxclients", "5", "requirepass", "pw"])
            ),
            args(&[
                "CONFIG",
                "SET",
                "maxclients",
                "5",
                "requirepass",
                "(redacted)"
            ])
        );
        assert_eq!(
            redacted("xlen", &args(&["XLEN", "s"])),
            args(&["XLEN", "s"])
        );
    }

    #[test]
    fn the_log_keeps_the_newest_entries_up_to_its_length() {
        let log = SlowLog::default();
        log.set_max_len(2);
        let call = args(&["XLEN", "s"]);
        for usec in [10, 20, 30] {
            let run = Run {
                name: "xlen",
                args: &call,
                fast: true,
                skip_slowlog: false,
                took: std::time::Duration::from_micros(usec),
            };
            log.push(
                &run,
                usec,
                1,
                Caller {
                    addr: None,
                    name: None,
                },
            );
        }
        let newest = log.newest(None);
        assert_eq!(
            newest.iter().map(|e| (e.id, e.usec)).collect::<Vec<_>>(),
            [(2, 30), (1, 20)]
        );
        assert_eq!(log.newest(Some(1)).len(), 1);
        log.set_slower_than_usec(-1);
        assert!(!log.is_slow(u64::MAX));
        log.set_slower_than_usec(0);
        assert!(log.is_slow(0));
        log.reset();
        assert_eq!(log.len(), 0);
    }
}
