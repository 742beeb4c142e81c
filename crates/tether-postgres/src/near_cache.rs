//! The near cache's invalidation channel: `LISTEN tether_sessions` on a connection of
//! its own. The migrations' trigger announces every change of a session row there
//! (by any writer), with the row's id.
//!
//! The listening connection is checked every second by a notification this instance
//! sends itself on a channel of its own: one that does not come back within the
//! store's timeout counts as a lost channel, as does a closed connection or a missing
//! trigger (a database migrated without tether's migrations). A lost channel flushes
//! the cache and sends reads to the database until listening is on again.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tether_core::{CachedStore, Error, Feed, Id, NearCache, NearCacheConfig, Result};
use tokio::sync::mpsc;

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
    // way; the task ends (closing the channel) when the connection is lost.
    let (tx, mut notifications) = mpsc::unbounded_channel();
    let _reader = tether_core::Background::spawn(read(listener, tx));
    feed.live();
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.tick().await;
    let mut sent: u64 = 0;
    let mut awaited: Option<(u64, tokio::time::Instant)> = None;
    loop {
        tokio::select! {
            note = notifications.recv() => match note {
                None => return Error::config("the listening connection closed"),
                Some((channel, payload)) if channel == CHANNEL => changed(feed, &payload),
                Some((_, payload)) => {
                    if awaited.is_some_and(|(n, _)| payload == n.to_string()) {
                        awaited = None;
                    }
                }
            },
            _ = check.tick() => {
                if let Some((_, since)) = awaited {
                    if since.elapsed() > timeout {
                        return Error::timed_out("a notification to itself", timeout);
                    }
                    continue;
                }
                sent += 1;
                let ping = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(&ping_channel)
                    .bind(sent.to_string())
                    .execute(&store.pool);
                match tokio::time::timeout(timeout, ping).await {
                    Ok(Ok(_)) => awaited = Some((sent, tokio::time::Instant::now())),
                    Ok(Err(e)) => return unavailable("sending a notification to itself", e),
                    Err(_) => return Error::timed_out("sending a notification to itself", timeout),
                }
            }
        }
    }
}

/// Forwards every notification until the connection is lost.
async fn read(mut listener: PgListener, tx: mpsc::UnboundedSender<(String, String)>) {
    while let Ok(Some(note)) = listener.try_recv().await {
        if tx
            .send((note.channel().to_owned(), note.payload().to_owned()))
            .is_err()
        {
            return;
        }
    }
}

/// A notification from the trigger: a session's id, or `*` for everything.
fn changed(feed: &Feed, payload: &str) {
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
        changed(&feed, id.encode().as_str());
        assert_eq!(cache.stats().invalidations, 1);
        assert_eq!(cache.stats().flushes, 1);
        changed(&feed, "*");
        assert_eq!(cache.stats().flushes, 2);
    }
}
