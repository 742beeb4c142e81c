//! A session's own lifetime, when it has one (`Session::set_expiry`): the idle timeout
//! stores refresh it by, and whether its cookie lasts past the browser.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The lifetime one session was given, overriding the layer's for it alone: a
/// "remember me" login that lasts 30 days, a shared-computer login that ends with the
/// browser.
///
/// Stores keep it with the record and refresh the session's idle deadline by its
/// `idle` (capped, as always, by the absolute deadline), whoever writes: a request
/// that writes without reading does not know it, the store does. They keep it as one
/// integer ([`Lifetime::to_ms`]).
///
/// ```
/// use std::time::Duration;
/// use tether_core::Lifetime;
///
/// let remember = Lifetime { idle: Duration::from_secs(30 * 86_400), browser_session: false };
/// assert_eq!(Lifetime::from_ms(remember.to_ms()), Some(remember));
/// let shared_pc = Lifetime { idle: Duration::from_secs(900), browser_session: true };
/// assert!(shared_pc.to_ms() < 0);
/// assert_eq!(Lifetime::from_ms(shared_pc.to_ms()), Some(shared_pc));
/// assert_eq!(Lifetime::from_ms(0), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// The session ends this long after its last request (at least 1 ms).
    pub idle: Duration,
    /// Its cookie has no `Max-Age`: the browser forgets it when it closes.
    pub browser_session: bool,
}

impl Lifetime {
    /// The longest idle timeout kept: 100 years. Stores add it to the current time in
    /// 64-bit milliseconds (and Redis in a Lua double), which must not overflow.
    pub const MAX_IDLE: Duration = Duration::from_hours(100 * 365 * 24);

    /// The stored form: the idle timeout in milliseconds (at least 1, at most
    /// [`Lifetime::MAX_IDLE`]), negative for a browser-session cookie. `0` is never
    /// produced: it reads as "no lifetime of its own".
    pub fn to_ms(&self) -> i64 {
        let ms = i64::try_from(self.idle.min(Self::MAX_IDLE).as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        if self.browser_session { -ms } else { ms }
    }

    /// The lifetime stored as `ms` (see [`Lifetime::to_ms`]); `None` for `0`.
    pub fn from_ms(ms: i64) -> Option<Self> {
        (ms != 0).then(|| Self {
            idle: Duration::from_millis(ms.unsigned_abs()).min(Self::MAX_IDLE),
            browser_session: ms < 0,
        })
    }

    /// The idle deadline for activity at `now`: `now + idle`.
    pub fn idle_deadline(&self, now: time::OffsetDateTime) -> time::OffsetDateTime {
        now.saturating_add(time::Duration::try_from(self.idle).unwrap_or(time::Duration::MAX))
    }
}

/// Serde in the stored form, for records kept as JSON.
pub(crate) mod stored {
    use super::{Deserialize, Deserializer, Lifetime, Serialize, Serializer};

    #[allow(clippy::ref_option)]
    pub(crate) fn serialize<S: Serializer>(l: &Option<Lifetime>, s: S) -> Result<S::Ok, S::Error> {
        l.map(|l| l.to_ms()).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Lifetime>, D::Error> {
        Ok(Option::<i64>::deserialize(d)?.and_then(Lifetime::from_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_stored_form_round_trips(ms in 1_i64..3_153_600_000_000, browser in any::<bool>()) {
            let l = Lifetime { idle: Duration::from_millis(ms.unsigned_abs()), browser_session: browser };
            prop_assert_eq!(Lifetime::from_ms(l.to_ms()), Some(l));
        }

        #[test]
        fn any_stored_integer_reads_without_panic(ms in any::<i64>()) {
            if let Some(l) = Lifetime::from_ms(ms) {
                prop_assert!(l.idle >= Duration::from_millis(1) && l.idle <= Lifetime::MAX_IDLE);
                let _ = l.idle_deadline(time::OffsetDateTime::now_utc());
            }
        }
    }
}
