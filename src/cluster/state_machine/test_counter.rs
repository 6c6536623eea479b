//! A small replicated state for tests: named counters, each command adding to one. It keeps
//! its state and applied index in its own snapshot file, rewritten at every command, as a
//! store records its applied index with its data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::cluster::types::{Command, Reply};
use crate::codec::{CodecError, Decoder, Encoder};
use crate::journal::{self, FileKind, JournalError};

use super::{FrozenState, Replicated};

const COUNTERS_FILE: &str = "counters";
const COUNTERS_KIND: FileKind = FileKind(*b"TCNT");

/// The command adding `delta` to the counter `name`.
pub(crate) fn add(time_ms: u64, name: &str, delta: u64) -> Command {
    let mut body = Encoder::new();
    body.bytes(name.as_bytes()).u64(delta);
    Command {
        time_ms,
        body: Bytes::from(body.finish()),
    }
}

/// A command as applied: `(index, time_ms, name, delta)`.
pub(crate) type AppliedCommand = (u64, u64, Vec<u8>, u64);

/// What a counter state did to itself, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StateEvent {
    /// A command applied.
    Applied(AppliedCommand),
    /// A whole state installed (from a snapshot), holding the commands up to `applied`.
    Installed { applied: Option<u64> },
}

/// The events of a node's counter state, shared by the states its restarts open over the same
/// directory, so that a test sees what the node did across them.
pub(crate) type Ledger = Arc<Mutex<Vec<StateEvent>>>;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Counters {
    applied: Option<u64>,
    values: BTreeMap<Vec<u8>, u64>,
}

impl Counters {
    fn encode(&self) -> Vec<u8> {
        let mut out = Encoder::new();
        out.u64(self.applied.map_or(0, |index| index + 1));
        out.u64(self.values.len() as u64);
        for (name, value) in &self.values {
            out.bytes(name).u64(*value);
        }
        out.finish()
    }

    fn decode(bytes: &[u8]) -> Result<Counters, CodecError> {
        let mut input = Decoder::new(bytes, "counters");
        let applied = input.u64()?.checked_sub(1);
        let count = input.count(12)?;
        let mut values = BTreeMap::new();
        for _ in 0..count {
            let name = input.bytes()?.to_vec();
            values.insert(name, input.u64()?);
        }
        input.finish()?;
        Ok(Counters { applied, values })
    }
}

/// Counters kept in a directory; every command applied and state installed is also remembered
/// in order.
#[derive(Debug)]
pub(crate) struct CounterMap {
    dir: PathBuf,
    counters: Mutex<Counters>,
    ledger: Ledger,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CounterError {
    #[error(transparent)]
    File(#[from] JournalError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl CounterMap {
    pub(crate) fn open(dir: &Path) -> Result<CounterMap, CounterError> {
        CounterMap::open_recording(dir, Ledger::default())
    }

    /// Opens the counters in `dir`, appending what they do to `ledger`.
    pub(crate) fn open_recording(dir: &Path, ledger: Ledger) -> Result<CounterMap, CounterError> {
        let path = dir.join(COUNTERS_FILE);
        let counters = match journal::read_snapshot(&path, COUNTERS_KIND)? {
            Some(snapshot) => Counters::decode(&snapshot.payload)?,
            None => Counters::default(),
        };
        Ok(CounterMap {
            dir: dir.to_path_buf(),
            counters: Mutex::new(counters),
            ledger,
        })
    }

    pub(crate) fn value(&self, name: &str) -> u64 {
        let counters = self.counters.lock();
        counters.values.get(name.as_bytes()).copied().unwrap_or(0)
    }

    /// The commands applied, in order, as recorded in the ledger.
    pub(crate) fn history(&self) -> Vec<AppliedCommand> {
        let ledger = self.ledger.lock();
        ledger
            .iter()
            .filter_map(|event| match event {
                StateEvent::Applied(command) => Some(command.clone()),
                StateEvent::Installed { .. } => None,
            })
            .collect()
    }

    fn save(&self, counters: &Counters) -> Result<(), CounterError> {
        journal::write_snapshot(
            &self.dir,
            COUNTERS_FILE,
            COUNTERS_KIND,
            1,
            &counters.encode(),
        )?;
        Ok(())
    }
}

impl Replicated for CounterMap {
    type Error = CounterError;

    fn applied(&self) -> Result<Option<u64>, CounterError> {
        Ok(self.counters.lock().applied)
    }

    fn apply(&self, commands: &[(u64, Command)]) -> Result<Vec<Reply>, CounterError> {
        let mut counters = self.counters.lock();
        let mut next = counters.clone();
        let mut replies = Vec::new();
        let mut applied = Vec::new();
        for (index, command) in commands {
            let mut input = Decoder::new(&command.body, "counter command");
            let name = input.bytes()?.to_vec();
            let delta = input.u64()?;
            input.finish()?;
            assert!(
                next.applied.is_none_or(|applied| *index > applied),
                "command {index} applied twice"
            );
            let value = next.values.entry(name.clone()).or_insert(0);
            *value += delta;
            replies.push(Reply::new(*value));
            next.applied = Some(*index);
            applied.push((*index, command.time_ms, name, delta));
        }
        // One write for the batch: its effects and its last index are saved together.
        self.save(&next)?;
        *counters = next;
        self.ledger
            .lock()
            .extend(applied.into_iter().map(StateEvent::Applied));
        Ok(replies)
    }

    fn freeze(&self) -> Result<FrozenState<CounterError>, CounterError> {
        let encoded = self.counters.lock().encode();
        Ok(Box::new(move |out| Ok(out.write_all(&encoded)?)))
    }

    fn install(&self, archive: &Path) -> Result<(), CounterError> {
        let restored = Counters::decode(&std::fs::read(archive)?)?;
        self.save(&restored)?;
        let applied = restored.applied;
        *self.counters.lock() = restored;
        self.ledger.lock().push(StateEvent::Installed { applied });
        Ok(())
    }
}
