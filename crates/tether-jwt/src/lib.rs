//! The session as a signed JWT: a client-side store other services can verify.
//!
//! Like `tether-cookie`, the whole session travels with the client and instances
//! share nothing but keys. Unlike it, the token is signed, not encrypted: an API
//! gateway or a service in another language checks it with the public key from
//! [`JwtKeys::jwks`] and reads the user (`sub`), the session id (`sid`), the expiry
//! (`exp`) and the data, without a shared store or a decryption key.
//!
//! ```
//! use tether_jwt::{JwtKeys, JwtStore};
//!
//! let keys = JwtKeys::parse(&JwtKeys::generate_ed25519("2026-12")?)?;
//! let store = JwtStore::new(keys).with_issuer("https://shop.example");
//! let jwks = store.keys().jwks(); // publish for verifiers
//! let layer = tether::SessionLayer::client_side(store);
//! # let _ = (jwks, layer);
//! # Ok::<(), tether_jwt::KeyError>(())
//! ```
//!
//! # The token
//!
//! A JWS in compact form (RFC 7515/7519): the header names the algorithm (`EdDSA`
//! by default, `HS256` for a shared-secret key) and the key (`kid`). The claims:
//! `iat` and `nbf` (issue time), `exp` (the earlier of the session's idle and absolute
//! deadlines, rounded down to the second), `sub` (the bound user, if any), `sid` (the
//! session id, as OpenID Connect names it), `jti` (this token's own id), `iss` and
//! `aud` when configured, and `ses`, tether's private claim: the data (`d`), the
//! version, the session's times, and the cookie it was issued for.
//!
//! # What it exposes, and when to choose it
//!
//! **Anyone holding the token can read it**: base64 is not encryption. Put nothing in
//! the session that the user (or a proxy, a log, a browser extension) must not see;
//! choose `tether-cookie`, which encrypts, when the data is private and no other
//! service needs to read it. Choose the JWT when other services must verify the
//! session on their own.
//!
//! As with every client-side form, there is no server state: no user index, no "log
//! out everywhere", no lock mode (the layer refuses them), and a copied token stays
//! valid until `exp`. [`JwtStore::with_not_before`] revokes a user's tokens issued
//! before an instant, for one piece of state per user.
//!
//! # What it refuses
//!
//! Opening answers "no session" for anything but a well-formed token, signed by a key
//! of the ring with that key's own algorithm (`none` and any other algorithm are
//! refused, so an HS256 signature made with an Ed25519 public key never verifies), for
//! this cookie, issuer and audience, inside `nbf`..`exp` (`nbf` with a minute of
//! leeway for instances' clocks), not revoked, and not longer
//! than the size limit.

mod claims;
mod keys;
mod store;

use jsonwebtoken::Validation;
use std::sync::Arc;

use tether_core::{NotBefore, OpenedCache};
use time::OffsetDateTime;

use crate::claims::{Claims, Verified};
pub use crate::keys::{JwtKeys, KeyError, MIN_HS256_SECRET};

/// Tokens remembered with their verified claims, by default.
pub const DEFAULT_VERIFIED_CACHE: usize = 4096;

/// How far ahead of this instance's clock a token's `nbf` may be: instances' clocks
/// differ a little, and a token refreshed by one must open on the next.
const NBF_LEEWAY_SECONDS: i64 = 60;

/// Sessions as signed JWTs; use with
/// [`SessionLayer::client_side`](https://docs.rs/tether).
#[derive(Clone)]
pub struct JwtStore {
    keys: JwtKeys,
    issuer: Option<String>,
    audience: Option<String>,
    max_len: usize,
    not_before: NotBefore,
    /// Tokens whose signature verified (or that were signed here), with their
    /// sessions decoded.
    verified: OpenedCache<Verified>,
}

impl std::fmt::Debug for JwtStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtStore")
            .field("keys", &self.keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("max_len", &self.max_len)
            .field("revocation", &self.not_before.is_set())
            .field("verified", &self.verified)
            .finish()
    }
}

impl JwtStore {
    /// A store signing with the first of `keys`; tokens up to 4000 bytes.
    pub fn new(keys: JwtKeys) -> Self {
        Self {
            keys,
            issuer: None,
            audience: None,
            max_len: 4000,
            not_before: NotBefore::default(),
            verified: OpenedCache::new(DEFAULT_VERIFIED_CACHE),
        }
    }

    /// The keys, for [`JwtKeys::jwks`].
    pub fn keys(&self) -> &JwtKeys {
        &self.keys
    }

    /// Sets `iss` on every token and requires it on every token opened.
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Sets `aud` on every token and requires it on every token opened: tokens of
    /// another app (another audience) signed with the same keys do not open here.
    ///
    /// ```
    /// use tether_core::ClientStore;
    /// let keys = tether_jwt::JwtKeys::parse(&tether_jwt::JwtKeys::generate_ed25519("k")?)?;
    /// let shop = tether_jwt::JwtStore::new(keys.clone()).with_audience("shop");
    /// let admin = tether_jwt::JwtStore::new(keys).with_audience("admin");
    /// let now = time::OffsetDateTime::now_utc();
    /// let record = tether_core::Record::new(now, &tether_core::Expiry::default());
    /// let token = shop.seal(&record, "tether", now).unwrap();
    /// assert!(shop.open(&token, "tether", now).is_some());
    /// assert!(admin.open(&token, "tether", now).is_none());
    /// assert!(shop.open(&token, "another-cookie", now).is_none());
    /// # Ok::<(), tether_jwt::KeyError>(())
    /// ```
    #[must_use]
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The longest token (default 4000 bytes: browsers allow 4096 for a cookie's name
    /// and value). A session that would not fit is [`Error::TooLarge`](tether_core::Error::TooLarge), which the
    /// layer answers with 413; a token is never truncated.
    #[must_use]
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// Revocation: tokens of a user issued before the instant `not_before(user)`
    /// returns are refused. Called on every open of a bound session, so it should
    /// read an in-memory copy, not a database.
    #[must_use]
    pub fn with_not_before(
        mut self,
        not_before: impl Fn(&str) -> Option<OffsetDateTime> + Send + Sync + 'static,
    ) -> Self {
        self.not_before = NotBefore::new(not_before);
        self
    }

    /// How many tokens to remember with their verified claims (default
    /// [`DEFAULT_VERIFIED_CACHE`]; 0 remembers none). A browser sends the same token
    /// on every request until its session changes, and a remembered token's signature
    /// is not verified again; its times, issuer, audience, cookie and revocation are
    /// still checked on every request, and only tokens that verified (or were signed
    /// here) are remembered.
    ///
    /// ```
    /// # let keys = tether_jwt::JwtKeys::parse(&tether_jwt::JwtKeys::generate_ed25519("k1").unwrap()).unwrap();
    /// let store = tether_jwt::JwtStore::new(keys).with_verified_cache(10_000);
    /// ```
    #[must_use]
    pub fn with_verified_cache(mut self, tokens: usize) -> Self {
        self.verified = OpenedCache::new(tokens);
        self
    }

    /// What is kept of `token` once its signature verified, or `None`.
    fn verify(&self, token: &str) -> Option<Arc<Verified>> {
        if token.len() > self.max_len {
            return None;
        }
        if let Some(claims) = self.verified.get(token) {
            return Some(claims);
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = self.keys.by_kid(header.kid.as_deref()?)?;
        if header.alg != key.algorithm {
            return None;
        }
        // One algorithm per key; times, issuer and audience are checked below against
        // the request's clock rather than the system's.
        let mut validation = Validation::new(key.algorithm);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Claims>(token, &key.verifying, &validation)
            .ok()?
            .claims;
        Some(self.verified.put(token, claims.into_verified()?))
    }
}
