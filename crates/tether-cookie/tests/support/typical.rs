//! The typical session the cookie tests and the `seal_cost` example seal: a user, a
//! CSRF token, a small cart, a preference and a counter.

use serde_json::json;
use tether_core::{Expiry, Record};
use time::OffsetDateTime;

/// The typical session, created at `now`.
pub(crate) fn typical_record(now: OffsetDateTime) -> Record {
    let mut record = Record::new(now, &Expiry::default());
    record.user = Some("alice.smith".into());
    record
        .data
        .insert("csrf".into(), json!("3q2-7wAAAAAAAAAAAAAAAA"));
    record.data.insert(
        "cart".into(),
        json!([{"sku": "A-1001", "qty": 2}, {"sku": "B-2002", "qty": 1}]),
    );
    record.data.insert("theme".into(), json!("dark"));
    record.data.insert("counter".into(), json!(41));
    record
}
