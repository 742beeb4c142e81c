//! Through the layer against real Redis: one Redis command per read request and one
//! per write request, counted by Redis itself.

use tether::SessionLayer;
use tether_redis::RedisStore;
use tether_testkit::http::calls_per_request;

fn redis_url() -> String {
    std::env::var("TETHER_TEST_REDIS_URL").expect(
        "TETHER_TEST_REDIS_URL is not set: run the tests through scripts/test, which starts redis-server",
    )
}

/// Calls of every command clients sent, by name, from `INFO commandstats`. Commands
/// run inside scripts are counted there too, so only the names tether sends from the
/// client side are summed (a load is an `EVALSHA` whose script runs `HGETALL`, so
/// `HGETALL` is not among them).
async fn client_commands(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| line.strip_prefix("cmdstat_"))
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| {
            [
                "evalsha",
                "eval",
                "del",
                "zadd",
                "zrem",
                "zrange",
                "set",
                "ping",
                "unwatch",
                "script|load",
            ]
            .contains(name)
        })
        .map(|(_, stats)| {
            stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// Commands per read and per write request through `store`, counted by Redis.
async fn commands_per_request(url: &str, store: RedisStore, rounds: u64) -> (u64, u64) {
    let app = tether_testkit::app::routes().layer(SessionLayer::new(store));
    let client = redis::Client::open(url).unwrap();
    let stats = client.get_multiplexed_async_connection().await.unwrap();
    calls_per_request(&app, rounds, || {
        let mut conn = stats.clone();
        Box::pin(async move { client_commands(&mut conn).await })
    })
    .await
}

/// One test, so nothing else of this binary runs commands while Redis counts (its
/// statistics are server-wide).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_redis_command_per_read_and_per_write_request_and_what_a_pool_adds() {
    let url = redis_url();
    let rounds = 20;
    let store = RedisStore::connect(&url).unwrap().with_prefix("commands:");
    let (reads, writes) = commands_per_request(&url, store, rounds).await;
    eprintln!("redis commands: {reads} for {rounds} reads, {writes} for {rounds} writes");
    assert_eq!(reads, rounds, "commands for {rounds} read requests");
    assert_eq!(writes, rounds, "commands for {rounds} write requests");

    // On the app's deadpool-redis pool, each store call also costs deadpool's check of
    // the connection it hands out again (`UNWATCH` and `PING`, pipelined: one more
    // round trip).
    let pool = deadpool_redis::Config::from_url(url.as_str())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let store = RedisStore::from_pool(pool).with_prefix("pooled-commands:");
    let (reads, writes) = commands_per_request(&url, store, rounds).await;
    eprintln!("on a deadpool pool: {reads} for {rounds} reads, {writes} for {rounds} writes");
    assert_eq!(reads, 3 * rounds, "commands for {rounds} read requests");
    assert_eq!(writes, 3 * rounds, "commands for {rounds} write requests");
}
