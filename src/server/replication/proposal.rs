//! What the server replicates: a client's command as the client sent it, a client's
//! transaction, or the leader's clock tick; and its encoding in a Raft entry's body.
//!
//! An entry's body is a batch: a count (u64), then each proposal as a length-prefixed string
//! (u32 length). A proposal is `tag: u8`, then for a command `db: u8`, `protocol: u8` (2 or 3),
//! `retry: u8` and the arguments as a count and length-prefixed strings; for a transaction
//! `db`, `protocol`, then a count of commands, each a count of arguments; a tick has nothing
//! more. Integers are little-endian; counts are u64 and string lengths u32 (the codec's).

use bytes::Bytes;

use crate::codec::{CodecError, Decoder, Encoder};
use crate::server::resp::Protocol;

const TAG_RUN: u8 = 1;
const TAG_EXEC: u8 = 2;
const TAG_TICK: u8 = 3;

/// A replicated change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Proposal {
    /// A client's command, run on every node as the client's connection would run it.
    Run {
        db: u8,
        protocol: Protocol,
        /// The command runs again after blocking (vanished keys are reported as Redis does).
        retry: bool,
        args: Vec<Bytes>,
    },
    /// A client's `MULTI` … `EXEC`: the queued commands, run as one transaction.
    Exec {
        db: u8,
        protocol: Protocol,
        queued: Vec<Vec<Bytes>>,
    },
    /// The leader's timer: the changes time alone causes (retention by age, removal of
    /// acknowledged entries), made at the entry's time.
    Tick,
}

fn protocol_byte(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Resp2 => 2,
        Protocol::Resp3 => 3,
    }
}

fn write_args(out: &mut Encoder, args: &[Bytes]) {
    out.u64(args.len() as u64);
    for arg in args {
        out.bytes(arg);
    }
}

/// Bytes [`write_args`] writes.
fn args_len(args: &[Bytes]) -> usize {
    8 + args.iter().map(|arg| 4 + arg.len()).sum::<usize>()
}

/// The arguments, as slices of `proposal` (the proposal's own bytes, which `input` reads), so
/// that a command's arguments share one buffer as a client connection's do.
fn read_args(proposal: &Bytes, input: &mut Decoder<'_>) -> Result<Vec<Bytes>, CodecError> {
    let count = input.count(4)?;
    (0..count)
        .map(|_| Ok(proposal.slice_ref(input.bytes()?)))
        .collect()
}

impl Proposal {
    /// Bytes [`encode_into`](Self::encode_into) writes: a batch writes each proposal's length
    /// first, and then the proposal straight into the entry body, without a buffer of its own.
    fn encoded_len(&self) -> usize {
        match self {
            Proposal::Run { args, .. } => 4 + args_len(args),
            Proposal::Exec { queued, .. } => {
                3 + 8 + queued.iter().map(|args| args_len(args)).sum::<usize>()
            }
            Proposal::Tick => 1,
        }
    }

    /// Appends the proposal's encoding to `out`.
    fn encode_into(&self, out: &mut Encoder) {
        match self {
            Proposal::Run {
                db,
                protocol,
                retry,
                args,
            } => {
                out.u8(TAG_RUN)
                    .u8(*db)
                    .u8(protocol_byte(*protocol))
                    .u8(u8::from(*retry));
                write_args(out, args);
            }
            Proposal::Exec {
                db,
                protocol,
                queued,
            } => {
                out.u8(TAG_EXEC).u8(*db).u8(protocol_byte(*protocol));
                out.u64(queued.len() as u64);
                for args in queued {
                    write_args(out, args);
                }
            }
            Proposal::Tick => {
                out.u8(TAG_TICK);
            }
        }
    }

    /// Reads a proposal written by [`encode_into`](Self::encode_into); its arguments share
    /// `body`'s buffer.
    fn decode(body: &Bytes) -> Result<Proposal, CodecError> {
        let mut input = Decoder::new(body, "replicated command");
        let protocol = |byte: u8| match byte {
            2 => Ok(Protocol::Resp2),
            3 => Ok(Protocol::Resp3),
            _ => Err(CodecError {
                what: "replicated command",
                detail: "unknown protocol",
            }),
        };
        let proposal = match input.u8()? {
            TAG_RUN => Proposal::Run {
                db: input.u8()?,
                protocol: protocol(input.u8()?)?,
                retry: input.u8()? != 0,
                args: read_args(body, &mut input)?,
            },
            TAG_EXEC => {
                let db = input.u8()?;
                let protocol = protocol(input.u8()?)?;
                let count = input.count(4)?;
                let queued = (0..count)
                    .map(|_| read_args(body, &mut input))
                    .collect::<Result<_, _>>()?;
                Proposal::Exec {
                    db,
                    protocol,
                    queued,
                }
            }
            TAG_TICK => Proposal::Tick,
            _ => {
                return Err(CodecError {
                    what: "replicated command",
                    detail: "unknown tag",
                });
            }
        };
        input.finish()?;
        Ok(proposal)
    }
}

/// The body of an entry carrying `proposals`, applied in order.
pub(crate) fn encode_batch(proposals: &[Proposal]) -> Bytes {
    let lens: Vec<usize> = proposals.iter().map(Proposal::encoded_len).collect();
    let mut out = Encoder::with_capacity(8 + lens.iter().map(|len| 4 + len).sum::<usize>());
    out.u64(proposals.len() as u64);
    for (proposal, len) in proposals.iter().zip(lens) {
        out.u32(len as u32);
        proposal.encode_into(&mut out);
    }
    Bytes::from(out.finish())
}

/// The proposals of an entry's body written by [`encode_batch`]. Each proposal's bytes are
/// copied once, into a buffer its arguments share: one allocation per command rather than one
/// per argument, and no argument a command keeps holds the whole entry in memory.
pub(crate) fn decode_batch(body: &[u8]) -> Result<Vec<Proposal>, CodecError> {
    let mut input = Decoder::new(body, "replicated batch");
    let count = input.count(4)?;
    let proposals = (0..count)
        .map(|_| Proposal::decode(&Bytes::copy_from_slice(input.bytes()?)))
        .collect::<Result<Vec<_>, _>>()?;
    input.finish()?;
    Ok(proposals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_round_trip_and_garbage_is_refused() {
        let proposals = [
            Proposal::Run {
                db: 0,
                protocol: Protocol::Resp3,
                retry: true,
                args: vec![Bytes::from_static(b"XADD"), Bytes::from_static(b"s")],
            },
            Proposal::Exec {
                db: 0,
                protocol: Protocol::Resp2,
                queued: vec![vec![Bytes::from_static(b"XLEN"), Bytes::from_static(b"s")]],
            },
            Proposal::Tick,
        ];
        for proposal in proposals {
            let mut out = Encoder::new();
            proposal.encode_into(&mut out);
            let body = Bytes::from(out.finish());
            assert_eq!(body.len(), proposal.encoded_len());
            assert_eq!(Proposal::decode(&body).unwrap(), proposal);
            for cut in 0..body.len() {
                assert!(
                    Proposal::decode(&body.slice(..cut)).is_err(),
                    "{proposal:?} cut at {cut}"
                );
            }
        }
        assert!(Proposal::decode(&Bytes::from_static(&[9])).is_err());
    }

    #[test]
    fn batches_round_trip() {
        let batch = vec![Proposal::Tick, Proposal::Tick];
        let body = encode_batch(&batch);
        assert_eq!(decode_batch(&body).unwrap(), batch);
        assert_eq!(decode_batch(&encode_batch(&[])).unwrap(), vec![]);
        // The layout the Raft log holds: a count, then each proposal with its length first.
        assert_eq!(
            &body[..],
            &[2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, 1, 0, 0, 0, 3]
        );
        assert!(decode_batch(&body[..body.len() - 1]).is_err());
    }
}
