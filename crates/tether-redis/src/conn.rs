//! The connection: one multiplexed connection to a standalone Redis or to a Cluster,
//! or one taken from the app's deadpool-redis pool, behind one `ConnectionLike`.

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
    /// The app's deadpool-redis pool: a connection per operation, returned after it.
    Pool(deadpool_redis::Pool),
    /// The app's deadpool-redis Cluster pool.
    ClusterPool(deadpool_redis::cluster::Pool),
}

impl Backend {
    /// Whether every key lives on one server, so a pipeline may mix Cluster slots.
    pub(crate) fn is_single_node(&self) -> bool {
        matches!(
            self,
            Self::Single { .. } | Self::Sentinel(_) | Self::Pool(_)
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
    Pooled(deadpool_redis::Connection),
    ClusterPooled(deadpool_redis::cluster::Connection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Master(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Pooled(c) => c.req_packed_command(cmd),
            Self::ClusterPooled(c) => c.req_packed_command(cmd),
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
            Self::Pooled(c) => c.req_packed_commands(cmd, offset, count),
            Self::ClusterPooled(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Master(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Pooled(c) => c.get_db(),
            Self::ClusterPooled(c) => c.get_db(),
        }
    }
}

/// A pool that could not hand out a connection, as the Redis error the store reports.
pub(crate) fn pool_error(e: &impl std::fmt::Display) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::other(format!(
        "no connection from the deadpool-redis pool: {e}"
    )))
}
