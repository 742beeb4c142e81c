//! What travels between peers, and how it is authenticated.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tether_core::Id;

use crate::state::{Event, Slot};

/// The header carrying the hex HMAC-SHA256 of a message.
pub(crate) const SIGNATURE: &str = "x-tether-signature";
/// The header carrying the request time of a snapshot request (ms since the epoch).
pub(crate) const TIMESTAMP: &str = "x-tether-timestamp";
/// How far a snapshot request's time may be from ours.
pub(crate) const MAX_SKEW_MS: i64 = 30_000;

/// One delivery from a node to a peer. `seq` grows with every batch a node sends to
/// a peer, so a replayed batch is recognised; `origin` is random per process start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub(crate) origin: u64,
    pub(crate) seq: u64,
    pub(crate) events: Vec<Event>,
    /// A full state, sent instead of events after the peer's queue overflowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) snapshot: Option<Vec<(Id, Slot)>>,
}

/// The shared secret.
#[derive(Clone)]
pub(crate) struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    fn mac(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// The signature of `parts` (length-prefixed, so parts cannot be re-split).
    pub(crate) fn sign(&self, parts: &[&[u8]]) -> String {
        hex::encode(self.mac(parts).finalize().into_bytes())
    }

    /// Checks a signature in constant time.
    pub(crate) fn verify(&self, parts: &[&[u8]], signature: &str) -> bool {
        hex::decode(signature).is_ok_and(|sig| self.mac(parts).verify_slice(&sig).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_the_same_secret_and_parts() {
        let secret = Secret::new(b"0123456789abcdef");
        let sig = secret.sign(&[b"events", b"body"]);
        assert!(secret.verify(&[b"events", b"body"], &sig));
        assert!(!secret.verify(&[b"events", b"bodz"], &sig));
        assert!(
            !secret.verify(&[b"eventsb", b"ody"], &sig),
            "re-split parts"
        );
        assert!(!Secret::new(b"another secret!!").verify(&[b"events", b"body"], &sig));
        assert!(!secret.verify(&[b"events", b"body"], "not hex"));
    }
}
