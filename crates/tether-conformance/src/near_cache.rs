//! Checks for a store with a near cache ([`CachedStore`]), against its real backend:
//! what another instance writes reaches the cache, what this instance writes (or
//! locks) it reads at once, and a lost invalidation channel hides no write. Each takes
//! the cached store and a second instance on the same backend (cached or not) that
//! plays "another server".
//!
//! ```no_run
//! # async fn demo<S: tether_core::SessionStore>(cached: tether_core::CachedStore<S>, writer: &dyn tether_core::SessionStore) {
//! tether_conformance::near_cache::other_writers_reach(&cached, writer).await;
//! tether_conformance::near_cache::own_writes_are_read_at_once(&cached, writer).await;
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tether_core::{
    CachedStore, Changes, Expiry, Id, LockOptions, Record, Result, Saved, SessionStore,
};

/// How long an invalidation may take to arrive in these checks.
pub const WITHIN: Duration = Duration::from_secs(5);

/// A new record holding `n`.
pub fn record(n: u64) -> Record {
    let mut record = Record::new(time::OffsetDateTime::now_utc(), &Expiry::default());
    record.data.insert("n".into(), n.into());
    record
}

/// Changes that set `n`.
pub fn set(n: u64) -> Changes {
    let now = time::OffsetDateTime::now_utc();
    let mut changes = Changes::new(now, now + time::Duration::hours(1));
    changes.updates.insert("n".into(), Some(n.into()));
    changes
}

/// The `n` the session holds, `None` when it is gone: read as the layer reads, at once
/// where the store answers so ([`SessionStore::load_ready`]), else loaded.
///
/// # Errors
/// The store's.
pub async fn n_of(store: &(impl SessionStore + ?Sized), id: &Id) -> Result<Option<u64>> {
    let record = match store.load_ready(id) {
        Some(answer) => answer?,
        None => store.load_shared(id).await?,
    };
    Ok(record.map(|r| {
        r.data
            .get("n")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    }))
}

/// Polls until `id` reads as `want` through `store`.
///
/// # Panics
/// When it still reads otherwise after [`WITHIN`].
pub async fn reads(store: &(impl SessionStore + ?Sized), id: &Id, want: Option<u64>) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let got = n_of(store, id).await;
        if matches!(&got, Ok(n) if *n == want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cached store still reads {got:?}, not {want:?}, {WITHIN:?} after the write: an invalidation never arrived or a stale copy stayed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the cache is served (its channel is live).
///
/// # Panics
/// When it is not after 20 s.
pub async fn until_live<S>(cached: &CachedStore<S>) {
    until_live_cache(cached.cache()).await;
}

/// [`until_live`] for a cache in hand.
///
/// # Panics
/// When it is not live after 20 s.
pub async fn until_live_cache(cache: &tether_core::NearCache) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cache.is_live() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the near cache's channel never came up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An update, a rotation and a delete made through `writer` each reach the cache.
///
/// # Panics
/// On a stale read past [`WITHIN`] or a store error.
pub async fn other_writers_reach<S: SessionStore>(
    cached: &CachedStore<S>,
    writer: &dyn SessionStore,
) {
    until_live(cached).await;
    let id = Id::generate().expect("randomness");
    writer.create(&id, &record(1)).await.expect("create");
    // The creation's own invalidation may arrive after the first read kept the
    // record: read until one is answered from the cache.
    let hits = cached.cache().stats().hits;
    let deadline = tokio::time::Instant::now() + WITHIN;
    while cached.cache().stats().hits == hits {
        assert_eq!(n_of(cached, &id).await.expect("load"), Some(1));
        assert!(
            tokio::time::Instant::now() < deadline,
            "no read answered from the cache: {:?}",
            cached.cache().stats()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    writer.save(&id, &set(2)).await.expect("save");
    reads(cached, &id, Some(2)).await;
    let new = Id::generate().expect("randomness");
    writer.cycle_id(&id, &new, &set(3)).await.expect("cycle_id");
    reads(cached, &id, None).await;
    reads(cached, &new, Some(3)).await;
    writer.delete(&new).await.expect("delete");
    reads(cached, &new, None).await;
}

/// What this instance writes it reads back at once; a lock holder reads the newest
/// record even right after another instance wrote; a save from a cached base lands on
/// the newest record.
///
/// # Panics
/// On a stale read or a store error.
pub async fn own_writes_are_read_at_once<S: SessionStore>(
    cached: &CachedStore<S>,
    writer: &dyn SessionStore,
) {
    until_live(cached).await;
    let id = Id::generate().expect("randomness");
    cached.create(&id, &record(1)).await.expect("create");
    assert_eq!(n_of(cached, &id).await.expect("load"), Some(1));
    cached.save(&id, &set(2)).await.expect("save");
    assert_eq!(n_of(cached, &id).await.expect("load"), Some(2));
    let base = cached.load(&id).await.expect("load").expect("live");
    cached
        .save_from(&id, &base, &set(3))
        .await
        .expect("save_from");
    assert_eq!(n_of(cached, &id).await.expect("load"), Some(3));
    let locks = cached.capabilities().locking;
    for n in 4..30 {
        assert_eq!(n_of(cached, &id).await.expect("load"), Some(n - 1));
        writer.save(&id, &set(n)).await.expect("save");
        let token = if locks {
            let token = cached
                .lock(&id, &LockOptions::default())
                .await
                .expect("lock");
            assert_eq!(
                n_of(cached, &id).await.expect("load"),
                Some(n),
                "a lock holder read a stale copy"
            );
            Some(token)
        } else {
            None
        };
        // A save from a base that may be cached and older still merges onto the
        // newest record: its version moves on from the writer's.
        let base = cached.load(&id).await.expect("load").expect("live");
        let saved = cached
            .save_from(&id, &base, &set(n))
            .await
            .expect("save_from");
        let Saved::Version { version, .. } = saved else {
            panic!("the session went away");
        };
        assert!(version > base.version);
        if let Some(token) = token {
            cached.unlock(&id, &token).await.expect("unlock");
        }
        assert_eq!(n_of(cached, &id).await.expect("load"), Some(n));
    }
    cached.delete(&id).await.expect("delete");
    assert_eq!(n_of(cached, &id).await.expect("load"), None);
}

/// Under read traffic, `rounds` times: wait for the cache to hold the session, `lose`
/// the channel (kill its connection, restart the backend), write through `writer` at
/// once (while this instance may not be listening), and check the cached store reads that write, before
/// and after the channel is back. No read finds the session gone.
///
/// # Panics
/// When a write stays hidden, the cache never flushes or comes back, or a read finds
/// the session gone.
pub async fn lost_channels_hide_no_write<S: SessionStore>(
    cached: Arc<CachedStore<S>>,
    writer: &dyn SessionStore,
    rounds: usize,
    mut lose: impl AsyncFnMut(),
) {
    until_live(&cached).await;
    let id = Id::generate().expect("randomness");
    writer.create(&id, &record(0)).await.expect("create");
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (cached, stop) = (cached.clone(), stop.clone());
            tokio::spawn(async move {
                let mut gone = 0_u64;
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(None) = n_of(&*cached, &id).await {
                        gone += 1;
                    }
                    tokio::task::yield_now().await;
                }
                gone
            })
        })
        .collect();
    let n = AtomicU64::new(0);
    for _ in 0..rounds {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while cached.cache().stats().entries == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the cache never filled"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let flushes = cached.cache().stats().flushes;
        lose().await;
        let last = n.fetch_add(1, Ordering::SeqCst) + 1;
        // A backend that just came back may refuse the first write (a connection
        // broken by the restart): retry within the deadline.
        while let Err(e) = writer.save(&id, &set(last)).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the write never succeeded: {e}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        while cached.cache().stats().flushes == flushes {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the lost channel never flushed the cache"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        reads(&*cached, &id, Some(last)).await;
        until_live(&cached).await;
        reads(&*cached, &id, Some(last)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        assert_eq!(
            reader.await.expect("reader"),
            0,
            "a read found the session gone"
        );
    }
    let stats = cached.cache().stats();
    assert!(stats.hits > 0 && stats.bypassed > 0, "{stats:?}");
}

/// `rounds` times: `writer` updates, then deletes, a session `cached` holds; each
/// time, as soon as the write answered, `cached` is asked and must not answer with
/// what was there before. What a fenced near cache promises (an uncached store
/// trivially keeps it).
///
/// # Panics
/// On a stale answer or a store error.
pub async fn never_stale_after_a_write_answered<S: SessionStore>(
    cached: &CachedStore<S>,
    writer: &dyn SessionStore,
    rounds: usize,
) {
    until_live(cached).await;
    let (mut stale_updates, mut stale_deletes) = (0, 0);
    for _ in 0..rounds {
        let id = Id::generate().expect("randomness");
        writer.create(&id, &record(1)).await.expect("create");
        assert_eq!(n_of(cached, &id).await.expect("load"), Some(1));
        writer.save(&id, &set(2)).await.expect("save");
        if n_of(cached, &id).await.expect("load") != Some(2) {
            stale_updates += 1;
        }
        writer.delete(&id).await.expect("delete");
        if n_of(cached, &id).await.expect("load").is_some() {
            stale_deletes += 1;
        }
    }
    assert_eq!(
        (stale_updates, stale_deletes),
        (0, 0),
        "stale answers (after updates, after deletes) right after a write answered"
    );
}
