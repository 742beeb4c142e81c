//! Signing keys: each pinned to one algorithm, chosen by `kid`, rotated in a ring.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};

/// The PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410): the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The shortest HS256 secret accepted: as long as the hash (RFC 7518, 3.2).
pub const MIN_HS256_SECRET: usize = 32;

/// Why a key ring could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No key at all.
    #[error(
        "the key ring is empty: give at least one key (generate one with JwtKeys::generate_ed25519)"
    )]
    Empty,
    /// No key that can sign (only public keys were given).
    #[error("the first key must be able to sign: key {kid:?} is a public key only")]
    CannotSign {
        /// The first key's id.
        kid: String,
    },
    /// A line that is not `kid kind material`.
    #[error("key line {line}: {why}")]
    Invalid {
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// Two keys with one id: a token could not say which one signed it.
    #[error("key id {0:?} is used twice")]
    DuplicateKid(String),
    /// The key file could not be read, or others can read it (a key file must be
    /// `0600`, owned by the process's user).
    #[error("key file {0}")]
    File(#[from] tether_core::private_file::PrivateFileError),
    /// The OS could not provide randomness for a new key.
    #[error("the operating system could not provide randomness: {0}")]
    Randomness(String),
}

/// One key and the one algorithm it is used with.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) kid: String,
    pub(crate) algorithm: Algorithm,
    /// `None` for a verification-only (public) key.
    pub(crate) signing: Option<EncodingKey>,
    pub(crate) verifying: DecodingKey,
    /// Ed25519's public key, for the JWKS; `None` for a shared secret.
    public: Option<[u8; 32]>,
}

impl Key {
    fn ed25519(kid: &str, seed: &[u8; 32]) -> Result<Self, String> {
        let mut pkcs8 = Vec::with_capacity(48);
        pkcs8.extend_from_slice(&ED25519_PKCS8_PREFIX);
        pkcs8.extend_from_slice(seed);
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| "not an Ed25519 seed".to_owned())?;
        let public: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| "an Ed25519 public key is 32 bytes".to_owned())?;
        Ok(Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::EdDSA,
            signing: Some(EncodingKey::from_ed_der(&pkcs8)),
            verifying: DecodingKey::from_ed_der(&public),
            public: Some(public),
        })
    }

    fn ed25519_public(kid: &str, public: [u8; 32]) -> Self {
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::EdDSA,
            signing: None,
            verifying: DecodingKey::from_ed_der(&public),
            public: Some(public),
        }
    }

    fn hs256(kid: &str, secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_HS256_SECRET {
            return Err(format!(
                "an HS256 secret needs at least {MIN_HS256_SECRET} bytes, this one has {}",
                secret.len()
            ));
        }
        Ok(Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::HS256,
            signing: Some(EncodingKey::from_secret(secret)),
            verifying: DecodingKey::from_secret(secret),
            public: None,
        })
    }
}

/// The store's keys: the first signs, every one verifies the tokens naming its `kid`
/// with its own algorithm only.
///
/// The text form has one key per line, `kid kind material`, `#` starting a comment:
///
/// - `ed25519` and a 32-byte seed (unpadded URL-safe base64): signs and verifies with
///   EdDSA; verifiers need only its public key (see [`JwtKeys::jwks`]).
/// - `ed25519-public` and a 32-byte public key: verifies only (one of this app's keys
///   being retired, whose private half is gone). Every key in the ring is trusted to
///   issue sessions for any user: never add another issuer's key.
/// - `hs256` and a secret of at least 32 bytes: HMAC-SHA256, for when every verifier
///   may hold the secret (and could therefore also sign).
///
/// ```
/// use tether_jwt::JwtKeys;
///
/// let text = format!("# newest first\n{}\n{}\n",
///     JwtKeys::generate_ed25519("2026-12")?,
///     JwtKeys::generate_ed25519("2026-11")?);
/// let keys = JwtKeys::parse(&text)?;
/// assert_eq!(keys.kids(), ["2026-12", "2026-11"]);
/// assert!(JwtKeys::parse("k1 hs256 too-short").is_err());
/// # Ok::<(), tether_jwt::KeyError>(())
/// ```
#[derive(Clone)]
pub struct JwtKeys {
    pub(crate) keys: Vec<Key>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&k.kid, k.algorithm)))
            .finish()
    }
}

impl JwtKeys {
    /// Keys in the text form above.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut keys: Vec<Key> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let invalid = |why: String| KeyError::Invalid { line: n + 1, why };
            let words: Vec<&str> = line.split_whitespace().collect();
            let [kid, algorithm, material] = words[..] else {
                return Err(invalid("expected `kid kind material`".into()));
            };
            let bytes = URL_SAFE_NO_PAD
                .decode(material)
                .map_err(|_| invalid("the key material is not unpadded URL-safe base64".into()))?;
            let thirty_two = || -> Result<[u8; 32], KeyError> {
                bytes.as_slice().try_into().map_err(|_| {
                    invalid(format!("{algorithm} needs 32 bytes, not {}", bytes.len()))
                })
            };
            let key = match algorithm {
                "ed25519" => Key::ed25519(kid, &thirty_two()?).map_err(invalid)?,
                "ed25519-public" => Key::ed25519_public(kid, thirty_two()?),
                "hs256" => Key::hs256(kid, &bytes).map_err(invalid)?,
                other => {
                    return Err(invalid(format!(
                        "unknown kind {other:?} (ed25519, ed25519-public, hs256)"
                    )));
                }
            };
            if keys.iter().any(|k| k.kid == key.kid) {
                return Err(KeyError::DuplicateKid(key.kid));
            }
            keys.push(key);
        }
        let first = keys.first().ok_or(KeyError::Empty)?;
        if first.signing.is_none() {
            return Err(KeyError::CannotSign {
                kid: first.kid.clone(),
            });
        }
        Ok(Self { keys })
    }

    /// Keys from a file, in [`JwtKeys::parse`]'s form.
    ///
    /// The file must be open to no one but its owner, this process's user (`chmod 600`):
    /// whoever reads a key can forge sessions. Anything else is refused with an error
    /// naming the file and the fix.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let text = tether_core::private_file::read_to_string(path)?;
        Self::parse(&text)
    }

    /// A new Ed25519 key named `kid`, as a line for a key file.
    pub fn generate_ed25519(kid: &str) -> Result<String, KeyError> {
        let mut seed = [0u8; 32];
        tether_core::fill_random(&mut seed).map_err(|e| KeyError::Randomness(e.to_string()))?;
        Ok(format!("{kid} ed25519 {}", URL_SAFE_NO_PAD.encode(seed)))
    }

    /// A new HS256 secret named `kid`, as a line for a key file.
    pub fn generate_hs256(kid: &str) -> Result<String, KeyError> {
        let mut secret = [0u8; 32];
        tether_core::fill_random(&mut secret).map_err(|e| KeyError::Randomness(e.to_string()))?;
        Ok(format!("{kid} hs256 {}", URL_SAFE_NO_PAD.encode(secret)))
    }

    /// The key ids, the signing one first.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    /// The JSON Web Key Set (RFC 7517) of the public keys, for verifiers: serve it at
    /// a URL they fetch (commonly `/.well-known/jwks.json`). Shared secrets (HS256)
    /// are never in it.
    ///
    /// ```
    /// let keys = tether_jwt::JwtKeys::parse(&tether_jwt::JwtKeys::generate_ed25519("k1")?)?;
    /// let jwks = keys.jwks();
    /// assert_eq!(jwks["keys"][0]["kid"], "k1");
    /// assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    /// # Ok::<(), tether_jwt::KeyError>(())
    /// ```
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter_map(|k| {
                let public = k.public?;
                Some(json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(public),
                    "kid": k.kid,
                    "alg": "EdDSA",
                    "use": "sig",
                }))
            })
            .collect();
        json!({ "keys": keys })
    }

    /// The key that signs.
    pub(crate) fn signer(&self) -> &Key {
        &self.keys[0]
    }

    /// The key named `kid`.
    pub(crate) fn by_kid(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}
