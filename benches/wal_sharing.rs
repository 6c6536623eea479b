//! One Raft log per shard against one log shared by a node's shards, under `Always`.
//!
//! A node with `S` shards keeps `S` Raft logs, each with its own file and group-commit flusher,
//! so a write on each shard costs an `fdatasync` of its own. A log shared by the shards (as
//! RabbitMQ's quorum queues share one WAL a node) would take every shard's batch into one file,
//! and one `fdatasync` would make all of them durable. This measures both with the Raft log's own
//! code: `S` shards, each a thread standing for a shard's leader that appends one entry (a batch
//! of commands) and waits until it is durable before the next, as a leader's log store does
//! under load; either into a log of its own, or, in turn with the other shards, into one log.
//!
//! For each layout it prints entries/s, the process's CPU time per entry, the device's cache
//! flushes per entry (from `/sys/dev/block`, `-` where the directory's device has none) and
//! the median wait for an entry to be durable; each figure is the median of `RUNS` runs (3),
//! the layouts alternating. `SHARDS` (1,4,16), `ENTRY_BYTES` (4096) and `RUN_SECONDS` (2) change the
//! rest: `cargo bench --bench wal_sharing`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use weir::Durability;
use weir::cluster::wal::{Wal, WalEntry, WalLogId, WalOptions};

/// How the shards' entries reach the disk.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// A log a shard, each with its own file and flusher.
    OwnLog,
    /// One log that every shard appends to.
    SharedLog,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::OwnLog => "a log a shard",
            Layout::SharedLog => "one shared log",
        }
    }
}

/// What one run measured.
#[derive(Clone, Copy)]
struct Figures {
    entries_per_second: f64,
    cpu_micros_per_entry: f64,
    /// `None` when the directory's device counts no flushes.
    flushes_per_entry: Option<f64>,
    median_wait_micros: f64,
}

/// A log open for appending, with the index its next entry takes.
struct OpenLog {
    wal: Wal,
    next_index: u64,
}

impl OpenLog {
    fn open(dir: &Path) -> OpenLog {
        let options = WalOptions {
            durability: Durability::Always,
            ..WalOptions::default()
        };
        let (wal, _) = Wal::open(dir, options).expect("open the Raft log");
        OpenLog { wal, next_index: 1 }
    }

    /// Appends one entry and returns what becomes durable with it.
    fn append(&mut self, data: &[u8]) -> weir::durability::PendingFlush {
        let entry = WalEntry {
            id: WalLogId {
                term: 1,
                leader: 1,
                index: self.next_index,
            },
            data: data.to_vec(),
        };
        self.next_index += 1;
        self.wal
            .append(&[entry])
            .expect("append")
            .expect("an entry was written")
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let shard_counts: Vec<usize> = std::env::var("SHARDS")
        .unwrap_or_else(|_| "1,4,16".into())
        .split(',')
        .map(|count| {
            count
                .trim()
                .parse()
                .expect("SHARDS: numbers separated by commas")
        })
        .collect();
    let entry_bytes: usize = env_or("ENTRY_BYTES", 4096);
    let seconds: f64 = env_or("RUN_SECONDS", 2.0);
    let runs: usize = env_or("RUNS", 3);
    let base = tempfile::tempdir().expect("temporary directory");
    println!(
        "{entry_bytes}-byte entries, {seconds} s a run, median of {runs} runs, in {}",
        base.path().display()
    );
    println!(
        "{:>6}  {:<15} {:>11} {:>13} {:>15} {:>14}",
        "shards", "layout", "entries/s", "CPU µs/entry", "flushes/entry", "p50 wait µs"
    );
    for &shards in &shard_counts {
        let mut results: Vec<(Layout, Vec<Figures>)> = vec![
            (Layout::OwnLog, Vec::new()),
            (Layout::SharedLog, Vec::new()),
        ];
        for run in 0..runs {
            for (layout, figures) in &mut results {
                let dir = base
                    .path()
                    .join(format!("{shards}-{run}-{}", *layout as u8));
                figures.push(measure(
                    &dir,
                    *layout,
                    shards,
                    entry_bytes,
                    Duration::from_secs_f64(seconds),
                ));
                std::fs::remove_dir_all(&dir).expect("remove the run's logs");
            }
        }
        for (layout, figures) in &results {
            print_row(shards, *layout, figures);
        }
    }
}

fn print_row(shards: usize, layout: Layout, figures: &[Figures]) {
    let flushes = figures
        .iter()
        .map(|figures| figures.flushes_per_entry)
        .collect::<Option<Vec<f64>>>()
        .map_or_else(
            || "-".to_string(),
            |values| format!("{:.3}", median(values)),
        );
    println!(
        "{:>6}  {:<15} {:>11.0} {:>13.2} {:>15} {:>14.0}",
        shards,
        layout.name(),
        median(figures.iter().map(|f| f.entries_per_second).collect()),
        median(figures.iter().map(|f| f.cpu_micros_per_entry).collect()),
        flushes,
        median(figures.iter().map(|f| f.median_wait_micros).collect()),
    );
}

/// Runs `shards` writers for `duration` in a new directory `dir`.
fn measure(
    dir: &Path,
    layout: Layout,
    shards: usize,
    entry_bytes: usize,
    duration: Duration,
) -> Figures {
    let logs: Vec<Arc<Mutex<OpenLog>>> = match layout {
        Layout::OwnLog => (0..shards)
            .map(|shard| Arc::new(Mutex::new(OpenLog::open(&dir.join(shard.to_string())))))
            .collect(),
        Layout::SharedLog => {
            let shared = Arc::new(Mutex::new(OpenLog::open(dir)));
            vec![shared; shards]
        }
    };
    let data = vec![b'x'; entry_bytes];
    let flushes_before = device_flushes(dir);
    let cpu_before = process_cpu();
    let start = Instant::now();
    let mut waits: Vec<Duration> = std::thread::scope(|scope| {
        let writers: Vec<_> = logs
            .iter()
            .map(|log| scope.spawn(|| write_until(log, &data, start + duration)))
            .collect();
        writers
            .into_iter()
            .flat_map(|writer| writer.join().expect("writer"))
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = process_cpu() - cpu_before;
    let entries = waits.len() as f64;
    let flushes_per_entry = match (flushes_before, device_flushes(dir)) {
        (Some(before), Some(after)) => Some((after - before) as f64 / entries),
        _ => None,
    };
    waits.sort();
    Figures {
        entries_per_second: entries / elapsed,
        cpu_micros_per_entry: cpu.as_secs_f64() * 1e6 / entries,
        flushes_per_entry,
        median_wait_micros: waits[waits.len() / 2].as_secs_f64() * 1e6,
    }
}

/// One shard's leader: appends an entry, waits until it is durable, and again until `until`;
/// returns each entry's wait.
fn write_until(log: &Mutex<OpenLog>, data: &[u8], until: Instant) -> Vec<Duration> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime to wait on");
    let mut waits = Vec::new();
    while Instant::now() < until {
        let written = Instant::now();
        let pending = log.lock().append(data);
        runtime.block_on(pending.wait()).expect("flush");
        waits.push(written.elapsed());
    }
    waits
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The user and system CPU time the process has used so far (`/proc/self/stat`, fields 14 and
/// 15, counted after the command name in parentheses).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|field| field.parse::<u64>().expect("a tick count"))
        .sum();
    Duration::from_secs_f64(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// The cache flushes the block device holding `dir` has completed so far: the 16th field of
/// its `stat` in sysfs. `None` for a device without one (tmpfs, an overlay).
fn device_flushes(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let device = std::fs::metadata(dir).ok()?.dev();
    let stat = PathBuf::from(format!(
        "/sys/dev/block/{}:{}/stat",
        rustix::fs::major(device),
        rustix::fs::minor(device)
    ));
    let text = std::fs::read_to_string(stat).ok()?;
    text.split_whitespace().nth(15)?.parse().ok()
}
