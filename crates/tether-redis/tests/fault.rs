//! Redis stops and starts again (with persistence) while requests run: 503s with a
//! clear body during the outage, never a 500 or a fresh session over real data; after
//! the restart, requests succeed without restarting the app and every session saved
//! before the outage is still there.

use std::time::Duration;

use tether::SessionLayer;
use tether_redis::RedisStore;
use tether_testkit::http::{expect_outage, expect_recovery, sessions_with_counters};
use tether_testkit::services::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_redis_restart_and_the_app_recovers_by_itself() {
    let dir = std::env::temp_dir().join(format!("tether-redis-fault-{}", std::process::id()));
    let mut redis = RedisServer::start(&dir).expect("redis-server starts");

    let store = RedisStore::connect(&redis.url())
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let app = tether_testkit::app::routes().layer(SessionLayer::new(store));

    // 20 sessions, each with a counter at 3.
    let users = sessions_with_counters(&app, 20, 3).await;
    redis.stop().expect("redis-server stops");
    expect_outage(&app, &users).await;
    redis.start_again().expect("redis-server starts again");
    // The connection comes back by itself.
    expect_recovery(&app, &users, 3, Duration::from_secs(5)).await;
    // Dropping `redis` stops it and removes its directory.
}
