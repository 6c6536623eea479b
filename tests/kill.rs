//! A crash test at process level: a child process (this test binary, run again with one ignored
//! test selected) appends, reads and acknowledges under `Durability::Always` and reports every
//! operation the moment it returns; the parent kills it with SIGKILL at a random moment, opens
//! the store, and checks every reported operation against what recovery found. `KILL_ROUNDS`
//! and `KILL_SEED` run more or other rounds.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::ops::Bound;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use weir::group::PendingQuery;
use weir::{Durability, GroupPolicy, GroupStart, Message, Store, StoreOptions, StreamId};

mod rng;
use rng::Rng;

/// Set in the child's environment: the data directory it writes.
const CHILD_DIR: &str = "WEIR_KILL_CHILD_DIR";
/// Set in the child's environment: the seed of its choices.
const CHILD_SEED: &str = "WEIR_KILL_CHILD_SEED";
const DEFAULT_ROUNDS: usize = 120;
const STREAM: &[u8] = b"jobs";
const GROUP: &[u8] = b"workers";
/// Every line the child reports starts with this, to tell it from the test harness's output.
const REPORT: &str = "done ";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn open(dir: &Path) -> Store {
    let options = StoreOptions {
        durability: Durability::Always,
        ..StoreOptions::default()
    };
    Store::open_with(dir, options).expect("open store")
}

/// The child's side: runs only when the parent starts this binary with the child's environment
/// (`cargo test` skips it as ignored). Appends entries, reads them through a group and
/// acknowledges most, printing a line after each operation returns, until it is killed.
#[test]
#[ignore = "the writer process of `acknowledged_operations_survive_sigkill`, started by it"]
fn writer_child() {
    let dir = std::env::var(CHILD_DIR).expect("started by the parent, with its data directory");
    let mut rng = Rng(env_number(CHILD_SEED, 1) | 1);
    let store = open(Path::new(&dir));
    let stream = store.stream(STREAM).expect("stream");
    let group = match stream.group(GROUP) {
        Ok(group) => group,
        Err(_) => stream
            .create_group(GROUP, GroupStart::Beginning, GroupPolicy::default())
            .expect("create group"),
    };
    let mut out = std::io::stdout().lock();
    let tag = rng.next();
    for op in 0.. {
        let body = format!("{tag:016x}-{op}");
        let appended = stream.append(Message::new(body.clone())).expect("append");
        writeln!(out, "{REPORT}append {} {body}", appended.id).expect("report");
        for delivery in group
            .read(b"worker", 1 + rng.below(2) as usize)
            .expect("read")
        {
            writeln!(
                out,
                "{REPORT}read {} {}",
                delivery.id(),
                delivery.deliveries
            )
            .expect("report");
            if rng.below(4) != 0 {
                assert!(delivery.ack().expect("ack"), "delivered entry is pending");
                writeln!(out, "{REPORT}ack {}", delivery.id()).expect("report");
            }
        }
        out.flush().expect("flush stdout");
    }
}

/// What the children reported as done, over all rounds.
#[derive(Debug, Default)]
struct Reported {
    appended: BTreeMap<StreamId, String>,
    /// The highest delivery count reported for each entry read.
    delivered: BTreeMap<StreamId, u32>,
    acked: BTreeSet<StreamId>,
    /// Read last, with nothing reported after it: the child may have acknowledged it without
    /// living to say so.
    maybe_acked: BTreeSet<StreamId>,
    last_read: Option<StreamId>,
}

impl Reported {
    fn take(&mut self, line: &str) {
        let Some(report) = line.strip_prefix(REPORT) else {
            return;
        };
        let words: Vec<&str> = report.split(' ').collect();
        self.last_read = None;
        let id = |at: usize| -> StreamId { words[at].parse().expect("reported ID") };
        match words[0] {
            "append" => {
                self.appended.insert(id(1), words[2].to_string());
            }
            "read" => {
                let count: u32 = words[2].parse().expect("reported count");
                let most = self.delivered.entry(id(1)).or_default();
                *most = (*most).max(count);
                self.last_read = Some(id(1));
            }
            "ack" => {
                self.acked.insert(id(1));
            }
            other => panic!("unknown report {other:?}"),
        }
    }
}

/// Runs one child until it has reported `reports` operations, waits `delay`, kills it, and
/// collects every complete line it wrote.
fn run_child(dir: &Path, seed: u64, reports: usize, delay: Duration, into: &mut Reported) -> usize {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "writer_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_SEED, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the writer");
    let mut lines = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut seen = 0;
    let mut line = String::new();
    while seen < reports {
        line.clear();
        if lines.read_line(&mut line).expect("read child output") == 0 {
            panic!("the writer exited before it was killed");
        }
        if line.starts_with(REPORT) {
            seen += 1;
        }
        into.take(line.trim_end());
    }
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL the writer");
    child.wait().expect("reap the writer");
    // Whatever it printed before dying is in the pipe; a line cut short was not reported.
    loop {
        line.clear();
        if lines.read_line(&mut line).expect("read child output") == 0 || !line.ends_with('\n') {
            break;
        }
        if line.starts_with(REPORT) {
            seen += 1;
        }
        into.take(line.trim_end());
    }
    into.maybe_acked.extend(into.last_read.take());
    seen
}

/// Everything reported is in the recovered store: appended entries with their bodies (and no
/// entry the children did not write), acknowledged entries out of the pending list, and pending
/// entries with at least the delivery count reported.
fn check(dir: &Path, reported: &Reported, round: usize) {
    let store = open(dir);
    let stream = store.stream(STREAM).expect("stream");
    let entries = stream
        .range(Bound::Unbounded, Bound::Unbounded, usize::MAX)
        .expect("range");
    let found: BTreeMap<StreamId, String> = entries
        .iter()
        .map(|entry| {
            let body = String::from_utf8(entry.body().to_vec()).expect("a body the child wrote");
            (entry.id, body)
        })
        .collect();
    for (id, body) in &reported.appended {
        assert_eq!(
            found.get(id),
            Some(body),
            "round {round}: appended {id} lost"
        );
    }
    for (id, body) in &found {
        let (tag, op) = body.split_once('-').expect("a body the child wrote");
        assert!(
            tag.len() == 16 && op.parse::<u64>().is_ok(),
            "round {round}: {id} holds {body:?}"
        );
    }
    let pending: BTreeMap<StreamId, u32> = stream.inspect_groups(|state, _| {
        let query = PendingQuery {
            start: StreamId::MIN,
            end: StreamId::MAX,
            count: usize::MAX,
            consumer: None,
            min_idle_ms: None,
        };
        state
            .pending_range(GROUP, &query, 0)
            .expect("the group exists")
            .iter()
            .map(|row| (row.id, row.deliveries))
            .collect()
    });
    for id in &reported.acked {
        assert!(
            !pending.contains_key(id),
            "round {round}: acknowledged {id} is pending again"
        );
    }
    for (id, count) in &reported.delivered {
        if !reported.acked.contains(id) {
            let now = pending.get(id);
            if now.is_none() && reported.maybe_acked.contains(id) {
                continue;
            }
            assert!(
                now.is_some_and(|now| now >= count),
                "round {round}: {id} delivered {count} times, now pending with {now:?}"
            );
        }
    }
    let last_delivered = stream
        .inspect_groups(|state, log| state.group_info(log, GROUP).map(|info| info.last_delivered))
        .expect("group info");
    let newest_read = reported
        .delivered
        .keys()
        .next_back()
        .copied()
        .unwrap_or(StreamId::MIN);
    assert!(
        last_delivered >= newest_read,
        "round {round}: the group went back"
    );
    // A crash, not a close: the next writer recovers from whatever this open left.
    drop(stream);
    drop(store);
}

#[test]
fn acknowledged_operations_survive_sigkill() {
    let rounds = env_number("KILL_ROUNDS", DEFAULT_ROUNDS as u64) as usize;
    let mut rng = Rng(env_number("KILL_SEED", 0x6b11_5eed) | 1);
    let dir = tempfile::tempdir().expect("data directory");
    let mut reported = Reported::default();
    let mut operations = 0;
    for round in 0..rounds {
        let reports = 1 + rng.below(40) as usize;
        let delay = Duration::from_micros(rng.below(3_000));
        operations += run_child(dir.path(), rng.next(), reports, delay, &mut reported);
        check(dir.path(), &reported, round);
    }
    assert!(
        reported.acked.len() > rounds && operations > 3 * rounds,
        "too little happened: {operations} operations, {} acknowledged",
        reported.acked.len()
    );
}
