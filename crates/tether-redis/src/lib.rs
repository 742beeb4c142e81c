//! A Redis session store for tether: one round trip per read and per write.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tether_core::Error> {
//! use tether_redis::RedisStore;
//!
//! let store = RedisStore::connect("redis://127.0.0.1:6379")?;
//! // Redis Cluster: any of its nodes; the same API.
//! let cluster = RedisStore::connect_cluster(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"])?;
//! # Ok(()) }
//! ```
//!
//! # Key layout
//!
//! With the default prefix `tether:`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `tether:p:{ID}` | string | the session packed: its version in 16 decimal digits, then a MessagePack map `c` created, `s` last seen, `i` idle deadline, `a` absolute deadline (ms since the epoch), `u` user, `l` its own lifetime (`Lifetime::to_ms`), `d` each data key's JSON |
//! | `tether:l:{ID}` | string | the lock-mode lock: the owner's token, with a millisecond TTL |
//! | `tether:u:{HEX}` | sorted set | the user's session ids scored by creation time (`HEX` is the user name in hex) |
//!
//! The braces are Redis Cluster hash tags: a session's keys and its lock live in one
//! slot, so every script touches one slot. The session expires by Redis TTL at the
//! earlier of its idle and absolute deadlines (so its key exists exactly while it
//! lives), and both are checked again on load. Needs Redis 6.2 or later (`SET … PXAT`).
//!
//! # Round trips
//!
//! A load is one `GET`: one string for the client to parse, whether or not the
//! session exists. A new session is one
//! `SET … NX PXAT`, sent with its user's index entry in one pipeline on a single Redis
//! (two calls on a Cluster, where they are in different slots). A save after a read
//! ([`SessionStore::save_from`](tether_core::SessionStore::save_from)) is one `EVALSHA`
//! of a short script that writes the record the client merged only if the stored
//! version is still the one read; when another save or a refresh moved it (or for a
//! save with no read before it), one `EVALSHA` of the merge script, which checks the
//! session is live, merges only the changed keys, bumps the version and sets the TTL.
//! So a save never recreates a deleted session and concurrent saves of different keys
//! both persist. A refresh is one `EVALSHA`, sent only past the layer's refresh
//! threshold. Binding a session to a different user (login, logout) costs one more
//! call to the user's index, which lives in another slot.
//!
//! # Near cache
//!
//! [`RedisStore::with_near_cache`] keeps the sessions an instance read in its memory.
//! A RESP3 connection per master turns on client tracking in broadcast mode on the
//! `{prefix}p:` keys, so Redis pushes the name of every session key any client
//! changes (an expiry and an eviction included) and the copy is dropped. Reads are
//! fenced by default (a `PING` on the tracking connections, shared by every read
//! waiting, before a copy is served) or pushed (no round trip). The cache empties and
//! steps aside whenever a tracking connection closes, misses a `PING`, or the masters
//! change. The guide (`docs/guide/near-cache.md`) has the guarantees and the costs.
//!
//! # Redis Cluster and failover
//!
//! Redis replicates asynchronously: a write acknowledged by a master that dies before
//! its replica received it is lost when the replica takes over, so a login in the last
//! moments before a failover can be undone. To narrow that window, set
//! `min-replicas-to-write 1` and `min-replicas-max-lag` on the masters (a master that
//! cannot reach a replica refuses writes, which the layer answers with 503), or use
//! `WAIT` semantics through a proxy. tether does not send `WAIT` itself: it would add a
//! round trip to every save.

mod anchor;
mod codec;
mod conn;
mod index;
mod scripts;
mod sentinel;
mod store;
mod tls;
mod tracking;
mod watched;

pub use tls::RedisTls;

use std::time::Duration;

use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use tether_core::{Error, Id, Record, Result};
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::codec::decode;
pub(crate) use crate::conn::Backend;
use crate::conn::Conn;

/// The response timeout a Cluster connection gets (redis-rs's, per command).
const CLUSTER_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Sessions in Redis, standalone or Cluster.
///
/// It keeps one multiplexed connection (redis-rs's `ConnectionManager`, or its Cluster
/// connection), shared by every request and re-established by itself after Redis
/// restarts. A pool (deadpool-redis) would cost a `PING` round trip on every checkout,
/// doubling the round trips of each request.
#[derive(Clone)]
pub struct RedisStore {
    backend: std::sync::Arc<Backend>,
    prefix: String,
    timeout: Duration,
    target: String,
    anchor: std::sync::Arc<anchor::Anchor>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on a standalone Redis (`redis://[:password@]host:port[/db]`).
    ///
    /// The connection is made on first use: this fails only on a malformed URL, and a
    /// Redis that is down at start-up is a 503 until it comes up.
    ///
    /// ```
    /// let store = tether_redis::RedisStore::connect("redis://127.0.0.1:6379")?;
    /// assert!(tether_redis::RedisStore::connect("not a url").is_err());
    /// # Ok::<(), tether_core::Error>(())
    /// ```
    pub fn connect(url: &str) -> Result<Self> {
        if url.starts_with("rediss://") {
            tls::crypto_provider();
        }
        let client = redis::Client::open(url).map_err(|e| {
            Error::config(format!(
                "Redis URL {}: {e} (expected redis://[:password@]host:port[/db] or rediss://…)",
                tether_core::redact_url(url)
            ))
        })?;
        Ok(Self::single(client, url))
    }

    /// A store on one Redis, through `client` (made from `url`), connected on first use.
    pub(crate) fn single(client: redis::Client, url: &str) -> Self {
        let backend = Backend::Single {
            client: Box::new(client),
            conn: OnceCell::new(),
        };
        Self::new(backend, tether_core::redact_url(url))
    }

    /// A store on Redis Cluster through `builder` (made from `urls`), with the store's
    /// connection and response timeouts, connected on first use.
    pub(crate) fn cluster(
        builder: redis::cluster::ClusterClientBuilder,
        urls: &[String],
        tls: Option<RedisTls>,
    ) -> Result<Self> {
        let target = urls
            .iter()
            .map(|u| tether_core::redact_url(u))
            .collect::<Vec<_>>()
            .join(",");
        let client = builder
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(CLUSTER_RESPONSE_TIMEOUT)
            .build()
            .map_err(|e| Error::config(format!("Redis Cluster URLs {target}: {e}")))?;
        let backend = Backend::Cluster {
            client: Box::new(client),
            conn: OnceCell::new(),
            node: Box::new(conn::NodeTemplate {
                url: urls.first().cloned().unwrap_or_default(),
                tls,
            }),
        };
        Ok(Self::new(backend, target))
    }

    /// A store on Redis Cluster, given one or more of its nodes.
    pub fn connect_cluster<I, S>(urls: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
        if urls.iter().any(|u| u.starts_with("rediss://")) {
            tls::crypto_provider();
        }
        Self::cluster(ClusterClient::builder(urls.clone()), &urls, None)
    }

    /// A store on the app's own deadpool-redis pool, for apps that already hold one.
    ///
    /// The store takes one connection from the pool and keeps it (one of the pool's
    /// slots), multiplexing every operation over it as [`RedisStore::connect`]'s
    /// connection does. Taking a connection per operation would cost deadpool-redis's
    /// `UNWATCH`+`PING` check each time and allow no more operations in flight than
    /// the pool has connections. After a failed operation the store gives the
    /// connection back (the pool checks it) and takes another.
    ///
    /// ```
    /// let pool = deadpool_redis::Config::from_url("redis://127.0.0.1:6379")
    ///     .create_pool(Some(deadpool_redis::Runtime::Tokio1))
    ///     .expect("a valid URL");
    /// let store = tether_redis::RedisStore::from_pool(pool);
    /// ```
    pub fn from_pool(pool: deadpool_redis::Pool) -> Self {
        Self::new(
            Backend::Pool(pool, conn::Held::new()),
            "a deadpool-redis pool".to_owned(),
        )
    }

    /// A store on the app's own deadpool-redis Cluster pool.
    pub fn from_cluster_pool(pool: deadpool_redis::cluster::Pool) -> Self {
        Self::new(
            Backend::ClusterPool(pool, conn::Held::new()),
            "a deadpool-redis Cluster pool".to_owned(),
        )
    }

    pub(crate) fn new(backend: Backend, target: String) -> Self {
        Self {
            backend: std::sync::Arc::new(backend),
            prefix: "tether:".to_owned(),
            timeout: Duration::from_secs(2),
            target,
            anchor: std::sync::Arc::default(),
        }
    }

    /// The connection every call uses, made on first use (or again after a failure).
    async fn conn(&self) -> redis::RedisResult<Conn> {
        match self.established() {
            Some(conn) => Ok(conn),
            // Boxed: connecting is rare and its future is several KiB. Inline, it
            // would make every call's future as large, and each call would allocate
            // and copy it.
            None => Box::pin(self.establish()).await,
        }
    }

    /// The connection already made, if any: no waiting.
    fn established(&self) -> Option<Conn> {
        match &*self.backend {
            Backend::Single { conn, .. } => conn.get().cloned().map(Conn::Single),
            Backend::Cluster { conn, .. } => conn.get().cloned().map(Conn::Cluster),
            Backend::Sentinel(sentinels) => sentinels.current().map(Conn::Master),
            Backend::Pool(_, held) => held.get().map(Conn::Master),
            Backend::ClusterPool(_, held) => held.get().map(Conn::Cluster),
        }
    }

    /// Makes the connection, when [`Self::established`] found none.
    async fn establish(&self) -> redis::RedisResult<Conn> {
        self.anchor.hold(self.timeout.min(CLUSTER_RESPONSE_TIMEOUT));
        match &*self.backend {
            Backend::Single { client, conn } => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                let manager = conn
                    .get_or_try_init(|| {
                        ConnectionManager::new_with_config((**client).clone(), config)
                    })
                    .await?;
                Ok(Conn::Single(manager.clone()))
            }
            Backend::Cluster { client, conn, .. } => {
                let cluster = conn
                    .get_or_try_init(|| client.get_async_connection())
                    .await?;
                Ok(Conn::Cluster(cluster.clone()))
            }
            Backend::Sentinel(sentinels) => {
                sentinels.connection(self.timeout).await.map(Conn::Master)
            }
            Backend::Pool(pool, held) => {
                let object = pool.get().await.map_err(|e| conn::pool_error(&e))?;
                let kept = (*object).clone();
                held.keep(object, kept.clone());
                Ok(Conn::Master(kept))
            }
            Backend::ClusterPool(pool, held) => {
                let object = pool.get().await.map_err(|e| conn::pool_error(&e))?;
                let kept = (*object).clone();
                held.keep(object, kept.clone());
                Ok(Conn::Cluster(kept))
            }
        }
    }

    /// The prefix of every key (default `tether:`). It must not contain `{` or `}`,
    /// which would change the Cluster hash tags.
    ///
    /// ```
    /// let store = tether_redis::RedisStore::connect("redis://127.0.0.1")?.with_prefix("myapp:sess:");
    /// # Ok::<(), tether_core::Error>(())
    /// ```
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().replace(['{', '}'], "");
        self
    }

    /// How long one operation may take, connecting included, before it fails as
    /// unavailable (default 2 s). Bounds the wait when Redis hangs instead of refusing.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn packed_key(&self, id: &Id) -> String {
        self.session_key("p", id)
    }

    /// `{prefix}{kind}:{ID}`, the id in braces (its Cluster hash tag), built in one
    /// allocation: `format!` would grow it several times, on every call.
    fn session_key(&self, kind: &str, id: &Id) -> String {
        let id = id.encode();
        let mut key =
            String::with_capacity(self.prefix.len() + kind.len() + tether_core::ID_LEN + 3);
        key.push_str(&self.prefix);
        key.push_str(kind);
        key.push_str(":{");
        key.push_str(id.as_str());
        key.push('}');
        key
    }

    /// Reads a session: one `GET` of its packed key.
    async fn read(&self, id: &Id, what: &str) -> Result<Option<Record>> {
        let packed = self.packed_key(id);
        let reply: Value = self
            .with_conn(what, async |c| {
                redis::cmd("GET").arg(&packed).query_async(c).await
            })
            .await?;
        let record = match &reply {
            Value::BulkString(bytes) => Some(decode(bytes)?),
            Value::Nil => None,
            _ => return Err(Error::Corrupt("Redis session: not a string".into())),
        };
        Ok(record.filter(|r| !r.is_expired(OffsetDateTime::now_utc())))
    }

    fn lock_key(&self, id: &Id) -> String {
        self.session_key("l", id)
    }

    fn user_key(&self, user: &str) -> String {
        format!("{}u:{{{}}}", self.prefix, hex::encode(user))
    }

    /// Runs `op` with a pooled connection, within the timeout, mapping failures to
    /// the contract's "unavailable" error.
    async fn with_conn<T, F>(&self, what: &str, op: F) -> Result<T>
    where
        F: AsyncFnOnce(&mut Conn) -> redis::RedisResult<T>,
    {
        let work = async {
            let mut conn = self.conn().await.map_err(|e| {
                Error::unavailable(format!("{what}: connecting to Redis at {}", self.target), e)
            })?;
            op(&mut conn)
                .await
                .map_err(|e| Error::unavailable(format!("{what} at Redis {}", self.target), e))
        };
        let result = tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(Error::timed_out(
                    format_args!("{what} at Redis {}", self.target),
                    self.timeout,
                ))
            });
        if result.is_err() {
            match &*self.backend {
                Backend::Sentinel(sentinels) => sentinels.forget(),
                Backend::Pool(_, held) => held.forget(),
                Backend::ClusterPool(_, held) => held.forget(),
                Backend::Single { .. } | Backend::Cluster { .. } => {}
            }
        }
        result
    }
}
