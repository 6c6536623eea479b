//! Load generator for any server speaking the Redis protocol.
//!
//! Producers send pipelined `XADD`s, closed-loop (as fast as replies return) or open-loop at a
//! fixed total rate; consumers read with `XREADGROUP … COUNT n` and acknowledge exactly the IDs
//! they received with `XACK`. Every entry carries the time it was (meant to be) sent, so the
//! consumers measure end-to-end latency into an HDR histogram. Each run prints one summary line
//! and can append a row to a CSV file, from which an SVG chart of the medians is redrawn.
//!
//! It starts `queue-server` or `redis-server` itself on a temporary directory (`--start`), or
//! drives a running server (`--addr`). With several servers and `--runs`, runs alternate between
//! them, so a busy machine's noise falls on both alike:
//!
//! ```sh
//! cargo bench --bench loadgen -- --start weir,redis --runs 3 --fsync always \
//!     --producers 50 --pipeline 16 --consumers 0 --label xadd-always --csv perf/results.csv \
//!     --svg perf/chart.svg
//! ```
//!
//! `cargo bench` runs it once with the defaults against `queue-server`.

mod chart;
mod client;
mod server;
mod usage;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;

use client::{Connection, Reply};
use server::{ServerKind, Started};
use usage::Usage;

const STREAM: &[u8] = b"loadgen";
const GROUP: &[u8] = b"loadgen";
/// Highest latency the histogram records, in microseconds (a minute).
const MAX_LATENCY_US: u64 = 60_000_000;
/// A consume-only run ends once this share of the backlog is consumed, if its duration has not
/// passed first: a run that drained the backlog would measure consumers waiting for entries.
const BACKLOG_SHARE_CONSUMED: f64 = 0.9;
/// How often the end of a run is checked.
const RUN_END_CHECK: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Parser)]
#[command(
    name = "loadgen",
    bin_name = "loadgen",
    about = "Drive a Redis-protocol server with XADD producers and XREADGROUP+XACK consumers"
)]
struct Args {
    /// Servers to start on a temporary directory, comma-separated; runs alternate among them.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "weir")]
    start: Vec<ServerKind>,
    /// Drive the server already listening here instead of starting one.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Durability of started servers: always, everysec or no (Redis: appendfsync).
    #[arg(long, default_value = "always")]
    fsync: String,
    /// Runs per server.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Producer connections.
    #[arg(long, default_value_t = 50)]
    producers: usize,
    /// XADDs each producer sends per write.
    #[arg(long, default_value_t = 16)]
    pipeline: usize,
    /// Total XADD rate (entries/s) across producers, open-loop; 0 sends as fast as replies return.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Bytes of each entry's body field.
    #[arg(long, default_value_t = 100)]
    body: usize,
    /// Consumer connections, one consumer each in one group.
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// XREADGROUP COUNT.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Leave received entries pending (no XACK), to measure the memory of a pending entry.
    #[arg(long)]
    no_ack: bool,
    /// Entries appended before the timed run, as a backlog for the consumers; the server's
    /// RssAnon growth per entry is reported when this process started the server.
    #[arg(long, default_value_t = 0)]
    preload: u64,
    /// Seconds of each timed run; a run without producers ends earlier, once it has consumed
    /// 90 % of the backlog, so that the backlog outlasts it.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Name of the configuration in the summary, the CSV and the chart.
    #[arg(long, default_value = "run")]
    label: String,
    /// Append one row per run to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Redraw this SVG chart from every row of the CSV file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Only redraw the chart from the CSV file.
    #[arg(long)]
    chart_only: bool,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Passed by `cargo bench`; changes nothing.
    #[arg(long, hide = true)]
    bench: bool,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub label: String,
    pub server: String,
    pub fsync: String,
    pub run: usize,
    pub producers: usize,
    pub pipeline: usize,
    pub rate: u64,
    pub consumers: usize,
    pub count: usize,
    pub body: usize,
    pub seconds: f64,
    pub produced_per_s: f64,
    pub consumed_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub backlog_bytes_per_entry: Option<f64>,
    pub pending_bytes_per_entry: Option<f64>,
    /// Entries of the backlog still unread when the run ended (consume-only runs).
    pub backlog_left: Option<u64>,
    /// The started server's CPU time, page faults and context switches during the run, and
    /// the operations they are divided by: entries consumed in a run with consumers and no
    /// producers, entries produced otherwise.
    pub server_usage: Option<(Usage, u64)>,
}

fn main() {
    let args = Args::parse();
    if let Err(message) = run_all(&args) {
        eprintln!("loadgen: {message}");
        std::process::exit(1);
    }
}

fn run_all(args: &Args) -> Result<(), String> {
    if args.chart_only {
        return redraw(args);
    }
    chart::check_csv_field(&args.label)?;
    chart::check_csv_field(&args.fsync)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let servers: Vec<Option<ServerKind>> = match args.addr {
        Some(_) => vec![None],
        None => args.start.iter().copied().map(Some).collect(),
    };
    for run in 1..=args.runs {
        for &kind in &servers {
            let result = runtime.block_on(one_run(args, kind, run))?;
            println!("{}", summary(&result));
            if let Some(path) = &args.csv {
                chart::append_csv(path, &result)?;
            }
        }
    }
    redraw(args)
}

fn redraw(args: &Args) -> Result<(), String> {
    match (&args.csv, &args.svg) {
        (Some(csv), Some(svg)) => chart::draw(csv, svg),
        (None, Some(_)) => Err("--svg is drawn from --csv: give both".into()),
        _ => Ok(()),
    }
}

fn summary(r: &RunResult) -> String {
    let mut line = format!(
        "{label} server={server} fsync={fsync} run={run} producers={p}x{pipe} rate={rate} \
         consumers={c}xCOUNT{count} produced/s={prod:.0} consumed/s={cons:.0}",
        label = r.label,
        server = r.server,
        fsync = r.fsync,
        run = r.run,
        p = r.producers,
        pipe = r.pipeline,
        rate = if r.rate == 0 {
            "closed".into()
        } else {
            r.rate.to_string()
        },
        c = r.consumers,
        count = r.count,
        prod = r.produced_per_s,
        cons = r.consumed_per_s,
    );
    if r.max_us > 0 {
        line += &format!(
            " e2e_us p50={} p99={} p99.9={} max={}",
            r.p50_us, r.p99_us, r.p999_us, r.max_us
        );
    }
    if let Some(bytes) = r.backlog_bytes_per_entry {
        line += &format!(" rss_anon/backlog_entry={bytes:.1}B");
    }
    if let Some(bytes) = r.pending_bytes_per_entry {
        line += &format!(" rss_anon/pending_entry={bytes:.1}B");
    }
    if let Some(left) = r.backlog_left {
        line += &format!(" backlog_left={left}");
    }
    if let Some((usage, operations)) = &r.server_usage {
        line += &format!(" {}", usage.per_operation(*operations));
    }
    line
}

async fn one_run(args: &Args, kind: Option<ServerKind>, run: usize) -> Result<RunResult, String> {
    let started = match kind {
        Some(kind) => Some(Started::start(kind, &args.fsync)?),
        None => None,
    };
    let addr = match (&started, args.addr) {
        (Some(started), _) => started.addr,
        (None, Some(addr)) => addr,
        (None, None) => return Err("give --start or --addr".into()),
    };
    server::wait_ready(addr).await?;
    let pid = started.as_ref().map(Started::pid);
    let rss = || pid.and_then(server::rss_anon);

    let mut admin = Connection::connect(addr).await.map_err(io("connect"))?;
    expect_ok(
        admin.call(&[b"DEL", STREAM]).await.map_err(io("DEL"))?,
        "DEL",
    )?;
    expect_ok(
        admin
            .call(&[b"XGROUP", b"CREATE", STREAM, GROUP, b"0", b"MKSTREAM"])
            .await
            .map_err(io("XGROUP CREATE"))?,
        "XGROUP CREATE",
    )?;

    let clock = Instant::now();
    let rss_before_preload = rss();
    if args.preload > 0 {
        preload(args, addr, clock).await?;
    }
    let rss_before_run = rss();
    let backlog_bytes_per_entry = match (rss_before_preload, rss_before_run) {
        (Some(before), Some(after)) if args.preload > 0 => {
            Some((after as f64 - before as f64) / args.preload as f64)
        }
        _ => None,
    };

    let stop = Arc::new(AtomicBool::new(false));
    // The backlog's entries are old by design: only entries sent during the run count.
    let run_began = clock.elapsed();
    let produced = Arc::new(AtomicU64::new(0));
    let mut producers = Vec::new();
    for _ in 0..args.producers {
        let (stop, produced, args) = (stop.clone(), produced.clone(), args.clone());
        producers.push(tokio::spawn(async move {
            produce(&args, addr, clock, &stop, &produced).await
        }));
    }
    let consumed_so_far = Arc::new(AtomicU64::new(0));
    let mut consumers = Vec::new();
    for number in 0..args.consumers {
        let (stop, consumed, args) = (stop.clone(), consumed_so_far.clone(), args.clone());
        consumers.push(tokio::spawn(async move {
            consume(&args, addr, number, (clock, run_began), (&stop, &consumed)).await
        }));
    }
    let usage_before = pid.and_then(Usage::read);
    let start = Instant::now();
    wait_for_run_end(args, &consumed_so_far).await;
    stop.store(true, Ordering::Relaxed);
    let seconds = start.elapsed().as_secs_f64();
    let operations = if args.producers == 0 {
        consumed_so_far.load(Ordering::Relaxed)
    } else {
        produced.load(Ordering::Relaxed)
    };
    let server_usage = match (usage_before, pid.and_then(Usage::read)) {
        (Some(before), Some(after)) => Some((after.since(&before), operations)),
        _ => None,
    };
    let backlog_left = (args.producers == 0 && args.preload > 0).then(|| {
        args.preload
            .saturating_sub(consumed_so_far.load(Ordering::Relaxed))
    });
    for producer in producers {
        producer.await.map_err(|e| format!("producer: {e}"))??;
    }
    let mut latency = new_histogram()?;
    let mut consumed = 0u64;
    for consumer in consumers {
        let (count, histogram) = consumer.await.map_err(|e| format!("consumer: {e}"))??;
        consumed += count;
        latency
            .add(&histogram)
            .map_err(|e| format!("merging histograms: {e}"))?;
    }
    let pending_bytes_per_entry = match (rss_before_run, rss()) {
        (Some(before), Some(after)) if args.no_ack && args.producers == 0 && consumed > 0 => {
            Some((after as f64 - before as f64) / consumed as f64)
        }
        _ => None,
    };
    drop(started);
    let percentile = |q: f64| {
        if latency.is_empty() {
            0
        } else {
            latency.value_at_quantile(q)
        }
    };
    Ok(RunResult {
        label: args.label.clone(),
        server: kind.map_or_else(|| addr.to_string(), |kind| kind.name().to_string()),
        fsync: args.fsync.clone(),
        run,
        producers: args.producers,
        pipeline: args.pipeline,
        rate: args.rate,
        consumers: args.consumers,
        count: args.count,
        body: args.body,
        seconds,
        produced_per_s: produced.load(Ordering::Relaxed) as f64 / seconds,
        consumed_per_s: consumed as f64 / seconds,
        p50_us: percentile(0.5),
        p99_us: percentile(0.99),
        p999_us: percentile(0.999),
        max_us: if latency.is_empty() { 0 } else { latency.max() },
        backlog_bytes_per_entry,
        pending_bytes_per_entry,
        backlog_left,
        server_usage,
    })
}

/// Sleeps for the run's duration, or, in a run that only consumes a backlog, until most of
/// the backlog is consumed if that comes first.
async fn wait_for_run_end(args: &Args, consumed: &AtomicU64) {
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let enough = (args.producers == 0 && args.preload > 0)
        .then_some((args.preload as f64 * BACKLOG_SHARE_CONSUMED) as u64);
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        if enough.is_some_and(|enough| consumed.load(Ordering::Relaxed) >= enough) {
            return;
        }
        tokio::time::sleep(RUN_END_CHECK.min(deadline - now)).await;
    }
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}

fn expect_ok(reply: Reply, what: &str) -> Result<Reply, String> {
    match reply {
        Reply::Error(message) => Err(format!("{what}: the server answered {message}")),
        reply => Ok(reply),
    }
}

fn new_histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map_err(|e| format!("histogram: {e}"))
}

/// Queues one XADD whose `t` field is `sent`, in nanoseconds since `clock`.
fn queue_xadd(connection: &mut Connection, body: &[u8], sent: Duration) {
    let stamp = sent.as_nanos().to_string();
    connection.queue(&[b"XADD", STREAM, b"*", b"t", stamp.as_bytes(), b"b", body]);
}

/// Reads `n` XADD replies; fails on the first error reply.
async fn xadd_replies(connection: &mut Connection, n: usize) -> Result<(), String> {
    for _ in 0..n {
        expect_ok(connection.reply().await.map_err(io("XADD"))?, "XADD")?;
    }
    Ok(())
}

/// Connections that append the backlog.
const PRELOAD_CONNECTIONS: u64 = 16;

/// Appends the backlog as fast as the server takes it.
async fn preload(args: &Args, addr: SocketAddr, clock: Instant) -> Result<(), String> {
    let connections = PRELOAD_CONNECTIONS;
    let mut tasks = Vec::new();
    for number in 0..connections {
        let share = args.preload / connections + u64::from(number < args.preload % connections);
        let (body, pipeline) = (vec![b'x'; args.body], args.pipeline.max(1) as u64);
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::connect(addr).await.map_err(io("connect"))?;
            let mut left = share;
            while left > 0 {
                let batch = left.min(pipeline);
                for _ in 0..batch {
                    queue_xadd(&mut connection, &body, clock.elapsed());
                }
                connection.send().await.map_err(io("XADD"))?;
                xadd_replies(&mut connection, batch as usize).await?;
                left -= batch;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| format!("preload: {e}"))??;
    }
    Ok(())
}

/// One producer connection until `stop`. Open-loop, each entry is sent once due, stamped with
/// the time it was due, so a server that falls behind is charged for the wait (no coordinated
/// omission); entries that fell due while replies were awaited go out pipelined.
async fn produce(
    args: &Args,
    addr: SocketAddr,
    clock: Instant,
    stop: &AtomicBool,
    produced: &AtomicU64,
) -> Result<(), String> {
    let mut connection = Connection::connect(addr).await.map_err(io("connect"))?;
    let body = vec![b'x'; args.body];
    let pipeline = args.pipeline.max(1);
    let per_entry =
        (args.rate > 0).then(|| Duration::from_secs_f64(args.producers as f64 / args.rate as f64));
    let mut due = clock.elapsed();
    while !stop.load(Ordering::Relaxed) {
        let queued = match per_entry {
            None => {
                for _ in 0..pipeline {
                    queue_xadd(&mut connection, &body, clock.elapsed());
                }
                pipeline
            }
            Some(step) => {
                let now = clock.elapsed();
                if due > now {
                    tokio::time::sleep(due - now).await;
                    continue;
                }
                // Everything already due goes out now, up to a pipeline's worth.
                let mut queued = 0;
                while queued < pipeline && due <= now {
                    queue_xadd(&mut connection, &body, due);
                    due += step;
                    queued += 1;
                }
                queued
            }
        };
        connection.send().await.map_err(io("XADD"))?;
        xadd_replies(&mut connection, queued).await?;
        produced.fetch_add(queued as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// One consumer until `stop`: each round trip acknowledges the previous batch and reads the
/// next one in a single write.
async fn consume(
    args: &Args,
    addr: SocketAddr,
    number: usize,
    (clock, run_began): (Instant, Duration),
    (stop, consumed): (&AtomicBool, &AtomicU64),
) -> Result<(u64, Histogram<u64>), String> {
    let mut connection = Connection::connect(addr).await.map_err(io("connect"))?;
    let mut latency = new_histogram()?;
    let name = format!("consumer-{number}");
    let count = args.count.to_string();
    let mut to_ack: Vec<Vec<u8>> = Vec::new();
    let mut received = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let acking = !to_ack.is_empty();
        if acking {
            let mut command: Vec<&[u8]> = vec![b"XACK", STREAM, GROUP];
            command.extend(to_ack.iter().map(Vec::as_slice));
            connection.queue(&command);
        }
        connection.queue(&[
            b"XREADGROUP",
            b"GROUP",
            GROUP,
            name.as_bytes(),
            b"COUNT",
            count.as_bytes(),
            b"BLOCK",
            b"100",
            b"STREAMS",
            STREAM,
            b">",
        ]);
        connection.send().await.map_err(io("XREADGROUP"))?;
        if acking {
            let acked = connection.reply().await.map_err(io("XACK"))?;
            match acked {
                Reply::Integer(n) if n as usize == to_ack.len() => {}
                other => return Err(format!("XACK of {} IDs answered {other:?}", to_ack.len())),
            }
            to_ack.clear();
        }
        let reply = expect_ok(
            connection.reply().await.map_err(io("XREADGROUP"))?,
            "XREADGROUP",
        )?;
        let now = clock.elapsed();
        let received_before = received;
        for stream in reply.items() {
            let entries = stream.items().get(1).map_or(&[][..], Reply::items);
            for entry in entries {
                let fields = entry.items();
                let (Some(id), Some(values)) =
                    (fields.first().and_then(Reply::bytes), fields.get(1))
                else {
                    return Err(format!(
                        "XREADGROUP entry without an ID and fields: {entry:?}"
                    ));
                };
                if let Some(sent) = sent_at(values.items()).filter(|&sent| sent >= run_began) {
                    let micros = now.saturating_sub(sent).as_micros() as u64;
                    latency.saturating_record(micros.clamp(1, MAX_LATENCY_US));
                }
                if !args.no_ack {
                    to_ack.push(id.to_vec());
                }
                received += 1;
            }
        }
        consumed.fetch_add(received - received_before, Ordering::Relaxed);
    }
    Ok((received, latency))
}

/// The `t` field of an entry's field list.
fn sent_at(fields: &[Reply]) -> Option<Duration> {
    let mut pairs = fields.chunks_exact(2);
    let stamp = pairs.find(|pair| pair[0].bytes() == Some(b"t"))?[1].bytes()?;
    let nanos: u64 = std::str::from_utf8(stamp).ok()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}
