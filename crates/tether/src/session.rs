//! The `Session` handle a handler works with, and what the layer does with it afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tether_core::{
    Changes, ClientStore, Created, Error, Id, LockToken, Record, Saved, SessionInfo, SessionStore,
    Touch,
};
use time::OffsetDateTime;
use tokio::sync::{Mutex, MutexGuard};
use tracing::Instrument as _;

use crate::config::Config;

/// What one layer instance shares with every request.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) backend: Backend,
    pub(crate) config: Config,
}

/// Where sessions live: at a store keyed by id, or sealed in the cookie itself.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Server(Arc<dyn SessionStore>),
    Client(Arc<dyn ClientStore>),
}

impl Backend {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Server(s) => s.name(),
            Self::Client(c) => c.name(),
        }
    }

    fn server(&self, operation: &'static str) -> Result<&Arc<dyn SessionStore>, Error> {
        match self {
            Self::Server(store) => Ok(store),
            Self::Client(store) => Err(Error::Unsupported {
                store: store.name(),
                operation,
                why: "the session lives in the client's cookie; there is no server state for it",
            }),
        }
    }
}

/// What the request's cookie held, already validated for the backend.
#[derive(Debug)]
pub(crate) enum Presented {
    None,
    Id(Id),
    Sealed(String),
}

/// The current request's session, taken as an axum extractor.
///
/// Nothing is loaded until a method needs the data, and nothing is written unless
/// something changed; after the handler, the layer saves only the changed keys.
///
/// ```
/// use axum::{Router, routing::post};
/// use tether::{MemoryStore, Session, SessionError, SessionLayer};
///
/// async fn count(session: Session) -> Result<String, SessionError> {
///     let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
///     session.insert("n", n).await?;
///     Ok(n.to_string())
/// }
///
/// let app: Router = Router::new()
///     .route("/count", post(count))
///     .layer(SessionLayer::new(MemoryStore::new()));
/// ```
#[derive(Debug, Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    now: OffsetDateTime,
    touched: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The id the request's cookie named (well-formed; may be unknown to the store).
    id: Option<Id>,
    /// Client-side backend: the sealed value the request's cookie held.
    sealed: Option<String>,
    /// `None` until loaded; `Some(None)` when the store had no live record.
    #[allow(clippy::option_option)]
    loaded: Option<Option<Record>>,
    changes: Changes,
    /// The id `cycle_id` chose, applied after the handler.
    new_id: Option<Id>,
    /// The session at `id` is to be deleted.
    delete: bool,
    lock: Option<LockToken>,
    /// The first store failure of this request; the layer answers with it.
    error: Option<Arc<Error>>,
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The store failed; the layer answers the request with its error response.
    #[error(transparent)]
    Store(Arc<Error>),
    /// A value could not be serialized to JSON.
    #[error("session value for {key:?} could not be serialized: {source}")]
    Serialize {
        /// The key.
        key: String,
        /// serde's error.
        source: serde_json::Error,
    },
    /// A stored value is not of the requested type.
    #[error("session value for {key:?} is not of the requested type: {source}")]
    Deserialize {
        /// The key.
        key: String,
        /// serde's error.
        source: serde_json::Error,
    },
}

impl IntoResponse for SessionError {
    /// The layer replaces this response with its configured error response when the
    /// store failed; a type mismatch is a 500.
    fn into_response(self) -> Response {
        match &self {
            Self::Store(e) => {
                let (parts, body) = crate::default_error_response(e).into_parts();
                Response::from_parts(parts, body.into())
            }
            Self::Serialize { .. } | Self::Deserialize { .. } => {
                tracing::error!(error = %self, "session value error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error: a session value has an unexpected type.\n",
                )
                    .into_response()
            }
        }
    }
}

/// What the layer must do with the cookie after the handler.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CookieAction {
    Keep,
    Set {
        value: String,
        max_age: Option<time::Duration>,
    },
    Remove,
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>, presented: Presented) -> Self {
        let (id, sealed) = match presented {
            Presented::None => (None, None),
            Presented::Id(id) => (Some(id), None),
            Presented::Sealed(value) => (None, Some(value)),
        };
        let now = OffsetDateTime::now_utc();
        let idle_deadline = shared.config.expiry.idle_deadline(now, None);
        Self {
            inner: Arc::new(Inner {
                shared,
                now,
                touched: AtomicBool::new(false),
                state: Mutex::new(State {
                    loaded: if id.is_none() && sealed.is_none() {
                        Some(None)
                    } else {
                        None
                    },
                    id,
                    sealed,
                    changes: Changes::new(now, idle_deadline),
                    new_id: None,
                    delete: false,
                    lock: None,
                    error: None,
                }),
            }),
        }
    }

    /// The value under `key`, or `None`.
    ///
    /// ```
    /// # async fn handler(session: tether::Session) -> Result<(), tether::SessionError> {
    /// let theme: Option<String> = session.get("theme").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let mut state = self.begin().await?;
        let value = match state.changes.lookup(key) {
            Some(v) => v.cloned(),
            None => self
                .load(&mut state)
                .await?
                .and_then(|r| r.data.get(key).cloned()),
        };
        value
            .map(|v| {
                serde_json::from_value(v).map_err(|source| SessionError::Deserialize {
                    key: key.to_owned(),
                    source,
                })
            })
            .transpose()
    }

    /// Sets `key` to `value`. Does not load the session: a write-only request costs
    /// one store call.
    ///
    /// ```
    /// # async fn handler(session: tether::Session) -> Result<(), tether::SessionError> {
    /// session.insert("theme", "dark").await?;
    /// # Ok(()) }
    /// ```
    pub async fn insert(&self, key: &str, value: impl Serialize) -> Result<(), SessionError> {
        let value = serde_json::to_value(value).map_err(|source| SessionError::Serialize {
            key: key.to_owned(),
            source,
        })?;
        let mut state = self.begin().await?;
        state.changes.set(key, value);
        Ok(())
    }

    /// Removes `key`, returning what it held.
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let old = self.get(key).await?;
        self.begin().await?.changes.remove(key);
        Ok(old)
    }

    /// Removes every key (the session and its user binding stay).
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.begin().await?.changes.clear();
        Ok(())
    }

    /// Every key and value, with this request's changes applied.
    pub async fn data(&self) -> Result<Map<String, Value>, SessionError> {
        let mut state = self.begin().await?;
        let mut data = if state.changes.clear {
            Map::new()
        } else {
            self.load(&mut state)
                .await?
                .map(|r| r.data.clone())
                .unwrap_or_default()
        };
        for (key, value) in &state.changes.updates {
            match value {
                Some(v) => data.insert(key.clone(), v.clone()),
                None => data.remove(key),
            };
        }
        Ok(data)
    }

    /// Gives the session a new id after the handler, keeping its data; the old id
    /// stops working. Call it on login and on any change of privilege, so an id an
    /// attacker planted before login is worthless after it.
    ///
    /// ```
    /// # async fn login(session: tether::Session) -> Result<(), tether::SessionError> {
    /// session.cycle_id().await?;
    /// session.set_user("alice").await?;
    /// # Ok(()) }
    /// ```
    pub async fn cycle_id(&self) -> Result<(), SessionError> {
        let mut state = self.begin().await?;
        if state.new_id.is_none() {
            state.new_id = Some(Id::generate().map_err(|e| self.fail(&mut state, e))?);
        }
        Ok(())
    }

    /// Binds the session to a user, for [`Session::user_sessions`] and
    /// [`Session::logout_everywhere`].
    pub async fn set_user(&self, user: impl Into<String>) -> Result<(), SessionError> {
        let mut state = self.begin().await?;
        state.changes.user = Some(Some(user.into()));
        state.changes.user_cap = self.inner.shared.config.max_sessions_per_user;
        Ok(())
    }

    /// The user the session is bound to.
    pub async fn user(&self) -> Result<Option<String>, SessionError> {
        let mut state = self.begin().await?;
        if let Some(user) = &state.changes.user {
            return Ok(user.clone());
        }
        Ok(self.load(&mut state).await?.and_then(|r| r.user.clone()))
    }

    /// Ends the session: it is deleted at the store after the handler and the cookie
    /// is cleared. Anything inserted afterwards starts a new session.
    pub async fn logout(&self) -> Result<(), SessionError> {
        let mut state = self.begin().await?;
        state.delete = state.id.is_some() || state.sealed.is_some();
        state.loaded = Some(None);
        state.new_id = None;
        let now = self.inner.now;
        let idle = state.changes.idle_deadline;
        state.changes = Changes::new(now, idle);
        Ok(())
    }

    /// The live sessions of the user this session is bound to, oldest first.
    pub async fn user_sessions(&self) -> Result<Vec<SessionInfo>, SessionError> {
        let Some(user) = self.user().await? else {
            return Ok(Vec::new());
        };
        let mut state = self.begin().await?;
        let listed = match self
            .inner
            .shared
            .backend
            .server("listing a user's sessions")
        {
            Ok(store) => store.user_sessions(&user).await,
            Err(e) => Err(e),
        };
        listed.map_err(|e| self.fail(&mut state, e))
    }

    /// Ends every session of the user this session is bound to, this one included
    /// ("log out everywhere"); returns how many ended.
    pub async fn logout_everywhere(&self) -> Result<u64, SessionError> {
        let Some(user) = self.user().await? else {
            return Ok(0);
        };
        let ended = {
            let mut state = self.begin().await?;
            let ended = match self.inner.shared.backend.server("ending a user's sessions") {
                Ok(store) => store.delete_user_sessions(&user).await,
                Err(e) => Err(e),
            };
            ended.map_err(|e| self.fail(&mut state, e))?
        };
        self.logout().await?;
        Ok(ended)
    }

    /// The session's id: the new one if [`Session::cycle_id`] was called, `None` if the
    /// request brought no well-formed id and none was created yet.
    pub async fn id(&self) -> Option<Id> {
        let state = self.inner.state.lock().await;
        state.new_id.or(state.id.filter(|_| !state.delete))
    }

    /// Locks the state, marking the session as used and taking the per-session lock
    /// in lock mode.
    async fn begin(&self) -> Result<MutexGuard<'_, State>, SessionError> {
        self.inner.touched.store(true, Ordering::Relaxed);
        let mut state = self.inner.state.lock().await;
        if let Some(error) = &state.error {
            return Err(SessionError::Store(error.clone()));
        }
        if let (Some(options), None) = (&self.inner.shared.config.lock, &state.lock) {
            let store = match self.inner.shared.backend.server("session locks") {
                Ok(store) => store,
                Err(e) => return Err(self.fail(&mut state, e)),
            };
            let Some(id) = state.id else {
                return Ok(state);
            };
            match store
                .lock(&id, options)
                .instrument(tracing::debug_span!("session.lock", store = store.name()))
                .await
            {
                Ok(token) => state.lock = Some(token),
                Err(e) => return Err(self.fail(&mut state, e)),
            }
        }
        Ok(state)
    }

    async fn load<'s>(&self, state: &'s mut State) -> Result<Option<&'s Record>, SessionError> {
        if state.loaded.is_none() {
            match &self.inner.shared.backend {
                Backend::Client(store) => self.open_client(store.as_ref(), state),
                Backend::Server(store) => {
                    let id = state
                        .id
                        .expect("an unloaded session has an id or a sealed value");
                    match store
                        .load(&id)
                        .instrument(tracing::debug_span!("session.load", store = store.name()))
                        .await
                    {
                        Ok(record) => state.loaded = Some(record),
                        Err(e) => return Err(self.fail(state, e)),
                    }
                }
            }
        }
        Ok(state.loaded.as_ref().and_then(Option::as_ref))
    }

    fn fail(&self, state: &mut State, error: Error) -> SessionError {
        let error = Arc::new(error);
        tracing::error!(store = self.inner.shared.backend.name(), error = %error, "session store failed");
        state.error.get_or_insert_with(|| error.clone());
        SessionError::Store(error)
    }

    /// Whether the handler used the session at all.
    pub(crate) fn was_touched(&self) -> bool {
        self.inner.touched.load(Ordering::Relaxed)
    }

    /// Writes what the request changed; `Err` when the store failed during the request.
    pub(crate) async fn finish(&self, server_error: bool) -> Result<CookieAction, Arc<Error>> {
        let mut state = self.inner.state.lock().await;
        let outcome = if let Some(error) = state.error.clone() {
            Err(error)
        } else if server_error {
            Ok(CookieAction::Keep)
        } else {
            match &self.inner.shared.backend {
                Backend::Server(store) => self.commit(store, &mut state).await,
                Backend::Client(store) => self.commit_client(store.as_ref(), &mut state),
            }
            .map_err(Arc::new)
        };
        if let (Some(token), Some(id), Backend::Server(store)) =
            (state.lock.take(), state.id, &self.inner.shared.backend)
        {
            if let Err(e) = store.unlock(&id, &token).await {
                // The lock expires by its TTL; the request itself succeeded.
                tracing::warn!(store = store.name(), error = %e, "could not release session lock");
            }
        }
        if let Err(e) = &outcome {
            tracing::error!(store = self.inner.shared.backend.name(), error = %e, "session not saved");
        }
        outcome
    }

    /// Client-side loading: opening the cookie's sealed value, no I/O.
    fn open_client(&self, store: &dyn ClientStore, state: &mut State) {
        if state.loaded.is_none() {
            let opened = state
                .sealed
                .as_deref()
                .and_then(|value| store.open(value, self.inner.now));
            state.loaded = Some(opened);
        }
    }

    /// Client-side: the new record is sealed into the cookie itself.
    fn commit_client(
        &self,
        store: &dyn ClientStore,
        state: &mut State,
    ) -> Result<CookieAction, Error> {
        let config = &self.inner.shared.config;
        let now = self.inner.now;
        let base = if state.delete {
            None
        } else {
            // The request is over: the record moves into the new cookie.
            self.open_client(store, state);
            state.loaded.take().flatten()
        };
        let changed = !state.changes.is_empty() || (state.new_id.is_some() && base.is_some());
        let due = base.as_ref().is_some_and(|r| self.refresh_due(r));
        if !changed && !due {
            return Ok(if state.delete {
                CookieAction::Remove
            } else {
                CookieAction::Keep
            });
        }
        let mut record = base.unwrap_or_else(|| Record::new(now, &config.expiry));
        state.changes.idle_deadline = config.expiry.idle_deadline(now, record.absolute_deadline);
        record.apply(&state.changes);
        let value = store.seal(&record, now)?;
        Ok(self.set_cookie(value, record.idle_deadline))
    }

    async fn commit(
        &self,
        store: &Arc<dyn SessionStore>,
        state: &mut State,
    ) -> Result<CookieAction, Error> {
        let config = &self.inner.shared.config;
        let now = self.inner.now;
        let mut action = CookieAction::Keep;

        if state.delete
            && let Some(id) = state.id.take()
        {
            store
                .delete(&id)
                .instrument(tracing::debug_span!("session.delete", store = store.name()))
                .await?;
            action = CookieAction::Remove;
        }

        let changed = !state.changes.is_empty();
        if let Some(id) = state.id {
            let absolute = state
                .loaded
                .as_ref()
                .and_then(|r| r.as_ref())
                .and_then(|r| r.absolute_deadline);
            state.changes.idle_deadline = config.expiry.idle_deadline(now, absolute);
            if let Some(new_id) = state.new_id {
                let saved = store
                    .cycle_id(&id, &new_id, &state.changes)
                    .instrument(tracing::debug_span!(
                        "session.cycle_id",
                        store = store.name()
                    ))
                    .await?;
                if let Saved::Version(_) = saved {
                    return Ok(self.set_cookie(new_id.to_string(), state.changes.idle_deadline));
                }
            } else if changed {
                let saved = store
                    .save(&id, &state.changes)
                    .instrument(tracing::debug_span!("session.save", store = store.name()))
                    .await?;
                if let Saved::Version(_) = saved {
                    let due = state
                        .loaded
                        .as_ref()
                        .and_then(|r| r.as_ref())
                        .is_none_or(|r| self.refresh_due(r));
                    return Ok(if due {
                        self.set_cookie(id.to_string(), state.changes.idle_deadline)
                    } else {
                        CookieAction::Keep
                    });
                }
            } else {
                if let Some(Some(record)) = &state.loaded
                    && self.refresh_due(record)
                {
                    let touch = Touch {
                        last_seen: now,
                        idle_deadline: state.changes.idle_deadline,
                    };
                    let touched = store
                        .touch(&id, &touch)
                        .instrument(tracing::debug_span!("session.touch", store = store.name()))
                        .await?;
                    if touched {
                        return Ok(self.set_cookie(id.to_string(), touch.idle_deadline));
                    }
                }
                return Ok(action);
            }
            // The id is unknown or gone: never adopt it; what changed starts a new session.
        }

        if !changed {
            return Ok(action);
        }
        let mut record = Record::new(now, &config.expiry);
        state.changes.idle_deadline = record.idle_deadline;
        record.apply(&state.changes);
        let id = self.create(store, &record).await?;
        if let (Some(user), Some(cap)) = (&record.user, state.changes.user_cap) {
            // A new record has no previous version to merge onto, so the cap is applied
            // by a save of the same binding.
            let mut bind = Changes::new(now, record.idle_deadline);
            bind.user = Some(Some(user.clone()));
            bind.user_cap = Some(cap);
            store.save(&id, &bind).await?;
        }
        Ok(self.set_cookie(id.to_string(), record.idle_deadline))
    }

    async fn create(&self, store: &Arc<dyn SessionStore>, record: &Record) -> Result<Id, Error> {
        for _ in 0..3 {
            let id = Id::generate()?;
            let created = store
                .create(&id, record)
                .instrument(tracing::debug_span!("session.create", store = store.name()))
                .await?;
            if created == Created::Yes {
                return Ok(id);
            }
        }
        Err(Error::IdCollision)
    }

    /// Whether refreshing now would extend the idle deadline by more than the share of
    /// the idle timeout the configuration allows to lapse.
    fn refresh_due(&self, record: &Record) -> bool {
        let config = &self.inner.shared.config;
        let new_deadline = config
            .expiry
            .idle_deadline(self.inner.now, record.absolute_deadline);
        let gain = (new_deadline - record.idle_deadline).as_seconds_f64();
        let threshold = config.expiry.idle.as_secs_f64() * (1.0 - config.refresh_share);
        gain > threshold
    }

    fn set_cookie(&self, value: String, idle_deadline: OffsetDateTime) -> CookieAction {
        let max_age = self
            .inner
            .shared
            .config
            .persistent
            .then(|| idle_deadline - self.inner.now);
        CookieAction::Set { value, max_age }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error: the Session extractor needs tether::SessionLayer on this route.\n",
        ))
    }
}
