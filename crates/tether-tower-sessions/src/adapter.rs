//! The adapter: any tether store, seen as a tower-sessions store.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use tether_core::{Changes, Created, Error, Expiry, Id, Record, Result, Saved, SessionStore};
use time::OffsetDateTime;

use crate::UserOf;
use crate::convert::{from_map, from_tether, to_map, to_tether};

/// How many fresh ids a create tries before it gives up: a taken 128-bit random id
/// means a broken random source, not bad luck.
const CREATE_ATTEMPTS: usize = 4;

/// A tether store as a tower-sessions `SessionStore` (0.14 and 0.15, by feature).
///
/// ```
/// # #[cfg(feature = "v0_14")] {
/// # use tower_sessions_014 as tower_sessions;
/// use tether::SessionStore as _;
/// use tether_tower_sessions::{TowerSessions, UserOf};
/// use tower_sessions::{Expiry, SessionManagerLayer};
///
/// let store = TowerSessions::new(tether::MemoryStore::new())
///     .with_user(UserOf::axum_login()) // the default
///     .with_user_cap(5); // a sixth login ends the user's oldest session
/// let layer = SessionManagerLayer::new(store.clone())
///     .with_expiry(Expiry::OnInactivity(time::Duration::hours(8)));
/// // Log out everywhere, from a handler that holds `store`:
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let ended = store.store().delete_user_sessions("42").await?;
/// # assert_eq!(ended, 0);
/// # Ok::<(), tether::Error>(()) }).unwrap();
/// # }
/// ```
pub struct TowerSessions<S: ?Sized> {
    store: Arc<S>,
    user: UserOf,
    cap: Option<u32>,
}

impl<S: ?Sized> Clone for TowerSessions<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            user: self.user.clone(),
            cap: self.cap,
        }
    }
}

impl<S: fmt::Debug + ?Sized> fmt::Debug for TowerSessions<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TowerSessions")
            .field("store", &self.store)
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl<S: SessionStore> TowerSessions<S> {
    /// The adapter over `store`, binding axum-login's user.
    pub fn new(store: S) -> Self {
        Self::from_arc(Arc::new(store))
    }
}

impl<S: SessionStore + ?Sized> TowerSessions<S> {
    /// The adapter over a store the app also uses elsewhere, or one chosen at run time
    /// (`Arc<dyn SessionStore>`).
    pub fn from_arc(store: Arc<S>) -> Self {
        Self {
            store,
            user: UserOf::default(),
            cap: None,
        }
    }

    /// How to find the user a session belongs to (default: axum-login's `user_id`).
    #[must_use]
    pub fn with_user(mut self, user: UserOf) -> Self {
        self.user = user;
        self
    }

    /// Keeps at most `cap` sessions per user: a new session bound to a user (axum-login's
    /// login cycles the id, which creates one) ends that user's oldest others.
    #[must_use]
    pub fn with_user_cap(mut self, cap: u32) -> Self {
        self.cap = Some(cap);
        self
    }

    /// The tether store, for what tower-sessions has no word for: `user_sessions`,
    /// `delete_user_sessions` ("log out everywhere").
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The key the session with tower-sessions' `id` is kept under: a hash of the id
    /// ([`Id::at_rest`]), as the tether layer does, unless the store keeps sessions in
    /// this process.
    fn key(&self, id: &Id) -> Id {
        self.store.capabilities().key(id)
    }

    /// The record's data and expiry, or `None` when unknown or expired.
    pub(crate) async fn load_parts(
        &self,
        id: i128,
    ) -> Result<Option<(HashMap<String, Value>, OffsetDateTime)>> {
        let record = self.store.load(&self.key(&to_tether(id))).await?;
        Ok(record.map(|r| {
            let expires = r.expires_at();
            (from_map(r.data), expires)
        }))
    }

    /// A new record created now, expiring at `expires`, bound to its data's user.
    fn record(&self, data: &HashMap<String, Value>, expires: OffsetDateTime) -> Record {
        let now = OffsetDateTime::now_utc();
        let mut record = Record::new(now, &Expiry::new(std::time::Duration::ZERO));
        record.data = to_map(data);
        record.idle_deadline = expires;
        record.user = self.user.of(&record.data);
        record
    }

    /// Stores a new record under `id`, or under a fresh id written back to `id` when
    /// that one is taken: an existing session is never overwritten.
    pub(crate) async fn create_parts(
        &self,
        id: &mut i128,
        data: &HashMap<String, Value>,
        expires: OffsetDateTime,
    ) -> Result<()> {
        let record = self.record(data, expires);
        let mut candidate = to_tether(*id);
        for _ in 0..CREATE_ATTEMPTS {
            match self
                .store
                .create_capped(&self.key(&candidate), &record, self.cap)
                .await?
            {
                Created::Yes => {
                    *id = from_tether(&candidate);
                    return Ok(());
                }
                Created::IdTaken => candidate = Id::generate()?,
            }
        }
        Err(Error::Corrupt(format!(
            "{CREATE_ATTEMPTS} session ids in a row were taken: is the random source broken?"
        )))
    }

    /// Stores a record under exactly `id` (an import keeps ids), never over an
    /// existing one.
    pub(crate) async fn import_parts(
        &self,
        id: i128,
        data: &HashMap<String, Value>,
        expires: OffsetDateTime,
    ) -> Result<Created> {
        let record = self.record(data, expires);
        self.store.create(&self.key(&to_tether(id)), &record).await
    }

    /// Replaces the record's data and expiry; a record deleted meanwhile stays deleted.
    pub(crate) async fn save_parts(
        &self,
        id: i128,
        data: &HashMap<String, Value>,
        expires: OffsetDateTime,
    ) -> Result<()> {
        let data = to_map(data);
        let mut changes = Changes::new(OffsetDateTime::now_utc(), expires);
        changes.clear = true;
        changes.user = Some(self.user.of(&data));
        changes.updates = data.into_iter().map(|(k, v)| (k, Some(v))).collect();
        if self.store.save(&self.key(&to_tether(id)), &changes).await? == Saved::Gone {
            tracing::debug!(
                store = self.store.name(),
                "a save of a session that ended meanwhile was dropped"
            );
        }
        Ok(())
    }

    /// Deletes the record, if it exists.
    pub(crate) async fn delete_id(&self, id: i128) -> Result<()> {
        self.store.delete(&self.key(&to_tether(id))).await.map(drop)
    }
}
