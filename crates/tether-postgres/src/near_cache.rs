//! The near cache's invalidation channel: `LISTEN tether_sessions` on a connection of
//! its own. The migrations' trigger announces every change of a session row there
//! (by any writer), with the row's id.
//!
//! The listening connection is checked every second by a notification this instance
//! sends itself on a channel of its own: one that does not come back within the
//! store's timeout counts as a lost channel, as does a closed connection or a missing
//! trigger (a database migrated without tether's migrations). A lost channel flushes
//! the cache and sends reads to the database until listening is on again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tether_core::{
    Barrier, CachedStore, Error, Feed, Id, Invalidator, NearCache, NearCacheConfig, Result,
};
use tokio::sync::watch;

use crate::PostgresStore;

/// The channel the trigger announces changes on.
const CHANNEL: &str = "tether_sessions";

/// How often the listening connection is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

impl PostgresStore {
    /// This store with a near cache: reads of a session this instance read before are
    /// answered from memory, with no statement, until the database announces (through
    /// the trigger tether's migrations install, on `LISTEN`) that any writer changed
    /// it. Needs [`PostgresStore::migrate`] (the trigger) and a Tokio runtime.
    ///
    /// What it guarantees and what it costs is in the stores guide
    /// (`docs/guide/stores.md`, "Near cache"): a write made on another instance is
    /// seen here once its notification arrived, the cache is bypassed whenever the
    /// channel is down, and a record is never served past its deadlines. Every write
    /// pays for one `pg_notify` in its transaction, cached or not.
    ///
    /// ```no_run
    /// # async fn demo() -> tether_core::Result<()> {
    /// use tether_core::NearCacheConfig;
    /// let store = tether_postgres::PostgresStore::connect("postgres://app:secret@127.0.0.1/app")?;
    /// store.migrate().await?;
    /// let store = store.with_near_cache(NearCacheConfig::default())?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] outside a Tokio runtime.
    pub fn with_near_cache(self, config: NearCacheConfig) -> Result<CachedStore<PostgresStore>> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::config(
                "a near cache runs a task that listens to Postgres: create it inside a Tokio runtime",
            ));
        }
        let (cache, feed) = NearCache::new(&config);
        let task = tether_core::Background::spawn(listen(self.clone(), feed));
        Ok(CachedStore::new(self, cache, Some(task)))
    }
}

/// Keeps `feed` live while the listening connection works, for as long as the store
/// lives; lost (cache flushed and bypassed) in between.
async fn listen(store: PostgresStore, mut feed: Feed) {
    let mut pause = Duration::from_millis(50);
    loop {
        let started = tokio::time::Instant::now();
        let why = listened(&store, &mut feed).await;
        feed.lost();
        if started.elapsed() > Duration::from_secs(10) {
            pause = Duration::from_millis(50);
        }
        tracing_warn(&store, &why, pause);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

fn tracing_warn(store: &PostgresStore, why: &Error, pause: Duration) {
    tracing::warn!(store = %store.runner.target(), reason = %why, retry_in = ?pause, "near cache bypassed: Postgres notifications are not arriving");
}

/// Listens, says live, and handles notifications until something goes wrong;
/// returns why.
async fn listened(store: &PostgresStore, feed: &mut Feed) -> Error {
    let timeout = store.runner.timeout();
    let unavailable = |what: &str, e: sqlx::Error| {
        Error::unavailable(format!("{what} at {}", store.runner.target()), e)
    };
    let ping_channel = match Id::generate() {
        Ok(id) => format!(
            "tether_ping_{}",
            id.encode().as_str().to_lowercase().replace('-', "_")
        ),
        Err(e) => return e,
    };
    let setup = async {
        let mut listener = PgListener::connect_with(&store.pool)
            .await
            .map_err(|e| unavailable("opening the listening connection", e))?;
        listener
            .listen_all([CHANNEL, ping_channel.as_str()])
            .await
            .map_err(|e| unavailable("LISTEN", e))?;
        let trigger: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM pg_trigger WHERE tgname = 'tether_sessions_notify' AND tgrelid = to_regclass('tether_sessions')",
        )
        .fetch_optional(&store.pool)
        .await
        .map_err(|e| unavailable("looking for the notify trigger", e))?;
        if trigger.is_none() {
            return Err(Error::config(
                "tether_sessions has no notify trigger: run PostgresStore::migrate (tether's migrations install it)",
            ));
        }
        Ok(listener)
    };
    let listener = match tokio::time::timeout(timeout, setup).await {
        Ok(Ok(listener)) => listener,
        Ok(Err(e)) => return e,
        Err(_) => return Error::timed_out("starting to listen", timeout),
    };
    // The listener is read by a task of its own, so nothing ever cancels a read half
    // way; it applies invalidations as it reads them (no hop through a channel),
    // records the fences that came back, and ends when the connection is lost.
    let (seen_tx, seen) = watch::channel(0_u64);
    let mut reader = tether_core::Background::spawn(read(listener, feed.invalidator(), seen_tx));
    let fence = Arc::new(SelfNotify {
        pool: store.pool.clone(),
        channel: ping_channel,
        next: AtomicU64::new(0),
        seen,
        timeout,
    });
    feed.set_barrier(fence.clone());
    feed.live();
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.tick().await;
    loop {
        tokio::select! {
            () = reader.stopped() => return Error::config("the listening connection closed"),
            _ = check.tick() => {
                if !fence.fence().await {
                    return Error::timed_out("a notification to itself", timeout);
                }
            }
        }
    }
}

/// A notification to itself, on a channel of its own: PostgreSQL delivers
/// notifications in commit order, and the reader applies them as it reads them, so
/// once it came back every change committed before it is in the cache.
struct SelfNotify {
    pool: sqlx::PgPool,
    channel: String,
    next: AtomicU64,
    /// The highest fence the listener has read back.
    seen: watch::Receiver<u64>,
    timeout: Duration,
}

impl Barrier for SelfNotify {
    fn fence(&self) -> Pin<Box<dyn Future<Output = bool> + Send + 'static>> {
        let n = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let (pool, channel, mut seen, timeout) = (
            self.pool.clone(),
            self.channel.clone(),
            self.seen.clone(),
            self.timeout,
        );
        Box::pin(async move {
            let round = async {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(&channel)
                    .bind(n.to_string())
                    .execute(&pool)
                    .await
                    .ok()?;
                seen.wait_for(|&back| back >= n).await.ok()?;
                Some(())
            };
            matches!(tokio::time::timeout(timeout, round).await, Ok(Some(())))
        })
    }
}

/// Applies every change notification and records the fences that came back, until
/// the connection is lost.
async fn read(mut listener: PgListener, invalidator: Invalidator, seen: watch::Sender<u64>) {
    while let Ok(Some(note)) = listener.try_recv().await {
        if note.channel() == CHANNEL {
            changed(&invalidator, note.payload());
        } else if let Ok(n) = note.payload().parse::<u64>() {
            seen.send_modify(|back| *back = (*back).max(n));
        }
    }
}

/// A notification from the trigger: a session's id, or `*` for everything.
fn changed(feed: &Invalidator, payload: &str) {
    match Id::parse(payload) {
        Some(id) => feed.invalidate(&id),
        None => feed.flush(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_a_session_or_flushes_everything() {
        let (cache, mut feed) = NearCache::new(&NearCacheConfig::default());
        feed.live();
        let id = Id::generate().unwrap();
        changed(&feed.invalidator(), id.encode().as_str());
        assert_eq!(cache.stats().invalidations, 1);
        assert_eq!(cache.stats().flushes, 1);
        changed(&feed.invalidator(), "*");
        assert_eq!(cache.stats().flushes, 2);
    }
}
