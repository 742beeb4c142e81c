//! A server-side store with a [`NearCache`] in front: reads at in-process speed while
//! the store's invalidation channel is live, every write through to the store.

use std::sync::Arc;

use crate::near_cache::{Lookup, NearCache};
use crate::{
    Background, Capabilities, Changes, Created, Freshness, Id, LockOptions, LockToken, Record,
    Result, Saved, SessionInfo, SessionStore, Touch,
};

/// `S` with a near cache of its records. Built by the stores that have an
/// invalidation channel (`RedisStore::with_near_cache`,
/// `PostgresStore::with_near_cache`), which start the task that drives the cache's
/// [`Feed`](crate::Feed) and hand it here to keep.
///
/// Reads are answered from the cache while its feed is live; every write goes to the
/// store and then drops this instance's entry before it returns (the store's own
/// invalidation also arrives, for every instance). A lock drops the entry too, so a
/// request in lock mode reads the store's newest record, and
/// [`SessionStore::save_from`]'s compare-and-set falls back to the merge when a cached
/// base turns out older than the store's.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> tether_core::Result<()> {
/// use std::sync::Arc;
/// use tether_core::{CachedStore, Expiry, Id, NearCache, NearCacheConfig, Record, SessionStore};
/// # #[derive(Debug, Default)] struct Tiny(std::sync::Mutex<std::collections::HashMap<Id, Record>>);
/// # #[tether_core::async_trait] impl SessionStore for Tiny {
/// #   fn name(&self) -> &'static str { "tiny" }
/// #   async fn load(&self, id: &Id) -> tether_core::Result<Option<Record>> { Ok(self.0.lock().unwrap().get(id).cloned()) }
/// #   async fn create(&self, id: &Id, r: &Record) -> tether_core::Result<tether_core::Created> { self.0.lock().unwrap().insert(*id, r.clone()); Ok(tether_core::Created::Yes) }
/// #   async fn save(&self, _: &Id, _: &tether_core::Changes) -> tether_core::Result<tether_core::Saved> { unimplemented!() }
/// #   async fn touch(&self, _: &Id, _: &tether_core::Touch) -> tether_core::Result<bool> { unimplemented!() }
/// #   async fn delete(&self, id: &Id) -> tether_core::Result<bool> { Ok(self.0.lock().unwrap().remove(id).is_some()) }
/// #   async fn cycle_id(&self, _: &Id, _: &Id, _: &tether_core::Changes) -> tether_core::Result<tether_core::Saved> { unimplemented!() }
/// # }
/// // Pushed reads, no echo wait: this example has no server to fence or echo.
/// let config = NearCacheConfig::default()
///     .with_freshness(tether_core::Freshness::Pushed)
///     .with_echo_wait(std::time::Duration::ZERO);
/// let (cache, mut feed) = NearCache::new(&config);
/// let store = CachedStore::new(Tiny::default(), cache.clone(), None);
/// feed.live(); // in a real store, the invalidation channel's task says so
/// let id = Id::generate()?;
/// store.create(&id, &Record::new(time::OffsetDateTime::now_utc(), &Expiry::default())).await?;
/// store.load(&id).await?; // from the store, kept
/// store.load(&id).await?; // from the cache
/// assert_eq!(cache.stats().hits, 1);
/// store.delete(&id).await?; // drops the entry before it returns
/// assert!(store.load(&id).await?.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct CachedStore<S> {
    inner: S,
    cache: Arc<NearCache>,
    _feed_task: Option<Background>,
}

impl<S> CachedStore<S> {
    /// The store underneath.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The cache, for its [`stats`](NearCache::stats).
    pub fn cache(&self) -> &Arc<NearCache> {
        &self.cache
    }
}

impl<S: SessionStore> CachedStore<S> {
    /// `inner` behind `cache`; `feed_task`, the task that drives the cache's feed,
    /// runs as long as this store lives.
    pub fn new(inner: S, cache: Arc<NearCache>, feed_task: Option<Background>) -> Self {
        Self {
            inner,
            cache,
            _feed_task: feed_task,
        }
    }

    async fn read(&self, id: &Id) -> Result<Option<Arc<Record>>> {
        match self.cache.read(id).await {
            Lookup::Hit(record) => Ok(Some(record)),
            Lookup::Miss(ticket) => {
                let record = self.inner.load(id).await?.map(Arc::new);
                if let Some(record) = &record {
                    self.cache.put(id, record, ticket);
                }
                Ok(record)
            }
            Lookup::Bypass => Ok(self.inner.load(id).await?.map(Arc::new)),
        }
    }

    /// Runs a write of `ids`, then drops their entries whatever the outcome (a write
    /// that timed out may still have happened). When it `changed` them, waits for the
    /// server's invalidation of each to come back (at most the cache's
    /// [`echo_wait`](NearCache::echo_wait)): by then every other instance has been
    /// sent its copy.
    async fn write<T>(
        &self,
        ids: &[&Id],
        write: impl Future<Output = Result<T>>,
        changed: impl Fn(&T) -> bool,
    ) -> Result<T> {
        let wait = self.cache.echo_wait();
        let echoes: Vec<_> = if self.cache.is_live() && !wait.is_zero() {
            ids.iter().map(|id| self.cache.expect_echo(id)).collect()
        } else {
            Vec::new()
        };
        let result = write.await;
        for id in ids {
            self.cache.invalidate(id);
        }
        if result.as_ref().is_ok_and(changed) {
            for echo in echoes {
                if !echo.within(wait).await {
                    self.cache.echo_missed();
                }
            }
        }
        result
    }
}

fn version(saved: &Saved) -> bool {
    matches!(saved, Saved::Version { .. })
}

#[async_trait::async_trait]
impl<S: SessionStore> SessionStore for CachedStore<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        Ok(self.read(id).await?.map(Arc::unwrap_or_clone))
    }

    async fn load_shared(&self, id: &Id) -> Result<Option<Arc<Record>>> {
        self.read(id).await
    }

    fn load_ready(&self, id: &Id) -> Option<Result<Option<Arc<Record>>>> {
        self.cache.ready(id).map(|record| Ok(Some(record)))
    }

    fn reads_at_once(&self) -> bool {
        self.cache.freshness() == Freshness::Pushed
    }

    async fn create(&self, id: &Id, record: &Record) -> Result<Created> {
        let created = |c: &Created| *c == Created::Yes;
        self.write(&[id], self.inner.create(id, record), created)
            .await
    }

    async fn create_capped(&self, id: &Id, record: &Record, cap: Option<u32>) -> Result<Created> {
        let created = |c: &Created| *c == Created::Yes;
        let result = self
            .write(&[id], self.inner.create_capped(id, record, cap), created)
            .await;
        if cap.is_some() {
            // The cap ended other sessions of the user, not known here by id.
            self.cache.flush();
        }
        result
    }

    async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved> {
        let result = self
            .write(&[id], self.inner.save(id, changes), version)
            .await;
        if changes.user_cap.is_some() {
            self.cache.flush();
        }
        result
    }

    async fn save_from(&self, id: &Id, base: &Record, changes: &Changes) -> Result<Saved> {
        let result = self
            .write(&[id], self.inner.save_from(id, base, changes), version)
            .await;
        if changes.user_cap.is_some() {
            self.cache.flush();
        }
        result
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        self.write(&[id], self.inner.touch(id, touch), |t| *t).await
    }

    async fn delete(&self, id: &Id) -> Result<bool> {
        self.write(&[id], self.inner.delete(id), |d| *d).await
    }

    async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
        self.write(&[old, new], self.inner.cycle_id(old, new, changes), version)
            .await
    }

    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>> {
        self.inner.user_sessions(user).await
    }

    async fn delete_user_sessions(&self, user: &str) -> Result<u64> {
        let result = self.inner.delete_user_sessions(user).await;
        // Which ids went is the store's to know: forget every entry.
        self.cache.flush();
        result
    }

    async fn lock(&self, id: &Id, options: &LockOptions) -> Result<LockToken> {
        // The holder reads the store's newest record, never a cached copy (a lock
        // changes no session: nothing to wait for).
        self.write(&[id], self.inner.lock(id, options), |_| false)
            .await
    }

    async fn unlock(&self, id: &Id, token: &LockToken) -> Result<()> {
        self.inner.unlock(id, token).await
    }

    async fn sweep_once(&self) -> Result<u64> {
        self.inner.sweep_once().await
    }
}
