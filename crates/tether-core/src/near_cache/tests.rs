use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use time::OffsetDateTime;

use super::*;
use crate::Expiry;

fn record() -> Arc<Record> {
    Arc::new(Record::new(OffsetDateTime::now_utc(), &Expiry::default()))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn fill(cache: &NearCache, id: &Id, record: &Arc<Record>) {
    let Lookup::Miss(ticket) = cache.get(id, now()) else {
        panic!("expected a miss");
    };
    cache.put(id, record, ticket);
}

#[test]
fn nothing_is_served_until_the_feed_is_live_nor_after_it_is_lost_or_dropped() {
    let (cache, mut feed) = NearCache::new(&NearCacheConfig::default());
    let id = Id::generate().unwrap();
    assert!(matches!(cache.get(&id, now()), Lookup::Bypass));
    feed.live();
    fill(&cache, &id, &record());
    assert!(matches!(cache.get(&id, now()), Lookup::Hit(_)));
    feed.lost();
    assert!(matches!(cache.get(&id, now()), Lookup::Bypass));
    feed.live();
    // Back live, the cache starts empty: nothing from before the loss is served.
    assert!(matches!(cache.get(&id, now()), Lookup::Miss(_)));
    fill(&cache, &id, &record());
    drop(feed);
    assert!(matches!(cache.get(&id, now()), Lookup::Bypass));
    assert!(!cache.stats().live);
}

#[test]
fn an_answer_older_than_an_invalidation_flush_or_loss_is_not_kept() {
    let (cache, mut feed) = NearCache::new(&NearCacheConfig::default());
    feed.live();
    let id = Id::generate().unwrap();
    for disturb in [
        &(|c: &NearCache, f: &mut Feed, id: &Id| {
            let _ = c;
            f.invalidate(id);
        }) as &dyn Fn(&NearCache, &mut Feed, &Id),
        &|c, _, _| c.flush(),
        &|_, f, _| {
            f.lost();
            f.live();
        },
    ] {
        let Lookup::Miss(ticket) = cache.get(&id, now()) else {
            panic!("expected a miss");
        };
        disturb(&cache, &mut feed, &id);
        cache.put(&id, &record(), ticket);
        assert!(matches!(cache.get(&id, now()), Lookup::Miss(_)));
    }
    // An invalidation of another id leaves the answer alone (unless they share a
    // stripe, which the counter allows: find one that does not).
    let other = (0..100)
        .map(|_| Id::generate().unwrap())
        .find(|o| !std::ptr::eq(cache.stripe(o), cache.stripe(&id)))
        .unwrap();
    let Lookup::Miss(ticket) = cache.get(&id, now()) else {
        panic!("expected a miss");
    };
    feed.invalidate(&other);
    cache.put(&id, &record(), ticket);
    assert!(matches!(cache.get(&id, now()), Lookup::Hit(_)));
}

#[test]
fn a_record_past_its_idle_or_absolute_deadline_is_never_served() {
    let (cache, mut feed) = NearCache::new(&NearCacheConfig::default());
    feed.live();
    let soon = now() + time::Duration::milliseconds(30);
    for past in [
        |r: &mut Record, at| r.idle_deadline = at,
        |r: &mut Record, at| r.absolute_deadline = Some(at),
    ] {
        let id = Id::generate().unwrap();
        let mut r = Record::new(now(), &Expiry::default());
        past(&mut r, soon);
        fill(&cache, &id, &Arc::new(r));
        assert!(matches!(cache.get(&id, now()), Lookup::Hit(_)));
        assert!(matches!(
            cache.get(&id, soon + time::Duration::milliseconds(1)),
            Lookup::Miss(_)
        ));
        // Dropped: served by the store again, even at an earlier time.
        assert!(matches!(cache.get(&id, now()), Lookup::Miss(_)));
    }
}

#[test]
fn the_cache_holds_at_most_its_entries_and_its_bytes() {
    let (cache, mut feed) = NearCache::new(
        &NearCacheConfig::default()
            .with_max_entries(50)
            .with_max_bytes(1 << 30),
    );
    feed.live();
    for _ in 0..1000 {
        fill(&cache, &Id::generate().unwrap(), &record());
    }
    assert!(cache.stats().entries <= 50, "{:?}", cache.stats());
    let (cache, mut feed) = NearCache::new(
        &NearCacheConfig::default()
            .with_max_entries(1_000_000)
            .with_max_bytes(100_000),
    );
    feed.live();
    let mut big = Record::new(now(), &Expiry::default());
    big.data.insert("blob".into(), "x".repeat(10_000).into());
    let big = Arc::new(big);
    for _ in 0..100 {
        fill(&cache, &Id::generate().unwrap(), &big);
    }
    assert!(cache.stats().entries <= 10, "{:?}", cache.stats());
    assert!(cache.stats().entries >= 1, "{:?}", cache.stats());
}

/// Readers fill the cache from a "server" while a writer changes it and invalidates:
/// once the writer stops, the cache holds the server's last value or nothing, never
/// an older one, however the threads interleaved.
#[test]
fn racing_readers_never_leave_an_older_value_behind_an_invalidation() {
    for _ in 0..20 {
        let (cache, mut feed) = NearCache::new(&NearCacheConfig::default());
        feed.live();
        let feed = Arc::new(feed);
        let id = Id::generate().unwrap();
        let server = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (cache, server, stop) = (cache.clone(), server.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(SeqCst) {
                        if let Lookup::Miss(ticket) = cache.get(&id, now()) {
                            let mut r = Record::new(now(), &Expiry::default());
                            r.version = server.load(SeqCst);
                            std::thread::yield_now();
                            cache.put(&id, &Arc::new(r), ticket);
                        }
                    }
                })
            })
            .collect();
        for version in 1..=2000 {
            server.store(version, SeqCst);
            feed.invalidate(&id);
        }
        std::thread::sleep(Duration::from_millis(5));
        stop.store(true, SeqCst);
        for reader in readers {
            reader.join().unwrap();
        }
        if let Lookup::Hit(r) = cache.get(&id, now()) {
            assert_eq!(r.version, 2000, "a stale value outlived its invalidation");
        }
    }
}

#[tokio::test]
async fn a_write_waits_for_its_echo_which_a_flush_or_a_loss_also_ends() {
    let (cache, mut feed) = NearCache::new(&NearCacheConfig::default());
    feed.live();
    let id = Id::generate().unwrap();
    let long = Duration::from_secs(10);
    let echo = cache.expect_echo(&id);
    let other = cache.expect_echo(&Id::generate().unwrap());
    feed.invalidate(&id);
    assert!(echo.within(long).await, "the echo came");
    assert!(
        !other.within(Duration::from_millis(20)).await,
        "no echo for another id"
    );
    let echo = cache.expect_echo(&id);
    feed.flush();
    assert!(echo.within(long).await);
    let echo = cache.expect_echo(&id);
    feed.lost();
    assert!(echo.within(long).await);
    // Given-up waits are not kept.
    drop(cache.expect_echo(&id));
    assert!(cache.echoes.lock().is_empty());
}

/// A fence that takes `delay` and counts itself.
struct Slow {
    delay: Duration,
    sent: Arc<AtomicU64>,
}

impl Barrier for Slow {
    fn fence(&self) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + 'static>> {
        let (delay, sent) = (self.delay, self.sent.clone());
        Box::pin(async move {
            sent.fetch_add(1, SeqCst);
            tokio::time::sleep(delay).await;
            true
        })
    }
}

/// Spawns `n` fenced reads and checks that each passed its fence.
async fn all_pass(cache: &Arc<NearCache>, n: usize) {
    let reads: Vec<_> = (0..n)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.pass_fence().await })
        })
        .collect();
    for read in reads {
        assert!(read.await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fence_serves_every_read_that_arrived_before_it_left() {
    let (cache, mut feed) = NearCache::new(&NearCacheConfig::default());
    feed.live();
    assert!(!cache.pass_fence().await, "no barrier: no fence");
    let sent = Arc::new(AtomicU64::new(0));
    feed.set_barrier(Arc::new(Slow {
        delay: Duration::from_millis(50),
        sent: sent.clone(),
    }));
    all_pass(&cache, 200).await;
    let fences = sent.load(SeqCst);
    assert!((1..=4).contains(&fences), "{fences} fences for 200 reads");

    // A read that arrives while a fence is in flight waits for the next one.
    let first = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.pass_fence().await })
    };
    while sent.load(SeqCst) == fences {
        tokio::task::yield_now().await;
    }
    let before = sent.load(SeqCst);
    assert!(cache.pass_fence().await);
    assert!(
        sent.load(SeqCst) > before,
        "served by a fence sent before it arrived"
    );
    assert!(first.await.unwrap());

    // A lost channel drops the barrier: reads go to the store.
    feed.lost();
    assert!(!cache.pass_fence().await);
}

#[tokio::test(flavor = "current_thread")]
async fn reads_that_become_ready_together_share_one_fence() {
    let (cache, mut feed) = NearCache::new(&NearCacheConfig::default());
    feed.live();
    let sent = Arc::new(AtomicU64::new(0));
    feed.set_barrier(Arc::new(Slow {
        delay: Duration::ZERO,
        sent: sent.clone(),
    }));
    // Ready in the same turn of the scheduler: the first one's fence must not leave
    // before the others have asked, or they wait for a second one.
    all_pass(&cache, 100).await;
    assert_eq!(sent.load(SeqCst), 1, "fences for 100 reads ready together");
    assert_eq!(cache.stats().fences, 1);
}
