//! The connection: one multiplexed connection to a standalone Redis or to a Cluster,
//! or one taken from the app's deadpool-redis pool and kept, behind one
//! `ConnectionLike`.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::OnceCell;

pub(crate) enum Backend {
    Single {
        client: Box<redis::Client>,
        conn: OnceCell<ConnectionManager>,
    },
    Cluster {
        client: Box<ClusterClient>,
        conn: OnceCell<ClusterConnection>,
        /// How to reach one node: a seed's URL (its host and port replaced) and the
        /// TLS settings, for the near cache's tracking connection to each master.
        node: Box<NodeTemplate>,
    },
    /// The master Sentinel names, found again after a failover.
    Sentinel(Box<crate::sentinel::Sentinels>),
    /// The app's deadpool-redis pool, and the connection taken from it and kept.
    Pool(
        deadpool_redis::Pool,
        Held<deadpool_redis::Connection, redis::aio::MultiplexedConnection>,
    ),
    /// The app's deadpool-redis Cluster pool, and the connection taken from it.
    ClusterPool(
        deadpool_redis::cluster::Pool,
        Held<deadpool_redis::cluster::Connection, ClusterConnection>,
    ),
}

/// One connection taken from the app's pool and kept (it holds one of the pool's
/// slots), every operation multiplexed over a clone of it: taking a connection per
/// operation would cost deadpool-redis's `UNWATCH`+`PING` check each time, and allow
/// no more operations in flight than the pool has connections. A failed operation
/// gives it back (the pool checks it and drops it if broken) and the next one takes
/// another.
pub(crate) struct Held<O, C>(std::sync::Mutex<Option<(O, C)>>);

impl<O, C: Clone> Held<O, C> {
    pub(crate) fn new() -> Self {
        Self(std::sync::Mutex::new(None))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(O, C)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The kept connection, if any.
    pub(crate) fn get(&self) -> Option<C> {
        self.lock().as_ref().map(|(_, c)| c.clone())
    }

    /// Keeps `object` (taken from the pool) and the connection in it.
    pub(crate) fn keep(&self, object: O, conn: C) {
        *self.lock() = Some((object, conn));
    }

    /// Gives the kept connection back to the pool.
    pub(crate) fn forget(&self) {
        let given_back = self.lock().take();
        drop(given_back);
    }
}

impl Backend {
    /// Whether every key lives on one server, so a pipeline may mix Cluster slots.
    pub(crate) fn is_single_node(&self) -> bool {
        matches!(
            self,
            Self::Single { .. } | Self::Sentinel(_) | Self::Pool(..)
        )
    }
}

/// A Cluster node's connection settings, from the URLs and TLS the store was given.
pub(crate) struct NodeTemplate {
    pub(crate) url: String,
    pub(crate) tls: Option<crate::RedisTls>,
}

pub(crate) enum Conn {
    Single(ConnectionManager),
    Master(redis::aio::MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Master(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Master(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Master(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// A pool that could not hand out a connection, as the Redis error the store reports.
pub(crate) fn pool_error(e: &impl std::fmt::Display) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::other(format!(
        "no connection from the deadpool-redis pool: {e}"
    )))
}
