//! The whole session, encrypted and authenticated, in the cookie.
//!
//! Instances share nothing but a key: any instance can serve any request, and nothing
//! is lost when one dies. The costs are real and documented below.
//!
//! ```
//! use tether_cookie::{CookieStore, KeyRing};
//!
//! let keys = KeyRing::parse(&KeyRing::generate_key()?)?;
//! let store = CookieStore::new(keys).with_compression(true);
//! let layer = tether::SessionLayer::client_side(store);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Format
//!
//! A cookie value is unpadded URL-safe base64 of `2 ‖ nonce ‖ ciphertext`: format
//! version 2, a random 24-byte nonce, and XChaCha20-Poly1305 over `flag ‖ payload`,
//! where the flag says whether the payload is deflated and the payload is the JSON of
//! the record (data, version, created, last seen, idle and absolute deadlines, user)
//! plus the time it was issued.
//!
//! The associated data binds the value to this format, to the cookie's name and to
//! the store's context ([`CookieStore::with_context`], an application id): two layers
//! or two apps sharing keys cannot use each other's cookies. Version 1 (before the
//! binding) is no longer opened: such a cookie reads as no session, once.
//!
//! # Keys
//!
//! A [`KeyRing`] holds 32-byte keys: the first encrypts, every one decrypts. To rotate,
//! put a new key first; once every cookie sealed with the old key has expired (the
//! absolute lifetime), drop it. Generate a key with [`KeyRing::generate_key`] or:
//!
//! ```sh
//! head -c 32 /dev/urandom | basenc --base64url | tr -d '='
//! ```
//!
//! # What it costs, and what it cannot do
//!
//! - The session travels with every request and response. An empty session is about
//!   150 bytes of cookie, and the whole value must stay under [`CookieStore::with_max_len`]
//!   (4000 bytes by default, within the browsers' 4096 for name and value). A save that
//!   would exceed it fails with [`tether_core::Error::TooLarge`], which the layer
//!   answers with a 413 and logs: a cookie is never truncated or silently dropped.
//! - There is no server state, so there is no user index, no "log out everywhere" and
//!   no lock mode; the layer refuses them with `Error::Unsupported`.
//! - A copied cookie stays valid until it expires. Logout clears the browser's copy,
//!   not a stolen one. Expiry is enforced from the authenticated payload, so an expired
//!   cookie replayed later is refused. [`CookieStore::with_not_before`] lets an app
//!   revoke every cookie of a user issued before a given time (after a password change,
//!   say), which needs that one piece of state per user.

mod keys;
mod opened;
mod store;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::XNonce;
use chacha20poly1305::aead::{Aead, Payload as AeadPayload};
use serde::{Deserialize, Serialize};
use tether_core::{NotBefore, Record, unix_ms};
use time::OffsetDateTime;

pub use crate::keys::{KeyError, KeyRing};
use crate::opened::OpenedCache;

/// Cookie values remembered with what they opened to, by default.
pub const DEFAULT_OPEN_CACHE: usize = 4096;

const FORMAT: u8 = 2;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const AAD: &[u8] = b"tether/cookie/v2";
const RAW: u8 = 0;
const DEFLATED: u8 = 1;
/// Decompressed payloads larger than this are refused (a deflate bomb in a forged
/// cookie cannot get here without the key, but the bound costs nothing).
const MAX_PAYLOAD: usize = 64 * 1024;

/// Sessions sealed into the cookie; use with
/// [`SessionLayer::client_side`](https://docs.rs/tether).
#[derive(Clone)]
pub struct CookieStore {
    keys: KeyRing,
    context: String,
    compress: bool,
    max_len: usize,
    not_before: NotBefore,
    opened: OpenedCache,
}

impl std::fmt::Debug for CookieStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieStore")
            .field("keys", &self.keys)
            .field("context", &self.context)
            .field("compress", &self.compress)
            .field("max_len", &self.max_len)
            .field("revocation", &self.not_before.is_set())
            .field("opened", &self.opened)
            .finish()
    }
}

/// The sealed payload, with one-letter names: every byte travels on every request.
#[derive(Serialize, Deserialize)]
struct Sealed {
    /// Issued at (ms since the epoch).
    t: i64,
    /// Version.
    v: u64,
    /// Created, last seen, idle deadline, absolute deadline (ms).
    c: i64,
    s: i64,
    i: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<i64>,
    /// User.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
    /// The session's own lifetime (`Lifetime::to_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    l: Option<i64>,
    /// Data.
    #[serde(default)]
    d: serde_json::Map<String, serde_json::Value>,
}

impl Sealed {
    fn new(record: &Record, issued: OffsetDateTime) -> Self {
        Self {
            t: unix_ms::to_ms(issued),
            v: record.version,
            c: unix_ms::to_ms(record.created),
            s: unix_ms::to_ms(record.last_seen),
            i: unix_ms::to_ms(record.idle_deadline),
            a: record.absolute_deadline.map(unix_ms::to_ms),
            u: record.user.clone(),
            l: record.lifetime.map(|l| l.to_ms()),
            d: record.data.clone(),
        }
    }

    fn record(self) -> Record {
        Record {
            data: self.d,
            version: self.v,
            created: unix_ms::from_ms(self.c),
            last_seen: unix_ms::from_ms(self.s),
            idle_deadline: unix_ms::from_ms(self.i),
            absolute_deadline: self.a.map(unix_ms::from_ms),
            user: self.u,
            lifetime: self.l.and_then(tether_core::Lifetime::from_ms),
        }
    }
}

impl CookieStore {
    /// A store sealing with `keys`; no compression, values up to 4000 bytes.
    pub fn new(keys: KeyRing) -> Self {
        Self {
            keys,
            context: String::new(),
            compress: false,
            max_len: 4000,
            not_before: NotBefore::default(),
            opened: OpenedCache::new(DEFAULT_OPEN_CACHE),
        }
    }

    /// Binds every cookie to `context` (an application id, say `"shop/admin"`): a
    /// cookie sealed under another context does not open here, even with the same
    /// keys and cookie name (default: no context).
    ///
    /// ```
    /// # let keys = tether_cookie::KeyRing::parse(&tether_cookie::KeyRing::generate_key().unwrap()).unwrap();
    /// use tether_core::ClientStore;
    /// let shop = tether_cookie::CookieStore::new(keys.clone()).with_context("shop");
    /// let admin = tether_cookie::CookieStore::new(keys).with_context("admin");
    /// let now = time::OffsetDateTime::now_utc();
    /// let record = tether_core::Record::new(now, &tether_core::Expiry::default());
    /// let value = shop.seal(&record, "tether", now)?;
    /// assert!(shop.open(&value, "tether", now).is_some());
    /// assert!(admin.open(&value, "tether", now).is_none());
    /// assert!(shop.open(&value, "other-cookie", now).is_none());
    /// # Ok::<(), tether_core::Error>(())
    /// ```
    #[must_use]
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self.opened = self.opened.fresh();
        self
    }

    /// The associated data: the format, the cookie's name and the context, each
    /// length-prefixed so they cannot be re-split.
    fn aad(&self, cookie: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD.len() + 16 + cookie.len() + self.context.len());
        aad.extend_from_slice(AAD);
        for part in [cookie.as_bytes(), self.context.as_bytes()] {
            aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
            aad.extend_from_slice(part);
        }
        aad
    }

    /// Deflate the payload before encrypting when that makes it smaller. Saves bytes
    /// on repetitive data; note that compressing secret data next to data an attacker
    /// controls can leak it through the size (CRIME-style), so leave it off when the
    /// session mixes both.
    #[must_use]
    pub fn with_compression(mut self, compress: bool) -> Self {
        self.compress = compress;
        self
    }

    /// The largest cookie value (default 4000 bytes; browsers allow 4096 for name and
    /// value together).
    #[must_use]
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self.opened = self.opened.fresh();
        self
    }

    /// How many cookie values to remember with the record each opened to (default
    /// [`DEFAULT_OPEN_CACHE`]; 0 remembers none). A browser sends the same value on
    /// every request until its session changes, and a remembered value is not
    /// decrypted and parsed again; expiry and revocation are still checked on every
    /// request, and only values that opened (or were sealed here) are remembered. Each
    /// entry holds the value (at most [`CookieStore::with_max_len`]) and its record.
    ///
    /// ```
    /// # let keys = tether_cookie::KeyRing::parse(&tether_cookie::KeyRing::generate_key().unwrap()).unwrap();
    /// let store = tether_cookie::CookieStore::new(keys).with_open_cache(10_000);
    /// ```
    #[must_use]
    pub fn with_open_cache(mut self, values: usize) -> Self {
        self.opened = OpenedCache::new(values);
        self
    }

    /// Revocation: cookies of a user issued before the instant `not_before(user)`
    /// returns are refused. The function is called on every load of a bound session,
    /// so it should read an in-memory copy, not a database.
    ///
    /// ```
    /// # let keys = tether_cookie::KeyRing::parse(&tether_cookie::KeyRing::generate_key().unwrap()).unwrap();
    /// let store = tether_cookie::CookieStore::new(keys)
    ///     .with_not_before(|user| (user == "mallory").then(time::OffsetDateTime::now_utc));
    /// ```
    #[must_use]
    pub fn with_not_before(
        mut self,
        not_before: impl Fn(&str) -> Option<OffsetDateTime> + Send + Sync + 'static,
    ) -> Self {
        self.not_before = NotBefore::new(not_before);
        self
    }

    /// Decrypts and parses `value`: the record and when it was sealed, `None` when it
    /// is not authentic. Expiry and revocation are [`NotBefore::admits`]'s.
    fn open_uncached(&self, value: &str, cookie: &str) -> Option<(Record, OffsetDateTime)> {
        let plaintext = self.decrypt(value, cookie)?;
        let (&flag, body) = plaintext.split_first()?;
        let json = match flag {
            RAW => body.to_vec(),
            DEFLATED => {
                miniz_oxide::inflate::decompress_to_vec_with_limit(body, MAX_PAYLOAD).ok()?
            }
            _ => return None,
        };
        let sealed: Sealed = serde_json::from_slice(&json).ok()?;
        let issued = unix_ms::from_ms(sealed.t);
        Some((sealed.record(), issued))
    }

    fn decrypt(&self, value: &str, cookie: &str) -> Option<Vec<u8>> {
        if value.len() > self.max_len {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        let (&format, rest) = bytes.split_first()?;
        if format != FORMAT || rest.len() < NONCE_LEN + TAG_LEN + 1 {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = XNonce::from_slice(nonce);
        let aad = self.aad(cookie);
        self.keys.ciphers.iter().find_map(|cipher| {
            cipher
                .decrypt(
                    nonce,
                    AeadPayload {
                        msg: ciphertext,
                        aad: &aad,
                    },
                )
                .ok()
        })
    }
}
