//! The benchmark app: the same four endpoints on tether, tower-sessions or bare axum,
//! shared by `bench-server` (which serves it) and `bench-allocs` (which counts its
//! allocations).
//!
//! - `GET /untouched`: the handler ignores the session.
//! - `GET /read`: reads a counter.
//! - `POST /write`: increments the counter (read + write).
//! - `POST /login`: rotates the id and binds a user.

use axum::Router;
use axum::routing::{get, post};
use clap::{Parser, ValueEnum};
use tether::StoreKind;

/// The session library in front of the endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lib {
    /// None: the handlers answer `ok` (the floor).
    Bare,
    /// tether's `SessionLayer`.
    Tether,
    /// tether's `SessionLayer` with session values sealed at rest (`with_sealed_data`).
    TetherSealed,
    /// tower-sessions' `SessionManagerLayer`.
    TowerSessions,
}

/// Where the sessions live: a store tether ships, tether's Redis store on an app's
/// deadpool-redis pool (`redis-pool`), or a store with a near cache (`redis-cached`,
/// `postgres-cached`: fenced reads; `redis-pushed`, `postgres-pushed`: pushed reads;
/// tower-sessions' counterpart is its `CachingSessionStore` with moka in front).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// One of [`StoreKind::ALL`], opened through `tether::StoreConfig`.
    Kind(StoreKind),
    /// tether's Redis store on an app's deadpool-redis pool.
    RedisPool,
    /// The store with a near cache.
    Cached(StoreKind, tether::Freshness),
}

impl std::str::FromStr for Store {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use tether::Freshness::{Fenced, Pushed};
        match s {
            "redis-pool" => Ok(Self::RedisPool),
            "redis-cached" => Ok(Self::Cached(StoreKind::Redis, Fenced)),
            "redis-pushed" => Ok(Self::Cached(StoreKind::Redis, Pushed)),
            "postgres-cached" => Ok(Self::Cached(StoreKind::Postgres, Fenced)),
            "postgres-pushed" => Ok(Self::Cached(StoreKind::Postgres, Pushed)),
            _ => s.parse().map(Self::Kind).map_err(|e| {
                format!("{e}, or redis-pool, redis-cached, redis-pushed, postgres-cached, postgres-pushed")
            }),
        }
    }
}

/// One benchmark app, and where to serve it.
#[derive(Debug, Parser)]
pub struct Args {
    /// The library.
    #[arg(long, value_enum)]
    pub lib: Lib,
    /// The store: a store tether ships (memory, redis, mysql, …) or redis-pool.
    #[arg(long, default_value = "memory")]
    pub store: Store,
    /// Where to serve (bench-server).
    #[arg(long)]
    pub listen: Option<String>,
    /// redis://…, mysql://…, postgres://…, sqlite://PATH or a directory.
    #[arg(long)]
    pub url: Option<String>,
    /// tether's strict per-session lock mode.
    #[arg(long)]
    pub lock: bool,
}

/// Ends the process with `message`.
pub fn fail(message: &str) -> ! {
    eprintln!("bench-server: {message}");
    std::process::exit(2);
}

mod with_tether {
    use tether::{Session, SessionError};

    pub(crate) async fn untouched() -> &'static str {
        "ok"
    }

    pub(crate) async fn read(session: Session) -> Result<String, SessionError> {
        Ok(session.get::<u64>("n").await?.unwrap_or(0).to_string())
    }

    pub(crate) async fn write(session: Session) -> Result<String, SessionError> {
        let n = session.get::<u64>("n").await?.unwrap_or(0) + 1;
        session.insert("n", n).await?;
        Ok(n.to_string())
    }

    pub(crate) async fn login(session: Session) -> Result<&'static str, SessionError> {
        session.cycle_id().await?;
        session.set_user("alice").await?;
        Ok("ok")
    }
}

/// The same handlers for a tower-sessions version.
macro_rules! tower_sessions_handlers {
    ($name:ident, $ts:ident) => {
        mod $name {
            use axum::http::StatusCode;
            use $ts::Session;

            fn err(e: impl std::fmt::Display) -> (StatusCode, String) {
                (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }

            pub(crate) async fn read(session: Session) -> Result<String, (StatusCode, String)> {
                Ok(session
                    .get::<u64>("n")
                    .await
                    .map_err(err)?
                    .unwrap_or(0)
                    .to_string())
            }

            pub(crate) async fn write(session: Session) -> Result<String, (StatusCode, String)> {
                let n = session.get::<u64>("n").await.map_err(err)?.unwrap_or(0) + 1;
                session.insert("n", n).await.map_err(err)?;
                Ok(n.to_string())
            }

            pub(crate) async fn login(
                session: Session,
            ) -> Result<&'static str, (StatusCode, String)> {
                session.cycle_id().await.map_err(err)?;
                session.insert("user", "alice").await.map_err(err)?;
                Ok("ok")
            }
        }
    };
}

tower_sessions_handlers!(ts15, tower_sessions);
tower_sessions_handlers!(ts14, tower_sessions_014);

fn routes<R1, R2, R3, T1, T2, T3>(read: R1, write: R2, login: R3) -> Router
where
    R1: axum::handler::Handler<T1, ()>,
    R2: axum::handler::Handler<T2, ()>,
    R3: axum::handler::Handler<T3, ()>,
    T1: 'static,
    T2: 'static,
    T3: 'static,
{
    Router::new()
        .route("/untouched", get(with_tether::untouched))
        .route("/read", get(read))
        .route("/write", post(write))
        .route("/login", post(login))
}

/// The layer on `kind`, opened as an app opens it from configuration.
async fn tether_store(kind: StoreKind, url: Option<&str>) -> tether::SessionLayer {
    use tether::StoreConfig;
    let parsed = |url: Option<&str>| {
        StoreConfig::parse(url.unwrap_or_else(|| fail(&format!("--store {kind} needs --url"))))
            .unwrap_or_else(|e| fail(&e.to_string()))
    };
    let config = match kind {
        // The login row makes a new session per request (about 400,000 in 3 s): above
        // the memory store's default bound (100,000, beyond which it refuses logins with
        // 503), and tower-sessions' memory store has none, so the bench lifts it.
        StoreKind::Memory => parsed(Some("memory:")).with_max_sessions(10_000_000),
        StoreKind::File => StoreConfig::file(url.unwrap_or_else(|| fail("--url DIR"))),
        StoreKind::Cookie => parsed(Some("cookie:")).with_keys(
            tether::cookie::KeyRing::generate_key().unwrap_or_else(|e| fail(&e.to_string())),
        ),
        StoreKind::Jwt => parsed(Some("jwt:")).with_keys(
            tether::jwt::JwtKeys::generate_ed25519("bench")
                .unwrap_or_else(|e| fail(&e.to_string())),
        ),
        _ => parsed(url),
    };
    config
        .open()
        .await
        .unwrap_or_else(|e| fail(&format!("{kind}: {e}")))
        .layer()
}

async fn tether_app(args: &Args) -> Router {
    use tether::SessionLayer;
    let layer = match args.store {
        Store::Kind(kind) => tether_store(kind, args.url.as_deref()).await,
        Store::Cached(kind, freshness) => {
            let url = args.url.as_deref().unwrap_or_else(|| fail("--url"));
            let opened = tether::StoreConfig::parse(url)
                .unwrap_or_else(|e| fail(&e.to_string()))
                .with_near_cache(tether::NearCacheConfig::default().with_freshness(freshness))
                .open()
                .await
                .unwrap_or_else(|e| fail(&format!("{kind} with a near cache: {e}")));
            opened.layer()
        }
        Store::RedisPool => {
            let pool = deadpool_redis::Config::from_url(args.url.clone().unwrap_or_default())
                .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                .unwrap_or_else(|e| fail(&e.to_string()));
            SessionLayer::new(tether::redis::RedisStore::from_pool(pool))
        }
    }
    .with_insecure_cookie();
    let layer = if args.lock {
        layer.with_lock(tether::core::LockOptions::default())
    } else {
        layer
    };
    let layer = if args.lib == Lib::TetherSealed {
        let key = tether::DataKeys::generate_key().unwrap_or_else(|e| fail(&e.to_string()));
        layer.with_sealed_data(
            tether::DataKeys::parse(&key).unwrap_or_else(|e| fail(&e.to_string())),
        )
    } else {
        layer
    };
    routes(with_tether::read, with_tether::write, with_tether::login)
        .route("/incr", post(with_tether::write))
        .layer(layer)
}

async fn tower_sessions_app(args: &Args) -> Router {
    let url = || args.url.clone().unwrap_or_else(|| fail("--url"));
    match args.store {
        Store::Kind(StoreKind::Memory) => {
            let layer =
                tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
                    .with_secure(false);
            routes(ts15::read, ts15::write, ts15::login)
                .route("/incr", post(ts15::write))
                .layer(layer)
        }
        Store::Kind(StoreKind::Redis) => {
            let layer = tower_sessions_014::SessionManagerLayer::new(fred_store(&url()).await)
                .with_secure(false);
            routes(ts14::read, ts14::write, ts14::login)
                .route("/incr", post(ts14::write))
                .layer(layer)
        }
        Store::Kind(StoreKind::MySql) => {
            let pool = tower_sessions_sqlx_store::sqlx::MySqlPool::connect(&url())
                .await
                .unwrap_or_else(|e| fail(&e.to_string()));
            ts_sql_app(tower_sessions_sqlx_store::MySqlStore::new(pool)).await
        }
        Store::Kind(StoreKind::Postgres) => {
            let pool = tower_sessions_sqlx_store::sqlx::PgPool::connect(&url())
                .await
                .unwrap_or_else(|e| fail(&e.to_string()));
            ts_sql_app(tower_sessions_sqlx_store::PostgresStore::new(pool)).await
        }
        Store::Kind(StoreKind::Sqlite) => {
            use std::str::FromStr as _;
            use tower_sessions_sqlx_store::sqlx::sqlite;
            // The same file settings as tether's store: WAL and a busy timeout.
            let options = sqlite::SqliteConnectOptions::from_str(&url())
                .unwrap_or_else(|e| fail(&e.to_string()))
                .create_if_missing(true)
                .journal_mode(sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlite::SqliteSynchronous::Normal)
                .busy_timeout(std::time::Duration::from_secs(5));
            let pool = sqlite::SqlitePool::connect_with(options)
                .await
                .unwrap_or_else(|e| fail(&e.to_string()));
            ts_sql_app(tower_sessions_sqlx_store::SqliteStore::new(pool)).await
        }
        Store::Cached(StoreKind::Redis, _) => ts_cached_app(fred_store(&url()).await),
        Store::Cached(StoreKind::Postgres, _) => {
            let pool = tower_sessions_sqlx_store::sqlx::PgPool::connect(&url())
                .await
                .unwrap_or_else(|e| fail(&e.to_string()));
            let store = tower_sessions_sqlx_store::PostgresStore::new(pool);
            store
                .migrate()
                .await
                .unwrap_or_else(|e| fail(&e.to_string()));
            ts_cached_app(store)
        }
        Store::Kind(kind) | Store::Cached(kind, _) => fail(&format!(
            "the bench has no tower-sessions app on the {kind} store"
        )),
        Store::RedisPool => fail("tower-sessions has no deadpool-redis store"),
    }
}

/// tower-sessions-redis-store on a fred pool of one connection.
async fn fred_store(
    url: &str,
) -> tower_sessions_redis_store::RedisStore<tower_sessions_redis_store::fred::clients::Pool> {
    use tower_sessions_redis_store::fred::prelude::*;
    let config = Config::from_url(url).unwrap_or_else(|e| fail(&e.to_string()));
    let pool = Pool::new(config, None, None, None, 1).unwrap_or_else(|e| fail(&e.to_string()));
    pool.init().await.unwrap_or_else(|e| fail(&e.to_string()));
    tower_sessions_redis_store::RedisStore::new(pool)
}

/// tower-sessions 0.14's `CachingSessionStore`: moka (tower-sessions-moka-store) in
/// front of `store`, entries kept until evicted (100,000 at most), with no
/// invalidation between instances.
fn ts_cached_app<S>(store: S) -> Router
where
    S: tower_sessions_014::SessionStore + Clone,
{
    let cache = tower_sessions_moka_store::MokaStore::new(Some(100_000));
    let layer = tower_sessions_014::SessionManagerLayer::new(
        tower_sessions_014::CachingSessionStore::new(cache, store),
    )
    .with_secure(false);
    routes(ts14::read, ts14::write, ts14::login)
        .route("/incr", post(ts14::write))
        .layer(layer)
}

/// tower-sessions 0.14 on one of tower-sessions-sqlx-store's stores, migrated.
async fn ts_sql_app<S>(store: S) -> Router
where
    S: SqlxStore,
{
    store
        .migrate()
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    let layer = tower_sessions_014::SessionManagerLayer::new(store).with_secure(false);
    routes(ts14::read, ts14::write, ts14::login)
        .route("/incr", post(ts14::write))
        .layer(layer)
}

/// What `ts_sql_app` needs of a tower-sessions-sqlx-store store.
trait SqlxStore: tower_sessions_014::SessionStore + Clone {
    async fn migrate(&self) -> Result<(), tower_sessions_sqlx_store::sqlx::Error>;
}

macro_rules! sqlx_store {
    ($($store:ty),*) => {$(
        impl SqlxStore for $store {
            async fn migrate(&self) -> Result<(), tower_sessions_sqlx_store::sqlx::Error> {
                <$store>::migrate(self).await
            }
        }
    )*};
}
sqlx_store!(
    tower_sessions_sqlx_store::MySqlStore,
    tower_sessions_sqlx_store::PostgresStore,
    tower_sessions_sqlx_store::SqliteStore
);

/// Parses the arguments and runs `main` with them on one tokio worker thread.
pub fn run<F: Future<Output = ()>>(main: impl FnOnce(Args) -> F) {
    let args = Args::parse();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&e.to_string()))
        .block_on(main(args));
}

/// The app `args` asks for.
pub async fn app(args: &Args) -> Router {
    match args.lib {
        Lib::Bare => bare_app(),
        Lib::Tether | Lib::TetherSealed => tether_app(args).await,
        Lib::TowerSessions => tower_sessions_app(args).await,
    }
}

fn bare_app() -> Router {
    async fn ok() -> &'static str {
        "ok"
    }
    routes(ok, ok, ok)
}
