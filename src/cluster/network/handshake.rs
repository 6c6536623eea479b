//! The handshake that opens every bus connection, both ends proving the cluster secret:
//!
//! 1. the server sends a challenge: the magic `WEIRBUS1` and a fresh 32-byte nonce;
//! 2. the client answers with its node id, the node id it wants, the Raft group (shard) it
//!    wants as a little-endian `u32` unless that is group 0 (whose answer is as it was before
//!    clusters had shards), its own nonce, and its proof
//!    HMAC(secret, server nonce ‖ client id ‖ target id);
//! 3. the server checks the target and the proof, and answers with its own proof
//!    HMAC(secret, client nonce ‖ server id ‖ client id), which the client checks.
//!
//! Ids are little-endian `u64`s. The server proves itself only to a client that proved itself.

use std::io;

use rustix::rand::{GetRandomFlags, getrandom};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::cluster::types::NodeId;
use crate::codec::{CodecError, Decoder, Encoder};

use super::BusTimeouts;
use super::error::TransportError;
use super::frame::{read_frame, write_frame};
use super::secret::{ClusterSecret, PROOF_BYTES};
use super::wire::malformed;

/// The magic that opens a challenge: the protocol and its version.
pub const MAGIC: [u8; 8] = *b"WEIRBUS1";
/// The bytes of a nonce.
pub const NONCE_BYTES: usize = 32;

/// The client's answer for group 0: two ids, a nonce and a proof.
const ANSWER_BYTES: usize = 16 + NONCE_BYTES + PROOF_BYTES;
/// The largest handshake frame: the client's answer for another group, with the group.
const MAX_HANDSHAKE_FRAME: usize = ANSWER_BYTES + 4;

/// A Raft group (a shard) of the node.
pub type Group = u32;

type Nonce = [u8; NONCE_BYTES];

/// A fresh nonce from the kernel.
fn nonce() -> io::Result<Nonce> {
    let mut nonce = [0; NONCE_BYTES];
    let mut filled = 0;
    while filled < NONCE_BYTES {
        filled += getrandom(&mut nonce[filled..], GetRandomFlags::empty())?;
    }
    Ok(nonce)
}

fn fixed<const N: usize>(input: &mut Decoder<'_>) -> Result<[u8; N], CodecError> {
    let mut out = [0; N];
    for byte in &mut out {
        *byte = input.u8()?;
    }
    Ok(out)
}

/// The server's side: challenges the client and checks its answer. Returns the client's id and
/// the group it wants.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secret: &ClusterSecret,
    this: NodeId,
    timeouts: &BusTimeouts,
) -> Result<(NodeId, Group), TransportError> {
    let limit = timeouts.handshake;
    let challenge = nonce()?;
    let mut out = Encoder::with_capacity(MAGIC.len() + NONCE_BYTES);
    for byte in MAGIC.iter().chain(&challenge) {
        out.u8(*byte);
    }
    write_frame(stream, &out.finish(), limit).await?;

    let answer = read_frame(stream, MAX_HANDSHAKE_FRAME, limit).await?;
    let mut input = Decoder::new(&answer, "cluster bus handshake answer");
    let peer = input.u64()?;
    let wanted = input.u64()?;
    let group = if answer.len() == ANSWER_BYTES {
        0
    } else {
        input.u32()?
    };
    let client_nonce: Nonce = fixed(&mut input)?;
    let proof: [u8; PROOF_BYTES] = fixed(&mut input)?;
    input.finish()?;
    if wanted != this {
        return Err(TransportError::WrongTarget { peer, wanted, this });
    }
    if !secret.verify(&challenge, peer, this, &proof) {
        return Err(TransportError::WrongSecret { peer });
    }
    let mine = secret.prove(&client_nonce, this, peer);
    write_frame(stream, &mine, limit).await?;
    Ok((peer, group))
}

/// The client's side: answers the server's challenge as node `this` wanting group `group` of
/// node `target`, and checks the server's proof.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secret: &ClusterSecret,
    (this, target, group): (NodeId, NodeId, Group),
    timeouts: &BusTimeouts,
) -> Result<(), TransportError> {
    let limit = timeouts.handshake;
    let challenge = read_frame(stream, MAX_HANDSHAKE_FRAME, limit).await?;
    let mut input = Decoder::new(&challenge, "cluster bus challenge");
    if fixed::<8>(&mut input)? != MAGIC {
        return Err(malformed("the challenge does not start with WEIRBUS1").into());
    }
    let server_nonce: Nonce = fixed(&mut input)?;
    input.finish()?;

    let mine = nonce()?;
    let mut out = Encoder::with_capacity(MAX_HANDSHAKE_FRAME);
    out.u64(this).u64(target);
    if group != 0 {
        out.u32(group);
    }
    let proof = secret.prove(&server_nonce, this, target);
    for byte in mine.iter().chain(&proof) {
        out.u8(*byte);
    }
    write_frame(stream, &out.finish(), limit).await?;

    let answer = read_frame(stream, MAX_HANDSHAKE_FRAME, limit).await?;
    if !secret.verify(&mine, target, this, &answer) {
        return Err(TransportError::WrongSecret { peer: target });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(last: u8) -> ClusterSecret {
        let mut key = *b"0123456789abcdef";
        key[15] = last;
        ClusterSecret::new(key).unwrap()
    }

    /// Runs both ends over an in-memory pipe: the server is node 1.
    async fn both(
        server: ClusterSecret,
        client: ClusterSecret,
        target: NodeId,
    ) -> (
        Result<(NodeId, Group), TransportError>,
        Result<(), TransportError>,
    ) {
        let (mut near, mut far) = tokio::io::duplex(4096);
        let timeouts = BusTimeouts::default();
        let accepting = async {
            let accepted = accept(&mut near, &server, 1, &timeouts).await;
            drop(near);
            accepted
        };
        tokio::join!(
            accepting,
            connect(&mut far, &client, (2, target, 0), &timeouts)
        )
    }

    #[tokio::test]
    async fn the_same_secret_authenticates_both_ends() {
        let (accepted, connected) = both(secret(b'f'), secret(b'f'), 1).await;
        assert_eq!(accepted.unwrap(), (2, 0));
        connected.unwrap();
    }

    #[tokio::test]
    async fn the_client_names_the_group_it_wants() {
        let (mut near, mut far) = tokio::io::duplex(4096);
        let timeouts = BusTimeouts::default();
        let key = secret(b'f');
        let accepting = accept(&mut near, &key, 1, &timeouts);
        let connecting = connect(&mut far, &key, (2, 1, 7), &timeouts);
        let (accepted, connected) = tokio::join!(accepting, connecting);
        assert_eq!(accepted.unwrap(), (2, 7));
        connected.unwrap();
    }

    #[tokio::test]
    async fn a_wrong_secret_or_target_is_refused() {
        let (accepted, connected) = both(secret(b'f'), secret(b'F'), 1).await;
        assert!(matches!(
            accepted,
            Err(TransportError::WrongSecret { peer: 2 })
        ));
        assert!(matches!(connected, Err(TransportError::Io(_))));

        let (accepted, connected) = both(secret(b'f'), secret(b'f'), 3).await;
        let refused = accepted.unwrap_err();
        assert!(matches!(
            refused,
            TransportError::WrongTarget {
                peer: 2,
                wanted: 3,
                this: 1
            }
        ));
        assert!(refused.to_string().contains("bus addresses"), "{refused}");
        assert!(connected.is_err());
    }

    #[tokio::test]
    async fn a_server_without_the_secret_is_refused_by_the_client() {
        let (mut near, mut far) = tokio::io::duplex(4096);
        let timeouts = BusTimeouts::default();
        let impostor = async {
            let mut out = Encoder::new();
            for byte in MAGIC.iter().chain(&[7; NONCE_BYTES]) {
                out.u8(*byte);
            }
            write_frame(&mut near, &out.finish(), timeouts.handshake).await?;
            read_frame(&mut near, MAX_HANDSHAKE_FRAME, timeouts.handshake).await?;
            write_frame(&mut near, &[0; PROOF_BYTES], timeouts.handshake).await
        };
        let secret = secret(b'f');
        let client = connect(&mut far, &secret, (2, 1, 0), &timeouts);
        let (impostor, connected) = tokio::join!(impostor, client);
        impostor.unwrap();
        assert!(matches!(
            connected,
            Err(TransportError::WrongSecret { peer: 1 })
        ));
    }
}
