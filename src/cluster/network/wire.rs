//! The fields that the bus's messages share: votes, log ids, entries and snapshot metadata,
//! encoded with the crate's codec and the Raft log's own encodings.

use openraft::SnapshotMeta;

use crate::cluster::entry_codec::{
    decode_payload, encode_payload, from_wal_id, get_membership, put_membership, to_wal_id,
};
use crate::cluster::types::{Entry, LogId, NodeAddr, NodeId, StoredMembership, Vote};
use crate::cluster::wal::meta::{get_log_id, put_log_id};
use crate::codec::{CodecError, Decoder, Encoder};

/// The smallest encoded entry: a present log id (25 bytes) and an empty payload's length.
const MIN_ENTRY_LEN: usize = 29;

/// Appends a vote: term, node, and whether it is committed (one byte, 0 or 1).
pub fn put_vote(out: &mut Encoder, vote: &Vote) {
    out.u64(vote.leader_id.term)
        .u64(vote.leader_id.node_id)
        .u8(u8::from(vote.committed));
}

/// Reads a vote written by [`put_vote`].
pub fn get_vote(input: &mut Decoder<'_>) -> Result<Vote, CodecError> {
    let mut vote = Vote::new(input.u64()?, input.u64()?);
    vote.committed = get_bool(input)?;
    Ok(vote)
}

/// Reads a boolean byte, 0 or 1.
pub fn get_bool(input: &mut Decoder<'_>) -> Result<bool, CodecError> {
    match input.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(malformed("a flag is neither 0 nor 1")),
    }
}

/// Appends an optional log id (the Raft log's encoding).
pub fn put_opt_log_id(out: &mut Encoder, id: Option<&LogId>) {
    put_log_id(out, id.map(to_wal_id));
}

/// Reads an optional log id written by [`put_opt_log_id`].
pub fn get_opt_log_id(input: &mut Decoder<'_>) -> Result<Option<LogId>, CodecError> {
    Ok(get_log_id(input)?.map(from_wal_id))
}

/// Appends a count, then each entry: its log id and its payload as bytes.
pub fn put_entries(out: &mut Encoder, entries: &[Entry]) {
    out.u64(entries.len() as u64);
    for entry in entries {
        put_opt_log_id(out, Some(&entry.log_id));
        out.bytes(&encode_payload(&entry.payload));
    }
}

/// Reads entries written by [`put_entries`].
pub fn get_entries(input: &mut Decoder<'_>) -> Result<Vec<Entry>, CodecError> {
    let count = input.count(MIN_ENTRY_LEN)?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let log_id = get_opt_log_id(input)?.ok_or(malformed("an entry has no log id"))?;
        let payload = decode_payload(input.bytes()?)?;
        entries.push(Entry { log_id, payload });
    }
    Ok(entries)
}

/// Appends a snapshot's metadata: last log id, the membership's log id, the membership, and
/// the snapshot's id as bytes.
pub fn put_meta(out: &mut Encoder, meta: &SnapshotMeta<NodeId, NodeAddr>) {
    put_opt_log_id(out, meta.last_log_id.as_ref());
    put_opt_log_id(out, meta.last_membership.log_id().as_ref());
    put_membership(out, meta.last_membership.membership());
    out.bytes(meta.snapshot_id.as_bytes());
}

/// Reads metadata written by [`put_meta`].
pub fn get_meta(input: &mut Decoder<'_>) -> Result<SnapshotMeta<NodeId, NodeAddr>, CodecError> {
    let last_log_id = get_opt_log_id(input)?;
    let membership_log_id = get_opt_log_id(input)?;
    let membership = get_membership(input)?;
    let snapshot_id = get_text(input)?;
    Ok(SnapshotMeta {
        last_log_id,
        last_membership: StoredMembership::new(membership_log_id, membership),
        snapshot_id,
    })
}

/// Reads UTF-8 text written as bytes.
pub fn get_text(input: &mut Decoder<'_>) -> Result<String, CodecError> {
    String::from_utf8(input.bytes()?.to_vec()).map_err(|_| malformed("a text is not UTF-8"))
}

/// A decoding error of a bus message.
pub fn malformed(detail: &'static str) -> CodecError {
    CodecError {
        what: "cluster bus message",
        detail,
    }
}
