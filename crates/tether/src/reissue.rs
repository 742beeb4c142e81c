//! Issuing a session again with the lifetime `Session::set_expiry` gave it: a new
//! record under a new id, then the old id ends.

use std::sync::Arc;

use tether_core::{Changes, Error, Expiry, Record, SessionStore};
use time::OffsetDateTime;

use crate::cookie_header::CookieAction;
use crate::events::SessionEvent;
use crate::observe::{self, Op};
use crate::session::{Session, State};

/// The lifetime to issue the session again with: the one `set_expiry` gave it in this
/// request, unless the session (`base`, as read) already has it: the same idle
/// timeout and cookie kind, and the same absolute deadline counted from its creation
/// (its own absolute lifetime, else the layer's).
pub(crate) fn reissue_due(state: &State, layer: &Expiry, base: Option<&Record>) -> Option<Expiry> {
    let expiry = state.expiry?;
    let unchanged = base.is_some_and(|r| {
        r.lifetime == Some(expiry.lifetime())
            && r.absolute_deadline == absolute_deadline(r.created, &expiry, layer)
    });
    (!unchanged).then_some(expiry)
}

/// The absolute deadline of a session created at `created` and given `expiry`.
fn absolute_deadline(
    created: OffsetDateTime,
    expiry: &Expiry,
    layer: &Expiry,
) -> Option<OffsetDateTime> {
    expiry.absolute.or(layer.absolute).map(|absolute| {
        let absolute = time::Duration::try_from(absolute).unwrap_or(time::Duration::MAX);
        created.saturating_add(absolute)
    })
}

impl Session {
    /// Server-side: the session's data and user (with this request's changes) under a
    /// new id with its new lifetime; then the old id is deleted. The new record exists
    /// before the old one goes, so a failure leaves the user logged in under one of
    /// them.
    pub(crate) async fn reissue(
        &self,
        store: &Arc<dyn SessionStore>,
        state: &mut State,
        expiry: &Expiry,
    ) -> Result<CookieAction, Error> {
        let now = self.inner.now;
        let base = state.loaded.record();
        let mut record = reissued(now, expiry, &self.inner.shared.config.expiry, base);
        let old = state.id.filter(|_| base.is_some());
        state.changes.idle_deadline = expiry.lifetime().idle_deadline(now);
        record.apply(&state.changes);
        // The per-user cap comes after the old id is gone, so that it does not count.
        let id = self.create(store, &record, None, state.new_id).await?;
        if let Some(old) = old {
            // The grace marker before the old id goes (see `write_existing`).
            self.mark_rotated(store, &old).await;
            observe::call(store.name(), Op::Delete, store.delete(&old)).await?;
        }
        if let (Some(cap), Some(user)) = (state.changes.user_cap, &record.user) {
            // The session is issued; a cap that cannot be applied now must not log the
            // user out (the next login applies it).
            let mut bind = Changes::new(now, record.idle_deadline);
            bind.user = Some(Some(user.clone()));
            bind.user_cap = Some(cap);
            if let Err(error) = observe::call(store.name(), Op::Save, store.save(&id, &bind)).await
            {
                tracing::warn!(store = store.name(), %error, "the per-user session cap was not applied");
            }
        }
        match old {
            Some(from) => self.emit(&SessionEvent::Rotated { from, to: id }),
            None => self.emit(&SessionEvent::Created { id }),
        }
        self.emit_bound(Some(id), &state.changes);
        Ok(self.set_id_cookie(&id, record.expires_at(), Some(expiry.browser_session)))
    }
}

/// The record a session issued again at `now` with `expiry` starts as: `base`'s data,
/// user, version and creation (when there is a session), with the new idle timeout
/// from now. The absolute lifetime still counts from the session's creation: its own
/// (`expiry.absolute`, "remember me") when it has one, else the layer's (`layer`), so
/// no `set_expiry` call ever restarts it.
pub(crate) fn reissued(
    now: OffsetDateTime,
    expiry: &Expiry,
    layer: &Expiry,
    base: Option<&Record>,
) -> Record {
    let mut record = Record::with_lifetime(now, expiry);
    if let Some(base) = base {
        record.data.clone_from(&base.data);
        record.user.clone_from(&base.user);
        record.version = base.version;
        record.created = base.created;
    }
    record.absolute_deadline = absolute_deadline(record.created, expiry, layer);
    record.idle_deadline = expiry.idle_deadline(now, record.absolute_deadline);
    record
}
