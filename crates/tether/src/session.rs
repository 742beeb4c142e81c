//! The `Session` handle a handler works with.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use axum_core::extract::FromRequestParts;
use futures_util::lock::{Mutex, MutexGuard};
use http::StatusCode;
use http::request::Parts;
use tether_core::{Changes, ClientStore, Error, Expiry, Id, Record, SessionStore};
use time::OffsetDateTime;

use crate::backend::{Backend, Shared};
use crate::error::SessionError;
use crate::events::{self, SessionEvent};
use crate::grace;
use crate::lock::LockGuard;
use crate::observe::{self, Op};

/// What the request's cookies held, already checked for the backend: the candidates
/// for the session, in the order the browser sent them.
#[derive(Debug)]
pub(crate) enum Presented {
    None,
    /// Well-formed ids (possibly unknown to the store); nearly always one, so inline.
    Ids(smallvec::SmallVec<[Id; 2]>),
    /// Client-side backend: sealed values.
    Sealed(Vec<String>),
}

/// The session record as this request knows it.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// Not read yet.
    Pending,
    /// No live session: none was presented, or the store has none under the id.
    Missing,
    /// The live record (shared with a store's near cache, never written to).
    Found(Arc<Record>),
}

impl Loaded {
    pub(crate) fn record(&self) -> Option<&Record> {
        match self {
            Self::Found(record) => Some(record),
            Self::Pending | Self::Missing => None,
        }
    }
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
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) now: OffsetDateTime,
    /// [`UNTOUCHED`], [`TOUCHED`] or [`RESPONDED`].
    phase: AtomicU8,
    pub(crate) state: Mutex<State>,
}

/// The handler has not used the session (yet).
const UNTOUCHED: u8 = 0;
/// The handler used the session: the layer writes it after the handler.
const TOUCHED: u8 = 1;
/// The response is out (or was abandoned): the handle can change nothing any more.
const RESPONDED: u8 = 2;

#[derive(Debug)]
pub(crate) struct State {
    /// Candidates not yet tried (more than one, or a sealed value not yet opened).
    pub(crate) presented: Presented,
    /// The session's id at the store, once known (well-formed; may be unknown there).
    pub(crate) id: Option<Id>,
    pub(crate) loaded: Loaded,
    pub(crate) changes: Changes,
    /// The id `cycle_id` chose, applied after the handler.
    pub(crate) new_id: Option<Id>,
    /// The session at `id` is to be deleted.
    pub(crate) delete: bool,
    pub(crate) lock: Option<LockGuard>,
    /// The first store failure that leaves this request's session unknown; the layer
    /// answers with it.
    pub(crate) error: Option<Arc<Error>>,
    /// The lifetime [`Session::set_expiry`] gave the session in this request.
    pub(crate) expiry: Option<Expiry>,
    /// This request left a rotation-grace marker for its own id (before rotating it),
    /// so finding one says nothing about another request.
    pub(crate) own_marker: bool,
    /// Once the response is out: the id the session lives under at the store from
    /// then on (`None`: no server-side session), for [`crate::DetachedSession`].
    pub(crate) after: Option<Id>,
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>, presented: Presented) -> Self {
        let now = OffsetDateTime::now_utc();
        let (presented, id, loaded) = match presented {
            Presented::None => (Presented::None, None, Loaded::Missing),
            Presented::Ids(ids) if ids.len() == 1 => {
                (Presented::None, Some(ids[0]), Loaded::Pending)
            }
            other => (other, None, Loaded::Pending),
        };
        Self {
            inner: Arc::new(Inner {
                shared,
                now,
                phase: AtomicU8::new(UNTOUCHED),
                state: Mutex::new(State {
                    presented,
                    id,
                    loaded,
                    // Every write sets the idle deadline it sends before sending
                    // (`commit.rs`, `reissue.rs`); until then it is `now`, which
                    // would end the session at once rather than stretch it.
                    changes: Changes::new(now, now),
                    new_id: None,
                    delete: false,
                    lock: None,
                    error: None,
                    expiry: None,
                    own_marker: false,
                    after: None,
                }),
            }),
        }
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

    /// The session's id, without waiting: the new one if [`Session::cycle_id`] was
    /// called, `None` if the request brought no well-formed id and none was created
    /// yet. It is also `None` while it is not known without the store: when the request
    /// brought several session cookies and no call has found the live one yet, or
    /// while another session call of this request is running.
    ///
    /// The id is the credential: never log it or store it elsewhere. Its key at rest
    /// ([`Id::at_rest`]) names the session in logs without opening it.
    ///
    /// ```
    /// # async fn handler(session: tether::Session) {
    /// if let Some(id) = session.id() {
    ///     tracing::info!(session = %id.at_rest(), "request");
    /// }
    /// # }
    /// ```
    pub fn id(&self) -> Option<Id> {
        let mut state = self.inner.state.try_lock()?;
        if matches!(state.presented, Presented::Sealed(_)) {
            // A client-side value carries its id (if its store seals one) inside:
            // open it. Opening is local and synchronous.
            self.open_sealed(&mut state);
        }
        state.new_id.or(state.id.filter(|_| !state.delete))
    }

    /// Reports `event` to the layer's callback and as a `tracing` event.
    pub(crate) fn emit(&self, event: &SessionEvent) {
        let shared = &self.inner.shared;
        events::emit(shared.config.events.as_ref(), shared.backend.name(), event);
    }

    /// After a write of `changes` that went on under `id`: the login, if it bound a
    /// user.
    pub(crate) fn emit_bound(&self, id: Option<Id>, changes: &Changes) {
        if let Some(Some(user)) = &changes.user {
            self.emit(&SessionEvent::UserBound {
                id,
                user: user.clone(),
            });
        }
    }

    /// After the session left `old`: the rotation grace marker.
    pub(crate) async fn mark_rotated(&self, store: &Arc<dyn SessionStore>, old: &Id) {
        let grace = self.inner.shared.config.rotation_grace;
        grace::mark_rotated(store, self.inner.now, grace, old).await;
    }

    /// Whether `id` left for a new one within the rotation grace.
    pub(crate) async fn rotated_recently(&self, store: &Arc<dyn SessionStore>, id: &Id) -> bool {
        grace::rotated_recently(store, self.inner.shared.config.rotation_grace, id).await
    }

    /// Locks the state, marking the session as used and, in lock mode, taking the
    /// session's lock.
    pub(crate) async fn begin(&self) -> Result<MutexGuard<'_, State>, SessionError> {
        if self.inner.phase.compare_exchange(
            UNTOUCHED,
            TOUCHED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) == Err(RESPONDED)
        {
            return Err(SessionError::AfterResponse);
        }
        let mut state = self.inner.state.lock().await;
        if self.responded() {
            // The layer wrote the session while this call waited for it.
            return Err(SessionError::AfterResponse);
        }
        if let Some(error) = &state.error {
            return Err(SessionError::Store(error.clone()));
        }
        if self.inner.shared.config.lock.is_some() && state.lock.is_none() {
            self.take_lock(&mut state).await?;
        }
        Ok(state)
    }

    async fn take_lock(&self, state: &mut State) -> Result<(), SessionError> {
        let Some(options) = self.inner.shared.config.lock else {
            return Ok(());
        };
        let store = match self.inner.shared.backend.server("session locks") {
            Ok(store) => store.clone(),
            Err(e) => return Err(self.fail(state, e)),
        };
        let resolved_before = !matches!(state.presented, Presented::None);
        self.resolve(state).await?;
        let Some(id) = state.id else {
            return Ok(());
        };
        match observe::call(store.name(), Op::Lock, store.lock(&id, &options)).await {
            Ok(token) => state.lock = Some(LockGuard::new(store, id, token)),
            Err(e) => return Err(self.fail(state, e)),
        }
        if resolved_before {
            // The record was read to choose among several cookies, before the lock:
            // read it again under the lock.
            state.loaded = Loaded::Pending;
        }
        Ok(())
    }

    /// With several candidate cookies (or a sealed value), finds the session: the
    /// first candidate that is a live session, loading each in turn.
    pub(crate) async fn resolve(&self, state: &mut State) -> Result<(), SessionError> {
        match std::mem::replace(&mut state.presented, Presented::None) {
            Presented::None => {}
            sealed @ Presented::Sealed(_) => {
                state.presented = sealed;
                self.open_sealed(state);
            }
            Presented::Ids(ids) => {
                let store = self
                    .inner
                    .shared
                    .backend
                    .server("loading a session")
                    .map_err(|e| self.fail(state, e))?
                    .clone();
                state.loaded = Loaded::Missing;
                for id in ids {
                    match load_shared(&store, &id).await {
                        Ok(Some(record)) => {
                            self.unsealed(&record).map_err(|e| self.fail(state, e))?;
                            state.id = Some(id);
                            state.loaded = Loaded::Found(record);
                            break;
                        }
                        Ok(None) => {}
                        Err(e) => return Err(self.fail(state, e)),
                    }
                }
            }
        }
        Ok(())
    }

    /// Opens the presented sealed values (a client-side store): the first that opens
    /// is the session, with the id sealed in it if the store seals one.
    fn open_sealed(&self, state: &mut State) {
        let Presented::Sealed(values) = std::mem::replace(&mut state.presented, Presented::None)
        else {
            return;
        };
        if let Backend::Client(store) = &self.inner.shared.backend {
            let (id, loaded) = self.open(store.as_ref(), &values);
            state.id = id;
            state.loaded = loaded;
        }
    }

    /// The first value that opens, with the id sealed in it (if the store seals one).
    fn open(&self, store: &dyn ClientStore, values: &[String]) -> (Option<Id>, Loaded) {
        let name = self.inner.shared.config.name();
        values
            .iter()
            .find_map(|value| store.open_with_id(value, name, self.inner.now))
            .map_or((None, Loaded::Missing), |(id, record)| {
                (id, Loaded::Found(Arc::new(record)))
            })
    }

    pub(crate) async fn load<'s>(
        &self,
        state: &'s mut State,
    ) -> Result<Option<&'s Record>, SessionError> {
        self.resolve(state).await?;
        if matches!(state.loaded, Loaded::Pending) {
            let (Backend::Server(store), Some(id)) = (&self.inner.shared.backend, state.id) else {
                state.loaded = Loaded::Missing;
                return Ok(None);
            };
            match load_shared(store, &id).await {
                Ok(Some(record)) => {
                    self.unsealed(&record).map_err(|e| self.fail(state, e))?;
                    state.loaded = Loaded::Found(record);
                }
                Ok(None) => state.loaded = Loaded::Missing,
                Err(e) => return Err(self.fail(state, e)),
            }
        }
        Ok(state.loaded.record())
    }

    /// Refuses sealed session data read by a layer that has no data keys: the app
    /// forgot them, and handing the ciphertexts to handlers as values would be wrong.
    pub(crate) fn unsealed(&self, record: &Record) -> Result<(), Error> {
        if !self.inner.shared.config.sealed_data
            && record.data.values().any(crate::sealed::is_sealed)
        {
            return Err(Error::Corrupt(
                "the session's data is sealed at rest and this layer has no data keys: give it the keys that sealed it (SessionLayer::with_sealed_data)".into(),
            ));
        }
        Ok(())
    }

    /// Records a store error. The layer's rule: an error that leaves this request's
    /// session unknown (the store was unavailable, a record was unreadable, a lock
    /// timed out) replaces the handler's response; a refusal that changed nothing
    /// ([`Error::Unsupported`]) is the handler's to handle and does not.
    pub(crate) fn fail(&self, state: &mut State, error: Error) -> SessionError {
        let error = Arc::new(error);
        if matches!(*error, Error::Unsupported { .. }) {
            tracing::debug!(store = self.inner.shared.backend.name(), error = %error, "session operation refused");
        } else {
            tracing::error!(store = self.inner.shared.backend.name(), error = %error, "session store failed");
            state.error.get_or_insert_with(|| error.clone());
        }
        SessionError::Store(error)
    }

    /// Closes a session the handler never used; `false` when it was used (the layer
    /// must write it, and [`Session::close`] after).
    pub(crate) fn close_untouched(&self) -> bool {
        self.inner
            .phase
            .compare_exchange(UNTOUCHED, RESPONDED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Marks the session as used, so the layer settles it after the handler (for a
    /// handle detached from a request that uses it only after the response).
    pub(crate) fn mark_used(&self) {
        let _ = self.inner.phase.compare_exchange(
            UNTOUCHED,
            TOUCHED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Marks the response as out: every later call through this handle (or a clone
    /// kept by a task) fails with [`SessionError::AfterResponse`] instead of changing
    /// what nothing would save. Called with the state locked after the write, or when
    /// the request is abandoned.
    pub(crate) fn close(&self) {
        self.inner.phase.store(RESPONDED, Ordering::Release);
    }

    /// Whether the response is out.
    pub(crate) fn responded(&self) -> bool {
        self.inner.phase.load(Ordering::Acquire) == RESPONDED
    }
}

/// The live record at `id`: answered at once where the store can
/// ([`SessionStore::load_ready`]), else read.
async fn load_shared(store: &Arc<dyn SessionStore>, id: &Id) -> Result<Option<Arc<Record>>, Error> {
    if store.reads_at_once()
        && let Some(answer) = observe::ready(store.name(), Op::Load, || store.load_ready(id))
    {
        return answer;
    }
    observe::call(store.name(), Op::Load, store.load_shared(id)).await
}

/// The rejection when the `Session` extractor runs without [`crate::SessionLayer`].
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the Session extractor needs tether::SessionLayer on this route")]
pub struct MissingSessionLayer;

impl axum_core::response::IntoResponse for MissingSessionLayer {
    fn into_response(self) -> axum_core::response::Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error: the Session extractor needs tether::SessionLayer on this route.\n",
        )
            .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or(MissingSessionLayer)
    }
}

/// `Option<Session>`: the session where the route has a [`SessionLayer`](crate::SessionLayer),
/// `None` where it has none, for handlers and middleware shared by routes with and
/// without sessions (a health check, a shared router).
///
/// ```
/// use axum::{Router, routing::get};
/// use tether::Session;
///
/// async fn greet(session: Option<Session>) -> String {
///     match session {
///         Some(session) => session.user().await.ok().flatten().unwrap_or_else(|| "guest".into()),
///         None => "no sessions here".into(),
///     }
/// }
/// let app: Router = Router::new()
///     .route("/healthz", get(greet))
///     .merge(Router::new().route("/", get(greet)).layer(tether::SessionLayer::new(tether::MemoryStore::new())));
/// ```
impl<S: Send + Sync> axum_core::extract::OptionalFromRequestParts<S> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}
