//! Revoking client-side sessions: the one piece of server state a client-side store
//! can consult.

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::Record;

type Cutoff = dyn Fn(&str) -> Option<OffsetDateTime> + Send + Sync;

/// "Sessions of this user issued before this instant are over" (after a password
/// change, say), for stores whose sessions live with the client (the cookie and JWT
/// stores) and so cannot be deleted. The function is called on every open of a bound
/// session, so it should read an in-memory copy, not a database.
///
/// ```
/// use time::{Duration, OffsetDateTime};
/// let cutoff = OffsetDateTime::now_utc();
/// let revocation = tether_core::NotBefore::new(move |user| (user == "mallory").then_some(cutoff));
/// assert!(revocation.revokes(Some("mallory"), cutoff - Duration::seconds(1)));
/// assert!(!revocation.revokes(Some("mallory"), cutoff));
/// assert!(!revocation.revokes(Some("alice"), cutoff - Duration::seconds(1)));
/// assert!(!revocation.revokes(None, cutoff - Duration::seconds(1)));
/// assert!(!tether_core::NotBefore::default().revokes(Some("mallory"), cutoff));
/// ```
#[derive(Clone, Default)]
pub struct NotBefore(Option<Arc<Cutoff>>);

impl NotBefore {
    /// Revocation by `cutoff(user)`: sessions of `user` issued before it are refused.
    pub fn new(cutoff: impl Fn(&str) -> Option<OffsetDateTime> + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(cutoff)))
    }

    /// Whether a session of `user` issued at `issued` is revoked (never for an
    /// anonymous session, nor when no cutoff is set).
    pub fn revokes(&self, user: Option<&str>, issued: OffsetDateTime) -> bool {
        match (&self.0, user) {
            (Some(cutoff), Some(user)) => cutoff(user).is_some_and(|nb| issued < nb),
            _ => false,
        }
    }

    /// Whether an authentic client-side `record`, issued at `issued`, is still a
    /// session at `now`: not past its deadlines and not revoked. The cookie and JWT
    /// stores decide this on every request, for a value remembered as authentic too.
    ///
    /// ```
    /// use time::{Duration, OffsetDateTime};
    /// use tether_core::{Expiry, NotBefore, Record};
    /// let now = OffsetDateTime::now_utc();
    /// let mut record = Record::new(now, &Expiry::new(std::time::Duration::from_secs(60)));
    /// record.user = Some("mallory".into());
    /// let revocation = NotBefore::new(move |user| (user == "mallory").then_some(now));
    /// assert!(NotBefore::default().admits(&record, now, now));
    /// assert!(!NotBefore::default().admits(&record, now, now + Duration::minutes(2)));
    /// assert!(!revocation.admits(&record, now - Duration::seconds(1), now));
    /// ```
    pub fn admits(&self, record: &Record, issued: OffsetDateTime, now: OffsetDateTime) -> bool {
        !record.is_expired(now) && !self.revokes(record.user.as_deref(), issued)
    }

    /// Whether a cutoff is set.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

impl fmt::Debug for NotBefore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_set() {
            "NotBefore(set)"
        } else {
            "NotBefore(none)"
        })
    }
}
