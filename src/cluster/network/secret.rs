//! The shared cluster secret and the proofs of it that the handshake exchanges:
//! HMAC-SHA256(secret, nonce ‖ prover's node id ‖ verifier's node id).

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::cluster::types::NodeId;

/// The bytes of a proof.
pub const PROOF_BYTES: usize = 32;
/// The shortest secret accepted.
pub const MIN_SECRET_BYTES: usize = 16;

/// The secret every node of a cluster shares; it never crosses the wire.
#[derive(Clone)]
pub struct ClusterSecret {
    /// HMAC-SHA256 keyed with the secret, cloned for each proof.
    keyed: Arc<Hmac<Sha256>>,
}

/// Why a secret is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the cluster secret has {len} bytes; give at least {MIN_SECRET_BYTES} random bytes (the same on every node)"
)]
pub struct SecretTooShort {
    /// The length given.
    pub len: usize,
}

impl ClusterSecret {
    /// The secret `key`, at least [`MIN_SECRET_BYTES`] long.
    pub fn new(key: impl Into<Vec<u8>>) -> Result<ClusterSecret, SecretTooShort> {
        let key = key.into();
        if key.len() < MIN_SECRET_BYTES {
            return Err(SecretTooShort { len: key.len() });
        }
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&key)
            .map_err(|_| SecretTooShort { len: key.len() })?;
        Ok(ClusterSecret {
            keyed: Arc::new(keyed),
        })
    }

    /// The proof, by node `prover` to node `verifier`, that it holds the secret, in answer to
    /// `nonce`.
    pub fn prove(&self, nonce: &[u8], prover: NodeId, verifier: NodeId) -> [u8; PROOF_BYTES] {
        let mut mac = Hmac::clone(&self.keyed);
        mac.update(nonce);
        mac.update(&prover.to_le_bytes());
        mac.update(&verifier.to_le_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `proof` is the right answer to `nonce`, compared in constant time.
    pub fn verify(&self, nonce: &[u8], prover: NodeId, verifier: NodeId, proof: &[u8]) -> bool {
        let expected = self.prove(nonce, prover, verifier);
        bool::from(expected.as_slice().ct_eq(proof))
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_binds_the_secret_the_nonce_and_both_nodes() {
        let secret = ClusterSecret::new(*b"0123456789abcdef").unwrap();
        let other = ClusterSecret::new(*b"0123456789abcdeF").unwrap();
        let proof = secret.prove(b"nonce", 1, 2);
        assert!(secret.verify(b"nonce", 1, 2, &proof));
        assert!(!other.verify(b"nonce", 1, 2, &proof));
        assert!(!secret.verify(b"nonce", 2, 1, &proof));
        assert!(!secret.verify(b"Nonce", 1, 2, &proof));
        assert!(!secret.verify(b"nonce", 1, 2, &proof[1..]));
        assert_eq!(ClusterSecret::new(*b"short").unwrap_err().len, 5);
        assert_eq!(format!("{secret:?}"), "ClusterSecret(..)");
    }
}
