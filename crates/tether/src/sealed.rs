//! Session data sealed at rest: each value is encrypted (XChaCha20-Poly1305) before it
//! reaches a server-side store, so a backup, a replica or a SQL console shows no
//! user's cart, flags or profile.
//!
//! Sealing is per value, below the merge: a request still sends only the keys it
//! changed, and the store still merges them key by key and compares versions, on
//! ciphertexts it cannot read. What stays visible at the store: the data's key
//! names, the user a session is bound to (its index), the deadlines, the version and
//! the size of each value.
//!
//! Turning sealing on needs no migration: values written before are read as they are
//! and sealed at each session's next write.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::{Map, Value};
use tether_core::{
    Capabilities, Changes, Created, Error, Id, LockOptions, LockToken, Record, Result, Saved,
    SessionInfo, SessionStore, Touch,
};

/// What starts every sealed value: a JSON string `tether-sealed:1:KEY:NONCE‖CIPHERTEXT`
/// (KEY names the sealing key by a fingerprint, the rest unpadded URL-safe base64).
pub(crate) const SEALED_PREFIX: &str = "tether-sealed:1:";

/// The keys that seal session data at rest (see
/// [`SessionLayer::with_sealed_data`](crate::SessionLayer::with_sealed_data)): the first
/// seals, every key opens, so a key is rotated by putting a new one first; values are
/// sealed anew with it as sessions are written, and the old key can go once every
/// session written before the rotation has ended.
///
/// ```
/// use tether::DataKeys;
/// let keys = DataKeys::parse(&DataKeys::generate_key()?)?; // DataKeys::from_file in production
/// assert_eq!(keys.len(), 1);
/// assert!(DataKeys::parse("").is_err());
/// # Ok::<(), tether::Error>(())
/// ```
#[derive(Clone)]
pub struct DataKeys {
    keys: Arc<Vec<([u8; 4], XChaCha20Poly1305)>>,
}

impl fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKeys({} keys)", self.keys.len())
    }
}

impl DataKeys {
    /// Keys in text: 32-byte keys as unpadded URL-safe base64 (43 characters), newest
    /// first, separated by whitespace or commas; `#` starts a comment line.
    pub fn parse(text: &str) -> Result<Self> {
        let keys = tether_core::keys::parse_keys(text).map_err(|i| {
            Error::config(format!(
                "data key {i} is not 43 characters of URL-safe base64 encoding 32 bytes"
            ))
        })?;
        if keys.is_empty() {
            return Err(Error::config(
                "no data key: give at least one (DataKeys::generate_key makes one)",
            ));
        }
        Ok(Self {
            keys: Arc::new(
                keys.iter()
                    .map(|k| (fingerprint(k), XChaCha20Poly1305::new(k.into())))
                    .collect(),
            ),
        })
    }

    /// Keys from a file in [`DataKeys::parse`]'s form, which must be `0600` and the
    /// process's user's.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let text = tether_core::private_file::read_to_string(path.as_ref())
            .map_err(|e| Error::config(format!("data key file {e}")))?;
        Self::parse(&text)
    }

    /// A new random key, as text for a key file or a variable.
    pub fn generate_key() -> Result<String> {
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

    /// `value` sealed under the first key, bound to the data key `name` it is stored
    /// under (a value moved to another key does not open).
    fn seal(&self, name: &str, value: &Value) -> Result<Value> {
        let plain = serde_json::to_vec(value)
            .map_err(|e| Error::Corrupt(format!("session value for {name:?}: {e}")))?;
        let mut nonce = [0u8; 24];
        tether_core::fill_random(&mut nonce)?;
        let (id, cipher) = &self.keys[0];
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| Error::Corrupt("sealing a session value failed".into()))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(Value::String(format!(
            "{SEALED_PREFIX}{}:{}",
            URL_SAFE_NO_PAD.encode(id),
            URL_SAFE_NO_PAD.encode(bytes)
        )))
    }

    /// The value a sealed one holds. Anything else that is not sealed by one of these
    /// keys under `name` is an error: never silently an empty or fresh session.
    fn open(&self, name: &str, value: &Value) -> Result<Value> {
        let refused = |why: &str| {
            Error::Corrupt(format!(
                "session value for {name:?} {why}: is the data key ring missing the key that sealed it?"
            ))
        };
        let Some(text) = value.as_str().and_then(|t| t.strip_prefix(SEALED_PREFIX)) else {
            return Err(refused("is not sealed"));
        };
        let (id, body) = text
            .split_once(':')
            .ok_or_else(|| refused("is malformed"))?;
        let id = URL_SAFE_NO_PAD
            .decode(id)
            .map_err(|_| refused("is malformed"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| refused("is malformed"))?;
        if bytes.len() < 24 {
            return Err(refused("is malformed"));
        }
        let (nonce, sealed) = bytes.split_at(24);
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(fp, _)| fp.as_slice() == id.as_slice())
            .ok_or_else(|| refused("was sealed with a key this ring does not hold"))?;
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| refused("does not open"))?;
        serde_json::from_slice(&plain).map_err(|_| refused("does not open"))
    }

    fn seal_map(&self, data: &Map<String, Value>) -> Result<Map<String, Value>> {
        data.iter()
            .map(|(k, v)| Ok((k.clone(), self.seal(k, v)?)))
            .collect()
    }

    fn seal_record(&self, record: &Record) -> Result<Record> {
        let mut sealed = record.clone();
        sealed.data = self.seal_map(&record.data)?;
        Ok(sealed)
    }

    fn seal_changes(&self, changes: &Changes) -> Result<Changes> {
        let mut sealed = changes.clone();
        for (key, value) in &mut sealed.updates {
            if let Some(value) = value {
                *value = self.seal(key, value)?;
            }
        }
        Ok(sealed)
    }

    /// Opens every sealed value. A value that is not sealed was written before
    /// sealing was turned on: it is read as it is and sealed at the session's next
    /// write, so turning sealing on logs nobody out.
    fn open_record(&self, mut record: Record) -> Result<Record> {
        for (key, value) in &mut record.data {
            if is_sealed(value) {
                *value = self.open(key, value)?;
            }
        }
        Ok(record)
    }
}

/// The first four bytes of SHA-256 over a key: names the key that sealed a value, so
/// opening tries one key, not all.
fn fingerprint(key: &[u8; 32]) -> [u8; 4] {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::new()
        .chain_update(b"tether data key\0")
        .chain_update(key)
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Whether `value` is a sealed session value (read by a layer without data keys).
pub(crate) fn is_sealed(value: &Value) -> bool {
    value.as_str().is_some_and(|t| t.starts_with(SEALED_PREFIX))
}

/// A store whose session values are sealed by `keys` on the way in and opened on the
/// way out.
#[derive(Debug)]
pub(crate) struct SealedData {
    inner: Arc<dyn SessionStore>,
    keys: DataKeys,
}

impl SealedData {
    pub(crate) fn new(inner: Arc<dyn SessionStore>, keys: DataKeys) -> Self {
        Self { inner, keys }
    }
}

#[tether_core::async_trait]
impl SessionStore for SealedData {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        match self.inner.load(id).await? {
            Some(record) => self.keys.open_record(record).map(Some),
            None => Ok(None),
        }
    }

    async fn create(&self, id: &Id, record: &Record) -> Result<Created> {
        self.inner.create(id, &self.keys.seal_record(record)?).await
    }

    async fn create_capped(&self, id: &Id, record: &Record, cap: Option<u32>) -> Result<Created> {
        let sealed = self.keys.seal_record(record)?;
        self.inner.create_capped(id, &sealed, cap).await
    }

    async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved> {
        self.inner.save(id, &self.keys.seal_changes(changes)?).await
    }

    async fn save_from(&self, id: &Id, base: &Record, changes: &Changes) -> Result<Saved> {
        let base = self.keys.seal_record(base)?;
        let changes = self.keys.seal_changes(changes)?;
        self.inner.save_from(id, &base, &changes).await
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        self.inner.touch(id, touch).await
    }

    async fn delete(&self, id: &Id) -> Result<bool> {
        self.inner.delete(id).await
    }

    async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
        let changes = self.keys.seal_changes(changes)?;
        self.inner.cycle_id(old, new, &changes).await
    }

    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>> {
        self.inner.user_sessions(user).await
    }

    async fn delete_user_sessions(&self, user: &str) -> Result<u64> {
        self.inner.delete_user_sessions(user).await
    }

    async fn lock(&self, id: &Id, options: &LockOptions) -> Result<LockToken> {
        self.inner.lock(id, options).await
    }

    async fn unlock(&self, id: &Id, token: &LockToken) -> Result<()> {
        self.inner.unlock(id, token).await
    }

    async fn sweep_once(&self) -> Result<u64> {
        self.inner.sweep_once().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(text: &str) -> DataKeys {
        DataKeys::parse(text).unwrap()
    }

    #[test]
    fn values_open_only_under_their_name_and_a_key_of_the_ring() {
        let (a, b) = (
            DataKeys::generate_key().unwrap(),
            DataKeys::generate_key().unwrap(),
        );
        let old = keys(&a);
        let sealed = old.seal("cart", &json!(["book"])).unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.to_string().contains("book"));
        assert_eq!(old.open("cart", &sealed).unwrap(), json!(["book"]));
        assert!(old.open("flags", &sealed).is_err(), "moved to another key");
        let rotated = keys(&format!("{b}\n{a}"));
        assert_eq!(rotated.open("cart", &sealed).unwrap(), json!(["book"]));
        let error = keys(&b).open("cart", &sealed).unwrap_err().to_string();
        assert!(error.contains("does not hold"), "{error}");
        assert!(old.open("cart", &json!("plain")).is_err());

        // Data written before sealing was turned on is read as it is.
        let now = time::OffsetDateTime::now_utc();
        let mut record = Record::new(now, &tether_core::Expiry::default());
        record.data.insert("theme".into(), json!("dark"));
        record.data.insert("cart".into(), sealed);
        let opened = old.open_record(record).unwrap();
        assert_eq!(opened.data["theme"], json!("dark"));
        assert_eq!(opened.data["cart"], json!(["book"]));
    }
}
