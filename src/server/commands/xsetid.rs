//! XSETID.

use bytes::Bytes;

use super::lookup::existing;
use super::parse::{Parse, integer, is, strict_id, syntax_error};
use super::{Ctx, Outcome, reply, store_error};
use crate::ErrorKind;
use crate::id::StreamId;
use crate::server::resp::Value;
use crate::stream::Stream;

/// XSETID's options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SetIdArgs {
    entries_added: Option<u64>,
    max_deleted_id: Option<StreamId>,
}

fn parse_setid_options(id: StreamId, options: &[Bytes]) -> Result<SetIdArgs, Value> {
    let mut parsed = SetIdArgs::default();
    let mut parse = Parse::new(options, 0);
    while let Some(option) = parse.next() {
        let value = parse.value()?;
        if is(option, "ENTRIESADDED") {
            let added = u64::try_from(integer(value)?)
                .map_err(|_| Value::error("ERR entries_added must be positive"))?;
            parsed.entries_added = Some(added);
        } else if is(option, "MAXDELETEDID") {
            let max_deleted = strict_id(value)?;
            if id < max_deleted {
                return Err(Value::error(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
            parsed.max_deleted_id = Some(max_deleted);
        } else {
            return Err(syntax_error());
        }
    }
    Ok(parsed)
}

pub(super) fn xsetid(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(xsetid_reply(ctx, args))
}

fn xsetid_reply(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let id = strict_id(&args[2])?;
    let options = parse_setid_options(id, &args[3..])?;
    let store = ctx.store()?;
    let stream = existing(ctx, &store, &args[1]).ok_or_else(|| Value::error("ERR no such key"))?;
    check_setid(&stream, id, options)?;
    // Redis leaves the largest deleted ID alone when given 0-0.
    let max_deleted = options.max_deleted_id.filter(|&id| id != StreamId::MIN);
    match stream.set_last_id_in(id, options.entries_added, max_deleted, ctx.commit()) {
        Ok(()) => Ok(Value::ok()),
        Err(error) if error.kind() == ErrorKind::IdTooSmall => Err(setid_too_small()),
        Err(error) => Err(store_error(&error)),
    }
}

/// Redis's checks against the stream's content: the new last ID may not be below the last live
/// entry, and the entries added may not be fewer than the live entries.
fn check_setid(stream: &Stream, id: StreamId, options: SetIdArgs) -> Result<(), Value> {
    let len = stream.len();
    if len == 0 {
        return Ok(());
    }
    let newest = stream.last_entry().map_err(|e| store_error(&e))?;
    if newest.is_some_and(|entry| id < entry.id) {
        return Err(setid_too_small());
    }
    if options.entries_added.is_some_and(|added| added < len) {
        return Err(Value::error(
            "ERR The entries_added specified in XSETID is smaller than the target stream length",
        ));
    }
    Ok(())
}

fn setid_too_small() -> Value {
    Value::error("ERR The ID specified in XSETID is smaller than the target stream top item")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::commands::parse::tests::{args, error_text};

    #[test]
    fn setid_options() {
        let id = StreamId::new(5, 0);
        let parsed = parse_setid_options(id, &args("ENTRIESADDED 3 MAXDELETEDID 4-0")).unwrap();
        assert_eq!(parsed.entries_added, Some(3));
        assert_eq!(parsed.max_deleted_id, Some(StreamId::new(4, 0)));
        let cases = [
            ("ENTRIESADDED -1", "ERR entries_added must be positive"),
            (
                "MAXDELETEDID 6-0",
                "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
            ),
            (
                "MAXDELETEDID -",
                "ERR Invalid stream ID specified as stream command argument",
            ),
            ("ENTRIESADDED", "ERR syntax error"),
            ("FOO 1", "ERR syntax error"),
        ];
        for (options, expected) in cases {
            let error = parse_setid_options(id, &args(options)).unwrap_err();
            assert_eq!(error_text(error), expected, "{options}");
        }
    }
}
