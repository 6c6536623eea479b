//! A journal's frames decoded into its owner's events, with where each sits in the file.
//!
//! The owner supplies the decoder, so this module still never looks inside a payload. Opening a
//! journal and inspecting it both read it through this one decoding: they agree on which events
//! a journal holds, where a frame that does not decode stops the replay, and what damage
//! follows the last good frame.

use std::fmt::Display;

use super::{FRAME_HEADER_LEN, HEADER_LEN, JournalDamage, Replay};

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoggedEvent<E> {
    /// Byte position of the frame in the journal.
    pub(crate) pos: u64,
    /// Bytes of the frame's payload.
    pub(crate) len: usize,
    /// What the payload decoded to.
    pub(crate) event: E,
}

/// A frame that passed its checksum but does not decode: written by another version or a bug.
/// Replaying around it could apply later changes without it, so no later frame is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Undecodable {
    /// Byte position of the frame in the journal.
    pub(crate) pos: u64,
    /// Why it does not decode.
    pub(crate) detail: String,
}

/// What a journal holds, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JournalEvents<E> {
    /// The generation written in the header.
    pub(crate) generation: u64,
    /// The events of the good frames, in order, up to the first that does not decode.
    pub(crate) events: Vec<LoggedEvent<E>>,
    /// The first good frame that does not decode, if one does not.
    pub(crate) undecodable: Option<Undecodable>,
    /// What followed the last good frame, if anything but zeros did.
    pub(crate) damage: Option<JournalDamage>,
}

impl<E> JournalEvents<E> {
    /// Decodes the frames of `replay` with `decode`, stopping at the first it refuses.
    pub(crate) fn decode<Error: Display>(
        replay: Replay,
        decode: impl Fn(&[u8]) -> Result<E, Error>,
    ) -> Self {
        let mut events = Vec::with_capacity(replay.frames.len());
        let mut undecodable = None;
        let mut pos = HEADER_LEN as u64;
        for frame in &replay.frames {
            match decode(frame) {
                Ok(event) => events.push(LoggedEvent {
                    pos,
                    len: frame.len(),
                    event,
                }),
                Err(error) => {
                    undecodable = Some(Undecodable {
                        pos,
                        detail: error.to_string(),
                    });
                    break;
                }
            }
            pos += (FRAME_HEADER_LEN + frame.len()) as u64;
        }
        JournalEvents {
            generation: replay.generation,
            events,
            undecodable,
            damage: replay.damage,
        }
    }

    /// The events alone, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &E> {
        self.events.iter().map(|logged| &logged.event)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn replay(frames: &[&str], damage: bool) -> Replay {
        Replay {
            generation: 4,
            frames: frames
                .iter()
                .map(|frame| frame.as_bytes().to_vec())
                .collect(),
            damage: damage.then(|| JournalDamage {
                path: PathBuf::from("journal"),
                position: 99,
                dropped_bytes: 7,
                reason: "zeroed".into(),
            }),
        }
    }

    fn digit(frame: &[u8]) -> Result<u8, String> {
        match frame {
            [b @ b'0'..=b'9'] => Ok(b - b'0'),
            _ => Err(format!("{frame:?} is not a digit")),
        }
    }

    #[test]
    fn events_carry_their_frame_positions_and_the_damage() {
        let scan = JournalEvents::decode(replay(&["1"], true), digit);
        assert_eq!(scan.generation, 4);
        assert_eq!(scan.iter().copied().collect::<Vec<_>>(), [1]);
        assert_eq!(scan.damage.as_ref().map(|d| d.position), Some(99));
        let scan = JournalEvents::decode(replay(&["1", "2", "3"], false), digit);
        let positions: Vec<(u64, usize)> = scan.events.iter().map(|e| (e.pos, e.len)).collect();
        assert_eq!(positions, [(32, 1), (41, 1), (50, 1)]);
        assert_eq!(scan.iter().copied().collect::<Vec<_>>(), [1, 2, 3]);
        assert!(scan.undecodable.is_none() && scan.damage.is_none());
    }

    #[test]
    fn the_first_undecodable_frame_stops_the_events() {
        let scan = JournalEvents::decode(replay(&["1", "23", "4"], true), digit);
        assert_eq!(scan.iter().copied().collect::<Vec<_>>(), [1]);
        let undecodable = scan.undecodable.unwrap();
        assert_eq!(undecodable.pos, 41);
        assert!(
            undecodable.detail.contains("not a digit"),
            "{undecodable:?}"
        );
        assert!(scan.damage.is_some(), "damage is reported as read");
    }
}
