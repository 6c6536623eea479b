//! The results file (CSV, one row per run) and the SVG chart drawn from its medians.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::RunResult;

const HEADER: &str = "label,server,fsync,run,producers,pipeline,rate,consumers,count,body,\
seconds,produced_per_s,consumed_per_s,p50_us,p99_us,p999_us,max_us,\
backlog_bytes_per_entry,pending_bytes_per_entry";

/// Labels go into the CSV unquoted.
pub fn check_csv_field(field: &str) -> Result<(), String> {
    if field.contains([',', '"', '\n']) {
        return Err(format!(
            "{field:?}: a label cannot hold , \" or a newline (it is a CSV field)"
        ));
    }
    Ok(())
}

pub fn append_csv(path: &Path, r: &RunResult) -> Result<(), String> {
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let optional = |value: Option<f64>| value.map_or(String::new(), |v| format!("{v:.1}"));
    let mut text = String::new();
    if new {
        text.push_str(HEADER);
        text.push('\n');
    }
    let _ = writeln!(
        text,
        "{},{},{},{},{},{},{},{},{},{},{:.3},{:.0},{:.0},{},{},{},{},{},{}",
        r.label,
        r.server,
        r.fsync,
        r.run,
        r.producers,
        r.pipeline,
        r.rate,
        r.consumers,
        r.count,
        r.body,
        r.seconds,
        r.produced_per_s,
        r.consumed_per_s,
        r.p50_us,
        r.p99_us,
        r.p999_us,
        r.max_us,
        optional(r.backlog_bytes_per_entry),
        optional(r.pending_bytes_per_entry),
    );
    file.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Medians of one configuration on one server.
struct Medians {
    throughput: f64,
    /// p50, p99, p99.9, max in microseconds; absent when the runs measured no latency.
    latency: Option<[f64; 4]>,
    runs: usize,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Rows grouped by (label, server), in the order labels first appear.
fn medians(csv: &str) -> Result<Vec<(String, String, Medians)>, String> {
    let mut lines = csv.lines();
    if lines.next() != Some(HEADER) {
        return Err("the CSV file does not start with the load generator's header".into());
    }
    let mut order: Vec<(String, String)> = Vec::new();
    let mut rows: BTreeMap<(String, String), Vec<Vec<f64>>> = BTreeMap::new();
    for line in lines.filter(|line| !line.is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != HEADER.split(',').count() {
            return Err(format!("malformed CSV row: {line}"));
        }
        let number = |i: usize| fields[i].parse::<f64>().unwrap_or(0.0);
        let producers = number(4);
        let throughput = if producers > 0.0 {
            number(11)
        } else {
            number(12)
        };
        let key = (fields[0].to_string(), fields[1].to_string());
        if !rows.contains_key(&key) {
            order.push(key.clone());
        }
        rows.entry(key).or_default().push(vec![
            throughput,
            number(13),
            number(14),
            number(15),
            number(16),
        ]);
    }
    Ok(order
        .into_iter()
        .map(|key| {
            let runs = &rows[&key];
            let column = |i: usize| median(runs.iter().map(|row| row[i]).collect());
            let latency = (column(4) > 0.0).then(|| [column(1), column(2), column(3), column(4)]);
            let medians = Medians {
                throughput: column(0),
                latency,
                runs: runs.len(),
            };
            (key.0, key.1, medians)
        })
        .collect())
}

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 330.0;
const BAR_AREA: f64 = 540.0;
const ROW: f64 = 22.0;
const SERVER_COLOURS: [(&str, &str); 2] =
    [("queue-server", "#2a6fb0"), ("redis-server", "#c8413b")];
const PERCENTILE_COLOURS: [(&str, &str); 4] = [
    ("p50", "#9ecae1"),
    ("p99", "#4292c6"),
    ("p99.9", "#08519c"),
    ("max", "#08306b"),
];

fn colour(server: &str) -> &'static str {
    SERVER_COLOURS
        .iter()
        .find(|(name, _)| *name == server)
        .map_or("#777777", |(_, colour)| colour)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn si(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2} M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.0} k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

fn micros(value: f64) -> String {
    if value >= 1000.0 {
        format!("{:.2} ms", value / 1000.0)
    } else {
        format!("{value:.0} µs")
    }
}

/// Redraws the chart: throughput per configuration and server, then the latency percentiles
/// of the configurations that measured latency, on a logarithmic axis.
pub fn draw(csv_path: &Path, svg_path: &Path) -> Result<(), String> {
    let csv =
        std::fs::read_to_string(csv_path).map_err(|e| format!("{}: {e}", csv_path.display()))?;
    let groups = medians(&csv)?;
    let mut body = String::new();
    let mut y = 40.0;
    let _ = writeln!(
        body,
        r#"<text x="10" y="24" font-size="16" font-weight="bold">Throughput, entries/s: XADD/s, or entries read+acked/s without producers (median of n runs)</text>"#
    );
    let top = groups.iter().map(|g| g.2.throughput).fold(1.0, f64::max);
    for (label, server, m) in &groups {
        let width = BAR_AREA * m.throughput / top;
        let _ = writeln!(
            body,
            r#"<text x="{x}" y="{ty}" text-anchor="end">{name} · {server}</text><rect x="{LEFT}" y="{y}" width="{width:.1}" height="16" fill="{fill}"/><text x="{vx:.1}" y="{ty}">{value} (n={runs})</text>"#,
            x = LEFT - 8.0,
            ty = y + 12.0,
            name = escape(label),
            server = escape(server),
            fill = colour(server),
            vx = LEFT + width + 6.0,
            value = si(m.throughput),
            runs = m.runs,
        );
        y += ROW;
    }
    let with_latency: Vec<_> = groups.iter().filter(|g| g.2.latency.is_some()).collect();
    if !with_latency.is_empty() {
        y += 30.0;
        let _ = writeln!(
            body,
            r#"<text x="10" y="{y}" font-size="16" font-weight="bold">End-to-end latency, XADD to XREADGROUP receipt (median of runs, log scale)</text>"#
        );
        y += 12.0;
        for (i, (name, fill)) in PERCENTILE_COLOURS.iter().enumerate() {
            let x = LEFT + i as f64 * 90.0;
            let _ = writeln!(
                body,
                r#"<rect x="{x}" y="{y}" width="12" height="12" fill="{fill}"/><text x="{tx}" y="{ty}">{name}</text>"#,
                tx = x + 16.0,
                ty = y + 10.0
            );
        }
        y += 20.0;
        let highest = with_latency
            .iter()
            .filter_map(|g| g.2.latency)
            .map(|l| l[3])
            .fold(10.0, f64::max);
        let (low, high) = (1.0f64.log10(), highest.log10() * 1.05);
        let scale = |value: f64| BAR_AREA * (value.max(1.0).log10() - low) / (high - low);
        for (label, server, m) in with_latency {
            let Some(latency) = m.latency else { continue };
            let _ = writeln!(
                body,
                r#"<text x="{x}" y="{ty}" text-anchor="end">{name} · {server}</text>"#,
                x = LEFT - 8.0,
                ty = y + 22.0,
                name = escape(label),
                server = escape(server),
            );
            for (value, (_, fill)) in latency.iter().zip(PERCENTILE_COLOURS) {
                let width = scale(*value);
                let _ = writeln!(
                    body,
                    r#"<rect x="{LEFT}" y="{y}" width="{width:.1}" height="9" fill="{fill}"/><text x="{vx:.1}" y="{ty}" font-size="9">{text}</text>"#,
                    vx = LEFT + width + 4.0,
                    ty = y + 8.0,
                    text = micros(*value),
                );
                y += 10.0;
            }
            y += 8.0;
        }
    }
    let height = y + 20.0;
    let svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
{body}</svg>
"#
    );
    std::fs::write(svg_path, svg).map_err(|e| format!("{}: {e}", svg_path.display()))
}
