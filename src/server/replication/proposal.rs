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

fn read_args(input: &mut Decoder<'_>) -> Result<Vec<Bytes>, CodecError> {
    let count = input.count(4)?;
    (0..count)
        .map(|_| Ok(Bytes::copy_from_slice(input.bytes()?)))
        .collect()
}

impl Proposal {
    /// The entry body.
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = Encoder::new();
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
                write_args(&mut out, args);
            }
            Proposal::Exec {
                db,
                protocol,
                queued,
            } => {
                out.u8(TAG_EXEC).u8(*db).u8(protocol_byte(*protocol));
                out.u64(queued.len() as u64);
                for args in queued {
                    write_args(&mut out, args);
                }
            }
            Proposal::Tick => {
                out.u8(TAG_TICK);
            }
        }
        Bytes::from(out.finish())
    }

    /// Reads an entry body written by [`encode`](Self::encode).
    pub(crate) fn decode(body: &[u8]) -> Result<Proposal, CodecError> {
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
                args: read_args(&mut input)?,
            },
            TAG_EXEC => {
                let db = input.u8()?;
                let protocol = protocol(input.u8()?)?;
                let count = input.count(4)?;
                let queued = (0..count)
                    .map(|_| read_args(&mut input))
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
    let mut out = Encoder::new();
    out.u64(proposals.len() as u64);
    for proposal in proposals {
        out.bytes(&proposal.encode());
    }
    Bytes::from(out.finish())
}

/// The proposals of an entry's body written by [`encode_batch`].
pub(crate) fn decode_batch(body: &[u8]) -> Result<Vec<Proposal>, CodecError> {
    let mut input = Decoder::new(body, "replicated batch");
    let count = input.count(4)?;
    let proposals = (0..count)
        .map(|_| Proposal::decode(input.bytes()?))
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
            let body = proposal.encode();
            assert_eq!(Proposal::decode(&body).unwrap(), proposal);
            for cut in 0..body.len() {
                assert!(
                    Proposal::decode(&body[..cut]).is_err(),
                    "{proposal:?} cut at {cut}"
                );
            }
        }
        assert!(Proposal::decode(&[9]).is_err());
    }

    #[test]
    fn batches_round_trip() {
        let batch = vec![Proposal::Tick, Proposal::Tick];
        let body = encode_batch(&batch);
        assert_eq!(decode_batch(&body).unwrap(), batch);
        assert_eq!(decode_batch(&encode_batch(&[])).unwrap(), vec![]);
        assert!(decode_batch(&body[..body.len() - 1]).is_err());
    }
}
