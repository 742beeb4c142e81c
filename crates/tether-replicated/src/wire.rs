//! What travels between peers, and how it is authenticated.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tether_core::Id;

use crate::state::{Event, Slot};

/// The header carrying the hex HMAC-SHA256 of a message.
pub(crate) const SIGNATURE: &str = "x-tether-signature";
/// The header carrying the request time of a signed request (ms since the epoch).
pub(crate) const TIMESTAMP: &str = "x-tether-timestamp";
/// The header carrying a request's random nonce, which its signed answer repeats.
pub(crate) const NONCE: &str = "x-tether-nonce";
/// The header of a refusal carrying the refusing node's clock (ms), to name skew.
pub(crate) const TIME: &str = "x-tether-time";
/// The header of a batch naming the node it is for (its id, from its signed hello).
pub(crate) const TO: &str = "x-tether-to";
/// The header of a batch carrying the hex SHA-256 of its body: the signature covers
/// it, so a batch is authenticated from its headers before its body is read.
pub(crate) const DIGEST: &str = "x-tether-digest";
/// The header of a batch naming its sender (`Batch::origin`), signed.
pub(crate) const ORIGIN: &str = "x-tether-origin";
/// The header of a batch carrying its sequence number (`Batch::seq`), signed: a replay
/// of captured headers is refused before its body is read.
pub(crate) const SEQ: &str = "x-tether-seq";
/// How long a batch's body may take to arrive once its signed headers are checked.
pub(crate) const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);
/// The header marking a `503` from a node that is still catching up itself.
pub(crate) const NOT_READY: &str = "x-tether-not-ready";
/// How far a signed request's time may be from ours.
pub(crate) const MAX_SKEW_MS: i64 = 30_000;
/// The largest request body a node accepts. Every batch and snapshot page a sender
/// builds is far below it ([`BATCH_BYTES`] plus one session at most).
pub(crate) const MAX_BODY: usize = 8 << 20;
/// What a sender packs into one batch, and a node into one snapshot page.
pub(crate) const BATCH_BYTES: usize = 1 << 20;

/// One delivery from a node to a peer.
///
/// `origin` is the sender's node id, random per process start; `to` is the
/// receiver's, learned from its signed hello; `seq` grows with every batch the sender
/// sends that receiver. So a captured batch is refused by every other node, by the
/// same node after a restart, and when replayed to the same node (an old `seq`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub(crate) origin: u64,
    pub(crate) to: u64,
    pub(crate) seq: u64,
    pub(crate) events: Vec<Event>,
    /// A page of a full state, sent instead of events after the peer's queue
    /// overflowed, grew too old, or was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) snapshot: Option<Vec<(Id, Slot)>>,
}

/// A node's answer to a signed hello.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) node: u64,
    pub(crate) ready: bool,
    /// The live members it knows of and has sent its whole state to (empty without
    /// membership).
    #[serde(default)]
    pub(crate) members: Vec<String>,
    /// Every live member it knows of, whether or not it has its whole state yet.
    #[serde(default)]
    pub(crate) live: Vec<String>,
    /// The URL it advertises (with membership): the one to announce to, whatever
    /// name or address reached it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
}

/// One page of a node's state, as `GET /snapshot?after=ID` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Page {
    pub(crate) slots: Vec<(Id, Slot)>,
    /// Where the next page starts, if there is one.
    pub(crate) next: Option<Id>,
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

    /// The headers of a signed request for `what` (its timestamp, its nonce and their
    /// signature); the answer's signature covers the same nonce.
    pub(crate) fn request_headers(&self, what: &str, extra: &[u8]) -> [(&'static str, String); 3] {
        let ts = tether_core::unix_ms::now_ms().to_string();
        let mut nonce = [0u8; 16];
        // An all-zero nonce on a broken random source only loses replay protection of
        // the answer, which is signed anyway.
        let _ = tether_core::fill_random(&mut nonce);
        let nonce = hex::encode(nonce);
        let signature = self.sign(&[what.as_bytes(), ts.as_bytes(), nonce.as_bytes(), extra]);
        [(TIMESTAMP, ts), (NONCE, nonce), (SIGNATURE, signature)]
    }
}

/// What a batch's header signature covers besides its time and nonce: the receiver's
/// id, the sender's, the batch's sequence number and the body's digest.
pub(crate) fn batch_binding(to: &str, origin: &str, seq: &str, digest: &str) -> Vec<u8> {
    format!("{to}:{origin}:{seq}:{digest}").into_bytes()
}

/// What a joining instance's hello signs: who it is.
pub(crate) fn hello_binding(from: &str, node: u64) -> String {
    format!("{from}\n{node}")
}

/// The hex SHA-256 of a batch's body.
pub(crate) fn digest(body: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(Sha256::digest(body))
}

/// Signs a `GET` of a node's `/stats` with the shared secret: the headers to send.
///
/// ```
/// let headers = tether_replicated::sign_stats_request(b"a shared secret of 16+ bytes");
/// assert_eq!(headers.len(), 3);
/// assert!(headers.iter().any(|(name, _)| *name == "x-tether-signature"));
/// ```
pub fn sign_stats_request(secret: impl AsRef<[u8]>) -> [(&'static str, String); 3] {
    Secret::new(secret.as_ref()).request_headers("stats", b"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // What a peer (or an attacker) sends: arbitrary bytes never panic the parsers,
        // and never pass as signed.
        #[test]
        fn arbitrary_messages_never_panic_and_never_authenticate(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            signature in "[0-9a-f]{0,80}",
        ) {
            let secret = Secret::new(b"0123456789abcdef");
            let _ = serde_json::from_slice::<Batch>(&body);
            let _ = serde_json::from_slice::<Page>(&body);
            let _ = serde_json::from_slice::<Hello>(&body);
            prop_assert!(!secret.verify(&[b"events", &body], &signature));
        }

        // A signed batch with any one byte changed no longer verifies.
        #[test]
        fn a_changed_byte_breaks_the_signature(at in any::<usize>(), flip in 1u8..=255) {
            let secret = Secret::new(b"0123456789abcdef");
            let mut body = br#"{"origin":1,"to":2,"seq":3,"events":[]}"#.to_vec();
            let signature = secret.sign(&[b"events", &body]);
            let at = at % body.len();
            body[at] ^= flip;
            prop_assert!(!secret.verify(&[b"events", &body], &signature));
        }
    }

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
