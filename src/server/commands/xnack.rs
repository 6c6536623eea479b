//! XNACK (Redis 8.8), with weir's DELAY.

use std::time::Duration;

use bytes::Bytes;

use super::errors::{library_error, nogroup};
use super::lookup::group_at;
use super::parse::{self, Parse, integer, is, strict_ids, syntax_error};
use super::replies::int;
use super::{Ctx, Outcome, reply};
use crate::id::StreamId;
use crate::server::resp::Value;
use crate::stream::NackMode;

/// `XNACK key group mode IDS numids id… [RETRYCOUNT count] [FORCE] [DELAY ms]`; DELAY is
/// weir's: the entries become deliverable again only after it.
#[derive(Debug, PartialEq)]
struct NackArgs {
    mode: NackMode,
    ids: Vec<StreamId>,
    retry_count: Option<u32>,
    force: bool,
    delay: Duration,
}

/// Parses from the mode on.
fn parse_nack(args: &[Bytes]) -> Result<NackArgs, Value> {
    let mode = match &args[0] {
        mode if is(mode, "SILENT") => NackMode::Silent,
        mode if is(mode, "FAIL") => NackMode::Fail,
        mode if is(mode, "FATAL") => NackMode::Fatal,
        _ => return Err(syntax_error()),
    };
    if !is(&args[1], "IDS") {
        return Err(syntax_error());
    }
    let numids = parse::string2ll(&args[2])
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| Value::error("ERR Number of IDs must be a positive integer"))?;
    let listed = &args[3..];
    if numids > listed.len() {
        return Err(Value::error(
            "ERR The `numids` parameter must match the number of arguments",
        ));
    }
    let (ids, options) = listed.split_at(numids);
    let mut parsed = NackArgs {
        mode,
        ids: Vec::new(),
        retry_count: None,
        force: false,
        delay: Duration::ZERO,
    };
    parse_nack_options(options, &mut parsed)?;
    parsed.ids = strict_ids(ids)?;
    Ok(parsed)
}

fn parse_nack_options(options: &[Bytes], parsed: &mut NackArgs) -> Result<(), Value> {
    let mut parse = Parse::new(options, 0);
    while let Some(option) = parse.next() {
        if is(option, "FORCE") {
            parsed.force = true;
            continue;
        }
        let value = parse.value()?;
        if is(option, "RETRYCOUNT") {
            let count = u64::try_from(integer(value)?)
                .map_err(|_| Value::error("ERR RETRYCOUNT must be a non-negative integer"))?;
            parsed.retry_count = Some(u32::try_from(count).unwrap_or(u32::MAX));
        } else if is(option, "DELAY") {
            let ms = u64::try_from(integer(value)?)
                .map_err(|_| Value::error("ERR DELAY must be a non-negative integer"))?;
            parsed.delay = Duration::from_millis(ms);
        } else {
            return Err(syntax_error());
        }
    }
    Ok(())
}

pub(super) fn xnack(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply((|| {
        let nack = parse_nack(&args[3..])?;
        let missing = || nogroup(&args[1], &args[2]);
        let group = group_at(ctx, &args[1], &args[2], missing)?;
        let counter = |current| nack.mode.counter(nack.retry_count, current);
        let released = group
            .release_in(&nack.ids, counter, nack.force, nack.delay, ctx.commit())
            .map_err(|error| library_error(&error, missing))?;
        Ok(int(released as u64))
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::commands::parse::tests::{args, error_text};

    #[test]
    fn nack_arguments() {
        let parsed = parse_nack(&args("fatal IDS 2 1-0 2-0 RETRYCOUNT 3 FORCE DELAY 250")).unwrap();
        assert_eq!(
            parsed,
            NackArgs {
                mode: NackMode::Fatal,
                ids: vec![StreamId::new(1, 0), StreamId::new(2, 0)],
                retry_count: Some(3),
                force: true,
                delay: Duration::from_millis(250),
            }
        );
        for (command, expected) in [
            ("LOUD IDS 1 1-0", "ERR syntax error"),
            ("FAIL ID 1 1-0", "ERR syntax error"),
            (
                "FAIL IDS 0 1-0",
                "ERR Number of IDs must be a positive integer",
            ),
            (
                "FAIL IDS x 1-0",
                "ERR Number of IDs must be a positive integer",
            ),
            (
                "FAIL IDS 2 1-0",
                "ERR The `numids` parameter must match the number of arguments",
            ),
            (
                "FAIL IDS 1 x",
                "ERR Invalid stream ID specified as stream command argument",
            ),
            ("FAIL IDS 1 1-0 BOGUS", "ERR syntax error"),
            (
                "FAIL IDS 1 1-0 RETRYCOUNT -1",
                "ERR RETRYCOUNT must be a non-negative integer",
            ),
            (
                "FAIL IDS 1 1-0 DELAY -1",
                "ERR DELAY must be a non-negative integer",
            ),
        ] {
            assert_eq!(
                error_text(parse_nack(&args(command)).unwrap_err()),
                expected,
                "{command}"
            );
        }
    }
}
