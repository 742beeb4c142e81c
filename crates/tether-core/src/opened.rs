//! What a client-side store authenticated lately, by the exact cookie value: a browser
//! sends the same value with every request until its session changes, and
//! authenticating it (decrypting, or verifying a signature) costs more than the rest
//! of a read. A hit skips the cryptography, never the checks: the store decides
//! expiry, revocation and the cookie's name again on every request.

use std::sync::Arc;

use quick_cache::sync::Cache;

/// Values that authenticated (opened, verified, or sealed here) and what they hold;
/// at most `capacity` of them, the least recently used dropped first. Clones share
/// the cache; a store whose configuration changes what authenticates takes a
/// [`fresh`](OpenedCache::fresh) one, so a value one configuration accepted is never
/// taken as accepted by another.
///
/// ```
/// let cache = tether_core::OpenedCache::new(100);
/// assert_eq!(*cache.put("value", 42_u32), 42);
/// assert_eq!(cache.get("value").as_deref(), Some(&42));
/// assert!(cache.fresh().get("value").is_none());
/// assert!(tether_core::OpenedCache::<u32>::new(0).get("value").is_none());
/// ```
pub struct OpenedCache<T>(Option<Arc<Cache<Box<str>, Arc<T>>>>);

impl<T> Clone for OpenedCache<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> std::fmt::Debug for OpenedCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedCache")
            .field("capacity", &self.0.as_ref().map(|c| c.capacity()))
            .finish()
    }
}

impl<T> OpenedCache<T> {
    /// A cache of `capacity` values; none at all for 0.
    pub fn new(capacity: usize) -> Self {
        Self((capacity > 0).then(|| Arc::new(Cache::new(capacity))))
    }

    /// An empty cache of the same capacity, shared with no other store.
    #[must_use]
    pub fn fresh(&self) -> Self {
        Self::new(
            self.0
                .as_ref()
                .map_or(0, |c| usize::try_from(c.capacity()).unwrap_or(usize::MAX)),
        )
    }

    /// What `value` held when it authenticated, if it is here.
    pub fn get(&self, value: &str) -> Option<Arc<T>> {
        self.0.as_ref()?.get(value)
    }

    /// Remembers what an authenticated `value` holds, and gives it back shared (also
    /// when the cache holds nothing).
    pub fn put(&self, value: &str, held: T) -> Arc<T> {
        let held = Arc::new(held);
        if let Some(cache) = &self.0 {
            cache.insert(value.into(), held.clone());
        }
        held
    }
}
