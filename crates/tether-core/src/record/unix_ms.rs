//! Serde helpers that store instants as integer milliseconds since the Unix epoch,
//! the form every store can compare natively.

use serde::{Deserialize, Deserializer, Serializer};
use time::OffsetDateTime;

/// Now, in milliseconds since the Unix epoch.
///
/// ```
/// assert!(tether_core::unix_ms::now_ms() > 1_700_000_000_000);
/// ```
pub fn now_ms() -> i64 {
    to_ms(OffsetDateTime::now_utc())
}

/// Milliseconds since the Unix epoch, rounded down.
///
/// ```
/// use time::macros::datetime;
/// use tether_core::unix_ms::{from_ms, to_ms};
/// assert_eq!(to_ms(datetime!(1970-01-01 00:00:01.2345 UTC)), 1_234);
/// assert_eq!(to_ms(datetime!(1969-12-31 23:59:59.9995 UTC)), -1);
/// assert_eq!(to_ms(from_ms(1_700_000_000_123)), 1_700_000_000_123);
/// ```
pub fn to_ms(t: OffsetDateTime) -> i64 {
    // Whole seconds and the millisecond within: no 128-bit division per call.
    // `time`'s range (years ±9999) keeps this far from overflowing.
    t.unix_timestamp() * 1000 + i64::from(t.millisecond())
}

/// The instant `ms` milliseconds after the Unix epoch (clamped to the valid range).
///
/// ```
/// use time::macros::datetime;
/// use tether_core::unix_ms::from_ms;
/// assert_eq!(from_ms(-1), datetime!(1969-12-31 23:59:59.999 UTC));
/// assert_eq!(from_ms(i64::MAX), datetime!(9999-12-31 23:59:59 UTC));
/// ```
pub fn from_ms(ms: i64) -> OffsetDateTime {
    // Whole seconds, then the millisecond within (every store reads several
    // instants per record: no 128-bit division per call).
    let within = u16::try_from(ms.rem_euclid(1000)).unwrap_or(0);
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .and_then(|t| t.replace_millisecond(within))
        .unwrap_or(if ms < 0 {
            OffsetDateTime::UNIX_EPOCH
        } else {
            time::macros::datetime!(9999-12-31 23:59:59 UTC)
        })
}

/// Serializes as milliseconds.
pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(to_ms(*t))
}

/// Deserializes from milliseconds.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    i64::deserialize(d).map(from_ms)
}

/// The same for `Option<OffsetDateTime>`.
pub mod option {
    use super::{Deserialize, Deserializer, OffsetDateTime, Serializer, from_ms, to_ms};

    /// Serializes as milliseconds or null.
    #[allow(clippy::ref_option)]
    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&to_ms(*t)),
            None => s.serialize_none(),
        }
    }

    /// Deserializes from milliseconds or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        Ok(Option::<i64>::deserialize(d)?.map(from_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::PrimitiveDateTime;

    /// What `from_ms` computes, the slow way: one 128-bit multiplication.
    fn by_nanos(ms: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(if ms < 0 {
            OffsetDateTime::UNIX_EPOCH
        } else {
            time::macros::datetime!(9999-12-31 23:59:59 UTC)
        })
    }

    /// The first and last millisecond `time` can hold, and the epoch.
    fn edges() -> [i64; 3] {
        [
            to_ms(PrimitiveDateTime::MIN.assume_utc()),
            0,
            to_ms(PrimitiveDateTime::MAX.assume_utc()),
        ]
    }

    proptest! {
        #[test]
        fn any_number_gives_what_the_nanosecond_conversion_gives(ms in any::<i64>()) {
            prop_assert_eq!(from_ms(ms), by_nanos(ms));
        }

        #[test]
        fn every_instant_in_range_round_trips(ms in edges()[0]..=edges()[2]) {
            prop_assert_eq!(from_ms(ms), by_nanos(ms));
            prop_assert_eq!(to_ms(from_ms(ms)), ms);
        }

        #[test]
        fn the_ends_of_the_range_and_the_epoch_agree(edge in 0_usize..3, offset in -2_000_i64..2_000) {
            let ms = edges()[edge] + offset;
            prop_assert_eq!(from_ms(ms), by_nanos(ms));
        }
    }
}
