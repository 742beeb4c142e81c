//! The capacity policies stores share: the per-user cap, and the bound of the
//! in-memory stores.

use crate::{Error, Id, Result};

/// The sessions a per-user cap ends: with `keep` staying, at most `cap - 1` others
/// remain, and the oldest (by creation) of the rest are returned.
///
/// ```
/// use tether_core::{Id, sessions_beyond_cap};
/// use time::OffsetDateTime;
///
/// let now = OffsetDateTime::now_utc();
/// let (old, mid, new) = (Id::generate()?, Id::generate()?, Id::generate()?);
/// let sessions = [(old, now), (mid, now + time::Duration::SECOND), (new, now + time::Duration::MINUTE)];
/// assert_eq!(sessions_beyond_cap(sessions, &new, 2), vec![old]);
/// # Ok::<(), tether_core::Error>(())
/// ```
pub fn sessions_beyond_cap(
    sessions: impl IntoIterator<Item = (Id, time::OffsetDateTime)>,
    keep: &Id,
    cap: u32,
) -> Vec<Id> {
    let mut others: Vec<(time::OffsetDateTime, Id)> = sessions
        .into_iter()
        .filter(|(id, _)| id != keep)
        .map(|(id, created)| (created, id))
        .collect();
    let allowed = usize::try_from(cap.saturating_sub(1)).unwrap_or(usize::MAX);
    if others.len() <= allowed {
        return Vec::new();
    }
    others.sort();
    let excess = others.len() - allowed;
    others.into_iter().take(excess).map(|(_, id)| id).collect()
}

/// The bound on sessions an in-memory store (memory, replicated) holds, and the
/// policy that keeps anonymous sessions from starving logins: anonymous sessions (no
/// user bound) use at most `max_anonymous`; sessions bound to a user may use all of
/// `max`; making room ends the oldest anonymous sessions, and only a store full of
/// users' sessions refuses.
///
/// ```
/// use tether_core::SessionLimits;
/// let limits = SessionLimits::new(10); // anonymous: at most 5
/// assert_eq!(limits.to_evict(5, 5, true).unwrap(), 1, "the oldest anonymous makes room");
/// assert_eq!(limits.to_evict(10, 2, false).unwrap(), 1, "a login takes an anonymous place");
/// assert!(limits.to_evict(10, 0, false).is_err(), "full of logged-in users");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// The most sessions.
    pub max: usize,
    /// The most sessions bound to no user.
    pub max_anonymous: usize,
}

impl SessionLimits {
    /// At most `max` sessions, half of them anonymous.
    pub const fn new(max: usize) -> Self {
        let max = if max == 0 { 1 } else { max };
        Self {
            max,
            max_anonymous: if max / 2 == 0 { 1 } else { max / 2 },
        }
    }

    /// With another anonymous share (at least 1, at most `max`).
    #[must_use]
    pub fn with_max_anonymous(mut self, max_anonymous: usize) -> Self {
        self.max_anonymous = max_anonymous.clamp(1, self.max);
        self
    }

    /// How many of the oldest anonymous sessions must end before one more session
    /// (anonymous or not) fits, given `live` sessions of which `anonymous` are
    /// anonymous; [`Error::Unavailable`] when ending every anonymous one is not enough.
    pub fn to_evict(&self, live: usize, anonymous: usize, new_is_anonymous: bool) -> Result<usize> {
        let over_total = (live + 1).saturating_sub(self.max);
        let over_anonymous = if new_is_anonymous {
            (anonymous + 1).saturating_sub(self.max_anonymous)
        } else {
            0
        };
        let evict = over_total.max(over_anonymous);
        if evict > anonymous {
            return Err(Error::unavailable(
                "creating a session",
                std::io::Error::other(format!(
                    "the store is full ({} sessions, bound to users; raise its session limit or use a central store)",
                    self.max
                )),
            ));
        }
        Ok(evict)
    }
}
