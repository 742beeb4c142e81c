//! Opening the Redis store a URL names: one node, a Cluster, or behind Sentinel,
//! over TLS with the CA configuration gives.

use tether_core::Error;
use tether_redis::{RedisStore, RedisTls};

use crate::store_url::Target;

/// The Redis store for `target` (a Redis target), checked against `ca_pem` when given.
pub(crate) fn open(target: Target, ca_pem: Option<Vec<u8>>) -> Result<RedisStore, Error> {
    let tls = ca_pem.map(RedisTls::with_root_ca);
    match (target, tls) {
        (Target::Redis(url), None) => RedisStore::connect(&url),
        (Target::Redis(url), Some(tls)) => RedisStore::connect_tls(&url, &tls),
        (Target::RedisCluster(nodes), None) => RedisStore::connect_cluster(nodes),
        (Target::RedisCluster(nodes), Some(tls)) => RedisStore::connect_cluster_tls(nodes, &tls),
        (
            Target::RedisSentinel {
                sentinels,
                master_name,
                master,
            },
            None,
        ) => RedisStore::connect_sentinel_with(sentinels, &master_name, master.as_deref()),
        (Target::RedisSentinel { .. }, Some(_)) => Err(Error::config(
            "a CA certificate with Sentinel: build the store with RedisStore's constructors",
        )),
        _ => Err(Error::config("not a Redis store URL")),
    }
}
