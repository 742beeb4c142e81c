//! The Redis store keeps the whole session contract against a real redis-server.

use tether_redis::RedisStore;

// The Redis that `scripts/test` started; a missing one is a failure, not a skip.
use tether_testkit::services::redis_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_passes_the_conformance_suite() {
    let store = RedisStore::connect(&redis_url())
        .unwrap()
        .with_prefix("conformance:");
    // Port 1 on loopback: nothing listens there.
    let dead = RedisStore::connect("redis://127.0.0.1:1").unwrap();
    tether_testkit::Suite::new(store)
        .with_unavailable(dead)
        .run()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_store_works_on_the_apps_deadpool_pool() {
    let pool = deadpool_redis::Config::from_url(redis_url())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let store = RedisStore::from_pool(pool).with_prefix("conformance-pool:");
    let dead = deadpool_redis::Config::from_url("redis://127.0.0.1:1")
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    tether_testkit::Suite::new(store)
        .with_unavailable(RedisStore::from_pool(dead))
        .run()
        .await;
}
