//! What the cookie store remembers of a value it opened (in core's `OpenedCache`):
//! opening (base64, XChaCha20-Poly1305, JSON) costs more than the rest of a read, and
//! a hit skips it, never the checks: the cookie's name, expiry and revocation are
//! decided again on every request.

use std::sync::Arc;

use tether_core::Record;
use time::OffsetDateTime;

/// What a value opened to.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The cookie name it was sealed for (its authenticated data).
    pub(crate) cookie: Box<str>,
    pub(crate) record: Record,
    /// When it was sealed (for [`crate::CookieStore::with_not_before`]).
    pub(crate) issued: OffsetDateTime,
}

/// The cookie store's cache: values that opened, with what they hold.
pub(crate) type OpenedCache = tether_core::OpenedCache<Opened>;

/// What `value`, sealed for `cookie`, opened to, if `cache` holds it.
pub(crate) fn cached(cache: &OpenedCache, value: &str, cookie: &str) -> Option<Arc<Opened>> {
    cache.get(value).filter(|opened| &*opened.cookie == cookie)
}
