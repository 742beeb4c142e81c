//! The lock-mode lock a request holds, released on every path.

use crate::observe::{self, Op};
use std::sync::Arc;

use tether_core::{Id, LockToken, SessionStore};

/// A held per-session lock. Released by [`LockGuard::release`] after the handler; if
/// the request ends any other way (the client went away and the response future was
/// dropped, the handler panicked), dropping the guard releases it from a spawned
/// task. So a lock never outlives its request by more than the release call.
#[derive(Debug)]
pub(crate) struct LockGuard {
    store: Arc<dyn SessionStore>,
    id: Id,
    token: Option<LockToken>,
}

impl LockGuard {
    pub(crate) fn new(store: Arc<dyn SessionStore>, id: Id, token: LockToken) -> Self {
        Self {
            store,
            id,
            token: Some(token),
        }
    }

    /// Releases the lock now.
    pub(crate) async fn release(mut self) {
        if let Some(token) = &self.token
            && let Err(e) = observe::call(
                self.store.name(),
                Op::Unlock,
                self.store.unlock(&self.id, token),
            )
            .await
        {
            // It expires by its TTL; the request itself succeeded.
            tracing::warn!(store = self.store.name(), error = %e, "could not release a session lock");
        }
        // Only now: if the request is dropped during the unlock, `Drop` still sends one.
        self.token = None;
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        let (store, id) = (self.store.clone(), self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) =
                    observe::call(store.name(), Op::Unlock, store.unlock(&id, &token)).await
                {
                    tracing::warn!(store = store.name(), error = %e, "could not release an abandoned session lock");
                }
            });
        } else {
            tracing::warn!(
                store = store.name(),
                "a session lock was abandoned outside a runtime; it expires by its TTL"
            );
        }
    }
}
