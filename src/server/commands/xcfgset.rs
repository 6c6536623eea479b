//! XCFGSET: weir's per-stream settings (idempotency window, retention, limits).

use bytes::Bytes;

use super::lookup::existing;
use super::parse::{self, Parse, integer, is, syntax_error};
use super::{Ctx, Outcome, reply, store_error};
use crate::Error;
use crate::Retention;
use crate::durability::Commit;
use crate::server::resp::Value;
use crate::stream::{Discard, Stream};

/// `XCFGSET IDMP-DURATION` range, in seconds.
const IDMP_DURATION_RANGE: std::ops::RangeInclusive<i64> = 1..=86_400;

/// `XCFGSET IDMP-MAXSIZE` range.
const IDMP_MAXSIZE_RANGE: std::ops::RangeInclusive<i64> = 1..=10_000;

/// What `XCFGSET … RETENTION` asks for (weir's own option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetentionPolicy {
    /// Work queue: entries go once every group acknowledged them.
    Acked,
    /// Age and size limits (`None`: unlimited).
    Limits {
        max_age_ms: Option<u64>,
        max_bytes: Option<u64>,
    },
}

/// XCFGSET's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ConfigArgs {
    duration_secs: Option<u64>,
    max_size: Option<u64>,
    retention: Option<RetentionPolicy>,
    /// `MAXLEN n`: `Some(None)` (n = 0) removes the limit.
    max_len: Option<Option<u64>>,
    /// `MAXBYTES n` outside `RETENTION LIMITS`: `Some(None)` (n = 0) removes the limit.
    max_bytes: Option<Option<u64>>,
    discard: Option<Discard>,
    /// `EXPIRE-IDLE ms`: `Some(None)` (ms = 0) keeps the stream for good.
    expire_idle_ms: Option<Option<u64>>,
}

/// `XCFGSET key [IDMP-DURATION s] [IDMP-MAXSIZE n] [RETENTION ACKED | RETENTION LIMITS [MAXAGE
/// ms] [MAXBYTES n]] [DISCARD OLD|NEW] [MAXLEN n] [MAXBYTES n] [EXPIRE-IDLE ms]`. A `MAXBYTES`
/// right after `RETENTION LIMITS` (or its `MAXAGE`) is the whole-segment retention size; anywhere
/// else it is the stream's size limit, which `DISCARD` applies to.
fn parse_config(args: &[Bytes]) -> Result<ConfigArgs, Value> {
    if args.len() <= 2 {
        return Err(Value::error(
            "ERR At least one parameter must be specified: IDMP-DURATION or IDMP-MAXSIZE",
        ));
    }
    let mut config = ConfigArgs::default();
    let mut parse = Parse::new(args, 2);
    while let Some(option) = parse.next() {
        let value = parse.value()?;
        if is(option, "IDMP-DURATION") {
            let secs = ranged(value, IDMP_DURATION_RANGE, "IDMP-DURATION", "seconds")?;
            config.duration_secs = Some(secs);
        } else if is(option, "IDMP-MAXSIZE") {
            let size = ranged(value, IDMP_MAXSIZE_RANGE, "IDMP-MAXSIZE", "entries")?;
            config.max_size = Some(size);
        } else if is(option, "RETENTION") && is(value, "ACKED") {
            config.retention = Some(RetentionPolicy::Acked);
        } else if is(option, "RETENTION") && is(value, "LIMITS") {
            config.retention = Some(parse_limits(&mut parse)?);
        } else if is(option, "DISCARD") && is(value, "OLD") {
            config.discard = Some(Discard::Old);
        } else if is(option, "DISCARD") && is(value, "NEW") {
            config.discard = Some(Discard::New);
        } else if is(option, "MAXLEN") {
            config.max_len = Some(limit(value)?);
        } else if is(option, "MAXBYTES") {
            config.max_bytes = Some(limit(value)?);
        } else if is(option, "EXPIRE-IDLE") {
            config.expire_idle_ms = Some(limit(value)?);
        } else {
            return Err(syntax_error());
        }
    }
    Ok(config)
}

/// A non-negative integer where 0 means no limit.
fn limit(arg: &[u8]) -> Result<Option<u64>, Value> {
    let value = parse::non_negative(arg)?;
    Ok((value > 0).then_some(value))
}

/// An integer within `range`, with XCFGSET's error.
fn ranged(
    arg: &[u8],
    range: std::ops::RangeInclusive<i64>,
    name: &str,
    unit: &str,
) -> Result<u64, Value> {
    let value = integer(arg)?;
    if !range.contains(&value) {
        return Err(Value::error(format!(
            "ERR {name} must be between {} and {} {unit}",
            range.start(),
            range.end()
        )));
    }
    u64::try_from(value).map_err(|_| syntax_error())
}

/// `[MAXAGE ms] [MAXBYTES n]` after `RETENTION LIMITS`. 0 means no limit.
fn parse_limits(parse: &mut Parse<'_>) -> Result<RetentionPolicy, Value> {
    let (mut max_age_ms, mut max_bytes) = (None, None);
    while let [option, value, ..] = parse.rest() {
        let slot = if is(option, "MAXAGE") {
            &mut max_age_ms
        } else if is(option, "MAXBYTES") {
            &mut max_bytes
        } else {
            break;
        };
        *slot = limit(value)?;
        // Past the option and its value.
        parse.nth(1);
    }
    Ok(RetentionPolicy::Limits {
        max_age_ms,
        max_bytes,
    })
}

pub(super) fn xcfgset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(xcfgset_reply(ctx, args))
}

fn xcfgset_reply(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let settings = parse_config(args)?;
    if settings.expire_idle_ms.is_some_and(|ms| ms.is_some()) && ctx.server.is_cluster_node() {
        return Err(Value::error(
            "ERR EXPIRE-IDLE is not available in a cluster: whether a stream is idle is each node's own fact",
        ));
    }
    let store = ctx.store()?;
    let stream = existing(ctx, &store, &args[1]).ok_or_else(|| Value::error("ERR no such key"))?;
    apply_config(&stream, settings, ctx.commit()).map_err(|e| store_error(&e))?;
    Ok(Value::ok())
}

fn apply_config(stream: &Stream, settings: ConfigArgs, commit: Commit<'_>) -> Result<(), Error> {
    let mut config = stream.config();
    if let Some(secs) = settings.duration_secs {
        config.idempotency_duration_ms = Some(secs.saturating_mul(1000));
    }
    if let Some(size) = settings.max_size {
        config.idempotency_max_size = Some(size);
    }
    match settings.retention {
        Some(RetentionPolicy::Acked) => config.work_queue = true,
        Some(RetentionPolicy::Limits {
            max_age_ms,
            max_bytes,
        }) => {
            config.work_queue = false;
            let retention = Retention {
                max_age_ms,
                max_bytes,
            };
            stream.set_retention_in(retention, commit)?;
        }
        None => {}
    }
    if let Some(max_len) = settings.max_len {
        config.max_len = max_len;
    }
    if let Some(max_bytes) = settings.max_bytes {
        config.max_bytes = max_bytes;
    }
    if let Some(discard) = settings.discard {
        config.discard = discard;
    }
    if let Some(expire_idle_ms) = settings.expire_idle_ms {
        config.expire_idle_ms = expire_idle_ms;
    }
    stream.set_config_in(config, commit)?;
    if settings.duration_secs.is_some() || settings.max_size.is_some() {
        // Redis's XCFGSET forgets every producer's keys when it changes the window.
        stream.clear_idempotency()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::commands::parse::tests::{args, error_text};

    #[test]
    fn xcfgset_options() {
        let config = parse_config(&args("XCFGSET s IDMP-DURATION 5 IDMP-MAXSIZE 10")).unwrap();
        assert_eq!((config.duration_secs, config.max_size), (Some(5), Some(10)));
        let config = parse_config(&args("XCFGSET s RETENTION acked")).unwrap();
        assert_eq!(config.retention, Some(RetentionPolicy::Acked));
        let config =
            parse_config(&args("XCFGSET s RETENTION limits MAXAGE 60000 MAXBYTES 0")).unwrap();
        assert_eq!(
            config.retention,
            Some(RetentionPolicy::Limits {
                max_age_ms: Some(60_000),
                max_bytes: None
            })
        );
        let config = parse_config(&args("XCFGSET s RETENTION LIMITS IDMP-MAXSIZE 3")).unwrap();
        assert_eq!(config.max_size, Some(3));
        let config = parse_config(&args(
            "XCFGSET s RETENTION LIMITS MAXAGE 5 DISCARD new MAXLEN 3 EXPIRE-IDLE 0",
        ))
        .unwrap();
        assert_eq!(
            (config.discard, config.max_len, config.expire_idle_ms),
            (Some(Discard::New), Some(Some(3)), Some(None))
        );
        let config = parse_config(&args(
            "XCFGSET s RETENTION LIMITS MAXBYTES 9 DISCARD new MAXBYTES 4096",
        ))
        .unwrap();
        assert_eq!(
            (config.retention, config.max_bytes),
            (
                Some(RetentionPolicy::Limits {
                    max_age_ms: None,
                    max_bytes: Some(9)
                }),
                Some(Some(4096))
            )
        );
        assert_eq!(
            parse_config(&args("XCFGSET s MAXBYTES 0"))
                .unwrap()
                .max_bytes,
            Some(None)
        );
        let config = parse_config(&args("XCFGSET s DISCARD OLD MAXLEN 0")).unwrap();
        assert_eq!(
            (config.discard, config.max_len),
            (Some(Discard::Old), Some(None))
        );
        let cases = [
            ("XCFGSET s IDMP-DURATION", "ERR syntax error"),
            ("XCFGSET s INVALID", "ERR syntax error"),
            (
                "XCFGSET s IDMP-DURATION 0",
                "ERR IDMP-DURATION must be between 1 and 86400 seconds",
            ),
            (
                "XCFGSET s IDMP-MAXSIZE 10001",
                "ERR IDMP-MAXSIZE must be between 1 and 10000 entries",
            ),
            (
                "XCFGSET s IDMP-DURATION 000",
                "ERR value is not an integer or out of range",
            ),
            (
                "XCFGSET s IDMP-MAXSIZE INVALID IDMP-DURATION",
                "ERR value is not an integer or out of range",
            ),
            ("XCFGSET s RETENTION forever", "ERR syntax error"),
            ("XCFGSET s DISCARD sometimes", "ERR syntax error"),
            (
                "XCFGSET s MAXLEN -1",
                "ERR value is out of range, must be positive",
            ),
        ];
        for (command, expected) in cases {
            let error = parse_config(&args(command)).unwrap_err();
            assert_eq!(error_text(error), expected, "{command}");
        }
        assert!(parse_config(&args("XCFGSET s")).is_err());
    }
}
