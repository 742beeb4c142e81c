//! The channel's side of a near cache: live or lost, and the invalidations.

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

use super::{Barrier, NearCache, Quiet};
use crate::Id;

/// The side of a [`NearCache`] its store's invalidation channel drives. There is one
/// per cache; dropping it leaves the cache bypassed for good.
#[derive(Debug)]
pub struct Feed {
    pub(super) cache: Arc<NearCache>,
    pub(super) live: bool,
}

impl Feed {
    /// The channel is up and every change from now on will be reported: serve the
    /// cache (empty: it was flushed when the channel was lost, or never filled).
    pub fn live(&mut self) {
        if !self.live {
            self.cache.flush();
            self.live = true;
            self.cache.live.store(true, SeqCst);
        }
    }

    /// The channel's fence, for [`Freshness::Fenced`](crate::Freshness::Fenced) reads: give it when the
    /// channel is up (a fenced cache serves nothing without one); a loss drops it.
    pub fn set_barrier(&self, barrier: Arc<dyn Barrier>) {
        self.cache.fences.set(Some(barrier));
    }

    /// The channel's check that nothing it carried is unread, for
    /// [`Freshness::Pushed`](crate::Freshness::Pushed) reads: with it, a pushed read is served at once only
    /// when the channel is quiet (and after a fence otherwise); without it, after a
    /// yield to the runtime. Give it when the channel is up; a loss drops it. See
    /// [`Quiet`]'s example.
    pub fn set_quiet(&self, quiet: Arc<dyn Quiet>) {
        *self
            .cache
            .quiet
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(quiet);
    }

    /// The channel is down (or was never up): stop serving, forget everything.
    pub fn lost(&mut self) {
        self.cache.fences.set(None);
        *self
            .cache
            .quiet
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        self.live = false;
        self.cache.live.store(false, SeqCst);
        self.cache.flush();
        self.cache.echoes.all();
    }

    /// Whether this feed last said live.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The server says `id` changed.
    pub fn invalidate(&self, id: &Id) {
        self.invalidator().invalidate(id);
    }

    /// The server says everything may have changed (a `FLUSHALL`, a failover).
    pub fn flush(&self) {
        self.invalidator().flush();
    }

    /// A handle that applies invalidations where they are read (in the connection's
    /// own task, with no hop through a channel): the sooner applied, the shorter the
    /// window in which another instance's change is not seen here.
    pub fn invalidator(&self) -> Invalidator {
        Invalidator(self.cache.clone())
    }

    /// The cache this feed drives.
    pub fn cache(&self) -> &Arc<NearCache> {
        &self.cache
    }
}

/// Applies the server's invalidations to a [`NearCache`]; clones share it. Only the
/// [`Feed`] says whether the channel is live.
#[derive(Debug, Clone)]
pub struct Invalidator(Arc<NearCache>);

impl Invalidator {
    /// The server says `id` changed.
    pub fn invalidate(&self, id: &Id) {
        self.0.invalidate(id);
        self.0.echoes.came(id);
    }

    /// The server says everything may have changed.
    pub fn flush(&self) {
        self.0.flush();
        self.0.echoes.all();
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.lost();
    }
}
