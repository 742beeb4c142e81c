//! The work after the handler: write what changed, decide the cookie, release the lock.

use std::sync::Arc;

use tether_core::{ClientStore, Created, Error, Id, Record, Saved, SessionStore, Touch};
use time::OffsetDateTime;
use tracing::Instrument as _;

use crate::backend::Backend;
use crate::cookie_io::CookieAction;
use crate::error::SessionError;
use crate::session::{Loaded, Session, State};

impl Session {
    /// Writes what the request changed; `Err` when the store failed during the request
    /// or the write failed. The lock (lock mode) is released whatever happened.
    pub(crate) async fn finish(&self, server_error: bool) -> Result<CookieAction, Arc<Error>> {
        let mut state = self.inner.state.lock().await;
        let outcome = if let Some(error) = state.error.clone() {
            Err(error)
        } else if server_error {
            Ok(CookieAction::Keep)
        } else if let Err(e) = self.resolve(&mut state).await {
            // With several cookies, finding the session needed the store, which failed.
            Err(match e {
                SessionError::Store(e) => e,
                other => Arc::new(Error::Corrupt(other.to_string())),
            })
        } else {
            match &self.inner.shared.backend {
                Backend::Server(store) => self.commit(store, &mut state).await,
                Backend::Client(store) => self.commit_client(store.as_ref(), &mut state),
            }
            .map_err(Arc::new)
        };
        if let Some(lock) = state.lock.take() {
            lock.release().await;
        }
        if let Err(e) = &outcome {
            tracing::error!(store = self.inner.shared.backend.name(), error = %e, "session not saved");
        }
        outcome
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
            match std::mem::replace(&mut state.loaded, Loaded::Missing) {
                Loaded::Found(record) => Some(record),
                Loaded::Pending | Loaded::Missing => None,
            }
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
        let fresh = base.is_none();
        let mut record = base.unwrap_or_else(|| Record::new(now, &config.expiry));
        state.changes.idle_deadline = config.expiry.idle_deadline(now, record.absolute_deadline);
        record.apply(&state.changes);
        // The id the session goes on with: the rotated one, the one it came with, or
        // a new one for a new session (stores that seal no id ignore it).
        let id = match (state.new_id, state.id.filter(|_| !fresh)) {
            (Some(id), _) | (None, Some(id)) => id,
            (None, None) => Id::generate()?,
        };
        let value = store.seal_with_id(&id, &record, config.name(), now)?;
        Ok(self.set_cookie(value, record.expires_at()))
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
            let absolute = state.loaded.record().and_then(|r| r.absolute_deadline);
            state.changes.idle_deadline = config.expiry.idle_deadline(now, absolute);
            if let Some(new_id) = state.new_id {
                let saved = store
                    .cycle_id(&id, &new_id, &state.changes)
                    .instrument(tracing::debug_span!(
                        "session.cycle_id",
                        store = store.name()
                    ))
                    .await?;
                if let Saved::Version { expires_at, .. } = saved {
                    return Ok(self.set_cookie(new_id.to_string(), expires_at));
                }
            } else if changed {
                let saved = store
                    .save(&id, &state.changes)
                    .instrument(tracing::debug_span!("session.save", store = store.name()))
                    .await?;
                if let Saved::Version { expires_at, .. } = saved {
                    let due = state.loaded.record().is_none_or(|r| self.refresh_due(r));
                    return Ok(if due {
                        self.set_cookie(id.to_string(), expires_at)
                    } else {
                        CookieAction::Keep
                    });
                }
            } else {
                if let Loaded::Found(record) = &state.loaded
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
        // A login that starts a session applies the per-user cap in the same call.
        let id = self.create(store, &record, state.changes.user_cap).await?;
        Ok(self.set_cookie(id.to_string(), record.expires_at()))
    }

    async fn create(
        &self,
        store: &Arc<dyn SessionStore>,
        record: &Record,
        cap: Option<u32>,
    ) -> Result<Id, Error> {
        for _ in 0..3 {
            let id = Id::generate()?;
            let created = store
                .create_capped(&id, record, cap)
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

    /// The cookie for `value`, living until `expires_at` (never longer than the
    /// session: a browser must not keep presenting an id the store has ended).
    fn set_cookie(&self, value: String, expires_at: OffsetDateTime) -> CookieAction {
        let max_age = self
            .inner
            .shared
            .config
            .persistent
            .then(|| expires_at - self.inner.now);
        CookieAction::Set { value, max_age }
    }
}
