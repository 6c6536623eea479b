//! The cluster bus: openraft's RPCs between nodes over TCP (or TLS over it, [`BusTls`]), each
//! connection authenticated by the shared cluster secret (docs/cluster-protocol.md).
//!
//! [`serve_cluster`] answers the requests of the other nodes; [`ClusterNetwork`] is the
//! `RaftNetworkFactory` a node hands openraft to reach them. Every read and write has a
//! timeout, frames have a maximum size, and a peer that breaks the protocol has its connection
//! closed with the reason logged.

mod client;
mod error;
mod frame;
mod handshake;
mod leadership_message;
mod membership_message;
mod message;
mod remote_error;
mod secret;
mod server;
mod tls;
mod wire;

#[cfg(test)]
mod message_tests;

use std::time::Duration;

pub use client::{ClusterNetwork, PeerConnection};
pub use error::TransportError;
pub use frame::MAX_FRAME_BYTES;
pub use leadership_message::{LeadershipAnswer, LeadershipStep};
pub use membership_message::{MembershipAnswer, MembershipChange};
pub use message::ReadIndexAnswer;
pub use secret::{ClusterSecret, MIN_SECRET_BYTES, SecretTooShort};
pub use server::{MAX_CONNECTIONS, read_index, serve_cluster, serve_cluster_with};
pub use tls::BusTls;

/// The bus's timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusTimeouts {
    /// Connecting, and each frame of the handshake.
    pub handshake: Duration,
    /// How long a server waits for the next request on an open connection.
    pub idle: Duration,
    /// Writing a request or response, and reading the answer to a request.
    pub exchange: Duration,
}

impl Default for BusTimeouts {
    fn default() -> Self {
        BusTimeouts {
            handshake: Duration::from_secs(5),
            idle: Duration::from_secs(60),
            exchange: Duration::from_secs(30),
        }
    }
}
