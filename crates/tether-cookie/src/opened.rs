//! Records opened lately, by the exact cookie value they were opened from: a browser
//! sends the same value with every request until the session changes, and opening it
//! (base64, XChaCha20-Poly1305, JSON) costs more than the rest of a read. A hit skips
//! the opening, never the checks: expiry and revocation are decided again on every
//! request.

use std::sync::Arc;

use quick_cache::sync::Cache;
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

/// Values that were authenticated (opened, or sealed here) and what they hold; at
/// most `capacity` of them, the least recently used dropped first. Clones of a store
/// share it; a builder call that changes what opens (the context, the length limit)
/// gives the store a cache of its own ([`OpenedCache::fresh`]), so a value one
/// configuration opened is never taken as opened by another.
#[derive(Clone)]
pub(crate) struct OpenedCache(Option<Arc<Cache<Box<str>, Arc<Opened>>>>);

impl std::fmt::Debug for OpenedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedCache")
            .field("capacity", &self.0.as_ref().map(|c| c.capacity()))
            .finish()
    }
}

impl OpenedCache {
    /// A cache of `capacity` values; none at all for 0.
    pub(crate) fn new(capacity: usize) -> Self {
        Self((capacity > 0).then(|| Arc::new(Cache::new(capacity))))
    }

    /// An empty cache of the same capacity, shared with no other store.
    #[must_use]
    pub(crate) fn fresh(&self) -> Self {
        Self::new(
            self.0
                .as_ref()
                .map_or(0, |c| usize::try_from(c.capacity()).unwrap_or(usize::MAX)),
        )
    }

    /// What `value`, sealed for `cookie`, opened to, if it is here.
    pub(crate) fn get(&self, value: &str, cookie: &str) -> Option<Arc<Opened>> {
        self.0
            .as_ref()?
            .get(value)
            .filter(|opened| &*opened.cookie == cookie)
    }

    /// Remembers what an authenticated `value` holds.
    pub(crate) fn put(&self, value: &str, opened: Opened) {
        if let Some(cache) = &self.0 {
            cache.insert(value.into(), Arc::new(opened));
        }
    }
}
