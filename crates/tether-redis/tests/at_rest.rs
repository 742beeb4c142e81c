//! Ids at rest are not credentials: after a login through the layer, neither the
//! commands Redis received (`MONITOR`, as a replica or a log would see them) nor any
//! key or value it holds contains an id the browser was given.

use std::process::Command;

use tether::SessionLayer;
use tether_redis::RedisStore;
use tether_testkit::at_rest::{assert_absent, presented_ids};
use tether_testkit::services::RedisMonitor;

use tether_testkit::services::redis_url;

fn redis_cli(url: &str, args: &[&str]) -> Vec<u8> {
    let port = url.trim_end_matches('/').rsplit(':').next().unwrap();
    let cli = std::env::var("TETHER_REDIS_CLI").unwrap_or_else(|_| "redis-cli".into());
    let out = Command::new(cli)
        .args(["-p", port])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_never_holds_a_presented_id() {
    let url = redis_url();
    let store = RedisStore::connect(&url).unwrap().with_prefix("at-rest:");
    let monitor = RedisMonitor::start(&url).unwrap();
    let ids = presented_ids(SessionLayer::new(store)).await;
    let commands = tokio::task::spawn_blocking(move || monitor.commands(""))
        .await
        .unwrap()
        .unwrap();
    assert!(!commands.is_empty(), "the monitor saw nothing");
    assert_absent(
        "the commands Redis received",
        commands.join("\n").as_bytes(),
        &ids,
    );

    let keys = redis_cli(&url, &["--scan", "--pattern", "at-rest:*"]);
    let keys = String::from_utf8(keys).unwrap();
    assert!(!keys.trim().is_empty(), "the store wrote no key");
    let mut written = keys.clone().into_bytes();
    for key in keys.lines() {
        written.extend(redis_cli(&url, &["--no-raw", "DUMP", key]));
    }
    assert_absent("Redis's keys and values", &written, &ids);
}

/// Every command Redis received while the check ran (values included) is its dump.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_session_values_are_ciphertext_in_redis() {
    let url = redis_url();
    let store = RedisStore::connect(&url).unwrap().with_prefix("sealed:");
    let monitor = std::sync::Mutex::new(Some(RedisMonitor::start(&url).unwrap()));
    tether_testkit::at_rest::check_sealed_data(std::sync::Arc::new(store), async || {
        let monitor = monitor.lock().unwrap().take().expect("one dump");
        let commands = tokio::task::spawn_blocking(move || monitor.commands(""))
            .await
            .unwrap()
            .unwrap();
        commands.join("\n").into_bytes()
    })
    .await;
}
