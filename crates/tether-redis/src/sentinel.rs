//! Redis behind Sentinel: the master is found through the sentinels, and found again
//! after a failover (any failed call forgets the connection, so the next asks anew).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{AsyncConnectionConfig, IntoConnectionInfo as _, RedisResult, TlsMode};
use tether_core::{Error, Result};

use crate::{Backend, RedisStore};

/// The sentinels, and the connection to the master they named last.
pub(crate) struct Sentinels {
    client: tokio::sync::Mutex<SentinelClient>,
    master: std::sync::Mutex<Option<MultiplexedConnection>>,
}

impl Sentinels {
    /// A connection to the master the sentinels name now, when [`Self::current`] has
    /// none.
    pub(crate) async fn connection(&self, timeout: Duration) -> RedisResult<MultiplexedConnection> {
        let mut client = self.client.lock().await;
        // Another call may have connected while this one waited.
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let conn = client.get_async_connection_with_config(&config).await?;
        *self.lock_master() = Some(conn.clone());
        Ok(conn)
    }

    /// The master's connection if one is made (none after [`Self::forget`]).
    pub(crate) fn current(&self) -> Option<MultiplexedConnection> {
        self.lock_master().clone()
    }

    /// A client for the master the sentinels name now (the near cache's tracking
    /// connection is made from it).
    pub(crate) async fn master_client(&self) -> RedisResult<redis::Client> {
        self.client.lock().await.async_get_client().await
    }

    /// After a failed call: the master may have changed; ask the sentinels next time.
    pub(crate) fn forget(&self) {
        *self.lock_master() = None;
    }

    fn lock_master(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.master
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl RedisStore {
    /// A store on the Redis master that Sentinel names `master_name`, given one or more
    /// sentinels (`redis://host:26379`). The master is looked up on first use and again
    /// after any failed call, so a failover costs the requests in flight during it
    /// (503s) and no restart. Writes Redis acknowledged but had not yet copied to the
    /// replica that takes over are lost: Redis replicates asynchronously.
    ///
    /// ```
    /// let store = tether_redis::RedisStore::connect_sentinel(
    ///     ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379", "redis://10.0.0.3:26379"],
    ///     "sessions",
    /// )?;
    /// # Ok::<(), tether_core::Error>(())
    /// ```
    ///
    /// The master is reached as the sentinels are: over TLS (system roots) when they
    /// are `rediss://`, else in plain text, with no password. For a master that wants
    /// a password, a database or TLS of its own, see
    /// [`RedisStore::connect_sentinel_with`].
    ///
    /// # Errors
    /// [`Error::Config`] for a sentinel URL that does not parse or an empty list.
    pub fn connect_sentinel<I, S>(sentinels: I, master_name: &str) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::connect_sentinel_with(sentinels, master_name, None)
    }

    /// Like [`RedisStore::connect_sentinel`], reaching the master as `master` says:
    /// a URL whose host is ignored (the sentinels name it) and whose scheme, user,
    /// password and database apply, such as `rediss://:secret@master/0`.
    ///
    /// ```
    /// let store = tether_redis::RedisStore::connect_sentinel_with(
    ///     ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"],
    ///     "sessions",
    ///     Some("redis://:s3cret@master/2"),
    /// )?;
    /// # Ok::<(), tether_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that does not parse, an empty list, TLS to the
    /// sentinels with a plain-text master (session data would travel in clear), a
    /// list that mixes TLS and plain-text sentinels, or a TLS master behind plain-text
    /// sentinels: the master's address would arrive unauthenticated, and a man in the
    /// middle could name a host of his own (see
    /// [`RedisStore::connect_sentinel_with_plaintext_sentinels`] to accept that).
    pub fn connect_sentinel_with<I, S>(
        sentinels: I,
        master_name: &str,
        master: Option<&str>,
    ) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::sentinel(sentinels, master_name, master, false)
    }

    /// Like [`RedisStore::connect_sentinel_with`] for a TLS master behind sentinels
    /// that speak plain text: whoever can change the sentinels' answers on the way
    /// can send the store to a host of their own (which must still pass the master's
    /// TLS check). Only for sentinels on a network you trust, while they cannot speak
    /// TLS.
    ///
    /// ```
    /// let store = tether_redis::RedisStore::connect_sentinel_with_plaintext_sentinels(
    ///     ["redis://10.0.0.1:26379"],
    ///     "sessions",
    ///     Some("rediss://:s3cret@master/0"),
    /// )?;
    /// # Ok::<(), tether_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`RedisStore::connect_sentinel_with`], a plain-text sentinel list aside.
    pub fn connect_sentinel_with_plaintext_sentinels<I, S>(
        sentinels: I,
        master_name: &str,
        master: Option<&str>,
    ) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::sentinel(sentinels, master_name, master, true)
    }

    fn sentinel<I, S>(
        sentinels: I,
        master_name: &str,
        master: Option<&str>,
        plaintext_sentinels_allowed: bool,
    ) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls: Vec<String> = sentinels.into_iter().map(Into::into).collect();
        let target = format!(
            "master {master_name} via sentinels {}",
            urls.iter()
                .map(|u| tether_core::redact_url(u))
                .collect::<Vec<_>>()
                .join(",")
        );
        if urls.is_empty() {
            return Err(Error::config("Redis Sentinel: no sentinel given"));
        }
        let is_tls = |u: &str| {
            u.get(..9)
                .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"))
        };
        let tls_sentinels = urls.iter().any(|u| is_tls(u));
        if tls_sentinels && !urls.iter().all(|u| is_tls(u)) {
            return Err(Error::config(format!(
                "Redis Sentinel {target}: the sentinel list mixes rediss:// and redis://; \
                 a plain-text sentinel could name any host as the master: give every \
                 sentinel as rediss://"
            )));
        }
        let tls_master = master.map_or(tls_sentinels, is_tls);
        if tls_master && !tls_sentinels && !plaintext_sentinels_allowed {
            return Err(Error::config(format!(
                "Redis Sentinel {target}: the master speaks TLS but the sentinels do not; \
                 its address would arrive unauthenticated, so a man in the middle could \
                 name a host of his own: give the sentinels as rediss://, or accept it \
                 by name with connect_sentinel_with_plaintext_sentinels"
            )));
        }
        if tls_sentinels && !tls_master {
            return Err(Error::config(format!(
                "Redis Sentinel {target}: the sentinels speak TLS but the master URL does not \
                 (rediss://…)"
            )));
        }
        if tls_sentinels || tls_master {
            crate::tls::crypto_provider();
        }
        let mut node = SentinelNodeConnectionInfo::default();
        if let Some(master) = master {
            let info = master.into_connection_info().map_err(|e| {
                Error::config(format!(
                    "Redis Sentinel master URL {}: {e}",
                    tether_core::redact_url(master)
                ))
            })?;
            node = node.set_redis_connection_info(info.redis_settings().clone());
        }
        if tls_master {
            node = node.set_tls_mode(TlsMode::Secure);
        }
        let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
        let client =
            SentinelClient::build(refs, master_name, Some(node), SentinelServerType::Master)
                .map_err(|e| Error::config(format!("Redis Sentinel {target}: {e}")))?;
        let sentinels = Sentinels {
            client: tokio::sync::Mutex::new(client),
            master: std::sync::Mutex::new(None),
        };
        Ok(Self::new(Backend::Sentinel(Box::new(sentinels)), target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(result: Result<RedisStore>) -> String {
        match result {
            Err(Error::Config(why)) => why,
            other => panic!("not a configuration error: {other:?}"),
        }
    }

    #[test]
    fn a_tls_master_needs_tls_sentinels_unless_accepted_by_name() {
        let tls = ["rediss://10.0.0.1:26379", "rediss://10.0.0.2:26379"];
        let plain = ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"];
        let mixed = ["rediss://10.0.0.1:26379", "redis://10.0.0.2:26379"];
        let master = Some("rediss://:pw@master/0");

        assert!(RedisStore::connect_sentinel_with(tls, "m", master).is_ok());
        assert!(RedisStore::connect_sentinel(tls, "m").is_ok());
        assert!(
            RedisStore::connect_sentinel(plain, "m").is_ok(),
            "all plain"
        );

        let why = refusal(RedisStore::connect_sentinel_with(plain, "m", master));
        assert!(why.contains("unauthenticated"), "{why}");
        let why = refusal(RedisStore::connect_sentinel(mixed, "m"));
        assert!(why.contains("mixes"), "{why}");
        let why = refusal(RedisStore::connect_sentinel_with(mixed, "m", master));
        assert!(why.contains("mixes"), "{why}");
        assert!(!why.contains("pw"), "a password in an error: {why}");

        assert!(
            RedisStore::connect_sentinel_with_plaintext_sentinels(plain, "m", master).is_ok(),
            "the opt-out by name"
        );
        assert!(
            RedisStore::connect_sentinel_with_plaintext_sentinels(mixed, "m", master).is_err(),
            "a mixed list stays refused"
        );
    }
}
