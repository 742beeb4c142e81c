//! The near cache against the real Redis `scripts/test` starts: the contract holds on
//! a cached store; a write or a delete by another instance or any client reaches the
//! cache; this instance's own writes and locks are read at once; and a cached read
//! costs no command at Redis (counted by `MONITOR`).

use std::sync::Arc;

use tether_core::{CachedStore, Freshness, Id, NearCacheConfig, SessionStore};
use tether_redis::RedisStore;
use tether_testkit::near_cache::{
    n_of, never_stale_after_a_write_answered, other_writers_reach, own_writes_are_read_at_once,
    reads, record, until_live,
};
use tether_testkit::services::RedisMonitor;

use tether_testkit::services::redis_url;

/// Waits (5 s at most) until `store`'s cache has applied `count` invalidations.
async fn until_invalidations(store: &CachedStore<RedisStore>, count: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.cache().stats().invalidations < count {
        assert!(
            std::time::Instant::now() < deadline,
            "Redis's invalidation never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A store on `prefix` with a near cache whose reads are `freshness`.
fn near(prefix: &str, freshness: Freshness) -> CachedStore<RedisStore> {
    RedisStore::connect(&redis_url())
        .unwrap()
        .with_prefix(prefix)
        .with_near_cache(NearCacheConfig::default().with_freshness(freshness))
        .unwrap()
}

/// A cached store (fenced reads) on `prefix`, once its tracking is on.
async fn cached(prefix: &str) -> CachedStore<RedisStore> {
    let store = near(prefix, Freshness::Fenced);
    until_live(&store).await;
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cached_store_passes_the_conformance_suite() {
    let store = cached("conformance-cached:").await;
    let dead = RedisStore::connect("redis://127.0.0.1:1").unwrap();
    tether_testkit::Suite::new(store)
        .with_unavailable(dead)
        .run()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_by_another_instance_or_client_reach_the_cache() {
    let a = cached("near-other:").await;
    let b = cached("near-other:").await;
    other_writers_reach(&a, &b).await;
    other_writers_reach(&a, b.inner()).await;

    // Any client's write counts too. (Redis's own expiry also sends an invalidation,
    // when Redis deletes the key; the cache checks the record's deadlines itself,
    // which tether sets the key's TTL to.)
    let id = Id::generate().unwrap();
    b.create(&id, &record(4)).await.unwrap();
    assert_eq!(n_of(&a, &id).await.unwrap(), Some(4));
    let mut raw = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("near-other:p:{{{id}}}");
    let _: () = redis::cmd("UNLINK")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    reads(&a, &id, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn own_writes_and_locks_are_read_at_once() {
    let a = cached("near-own:").await;
    let b = cached("near-own:").await;
    own_writes_are_read_at_once(&a, &b).await;
}

/// One test in its binary's shared Redis that counts: nothing else here reads the
/// prefix while the monitor runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cached_read_sends_nothing_to_redis() {
    let a = Arc::new(cached("near-count:").await);
    let id = Id::generate().unwrap();
    let invalidations = a.cache().stats().invalidations;
    a.create(&id, &record(1)).await.unwrap();
    // Past the creation's own invalidation (this instance's drop, then Redis's),
    // which would drop a copy kept before it arrived.
    until_invalidations(&a, invalidations + 2).await;
    assert_eq!(n_of(&*a, &id).await.unwrap(), Some(1));
    let url = redis_url();
    let monitor = RedisMonitor::start(&url).unwrap();
    for _ in 0..200 {
        assert_eq!(n_of(&*a, &id).await.unwrap(), Some(1));
    }
    let commands = tokio::task::spawn_blocking(move || monitor.commands("near-count:"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(commands, Vec::<String>::new(), "cached reads reached Redis");
    assert!(a.cache().stats().hits >= 200, "{:?}", a.cache().stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_instance_asked_right_after_a_write_answered_is_never_stale() {
    let a = cached("near-after:").await;
    let b = cached("near-after:").await;
    never_stale_after_a_write_answered(&a, &b, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushed_reads_of_a_quiet_channel_take_no_fence() {
    let store = near("near-pushed:", Freshness::Pushed);
    until_live(&store).await;
    let writer = cached("near-pushed:").await;
    other_writers_reach(&store, &writer).await;
    own_writes_are_read_at_once(&store, &writer).await;
    // Nothing written any more: every read is served from memory, with no fence. A
    // store that starts listening now is told of the one write below and nothing
    // else, so it can wait for exactly that invalidation: applied after the first
    // read kept its copy (on a busy machine it can be), it would drop the copy and
    // the next read would miss.
    let fresh = near("near-pushed:", Freshness::Pushed);
    until_live(&fresh).await;
    let id = Id::generate().unwrap();
    writer.create(&id, &record(1)).await.unwrap();
    until_invalidations(&fresh, 1).await;
    reads(&fresh, &id, Some(1)).await;
    let before = fresh.cache().stats();
    for _ in 0..200 {
        reads(&fresh, &id, Some(1)).await;
    }
    let after = fresh.cache().stats();
    assert_eq!(after.hits - before.hits, 200, "{after:?}");
    assert_eq!(
        after.fenced, before.fenced,
        "a quiet channel's read waited: {after:?}"
    );
}

/// A pushed read right after another client's write answered (the writer waits for
/// nothing but Redis's reply): Redis wrote the invalidation to this instance's
/// tracking connection before that reply, so the read finds it unread or applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushed_reads_right_after_a_write_answered_are_never_stale() {
    let store = near("near-pushed-after:", Freshness::Pushed);
    let writer = RedisStore::connect(&redis_url())
        .unwrap()
        .with_prefix("near-pushed-after:");
    never_stale_after_a_write_answered(&store, &writer, 1000).await;
}
