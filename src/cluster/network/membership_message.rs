//! The bus messages that change a Raft group's membership on its leader: the leader of the
//! first shard, running `CLUSTER ADDNODE` or `REMOVENODE`, asks the leader of each other shard to
//! make the same change to its group (docs/cluster-protocol.md).

use std::time::Duration;

use crate::cluster::membership::{Added, MembershipError};
use crate::cluster::types::{NodeAddr, NodeId};
use crate::codec::{CodecError, Decoder, Encoder};

use super::wire::{get_text, malformed};

const ADD: u8 = 0;
const REMOVE: u8 = 1;

const VOTER: u8 = 0;
const ALREADY_VOTER: u8 = 1;
const REMOVED: u8 = 2;
const NOT_LEADER: u8 = 3;
const REFUSED: u8 = 4;
const UNKNOWN_NODE: u8 = 5;

/// A change to a group's membership, made by its leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add node `id` at `addr`: as a learner, then, once caught up within `catch_up`, a voter.
    Add {
        /// The node.
        id: NodeId,
        /// Where it is reached.
        addr: NodeAddr,
        /// How long it may take to catch up.
        catch_up: Duration,
    },
    /// Remove node `id`.
    Remove {
        /// The node.
        id: NodeId,
    },
}

/// What the group's leader answers to a [`MembershipChange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipAnswer {
    /// An added node is a voter now (or already was).
    Added(Added),
    /// The node was removed.
    Removed,
    /// The change was not made: why.
    Refused(MembershipError),
}

impl MembershipChange {
    pub(super) fn put(&self, out: &mut Encoder) {
        match self {
            MembershipChange::Add { id, addr, catch_up } => {
                let millis = u64::try_from(catch_up.as_millis()).unwrap_or(u64::MAX);
                out.u8(ADD).u64(*id).u64(millis);
                out.bytes(addr.client.as_bytes()).bytes(addr.bus.as_bytes());
            }
            MembershipChange::Remove { id } => {
                out.u8(REMOVE).u64(*id);
            }
        }
    }

    pub(super) fn get(input: &mut Decoder<'_>) -> Result<MembershipChange, CodecError> {
        match input.u8()? {
            ADD => Ok(MembershipChange::Add {
                id: input.u64()?,
                catch_up: Duration::from_millis(input.u64()?),
                addr: NodeAddr {
                    client: get_text(input)?,
                    bus: get_text(input)?,
                },
            }),
            REMOVE => Ok(MembershipChange::Remove { id: input.u64()? }),
            _ => Err(malformed("unknown membership change")),
        }
    }
}

impl MembershipAnswer {
    pub(super) fn put(&self, out: &mut Encoder) {
        match self {
            MembershipAnswer::Added(Added::Voter) => {
                out.u8(VOTER);
            }
            MembershipAnswer::Added(Added::AlreadyVoter) => {
                out.u8(ALREADY_VOTER);
            }
            MembershipAnswer::Removed => {
                out.u8(REMOVED);
            }
            MembershipAnswer::Refused(MembershipError::NotLeader(leader)) => {
                out.u8(NOT_LEADER);
                match leader {
                    Some(leader) => out.u8(1).u64(*leader),
                    None => out.u8(0),
                };
            }
            MembershipAnswer::Refused(MembershipError::UnknownNode(id)) => {
                out.u8(UNKNOWN_NODE).u64(*id);
            }
            MembershipAnswer::Refused(other) => {
                out.u8(REFUSED).bytes(other.to_string().as_bytes());
            }
        }
    }

    pub(super) fn get(input: &mut Decoder<'_>) -> Result<MembershipAnswer, CodecError> {
        Ok(match input.u8()? {
            VOTER => MembershipAnswer::Added(Added::Voter),
            ALREADY_VOTER => MembershipAnswer::Added(Added::AlreadyVoter),
            REMOVED => MembershipAnswer::Removed,
            NOT_LEADER => {
                let leader = match input.u8()? {
                    0 => None,
                    1 => Some(input.u64()?),
                    _ => return Err(malformed("a leader is given or not")),
                };
                MembershipAnswer::Refused(MembershipError::NotLeader(leader))
            }
            UNKNOWN_NODE => MembershipAnswer::Refused(MembershipError::UnknownNode(input.u64()?)),
            REFUSED => MembershipAnswer::Refused(MembershipError::Remote(get_text(input)?)),
            _ => return Err(malformed("unknown membership answer")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip_change(change: MembershipChange) {
        let mut out = Encoder::new();
        change.put(&mut out);
        let bytes = out.finish();
        let mut input = Decoder::new(&bytes, "test");
        assert_eq!(MembershipChange::get(&mut input).unwrap(), change);
        input.finish().unwrap();
    }

    fn round_trip_answer(answer: MembershipAnswer) -> MembershipAnswer {
        let mut out = Encoder::new();
        answer.put(&mut out);
        let bytes = out.finish();
        let mut input = Decoder::new(&bytes, "test");
        let decoded = MembershipAnswer::get(&mut input).unwrap();
        input.finish().unwrap();
        decoded
    }

    #[test]
    fn changes_and_answers_cross_the_bus_whole() {
        round_trip_change(MembershipChange::Add {
            id: 7,
            addr: NodeAddr {
                client: "127.0.0.7:7007".into(),
                bus: "127.0.0.7:17007".into(),
            },
            catch_up: Duration::from_millis(1500),
        });
        round_trip_change(MembershipChange::Remove { id: 3 });
        for answer in [
            MembershipAnswer::Added(Added::Voter),
            MembershipAnswer::Added(Added::AlreadyVoter),
            MembershipAnswer::Removed,
            MembershipAnswer::Refused(MembershipError::NotLeader(Some(2))),
            MembershipAnswer::Refused(MembershipError::NotLeader(None)),
            MembershipAnswer::Refused(MembershipError::UnknownNode(9)),
        ] {
            assert_eq!(round_trip_answer(answer.clone()), answer);
        }
        let refused = MembershipError::LastVoter(1);
        assert_eq!(
            round_trip_answer(MembershipAnswer::Refused(refused.clone())),
            MembershipAnswer::Refused(MembershipError::Remote(refused.to_string()))
        );
    }

    #[test]
    fn unknown_tags_are_refused() {
        for bytes in [&[9u8][..], &[3, 2]] {
            let mut input = Decoder::new(bytes, "test");
            assert!(MembershipAnswer::get(&mut input).is_err());
        }
        let mut input = Decoder::new(&[7u8], "test");
        assert!(MembershipChange::get(&mut input).is_err());
    }
}
