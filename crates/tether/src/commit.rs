//! The work after the handler: write what changed, decide the cookie, release the lock.

use std::sync::Arc;

use tether_core::{ClientStore, Created, Error, Expiry, Id, Record, Saved, SessionStore, Touch};
use time::OffsetDateTime;

use crate::backend::Backend;
use crate::cookie_header::CookieAction;
use crate::error::SessionError;
use crate::events::SessionEvent;
use crate::observe::{self, Op};
use crate::reissue::{reissue_due, reissued};
use crate::session::{Loaded, Presented, Session, State};

impl Session {
    /// Writes what the request changed; `Err` when the store failed during the request
    /// or the write failed. The lock (lock mode) is released whatever happened.
    pub(crate) async fn finish(&self, server_error: bool) -> Result<CookieAction, Arc<Error>> {
        let mut state = self.inner.state.lock().await;
        let outcome = if let Some(error) = state.error.clone() {
            Err(error)
        } else if server_error {
            Ok(CookieAction::Keep)
        } else if let Err(e) = self.prepare(&mut state).await {
            // Finding the session (several cookies) or reading it (a new lifetime)
            // needed the store, which failed.
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
        self.settle(&mut state, outcome.as_ref().ok());
        outcome
    }

    /// After the write (`written`: what it did to the cookie, `None` if it failed):
    /// where the session lives at the store from now on, for [`crate::DetachedSession`],
    /// and the handle closed.
    fn settle(&self, state: &mut State, written: Option<&CookieAction>) {
        state.after = match (&self.inner.shared.backend, written) {
            (Backend::Server(_), Some(CookieAction::Set { id, .. })) => *id,
            (Backend::Server(_), Some(CookieAction::Keep)) => state.id.filter(|_| !state.delete),
            _ => None,
        };
        self.close();
    }

    /// Settles, without the write's future, a request that owes a server-side store
    /// nothing: it changed nothing, rotated nothing, ended nothing, gave no new
    /// lifetime, holds no lock and read no session whose idle deadline is due a
    /// refresh (or it ended in a server error): [`Self::finish`] would keep the cookie
    /// as it is. `false` leaves everything else to `finish`. Most requests only read.
    pub(crate) fn settled_without_writing(&self, server_error: bool) -> bool {
        let Backend::Server(_) = &self.inner.shared.backend else {
            return false;
        };
        let Some(mut state) = self.inner.state.try_lock() else {
            return false;
        };
        if state.error.is_some() || state.lock.is_some() {
            return false;
        }
        let owes_nothing = || {
            matches!(state.presented, Presented::None)
                && state.expiry.is_none()
                && !state.delete
                && state.new_id.is_none()
                && state.changes.is_empty()
                && state.loaded.record().is_none_or(|r| !self.refresh_due(r))
        };
        if !server_error && !owes_nothing() {
            return false;
        }
        self.settle(&mut state, Some(&CookieAction::Keep));
        true
    }

    /// Reads what the commit needs: the session among several cookies and, when it is
    /// to be issued again with a new lifetime, its record.
    async fn prepare(&self, state: &mut State) -> Result<(), SessionError> {
        self.resolve(state).await?;
        if state.expiry.is_some() && !state.delete {
            self.load(state).await?;
        }
        Ok(())
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
                Loaded::Found(record) => Some(Arc::unwrap_or_clone(record)),
                Loaded::Pending | Loaded::Missing => None,
            }
        };
        let reissue = reissue_due(state, &config.expiry, base.as_ref());
        let changed = !state.changes.is_empty()
            || (state.new_id.is_some() && base.is_some())
            || reissue.is_some();
        let due = base.as_ref().is_some_and(|r| self.refresh_due(r));
        if state.delete {
            self.emit(&SessionEvent::LoggedOut { id: state.id });
        }
        if !changed && !due {
            return Ok(if state.delete {
                CookieAction::Remove
            } else {
                CookieAction::Keep
            });
        }
        let base_found = base.is_some();
        let fresh = !base_found || reissue.is_some();
        let mut record = match (reissue, base) {
            (Some(expiry), base) => reissued(now, &expiry, &config.expiry, base.as_ref()),
            (None, Some(base)) => base,
            (None, None) => Record::new(now, &config.expiry),
        };
        state.changes.idle_deadline = self.next_idle_deadline(Some(&record));
        record.apply(&state.changes);
        // The id the session goes on with: the rotated one, the one it came with, or
        // a new one for a new or re-issued session (stores that seal no id ignore it).
        let id = match (state.new_id, state.id.filter(|_| !fresh)) {
            (Some(id), _) | (None, Some(id)) => id,
            (None, None) => Id::generate()?,
        };
        let value = store.seal_with_id(&id, &record, config.name(), now)?;
        // A store that seals no id (the cookie store) came with none: a save of an
        // opened session is neither a creation nor a rotation.
        match (base_found, state.id.filter(|_| !state.delete)) {
            (false, _) => self.emit(&SessionEvent::Created { id }),
            (true, Some(from)) if from != id => {
                self.emit(&SessionEvent::Rotated { from, to: id });
            }
            (true, _) => {}
        }
        self.emit_bound(Some(id), &state.changes);
        Ok(self.set_cookie(value, record.expires_at(), browser_session(&record)))
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
            let deleted = observe::call(store.name(), Op::Delete, store.delete(&id)).await?;
            if !deleted && self.rotated_recently(store, &id).await {
                // A logout with the id the session just left: the browser holds the
                // new one, which this request must not clear.
                return Ok(CookieAction::Keep);
            }
            if deleted {
                self.emit(&SessionEvent::LoggedOut { id: Some(id) });
            }
            action = CookieAction::Remove;
        }

        if let Some(expiry) = reissue_due(state, &config.expiry, state.loaded.record()) {
            if let (Some(id), None) = (state.id, state.loaded.record())
                && self.rotated_recently(store, &id).await
            {
                return Ok(CookieAction::Keep);
            }
            return self.reissue(store, state, &expiry).await;
        }
        let changed = !state.changes.is_empty();
        if let Some(id) = state.id {
            if let Some(done) = self
                .write_existing(store, state, id, action.clone())
                .await?
            {
                return Ok(done);
            }
            // The id is unknown or gone: never adopt it. If the session just moved to a
            // new id, this request is a straggler: it writes nothing and leaves the
            // browser's new cookie alone. Otherwise what changed starts a new session.
            if (changed || state.expiry.is_some())
                && !state.own_marker
                && self.rotated_recently(store, &id).await
            {
                return Ok(CookieAction::Keep);
            }
        }

        if !changed {
            return Ok(action);
        }
        let mut record = Record::new(now, &config.expiry);
        state.changes.idle_deadline = record.idle_deadline;
        record.apply(&state.changes);
        // A login that starts a session applies the per-user cap in the same call, under
        // the id `cycle_id` already drew (server-made, never one the client sent).
        let id = self
            .create(store, &record, state.changes.user_cap, state.new_id)
            .await?;
        self.emit(&SessionEvent::Created { id });
        self.emit_bound(Some(id), &state.changes);
        Ok(self.set_id_cookie(&id, record.expires_at(), None))
    }

    /// The write for a session the request came with, under `id`: rotate, save the
    /// changes, or refresh. `None` when the store no longer has it.
    async fn write_existing(
        &self,
        store: &Arc<dyn SessionStore>,
        state: &mut State,
        id: Id,
        action: CookieAction,
    ) -> Result<Option<CookieAction>, Error> {
        let now = self.inner.now;
        let changed = !state.changes.is_empty();
        // A date plus a duration is calendar arithmetic: worked out only for a write
        // (a request that only reads and needs no refresh, most of them, skips it).
        if changed || state.new_id.is_some() {
            state.changes.idle_deadline = self.next_idle_deadline(state.loaded.record());
        }
        if let Some(new_id) = state.new_id {
            // The marker first: a request with the old id that commits between the
            // rotation and a marker written after it would find neither.
            self.mark_rotated(store, &id).await;
            state.own_marker = true;
            let saved = observe::call(
                store.name(),
                Op::CycleId,
                store.cycle_id(&id, &new_id, &state.changes),
            )
            .await?;
            if let Saved::Version {
                expires_at,
                browser_session,
                ..
            } = saved
            {
                self.emit(&SessionEvent::Rotated {
                    from: id,
                    to: new_id,
                });
                self.emit_bound(Some(new_id), &state.changes);
                return Ok(Some(self.set_id_cookie(
                    &new_id,
                    expires_at,
                    browser_session,
                )));
            }
        } else if changed {
            // What the request read lets a store write conditionally (`save_from`).
            let saved = match state.loaded.record() {
                Some(base) => {
                    let save = store.save_from(&id, base, &state.changes);
                    observe::call(store.name(), Op::Save, save).await?
                }
                None => {
                    observe::call(store.name(), Op::Save, store.save(&id, &state.changes)).await?
                }
            };
            if let Saved::Version {
                expires_at,
                browser_session,
                ..
            } = saved
            {
                self.emit_bound(Some(id), &state.changes);
                let due = state.loaded.record().is_none_or(|r| self.refresh_due(r));
                return Ok(Some(if due {
                    self.set_id_cookie(&id, expires_at, browser_session)
                } else {
                    CookieAction::Keep
                }));
            }
        } else {
            if let Loaded::Found(record) = &state.loaded
                && self.refresh_due(record)
            {
                let touch = Touch {
                    last_seen: now,
                    idle_deadline: self.next_idle_deadline(Some(record)),
                };
                let touched =
                    observe::call(store.name(), Op::Touch, store.touch(&id, &touch)).await?;
                if touched {
                    return Ok(Some(self.set_id_cookie(
                        &id,
                        touch.idle_deadline,
                        browser_session(record),
                    )));
                }
            }
            return Ok(Some(action));
        }
        Ok(None)
    }

    /// Stores a new session under `first` if given and free, else under a fresh id.
    pub(crate) async fn create(
        &self,
        store: &Arc<dyn SessionStore>,
        record: &Record,
        cap: Option<u32>,
        first: Option<Id>,
    ) -> Result<Id, Error> {
        let mut first = first;
        for _ in 0..3 {
            let id = match first.take() {
                Some(id) => id,
                None => Id::generate()?,
            };
            let created = observe::call(
                store.name(),
                Op::Create,
                store.create_capped(&id, record, cap),
            )
            .await?;
            if created == Created::Yes {
                return Ok(id);
            }
        }
        Err(Error::IdCollision)
    }

    /// Whether refreshing now would extend the idle deadline by more than the share of
    /// the idle timeout the configuration allows to lapse.
    ///
    /// The gain is [`Self::next_idle_deadline`] less the record's deadline, worked out
    /// by subtraction only: adding a duration to a date is calendar arithmetic, and
    /// this runs on every request that read a session.
    fn refresh_due(&self, record: &Record) -> bool {
        let config = &self.inner.shared.config;
        let idle = self.idle_of(Some(record));
        let mut gain =
            (self.inner.now - record.idle_deadline).as_seconds_f64() + idle.as_secs_f64();
        if let Some(absolute) = record.absolute_deadline {
            gain = gain.min((absolute - record.idle_deadline).as_seconds_f64());
        }
        gain > idle.as_secs_f64() * (1.0 - config.refresh_share)
    }

    /// The idle timeout of `record`: its own, else the layer's.
    fn idle_of(&self, record: Option<&Record>) -> std::time::Duration {
        record
            .and_then(|r| r.lifetime)
            .map_or(self.inner.shared.config.expiry.idle, |l| l.idle)
    }

    /// The idle deadline this request's activity gives `record` (or a session not
    /// read): now plus its idle timeout, never past its absolute deadline.
    fn next_idle_deadline(&self, record: Option<&Record>) -> OffsetDateTime {
        Expiry::new(self.idle_of(record))
            .idle_deadline(self.inner.now, record.and_then(|r| r.absolute_deadline))
    }

    /// The cookie for `value`, living until `expires_at` (never longer than the
    /// session: a browser must not keep presenting an id the store has ended); a
    /// browser-session cookie if the session's own lifetime says so (`Some`) or, for
    /// a session on the layer's lifetime (`None`), the layer does.
    pub(crate) fn set_cookie(
        &self,
        value: String,
        expires_at: OffsetDateTime,
        browser_session: Option<bool>,
    ) -> CookieAction {
        self.cookie_to(value, None, expires_at, browser_session)
    }

    /// Sets the cookie to the token for the server-side session `id`.
    pub(crate) fn set_id_cookie(
        &self,
        id: &Id,
        expires_at: OffsetDateTime,
        browser_session: Option<bool>,
    ) -> CookieAction {
        let value = self.inner.shared.config.write_id(id);
        self.cookie_to(value, Some(*id), expires_at, browser_session)
    }

    fn cookie_to(
        &self,
        value: String,
        id: Option<Id>,
        expires_at: OffsetDateTime,
        browser_session: Option<bool>,
    ) -> CookieAction {
        let browser_session =
            browser_session.unwrap_or(self.inner.shared.config.expiry.browser_session);
        let max_age = (!browser_session).then(|| expires_at - self.inner.now);
        CookieAction::Set { value, max_age, id }
    }
}

/// Whether the session's own lifetime (if any) makes its cookie a browser-session one.
fn browser_session(record: &Record) -> Option<bool> {
    record.lifetime.map(|l| l.browser_session)
}
