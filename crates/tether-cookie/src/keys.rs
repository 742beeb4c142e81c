//! The cookie store's key ring: the newest key seals, every key opens.

use std::path::Path;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::KeyInit;
use tether_core::Result;

/// Why a key ring could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No key at all.
    #[error(
        "the key ring is empty: give at least one key (generate one with KeyRing::generate_key)"
    )]
    Empty,
    /// A key that is not 32 bytes of unpadded URL-safe base64.
    #[error("key {index} is not 43 characters of URL-safe base64 encoding 32 bytes")]
    Invalid {
        /// Its position, from 1.
        index: usize,
    },
    /// The key file could not be read, or others can read it (a key file must be
    /// `0600`, owned by the process's user).
    #[error("key file {0}")]
    File(#[from] tether_core::private_file::PrivateFileError),
    /// The environment variable is not set.
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// The OS could not provide randomness for a new key.
    #[error("the operating system could not provide randomness: {0}")]
    Randomness(String),
}

/// Keys for the cookie store: the first encrypts, all decrypt.
#[derive(Clone)]
pub struct KeyRing {
    pub(crate) ciphers: Vec<XChaCha20Poly1305>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRing({} keys)", self.ciphers.len())
    }
}

impl KeyRing {
    /// A ring of raw 32-byte keys, the first one encrypting.
    pub fn new(keys: &[[u8; 32]]) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self {
            ciphers: keys
                .iter()
                .map(|k| XChaCha20Poly1305::new(k.into()))
                .collect(),
        })
    }

    /// Keys as text: unpadded URL-safe base64, separated by whitespace or commas;
    /// lines starting with `#` are comments.
    ///
    /// ```
    /// let text = format!("# newest first\n{}\n{}\n", tether_cookie::KeyRing::generate_key()?, tether_cookie::KeyRing::generate_key()?);
    /// let ring = tether_cookie::KeyRing::parse(&text)?;
    /// assert_eq!(ring.len(), 2);
    /// assert!(tether_cookie::KeyRing::parse("not-a-key").is_err());
    /// # Ok::<(), tether_cookie::KeyError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let keys =
            tether_core::keys::parse_keys(text).map_err(|index| KeyError::Invalid { index })?;
        Self::new(&keys)
    }

    /// Keys from a file, in [`KeyRing::parse`]'s format.
    ///
    /// The file must be open to no one but its owner, this process's user (`chmod 600`):
    /// whoever reads a key can forge sessions. Anything else is refused with an error
    /// naming the file and the fix.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let text = tether_core::private_file::read_to_string(path)?;
        Self::parse(&text)
    }

    /// Keys from an environment variable, in [`KeyRing::parse`]'s format.
    pub fn from_env(var: &str) -> Result<Self, KeyError> {
        let text = std::env::var(var).map_err(|_| KeyError::MissingEnv(var.to_owned()))?;
        Self::parse(&text)
    }

    /// A new random key, as text for a key file or variable.
    pub fn generate_key() -> Result<String, KeyError> {
        tether_core::keys::generate_key().map_err(|e| KeyError::Randomness(e.to_string()))
    }

    /// How many keys the ring holds.
    pub fn len(&self) -> usize {
        self.ciphers.len()
    }

    /// Whether the ring is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.ciphers.is_empty()
    }
}
