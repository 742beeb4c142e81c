//! Who the session belongs to: binding a user, logging out, and the user's other
//! sessions.

use tether_core::{Changes, SessionInfo};

use crate::error::SessionError;
use crate::events::SessionEvent;
use crate::observe::{self, Op};
use crate::session::{Loaded, Presented, Session};

impl Session {
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
        // A cookie came with the request if it named a session, is still to be read, or
        // was read already (a client-side value opened by an earlier `get`).
        let had_cookie = state.id.is_some()
            || !matches!(state.presented, Presented::None)
            || matches!(state.loaded, Loaded::Found(_));
        self.resolve(&mut state).await?;
        state.delete = had_cookie;
        state.loaded = Loaded::Missing;
        state.new_id = None;
        state.expiry = None;
        let now = self.inner.now;
        let idle = state.changes.idle_deadline;
        state.changes = Changes::new(now, idle);
        Ok(())
    }

    /// The live sessions of the user this session is bound to, oldest first; this
    /// request's session is marked [`current`](SessionInfo::current). Their ids are
    /// keys at rest ([`Id::at_rest`](crate::Id::at_rest), for every store), never cookies.
    ///
    /// A store that keeps no user index (the cookie store) answers
    /// [`Error::Unsupported`](crate::Error::Unsupported); a handler may handle it, and the layer then leaves the
    /// response alone.
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
            Ok(store) => {
                let listed =
                    observe::call(store.name(), Op::ListUser, store.user_sessions(&user)).await;
                // Listed by their keys at rest, whatever the store: a list of live
                // ids would hand out every session's cookie.
                let in_process = store.capabilities().in_process;
                let current = state.id.map(|id| id.at_rest());
                listed.map(|mut sessions| {
                    for info in &mut sessions {
                        if in_process {
                            info.id = info.id.at_rest();
                        }
                        info.current = Some(info.id) == current;
                    }
                    sessions
                })
            }
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
                Ok(store) => {
                    observe::call(
                        store.name(),
                        Op::DeleteUser,
                        store.delete_user_sessions(&user),
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            ended.map_err(|e| self.fail(&mut state, e))?
        };
        self.emit(&SessionEvent::LoggedOutEverywhere {
            user: user.clone(),
            ended,
        });
        self.logout().await?;
        Ok(ended)
    }
}
