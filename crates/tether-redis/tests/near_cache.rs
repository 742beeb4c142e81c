//! The near cache against the real Redis `scripts/test` starts: the contract holds on
//! a cached store; a write, a delete or an expiry by another client reaches the
//! cache; this instance's own writes and locks drop its entry before they return; and
//! a cached read costs no command at Redis (counted by `MONITOR`).

use std::sync::Arc;
use std::time::Duration;

use tether_core::{
    CachedStore, Changes, Expiry, Id, LockOptions, NearCacheConfig, Record, SessionStore,
};
use tether_redis::RedisStore;
use tether_testkit::services::RedisMonitor;

fn redis_url() -> String {
    std::env::var("TETHER_TEST_REDIS_URL").expect(
        "TETHER_TEST_REDIS_URL is not set: run the tests through scripts/test, which starts redis-server",
    )
}

/// A cached store on `prefix`, once its tracking is on.
async fn cached(prefix: &str) -> CachedStore<RedisStore> {
    let store = RedisStore::connect(&redis_url())
        .unwrap()
        .with_prefix(prefix)
        .with_near_cache(NearCacheConfig::default())
        .unwrap();
    live(&store).await;
    store
}

async fn live(store: &CachedStore<RedisStore>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !store.cache().is_live() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "tracking never came on"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn record(n: u64) -> Record {
    let mut record = Record::new(time::OffsetDateTime::now_utc(), &Expiry::default());
    record.data.insert("n".into(), n.into());
    record
}

fn set(n: u64) -> Changes {
    let mut changes = Changes::new(
        time::OffsetDateTime::now_utc(),
        time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    );
    changes.updates.insert("n".into(), Some(n.into()));
    changes
}

async fn n_of(store: &impl SessionStore, id: &Id) -> Option<u64> {
    store
        .load(id)
        .await
        .unwrap()
        .map(|r| r.data["n"].as_u64().unwrap())
}

/// Polls `store` until `id` reads as `want`, for at most 5 s.
async fn reads(store: &impl SessionStore, id: &Id, want: Option<u64>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = n_of(store, id).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {got:?}, not {want:?}, 5 s after the write"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
    let id = Id::generate().unwrap();
    b.create(&id, &record(1)).await.unwrap();
    assert_eq!(n_of(&a, &id).await, Some(1));
    assert_eq!(n_of(&a, &id).await, Some(1));
    assert!(a.cache().stats().hits >= 1, "{:?}", a.cache().stats());

    // An update, a refresh, a rotation and a logout on B.
    b.save(&id, &set(2)).await.unwrap();
    reads(&a, &id, Some(2)).await;
    let new = Id::generate().unwrap();
    n_of(&a, &id).await;
    b.cycle_id(&id, &new, &set(3)).await.unwrap();
    reads(&a, &id, None).await;
    reads(&a, &new, Some(3)).await;
    b.delete(&new).await.unwrap();
    reads(&a, &new, None).await;

    // Any client's write, and Redis's own expiry, count too.
    let id = Id::generate().unwrap();
    b.create(&id, &record(4)).await.unwrap();
    assert_eq!(n_of(&a, &id).await, Some(4));
    let mut raw = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("near-other:p:{{{id}}}");
    let _: () = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(1)
        .query_async(&mut raw)
        .await
        .unwrap();
    reads(&a, &id, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn own_writes_and_locks_drop_the_entry_before_they_return() {
    let a = cached("near-own:").await;
    let b = cached("near-own:").await;
    let id = Id::generate().unwrap();
    a.create(&id, &record(1)).await.unwrap();
    assert_eq!(n_of(&a, &id).await, Some(1));
    assert_eq!(n_of(&a, &id).await, Some(1));
    // No waiting: what this instance wrote, it reads.
    a.save(&id, &set(2)).await.unwrap();
    assert_eq!(n_of(&a, &id).await, Some(2));
    let base = a.load(&id).await.unwrap().unwrap();
    a.save_from(&id, &base, &set(3)).await.unwrap();
    assert_eq!(n_of(&a, &id).await, Some(3));

    // A lock holder reads the store's newest record even right after another
    // instance wrote (the invalidation may still be on its way).
    for n in 4..40 {
        assert_eq!(n_of(&a, &id).await, Some(n - 1));
        b.save(&id, &set(n)).await.unwrap();
        let token = a.lock(&id, &LockOptions::default()).await.unwrap();
        assert_eq!(
            n_of(&a, &id).await,
            Some(n),
            "a lock holder read a stale copy"
        );
        // A save from the (possibly cached) base moves on the newest record.
        let base = a.load(&id).await.unwrap().unwrap();
        a.save_from(&id, &base, &set(n)).await.unwrap();
        a.unlock(&id, &token).await.unwrap();
    }
    a.delete(&id).await.unwrap();
    assert_eq!(n_of(&a, &id).await, None);
}

/// One test in its binary's shared Redis that counts: nothing else here reads the
/// prefix while the monitor runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cached_read_sends_nothing_to_redis() {
    let a = Arc::new(cached("near-count:").await);
    let id = Id::generate().unwrap();
    a.create(&id, &record(1)).await.unwrap();
    assert_eq!(n_of(&*a, &id).await, Some(1));
    let url = redis_url();
    let monitor = RedisMonitor::start(&url).unwrap();
    for _ in 0..200 {
        assert_eq!(n_of(&*a, &id).await, Some(1));
    }
    let commands = tokio::task::spawn_blocking(move || monitor.commands("near-count:"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(commands, Vec::<String>::new(), "cached reads reached Redis");
    assert!(a.cache().stats().hits >= 200, "{:?}", a.cache().stats());
}
