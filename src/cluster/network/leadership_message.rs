//! The bus messages that move a shard's leadership to a chosen node. openraft 0.9 cannot hand
//! leadership over, so a move is two steps on the group: its other voters stop starting
//! elections for a while, then the chosen voter starts one. The leader grants the chosen
//! voter's vote once its own lease has run out (its log is as long: the chosen voter is up to
//! date) and steps down; the others grant it once they stop hearing from the old leader; no one
//! else campaigns meanwhile (docs/cluster-protocol.md).

use std::time::Duration;

use crate::codec::{CodecError, Decoder, Encoder};

use super::wire::{get_text, malformed};

const PAUSE_ELECTIONS: u8 = 0;
const CAMPAIGN: u8 = 1;

const DONE: u8 = 0;
const FAILED: u8 = 1;

/// One step of a leadership move, made by the node that receives it on the connection's group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadershipStep {
    /// Start no election for this long (votes are still granted); then elect as before.
    PauseElections(Duration),
    /// Start an election now.
    Campaign,
}

/// The answer to a [`LeadershipStep`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadershipAnswer {
    /// The step is taken (an election started, or elections paused).
    Done,
    /// The step could not be taken: why (the group stopped).
    Failed(String),
}

impl LeadershipStep {
    pub(super) fn put(&self, out: &mut Encoder) {
        match self {
            LeadershipStep::PauseElections(pause) => {
                let millis = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
                out.u8(PAUSE_ELECTIONS).u64(millis);
            }
            LeadershipStep::Campaign => {
                out.u8(CAMPAIGN);
            }
        }
    }

    pub(super) fn get(input: &mut Decoder<'_>) -> Result<LeadershipStep, CodecError> {
        match input.u8()? {
            PAUSE_ELECTIONS => Ok(LeadershipStep::PauseElections(Duration::from_millis(
                input.u64()?,
            ))),
            CAMPAIGN => Ok(LeadershipStep::Campaign),
            _ => Err(malformed("unknown leadership step")),
        }
    }
}

impl LeadershipAnswer {
    pub(super) fn put(&self, out: &mut Encoder) {
        match self {
            LeadershipAnswer::Done => {
                out.u8(DONE);
            }
            LeadershipAnswer::Failed(reason) => {
                out.u8(FAILED).bytes(reason.as_bytes());
            }
        }
    }

    pub(super) fn get(input: &mut Decoder<'_>) -> Result<LeadershipAnswer, CodecError> {
        match input.u8()? {
            DONE => Ok(LeadershipAnswer::Done),
            FAILED => Ok(LeadershipAnswer::Failed(get_text(input)?)),
            _ => Err(malformed("unknown leadership answer")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_answers_cross_the_bus_whole() {
        for step in [
            LeadershipStep::PauseElections(Duration::from_millis(2500)),
            LeadershipStep::Campaign,
        ] {
            let mut out = Encoder::new();
            step.put(&mut out);
            let bytes = out.finish();
            let mut input = Decoder::new(&bytes, "test");
            assert_eq!(LeadershipStep::get(&mut input).unwrap(), step);
            input.finish().unwrap();
        }
        for answer in [
            LeadershipAnswer::Done,
            LeadershipAnswer::Failed("stopped".into()),
        ] {
            let mut out = Encoder::new();
            answer.put(&mut out);
            let bytes = out.finish();
            let mut input = Decoder::new(&bytes, "test");
            assert_eq!(LeadershipAnswer::get(&mut input).unwrap(), answer);
            input.finish().unwrap();
        }
        let mut input = Decoder::new(&[4u8], "test");
        assert!(LeadershipStep::get(&mut input).is_err());
    }
}
