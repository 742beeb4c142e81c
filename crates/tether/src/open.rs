//! Opening the store a [`StoreConfig`] names: connected, its tables migrated, its
//! cleanup running, and a [`SessionLayer`] over it.

use std::sync::Arc;
use std::time::Duration;

use tether_core::{Background, Error, NearCache, SessionStore};

use crate::store_config::StoreConfig;
#[cfg(any(feature = "cookie", feature = "jwt"))]
use crate::store_url::Keys;
use crate::store_url::Target;
use crate::{MemoryStore, SessionLayer, StoreKind};

/// How often an opened store's expired sessions are cleaned up (the stores that need
/// it: memory, file, SQL).
pub const CLEANUP_EVERY: Duration = Duration::from_mins(1);

/// A store opened from configuration, and the layer over it.
///
/// The layer keeps the store's cleanup task running for as long as it (or a clone of
/// it) lives.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let opened = tether::StoreConfig::parse("memory:")?.open().await?;
/// assert_eq!(opened.kind(), tether::StoreKind::Memory);
/// let app: axum::Router = axum::Router::new().layer(opened.layer());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct OpenedStore {
    kind: StoreKind,
    layer: SessionLayer,
    server: Option<Arc<dyn SessionStore>>,
    near_cache: Option<Arc<NearCache>>,
    #[cfg(feature = "jwt")]
    jwt: Option<tether_jwt::JwtStore>,
    #[cfg(feature = "replicated")]
    replicated: Option<tether_replicated::ReplicatedStore>,
}

impl OpenedStore {
    /// Which store this is.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The layer over the store, with tether's defaults (configure it further with
    /// its `with_` methods).
    pub fn layer(&self) -> SessionLayer {
        self.layer.clone()
    }

    /// The server-side store, for code beside the layer (an admin task that ends a
    /// user's sessions): `None` for the client-side stores. Reach sessions by id
    /// through [`HashedIds`](tether_core::HashedIds) as the layer does.
    pub fn server_store(&self) -> Option<Arc<dyn SessionStore>> {
        self.server.clone()
    }

    /// The near cache, when the configuration asked for one: its
    /// [`stats`](NearCache::stats) say how many reads it answered and whether its
    /// channel is live.
    pub fn near_cache(&self) -> Option<&Arc<NearCache>> {
        self.near_cache.as_ref()
    }

    /// The JWT store, for its public keys (`keys().jwks()`) that verifiers fetch.
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub fn jwt(&self) -> Option<&tether_jwt::JwtStore> {
        self.jwt.as_ref()
    }

    /// The replicated store, for its peer routes (`router()`), its catch-up and its
    /// readiness.
    #[cfg(feature = "replicated")]
    #[cfg_attr(docsrs, doc(cfg(feature = "replicated")))]
    pub fn replicated(&self) -> Option<&tether_replicated::ReplicatedStore> {
        self.replicated.as_ref()
    }

    fn new(kind: StoreKind, layer: SessionLayer, server: Option<Arc<dyn SessionStore>>) -> Self {
        Self {
            kind,
            layer,
            server,
            near_cache: None,
            #[cfg(feature = "jwt")]
            jwt: None,
            #[cfg(feature = "replicated")]
            replicated: None,
        }
    }

    /// A server-side store behind its near cache.
    #[cfg(any(feature = "redis", feature = "postgres"))]
    fn cached<S: SessionStore>(
        kind: StoreKind,
        store: tether_core::CachedStore<S>,
        cleanup: bool,
    ) -> Self {
        let cache = store.cache().clone();
        let mut opened = Self::server(kind, Arc::new(store), cleanup);
        opened.near_cache = Some(cache);
        opened
    }

    /// A server-side store, its cleanup kept by the layer when it needs one.
    fn server(kind: StoreKind, store: Arc<dyn SessionStore>, cleanup: bool) -> Self {
        let mut layer = SessionLayer::from_arc(store.clone());
        if cleanup {
            let swept = store.clone();
            layer = layer.keeping(Background::every(CLEANUP_EVERY, move || {
                let store = swept.clone();
                async move { store.sweep_once().await }
            }));
        }
        Self::new(kind, layer, Some(store))
    }
}

impl StoreConfig {
    /// Opens the store: connects (checking the address, not yet reaching it), creates
    /// or upgrades an SQL store's tables, reads key files, and starts the cleanup of
    /// expired sessions where the store needs one (memory, file, SQL: every
    /// [`CLEANUP_EVERY`]). Needs a tokio runtime.
    ///
    /// # Errors
    /// [`Error::Config`] for settings the store refuses (a missing key file, a
    /// replication secret too short, `with_max_sessions` on a store without that
    /// bound); the store's own errors from connecting or migrating.
    // Without an SQL feature nothing here awaits; with one, migrations do.
    #[allow(clippy::unused_async)]
    pub async fn open(self) -> Result<OpenedStore, Error> {
        let kind = self.kind();
        if self.max_sessions.is_some() && !matches!(kind, StoreKind::Memory | StoreKind::Replicated)
        {
            return Err(Error::config(format!(
                "a session cap (max sessions) applies to the memory and replicated stores, not to {kind}"
            )));
        }
        if self.ca_pem.is_some()
            && !matches!(self.target, Target::Redis(_) | Target::RedisCluster(_))
        {
            return Err(Error::config(
                "a CA certificate applies to a rediss:// store (standalone or Cluster)",
            ));
        }
        if self.near_cache.is_some() && !kind.has_near_cache() {
            return Err(Error::config(format!(
                "a near cache needs a store whose server announces changes (Redis, PostgreSQL); the {kind} store has no such channel"
            )));
        }
        match self.target {
            Target::Memory => {
                let store = match self.max_sessions {
                    Some(max) => MemoryStore::new().with_max_sessions(max),
                    None => MemoryStore::new(),
                };
                Ok(OpenedStore::server(kind, Arc::new(store), true))
            }
            #[cfg(feature = "file")]
            Target::File(dir) => {
                let store = tether_file::FileStore::open(&dir)?;
                Ok(OpenedStore::server(kind, Arc::new(store), true))
            }
            #[cfg(feature = "redis")]
            Target::Redis(_) | Target::RedisCluster(_) | Target::RedisSentinel { .. } => {
                let store = crate::open_redis::open(self.target, self.ca_pem)?;
                match self.near_cache {
                    Some(config) => Ok(OpenedStore::cached(
                        kind,
                        store.with_near_cache(config)?,
                        false,
                    )),
                    None => Ok(OpenedStore::server(kind, Arc::new(store), false)),
                }
            }
            #[cfg(feature = "mysql")]
            Target::MySql(url) => {
                let store = tether_mysql::MySqlStore::connect(&url)?;
                if self.migrate {
                    store.migrate().await?;
                }
                Ok(OpenedStore::server(kind, Arc::new(store), true))
            }
            #[cfg(feature = "postgres")]
            Target::Postgres(url) => {
                let store = tether_postgres::PostgresStore::connect(&url)?;
                if self.migrate {
                    store.migrate().await?;
                }
                match self.near_cache {
                    Some(config) => Ok(OpenedStore::cached(
                        kind,
                        store.with_near_cache(config)?,
                        true,
                    )),
                    None => Ok(OpenedStore::server(kind, Arc::new(store), true)),
                }
            }
            #[cfg(feature = "sqlite")]
            Target::Sqlite(url) => {
                let store = tether_sqlite::SqliteStore::connect(&url)?;
                if self.migrate {
                    store.migrate().await?;
                }
                Ok(OpenedStore::server(kind, Arc::new(store), true))
            }
            #[cfg(feature = "cookie")]
            Target::Cookie => cookie(keys(self.keys, kind)?),
            #[cfg(feature = "jwt")]
            Target::Jwt => jwt(keys(self.keys, kind)?),
            #[cfg(feature = "replicated")]
            Target::Replicated => replicated(
                self.replication_secret,
                self.peers,
                self.advertise,
                self.max_sessions,
            ),
            // A kind whose feature is off never parses; one built with
            // `StoreConfig::file` or `without_url` may still name it.
            #[allow(unreachable_patterns)]
            _ => Err(Error::config(format!(
                "the {kind} store is not compiled in: enable tether's `{}` cargo feature",
                kind.feature().unwrap_or_default()
            ))),
        }
    }
}

/// The keys the configuration gives, or the error that names how to give them.
#[cfg(any(feature = "cookie", feature = "jwt"))]
fn keys(keys: Option<Keys>, kind: StoreKind) -> Result<Keys, Error> {
    keys.ok_or_else(|| {
        Error::config(format!(
            "the {kind} store needs its keys: `{kind}:?key_file=PATH`, or with_key_file / with_keys"
        ))
    })
}

#[cfg(feature = "cookie")]
fn cookie(keys: Keys) -> Result<OpenedStore, Error> {
    let keys = match keys {
        Keys::Text(text) => tether_cookie::KeyRing::parse(&text),
        Keys::File(path) => tether_cookie::KeyRing::from_file(path),
    }
    .map_err(|e| Error::config(format!("the cookie store's keys: {e}")))?;
    let layer = SessionLayer::client_side(tether_cookie::CookieStore::new(keys));
    Ok(OpenedStore::new(StoreKind::Cookie, layer, None))
}

#[cfg(feature = "jwt")]
fn jwt(keys: Keys) -> Result<OpenedStore, Error> {
    let keys = match keys {
        Keys::Text(text) => tether_jwt::JwtKeys::parse(&text),
        Keys::File(path) => tether_jwt::JwtKeys::from_file(path),
    }
    .map_err(|e| Error::config(format!("the JWT store's keys: {e}")))?;
    let store = tether_jwt::JwtStore::new(keys);
    let layer = SessionLayer::client_side(store.clone());
    let mut opened = OpenedStore::new(StoreKind::Jwt, layer, None);
    opened.jwt = Some(store);
    Ok(opened)
}

#[cfg(feature = "replicated")]
fn replicated(
    secret: Option<String>,
    peers: Vec<String>,
    advertise: Option<String>,
    max_sessions: Option<usize>,
) -> Result<OpenedStore, Error> {
    let secret = secret.ok_or_else(|| {
        Error::config("the replicated store needs its secret (with_replication_secret)")
    })?;
    let mut builder = tether_replicated::ReplicatedStore::builder(secret).peers(peers);
    if let Some(max) = max_sessions {
        builder = builder.max_sessions(max);
    }
    if let Some(url) = advertise {
        builder = builder.advertise(url);
    }
    let store = builder.start()?;
    let mut opened = OpenedStore::server(StoreKind::Replicated, Arc::new(store.clone()), false);
    opened.replicated = Some(store);
    Ok(opened)
}
