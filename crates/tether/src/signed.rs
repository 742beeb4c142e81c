//! Signed session ids: the cookie carries the id and an HMAC of it, so a forged,
//! guessed or random id is dropped before any store I/O (as tower-sessions'
//! `with_signed`, axum_session and actix-session offer).

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use tether_core::{Error, Id};

/// The bytes of a signature kept in the cookie: 128 bits of HMAC-SHA256.
const TAG_BYTES: usize = 16;
/// Its text: unpadded URL-safe base64.
const TAG_LEN: usize = 22;

/// The keys that sign session ids (see [`SessionLayer::with_signed_ids`](crate::SessionLayer::with_signed_ids)):
/// the first signs, every key verifies, so a key is rotated by putting a new one first
/// and dropping the old one once the longest session has ended.
///
/// ```
/// use tether::IdKeys;
/// let keys = IdKeys::parse(&format!("{}\n{}", IdKeys::generate_key()?, IdKeys::generate_key()?))?;
/// assert_eq!(keys.len(), 2);
/// assert!(IdKeys::parse("").is_err());
/// # Ok::<(), tether::Error>(())
/// ```
#[derive(Clone)]
pub struct IdKeys {
    keys: Vec<[u8; 32]>,
}

impl fmt::Debug for IdKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdKeys({} keys)", self.keys.len())
    }
}

impl IdKeys {
    /// Keys in text: 32-byte keys as unpadded URL-safe base64 (43 characters), one per
    /// line (or separated by commas or spaces), newest first; `#` starts a comment line.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let keys = tether_core::keys::parse_keys(text).map_err(|i| {
            Error::config(format!(
                "id signing key {i} is not 43 characters of URL-safe base64 encoding 32 bytes"
            ))
        })?;
        if keys.is_empty() {
            return Err(Error::config(
                "no id signing key: give at least one (IdKeys::generate_key makes one)",
            ));
        }
        Ok(Self { keys })
    }

    /// Keys from a file in [`IdKeys::parse`]'s form, which must be `0600` and the
    /// process's user's (a key others can read signs ids for them).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let text = tether_core::private_file::read_to_string(path.as_ref())
            .map_err(|e| Error::config(format!("id signing key file {e}")))?;
        Self::parse(&text)
    }

    /// A new random key, as text for a key file or a variable.
    pub fn generate_key() -> Result<String, Error> {
        tether_core::keys::generate_key()
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is none (never, once built).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn mac(key: &[u8; 32], id: &Id) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(b"tether session id\0");
        mac.update(id.as_bytes());
        mac
    }

    /// `ID.TAG`: the id and its signature under the first key.
    pub(crate) fn sign(&self, id: &Id) -> String {
        let tag = Self::mac(&self.keys[0], id).finalize().into_bytes();
        format!("{id}.{}", URL_SAFE_NO_PAD.encode(&tag[..TAG_BYTES]))
    }

    /// The id in `token` when its signature verifies under any key; `None` for any
    /// other text (checked in constant time, with no store I/O).
    pub(crate) fn verify(&self, token: &str) -> Option<Id> {
        let (id, tag) = token.split_once('.')?;
        let id = Id::parse(id)?;
        if tag.len() != TAG_LEN {
            return None;
        }
        let mut bytes = [0u8; TAG_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(tag.as_bytes(), &mut bytes) {
            Ok(TAG_BYTES) => {}
            _ => return None,
        }
        self.keys
            .iter()
            .any(|key| Self::mac(key, &id).verify_truncated_left(&bytes).is_ok())
            .then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(n: usize) -> IdKeys {
        let text: Vec<String> = (0..n).map(|_| IdKeys::generate_key().unwrap()).collect();
        IdKeys::parse(&text.join("\n")).unwrap()
    }

    #[test]
    fn the_first_key_signs_and_every_key_verifies() {
        let old = keys(1);
        let id = Id::generate().unwrap();
        let token = old.sign(&id);
        assert_eq!(old.verify(&token), Some(id));
        let rotated = IdKeys {
            keys: vec![keys(1).keys[0], old.keys[0]],
        };
        assert_eq!(
            rotated.verify(&token),
            Some(id),
            "an old key still verifies"
        );
        assert_ne!(rotated.sign(&id), token, "the new key signs");
        assert_eq!(keys(1).verify(&token), None, "another key does not");
        assert_eq!(
            old.verify(&id.to_string()),
            None,
            "an unsigned id is refused"
        );
        let other = Id::generate().unwrap();
        let (_, tag) = token.split_once('.').unwrap();
        assert_eq!(
            old.verify(&format!("{other}.{tag}")),
            None,
            "a tag moved to another id"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_tokens_never_verify_and_never_panic(text in "\\PC{0,80}") {
            prop_assert_eq!(keys(2).verify(&text), None);
        }
    }
}
