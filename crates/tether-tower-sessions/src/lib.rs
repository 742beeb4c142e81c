//! tether's stores behind tower-sessions' `SessionStore` trait.
//!
//! Apps built on [tower-sessions] (and on what is built on it: axum-login,
//! axum-messages) keep their code and their `SessionManagerLayer`, and put any tether
//! store under it:
//!
//! ```
//! # #[cfg(feature = "v0_15")] {
//! use tether_tower_sessions::TowerSessions;
//! # use tower_sessions_015 as tower_sessions;
//! use tower_sessions::SessionManagerLayer;
//!
//! # let dir = std::env::temp_dir().join(format!("tether-doc-ts-{}", std::process::id()));
//! let store = tether::file::FileStore::open(&dir)?; // or RedisStore, PostgresStore, …
//! let layer = SessionManagerLayer::new(TowerSessions::new(store));
//! # std::fs::remove_dir_all(&dir).ok();
//! # }
//! # Ok::<(), tether::Error>(())
//! ```
//!
//! What it keeps:
//! - **Ids as they are.** tower-sessions and tether both write a session id as 128
//!   random bits in 22 URL-safe base64 characters, byte for byte the same, so a cookie
//!   set before the switch names the same session after it.
//! - **No resurrection.** A save of a session that was deleted meanwhile (logged out
//!   in another tab, ended by "log out everywhere", expired) writes nothing; a create
//!   whose id is taken picks another id instead of overwriting.
//! - **Users.** The user axum-login stores in the session (`axum-login.data`'s
//!   `user_id`) is bound as the tether user, so a store's `user_sessions`,
//!   `delete_user_sessions` ("log out everywhere") and the per-user cap
//!   ([`TowerSessions::with_user_cap`]) work for axum-login apps.
//! - **Expired-record deletion.** `ExpiredDeletion` for every store, with
//!   tower-sessions-core's `deletion-task` feature on, so an app that called
//!   `continuously_delete_expired` on a sqlx store builds unchanged. It runs the
//!   store's own sweep ([`tether_core::SessionStore::sweep_once`]: the SQL stores, the
//!   file store, the memory store; nothing for Redis, which expires by TTL) and never
//!   ends the task over a failed sweep (it logs it and tries again next period).
//!
//! # Several instances
//!
//! Every instance must accept every other's cookie: when the app signs or encrypts
//! the session cookie (`SessionManagerLayer::with_signed` / `with_private`), the key
//! comes from configuration shared by all instances, never `Key::generate()` at
//! start-up (each instance would reject the others' cookies, whatever the store).
//!
//! What only tether's own layer gives: per-key merges of concurrent requests
//! (tower-sessions saves the whole record, so the last writer wins), lock mode, the
//! refresh threshold (tower-sessions writes on every request with
//! `Expiry::OnInactivity`), 503 on a store failure (tower-sessions answers 500), and
//! the cookie defaults (`Secure`, `__Host-`). See `docs/migrating-from-tower-sessions.md`.
//!
//! [tower-sessions]: https://docs.rs/tower-sessions
//!
//! # Features
//! - `v0_14`: tower-sessions 0.14 (axum-login 0.18 and axum-messages 0.8 use it).
//! - `v0_15`: tower-sessions 0.15.
//!
//! Both are on by default; the trait is implemented once for each.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod implement;

mod adapter;
mod convert;
mod import;
mod user;
#[cfg(feature = "v0_14")]
#[cfg_attr(docsrs, doc(cfg(feature = "v0_14")))]
pub mod v0_14;
#[cfg(feature = "v0_15")]
#[cfg_attr(docsrs, doc(cfg(feature = "v0_15")))]
pub mod v0_15;

pub use adapter::TowerSessions;
pub use import::{ImportError, Imported};
pub use user::{AXUM_LOGIN_DATA_KEY, UserOf};

#[cfg(doctest)]
#[doc = include_str!("../../../docs/migrating-from-tower-sessions.md")]
struct MigrationGuideDoctests;
