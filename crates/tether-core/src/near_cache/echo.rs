//! Waiting for a write's own invalidation to come back from the server.
//!
//! The server sends an invalidation to every listening instance at the same moment
//! (Redis in one turn of its event loop, PostgreSQL to every listener at commit). So
//! once the writer's own copy arrived, the other instances have theirs on the way,
//! well ahead of the next request a browser sends after the write's response: a
//! write that waits for its echo before answering is not followed by a stale read
//! elsewhere (the lab's consistency measurement counts them).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::Id;

/// The writes waiting for their echo, by id.
#[derive(Debug, Default)]
pub(super) struct Echoes(Mutex<HashMap<Id, Vec<oneshot::Sender<()>>>>);

/// One write's wait for its echo; dropping it gives the wait up.
#[derive(Debug)]
pub struct Echo {
    rx: oneshot::Receiver<()>,
    id: Id,
    cache: std::sync::Arc<super::NearCache>,
}

impl Echo {
    /// Resolves when the echo came (or the channel was lost or flushed: nothing more
    /// will come); `false` when it did not come within `limit`.
    pub async fn within(mut self, limit: std::time::Duration) -> bool {
        tokio::time::timeout(limit, &mut self.rx).await.is_ok()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.rx.close();
        self.cache.echoes.forget_abandoned(&self.id);
    }
}

impl Echoes {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Id, Vec<oneshot::Sender<()>>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a wait for the next invalidation of `id` (before the write is sent,
    /// so an echo faster than the write's reply is not missed).
    pub(super) fn expect(cache: &std::sync::Arc<super::NearCache>, id: &Id) -> Echo {
        let (tx, rx) = oneshot::channel();
        let mut waiting = cache.echoes.lock();
        let list = waiting.entry(*id).or_default();
        list.retain(|w| !w.is_closed());
        list.push(tx);
        Echo {
            rx,
            id: *id,
            cache: cache.clone(),
        }
    }

    /// The invalidation of `id` came.
    pub(super) fn came(&self, id: &Id) {
        let woken = self.lock().remove(id);
        for waiter in woken.into_iter().flatten() {
            let _ = waiter.send(());
        }
    }

    /// Everything came (a flush) or nothing more will (a lost channel).
    pub(super) fn all(&self) {
        let woken = std::mem::take(&mut *self.lock());
        for waiter in woken.into_values().flatten() {
            let _ = waiter.send(());
        }
    }

    /// Drops the waits whose writers gave up.
    pub(super) fn forget_abandoned(&self, id: &Id) {
        let mut waiting = self.lock();
        if let Some(list) = waiting.get_mut(id) {
            list.retain(|w| !w.is_closed());
            if list.is_empty() {
                waiting.remove(id);
            }
        }
    }
}
