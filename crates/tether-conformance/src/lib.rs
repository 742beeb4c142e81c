//! The conformance suite every tether store passes: the contract, one case per point
//! of it (each proven to catch the defect written for it), and the checks a store
//! author runs against a real backend.
//!
//! Add it as a dev-dependency of your store crate and run [`Suite::run`] from a test;
//! a client-side store runs through [`ClientJar`].
//!
//! # The contract
//!
//! Every case names the point it checks ([`Case::contract`]):
//!
//! 1. **Ids.** 128 bits or more from a CSPRNG, URL-safe, fixed length; a value not of
//!    that exact shape is no id. An unknown or expired id is never adopted: `save`,
//!    `touch` and `cycle_id` on it write nothing, and `create` never overwrites.
//! 2. **Lazy.** (The layer's: a request that does not touch the session does no store
//!    I/O; checked by `tether`'s layer tests, not here.)
//! 3. **Atomic save.** A save is one atomic operation and never brings back a session
//!    that was deleted meanwhile.
//! 4. **No lost updates.** A save merges only the keys it changed onto the newest
//!    record and moves the version on; concurrent saves of different keys all persist,
//!    of one key leave one written value. Lock mode serialises a session's requests,
//!    with a bounded wait, owner-only release and a TTL for dead holders.
//! 5. **Id rotation.** `cycle_id` moves the record to a new id atomically; the old id
//!    stops working.
//! 6. **Expiry.** Idle and absolute deadlines are enforced on load, whatever cleanup
//!    ran; a refresh extends the idle deadline, never past the absolute one; a write
//!    reports when the session now expires.
//! 7. **Users.** A store lists a user's live sessions, follows rebinding, ends them all
//!    ("log out everywhere"), caps them per user, and keeps hostile user names apart.
//! 8. **Failure.** A store whose backend is down answers errors, never "no session".
//! 9. **Bad input.** Hostile keys and values, and large records, round-trip exactly.
//!
//! Where a store answers reads at once (`SessionStore::load_ready`, only if its
//! `reads_at_once` says it may), every read the cases make checks that answer against
//! `load`'s: the same session, never one already past its deadlines, and never "no
//! session" while the backend is down.
//!
//! A store that lacks a capability (see [`tether_core::Capabilities`]) must refuse the
//! matching operations with [`tether_core::Error::Unsupported`] instead of faking them.
//!
//! One call runs every case against a store and panics with a list of the cases it
//! failed:
//!
//! ```
//! # use std::collections::HashMap; use std::sync::Mutex; use tether_core::*;
//! # #[derive(Debug, Default)] struct Tiny(Mutex<HashMap<Id, Record>>);
//! # #[async_trait] impl SessionStore for Tiny {
//! #   fn name(&self) -> &'static str { "tiny" }
//! #   fn capabilities(&self) -> Capabilities { Capabilities::minimal(None) }
//! #   async fn load(&self, id: &Id) -> Result<Option<Record>> { let now = time::OffsetDateTime::now_utc(); Ok(self.0.lock().unwrap().get(id).filter(|r| !r.is_expired(now)).cloned()) }
//! #   async fn create(&self, id: &Id, r: &Record) -> Result<Created> { let mut m = self.0.lock().unwrap(); if m.contains_key(id) { return Ok(Created::IdTaken) } m.insert(*id, r.clone()); Ok(Created::Yes) }
//! #   async fn save(&self, id: &Id, c: &Changes) -> Result<Saved> { let now = time::OffsetDateTime::now_utc(); let mut m = self.0.lock().unwrap(); match m.get_mut(id).filter(|r| !r.is_expired(now)) { Some(r) => { r.apply(c); Ok(Saved::of(r)) } None => Ok(Saved::Gone) } }
//! #   async fn touch(&self, id: &Id, t: &Touch) -> Result<bool> { let now = time::OffsetDateTime::now_utc(); let mut m = self.0.lock().unwrap(); match m.get_mut(id).filter(|r| !r.is_expired(now)) { Some(r) => { r.touch(t); Ok(true) } None => Ok(false) } }
//! #   async fn delete(&self, id: &Id) -> Result<bool> { Ok(self.0.lock().unwrap().remove(id).is_some()) }
//! #   async fn cycle_id(&self, old: &Id, new: &Id, c: &Changes) -> Result<Saved> { let now = time::OffsetDateTime::now_utc(); let mut m = self.0.lock().unwrap(); match m.remove(old).filter(|r| !r.is_expired(now)) { Some(mut r) => { r.apply(c); let s = Saved::of(&r); m.insert(*new, r); Ok(s) } None => Ok(Saved::Gone) } }
//! # }
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! tether_conformance::Suite::new(Tiny::default()).run().await;
//! # });
//! ```
//!
//! A store that lacks a capability (see [`tether_core::Capabilities`]) is checked to
//! refuse those operations with [`tether_core::Error::Unsupported`] instead of faking
//! them. Give the suite a second instance of the store pointed at a dead backend with
//! [`Suite::with_unavailable`] and it checks that failures surface as errors.

pub mod app;
pub mod at_rest;
mod cases;
pub mod http;
mod jar;
pub mod lifetime;
pub mod near_cache;

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tether_core::SessionStore;

pub use cases::CASES;
pub use jar::{ClientJar, typical_record};

/// A store shared by the cases.
pub type DynStore = Arc<dyn SessionStore>;

/// One checked point of the contract.
pub struct Case {
    /// The case's name, as reported.
    pub name: &'static str,
    /// The contract point (the numbering above) it checks.
    pub contract: u8,
    /// Runs the case against the store, and the unavailable store if any.
    pub run: fn(DynStore, Option<DynStore>) -> BoxFuture<'static, Outcome>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Case({}, contract {})", self.name, self.contract)
    }
}

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The store kept this part of the contract.
    Pass,
    /// It did not; the text says how.
    Fail(String),
    /// The case cannot run here (no unavailable store was given).
    NotApplicable(&'static str),
}

/// The suite, bound to one store.
pub struct Suite {
    store: DynStore,
    unavailable: Option<DynStore>,
}

impl fmt::Debug for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Suite")
            .field("store", &self.store.name())
            .field("unavailable", &self.unavailable.is_some())
            .finish()
    }
}

impl Suite {
    /// The suite for `store`. Cases use fresh random ids and user names, so the store
    /// may hold other data.
    pub fn new(store: impl SessionStore) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// The suite for a shared store.
    pub fn from_arc(store: DynStore) -> Self {
        Self {
            store,
            unavailable: None,
        }
    }

    /// An instance of the same store whose backend is down (a closed port, a missing
    /// directory): every operation must fail with an error, never answer "no session".
    #[must_use]
    pub fn with_unavailable(mut self, store: impl SessionStore) -> Self {
        self.unavailable = Some(Arc::new(store));
        self
    }

    /// Runs one case by name.
    ///
    /// # Panics
    /// If no case has that name.
    pub async fn run_case(&self, name: &str) -> Outcome {
        let case = CASES
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no conformance case named {name}"));
        (case.run)(self.store.clone(), self.unavailable.clone()).await
    }

    /// Runs every case, returning each outcome.
    pub async fn report(&self) -> Vec<(&'static str, Outcome)> {
        let mut outcomes = Vec::with_capacity(CASES.len());
        for case in CASES {
            let outcome = (case.run)(self.store.clone(), self.unavailable.clone()).await;
            outcomes.push((case.name, outcome));
        }
        outcomes
    }

    /// Runs every case and panics listing the failures; then drives the store
    /// through the layer for what only the layer shows (a session's own lifetime:
    /// [`lifetime::check_server_store`], and an absolute lifetime that no `set_expiry`
    /// restarts: [`lifetime::check_absolute_from_creation`], about 6 s of real waits).
    ///
    /// # Panics
    /// When the store breaks the contract.
    pub async fn run(&self) {
        let report = self.report().await;
        let failures: Vec<String> = report
            .iter()
            .filter_map(|(name, outcome)| match outcome {
                Outcome::Fail(why) => Some(format!("  {name}: {why}")),
                _ => None,
            })
            .collect();
        let skipped: Vec<&str> = report
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::NotApplicable(_)))
            .map(|(n, _)| *n)
            .collect();
        eprintln!(
            "conformance ({}): {} cases, {} failed, not applicable: {:?}",
            self.store.name(),
            report.len(),
            failures.len(),
            skipped
        );
        assert!(
            failures.is_empty(),
            "the {} store breaks the session contract:\n{}",
            self.store.name(),
            failures.join("\n")
        );
        lifetime::check_server_store(self.store.clone()).await;
        lifetime::check_absolute_from_creation(tether::SessionLayer::from_arc(self.store.clone()))
            .await;
    }
}

/// An app's migrations and a store's on one database: `app` and `store` each run
/// their migrations; both must succeed in either order, and again (as every start of
/// the app runs both).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// tether_conformance::check_migrations_coexist(async || Ok(()), async || Ok(())).await;
/// # }
/// ```
///
/// # Panics
/// When a run fails.
pub async fn check_migrations_coexist<A, S>(mut app: A, mut store: S)
where
    A: AsyncFnMut() -> Result<(), String>,
    S: AsyncFnMut() -> Result<(), String>,
{
    for round in 1..=2 {
        app()
            .await
            .unwrap_or_else(|e| panic!("the app's migrations, round {round}: {e}"));
        store()
            .await
            .unwrap_or_else(|e| panic!("the store's migrations, round {round}: {e}"));
    }
}
