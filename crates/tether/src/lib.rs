//! Sessions that survive any server.
//!
//! `tether` gives an Axum (or any Tower) app one [`SessionLayer`] and a choice of
//! stores: [`MemoryStore`] here, and behind cargo features a shared directory
//! (`file`, on by default: [`file::FileStore`]), Redis (`redis`), MySQL/MariaDB
//! (`mysql`), PostgreSQL (`postgres`), SQLite (`sqlite`), an encrypted cookie
//! (`cookie`), a signed JWT in the cookie (`jwt`) and peer-to-peer replication
//! (`replicated`). A handler takes a [`Session`] and cannot tell which store it runs
//! on; [`StoreConfig`] opens any of them from a URL, such as an environment variable.
//! On Redis and PostgreSQL a near cache ([`StoreConfig::with_near_cache`], or
//! `?near_cache=on` on the URL) keeps sessions in each instance's memory, dropped
//! whenever the server announces that any instance changed them.
//! The [`tour`] walks through the Session API and the layer's settings.
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use tether::{MemoryStore, Session, SessionError, SessionLayer};
//!
//! async fn login(session: Session) -> Result<&'static str, SessionError> {
//!     session.cycle_id().await?; // a new id on every login
//!     session.set_user("alice").await?;
//!     Ok("welcome")
//! }
//!
//! async fn me(session: Session) -> Result<String, SessionError> {
//!     Ok(session.user().await?.unwrap_or_else(|| "nobody".into()))
//! }
//!
//! let app: Router = Router::new()
//!     .route("/login", post(login))
//!     .route("/me", get(me))
//!     .layer(SessionLayer::new(MemoryStore::new()));
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod access;
mod backend;
mod commit;
mod config;
mod cookie_header;
mod detached;
mod error;
mod events;
mod expiry;
mod future;
mod grace;
mod layer;
mod lock;
mod memory;
mod observe;
mod open;
#[cfg(feature = "redis")]
mod open_redis;
mod reissue;
mod sealed;
mod service;
mod session;
mod signed;
mod store_config;
mod store_kind;
mod store_url;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
mod transport;
mod user;

pub use ::cookie::SameSite;
pub use config::{DEFAULT_COOKIE_NAME, DEFAULT_REFRESH_SHARE, Transport};
pub use cookie_header::cookie_values;
pub use detached::DetachedSession;
pub use error::{ErrorHandler, SessionError, default_error_response};
pub use events::{EventHook, SessionEvent};
pub use future::ResponseFuture;
pub use grace::DEFAULT_ROTATION_GRACE;
pub use layer::SessionLayer;
pub use memory::MemoryStore;
pub use open::{CLEANUP_EVERY, OpenedStore};
pub use sealed::DataKeys;
pub use service::SessionService;
pub use session::{MissingSessionLayer, Session};
pub use signed::IdKeys;
pub use store_config::StoreConfig;
pub use store_kind::{StoreKind, UnknownStoreKind};
pub use store_url::StoreConfigError;
pub use tether_core::{
    CachedStore, Capabilities, Changes, ClientStore, Created, Error, Expiry, Freshness, Id,
    Lifetime, LockOptions, LockToken, NearCache, NearCacheConfig, NearCacheStats, Record, Saved,
    SessionInfo, SessionStore, Touch,
};

/// The store contract, for implementing a store of your own.
pub use tether_core as core;

/// The shared-directory store (feature `file`, on by default).
///
/// ```no_run
/// let store = tether::file::FileStore::open("/srv/shared/sessions")?;
/// let layer = tether::SessionLayer::new(store);
/// # Ok::<(), tether::Error>(())
/// ```
#[cfg(feature = "file")]
#[cfg_attr(docsrs, doc(cfg(feature = "file")))]
pub use tether_file as file;

/// The Redis store (feature `redis`).
///
/// ```no_run
/// let store = tether::redis::RedisStore::connect("redis://127.0.0.1:6379")?;
/// let layer = tether::SessionLayer::new(store);
/// # Ok::<(), tether::Error>(())
/// ```
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use tether_redis as redis;

/// The MySQL / MariaDB store (feature `mysql`).
///
/// ```no_run
/// # async fn f() -> Result<(), tether::Error> {
/// let store = tether::mysql::MySqlStore::connect("mysql://app:secret@127.0.0.1/app")?;
/// store.migrate().await?;
/// let layer = tether::SessionLayer::new(store);
/// # Ok(()) }
/// ```
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub use tether_mysql as mysql;

/// The PostgreSQL store (feature `postgres`).
///
/// ```no_run
/// # async fn f() -> Result<(), tether::Error> {
/// let store = tether::postgres::PostgresStore::connect("postgres://app:secret@127.0.0.1/app")?;
/// store.migrate().await?;
/// let layer = tether::SessionLayer::new(store);
/// # Ok(()) }
/// ```
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use tether_postgres as postgres;

/// The SQLite store (feature `sqlite`): one database file that the processes of one
/// machine share.
///
/// ```no_run
/// # async fn f() -> Result<(), tether::Error> {
/// let store = tether::sqlite::SqliteStore::connect("sqlite:///var/lib/app/sessions.db")?;
/// store.migrate().await?;
/// let layer = tether::SessionLayer::new(store);
/// # Ok(()) }
/// ```
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use tether_sqlite as sqlite;

/// The client-side store (feature `cookie`): the whole session, encrypted, in the cookie.
///
/// ```
/// use tether::cookie::{CookieStore, KeyRing};
/// let keys = KeyRing::parse(&KeyRing::generate_key()?)?;
/// let layer = tether::SessionLayer::client_side(CookieStore::new(keys));
/// # Ok::<(), tether::cookie::KeyError>(())
/// ```
#[cfg(feature = "cookie")]
#[cfg_attr(docsrs, doc(cfg(feature = "cookie")))]
pub use tether_cookie as cookie;

/// The JWT store (feature `jwt`): the session as a signed token other services can
/// verify with a public key.
///
/// ```
/// use tether::jwt::{JwtKeys, JwtStore};
/// let keys = JwtKeys::parse(&JwtKeys::generate_ed25519("k1")?)?;
/// let layer = tether::SessionLayer::client_side(JwtStore::new(keys));
/// # Ok::<(), tether::jwt::KeyError>(())
/// ```
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub use tether_jwt as jwt;

/// The replicated store (feature `replicated`): every instance keeps every session and
/// pushes changes to its peers.
#[cfg(feature = "replicated")]
#[cfg_attr(docsrs, doc(cfg(feature = "replicated")))]
pub use tether_replicated as replicated;

pub mod tour {
    #![doc = include_str!("../docs/tour.md")]
}

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct RegistryReadmeDoctests;

/// The guides in `docs/guide`: each example there compiles.
#[cfg(doctest)]
mod guides {
    #[doc = include_str!("../../../docs/guide/choosing.md")]
    struct Choosing;
    #[doc = include_str!("../../../docs/guide/stores.md")]
    struct Stores;
    #[doc = include_str!("../../../docs/guide/near-cache.md")]
    struct NearCache;
    #[doc = include_str!("../../../docs/guide/production.md")]
    struct Production;
    #[doc = include_str!("../../../docs/guide/security.md")]
    struct Security;
    #[doc = include_str!("../../../docs/guide/tower-sessions.md")]
    struct TowerSessions;
    #[doc = include_str!("../../../docs/guide/writing-a-store.md")]
    struct WritingAStore;
}
