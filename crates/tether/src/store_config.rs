//! A store named by configuration: one URL (and, for some stores, key material),
//! parsed into a [`StoreConfig`] that [`StoreConfig::open`] turns into a layer.

use std::fmt;
use std::path::PathBuf;

use crate::StoreKind;
use crate::store_url::StoreConfigError;
use crate::store_url::{Keys, Target};

/// Where sessions live, as configuration says it: parsed from a URL, then given what
/// the URL does not hold (key files, a CA, a replication secret) and opened.
///
/// | URL | Store (feature) |
/// |---|---|
/// | `memory:` | [`MemoryStore`](crate::MemoryStore) |
/// | `file:///DIR` (or `file:DIR`, relative) | the file store (`file`) |
/// | `redis://…`, `rediss://…` | Redis (`redis`) |
/// | `redis://h1:6379,h2:6379,…` | Redis Cluster: several nodes (`redis`) |
/// | `redis+sentinel://[:PASSWORD@]S1:26379,S2:26379/MASTER[/DB]` (or `rediss+sentinel`) | Redis behind Sentinel; the password and database are the master's (`redis`) |
/// | `mysql://…`, `mariadb://…` | MySQL / MariaDB (`mysql`) |
/// | `postgres://…`, `postgresql://…` | PostgreSQL (`postgres`) |
/// | `sqlite://PATH` | SQLite, the file created when missing (`sqlite`) |
/// | `cookie:` or `cookie:?key_file=PATH` | sealed in the cookie (`cookie`) |
/// | `jwt:` or `jwt:?key_file=PATH` | a signed JWT in the cookie (`jwt`) |
/// | `replicated:` | replicated between instances (`replicated`) |
///
/// A Redis or PostgreSQL URL may end in `?near_cache=on` (with the driver's own
/// query settings, in any order): the store keeps a near cache of the sessions it
/// read, as [`StoreConfig::with_near_cache`] does with its defaults;
/// `near_cache=pushed` makes its reads [`Freshness::Pushed`](crate::Freshness).
///
/// A scheme whose feature is off, or a part of the URL that cannot be right, is a
/// [`StoreConfigError`] that names the feature or the part; neither it nor this
/// type's `Debug` ever shows a password.
///
/// ```
/// use tether::{StoreConfig, StoreKind};
/// let config = StoreConfig::parse("memory:")?;
/// assert_eq!(config.kind(), StoreKind::Memory);
///
/// # #[cfg(feature = "redis")] {
/// let config = StoreConfig::parse("redis://:s3cret@10.0.0.5:6379/2")?;
/// assert_eq!(config.kind(), StoreKind::Redis);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # }
/// let err = StoreConfig::parse("mongodb://db").unwrap_err();
/// assert!(err.to_string().contains("mongodb"));
/// # Ok::<(), tether::StoreConfigError>(())
/// ```
///
/// An app takes its store from one environment variable, and opens it at start-up:
///
/// ```no_run
/// # async fn start() -> Result<(), Box<dyn std::error::Error>> {
/// let opened = tether::StoreConfig::from_env("SESSION_STORE")?.open().await?;
/// let app: axum::Router = axum::Router::new().layer(opened.layer());
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub(crate) target: Target,
    pub(crate) keys: Option<Keys>,
    pub(crate) ca_pem: Option<Vec<u8>>,
    pub(crate) replication_secret: Option<String>,
    pub(crate) peers: Vec<String>,
    pub(crate) advertise: Option<String>,
    pub(crate) max_sessions: Option<usize>,
    pub(crate) migrate: bool,
    pub(crate) near_cache: Option<tether_core::NearCacheConfig>,
}

impl StoreConfig {
    fn new(target: Target) -> Self {
        Self {
            target,
            keys: None,
            ca_pem: None,
            replication_secret: None,
            peers: Vec::new(),
            advertise: None,
            max_sessions: None,
            migrate: true,
            near_cache: None,
        }
    }

    /// Parses a store URL (see the table above).
    ///
    /// # Errors
    /// [`StoreConfigError`]: no or an unknown scheme, a scheme whose feature is off,
    /// or the part of the URL that is wrong.
    pub fn parse(url: &str) -> Result<Self, StoreConfigError> {
        let (url, near_cache) = crate::store_url::take_near_cache(url.trim())?;
        let mut config = crate::store_url::parse(&url).map(Self::new_with_keys)?;
        if let Some(freshness) = near_cache {
            if !config.kind().has_near_cache() {
                return Err(StoreConfigError::Invalid {
                    part: "query",
                    reason: format!(
                        "near_cache applies to the redis and postgres stores, whose servers announce changes; not to {}",
                        config.kind()
                    ),
                });
            }
            config.near_cache =
                Some(tether_core::NearCacheConfig::default().with_freshness(freshness));
        }
        Ok(config)
    }

    fn new_with_keys((target, keys): (Target, Option<Keys>)) -> Self {
        let mut config = Self::new(target);
        config.keys = keys;
        config
    }

    /// Parses the store URL in the environment variable `var`.
    ///
    /// # Errors
    /// [`StoreConfigError::MissingEnv`] when it is not set (or not UTF-8), else as
    /// [`StoreConfig::parse`].
    pub fn from_env(var: &str) -> Result<Self, StoreConfigError> {
        let url = std::env::var(var).map_err(|_| StoreConfigError::MissingEnv {
            var: var.to_owned(),
        })?;
        Self::parse(&url)
    }

    /// The file store in `dir`, without a URL.
    ///
    /// ```
    /// let config = tether::StoreConfig::file("/var/lib/app/sessions");
    /// assert_eq!(config.kind(), tether::StoreKind::File);
    /// ```
    pub fn file(dir: impl Into<PathBuf>) -> Self {
        Self::new(Target::File(dir.into()))
    }

    /// The store `kind` with nothing more to say in a URL: memory, cookie, JWT or
    /// replicated (their settings come from the `with_` methods). `None` for a store
    /// that needs an address.
    ///
    /// ```
    /// use tether::{StoreConfig, StoreKind};
    /// assert!(StoreConfig::without_url(StoreKind::Jwt).is_some());
    /// assert!(StoreConfig::without_url(StoreKind::Redis).is_none());
    /// ```
    pub fn without_url(kind: StoreKind) -> Option<Self> {
        let target = match kind {
            StoreKind::Memory => Target::Memory,
            StoreKind::Cookie => Target::Cookie,
            StoreKind::Jwt => Target::Jwt,
            StoreKind::Replicated => Target::Replicated,
            StoreKind::File
            | StoreKind::Redis
            | StoreKind::MySql
            | StoreKind::Postgres
            | StoreKind::Sqlite => return None,
        };
        Some(Self::new(target))
    }

    /// Which store the configuration names.
    pub fn kind(&self) -> StoreKind {
        match self.target {
            Target::Memory => StoreKind::Memory,
            Target::File(_) => StoreKind::File,
            Target::Redis(_) | Target::RedisCluster(_) | Target::RedisSentinel { .. } => {
                StoreKind::Redis
            }
            Target::MySql(_) => StoreKind::MySql,
            Target::Postgres(_) => StoreKind::Postgres,
            Target::Sqlite(_) => StoreKind::Sqlite,
            Target::Cookie => StoreKind::Cookie,
            Target::Jwt => StoreKind::Jwt,
            Target::Replicated => StoreKind::Replicated,
        }
    }

    /// The cookie store's keys (one base64url key per line, newest first) or the JWT
    /// store's (`kid ed25519 SEED` per line), as text.
    #[must_use]
    pub fn with_keys(mut self, text: impl Into<String>) -> Self {
        self.keys = Some(Keys::Text(text.into()));
        self
    }

    /// The cookie or JWT store's key file (0600, as the stores require).
    #[must_use]
    pub fn with_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.keys = Some(Keys::File(path.into()));
        self
    }

    /// The CA certificate (PEM) a `rediss://` server certificate is checked against,
    /// when no public CA signed it.
    #[must_use]
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// The replicated store's secret, shared by every instance.
    #[must_use]
    pub fn with_replication_secret(mut self, secret: impl Into<String>) -> Self {
        self.replication_secret = Some(secret.into());
        self
    }

    /// The replicated store's peers: their replication URLs (`http://HOST:PORT/_tether`).
    /// With [`StoreConfig::with_advertised_url`] they are seeds: one live one is
    /// enough, and members that join later are learned at run time.
    #[must_use]
    pub fn with_peers<I, S>(mut self, peers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.peers = peers.into_iter().map(Into::into).collect();
        self
    }

    /// The replicated store's own replication URL, as the other instances reach it
    /// (`http://10.0.0.4:8080/_tether`): it turns membership on (see
    /// `tether_replicated::ReplicatedStoreBuilder::advertise`).
    ///
    /// ```
    /// use tether::{StoreConfig, StoreKind};
    ///
    /// let config = StoreConfig::without_url(StoreKind::Replicated)
    ///     .expect("the replicated store needs no URL")
    ///     .with_replication_secret("a shared secret of 16+ bytes")
    ///     .with_advertised_url("http://127.0.0.1:9004/_tether")
    ///     .with_peers(["http://127.0.0.1:9001/_tether"]);
    /// assert_eq!(config.kind(), StoreKind::Replicated);
    /// ```
    #[must_use]
    pub fn with_advertised_url(mut self, url: impl Into<String>) -> Self {
        self.advertise = Some(url.into());
        self
    }

    /// The most sessions the memory or replicated store holds (others refuse it at
    /// [`StoreConfig::open`]).
    #[must_use]
    pub fn with_max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = Some(max);
        self
    }

    /// A near cache in front of the store: reads of a session this instance read
    /// before are answered from memory until the server announces that any instance
    /// changed it (Redis client tracking, PostgreSQL `NOTIFY`), and go to the server
    /// whenever that channel is down. For the stores whose
    /// [`StoreKind::has_near_cache`]; others refuse it at [`StoreConfig::open`].
    ///
    /// ```
    /// # #[cfg(feature = "redis")] {
    /// use tether::{NearCacheConfig, StoreConfig};
    /// let config = StoreConfig::parse("redis://127.0.0.1:6379")?
    ///     .with_near_cache(NearCacheConfig::default().with_max_entries(50_000));
    /// assert_eq!(config, StoreConfig::parse("redis://127.0.0.1:6379?near_cache=on")?
    ///     .with_near_cache(NearCacheConfig::default().with_max_entries(50_000)));
    /// # }
    /// # Ok::<(), tether::StoreConfigError>(())
    /// ```
    #[must_use]
    pub fn with_near_cache(mut self, config: tether_core::NearCacheConfig) -> Self {
        self.near_cache = Some(config);
        self
    }

    /// Skips creating or upgrading the SQL stores' tables at [`StoreConfig::open`]
    /// (for a deploy that migrates separately). On by default: the migrations are safe
    /// when several instances start together.
    #[must_use]
    pub fn without_migrations(mut self) -> Self {
        self.migrate = false;
        self
    }
}

impl std::str::FromStr for StoreConfig {
    type Err = StoreConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = crate::store_url::redact;
        let mut out = f.debug_struct("StoreConfig");
        match &self.target {
            Target::Memory | Target::Cookie | Target::Jwt | Target::Replicated => {}
            Target::File(dir) => {
                out.field("dir", dir);
            }
            Target::Redis(url)
            | Target::MySql(url)
            | Target::Postgres(url)
            | Target::Sqlite(url) => {
                out.field("url", &redact(url));
            }
            Target::RedisCluster(urls) => {
                out.field("nodes", &urls.iter().map(|u| redact(u)).collect::<Vec<_>>());
            }
            Target::RedisSentinel {
                sentinels,
                master_name,
                master,
            } => {
                out.field("sentinels", sentinels)
                    .field("master_name", master_name)
                    .field("master", &master.as_deref().map(redact));
            }
        }
        out.field("kind", &self.kind())
            .field("keys", &self.keys.as_ref().map(|_| "…"))
            .field("max_sessions", &self.max_sessions)
            .field("near_cache", &self.near_cache)
            .finish_non_exhaustive()
    }
}
