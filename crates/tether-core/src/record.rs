//! The session record and the changes a request makes to it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// How long a session lives.
///
/// `idle` ends a session nobody used for that long; `absolute` ends every session that
/// long after it was created, however active (so a stolen id cannot be kept alive).
///
/// ```
/// use std::time::Duration;
/// use tether_core::Expiry;
///
/// let expiry = Expiry::new(Duration::from_secs(30 * 60)).with_absolute(Duration::from_secs(12 * 3600));
/// assert_eq!(expiry.absolute, Some(Duration::from_secs(12 * 3600)));
/// assert!(!expiry.browser_session && expiry.browser_session().browser_session);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// Idle timeout: the session ends this long after its last refresh.
    pub idle: Duration,
    /// Absolute lifetime from creation, if any.
    pub absolute: Option<Duration>,
    /// The cookie has no `Max-Age`, so the browser forgets it when it closes (the
    /// store still ends the session by `idle` and `absolute`).
    pub browser_session: bool,
}

impl Expiry {
    /// An idle timeout with no absolute lifetime.
    pub const fn new(idle: Duration) -> Self {
        Self {
            idle,
            absolute: None,
            browser_session: false,
        }
    }

    /// With a cookie the browser forgets when it closes.
    #[must_use]
    pub const fn browser_session(mut self) -> Self {
        self.browser_session = true;
        self
    }

    /// The part of this expiry a store keeps with a session that has its own.
    pub fn lifetime(&self) -> crate::Lifetime {
        crate::Lifetime {
            idle: self
                .idle
                .clamp(Duration::from_millis(1), crate::Lifetime::MAX_IDLE),
            browser_session: self.browser_session,
        }
    }

    /// Adds an absolute lifetime.
    #[must_use]
    pub const fn with_absolute(mut self, absolute: Duration) -> Self {
        self.absolute = Some(absolute);
        self
    }

    /// The idle deadline for activity at `now`, never past `absolute_deadline`.
    pub fn idle_deadline(
        &self,
        now: OffsetDateTime,
        absolute_deadline: Option<OffsetDateTime>,
    ) -> OffsetDateTime {
        let idle = now.saturating_add(to_time(self.idle));
        absolute_deadline.map_or(idle, |abs| idle.min(abs))
    }
}

impl Default for Expiry {
    /// 24 hours idle, 7 days absolute.
    fn default() -> Self {
        Self::new(Duration::from_hours(24)).with_absolute(Duration::from_hours(168))
    }
}

fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// One stored session.
///
/// ```
/// use tether_core::{Expiry, Record};
/// use time::OffsetDateTime;
///
/// let now = OffsetDateTime::now_utc();
/// let record = Record::new(now, &Expiry::default());
/// assert!(!record.is_expired(now));
/// assert_eq!(record.version, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The application's data.
    pub data: Map<String, Value>,
    /// Incremented by every save; stores use it for compare-and-swap.
    pub version: u64,
    /// When the session was created.
    #[serde(with = "unix_ms")]
    pub created: OffsetDateTime,
    /// When the session was last saved or refreshed.
    #[serde(with = "unix_ms")]
    pub last_seen: OffsetDateTime,
    /// The session ends at this instant unless refreshed (never past `absolute_deadline`).
    #[serde(with = "unix_ms")]
    pub idle_deadline: OffsetDateTime,
    /// The session ends at this instant whatever happens.
    #[serde(
        with = "unix_ms::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub absolute_deadline: Option<OffsetDateTime>,
    /// The user this session is bound to, for listing and "log out everywhere".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The session's own lifetime, when it was given one (`Session::set_expiry`):
    /// refreshes extend it by this idle timeout rather than the one a request brings.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::lifetime::stored"
    )]
    pub lifetime: Option<crate::Lifetime>,
}

impl Record {
    /// An empty record created at `now`.
    pub fn new(now: OffsetDateTime, expiry: &Expiry) -> Self {
        let absolute_deadline = expiry.absolute.map(|a| now.saturating_add(to_time(a)));
        Self {
            data: Map::new(),
            version: 1,
            created: now,
            last_seen: now,
            idle_deadline: expiry.idle_deadline(now, absolute_deadline),
            absolute_deadline,
            user: None,
            lifetime: None,
        }
    }

    /// A record created at `now` with a lifetime of its own, `expiry`: the record a
    /// session re-issued by `Session::set_expiry` starts as.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tether_core::{Expiry, Record};
    ///
    /// let now = time::OffsetDateTime::now_utc();
    /// let remember = Expiry::new(Duration::from_secs(30 * 86_400));
    /// let record = Record::with_lifetime(now, &remember);
    /// assert_eq!(record.lifetime, Some(remember.lifetime()));
    /// assert_eq!(record.absolute_deadline, None);
    /// ```
    pub fn with_lifetime(now: OffsetDateTime, expiry: &Expiry) -> Self {
        Self {
            lifetime: Some(expiry.lifetime()),
            ..Self::new(now, expiry)
        }
    }

    /// The instant the record stops being valid.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.absolute_deadline
            .map_or(self.idle_deadline, |abs| abs.min(self.idle_deadline))
    }

    /// Whether the record is past its idle or absolute deadline at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at()
    }

    /// Applies one request's changes: the merge every store performs atomically.
    ///
    /// Only the keys the request changed are written, so changes made concurrently by
    /// another request to other keys survive; the version moves forward by one.
    ///
    /// ```
    /// use serde_json::json;
    /// use tether_core::{Changes, Expiry, Record};
    /// use time::OffsetDateTime;
    ///
    /// let now = OffsetDateTime::now_utc();
    /// let mut record = Record::new(now, &Expiry::default());
    /// record.data.insert("theme".into(), json!("dark"));
    ///
    /// let mut changes = Changes::new(now, record.idle_deadline);
    /// changes.set("cart", json!([1, 2]));
    /// record.apply(&changes);
    ///
    /// assert_eq!(record.data["theme"], json!("dark"));
    /// assert_eq!(record.data["cart"], json!([1, 2]));
    /// assert_eq!(record.version, 2);
    /// ```
    pub fn apply(&mut self, changes: &Changes) {
        if changes.clear {
            self.data.clear();
        }
        for (key, value) in &changes.updates {
            match value {
                // A key the record has keeps its `String`: no copy of the name.
                Some(value) => match self.data.get_mut(key) {
                    Some(slot) => slot.clone_from(value),
                    None => {
                        self.data.insert(key.clone(), value.clone());
                    }
                },
                None => {
                    self.data.remove(key);
                }
            }
        }
        if let Some(user) = &changes.user {
            self.user.clone_from(user);
        }
        self.touch(&Touch {
            last_seen: changes.last_seen,
            idle_deadline: changes.idle_deadline,
        });
        self.version += 1;
    }

    /// Records activity: `last_seen` moves forward and the idle deadline becomes
    /// `touch.idle_deadline` (or, for a record with a [`Lifetime`](crate::Lifetime) of
    /// its own, `touch.last_seen` plus its idle timeout), never past the absolute
    /// deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tether_core::{Expiry, Record, Touch};
    /// use time::OffsetDateTime;
    ///
    /// let now = OffsetDateTime::now_utc();
    /// let mut record = Record::new(now, &Expiry::new(Duration::from_secs(60)).with_absolute(Duration::from_secs(90)));
    /// record.touch(&Touch { last_seen: now, idle_deadline: now + time::Duration::hours(1) });
    /// assert_eq!(record.idle_deadline, now + time::Duration::seconds(90));
    /// ```
    pub fn touch(&mut self, touch: &Touch) {
        self.last_seen = self.last_seen.max(touch.last_seen);
        let wanted = self
            .lifetime
            .map_or(touch.idle_deadline, |l| l.idle_deadline(touch.last_seen));
        self.idle_deadline = self.absolute_deadline.map_or(wanted, |abs| abs.min(wanted));
    }

    /// The summary listed for a user's sessions.
    pub fn info(&self, id: crate::Id) -> SessionInfo {
        SessionInfo::new(id, self.created, self.last_seen)
    }
}

/// What one request changed in a session: sent to the store instead of the whole record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Changes {
    /// All keys were removed before `updates` apply.
    #[serde(default)]
    pub clear: bool,
    /// Keys set (`Some`) or removed (`None`), in key order.
    #[serde(default)]
    pub updates: BTreeMap<String, Option<Value>>,
    /// `Some(Some(user))` binds the session to a user, `Some(None)` unbinds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Option<String>>,
    /// With a user bound by this change: keep at most this many sessions for the user,
    /// ending the oldest others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_cap: Option<u32>,
    /// The request's time.
    #[serde(with = "unix_ms")]
    pub last_seen: OffsetDateTime,
    /// The new idle deadline (stores cap it at the record's absolute deadline).
    #[serde(with = "unix_ms")]
    pub idle_deadline: OffsetDateTime,
}

impl Changes {
    /// No changes yet, for a request at `now` whose activity extends the session to
    /// `idle_deadline`.
    pub fn new(now: OffsetDateTime, idle_deadline: OffsetDateTime) -> Self {
        Self {
            clear: false,
            updates: BTreeMap::new(),
            user: None,
            user_cap: None,
            last_seen: now,
            idle_deadline,
        }
    }

    /// Records that `key` was set to `value`.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        self.updates.insert(key.into(), Some(value));
    }

    /// Records that `key` was removed.
    pub fn remove(&mut self, key: impl Into<String>) {
        self.updates.insert(key.into(), None);
    }

    /// Records that every key was removed.
    pub fn clear(&mut self) {
        self.clear = true;
        self.updates.clear();
    }

    /// Whether anything in the data or the user binding changed.
    pub fn is_empty(&self) -> bool {
        !self.clear && self.updates.is_empty() && self.user.is_none()
    }

    /// What `key` reads as after these changes: `Some(Some(v))` set, `Some(None)` removed,
    /// `None` untouched by this request.
    pub fn lookup(&self, key: &str) -> Option<Option<&Value>> {
        match self.updates.get(key) {
            Some(v) => Some(v.as_ref()),
            None if self.clear => Some(None),
            None => None,
        }
    }
}

/// A refresh of a session's idle deadline with no data change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    /// The request's time.
    pub last_seen: OffsetDateTime,
    /// The new idle deadline (stores cap it at the absolute deadline).
    pub idle_deadline: OffsetDateTime,
}

/// One session of a user, as listed by [`crate::SessionStore::user_sessions`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session's key at rest: a hash of its id ([`crate::Id::at_rest`]; as a
    /// store outside the process keeps it, and as the `tether` layer lists every
    /// store's), which tells sessions apart and opens nothing. Use
    /// [`SessionInfo::current`] to find the session of the request.
    pub id: crate::Id,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// When it was last saved or refreshed.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// Whether this is the session of the request that listed it (set by the
    /// `tether` layer's `Session::user_sessions`; `false` from a store directly).
    #[serde(default)]
    pub current: bool,
}

impl SessionInfo {
    /// A listed session (not the current one).
    ///
    /// ```
    /// let now = time::OffsetDateTime::now_utc();
    /// let info = tether_core::SessionInfo::new(tether_core::Id::generate()?, now, now);
    /// assert!(!info.current);
    /// # Ok::<(), tether_core::Error>(())
    /// ```
    pub fn new(id: crate::Id, created: OffsetDateTime, last_seen: OffsetDateTime) -> Self {
        Self {
            id,
            created,
            last_seen,
            current: false,
        }
    }
}

pub mod unix_ms;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> OffsetDateTime {
        // Millisecond precision, as every store keeps it.
        unix_ms::from_ms(unix_ms::to_ms(OffsetDateTime::now_utc()))
    }

    #[test]
    fn record_round_trips_through_json() {
        let mut record = Record::new(now(), &Expiry::default());
        record
            .data
            .insert("k".into(), json!({"nested": [1, "two", null]}));
        record.user = Some("alice".into());
        let text = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), record);
    }

    #[test]
    fn clear_then_set_keeps_only_new_keys() {
        let t = now();
        let mut record = Record::new(t, &Expiry::default());
        record.data.insert("old".into(), json!(1));
        let mut changes = Changes::new(t, record.idle_deadline);
        changes.clear();
        changes.set("new", json!(2));
        assert_eq!(changes.lookup("old"), Some(None));
        assert_eq!(changes.lookup("new"), Some(Some(&json!(2))));
        record.apply(&changes);
        assert_eq!(record.data, Map::from_iter([("new".to_string(), json!(2))]));
    }

    #[test]
    fn idle_deadline_never_passes_absolute() {
        let t = now();
        let expiry = Expiry::new(Duration::from_hours(1)).with_absolute(Duration::from_mins(1));
        let mut record = Record::new(t, &expiry);
        assert_eq!(record.idle_deadline, record.absolute_deadline.unwrap());
        let changes = Changes::new(t, t + time::Duration::hours(5));
        record.apply(&changes);
        assert_eq!(record.expires_at(), t + time::Duration::seconds(60));
    }
}
