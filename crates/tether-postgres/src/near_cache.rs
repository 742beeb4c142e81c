//! The near cache's invalidation channel: `LISTEN tether_sessions` on a connection of
//! its own. The migrations' trigger announces every change of a session row there
//! (by any writer), with the row's id.
//!
//! A fence is a query on the listening connection itself: PostgreSQL signals every
//! listener before the writing transaction's commit answers, and a backend sends the
//! notifications it was signalled before it says it is ready for the next query. So
//! once a query answered on the listening connection, every change committed before
//! it was sent has been read and applied. The connection is checked every second the
//! same way: a fence that does not come back within the store's timeout counts as a
//! lost channel, as does a closed connection or a missing trigger (a database migrated
//! without tether's migrations). A lost channel flushes the cache and sends reads to
//! the database until listening is on again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgNotification};
use tether_core::{
    Barrier, CachedStore, Error, Feed, Id, Invalidator, NearCache, NearCacheConfig, Result,
};
use tokio::sync::{mpsc, oneshot};

use crate::PostgresStore;

/// The channel the trigger announces changes on.
const CHANNEL: &str = "tether_sessions";

/// The fence's query (named, so an operator sees in `pg_stat_activity` what the
/// listening connection last ran).
const FENCE: &str = "SELECT 'tether near cache fence'";

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
    let setup = async {
        let mut listener = PgListener::connect_with(&store.pool)
            .await
            .map_err(|e| unavailable("opening the listening connection", e))?;
        // A lost connection must end this listener (the cache is flushed and a new
        // one starts), never be replaced behind its back: sqlx's eager reconnect runs
        // inside `try_recv`, which the reader cancels for a fence, and the fence's
        // query then reconnects silently, so the notifications sent meanwhile are lost
        // and nothing is flushed. Without it, `try_recv` says `Ok(None)` as soon as
        // the connection is gone.
        listener.eager_reconnect(false);
        listener
            .listen(CHANNEL)
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
    // The listener is read by a task of its own: it applies invalidations as it reads
    // them (no hop through a channel), runs the fences, and ends when the connection
    // is lost.
    let (fences, asked) = mpsc::unbounded_channel();
    let mut reader = tether_core::Background::spawn(read(listener, feed.invalidator(), asked));
    let fence = Arc::new(OnListener { fences, timeout });
    feed.set_barrier(fence.clone());
    feed.live();
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.tick().await;
    loop {
        tokio::select! {
            () = reader.stopped() => return Error::config("the listening connection closed"),
            _ = check.tick() => {
                if !fence.fence().await {
                    return Error::timed_out("a fence on the listening connection", timeout);
                }
            }
        }
    }
}

/// A fence: asks the reader to run a query on the listening connection (see the
/// module docs), and waits for it.
struct OnListener {
    fences: mpsc::UnboundedSender<oneshot::Sender<bool>>,
    timeout: Duration,
}

impl Barrier for OnListener {
    fn fence(&self) -> Pin<Box<dyn Future<Output = bool> + Send + 'static>> {
        let (done, came) = oneshot::channel();
        let asked = self.fences.send(done).is_ok();
        let timeout = self.timeout;
        Box::pin(async move {
            asked && matches!(tokio::time::timeout(timeout, came).await, Ok(Ok(true)))
        })
    }
}

/// Applies every change notification, and runs the fences asked for (one query for
/// all those waiting), until the connection is lost.
async fn read(
    mut listener: PgListener,
    invalidator: Invalidator,
    mut asked: mpsc::UnboundedReceiver<oneshot::Sender<bool>>,
) {
    loop {
        tokio::select! {
            // A read cut short here loses nothing: sqlx keeps a message it has not
            // wholly read, and notifications that arrive during a query are buffered.
            biased;
            fence = asked.recv() => {
                let Some(fence) = fence else { return };
                let mut waiting = vec![fence];
                while let Ok(more) = asked.try_recv() {
                    waiting.push(more);
                }
                let answered = sqlx::raw_sql(FENCE).execute(&mut listener).await.is_ok();
                while let Some(note) = listener.next_buffered() {
                    apply(&invalidator, &note);
                }
                for fence in waiting {
                    let _ = fence.send(answered);
                }
                if !answered {
                    return;
                }
            }
            note = listener.try_recv() => match note {
                Ok(Some(note)) => apply(&invalidator, &note),
                _ => return,
            },
        }
    }
}

fn apply(invalidator: &Invalidator, note: &PgNotification) {
    if note.channel() == CHANNEL {
        changed(invalidator, note.payload());
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
