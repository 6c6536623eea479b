//! The state machine's last snapshot on disk: `raft.snapshot`, a snapshot container of kind
//! `RSNP` (storage-format.md 14.5) naming the data file that holds the state
//! (`snapshot.<sequence>.data`), replaced atomically and durably each time a snapshot is built
//! or installed, once its data file is durable, so that a restarted node can serve it without
//! building it again.

use std::path::{Path, PathBuf};

use openraft::SnapshotMeta;

use crate::cluster::entry_codec::{from_wal_id, get_membership, put_membership, to_wal_id};
use crate::cluster::types::{NodeAddr, NodeId, StoredMembership};
use crate::cluster::wal::meta::{get_log_id, put_log_id};
use crate::codec::{CodecError, Decoder, Encoder};
use crate::journal::{self, FileKind, JournalError};
use crate::names::{RAFT_SNAPSHOT_FILE, raft_snapshot_data_name};

/// The kind of the snapshot file.
pub const RAFT_SNAPSHOT_KIND: FileKind = FileKind(*b"RSNP");
const RAFT_SNAPSHOT_GENERATION: u64 = 1;

/// A snapshot: what it covers, and which data file holds the state's own encoding of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// What the snapshot covers: last applied entry, membership, id.
    pub meta: SnapshotMeta<NodeId, NodeAddr>,
    /// The number of its data file, `snapshot.<data>.data` beside this file.
    pub data: u64,
    /// The data file's length in bytes.
    pub data_len: u64,
}

impl StoredSnapshot {
    /// The path of its data file in `dir`.
    pub fn data_path(&self, dir: &Path) -> PathBuf {
        dir.join(raft_snapshot_data_name(self.data))
    }

    /// The payload: last log id, the membership's log id, the membership, the snapshot's id
    /// (bytes), the data file's number and length (u64 each).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Encoder::with_capacity(64);
        put_log_id(&mut out, self.meta.last_log_id.as_ref().map(to_wal_id));
        let membership = &self.meta.last_membership;
        put_log_id(&mut out, membership.log_id().as_ref().map(to_wal_id));
        put_membership(&mut out, membership.membership());
        out.bytes(self.meta.snapshot_id.as_bytes())
            .u64(self.data)
            .u64(self.data_len);
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
        let data = input.u64()?;
        let data_len = input.u64()?;
        input.finish()?;
        Ok(StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id,
                last_membership: StoredMembership::new(membership_log_id, membership),
                snapshot_id,
            },
            data,
            data_len,
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
