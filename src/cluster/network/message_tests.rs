//! Every request and response of the bus survives encoding and decoding, and damaged payloads
//! are refused.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use openraft::error::{Fatal, Infallible, InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{CommittedLeaderId, SnapshotMeta, SnapshotSegmentId};

use crate::cluster::types::{
    Command, Entry, EntryPayload, LogId, Membership, NodeAddr, NodeId, StoredMembership, Vote,
};

use super::message::{ReadIndexAnswer, Request, Response};
use super::remote_error::RemoteFailure;

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn committed(term: u64, node: NodeId) -> Vote {
    let mut vote = Vote::new(term, node);
    vote.committed = true;
    vote
}

fn membership() -> Membership {
    let nodes: BTreeMap<NodeId, NodeAddr> = (1..=3)
        .map(|n| {
            let addr = NodeAddr {
                client: format!("10.0.0.{n}:6379"),
                bus: format!("10.0.0.{n}:16379"),
            };
            (n, addr)
        })
        .collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
}

fn entries() -> Vec<Entry> {
    vec![
        Entry {
            log_id: log_id(2, 7),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: log_id(2, 8),
            payload: EntryPayload::Normal(Command {
                time_ms: 1_700_000_000_000,
                body: Bytes::from_static(b"XADD jobs * k v"),
            }),
        },
        Entry {
            log_id: log_id(2, 9),
            payload: EntryPayload::Membership(membership()),
        },
    ]
}

fn requests() -> Vec<Request> {
    vec![
        Request::AppendEntries(AppendEntriesRequest {
            vote: committed(2, 1),
            prev_log_id: Some(log_id(1, 6)),
            leader_commit: Some(log_id(2, 7)),
            entries: entries(),
        }),
        Request::AppendEntries(AppendEntriesRequest {
            vote: committed(1, 1),
            prev_log_id: None,
            leader_commit: None,
            entries: Vec::new(),
        }),
        Request::Vote(VoteRequest {
            vote: Vote::new(3, 2),
            last_log_id: Some(log_id(2, 9)),
        }),
        Request::Vote(VoteRequest {
            vote: Vote::new(1, 3),
            last_log_id: None,
        }),
        Request::InstallSnapshot(InstallSnapshotRequest {
            vote: committed(2, 1),
            meta: SnapshotMeta {
                last_log_id: Some(log_id(2, 9)),
                last_membership: StoredMembership::new(Some(log_id(1, 1)), membership()),
                snapshot_id: "2-9-1".to_owned(),
            },
            offset: 4096,
            data: b"state bytes".to_vec(),
            done: true,
        }),
        Request::ReadIndex,
    ]
}

fn responses() -> Vec<Response> {
    let segment = |offset| SnapshotSegmentId {
        id: "2-9-1".to_owned(),
        offset,
    };
    vec![
        Response::AppendEntries(AppendEntriesResponse::Success),
        Response::AppendEntries(AppendEntriesResponse::PartialSuccess(Some(log_id(2, 8)))),
        Response::AppendEntries(AppendEntriesResponse::PartialSuccess(None)),
        Response::AppendEntries(AppendEntriesResponse::Conflict),
        Response::AppendEntries(AppendEntriesResponse::HigherVote(committed(4, 3))),
        Response::Vote(VoteResponse {
            vote: Vote::new(3, 2),
            vote_granted: true,
            last_log_id: Some(log_id(2, 9)),
        }),
        Response::Vote(VoteResponse {
            vote: Vote::new(3, 3),
            vote_granted: false,
            last_log_id: None,
        }),
        Response::InstallSnapshot(InstallSnapshotResponse {
            vote: committed(2, 1),
        }),
        Response::ReadIndex(ReadIndexAnswer::ReadAt(Some(41))),
        Response::ReadIndex(ReadIndexAnswer::ReadAt(None)),
        Response::ReadIndex(ReadIndexAnswer::NotLeader(Some(3))),
        Response::ReadIndex(ReadIndexAnswer::NotLeader(None)),
        Response::ReadIndex(ReadIndexAnswer::Unavailable("no quorum".to_owned())),
        Response::Failure(RemoteFailure::Stopped),
        Response::Failure(RemoteFailure::Panicked),
        Response::Failure(RemoteFailure::Storage("disk full".to_owned())),
        Response::Failure(RemoteFailure::SnapshotMismatch {
            expect: segment(0),
            got: segment(4096),
        }),
    ]
}

/// Checks that `bytes` decode to what printed as `expected`, and that every shortened or
/// lengthened copy is refused.
fn check<T: std::fmt::Debug, E>(bytes: &[u8], expected: &str, decode: fn(&[u8]) -> Result<T, E>) {
    let decoded = decode(bytes).ok().expect("decodes");
    assert_eq!(format!("{decoded:?}"), expected);
    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len]).is_err(), "cut at {len}");
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(decode(&longer).is_err());
}

#[test]
fn every_request_round_trips() {
    for request in requests() {
        check(&request.encode(), &format!("{request:?}"), Request::decode);
    }
    assert!(Request::decode(&[9]).is_err());
}

#[test]
fn every_response_round_trips() {
    for response in responses() {
        check(
            &response.encode(),
            &format!("{response:?}"),
            Response::decode,
        );
    }
    assert!(Response::decode(&[9]).is_err());
    assert!(Response::decode(&[1, 9]).is_err());
}

#[test]
fn remote_errors_carry_openraft_errors_both_ways() {
    let stopped: RaftError<NodeId> = RaftError::Fatal(Fatal::Stopped);
    let failure = RemoteFailure::from_raft(&stopped);
    assert_eq!(failure, RemoteFailure::Stopped);
    let back = failure.into_raft::<Infallible>().expect("a fatal error");
    assert!(matches!(back, RaftError::Fatal(Fatal::Stopped)));

    let mismatch = SnapshotMismatch {
        expect: SnapshotSegmentId {
            id: "a".to_owned(),
            offset: 0,
        },
        got: SnapshotSegmentId {
            id: "a".to_owned(),
            offset: 9,
        },
    };
    let api: RaftError<NodeId, InstallSnapshotError> =
        RaftError::APIError(InstallSnapshotError::SnapshotMismatch(mismatch.clone()));
    let failure = RemoteFailure::from_raft(&api);
    assert!(failure.clone().into_raft::<Infallible>().is_none());
    let back = failure
        .into_raft::<InstallSnapshotError>()
        .expect("an API error");
    assert_eq!(
        back.api_error(),
        Some(&InstallSnapshotError::SnapshotMismatch(mismatch))
    );

    let storage = RemoteFailure::Storage("disk full".to_owned());
    let back = storage.into_raft::<Infallible>().expect("a fatal error");
    assert!(back.to_string().contains("disk full"), "{back}");
}
