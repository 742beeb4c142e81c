//! Through the layer against real Redis: one Redis command per read request (`GET`)
//! and one per write request (`EVALSHA`), and one for a cookie that names no session,
//! counted by Redis itself.

use tether::SessionLayer;
use tether_redis::RedisStore;
use tether_testkit::http::send;
use tether_testkit::services::RedisMonitor;

use tether_testkit::services::redis_url;

/// Commands per read and per write request through `store`, as Redis's `MONITOR`
/// lists the commands clients send (a script's own commands are not round trips and
/// are not counted).
async fn commands_per_request(url: &str, store: RedisStore, rounds: u64) -> (u64, u64) {
    let app = tether_testkit::app::routes().layer(SessionLayer::new(store));
    let cookie = send(&app, "POST", "/write", None).await.cookie();
    // Warm up the connection and load the scripts.
    for _ in 0..3 {
        send(&app, "GET", "/read", Some(&cookie)).await;
        send(&app, "POST", "/write", Some(&cookie)).await;
    }
    let count = async |method: &str, path: &str| {
        let monitor = RedisMonitor::start(url).unwrap();
        for _ in 0..rounds {
            let status = send(&app, method, path, Some(&cookie)).await.status;
            assert!(status.is_success(), "{method} {path}: {status}");
        }
        let commands = tokio::task::spawn_blocking(move || monitor.commands(""))
            .await
            .unwrap()
            .unwrap();
        commands.len() as u64
    };
    let reads = count("GET", "/read").await;
    let writes = count("POST", "/write").await;
    (reads, writes)
}

/// Commands for `rounds` read requests whose cookie names no session (well-formed,
/// never issued).
async fn commands_for_unknown_ids(url: &str, store: RedisStore, rounds: u64) -> u64 {
    let app = tether_testkit::app::routes().layer(SessionLayer::new(store));
    let cookie = send(&app, "POST", "/write", None).await.cookie();
    let name = cookie.split('=').next().unwrap().to_owned();
    let monitor = RedisMonitor::start(url).unwrap();
    for _ in 0..rounds {
        let unknown = format!("{name}={}", tether::Id::generate().unwrap());
        let status = send(&app, "GET", "/read", Some(&unknown)).await.status;
        assert!(status.is_success(), "GET /read: {status}");
    }
    let commands = tokio::task::spawn_blocking(move || monitor.commands(""))
        .await
        .unwrap()
        .unwrap();
    commands.len() as u64
}

/// One test, so nothing else of this binary sends commands while the monitor counts
/// (it sees every client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_redis_command_per_read_and_per_write_request_on_a_pool_too() {
    let url = redis_url();
    let rounds = 20;
    let store = RedisStore::connect(&url).unwrap().with_prefix("commands:");
    let (reads, writes) = commands_per_request(&url, store, rounds).await;
    eprintln!("redis commands: {reads} for {rounds} reads, {writes} for {rounds} writes");
    assert_eq!(reads, rounds, "commands for {rounds} read requests");
    assert_eq!(writes, rounds, "commands for {rounds} write requests");

    // A cookie that names no session costs its one `GET`, no second look anywhere.
    let store = RedisStore::connect(&url).unwrap().with_prefix("commands:");
    let unknown = commands_for_unknown_ids(&url, store, rounds).await;
    assert_eq!(
        unknown, rounds,
        "commands for {rounds} reads with an unknown id"
    );

    // On the app's deadpool-redis pool, the same: the store keeps one connection from
    // the pool, so no call pays deadpool's check of a connection it hands out again
    // (`UNWATCH` and `PING`, one more round trip each, which it paid before).
    let pool = deadpool_redis::Config::from_url(url.as_str())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let store = RedisStore::from_pool(pool).with_prefix("pooled-commands:");
    let (reads, writes) = commands_per_request(&url, store, rounds).await;
    eprintln!("on a deadpool pool: {reads} for {rounds} reads, {writes} for {rounds} writes");
    assert_eq!(
        reads, rounds,
        "commands for {rounds} read requests on a pool"
    );
    assert_eq!(
        writes, rounds,
        "commands for {rounds} write requests on a pool"
    );
}
