//! The near cache's invalidation channel: Redis client tracking in broadcast mode.
//!
//! One RESP3 connection per master (the standalone server, the master Sentinel names,
//! each master of a Cluster) sends `CLIENT TRACKING ON BCAST PREFIX {prefix}p:`; from
//! then on Redis pushes the name of every session key any client writes, deletes,
//! expires or evicts, and a flush for `FLUSHALL`/`FLUSHDB`. The cache is served only
//! while every one of these connections is up: a closed connection, a `PING` unanswered
//! within the store's timeout, or a change of masters (a failover, a resharding that
//! adds a master) flushes it and sends reads to Redis until tracking is on again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};
use tether_core::{
    Background, Barrier, CachedStore, Error, Feed, Id, Invalidator, NearCache, NearCacheConfig,
    Result,
};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::watched::{AllQuiet, ReadState, Watched};
use crate::{Backend, RedisStore};

/// How often the tracking connections are pinged and the masters looked up again.
const CHECK_EVERY: Duration = Duration::from_secs(1);

impl RedisStore {
    /// This store with a near cache: reads of a session this instance read before are
    /// answered from memory, with no round trip, until Redis says another client
    /// changed it (client tracking, pushed to every instance). Needs Redis 6 or later
    /// and a Tokio runtime; works on a standalone Redis, behind Sentinel and on a
    /// Cluster.
    ///
    /// What it guarantees and what it costs is in the stores guide
    /// (`docs/guide/stores.md`, "Near cache"): a write made on another instance is
    /// seen here once its invalidation arrived (within a millisecond on one network:
    /// the bench reports the delay), the cache is bypassed whenever the channel is
    /// down, and a record is never served past its deadlines.
    ///
    /// ```no_run
    /// # async fn demo() -> tether_core::Result<()> {
    /// use tether_core::NearCacheConfig;
    /// let store = tether_redis::RedisStore::connect("redis://127.0.0.1:6379")?
    ///     .with_near_cache(NearCacheConfig::default())?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] outside a Tokio runtime, or for a store on the app's
    /// deadpool-redis pool (whose connection settings the store does not know).
    pub fn with_near_cache(self, config: NearCacheConfig) -> Result<CachedStore<RedisStore>> {
        if matches!(&*self.backend, Backend::Pool(..) | Backend::ClusterPool(..)) {
            return Err(Error::config(
                "a near cache needs the store to make its own tracking connection: open the store from a URL (RedisStore::connect…) rather than a deadpool-redis pool",
            ));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::config(
                "a near cache runs a task that listens to Redis: create it inside a Tokio runtime",
            ));
        }
        let (cache, feed) = NearCache::new(&config);
        let task = tether_core::Background::spawn(track(self.clone(), feed));
        Ok(CachedStore::new(self, cache, Some(task)))
    }

    /// A RESP3 client for every master whose keys this store uses.
    async fn masters(&self) -> Result<Vec<redis::Client>> {
        let clients = match &*self.backend {
            Backend::Single { client, .. } => vec![(**client).clone()],
            Backend::Sentinel(sentinels) => vec![
                sentinels
                    .master_client()
                    .await
                    .map_err(|e| Error::unavailable("asking the sentinels for the master", e))?,
            ],
            Backend::Cluster { node, .. } => {
                let nodes: String = self
                    .with_conn("listing the Cluster's nodes", async |c| {
                        redis::cmd("CLUSTER").arg("NODES").query_async(c).await
                    })
                    .await?;
                let mut masters = Vec::new();
                for (host, port) in cluster_masters(&nodes) {
                    masters.push(node_client(node, &host, port)?);
                }
                masters
            }
            Backend::Pool(..) | Backend::ClusterPool(..) => Vec::new(),
        };
        clients.iter().map(resp3).collect()
    }
}

fn resp3(client: &redis::Client) -> Result<redis::Client> {
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    redis::Client::open(info.set_redis_settings(settings))
        .map_err(|e| Error::config(format!("a tracking connection's settings: {e}")))
}

fn node_client(node: &crate::conn::NodeTemplate, host: &str, port: u16) -> Result<redis::Client> {
    let mut url = redis::parse_redis_url(&node.url)
        .ok_or_else(|| Error::config("a Cluster node URL that does not parse"))?;
    if url.set_host(Some(host)).is_err() || url.set_port(Some(port)).is_err() {
        return Err(Error::config(
            "a Cluster node address that does not fit the URL",
        ));
    }
    let client = match &node.tls {
        Some(tls) => redis::Client::build_with_tls(url.as_str(), tls.certificates()),
        None => redis::Client::open(url.as_str()),
    };
    client.map_err(|e| Error::config(format!("a Cluster node's connection settings: {e}")))
}

/// The `host:port` of every master `CLUSTER NODES` lists as up.
fn cluster_masters(nodes: &str) -> Vec<(String, u16)> {
    let mut masters: Vec<(String, u16)> = nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            let flags: Vec<&str> = flags.split(',').collect();
            if !flags.contains(&"master")
                || flags
                    .iter()
                    .any(|f| f.starts_with("fail") || *f == "noaddr")
            {
                return None;
            }
            let address = address.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            (!host.is_empty()).then(|| Some((host.to_owned(), port.parse().ok()?)))?
        })
        .collect();
    masters.sort();
    masters
}

/// Keeps `feed` live while tracking is on at every master, for as long as the store
/// lives; lost (cache flushed and bypassed) in between.
async fn track(store: RedisStore, mut feed: Feed) {
    let mut pause = Duration::from_millis(50);
    loop {
        let started = tokio::time::Instant::now();
        let why = tracked(&store, &mut feed).await;
        feed.lost();
        if started.elapsed() > Duration::from_secs(10) {
            pause = Duration::from_millis(50);
        }
        tracing::warn!(store = %store.target, reason = %why, retry_in = ?pause, "near cache bypassed: Redis invalidations are not arriving");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Turns tracking on at every master, says live, and handles invalidations until
/// something goes wrong; returns why.
async fn tracked(store: &RedisStore, feed: &mut Feed) -> Error {
    let masters = match store.masters().await {
        Ok(masters) if masters.is_empty() => return Error::config("no Redis master to track"),
        Ok(masters) => masters,
        Err(e) => return e,
    };
    let prefix = format!("{}p:", store.prefix);
    // Invalidations are applied in the connection's own task as they are read (no
    // hop through a channel); a closed connection is reported here.
    let (closed_tx, mut closed) = mpsc::unbounded_channel::<()>();
    let invalidator = feed.invalidator();
    let keys = prefix.clone();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(store.timeout))
        .set_response_timeout(Some(store.timeout))
        .set_push_sender(move |push: PushInfo| -> Result<(), ()> {
            match push.kind {
                PushKind::Invalidate => invalidate(&invalidator, &keys, push.data),
                PushKind::Disconnection => {
                    let _ = closed_tx.send(());
                }
                _ => {}
            }
            Ok(())
        });
    let mut conns = Vec::with_capacity(masters.len());
    // Each plain-TCP connection's reader, watched (see `watched`); its driver task.
    let mut watched = Vec::new();
    let mut drivers = Vec::new();
    let mut all_watched = true;
    for master in &masters {
        let on = async {
            let mut conn = if let Some((conn, state, driver)) =
                connect_watched(master, &config, store.timeout).await?
            {
                watched.push(state);
                drivers.push(driver);
                conn
            } else {
                all_watched = false;
                master
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?
            };
            redis::cmd("CLIENT")
                .arg("TRACKING")
                .arg("ON")
                .arg("BCAST")
                .arg("PREFIX")
                .arg(&prefix)
                .query_async::<()>(&mut conn)
                .await?;
            Ok::<_, redis::RedisError>(conn)
        };
        match on.await {
            Ok(conn) => conns.push(conn),
            Err(e) => return Error::unavailable("turning on client tracking", e),
        }
    }
    drop(config);
    let pings = Arc::new(Pings {
        conns,
        timeout: store.timeout,
    });
    feed.set_barrier(pings.clone());
    if all_watched {
        feed.set_quiet(Arc::new(AllQuiet(watched)));
    }
    feed.live();
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.tick().await;
    loop {
        tokio::select! {
            _ = closed.recv() => return Error::config("a tracking connection closed"),
            _ = check.tick() => {
                if !pings.fence().await {
                    return Error::timed_out("pinging the tracking connections", store.timeout);
                }
                if !matches!(&*store.backend, Backend::Single { .. }) {
                    match store.masters().await {
                        Ok(now) if same_masters(&now, &masters) => {}
                        Ok(_) => return Error::config("the masters changed (a failover or a resharding)"),
                        Err(e) => return e,
                    }
                }
            }
        }
    }
}

/// A RESP3 connection to `master` over a [`Watched`] TCP stream, with its driver
/// task; `None` for a TLS or Unix socket connection (made by redis-rs, unwatched).
async fn connect_watched(
    master: &redis::Client,
    config: &AsyncConnectionConfig,
    timeout: Duration,
) -> redis::RedisResult<Option<(MultiplexedConnection, Arc<ReadState>, Background)>> {
    let info = master.get_connection_info();
    let redis::ConnectionAddr::Tcp(host, port) = info.addr() else {
        return Ok(None);
    };
    let stream = tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), *port)))
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connecting for client tracking",
            ))
        })??;
    stream.set_nodelay(true)?;
    let (stream, state) = Watched::new(stream)?;
    let (conn, driver) =
        MultiplexedConnection::new_with_config(info.redis_settings(), stream, config.clone())
            .await?;
    Ok(Some((conn, state, Background::spawn(driver))))
}

/// A `PING` on every tracking connection: Redis answers it after every invalidation
/// it sent that connection before, and those are applied as they are read, so once
/// each answered, every write completed before the fence is in the cache.
struct Pings {
    conns: Vec<MultiplexedConnection>,
    timeout: Duration,
}

impl Barrier for Pings {
    fn fence(&self) -> Pin<Box<dyn Future<Output = bool> + Send + 'static>> {
        let (mut conns, timeout) = (self.conns.clone(), self.timeout);
        Box::pin(async move {
            let all = async {
                if conns.len() == 1
                    && let Some(conn) = conns.pop()
                {
                    // One connection (standalone, Sentinel): no task to spawn.
                    return ping(conn).await;
                }
                let mut pings = tokio::task::JoinSet::new();
                for conn in conns {
                    pings.spawn(ping(conn));
                }
                while let Some(answered) = pings.join_next().await {
                    if !matches!(answered, Ok(true)) {
                        return false;
                    }
                }
                true
            };
            tokio::time::timeout(timeout, all).await.unwrap_or(false)
        })
    }
}

/// One `PING` on a tracking connection: whether it was answered.
async fn ping(mut conn: MultiplexedConnection) -> bool {
    redis::cmd("PING")
        .query_async::<()>(&mut conn)
        .await
        .is_ok()
}

fn same_masters(a: &[redis::Client], b: &[redis::Client]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(a, b)| a.get_connection_info().addr() == b.get_connection_info().addr())
}

/// An `invalidate` push: the keys written, or nil for a flush of everything.
fn invalidate(feed: &Invalidator, prefix: &str, data: Vec<Value>) {
    let mut keys = Vec::new();
    for value in data {
        match value {
            Value::Array(items) | Value::Set(items) => keys.extend(items),
            Value::Nil => return feed.flush(),
            other => keys.push(other),
        }
    }
    for key in keys {
        match session_id(prefix, &key) {
            Some(id) => feed.invalidate(&id),
            // A key under the prefix this store does not name: forget everything
            // rather than guess.
            None => return feed.flush(),
        }
    }
}

/// The session id in a key `{prefix}{ID}` (with the Cluster braces).
fn session_id(prefix: &str, key: &Value) -> Option<Id> {
    let Value::BulkString(bytes) = key else {
        return None;
    };
    let text = std::str::from_utf8(bytes).ok()?.strip_prefix(prefix)?;
    Id::parse(text.strip_prefix('{')?.strip_suffix('}')?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lists_the_masters_that_are_up() {
        let nodes = "\
07c3 127.0.0.1:30004@31004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@31002,host-b master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383
e7d1 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
6ec2 127.0.0.1:30005@31005 master,fail - 1426238316232 1426238316232 5 disconnected
aa11 :0@0 master,noaddr - 0 0 6 disconnected
";
        assert_eq!(
            cluster_masters(nodes),
            vec![
                ("127.0.0.1".to_owned(), 30001),
                ("127.0.0.1".to_owned(), 30002),
                ("127.0.0.1".to_owned(), 30003),
            ]
        );
    }

    #[test]
    fn an_invalidated_key_names_its_session_and_anything_else_flushes() {
        let id = Id::generate().unwrap();
        let key = Value::BulkString(format!("tether:p:{{{id}}}").into_bytes());
        assert_eq!(session_id("tether:p:", &key), Some(id));
        for other in ["tether:p:x", "tether:p:{x}", "other:p:{id}", "tether:p:"] {
            assert_eq!(
                session_id("tether:p:", &Value::BulkString(other.into())),
                None
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_cluster_nodes_text_never_panics(text in "\\PC{0,400}") {
            let _ = cluster_masters(&text);
        }
    }
}
