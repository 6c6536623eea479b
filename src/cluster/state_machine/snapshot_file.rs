//! The state machine's last snapshot on disk: `raft.snapshot`, a snapshot container of kind
//! `RSNP` (storage-format.md 14.5), replaced atomically and durably each time a snapshot is
//! built or installed, so that a restarted node can serve it without building it again.

use std::path::Path;

use openraft::SnapshotMeta;

use crate::cluster::entry_codec::{from_wal_id, get_membership, put_membership, to_wal_id};
use crate::cluster::types::{NodeAddr, NodeId, StoredMembership};
use crate::cluster::wal::meta::{get_log_id, put_log_id};
use crate::codec::{CodecError, Decoder, Encoder};
use crate::journal::{self, FileKind, JournalError};
use crate::names::RAFT_SNAPSHOT_FILE;

/// The kind of the snapshot file.
pub const RAFT_SNAPSHOT_KIND: FileKind = FileKind(*b"RSNP");
const RAFT_SNAPSHOT_GENERATION: u64 = 1;

/// A snapshot: what it covers, and the state's own bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// What the snapshot covers: last applied entry, membership, id.
    pub meta: SnapshotMeta<NodeId, NodeAddr>,
    /// The replicated state's own encoding of itself.
    pub state: Vec<u8>,
}

impl StoredSnapshot {
    /// The payload: last log id, the membership's log id, the membership, the snapshot's id
    /// (bytes), the state (bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Encoder::with_capacity(64 + self.state.len());
        put_log_id(&mut out, self.meta.last_log_id.as_ref().map(to_wal_id));
        let membership = &self.meta.last_membership;
        put_log_id(&mut out, membership.log_id().as_ref().map(to_wal_id));
        put_membership(&mut out, membership.membership());
        out.bytes(self.meta.snapshot_id.as_bytes())
            .bytes(&self.state);
        out.finish()
    }

    /// Decodes a payload written by [`encode`](Self::encode).
    pub fn decode(payload: &[u8]) -> Result<StoredSnapshot, CodecError> {
        let mut input = Decoder::new(payload, "raft snapshot");
        let last_log_id = get_log_id(&mut input)?.map(from_wal_id);
        let membership_log_id = get_log_id(&mut input)?.map(from_wal_id);
        let membership = get_membership(&mut input)?;
        let snapshot_id = String::from_utf8(input.bytes()?.to_vec()).map_err(|_| CodecError {
            what: "raft snapshot",
            detail: "the snapshot id is not UTF-8",
        })?;
        let state = input.bytes()?.to_vec();
        input.finish()?;
        Ok(StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id,
                last_membership: StoredMembership::new(membership_log_id, membership),
                snapshot_id,
            },
            state,
        })
    }

    /// Reads `dir/raft.snapshot`; `None` if there is none.
    pub fn read(dir: &Path) -> Result<Option<StoredSnapshot>, JournalError> {
        let path = dir.join(RAFT_SNAPSHOT_FILE);
        let Some(file) = journal::read_snapshot(&path, RAFT_SNAPSHOT_KIND)? else {
            return Ok(None);
        };
        StoredSnapshot::decode(&file.payload)
            .map(Some)
            .map_err(|error| JournalError::SnapshotCorrupt {
                path,
                detail: error.to_string(),
            })
    }

    /// Replaces `dir/raft.snapshot` durably.
    pub fn write(&self, dir: &Path) -> Result<(), JournalError> {
        journal::write_snapshot(
            dir,
            RAFT_SNAPSHOT_FILE,
            RAFT_SNAPSHOT_KIND,
            RAFT_SNAPSHOT_GENERATION,
            &self.encode(),
        )
    }
}
