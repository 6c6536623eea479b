//! The bytes of what the Raft log and the snapshot file carry: an entry's payload (a blank
//! entry, a command, or a membership change) and a membership (storage-format.md 14.2).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use openraft::{CommittedLeaderId, EntryPayload};

use crate::codec::{CodecError, Decoder, Encoder};

use super::types::{Command, LogId, Membership, NodeAddr, NodeId, TypeConfig};
use super::wal::WalLogId;

const BLANK: u8 = 0;
const COMMAND: u8 = 1;
const MEMBERSHIP: u8 = 2;
/// The smallest encoded node: id, and two empty addresses.
const MIN_NODE_LEN: usize = 16;

/// An openraft log id as the Raft log stores it.
pub fn to_wal_id(id: &LogId) -> WalLogId {
    WalLogId {
        term: id.leader_id.term,
        leader: id.leader_id.node_id,
        index: id.index,
    }
}

/// A log id read from the Raft log, as openraft knows it.
pub fn from_wal_id(id: WalLogId) -> LogId {
    LogId::new(CommittedLeaderId::new(id.term, id.leader), id.index)
}

/// Encodes an entry's payload: a tag byte, then the command or the membership.
pub fn encode_payload(payload: &EntryPayload<TypeConfig>) -> Vec<u8> {
    let mut out = Encoder::new();
    match payload {
        EntryPayload::Blank => {
            out.u8(BLANK);
        }
        EntryPayload::Normal(command) => {
            out.u8(COMMAND).u64(command.time_ms).bytes(&command.body);
        }
        EntryPayload::Membership(membership) => {
            out.u8(MEMBERSHIP);
            put_membership(&mut out, membership);
        }
    }
    out.finish()
}

/// Decodes an entry's payload, which must be consumed exactly.
pub fn decode_payload(bytes: &[u8]) -> Result<EntryPayload<TypeConfig>, CodecError> {
    let mut input = Decoder::new(bytes, "raft entry payload");
    let payload = match input.u8()? {
        BLANK => EntryPayload::Blank,
        COMMAND => {
            let time_ms = input.u64()?;
            let body = Bytes::copy_from_slice(input.bytes()?);
            EntryPayload::Normal(Command { time_ms, body })
        }
        MEMBERSHIP => EntryPayload::Membership(get_membership(&mut input)?),
        _ => {
            return Err(CodecError {
                what: "raft entry payload",
                detail: "unknown tag",
            });
        }
    };
    input.finish()?;
    Ok(payload)
}

/// What kind of entry a payload is, for a listing: `blank`, `command`, `membership`, or
/// `undecodable` when it does not decode.
pub fn payload_kind(bytes: &[u8]) -> &'static str {
    match decode_payload(bytes) {
        Ok(EntryPayload::Blank) => "blank",
        Ok(EntryPayload::Normal(_)) => "command",
        Ok(EntryPayload::Membership(_)) => "membership",
        Err(_) => "undecodable",
    }
}

/// Appends a membership: its configurations (one, or two during a joint change), each a set of
/// voter ids, then every node (voters and learners) with its addresses.
pub fn put_membership(out: &mut Encoder, membership: &Membership) {
    let configs = membership.get_joint_config();
    out.u64(configs.len() as u64);
    for config in configs {
        out.u64(config.len() as u64);
        for id in config {
            out.u64(*id);
        }
    }
    let nodes: Vec<(&NodeId, &NodeAddr)> = membership.nodes().collect();
    out.u64(nodes.len() as u64);
    for (id, addr) in nodes {
        out.u64(*id)
            .bytes(addr.client.as_bytes())
            .bytes(addr.bus.as_bytes());
    }
}

/// Reads a membership written by [`put_membership`].
pub fn get_membership(input: &mut Decoder<'_>) -> Result<Membership, CodecError> {
    let config_count = input.count(8)?;
    let mut configs = Vec::with_capacity(config_count);
    for _ in 0..config_count {
        let voter_count = input.count(8)?;
        let mut voters = BTreeSet::new();
        for _ in 0..voter_count {
            voters.insert(input.u64()?);
        }
        configs.push(voters);
    }
    let node_count = input.count(MIN_NODE_LEN)?;
    let mut nodes = BTreeMap::new();
    for _ in 0..node_count {
        let id = input.u64()?;
        let client = text(input.bytes()?)?;
        let bus = text(input.bytes()?)?;
        nodes.insert(id, NodeAddr { client, bus });
    }
    Ok(Membership::new(configs, nodes))
}

fn text(bytes: &[u8]) -> Result<String, CodecError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| CodecError {
        what: "raft membership",
        detail: "an address is not UTF-8",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u64) -> NodeAddr {
        NodeAddr {
            client: format!("10.0.0.{n}:6379"),
            bus: format!("10.0.0.{n}:16379"),
        }
    }

    #[test]
    fn every_payload_round_trips() {
        let nodes: BTreeMap<NodeId, NodeAddr> = (1..=4).map(|n| (n, addr(n))).collect();
        let joint = Membership::new(
            vec![BTreeSet::from([1, 2, 3]), BTreeSet::from([2, 3])],
            nodes,
        );
        let payloads = [
            EntryPayload::Blank,
            EntryPayload::Normal(Command {
                time_ms: 1_700_000_000_000,
                body: Bytes::from_static(b"XADD orders * k v"),
            }),
            EntryPayload::Membership(joint),
        ];
        for payload in payloads {
            let bytes = encode_payload(&payload);
            let decoded = decode_payload(&bytes).unwrap();
            assert_eq!(format!("{decoded:?}"), format!("{payload:?}"));
            assert!(decode_payload(&bytes[..bytes.len() - 1]).is_err());
        }
        assert!(decode_payload(&[9]).is_err());
        assert!(decode_payload(&[0, 0]).is_err());
    }
}
