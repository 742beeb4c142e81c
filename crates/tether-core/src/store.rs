//! The `SessionStore` trait every backend implements.

use std::fmt;
use std::time::Duration;

use crate::{Capabilities, Changes, Error, Id, Record, Result, SessionInfo, Touch};

impl Saved {
    /// The outcome of a write that left `record`.
    ///
    /// ```
    /// let record = tether_core::Record::new(time::OffsetDateTime::now_utc(), &tether_core::Expiry::default());
    /// assert!(matches!(tether_core::Saved::of(&record), tether_core::Saved::Version { version: 1, .. }));
    /// ```
    pub fn of(record: &Record) -> Self {
        Self::Version {
            version: record.version,
            expires_at: record.expires_at(),
            browser_session: record.lifetime.map(|l| l.browser_session),
        }
    }
}

/// Whether [`SessionStore::create`] created the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The record is stored under the id.
    Yes,
    /// A record with this id exists and was left as it was.
    IdTaken,
}

/// The outcome of a save or an id rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// The changes were merged.
    Version {
        /// The record's version now.
        version: u64,
        /// When the record now expires (the earlier of its idle and absolute
        /// deadlines), never later, and at most a second earlier: the layer's cookie
        /// never outlives the session even when the request did not read it.
        expires_at: time::OffsetDateTime,
        /// For a session with a [`Lifetime`](crate::Lifetime) of its own, whether its
        /// cookie is a browser-session one; `None` for a session on the layer's
        /// lifetime. The layer needs it to set the cookie after a request that wrote
        /// without reading.
        browser_session: Option<bool>,
    },
    /// The session no longer exists (deleted, expired or never existed): nothing was
    /// written, and the caller must not recreate it under this id.
    Gone,
}

/// Lock mode settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockOptions {
    /// How long to wait for another holder before [`Error::LockTimeout`].
    pub wait: Duration,
    /// How long a lock lives if its holder dies without releasing it.
    pub ttl: Duration,
}

impl Default for LockOptions {
    /// Wait up to 5 s; a lock lives at most 30 s.
    fn default() -> Self {
        Self {
            wait: Duration::from_secs(5),
            ttl: Duration::from_secs(30),
        }
    }
}

/// Proof of holding a session lock: only its owner can release it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LockToken(pub String);

impl LockToken {
    /// A fresh random token.
    pub fn generate() -> Result<Self> {
        Ok(Self(Id::generate()?.to_string()))
    }
}

impl fmt::Debug for LockToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockToken(..)")
    }
}

/// A store that keeps the whole session in the client's cookie: sealing a record
/// gives the cookie value, opening the value gives the record back.
///
/// Sealing and opening are local and synchronous (no I/O). `open` answers `None`, never
/// an error, for anything that is not a valid, unexpired value this store sealed:
/// forged, truncated, re-keyed, oversized, revoked.
///
/// Both take the name of the cookie the value travels in, which a store binds into
/// what it seals: a value sealed for one cookie (one layer, one app) does not open as
/// another, even under the same keys.
pub trait ClientStore: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and errors.
    fn name(&self) -> &'static str;

    /// The record sealed in `value` for the cookie `cookie`, or `None`.
    fn open(&self, value: &str, cookie: &str, now: time::OffsetDateTime) -> Option<Record>;

    /// Seals `record` into a value of the cookie `cookie`; [`Error::TooLarge`] when it
    /// does not fit.
    fn seal(&self, record: &Record, cookie: &str, now: time::OffsetDateTime) -> Result<String>;

    /// The largest cookie value this store produces.
    fn size_limit(&self) -> usize;

    /// Like [`ClientStore::open`], with the session id sealed in the value, for stores
    /// that seal one (the JWT store's `sid` claim); the default seals none.
    fn open_with_id(
        &self,
        value: &str,
        cookie: &str,
        now: time::OffsetDateTime,
    ) -> Option<(Option<Id>, Record)> {
        self.open(value, cookie, now).map(|record| (None, record))
    }

    /// Like [`ClientStore::seal`], sealing the session's id too where the store keeps
    /// one; the default ignores it. The layer passes the id the session was opened
    /// with, the new one after `cycle_id`, or a fresh one for a new session.
    fn seal_with_id(
        &self,
        id: &Id,
        record: &Record,
        cookie: &str,
        now: time::OffsetDateTime,
    ) -> Result<String> {
        let _ = id;
        self.seal(record, cookie, now)
    }
}

/// A place sessions live: memory, Redis, MySQL, a shared directory, peers.
///
/// Every operation is atomic at the store. Loads enforce expiry: an expired record
/// reads as `None` whether or not it has been cleaned up yet. Writes never bring back a
/// session that is gone. The conformance suite in `tether-testkit` checks all of it.
///
/// Implementing a store:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use tether_core::*;
///
/// /// A store with no user index and no locks.
/// #[derive(Debug, Default)]
/// struct Tiny(Mutex<HashMap<Id, Record>>);
///
/// #[async_trait::async_trait]
/// impl SessionStore for Tiny {
///     fn name(&self) -> &'static str { "tiny" }
///     fn capabilities(&self) -> Capabilities {
///         Capabilities::minimal(None)
///     }
///     async fn load(&self, id: &Id) -> Result<Option<Record>> {
///         let now = time::OffsetDateTime::now_utc();
///         Ok(self.0.lock().unwrap().get(id).filter(|r| !r.is_expired(now)).cloned())
///     }
///     async fn create(&self, id: &Id, record: &Record) -> Result<Created> {
///         let mut map = self.0.lock().unwrap();
///         if map.contains_key(id) { return Ok(Created::IdTaken) }
///         map.insert(*id, record.clone());
///         Ok(Created::Yes)
///     }
///     async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved> {
///         let now = time::OffsetDateTime::now_utc();
///         let mut map = self.0.lock().unwrap();
///         match map.get_mut(id).filter(|r| !r.is_expired(now)) {
///             Some(r) => { r.apply(changes); Ok(Saved::of(r)) }
///             None => Ok(Saved::Gone),
///         }
///     }
///     async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
///         let mut changes = Changes::new(touch.last_seen, touch.idle_deadline);
///         Ok(matches!(self.save(id, &changes).await?, Saved::Version { .. }))
///     }
///     async fn delete(&self, id: &Id) -> Result<bool> {
///         Ok(self.0.lock().unwrap().remove(id).is_some())
///     }
///     async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
///         let now = time::OffsetDateTime::now_utc();
///         let mut map = self.0.lock().unwrap();
///         match map.remove(old).filter(|r| !r.is_expired(now)) {
///             Some(mut r) => { r.apply(changes); let saved = Saved::of(&r); map.insert(*new, r); Ok(saved) }
///             None => Ok(Saved::Gone),
///         }
///     }
/// }
/// ```
///
/// # How this trait evolves
///
/// New operations arrive as methods with a default body, so a store written against
/// an earlier 0.x keeps compiling: the default either composes the required methods
/// (as [`SessionStore::save_from`] falls back to [`SessionStore::save`]) or refuses
/// with [`Error::Unsupported`] (as the user index does), which the layer reports and
/// the conformance suite expects of a store whose [`Capabilities`](crate::Capabilities)
/// leave it out. The required methods change only with a minor version of 0.x (a
/// major one from 1.0), named in the changelog.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and errors (`"redis"`, `"memory"`).
    fn name(&self) -> &'static str;

    /// What this store supports beyond the core operations.
    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    /// The record under `id`, or `None` when it is unknown or expired.
    async fn load(&self, id: &Id) -> Result<Option<Record>>;

    /// [`SessionStore::load`] shared: a store that keeps opened records (a near
    /// cache) hands out the one it holds instead of a copy. The default wraps `load`.
    async fn load_shared(&self, id: &Id) -> Result<Option<std::sync::Arc<Record>>> {
        Ok(self.load(id).await?.map(std::sync::Arc::new))
    }

    /// [`SessionStore::load_shared`] answered at once, when the store can answer
    /// without waiting: an in-process map, a near cache's hit. `None` when it would
    /// have to wait (a round trip, a lock held elsewhere); the layer then calls
    /// `load_shared`. It must not block, wait on I/O or disagree with `load_shared`.
    /// The default is `None`. The layer asks only a store whose
    /// [`SessionStore::reads_at_once`] says it may answer, and saves a future and an
    /// allocation a read for each answer.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> tether_core::Result<()> {
    /// use std::sync::Arc;
    /// use tether_core::{CachedStore, Expiry, Freshness, Id, NearCache, NearCacheConfig, Quiet, Record, SessionStore};
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
    /// let config = NearCacheConfig::default()
    ///     .with_freshness(Freshness::Pushed)
    ///     .with_echo_wait(std::time::Duration::ZERO);
    /// let (cache, mut feed) = NearCache::new(&config);
    /// let store = CachedStore::new(Tiny::default(), cache, None);
    /// struct NothingUnread;
    /// impl Quiet for NothingUnread {
    ///     fn quiet(&self) -> bool { true }
    /// }
    /// feed.set_quiet(Arc::new(NothingUnread));
    /// feed.live();
    /// let id = Id::generate()?;
    /// store.create(&id, &Record::new(time::OffsetDateTime::now_utc(), &Expiry::default())).await?;
    /// assert!(store.load_ready(&id).is_none()); // not cached yet: the store must be asked
    /// let record = store.load_shared(&id).await?; // asked, and kept
    /// assert_eq!(store.load_ready(&id).transpose()?, Some(record)); // a hit, at once
    /// # Ok(()) }
    /// ```
    fn load_ready(&self, id: &Id) -> Option<Result<Option<std::sync::Arc<Record>>>> {
        let _ = id;
        None
    }

    /// Whether [`SessionStore::load_ready`] may answer at all: `false` (the default)
    /// for a store that always waits, so the layer does not ask it (nor a wrapper
    /// work out what to ask it: [`HashedIds`](crate::HashedIds) would hash an id for
    /// nothing). A wrapper that forwards `load_ready` forwards this too.
    ///
    /// ```
    /// use tether_core::{CachedStore, Freshness, NearCache, NearCacheConfig, SessionStore};
    /// # #[derive(Debug, Default)] struct Tiny;
    /// # #[tether_core::async_trait] impl SessionStore for Tiny {
    /// #   fn name(&self) -> &'static str { "tiny" }
    /// #   async fn load(&self, _: &tether_core::Id) -> tether_core::Result<Option<tether_core::Record>> { Ok(None) }
    /// #   async fn create(&self, _: &tether_core::Id, _: &tether_core::Record) -> tether_core::Result<tether_core::Created> { unimplemented!() }
    /// #   async fn save(&self, _: &tether_core::Id, _: &tether_core::Changes) -> tether_core::Result<tether_core::Saved> { unimplemented!() }
    /// #   async fn touch(&self, _: &tether_core::Id, _: &tether_core::Touch) -> tether_core::Result<bool> { unimplemented!() }
    /// #   async fn delete(&self, _: &tether_core::Id) -> tether_core::Result<bool> { unimplemented!() }
    /// #   async fn cycle_id(&self, _: &tether_core::Id, _: &tether_core::Id, _: &tether_core::Changes) -> tether_core::Result<tether_core::Saved> { unimplemented!() }
    /// # }
    /// // A store behind the network always waits; a near cache with pushed reads in
    /// // front of it answers its hits at once, a fenced one never does.
    /// assert!(!Tiny.reads_at_once());
    /// let cached = |freshness| {
    ///     let (cache, _feed) = NearCache::new(&NearCacheConfig::default().with_freshness(freshness));
    ///     CachedStore::new(Tiny, cache, None)
    /// };
    /// assert!(cached(Freshness::Pushed).reads_at_once());
    /// assert!(!cached(Freshness::Fenced).reads_at_once());
    /// ```
    fn reads_at_once(&self) -> bool {
        false
    }

    /// Stores a new record under `id`, unless one exists: never overwrites.
    async fn create(&self, id: &Id, record: &Record) -> Result<Created>;

    /// Stores a new record like [`SessionStore::create`]; when the record is bound to
    /// a user and `cap` is given, also ends that user's oldest sessions beyond `cap`
    /// (this one stays): a login that starts a new session, in one store call.
    ///
    /// The default creates, then saves the same binding with the cap (two calls);
    /// stores override it to do both at once.
    async fn create_capped(&self, id: &Id, record: &Record, cap: Option<u32>) -> Result<Created> {
        let created = self.create(id, record).await?;
        if let (Created::Yes, Some(user), Some(cap)) = (created, &record.user, cap) {
            let mut bind = Changes::new(record.last_seen, record.idle_deadline);
            bind.user = Some(Some(user.clone()));
            bind.user_cap = Some(cap);
            self.save(id, &bind).await?;
        }
        Ok(created)
    }

    /// Merges `changes` onto the newest stored record atomically, or reports
    /// [`Saved::Gone`] without writing when the record does not exist.
    async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved>;

    /// [`SessionStore::save`] for a request that read the session first: `base` is
    /// the record its load returned. The result must be the same as `save`'s (the
    /// changes merged onto the newest stored record, never a record brought back);
    /// `base` only lets a store write cheaply when nothing changed the record since,
    /// as a conditional write of `base` with `changes` applied, falling back to the
    /// merge when the version moved. The default is `save`.
    async fn save_from(&self, id: &Id, base: &Record, changes: &Changes) -> Result<Saved> {
        let _ = base;
        self.save(id, changes).await
    }

    /// Refreshes the idle deadline; `false` when the record does not exist. A store
    /// whose `save_from` compares versions must move the version here too, so a save
    /// that read before the refresh does not write the older deadline back.
    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool>;

    /// Deletes the record; `false` when it did not exist.
    async fn delete(&self, id: &Id) -> Result<bool>;

    /// Atomically moves the record from `old` to `new`, merging `changes`; the old id
    /// stops working. [`Saved::Gone`] when `old` does not exist, and then nothing is
    /// left under `new` (the layer may start a new session under it).
    async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved>;

    /// The live sessions bound to `user`, oldest first.
    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>> {
        let _ = user;
        Err(self.unsupported("listing a user's sessions"))
    }

    /// Deletes every session bound to `user` ("log out everywhere"); returns how many.
    async fn delete_user_sessions(&self, user: &str) -> Result<u64> {
        let _ = user;
        Err(self.unsupported("deleting a user's sessions"))
    }

    /// Takes the per-session lock, waiting at most `options.wait`.
    async fn lock(&self, id: &Id, options: &LockOptions) -> Result<LockToken> {
        let _ = (id, options);
        Err(self.unsupported("session locks"))
    }

    /// Releases the lock if `token` still holds it.
    async fn unlock(&self, id: &Id, token: &LockToken) -> Result<()> {
        let _ = (id, token);
        Err(self.unsupported("session locks"))
    }

    /// Deletes every expired record now; returns how many. For stores whose expired
    /// records stay until something deletes them (the SQL stores, the file store, the
    /// memory store), which override it; the default does nothing, for stores that
    /// expire records by themselves (Redis' TTLs). Adapters use it where another
    /// session API asks for an expired-record deletion (tower-sessions'
    /// `ExpiredDeletion`); apps usually run the store's own background task instead
    /// (`spawn_cleanup`, `spawn_sweeper`).
    async fn sweep_once(&self) -> Result<u64> {
        Ok(0)
    }

    /// The error for an operation this store cannot support.
    fn unsupported(&self, operation: &'static str) -> Error {
        Error::Unsupported {
            store: self.name(),
            operation,
            why: "this store keeps no server-side state for it",
        }
    }
}
