//! Running a client-side store through the suite.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tether_core::{
    Capabilities, Changes, ClientStore, Created, Id, Record, Result, Saved, SessionStore, Touch,
    async_trait,
};
use time::OffsetDateTime;

/// The cookie name the jar seals for.
const COOKIE: &str = "tether";

/// Plays the browser for a [`ClientStore`]: keeps the latest cookie value of each
/// session, so the suite's cases can run against sealing and opening. What it checks
/// is the store's: exact round trips, expiry from the sealed payload, hostile values,
/// the size limit, and clear refusal of what needs server state.
///
/// ```
/// # fn with(store: impl tether_core::ClientStore) {
/// let suite = tether_conformance::Suite::new(tether_conformance::ClientJar::new(store));
/// # }
/// ```
#[derive(Debug)]
pub struct ClientJar {
    store: Arc<dyn ClientStore>,
    cookies: Mutex<HashMap<Id, String>>,
}

impl ClientJar {
    /// A jar around `store`.
    pub fn new(store: impl ClientStore) -> Self {
        Self {
            store: Arc::new(store),
            cookies: Mutex::default(),
        }
    }

    fn cookies(&self) -> MutexGuard<'_, HashMap<Id, String>> {
        self.cookies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn open(&self, value: Option<&String>) -> Option<Record> {
        value.and_then(|v| self.store.open(v, COOKIE, OffsetDateTime::now_utc()))
    }

    fn seal(&self, record: &Record) -> Result<String> {
        self.store.seal(record, COOKIE, OffsetDateTime::now_utc())
    }
}

#[async_trait]
impl SessionStore for ClientJar {
    fn name(&self) -> &'static str {
        self.store.name()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::minimal(Some(self.store.size_limit()))
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        Ok(self.open(self.cookies().get(id)))
    }

    async fn create(&self, id: &Id, record: &Record) -> Result<Created> {
        let mut cookies = self.cookies();
        if self.open(cookies.get(id)).is_some() {
            return Ok(Created::IdTaken);
        }
        let value = self.seal(record)?;
        cookies.insert(*id, value);
        Ok(Created::Yes)
    }

    async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved> {
        let mut cookies = self.cookies();
        let Some(mut record) = self.open(cookies.get(id)) else {
            return Ok(Saved::Gone);
        };
        record.apply(changes);
        let value = self.seal(&record)?;
        cookies.insert(*id, value);
        Ok(Saved::of(&record))
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        let mut cookies = self.cookies();
        let Some(mut record) = self.open(cookies.get(id)) else {
            return Ok(false);
        };
        record.touch(touch);
        let value = self.seal(&record)?;
        cookies.insert(*id, value);
        Ok(true)
    }

    async fn delete(&self, id: &Id) -> Result<bool> {
        let removed = self.cookies().remove(id);
        Ok(self.open(removed.as_ref()).is_some())
    }

    async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
        let mut cookies = self.cookies();
        let removed = cookies.remove(old);
        let Some(mut record) = self.open(removed.as_ref()) else {
            return Ok(Saved::Gone);
        };
        record.apply(changes);
        let value = self.seal(&record)?;
        cookies.insert(*new, value);
        Ok(Saved::of(&record))
    }
}

/// The typical session the client-side stores' tests and size figures seal: a user,
/// a CSRF token, a small cart, a preference and a counter, created at `now`.
///
/// ```
/// let record = tether_conformance::typical_record(time::OffsetDateTime::now_utc());
/// assert_eq!(record.user.as_deref(), Some("alice.smith"));
/// ```
pub fn typical_record(now: OffsetDateTime) -> Record {
    let mut record = Record::new(now, &tether_core::Expiry::default());
    record.user = Some("alice.smith".into());
    record
        .data
        .insert("csrf".into(), serde_json::json!("3q2-7wAAAAAAAAAAAAAAAA"));
    record.data.insert(
        "cart".into(),
        serde_json::json!([{"sku": "A-1001", "qty": 2}, {"sku": "B-2002", "qty": 1}]),
    );
    record
        .data
        .insert("theme".into(), serde_json::json!("dark"));
    record.data.insert("counter".into(), serde_json::json!(41));
    record
}
