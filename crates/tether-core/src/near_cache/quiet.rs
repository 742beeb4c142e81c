//! Whether anything sent on the invalidation channel is still unread: what lets a
//! pushed read be served at once without missing a write that completed before it
//! began.
//!
//! Redis writes a broadcast invalidation to every tracking connection before it
//! writes the reply of the write that caused it (in one turn of its event loop, the
//! invalidations first). So when a write has completed, its invalidation is already
//! in this instance's socket buffer, or read and applied. A read that finds the
//! channel quiet (no byte waiting in the socket, none read and not yet applied) has
//! every invalidation of every write completed before it; one that does not waits
//! for a fence.

/// A store's check that its invalidation channel has nothing unread (see the module
/// docs). Cheap: a read calls it every time (Redis: one non-blocking `MSG_PEEK` per
/// tracking connection). A store's channel task hands it to [`Feed::set_quiet`](crate::Feed::set_quiet).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> tether_core::Result<()> {
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use tether_core::{Expiry, Freshness, Id, Lookup, NearCache, NearCacheConfig, Quiet, Record};
///
/// /// A channel that knows whether it has applied everything it received.
/// struct Applied(AtomicBool);
/// impl Quiet for Applied {
///     fn quiet(&self) -> bool {
///         self.0.load(Ordering::SeqCst)
///     }
/// }
///
/// let config = NearCacheConfig::default().with_freshness(Freshness::Pushed);
/// let (cache, mut feed) = NearCache::new(&config);
/// let channel = Arc::new(Applied(AtomicBool::new(true)));
/// feed.set_quiet(channel.clone());
/// feed.live();
/// let id = Id::generate()?;
/// let Lookup::Miss(ticket) = cache.read(&id).await else { unreachable!() };
/// let now = time::OffsetDateTime::now_utc();
/// cache.put(&id, &Arc::new(Record::new(now, &Expiry::default())), ticket);
/// // Quiet: served from memory at once.
/// assert!(matches!(cache.read(&id).await, Lookup::Hit(_)));
/// // Something unread: served only after a fence (this feed has none: the store).
/// channel.0.store(false, Ordering::SeqCst);
/// assert!(matches!(cache.read(&id).await, Lookup::Bypass));
/// # Ok(()) }
/// ```
pub trait Quiet: Send + Sync + 'static {
    /// `true` when every byte the server sent on the channel so far has been read
    /// and applied; `false` when in doubt.
    fn quiet(&self) -> bool;
}
