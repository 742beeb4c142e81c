//! What a MySQL save reports. Rows are read by `tether_sql::rows`, the data in the
//! wrapped form that SQLite shares (`tether_sql::codec`).

use tether_core::{Saved, unix_ms};

/// The version and expiry a save or rotation reported (see `merge!`).
pub(crate) fn reported(packed: u64) -> Saved {
    Saved::Version {
        version: packed & 0x3FFF_FFFF,
        expires_at: unix_ms::from_ms(i64::try_from(packed >> 32).unwrap_or(i64::MAX) * 1000),
        browser_session: match (packed >> 30) & 0b11 {
            0b10 => Some(false),
            0b11 => Some(true),
            _ => None,
        },
    }
}
