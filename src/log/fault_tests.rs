//! Every multi-step operation of the log with a fault at each of its file-system calls: a full
//! disk, an I/O error, a short write, a crash. Each must fail cleanly or complete; the log must
//! go on taking appends that are then durable; and a reopen must find every acknowledged entry,
//! nothing that was never appended, and no acknowledged trim or deletion undone.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::path::Path;

use super::*;
use crate::fs::fault::{self, Fault, Installed};

const NOW: u64 = 1_700_000_000_000;
const FAULTS: [Fault; 5] = [
    Fault::NoSpace,
    Fault::DiskFull,
    Fault::Io,
    Fault::ShortWrite,
    Fault::Crash,
];

fn options() -> LogOptions {
    LogOptions {
        max_segment_bytes: 16 << 10,
        initial_segment_bytes: 4 << 10,
        index_interval_bytes: 256,
    }
}

/// What the test asked of the log and what the log acknowledged.
#[derive(Default)]
struct Model {
    /// Bodies in the order they were handed to `append`, acknowledged or not.
    attempted: Vec<Vec<u8>>,
    /// Bodies whose append and a later flush both succeeded.
    acknowledged: BTreeSet<Vec<u8>>,
    /// Bodies appended but not yet covered by a successful flush.
    unflushed: Vec<Vec<u8>>,
    /// Bodies whose removal (trim or delete) and a later flush both succeeded.
    removed: BTreeSet<Vec<u8>>,
    /// Bodies whose removal succeeded but was not yet flushed.
    removing: Vec<Vec<u8>>,
}

impl Model {
    fn append(&mut self, log: &Log, body: Vec<u8>) -> Result<(), LogError> {
        self.attempted.push(body.clone());
        let entry = NewEntry {
            id: IdSpec::Auto,
            headers: &[] as &[(&[u8], &[u8])],
            body: &body,
            idempotency: None,
        };
        log.append(&[entry], NOW)?;
        self.unflushed.push(body);
        Ok(())
    }

    fn flush(&mut self, log: &Log) -> Result<(), LogError> {
        log.flush()?;
        self.acknowledged.extend(self.unflushed.drain(..));
        self.removed.extend(self.removing.drain(..));
        Ok(())
    }

    fn removing(&mut self, bodies: impl IntoIterator<Item = Vec<u8>>) {
        self.removing.extend(bodies);
    }

    /// Checks a reopened log against what was acknowledged.
    fn check(&self, log: &Log, step: &str) {
        let found: Vec<Vec<u8>> = live_bodies(log);
        let mut attempted = self.attempted.iter();
        for body in &found {
            assert!(
                attempted.any(|a| a == body),
                "{step}: entry {:?} was never appended, or is out of order",
                String::from_utf8_lossy(body)
            );
        }
        let found: BTreeSet<Vec<u8>> = found.into_iter().collect();
        for body in &self.acknowledged {
            if !self.removed.contains(body) && !self.removing.contains(body) {
                assert!(
                    found.contains(body),
                    "{step}: acknowledged entry {:?} lost",
                    String::from_utf8_lossy(body)
                );
            }
        }
        for body in &self.removed {
            assert!(
                !found.contains(body),
                "{step}: acknowledged removal of {:?} undone",
                String::from_utf8_lossy(body)
            );
        }
    }
}

fn live_bodies(log: &Log) -> Vec<Vec<u8>> {
    log.range(Bound::Unbounded, Bound::Unbounded, usize::MAX)
        .unwrap()
        .iter()
        .map(|entry| entry.body().to_vec())
        .collect()
}

fn body(n: usize, len: usize) -> Vec<u8> {
    let mut body = format!("entry-{n:05}-").into_bytes();
    body.resize(len.max(body.len()), b'x');
    body
}

fn open(dir: &Path) -> Log {
    Log::open(dir, options(), false, NOW).unwrap().0
}

/// How a scenario's operation runs: counting its calls, or with a fault at one of them.
#[derive(Debug, Clone, Copy)]
enum Step {
    Count,
    Fail(u64, Fault),
}

impl Step {
    fn install(self, root: &Path) -> Installed {
        match self {
            Step::Count => fault::count(root),
            Step::Fail(at, fault) => fault::inject(root, at, fault),
        }
    }
}

/// Runs a scenario once to count the calls of its operation, then once with each fault at each
/// of those calls. `scenario` sets up a fresh log, runs the operation under the step's plan,
/// and returns how many calls the operation made.
fn at_each_step(mut scenario: impl FnMut(Step) -> u64) {
    let calls = scenario(Step::Count);
    assert!(calls > 0, "the operation made no file-system call");
    for at in 0..calls {
        for fault in FAULTS {
            scenario(Step::Fail(at, fault));
        }
    }
}

/// The common shape: `setup` writes acknowledged state; `operation` runs under the fault; then,
/// unless the process "crashed", the same log must take one more append durably; then the log
/// is dropped without a close (as a crash leaves it), reopened, and checked — twice, so that
/// what the first reopen repaired is stable.
fn run_scenario(
    step: Step,
    setup: impl FnOnce(&Log, &mut Model),
    operation: impl FnOnce(&Log, &mut Model),
) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let log = open(dir.path());
    setup(&log, &mut model);
    model.flush(&log).unwrap();
    let plan = step.install(dir.path());
    operation(&log, &mut model);
    let crashed = matches!(step, Step::Fail(_, Fault::Crash)) && plan.fired();
    let calls = plan.calls();
    if crashed {
        drop(log);
        drop(plan);
    } else {
        drop(plan);
        let after = body(99_999, 40);
        if model.append(&log, after).is_ok() {
            let _ = model.flush(&log);
        }
        drop(log);
    }
    let label = format!("{step:?}");
    let reopened = Log::open(dir.path(), options(), false, NOW)
        .unwrap_or_else(|error| panic!("{label}: reopen failed: {error}"))
        .0;
    model.check(&reopened, &label);
    model.append(&reopened, body(100_000, 40)).unwrap();
    model.flush(&reopened).unwrap();
    drop(reopened);
    let again = open(dir.path());
    model.check(&again, &format!("{label}, second reopen"));
    calls
}

fn fill(log: &Log, model: &mut Model, from: usize, count: usize, len: usize) {
    for n in from..from + count {
        model.append(log, body(n, len)).unwrap();
    }
}

/// Appends (and flushes) until a segment rolls over: create, preallocate, map, header sync,
/// rename, directory sync, the sealed segment's index.
#[test]
fn a_roll_fails_cleanly_or_completes_at_each_step() {
    at_each_step(|step| {
        run_scenario(
            step,
            |log, model| fill(log, model, 0, 12, 300),
            |log, model| {
                let before = log.segment_count();
                let mut n = 100;
                while log.segment_count() == before && n < 140 {
                    if model.append(log, body(n, 300)).is_err() {
                        break;
                    }
                    n += 1;
                }
                let _ = model.flush(log);
            },
        )
    });
}

/// A record larger than an empty active segment replaces it with a larger one: the old file must
/// stay in the directory until the new one is in place, and take the appends that still fit if
/// the new one cannot be made.
#[test]
fn replacing_an_empty_segment_keeps_it_until_its_replacement_is_in_place() {
    at_each_step(|step| {
        run_scenario(
            step,
            |_, _| {},
            |log, model| {
                if model.append(log, body(0, 8 << 10)).is_ok() {
                    let _ = model.flush(log);
                }
                for n in 1..4 {
                    if model.append(log, body(n, 40)).is_ok() {
                        let _ = model.flush(log);
                    }
                }
            },
        )
    });
}

/// A checkpoint: flush, active index file, new meta journal, checkpoint snapshot, directory
/// sync, removal of the old journal.
#[test]
fn a_checkpoint_fails_cleanly_or_completes_at_each_step() {
    at_each_step(|step| {
        run_scenario(
            step,
            |log, model| {
                fill(log, model, 0, 20, 300);
                let first = log
                    .range(Bound::Unbounded, Bound::Unbounded, 1)
                    .unwrap()
                    .remove(0);
                log.delete(&[first.id]).unwrap();
                model.removing([first.body().to_vec()]);
            },
            |log, model| {
                fill(log, model, 100, 3, 300);
                let _ = log.checkpoint();
                // A change after the checkpoint must land in whichever journal is in force.
                if let Ok(entries) = log.range(Bound::Unbounded, Bound::Unbounded, 2)
                    && let Some(second) = entries.get(1)
                    && log.delete(&[second.id]).is_ok()
                {
                    model.removing([second.body().to_vec()]);
                }
                let _ = model.flush(log);
                let _ = log.checkpoint();
            },
        )
    });
}

/// A trim that drops whole segments: meta journal, its sync, file removals, directory sync.
#[test]
fn a_trim_fails_cleanly_or_completes_at_each_step() {
    at_each_step(|step| {
        run_scenario(
            step,
            |log, model| fill(log, model, 0, 60, 300),
            |log, model| {
                let before = live_bodies(log);
                if log.trim_max_len(10, false, None).is_ok() {
                    let kept: BTreeSet<Vec<u8>> = live_bodies(log).into_iter().collect();
                    model.removing(before.into_iter().filter(|b| !kept.contains(b)));
                }
                let _ = model.flush(log);
            },
        )
    });
}

/// Retention by size: a trim event and the removal of the oldest sealed segments.
#[test]
fn retention_fails_cleanly_or_completes_at_each_step() {
    at_each_step(|step| {
        run_scenario(
            step,
            |log, model| {
                fill(log, model, 0, 60, 300);
                log.record_meta(MetaEvent::SetRetention(Retention {
                    max_age_ms: None,
                    max_bytes: Some(20 << 10),
                }))
                .unwrap();
            },
            |log, model| {
                let before = live_bodies(log);
                if log.enforce_retention(NOW).is_ok() {
                    let kept: BTreeSet<Vec<u8>> = live_bodies(log).into_iter().collect();
                    model.removing(before.into_iter().filter(|b| !kept.contains(b)));
                }
                let _ = model.flush(log);
            },
        )
    });
}

/// A clean close: the last checkpoint marked clean.
#[test]
fn a_close_fails_cleanly_or_completes_at_each_step() {
    at_each_step(|step| {
        run_scenario(
            step,
            |log, model| fill(log, model, 0, 30, 300),
            |log, model| {
                fill(log, model, 100, 2, 300);
                if log.close().is_ok() {
                    model.acknowledged.extend(model.unflushed.drain(..));
                }
            },
        )
    });
}

/// XSETID below the last ID of an emptied log: a roll, a trim, the removal of every sealed
/// segment and a checkpoint. Each step leaves the old last ID or the new one, the new one once
/// the call succeeded; the log then takes entries above whichever it has, in order.
#[test]
fn lowering_the_last_id_of_an_empty_log_fails_cleanly_or_completes_at_each_step() {
    let low = crate::id::StreamId::new(5, 0);
    at_each_step(|step| {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let mut model = Model::default();
        fill(&log, &mut model, 0, 60, 300);
        log.trim_max_len(0, false, None).unwrap();
        log.flush().unwrap();
        let high = log.last_id();
        let plan = step.install(dir.path());
        let lowered = log.set_last_id(low, NOW).is_ok();
        let calls = plan.calls();
        let crashed = matches!(step, Step::Fail(_, Fault::Crash)) && plan.fired();
        drop(plan);
        if !crashed {
            assert_eq!(log.last_id(), if lowered { low } else { high }, "{step:?}");
        }
        drop(log);
        let reopened = open(dir.path());
        let last = reopened.last_id();
        if lowered {
            assert_eq!(last, low, "{step:?}: an acknowledged XSETID was undone");
        } else {
            assert!(last == high || last == low, "{step:?}: last ID {last}");
        }
        assert!(reopened.is_empty(), "{step:?}: trimmed entries came back");
        let next = crate::id::StreamId::new(last.ms + 1, 0);
        let entry = NewEntry {
            id: IdSpec::Explicit(next),
            headers: &[] as &[(&[u8], &[u8])],
            body: b"after",
            idempotency: None,
        };
        reopened.append(&[entry], NOW).unwrap();
        reopened.flush().unwrap();
        drop(reopened);
        let again = open(dir.path());
        let ids: Vec<_> = again
            .range(Bound::Unbounded, Bound::Unbounded, 10)
            .unwrap()
            .iter()
            .map(|entry| entry.id)
            .collect();
        assert_eq!(ids, [next], "{step:?}");
        assert_eq!(again.last_id(), next, "{step:?}");
        calls
    });
}

#[test]
fn the_last_id_goes_below_deleted_entries_only_when_none_is_live() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut model = Model::default();
    fill(&log, &mut model, 0, 3, 40);
    let ids: Vec<_> = log
        .range(Bound::Unbounded, Bound::Unbounded, 10)
        .unwrap()
        .iter()
        .map(|entry| entry.id)
        .collect();
    let low = crate::id::StreamId::new(7, 0);
    assert!(matches!(
        log.set_last_id(low, NOW),
        Err(LogError::IdTooSmall { .. })
    ));
    log.delete(&ids).unwrap();
    log.set_last_id(low, NOW).unwrap();
    assert_eq!((log.last_id(), log.len(), log.segment_count()), (low, 0, 1));
    drop(log);
    let reopened = open(dir.path());
    assert_eq!((reopened.last_id(), reopened.len()), (low, 0));
}
