//! Why a connection of the cluster bus failed.

use std::io;
use std::time::Duration;

use crate::codec::CodecError;

use crate::cluster::types::NodeId;

/// Why a connection of the cluster bus failed; the connection is closed after any of them.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The socket failed, or the peer closed the connection.
    #[error("cluster bus I/O failed: {0}")]
    Io(#[from] io::Error),
    /// The peer sent nothing (or too slowly) for too long.
    #[error("the peer did not answer within {after:?}; check that it is up and not overloaded")]
    TimedOut {
        /// How long the read or write was given.
        after: Duration,
    },
    /// A frame announced more than the bus accepts.
    #[error(
        "a frame of {len} bytes exceeds the limit of {max} bytes here; the peer is not a weir node of this version"
    )]
    FrameTooLarge {
        /// The length announced.
        len: usize,
        /// The most the frame could hold.
        max: usize,
    },
    /// A frame's payload does not match its checksum.
    #[error(
        "a frame's checksum does not match its payload; the network or the peer is corrupting data"
    )]
    BadChecksum,
    /// A payload does not decode.
    #[error(
        "the peer sent a message that does not decode ({0}); it is not a weir node of this version"
    )]
    Malformed(#[from] CodecError),
    /// The peer's proof of the cluster secret is wrong.
    #[error(
        "node {peer} did not prove the cluster secret; check that every node is configured with the same secret"
    )]
    WrongSecret {
        /// The node the peer claims to be.
        peer: NodeId,
    },
    /// The peer wanted another node than this one.
    #[error(
        "node {peer} connected to node {wanted}, but this is node {this}; check the cluster's bus addresses"
    )]
    WrongTarget {
        /// The node the peer claims to be.
        peer: NodeId,
        /// The node it wanted.
        wanted: NodeId,
        /// This node.
        this: NodeId,
    },
    /// The peer asked for a shard this node does not have.
    #[error(
        "node {peer} asked for shard {group}, but this node has {groups} shard(s); every node of a cluster must be started with the same --cluster-shards"
    )]
    NoSuchGroup {
        /// The node that asked.
        peer: NodeId,
        /// The group it asked for.
        group: u32,
        /// The groups this node has.
        groups: usize,
    },
    /// The TLS session could not be opened: the peer's certificate is not signed by the
    /// cluster's CA or does not name the address it was reached at, or the peer does not speak
    /// TLS.
    #[error(
        "the cluster bus TLS handshake failed: {0}; check that every node has tls-cluster set the same way, and a certificate signed by the CA in tls-ca-cert-file that names the host its bus address gives"
    )]
    Tls(String),
    /// A bus address whose host cannot name a certificate.
    #[error("the bus address {addr} has no host a TLS certificate can name")]
    BadPeerName {
        /// The address.
        addr: String,
    },
    /// The peer answered with a message that does not answer the request.
    #[error(
        "the peer answered a {asked} request with another message; it is not a weir node of this version"
    )]
    Unexpected {
        /// The request that was sent.
        asked: &'static str,
    },
}
