//! The requests and responses of the bus, each the payload of one frame: a tag byte, then the
//! message's fields (docs/cluster-protocol.md).

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::cluster::types::{NodeId, TypeConfig};
use crate::codec::{CodecError, Decoder, Encoder};

use super::leadership_message::{LeadershipAnswer, LeadershipStep};
use super::membership_message::{MembershipAnswer, MembershipChange};
use super::remote_error::RemoteFailure;
use super::wire::{
    get_bool, get_entries, get_meta, get_opt_log_id, get_text, get_vote, malformed, put_entries,
    put_meta, put_opt_log_id, put_vote,
};

const APPEND_ENTRIES: u8 = 1;
const VOTE: u8 = 2;
const INSTALL_SNAPSHOT: u8 = 3;
const READ_INDEX: u8 = 4;
const CHANGE_MEMBERSHIP: u8 = 5;
const LEADERSHIP: u8 = 6;
const FAILURE: u8 = 0xff;

const SUCCESS: u8 = 0;
const PARTIAL_SUCCESS: u8 = 1;
const CONFLICT: u8 = 2;
const HIGHER_VOTE: u8 = 3;

const READ_AT: u8 = 0;
const NOT_LEADER: u8 = 1;
const UNAVAILABLE: u8 = 2;

/// A request from one node to another.
#[derive(Debug)]
pub enum Request {
    /// Replicate entries, or a heartbeat.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Ask for a vote.
    Vote(VoteRequest<NodeId>),
    /// A chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// From a follower that is to answer a read: the index its state must have applied for
    /// the read to see every write acknowledged before it, which the leader gives once a
    /// quorum confirmed that it still leads.
    ReadIndex,
    /// To the group's leader: make this change to the group's membership.
    ChangeMembership(MembershipChange),
    /// To a voter of the group: take this step of a leadership move.
    Leadership(LeadershipStep),
}

/// The leader's answer to [`Request::ReadIndex`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadIndexAnswer {
    /// A read that waits until the log up to this index is applied (none: the log is empty)
    /// sees every write acknowledged before the request.
    ReadAt(Option<u64>),
    /// The node does not lead (any more); the leader it knows, if any.
    NotLeader(Option<NodeId>),
    /// The node could not confirm that it leads (no quorum answered), or its Raft stopped.
    Unavailable(String),
}

/// The answer to a [`Request`].
#[derive(Debug)]
pub enum Response {
    /// The answer to [`Request::AppendEntries`].
    AppendEntries(AppendEntriesResponse<NodeId>),
    /// The answer to [`Request::Vote`].
    Vote(VoteResponse<NodeId>),
    /// The answer to [`Request::InstallSnapshot`].
    InstallSnapshot(InstallSnapshotResponse<NodeId>),
    /// The answer to [`Request::ReadIndex`].
    ReadIndex(ReadIndexAnswer),
    /// The answer to [`Request::ChangeMembership`].
    Membership(MembershipAnswer),
    /// The answer to [`Request::Leadership`].
    Leadership(LeadershipAnswer),
    /// The remote node failed to handle the request.
    Failure(RemoteFailure),
}

impl Request {
    /// The request's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Request::AppendEntries(_) => "AppendEntries",
            Request::Vote(_) => "Vote",
            Request::InstallSnapshot(_) => "InstallSnapshot",
            Request::ReadIndex => "ReadIndex",
            Request::ChangeMembership(_) => "ChangeMembership",
            Request::Leadership(_) => "Leadership",
        }
    }

    /// The frame payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Encoder::new();
        match self {
            Request::AppendEntries(rpc) => {
                out.u8(APPEND_ENTRIES);
                put_vote(&mut out, &rpc.vote);
                put_opt_log_id(&mut out, rpc.prev_log_id.as_ref());
                put_opt_log_id(&mut out, rpc.leader_commit.as_ref());
                put_entries(&mut out, &rpc.entries);
            }
            Request::Vote(rpc) => {
                out.u8(VOTE);
                put_vote(&mut out, &rpc.vote);
                put_opt_log_id(&mut out, rpc.last_log_id.as_ref());
            }
            Request::InstallSnapshot(rpc) => {
                out.u8(INSTALL_SNAPSHOT);
                put_vote(&mut out, &rpc.vote);
                put_meta(&mut out, &rpc.meta);
                out.u64(rpc.offset).bytes(&rpc.data).u8(u8::from(rpc.done));
            }
            Request::ReadIndex => {
                out.u8(READ_INDEX);
            }
            Request::ChangeMembership(change) => {
                out.u8(CHANGE_MEMBERSHIP);
                change.put(&mut out);
            }
            Request::Leadership(step) => {
                out.u8(LEADERSHIP);
                step.put(&mut out);
            }
        }
        out.finish()
    }

    /// Decodes a frame payload, which must be consumed exactly.
    pub fn decode(payload: &[u8]) -> Result<Request, CodecError> {
        let mut input = Decoder::new(payload, "cluster bus request");
        let request = match input.u8()? {
            APPEND_ENTRIES => Request::AppendEntries(AppendEntriesRequest {
                vote: get_vote(&mut input)?,
                prev_log_id: get_opt_log_id(&mut input)?,
                leader_commit: get_opt_log_id(&mut input)?,
                entries: get_entries(&mut input)?,
            }),
            VOTE => Request::Vote(VoteRequest {
                vote: get_vote(&mut input)?,
                last_log_id: get_opt_log_id(&mut input)?,
            }),
            INSTALL_SNAPSHOT => Request::InstallSnapshot(InstallSnapshotRequest {
                vote: get_vote(&mut input)?,
                meta: get_meta(&mut input)?,
                offset: input.u64()?,
                data: input.bytes()?.to_vec(),
                done: get_bool(&mut input)?,
            }),
            READ_INDEX => Request::ReadIndex,
            CHANGE_MEMBERSHIP => Request::ChangeMembership(MembershipChange::get(&mut input)?),
            LEADERSHIP => Request::Leadership(LeadershipStep::get(&mut input)?),
            _ => return Err(malformed("unknown request")),
        };
        input.finish()?;
        Ok(request)
    }
}

impl Response {
    /// The frame payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Encoder::new();
        match self {
            Response::AppendEntries(response) => {
                out.u8(APPEND_ENTRIES);
                put_append_response(&mut out, response);
            }
            Response::Vote(response) => {
                out.u8(VOTE);
                put_vote(&mut out, &response.vote);
                out.u8(u8::from(response.vote_granted));
                put_opt_log_id(&mut out, response.last_log_id.as_ref());
            }
            Response::InstallSnapshot(response) => {
                out.u8(INSTALL_SNAPSHOT);
                put_vote(&mut out, &response.vote);
            }
            Response::ReadIndex(answer) => {
                out.u8(READ_INDEX);
                put_read_index(&mut out, answer);
            }
            Response::Membership(answer) => {
                out.u8(CHANGE_MEMBERSHIP);
                answer.put(&mut out);
            }
            Response::Leadership(answer) => {
                out.u8(LEADERSHIP);
                answer.put(&mut out);
            }
            Response::Failure(failure) => {
                out.u8(FAILURE);
                failure.put(&mut out);
            }
        }
        out.finish()
    }

    /// Decodes a frame payload, which must be consumed exactly.
    pub fn decode(payload: &[u8]) -> Result<Response, CodecError> {
        let mut input = Decoder::new(payload, "cluster bus response");
        let response = match input.u8()? {
            APPEND_ENTRIES => Response::AppendEntries(get_append_response(&mut input)?),
            VOTE => Response::Vote(VoteResponse {
                vote: get_vote(&mut input)?,
                vote_granted: get_bool(&mut input)?,
                last_log_id: get_opt_log_id(&mut input)?,
            }),
            INSTALL_SNAPSHOT => Response::InstallSnapshot(InstallSnapshotResponse {
                vote: get_vote(&mut input)?,
            }),
            READ_INDEX => Response::ReadIndex(get_read_index(&mut input)?),
            CHANGE_MEMBERSHIP => Response::Membership(MembershipAnswer::get(&mut input)?),
            LEADERSHIP => Response::Leadership(LeadershipAnswer::get(&mut input)?),
            FAILURE => Response::Failure(RemoteFailure::get(&mut input)?),
            _ => return Err(malformed("unknown response")),
        };
        input.finish()?;
        Ok(response)
    }
}

fn put_append_response(out: &mut Encoder, response: &AppendEntriesResponse<NodeId>) {
    match response {
        AppendEntriesResponse::Success => {
            out.u8(SUCCESS);
        }
        AppendEntriesResponse::PartialSuccess(matching) => {
            out.u8(PARTIAL_SUCCESS);
            put_opt_log_id(out, matching.as_ref());
        }
        AppendEntriesResponse::Conflict => {
            out.u8(CONFLICT);
        }
        AppendEntriesResponse::HigherVote(vote) => {
            out.u8(HIGHER_VOTE);
            put_vote(out, vote);
        }
    }
}

fn get_append_response(
    input: &mut Decoder<'_>,
) -> Result<AppendEntriesResponse<NodeId>, CodecError> {
    match input.u8()? {
        SUCCESS => Ok(AppendEntriesResponse::Success),
        PARTIAL_SUCCESS => Ok(AppendEntriesResponse::PartialSuccess(get_opt_log_id(
            input,
        )?)),
        CONFLICT => Ok(AppendEntriesResponse::Conflict),
        HIGHER_VOTE => Ok(AppendEntriesResponse::HigherVote(get_vote(input)?)),
        _ => Err(malformed("unknown AppendEntries outcome")),
    }
}

fn put_read_index(out: &mut Encoder, answer: &ReadIndexAnswer) {
    match answer {
        ReadIndexAnswer::ReadAt(index) => {
            put_opt_u64(out.u8(READ_AT), *index);
        }
        ReadIndexAnswer::NotLeader(leader) => {
            put_opt_u64(out.u8(NOT_LEADER), *leader);
        }
        ReadIndexAnswer::Unavailable(reason) => {
            out.u8(UNAVAILABLE).bytes(reason.as_bytes());
        }
    }
}

fn get_read_index(input: &mut Decoder<'_>) -> Result<ReadIndexAnswer, CodecError> {
    match input.u8()? {
        READ_AT => Ok(ReadIndexAnswer::ReadAt(get_opt_u64(input)?)),
        NOT_LEADER => Ok(ReadIndexAnswer::NotLeader(get_opt_u64(input)?)),
        UNAVAILABLE => Ok(ReadIndexAnswer::Unavailable(get_text(input)?)),
        _ => Err(malformed("unknown ReadIndex outcome")),
    }
}

fn put_opt_u64(out: &mut Encoder, value: Option<u64>) {
    match value {
        Some(value) => out.u8(1).u64(value),
        None => out.u8(0),
    };
}

fn get_opt_u64(input: &mut Decoder<'_>) -> Result<Option<u64>, CodecError> {
    get_bool(input)?.then(|| input.u64()).transpose()
}
