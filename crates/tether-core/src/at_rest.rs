//! Ids at rest are not credentials: a store that keeps sessions outside the process
//! (a server, a file, a peer) is given a hash of each id, never the id a browser
//! presents. Whoever reads a backup, a replica, `MONITOR`, a slow-query log, a WAL or
//! a replication message finds keys that open nothing (as Rails does since
//! CVE-2019-16782).

use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::{
    Capabilities, Changes, Created, Id, LockOptions, LockToken, Record, Result, Saved, SessionInfo,
    SessionStore, Touch,
};

/// Separates this use of SHA-256 from any other.
const DOMAIN: &[u8] = b"tether: session id at rest, v1\0";

impl Id {
    /// The key this session is kept under outside the process: the first 128 bits of
    /// SHA-256 over the id (and a fixed domain). One-way, so a stored key cannot be
    /// turned back into a cookie; still 128 bits, so keys never collide in practice.
    ///
    /// ```
    /// let id = tether_core::Id::generate()?;
    /// assert_ne!(id.at_rest(), id);
    /// assert_eq!(id.at_rest(), id.at_rest());
    /// # Ok::<(), tether_core::Error>(())
    /// ```
    #[must_use]
    pub fn at_rest(&self) -> Id {
        let digest = Sha256::new()
            .chain_update(DOMAIN)
            .chain_update(self.as_bytes())
            .finalize();
        let mut key = [0u8; crate::ID_BYTES];
        key.copy_from_slice(&digest[..crate::ID_BYTES]);
        Id::from_bytes(key)
    }
}

/// A store seen through [`Id::at_rest`]: every id is hashed before it reaches the
/// inner store, so the inner store never holds a presented id. The `tether` layer
/// wraps every server-side store in it, except one that keeps sessions in this
/// process ([`Capabilities::in_process`]).
///
/// The ids in [`SessionInfo`]s it lists are keys at rest: they tell sessions apart
/// and open nothing.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> tether_core::Result<()> {
/// # use std::sync::Arc;
/// # use tether_core::{Expiry, HashedIds, Id, Record, SessionStore};
/// # #[derive(Debug, Default)] struct Spy(std::sync::Mutex<Vec<Id>>);
/// # #[tether_core::async_trait] impl SessionStore for Spy {
/// #   fn name(&self) -> &'static str { "spy" }
/// #   async fn load(&self, id: &Id) -> tether_core::Result<Option<Record>> { self.0.lock().unwrap().push(*id); Ok(None) }
/// #   async fn create(&self, _: &Id, _: &Record) -> tether_core::Result<tether_core::Created> { unimplemented!() }
/// #   async fn save(&self, _: &Id, _: &tether_core::Changes) -> tether_core::Result<tether_core::Saved> { unimplemented!() }
/// #   async fn touch(&self, _: &Id, _: &tether_core::Touch) -> tether_core::Result<bool> { unimplemented!() }
/// #   async fn delete(&self, _: &Id) -> tether_core::Result<bool> { unimplemented!() }
/// #   async fn cycle_id(&self, _: &Id, _: &Id, _: &tether_core::Changes) -> tether_core::Result<tether_core::Saved> { unimplemented!() }
/// # }
/// let inner = Arc::new(Spy::default());
/// let store = HashedIds::new(inner.clone());
/// let id = Id::generate()?;
/// store.load(&id).await?;
/// assert_eq!(inner.0.lock().unwrap()[0], id.at_rest()); // never `id`
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct HashedIds<S: ?Sized> {
    inner: Arc<S>,
}

impl<S: ?Sized> HashedIds<S> {
    /// `inner`, given hashed ids.
    pub fn new(inner: Arc<S>) -> Self {
        Self { inner }
    }

    /// The store underneath.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }
}

#[async_trait::async_trait]
impl<S: SessionStore + ?Sized> SessionStore for HashedIds<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        // Seen through it, the store is keyed by hashes (never wrapped again), even
        // over an in-process store.
        let mut capabilities = self.inner.capabilities().keys_at_rest();
        capabilities.in_process = false;
        capabilities
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        self.inner.load(&id.at_rest()).await
    }

    async fn load_shared(&self, id: &Id) -> Result<Option<Arc<Record>>> {
        self.inner.load_shared(&id.at_rest()).await
    }

    fn load_ready(&self, id: &Id) -> Option<Result<Option<Arc<Record>>>> {
        if !self.inner.reads_at_once() {
            return None;
        }
        self.inner.load_ready(&id.at_rest())
    }

    fn reads_at_once(&self) -> bool {
        self.inner.reads_at_once()
    }

    async fn create(&self, id: &Id, record: &Record) -> Result<Created> {
        self.inner.create(&id.at_rest(), record).await
    }

    async fn create_capped(&self, id: &Id, record: &Record, cap: Option<u32>) -> Result<Created> {
        self.inner.create_capped(&id.at_rest(), record, cap).await
    }

    async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved> {
        self.inner.save(&id.at_rest(), changes).await
    }

    async fn save_from(&self, id: &Id, base: &Record, changes: &Changes) -> Result<Saved> {
        self.inner.save_from(&id.at_rest(), base, changes).await
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        self.inner.touch(&id.at_rest(), touch).await
    }

    async fn delete(&self, id: &Id) -> Result<bool> {
        self.inner.delete(&id.at_rest()).await
    }

    async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
        self.inner
            .cycle_id(&old.at_rest(), &new.at_rest(), changes)
            .await
    }

    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>> {
        self.inner.user_sessions(user).await
    }

    async fn delete_user_sessions(&self, user: &str) -> Result<u64> {
        self.inner.delete_user_sessions(user).await
    }

    async fn lock(&self, id: &Id, options: &LockOptions) -> Result<LockToken> {
        self.inner.lock(&id.at_rest(), options).await
    }

    async fn unlock(&self, id: &Id, token: &LockToken) -> Result<()> {
        self.inner.unlock(&id.at_rest(), token).await
    }

    async fn sweep_once(&self) -> Result<u64> {
        self.inner.sweep_once().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A store that may answer reads at once (`at_once`) and writes down every id its
    /// `load_ready` is asked for.
    #[derive(Debug, Default)]
    struct Asked {
        at_once: bool,
        ids: Mutex<Vec<Id>>,
    }

    #[async_trait::async_trait]
    impl SessionStore for Asked {
        fn name(&self) -> &'static str {
            "asked"
        }
        fn load_ready(&self, id: &Id) -> Option<Result<Option<Arc<Record>>>> {
            self.ids.lock().unwrap().push(*id);
            Some(Ok(None))
        }
        fn reads_at_once(&self) -> bool {
            self.at_once
        }
        async fn load(&self, _: &Id) -> Result<Option<Record>> {
            Ok(None)
        }
        async fn create(&self, _: &Id, _: &Record) -> Result<Created> {
            unimplemented!("not read at once")
        }
        async fn save(&self, _: &Id, _: &Changes) -> Result<Saved> {
            unimplemented!("not read at once")
        }
        async fn touch(&self, _: &Id, _: &Touch) -> Result<bool> {
            unimplemented!("not read at once")
        }
        async fn delete(&self, _: &Id) -> Result<bool> {
            unimplemented!("not read at once")
        }
        async fn cycle_id(&self, _: &Id, _: &Id, _: &Changes) -> Result<Saved> {
            unimplemented!("not read at once")
        }
    }

    /// A store behind the network never answers at once: its key at rest (a SHA-256
    /// of the id) is not worked out for a read that then goes to `load_shared` anyway.
    #[test]
    fn a_read_at_once_is_asked_with_the_key_at_rest_only_of_a_store_that_answers() {
        let id = Id::generate().unwrap();
        for at_once in [false, true] {
            let inner = Arc::new(Asked {
                at_once,
                ..Asked::default()
            });
            let hashed = HashedIds::new(inner.clone());
            assert_eq!(hashed.reads_at_once(), at_once);
            assert_eq!(hashed.load_ready(&id).is_some(), at_once);
            let asked = inner.ids.lock().unwrap().clone();
            let want = if at_once { vec![id.at_rest()] } else { vec![] };
            assert_eq!(asked, want, "reads_at_once {at_once}");
        }
    }
}
