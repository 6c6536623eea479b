//! XDELEX (Redis 8.2), and the `[KEEPREF | DELREF | ACKED] IDS numids id…` arguments it
//! shares with XACKDEL.

use bytes::Bytes;

use super::lookup::existing;
use super::parse::{self, is, strict_ids, syntax_error};
use super::{Ctx, Outcome, reply, store_error};
use crate::id::StreamId;
use crate::server::resp::Value;
use crate::stream::{Deletion, References};

/// The deletion arguments: the references option (the last one given counts) and the IDs.
#[derive(Debug, PartialEq)]
pub(super) struct DeleteArgs {
    pub(super) references: References,
    pub(super) ids: Vec<StreamId>,
}

/// `KEEPREF`, `DELREF` or `ACKED`, if `arg` is one of them.
pub(super) fn references_option(arg: &[u8]) -> Option<References> {
    if is(arg, "KEEPREF") {
        Some(References::Keep)
    } else if is(arg, "DELREF") {
        Some(References::Remove)
    } else if is(arg, "ACKED") {
        Some(References::Respect)
    } else {
        None
    }
}

/// Parses the options and the IDS block, which may come in any order.
pub(super) fn parse_delete(args: &[Bytes]) -> Result<DeleteArgs, Value> {
    let mut references = References::Keep;
    let mut ids = None;
    let mut at = 0;
    while at < args.len() {
        let arg = &args[at];
        if let Some(option) = references_option(arg) {
            references = option;
            at += 1;
        } else if is(arg, "IDS") && at + 1 < args.len() && ids.is_none() {
            let listed = &args[at + 2..];
            let numids = parse::string2ll(&args[at + 1])
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| Value::error("ERR Number of IDs must be a positive integer"))?;
            if numids > listed.len() {
                return Err(Value::error(
                    "ERR The `numids` parameter must match the number of arguments",
                ));
            }
            ids = Some(&listed[..numids]);
            at += 2 + numids;
        } else {
            return Err(syntax_error());
        }
    }
    let ids = strict_ids(ids.ok_or_else(syntax_error)?)?;
    Ok(DeleteArgs { references, ids })
}

/// The reply: one code per ID.
pub(super) fn deletions_value(results: &[Deletion]) -> Value {
    Value::Array(
        results
            .iter()
            .map(|result| Value::Integer(result.code()))
            .collect(),
    )
}

/// The reply for a key that does not exist: every ID is missing.
pub(super) fn all_missing(ids: &[StreamId]) -> Value {
    deletions_value(&vec![Deletion::Missing; ids.len()])
}

pub(super) fn xdelex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply((|| {
        let parsed = parse_delete(&args[2..])?;
        let store = ctx.store()?;
        let Some(stream) = existing(ctx, &store, &args[1]) else {
            return Ok(all_missing(&parsed.ids));
        };
        let results = stream
            .delete_with_in(&parsed.ids, parsed.references, ctx.commit())
            .map_err(|e| store_error(&e))?;
        Ok(deletions_value(&results))
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::commands::parse::tests::{args, error_text};

    #[test]
    fn delete_arguments() {
        let parsed = parse_delete(&args("IDS 2 1-0 2 ACKED")).unwrap();
        assert_eq!(
            parsed,
            DeleteArgs {
                references: References::Respect,
                ids: vec![StreamId::new(1, 0), StreamId::new(2, 0)],
            }
        );
        let parsed = parse_delete(&args("delref keepref IDS 1 5-5")).unwrap();
        assert_eq!(parsed.references, References::Keep);
        assert_eq!(
            parse_delete(&args("DELREF IDS 1 5")).unwrap().references,
            References::Remove
        );
        for (command, expected) in [
            ("IDS 0 1-0", "ERR Number of IDs must be a positive integer"),
            ("IDS -1 1-0", "ERR Number of IDs must be a positive integer"),
            ("IDS x 1-0", "ERR Number of IDs must be a positive integer"),
            (
                "IDS 3 1-0 2-0",
                "ERR The `numids` parameter must match the number of arguments",
            ),
            ("IDS 1 1-0 2-0", "ERR syntax error"),
            ("BOGUS IDS 1 1-0", "ERR syntax error"),
            ("KEEPREF 1-0", "ERR syntax error"),
            ("IDS 1 1-0 IDS 1 2-0", "ERR syntax error"),
            (
                "IDS 1 x",
                "ERR Invalid stream ID specified as stream command argument",
            ),
        ] {
            assert_eq!(
                error_text(parse_delete(&args(command)).unwrap_err()),
                expected,
                "{command}"
            );
        }
    }
}
