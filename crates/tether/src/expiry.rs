//! One session's own lifetime: "remember me", or a login that ends with the browser.

use tether_core::Expiry;

use crate::error::SessionError;
use crate::session::Session;

impl Session {
    /// Gives this session its own lifetime, in place of the layer's: its idle timeout,
    /// its absolute lifetime and whether its cookie outlives the browser.
    ///
    /// The absolute lifetime always counts from the session's creation (its login),
    /// never from this call: an `Expiry` with an absolute lifetime of its own
    /// ([`Expiry::with_absolute`], "remember me") may lengthen or shorten the session's,
    /// one without keeps the layer's. So whoever holds an id can never keep it alive
    /// past its creation plus the longest absolute lifetime the app grants, however
    /// often the lifetime is changed. Every store keeps it with the session and refreshes the session by it,
    /// whichever request (and instance) writes; it survives [`Session::cycle_id`].
    ///
    /// A session's deadlines are fixed where it is stored, so after the handler the
    /// session is issued again under a new id with its data, user and new lifetime, and
    /// the old id ends (as with `cycle_id`). Call it where the lifetime changes (at
    /// login); calling it again with the lifetime the session already has changes
    /// nothing. A request still in flight with the old id meanwhile merges into
    /// nothing; under lock mode none can be.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tether::{Expiry, Session, SessionError};
    ///
    /// async fn login(session: Session, remember_me: bool) -> Result<(), SessionError> {
    ///     session.cycle_id().await?;
    ///     session.set_user("alice").await?;
    ///     if remember_me {
    ///         let days_30 = Duration::from_secs(30 * 86_400);
    ///         session.set_expiry(Expiry::new(days_30).with_absolute(days_30)).await?;
    ///     } else {
    ///         // A shared computer: gone when the browser closes, or after 15 idle minutes.
    ///         session.set_expiry(Expiry::new(Duration::from_secs(900)).browser_session()).await?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn set_expiry(&self, expiry: Expiry) -> Result<(), SessionError> {
        self.begin().await?.expiry = Some(expiry);
        Ok(())
    }

    /// The session's lifetime: the one [`Session::set_expiry`] gave it (in this request
    /// or an earlier one), else the layer's. Its absolute lifetime is counted from the
    /// session's creation.
    ///
    /// ```
    /// # async fn handler(session: tether::Session) -> Result<(), tether::SessionError> {
    /// let remembered = !session.expiry().await?.browser_session;
    /// # Ok(()) }
    /// ```
    pub async fn expiry(&self) -> Result<Expiry, SessionError> {
        let mut state = self.begin().await?;
        if let Some(expiry) = state.expiry {
            return Ok(expiry);
        }
        let layer = self.inner.shared.config.expiry;
        let record = self.load(&mut state).await?;
        Ok(record
            .and_then(|r| r.lifetime.map(|l| (r, l)))
            .map_or(layer, |(r, l)| Expiry {
                idle: l.idle,
                absolute: r.absolute_deadline.map(|a| (a - r.created).unsigned_abs()),
                browser_session: l.browser_session,
            }))
    }
}
