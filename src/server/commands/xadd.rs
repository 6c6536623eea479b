//! XADD, and the trimming options it shares with XTRIM.

use bytes::Bytes;

use super::errors::{exhausted, id_zero, stream_error};
use super::lookup::existing;
use super::parse::{
    self, IdRules, Parse, ParsedId, STRICT, c_str, integer, invalid_id, is, strict_id, syntax_error,
};
use super::xdelex::references_option;
use super::{Ctx, Outcome, id_value, reply, store_error, wrong_arity};
use crate::IdSpec;
use crate::durability::Commit;
use crate::id::StreamId;
use crate::server::keys::stream_name;
use crate::server::resp::Value;
use crate::stream::{IdempotentAppend, Message, References, Stream, TrimTo};

/// What XADD and XTRIM trim by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Threshold {
    MaxLen(u64),
    MinId(StreamId),
}

/// A trimming request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Trim {
    threshold: Threshold,
    approximate: bool,
    limit: TrimLimit,
    /// What happens to the groups' references to the entries removed (Redis 8.2).
    references: References,
}

impl Trim {
    /// The same trim, exact: an explicit `LIMIT` still caps it; Redis's default one, which
    /// depends on the node size in force, does not.
    fn exact(self) -> Trim {
        let limit = match self.limit {
            TrimLimit::NodeDefault => TrimLimit::Unlimited,
            limit => limit,
        };
        Trim {
            approximate: false,
            limit,
            ..self
        }
    }
}

/// How many entries a trim may remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TrimLimit {
    /// Exact trims (but for those a cluster node makes of approximate ones), and `LIMIT 0`.
    Unlimited,
    /// `LIMIT n` with `~`.
    Entries(u64),
    /// `~` without `LIMIT`: Redis's default, from the node size in force.
    NodeDefault,
}

/// XADD's idempotency option (Redis 8.6).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Idempotency {
    Explicit { producer: Bytes, iid: Bytes },
    Auto { producer: Bytes },
}

/// The options of XADD or XTRIM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct AddTrimArgs {
    pub(super) trim: Option<Trim>,
    no_mkstream: bool,
    idempotency: Option<Idempotency>,
    references: References,
    /// XADD's ID (`None`: `*`) and where it is; the fields follow it.
    id: Option<ParsedId>,
    id_at: Option<usize>,
}

/// The options gathered while parsing, before they are checked together.
#[derive(Debug, Default)]
struct OptionScan {
    args: AddTrimArgs,
    threshold: Option<Threshold>,
    approximate: bool,
    limit: Option<u64>,
}

/// Redis's `streamParseAddOrTrimArgsOrReply`: the options of XADD (`xadd`) or XTRIM.
pub(super) fn parse_add_or_trim(args: &[Bytes], xadd: bool) -> Result<AddTrimArgs, Value> {
    let mut scan = OptionScan::default();
    let mut parse = Parse::new(args, 2);
    while let Some(option) = parse.peek() {
        let at = parse.position();
        let more = parse.more_after_next();
        if xadd && c_str(option) == b"*" {
            scan.args.id_at = Some(at);
            break;
        }
        parse.next();
        if (is(option, "MAXLEN") || is(option, "MINID")) && more > 0 {
            parse_threshold(&mut parse, option, &mut scan)?;
        } else if is(option, "LIMIT") && more > 0 {
            let limit = u64::try_from(parse.integer()?)
                .map_err(|_| Value::error("ERR The LIMIT argument must be >= 0."))?;
            scan.limit = Some(limit);
        } else if let Some(references) = references_option(option) {
            scan.args.references = references;
        } else if xadd && is(option, "NOMKSTREAM") {
            scan.args.no_mkstream = true;
        } else if xadd && is(option, "IDMP") && more >= 2 {
            let (producer, iid) = (parse.value()?, parse.value()?);
            set_idempotency(&mut scan.args, explicit_idempotency(producer, iid)?)?;
        } else if xadd && is(option, "IDMPAUTO") && more >= 1 {
            set_idempotency(&mut scan.args, auto_idempotency(parse.value()?)?)?;
        } else if xadd {
            let rules = IdRules {
                ms_star: true,
                ..STRICT
            };
            scan.args.id = Some(parse::parse_id(option, rules).ok_or_else(invalid_id)?);
            scan.args.id_at = Some(at);
            break;
        } else {
            return Err(syntax_error());
        }
    }
    finish_options(scan, xadd)
}

/// `[=|~] threshold` after `MAXLEN` or `MINID` (the `option`, already read).
fn parse_threshold(
    parse: &mut Parse<'_>,
    option: &[u8],
    scan: &mut OptionScan,
) -> Result<(), Value> {
    if scan.threshold.is_some() {
        return Err(Value::error(
            "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
        ));
    }
    let by_id = is(option, "MINID");
    let more = parse.rest().len();
    scan.approximate = false;
    match parse.peek().map(|arg| c_str(arg)) {
        Some(b"~") if more >= 2 => {
            scan.approximate = true;
            parse.next();
        }
        Some(b"=") if more >= 2 => {
            parse.next();
        }
        _ => {}
    }
    let value = parse.value()?;
    scan.threshold = Some(if by_id {
        Threshold::MinId(strict_id(value)?)
    } else {
        let max_len = integer(value)?;
        Threshold::MaxLen(
            u64::try_from(max_len)
                .map_err(|_| Value::error("ERR The MAXLEN argument must be >= 0."))?,
        )
    });
    Ok(())
}

fn explicit_idempotency(producer: &Bytes, iid: &Bytes) -> Result<Idempotency, Value> {
    if producer.is_empty() {
        return Err(Value::error("ERR IDMP requires a non-empty producer ID"));
    }
    if iid.is_empty() {
        return Err(Value::error("ERR IDMP requires a non-empty idempotent ID"));
    }
    Ok(Idempotency::Explicit {
        producer: producer.clone(),
        iid: iid.clone(),
    })
}

fn auto_idempotency(producer: &Bytes) -> Result<Idempotency, Value> {
    if producer.is_empty() {
        return Err(Value::error(
            "ERR IDMPAUTO requires a non-empty producer ID",
        ));
    }
    Ok(Idempotency::Auto {
        producer: producer.clone(),
    })
}

fn set_idempotency(args: &mut AddTrimArgs, idempotency: Idempotency) -> Result<(), Value> {
    if args.idempotency.is_some() {
        return Err(Value::error("ERR IDMP/IDMPAUTO specified multiple times"));
    }
    args.idempotency = Some(idempotency);
    Ok(())
}

/// The checks Redis makes once every option is read, in its order.
fn finish_options(scan: OptionScan, xadd: bool) -> Result<AddTrimArgs, Value> {
    let OptionScan {
        mut args,
        threshold,
        approximate,
        limit,
    } = scan;
    if limit.is_some_and(|limit| limit > 0) && threshold.is_none() {
        return Err(Value::error(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if threshold.is_none() && !xadd {
        return Err(Value::error(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit.is_some() && !approximate {
        return Err(Value::error(
            "ERR syntax error, LIMIT cannot be used without the special ~ option",
        ));
    }
    let Some(threshold) = threshold else {
        return Ok(args);
    };
    let limit = match limit {
        // `LIMIT 0` lifts the limit.
        Some(0) => TrimLimit::Unlimited,
        Some(limit) => TrimLimit::Entries(limit),
        None if approximate => TrimLimit::NodeDefault,
        None => TrimLimit::Unlimited,
    };
    args.trim = Some(Trim {
        threshold,
        approximate,
        limit,
        references: args.references,
    });
    Ok(args)
}

pub(super) fn xadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    reply(xadd_reply(ctx, args))
}

fn xadd_reply(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<Value, Value> {
    let parsed = parse_add_or_trim(args, true)?;
    if parsed.idempotency.is_some() && parsed.id.is_some() {
        return Err(Value::error(
            "ERR IDMP/IDMPAUTO can be used only with auto-generated IDs",
        ));
    }
    let fields = parsed.id_at.map_or(&[][..], |at| &args[at + 1..]);
    if fields.len() < 2 || fields.len() % 2 != 0 {
        return Err(Value::error(wrong_arity("xadd")));
    }
    let id = match parsed.id {
        None => IdSpec::Auto,
        Some(ParsedId::Exact(StreamId::MIN)) => {
            return Err(id_zero());
        }
        Some(ParsedId::Exact(id)) => IdSpec::Explicit(id),
        Some(ParsedId::MsStar(ms)) => IdSpec::AutoSeq(ms),
    };
    let store = ctx.store()?;
    let stream = match existing(ctx, &store, &args[1]) {
        Some(stream) => stream,
        None if parsed.no_mkstream => return Ok(Value::Null),
        None => store
            .stream(stream_name(ctx.client.db, &args[1]))
            .map_err(|e| store_error(&e))?,
    };
    if stream.last_id() == StreamId::MAX {
        return Err(exhausted());
    }
    let message = message_of(fields, id);
    let commit = ctx.commit();
    let (added, appended) = append(&stream, message, parsed.idempotency, commit)?;
    if appended && let Some(trim) = parsed.trim {
        apply_trim(ctx, &stream, trim, commit)?;
    }
    Ok(id_value(added))
}

/// A message whose headers are the field/value pairs, with an empty body.
fn message_of(fields: &[Bytes], id: IdSpec) -> Message {
    let mut message = Message::new(Bytes::new()).id_spec(id);
    message.headers = fields
        .chunks_exact(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    message
}

/// Appends, idempotently when asked; returns the entry's ID and whether it is new.
fn append(
    stream: &Stream,
    message: Message,
    idempotency: Option<Idempotency>,
    commit: Commit<'_>,
) -> Result<(StreamId, bool), Value> {
    let outcome = match idempotency {
        None => stream
            .append_in(message, commit)
            .map(IdempotentAppend::Appended),
        Some(Idempotency::Explicit { producer, iid }) => {
            stream.append_idempotent_in(message, &producer, &iid, commit)
        }
        Some(Idempotency::Auto { producer }) => {
            let iid = auto_iid(&message.headers);
            stream.append_idempotent_in(message, &producer, &iid, commit)
        }
    };
    match outcome.map_err(|e| stream_error(&e))? {
        IdempotentAppend::Appended(appended) => Ok((appended.id, true)),
        IdempotentAppend::Duplicate(id) => Ok((id, false)),
    }
}

/// IDMPAUTO's iid: a hash of the field/value pairs. Redis treats the same pairs in another
/// order as the same message, so they are hashed sorted.
fn auto_iid(headers: &[(Bytes, Bytes)]) -> Vec<u8> {
    let mut pairs = headers.to_vec();
    pairs.sort();
    crate::idempotency::content_iid(&pairs, b"")
}

/// Trims `stream` as `trim` asks. On a cluster node an approximate trim is made exact (at most
/// `LIMIT` entries, when given): where Redis's nodes would end is a model each node keeps in
/// memory, rebuilt differently after a restart and shaped by node-local settings, so every
/// replica would not trim alike. An exact trim is within what `~` promises (never fewer
/// entries kept than asked), and Redis's replicas trim exactly too.
pub(super) fn apply_trim(
    ctx: &Ctx<'_>,
    stream: &Stream,
    trim: Trim,
    commit: Commit<'_>,
) -> Result<u64, Value> {
    let trim = if ctx.server.is_cluster_node() {
        trim.exact()
    } else {
        trim
    };
    let limit = match trim.limit {
        TrimLimit::Unlimited => None,
        TrimLimit::Entries(limit) => Some(limit),
        TrimLimit::NodeDefault => Some(stream.node_limits().default_trim_limit()),
    };
    let to = match trim.threshold {
        Threshold::MaxLen(max_len) => TrimTo::MaxLen(max_len),
        Threshold::MinId(min_id) => TrimTo::MinId(min_id),
    };
    stream
        .trim_with_in(to, trim.approximate, limit, trim.references, commit)
        .map_err(|e| store_error(&e))
}

#[cfg(test)]
mod tests {
    use std::ops::Bound;

    use super::*;
    use crate::server::commands::parse::tests::{args, error_text};
    use crate::server::commands::replies::entries_value;
    use crate::server::resp::Protocol;
    use crate::store::Store;

    #[test]
    fn xadd_options() {
        let parsed =
            parse_add_or_trim(&args("XADD s NOMKSTREAM MAXLEN ~ 10 5-* f v"), true).unwrap();
        assert!(parsed.no_mkstream);
        assert_eq!(parsed.id, Some(ParsedId::MsStar(5)));
        assert_eq!(parsed.id_at, Some(6));
        assert_eq!(
            parsed.trim,
            Some(Trim {
                threshold: Threshold::MaxLen(10),
                approximate: true,
                limit: TrimLimit::NodeDefault,
                references: References::Keep,
            })
        );
        let parsed = parse_add_or_trim(&args("XADD s MINID = 3-1 * f v"), true).unwrap();
        assert_eq!(parsed.id, None);
        assert_eq!(parsed.id_at, Some(5));
        assert_eq!(
            parsed.trim,
            Some(Trim {
                threshold: Threshold::MinId(StreamId::new(3, 1)),
                approximate: false,
                limit: TrimLimit::Unlimited,
                references: References::Keep,
            })
        );
        let parsed = parse_add_or_trim(&args("XADD s IDMP p i * f v"), true).unwrap();
        assert_eq!(
            parsed.idempotency,
            Some(Idempotency::Explicit {
                producer: Bytes::from_static(b"p"),
                iid: Bytes::from_static(b"i"),
            })
        );
        let parsed = parse_add_or_trim(&args("XADD s IDMPAUTO p * f v"), true).unwrap();
        assert_eq!(
            parsed.idempotency,
            Some(Idempotency::Auto {
                producer: Bytes::from_static(b"p")
            })
        );
    }

    #[test]
    fn reference_options_apply_to_the_trim() {
        let parsed = parse_add_or_trim(&args("XADD s ACKED MAXLEN 5 DELREF * f v"), true).unwrap();
        assert_eq!(parsed.trim.unwrap().references, References::Remove);
        let parsed = parse_add_or_trim(&args("XTRIM s MINID 5 acked"), false).unwrap();
        assert_eq!(parsed.trim.unwrap().references, References::Respect);
        let parsed = parse_add_or_trim(&args("XTRIM s MAXLEN 5 KEEPREF"), false).unwrap();
        assert_eq!(parsed.trim.unwrap().references, References::Keep);
        let parsed = parse_add_or_trim(&args("XADD s DELREF * f v"), true).unwrap();
        assert_eq!(
            parsed.trim, None,
            "without a strategy there is nothing to trim"
        );
    }

    #[test]
    fn trim_options() {
        let parsed = parse_add_or_trim(&args("XTRIM s MAXLEN ~ 5 LIMIT 0"), false).unwrap();
        let trim = parsed.trim.unwrap();
        assert_eq!(trim.limit, TrimLimit::Unlimited);
        let parsed = parse_add_or_trim(&args("XTRIM s MINID ~ 5 LIMIT 7"), false).unwrap();
        assert_eq!(parsed.trim.unwrap().limit, TrimLimit::Entries(7));
        assert_eq!(
            parsed.trim.unwrap().threshold,
            Threshold::MinId(StreamId::new(5, 0))
        );
        let parsed = parse_add_or_trim(&args("XTRIM s MAXLEN 3"), false).unwrap();
        assert_eq!(parsed.trim.unwrap().threshold, Threshold::MaxLen(3));
        // With nothing after it, `~` is read as the threshold.
        let error = parse_add_or_trim(&args("XTRIM s MAXLEN ~"), false).unwrap_err();
        assert_eq!(
            error_text(error),
            "ERR value is not an integer or out of range"
        );
    }

    #[test]
    fn option_errors_match_redis() {
        let cases = [
            (
                "XADD s LIMIT 5 * f v",
                "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
            ),
            (
                "XADD s LIMIT 0 * f v",
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ),
            (
                "XADD s MAXLEN 5 LIMIT 5 * f v",
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ),
            (
                "XADD s MAXLEN -1 * f v",
                "ERR The MAXLEN argument must be >= 0.",
            ),
            (
                "XADD s MAXLEN ~ 1 LIMIT -1 * f v",
                "ERR The LIMIT argument must be >= 0.",
            ),
            (
                "XADD s MAXLEN 1 MINID 5 * f v",
                "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
            ),
            (
                "XADD s MAXLEN ~ * f v",
                "ERR value is not an integer or out of range",
            ),
            (
                "XADD s MINID + * f v",
                "ERR Invalid stream ID specified as stream command argument",
            ),
            (
                "XADD s - f v",
                "ERR Invalid stream ID specified as stream command argument",
            ),
            (
                "XADD s IDMP p i IDMP q j * f v",
                "ERR IDMP/IDMPAUTO specified multiple times",
            ),
            (
                "XADD s IDMPAUTO p IDMP q j * f v",
                "ERR IDMP/IDMPAUTO specified multiple times",
            ),
            (
                "XADD s IDMP  i * f v",
                "ERR IDMP requires a non-empty producer ID",
            ),
            (
                "XADD s IDMP p  * f v",
                "ERR IDMP requires a non-empty idempotent ID",
            ),
            (
                "XADD s IDMPAUTO  * f v",
                "ERR IDMPAUTO requires a non-empty producer ID",
            ),
            (
                "XADD s IDMP p * f v",
                "ERR Invalid stream ID specified as stream command argument",
            ),
        ];
        for (command, expected) in cases {
            let error = parse_add_or_trim(&args(command), true).unwrap_err();
            assert_eq!(error_text(error), expected, "{command}");
        }
        let cases = [
            (
                "XTRIM s LIMIT 0",
                "ERR syntax error, XTRIM must be called with a trimming strategy",
            ),
            ("XTRIM s FOO 1", "ERR syntax error"),
            ("XTRIM s NOMKSTREAM MAXLEN 1", "ERR syntax error"),
            (
                "XTRIM s MAXLEN = 1 LIMIT 1",
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ),
            ("XTRIM s MAXLEN 100 extra", "ERR syntax error"),
        ];
        for (command, expected) in cases {
            let error = parse_add_or_trim(&args(command), false).unwrap_err();
            assert_eq!(error_text(error), expected, "{command}");
        }
    }

    #[test]
    fn entries_show_fields_then_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stream = store.stream(b"s").unwrap();
        let with_body = Message::new("payload")
            .header("k", "v")
            .id(StreamId::new(1, 1));
        stream.append(with_body).unwrap();
        let fields = args("f v g ");
        stream
            .append(message_of(&fields, IdSpec::Explicit(StreamId::new(2, 0))))
            .unwrap();
        let entries = stream
            .range(Bound::Unbounded, Bound::Unbounded, 10)
            .unwrap();
        let bulks = |items: &[&'static str]| {
            Value::Array(items.iter().map(|item| Value::bulk(*item)).collect())
        };
        // Compared as sent: the fields are encoded from the records themselves.
        let wire = |value: Value| {
            let mut out = bytes::BytesMut::new();
            value.encode(Protocol::Resp2, &mut out);
            out
        };
        assert_eq!(
            wire(entries_value(&entries)),
            wire(Value::Array(vec![
                Value::Array(vec![
                    Value::bulk("1-1"),
                    bulks(&["k", "v", "$body", "payload"])
                ]),
                Value::Array(vec![Value::bulk("2-0"), bulks(&["f", "v", "g", ""])]),
            ]))
        );
        drop((entries, stream));
        store.close().unwrap();
    }

    #[test]
    fn auto_iid_ignores_field_order() {
        let pairs = |list: &[(&'static str, &'static str)]| -> Vec<(Bytes, Bytes)> {
            list.iter()
                .map(|(f, v)| {
                    (
                        Bytes::from_static(f.as_bytes()),
                        Bytes::from_static(v.as_bytes()),
                    )
                })
                .collect()
        };
        let a = auto_iid(&pairs(&[("a", "1"), ("b", "2")]));
        let b = auto_iid(&pairs(&[("b", "2"), ("a", "1")]));
        let c = auto_iid(&pairs(&[("a", "2"), ("b", "1")]));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
