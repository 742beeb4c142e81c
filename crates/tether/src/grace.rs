//! Rotation grace: for a few seconds after a session moves to a new id, a request
//! still carrying the old one is answered as anonymous and read-only, so it cannot
//! replace the browser's new cookie with a fresh anonymous session.
//!
//! The layer leaves a marker at the store: an empty, short-lived record under an id
//! derived from the old one (SHA-256, so no request names it by accident). A request
//! whose id turns out unknown or gone (a save answered `Gone`, a delete found nothing)
//! looks for the marker before it would start a new session or clear the cookie; the
//! extra read happens only on that path.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tether_core::{Created, Expiry, Id, Record, SessionStore};
use time::OffsetDateTime;

use crate::observe::{self, Op};

/// The default rotation grace.
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(5);

/// The id of the marker left for `old`.
fn marker(old: &Id) -> Id {
    let digest = Sha256::new()
        .chain_update(b"tether rotated\0")
        .chain_update(old.as_bytes())
        .finalize();
    let mut bytes = [0_u8; tether_core::ID_BYTES];
    bytes.copy_from_slice(&digest[..tether_core::ID_BYTES]);
    Id::from_bytes(bytes)
}

/// After a session left `old`: the marker, for `grace` (nothing when it is zero). A
/// failure is logged and the login goes on (only the grace is lost).
pub(crate) async fn mark_rotated(
    store: &Arc<dyn SessionStore>,
    now: OffsetDateTime,
    grace: Duration,
    old: &Id,
) {
    if grace.is_zero() {
        return;
    }
    let record = Record::new(now, &Expiry::new(grace));
    let created = observe::call(
        store.name(),
        Op::Create,
        store.create(&marker(old), &record),
    )
    .await;
    match created {
        Ok(Created::Yes | Created::IdTaken) => {}
        Err(error) => {
            tracing::warn!(store = store.name(), %error, "the rotation grace marker was not stored");
        }
    }
}

/// Whether `id` left for a new one within `grace`. A store failure answers `false`:
/// the request then goes on as without grace.
pub(crate) async fn rotated_recently(
    store: &Arc<dyn SessionStore>,
    grace: Duration,
    id: &Id,
) -> bool {
    if grace.is_zero() {
        return false;
    }
    match observe::call(store.name(), Op::Load, store.load(&marker(id))).await {
        Ok(found) => found.is_some(),
        Err(error) => {
            tracing::warn!(store = store.name(), %error, "the rotation grace marker could not be read");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_derived_and_distinct() {
        let a = Id::generate().unwrap();
        let b = Id::generate().unwrap();
        assert_eq!(marker(&a), marker(&a));
        assert_ne!(marker(&a), marker(&b));
        assert_ne!(marker(&a), a);
    }
}
