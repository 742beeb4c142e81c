//! A session handle for work after the response: a WebSocket loop, a spawned task.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tether_core::{Changes, Id, Saved};
use time::OffsetDateTime;

use crate::error::SessionError;
use crate::lock::LockGuard;
use crate::observe::{self, Op};
use crate::session::Session;

/// The session, for work that goes on after the response: a WebSocket loop, a task
/// spawned by the handler. Take it with [`Session::detach`].
///
/// Until the response is out it is the request's session. After, each call is one
/// store operation of its own on the session as the response left it (under its new
/// id if the request rotated it): a read loads the newest record, a write saves just
/// that key at once, merged with whatever other requests changed. In lock mode each
/// write takes the session's lock and releases it before returning; no lock is held
/// between calls. A write to a session that ended meanwhile (a logout, an expiry)
/// fails with [`SessionError::Ended`], as does any write when the session lives in
/// the client (a cookie cannot be set after the response).
///
/// A plain [`Session`] kept past the response fails every call with
/// [`SessionError::AfterResponse`] instead of pretending to save.
///
/// ```
/// use axum::{Router, extract::ws::{WebSocket, WebSocketUpgrade}, response::Response, routing::get};
/// use tether::{DetachedSession, Session};
///
/// async fn chat(ws: WebSocketUpgrade, session: Session) -> Response {
///     let session = session.detach();
///     ws.on_upgrade(move |socket| talk(socket, session))
/// }
///
/// async fn talk(mut socket: WebSocket, session: DetachedSession) {
///     while let Some(Ok(message)) = socket.recv().await {
///         if let Ok(text) = message.to_text() {
///             // Saved at once: the next page load sees it.
///             let _ = session.insert("last_message", text).await;
///         }
///     }
/// }
///
/// let app: Router = Router::new()
///     .route("/chat", get(chat))
///     .layer(tether::SessionLayer::new(tether::MemoryStore::new()));
/// ```
#[derive(Debug, Clone)]
pub struct DetachedSession {
    session: Session,
}

impl Session {
    /// This session, for work after the response ([`DetachedSession`]).
    pub fn detach(&self) -> DetachedSession {
        // The layer then settles which id the session lives under after the response.
        self.mark_used();
        DetachedSession {
            session: self.clone(),
        }
    }
}

impl DetachedSession {
    /// The value under `key`: in the request, as [`Session::get`]; after it, read from
    /// the store now.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        if !self.session.responded() {
            // The response may go out while this call waits: then, as after it.
            match self.session.get(key).await {
                Err(SessionError::AfterResponse) => {}
                done => return done,
            }
        }
        let Some((store, id)) = self.target().await else {
            return Ok(None);
        };
        let store_error = |e| SessionError::Store(std::sync::Arc::new(e));
        let record = observe::call(store.name(), Op::Load, store.load(&id))
            .await
            .map_err(store_error)?;
        if let Some(record) = &record {
            self.session.unsealed(record).map_err(store_error)?;
        }
        record
            .and_then(|r| r.data.get(key).cloned())
            .map(|v| {
                serde_json::from_value(v).map_err(|source| SessionError::Deserialize {
                    key: key.to_owned(),
                    source,
                })
            })
            .transpose()
    }

    /// Stores `value` under `key`: in the request, as [`Session::insert`]; after it,
    /// saved at the store at once.
    pub async fn insert(&self, key: &str, value: impl Serialize) -> Result<(), SessionError> {
        let value = serde_json::to_value(value).map_err(|source| SessionError::Serialize {
            key: key.to_owned(),
            source,
        })?;
        if !self.session.responded() {
            // The response may go out while this call waits: then, as after it.
            match self.session.insert_value(key, value.clone()).await {
                Err(SessionError::AfterResponse) => {}
                done => return done,
            }
        }
        self.write(key, Some(value)).await
    }

    /// Removes `key`: in the request, as [`Session::remove_value`]; after it, at the
    /// store at once.
    pub async fn remove(&self, key: &str) -> Result<(), SessionError> {
        if !self.session.responded() {
            // The response may go out while this call waits: then, as after it.
            match self.session.remove_value(key).await {
                Err(SessionError::AfterResponse) => {}
                done => return done.map(drop),
            }
        }
        self.write(key, None).await
    }

    /// The store and the id the session lives under since the response, if any.
    async fn target(&self) -> Option<(std::sync::Arc<dyn tether_core::SessionStore>, Id)> {
        let id = self.session.inner.state.lock().await.after?;
        let store = self.session.inner.shared.backend.server("").ok()?.clone();
        Some((store, id))
    }

    /// One key's change, saved now (under the session's lock in lock mode).
    async fn write(&self, key: &str, value: Option<Value>) -> Result<(), SessionError> {
        let Some((store, id)) = self.target().await else {
            return Err(SessionError::Ended);
        };
        let store_error = |e| SessionError::Store(std::sync::Arc::new(e));
        let config = &self.session.inner.shared.config;
        let now = OffsetDateTime::now_utc();
        let mut changes = Changes::new(now, config.expiry.idle_deadline(now, None));
        changes.updates.insert(key.to_owned(), value);
        let lock = match config.lock {
            Some(options) => {
                let token = observe::call(store.name(), Op::Lock, store.lock(&id, &options))
                    .await
                    .map_err(store_error)?;
                Some(LockGuard::new(store.clone(), id, token))
            }
            None => None,
        };
        let saved = observe::call(store.name(), Op::Save, store.save(&id, &changes)).await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        match saved.map_err(store_error)? {
            Saved::Gone => Err(SessionError::Ended),
            Saved::Version { .. } => Ok(()),
        }
    }
}
