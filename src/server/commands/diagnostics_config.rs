//! The `CONFIG` names of the slow log and the latency monitor, held by the monitors themselves
//! so that every command reads them without the configuration's lock.

use super::Ctx;
use super::parse::string2ll;
use crate::server::resp::Value;
use crate::server::state::Server;

/// The names answered here.
pub(super) const NAMES: &[&str] = &[
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "latency-monitor-threshold",
];

/// `CONFIG GET`'s value of one of [`NAMES`].
pub(super) fn value(server: &Server, name: &str) -> Option<String> {
    let diagnostics = &server.diagnostics;
    match name {
        "slowlog-log-slower-than" => Some(diagnostics.slowlog.slower_than_usec().to_string()),
        "slowlog-max-len" => Some(diagnostics.slowlog.max_len().to_string()),
        "latency-monitor-threshold" => Some(diagnostics.latency.threshold_ms().to_string()),
        _ => None,
    }
}

/// `CONFIG SET` of one of [`NAMES`]; `None` for another name.
pub(super) fn set(ctx: &Ctx<'_>, name: &str, value: &[u8]) -> Option<Result<(), Value>> {
    let lowest = match name {
        "slowlog-log-slower-than" => -1,
        "slowlog-max-len" | "latency-monitor-threshold" => 0,
        _ => return None,
    };
    Some(in_range(name, value, lowest).map(|number| {
        let diagnostics = &ctx.server.diagnostics;
        let unsigned = u64::try_from(number).unwrap_or(0);
        match name {
            "slowlog-log-slower-than" => diagnostics.slowlog.set_slower_than_usec(number),
            "slowlog-max-len" => diagnostics
                .slowlog
                .set_max_len(usize::try_from(unsigned).unwrap_or(usize::MAX)),
            _ => diagnostics.latency.set_threshold_ms(unsigned),
        }
    }))
}

/// An integer from `lowest` up, with Redis's errors.
fn in_range(name: &str, value: &[u8], lowest: i64) -> Result<i64, Value> {
    let invalid = |reason: &str| {
        Value::error(format!(
            "ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}"
        ))
    };
    let number =
        string2ll(value).ok_or_else(|| invalid("argument couldn't be parsed into an integer"))?;
    if number < lowest {
        return Err(invalid(&format!(
            "argument must be between {lowest} and {} inclusive",
            i64::MAX
        )));
    }
    Ok(number)
}
