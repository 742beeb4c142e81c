//! The near cache when its channel fails, on a Redis of the test's own (appendonly, so
//! a restart keeps the sessions): a killed tracking connection and a Redis restart
//! each flush the cache and send reads to Redis until tracking is on again, while
//! traffic runs. A write made while this instance was not tracking is never hidden by
//! a cached copy.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tether_core::NearCacheConfig;
use tether_redis::RedisStore;
use tether_testkit::harness::private_dir;
use tether_testkit::near_cache::lost_channels_hide_no_write;
use tether_testkit::services::{RedisServer, program};

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new(program("TETHER_REDIS_CLI", "redis-cli"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The ids of the clients with tracking on.
fn tracking_clients(port: u16) -> Vec<String> {
    cli(port, &["CLIENT", "LIST"])
        .lines()
        .filter(|line| {
            line.split_whitespace().any(|f| {
                f.strip_prefix("flags=")
                    .is_some_and(|flags| flags.contains('t'))
            })
        })
        .filter_map(|line| {
            line.split_whitespace()
                .next()?
                .strip_prefix("id=")
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_tracking_connection_or_a_restart_flushes_and_bypasses_under_traffic() {
    let dir = private_dir("near-cache-faults");
    let server = std::sync::Mutex::new(RedisServer::start(&dir).expect("redis-server starts"));
    let (url, port) = {
        let server = server.lock().unwrap();
        (server.url(), server.port())
    };
    let cached = Arc::new(
        RedisStore::connect(&url)
            .unwrap()
            .with_near_cache(NearCacheConfig::default())
            .unwrap(),
    );
    let writer = RedisStore::connect(&url).unwrap();

    // Killed tracking connections.
    lost_channels_hide_no_write(cached.clone(), &writer, 5, async || {
        let tracking = tracking_clients(port);
        assert_eq!(tracking.len(), 1, "one tracking connection: {tracking:?}");
        assert!(cli(port, &["CLIENT", "KILL", "ID", &tracking[0]]).contains('1'));
    })
    .await;

    // Restarts: Redis goes down and comes back with the same data; the first write
    // after it may come before tracking is back.
    lost_channels_hide_no_write(cached.clone(), &writer, 2, async || {
        server.lock().unwrap().stop().expect("redis-server stops");
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while cached.cache().is_live() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            !cached.cache().is_live(),
            "Redis is down and the cache is served"
        );
        server
            .lock()
            .unwrap()
            .start_again()
            .expect("redis-server starts again");
    })
    .await;
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}
