//! The invalidation delay itself, in process: two stores with a pushed near cache on
//! the same server (two "instances", each with its own connections and channel); one
//! writes a session the other holds, and the other's cache is watched until the entry
//! is gone. Microseconds, without HTTP around them.

use std::time::{Duration, Instant};

use serde::Serialize;
use tether::{Freshness, NearCacheConfig, StoreConfig};
use tether_core::{Changes, Expiry, Id, Lookup, Record};

use crate::Error;

/// What the delay measurement found on one server.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Delay {
    pub(crate) store: String,
    pub(crate) writes: usize,
    /// Writes whose invalidation had reached the other instance by the time the
    /// write answered (without waiting for its echo).
    pub(crate) before_the_answer: usize,
    /// From the write's start to the other instance dropping its copy, µs.
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) max_us: f64,
}

async fn open(url: &str) -> Result<tether::OpenedStore, Error> {
    // No echo wait: the raw delay.
    let config = NearCacheConfig::default()
        .with_freshness(Freshness::Pushed)
        .with_echo_wait(Duration::ZERO);
    StoreConfig::parse(url)
        .map_err(|e| Error::Setup(e.to_string()))?
        .with_near_cache(config)
        .open()
        .await
        .map_err(|e| Error::Setup(format!("{url}: {e}")))
}

fn percentile_us(sorted: &[Duration], p: usize) -> f64 {
    sorted
        .get((sorted.len().max(1) - 1) * p / 100)
        .map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

/// Measures `rounds` invalidations on the server at `url`.
pub(crate) async fn measure(store: &str, url: &str, rounds: usize) -> Result<Delay, Error> {
    let (a, b) = (open(url).await?, open(url).await?);
    let (Some(cache), Some(reader), Some(writer)) =
        (a.near_cache().cloned(), a.server_store(), b.server_store())
    else {
        return Err(Error::Setup("a store without its near cache".into()));
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(cache.is_live() && b.near_cache().is_some_and(|c| c.is_live())) {
        if Instant::now() > deadline {
            return Err(Error::Setup(format!(
                "{store}: the near cache never came up"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let setup = |e: tether::Error| Error::Setup(format!("{store}: {e}"));
    let mut delays = Vec::with_capacity(rounds);
    let mut before_the_answer = 0;
    for _ in 0..rounds {
        let id = Id::generate().map_err(setup)?;
        let now = time::OffsetDateTime::now_utc();
        writer
            .create(&id, &Record::new(now, &Expiry::default()))
            .await
            .map_err(setup)?;
        // Held by the reader, past the creation's own invalidation.
        let held = Instant::now() + Duration::from_secs(5);
        loop {
            reader.load(&id).await.map_err(setup)?;
            tokio::time::sleep(Duration::from_millis(1)).await;
            if matches!(
                cache.get(&id, time::OffsetDateTime::now_utc()),
                Lookup::Hit(_)
            ) {
                break;
            }
            if Instant::now() > held {
                return Err(Error::Setup(format!(
                    "{store}: the reader never held the session"
                )));
            }
        }
        let mut changes = Changes::new(now, now + time::Duration::hours(1));
        changes.updates.insert("n".into(), Some(1.into()));
        let started = Instant::now();
        writer.save(&id, &changes).await.map_err(setup)?;
        if !matches!(
            cache.get(&id, time::OffsetDateTime::now_utc()),
            Lookup::Hit(_)
        ) {
            before_the_answer += 1;
        }
        while matches!(
            cache.get(&id, time::OffsetDateTime::now_utc()),
            Lookup::Hit(_)
        ) {
            if started.elapsed() > Duration::from_secs(5) {
                return Err(Error::Setup(format!(
                    "{store}: an invalidation never arrived"
                )));
            }
            tokio::task::yield_now().await;
        }
        delays.push(started.elapsed());
        writer.delete(&id).await.map_err(setup)?;
    }
    delays.sort_unstable();
    Ok(Delay {
        store: store.to_owned(),
        writes: rounds,
        before_the_answer,
        p50_us: percentile_us(&delays, 50),
        p99_us: percentile_us(&delays, 99),
        max_us: delays.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
    })
}
