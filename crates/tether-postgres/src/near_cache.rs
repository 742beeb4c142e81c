//! The near cache's invalidation channel: `LISTEN tether_sessions` on a connection of
//! its own. A trigger announces every change of a session row there (by any writer),
//! with the row's id. The first near cache to listen installs it, so a database where
//! none ever ran pays for no notification.
//!
//! A fence is a query on the listening connection itself: PostgreSQL signals every
//! listener before the writing transaction's commit answers, and a backend sends the
//! notifications it was signalled before it says it is ready for the next query. So
//! once a query answered on the listening connection, every change committed before
//! it was sent has been read and applied. The connection is checked every second the
//! same way: a fence that does not come back within the store's timeout counts as a
//! lost channel, as does a closed connection or a trigger that cannot be installed. A
//! lost channel flushes the cache and sends reads to the database until listening is
//! on again.

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

/// The triggers that announce changes (the function they run is the migrations'),
/// each with the statement that creates it.
const TRIGGERS: [(&str, &str); 2] = [
    (
        "tether_sessions_notify",
        "CREATE TRIGGER tether_sessions_notify AFTER INSERT OR UPDATE OR DELETE ON tether_sessions \
         FOR EACH ROW EXECUTE FUNCTION tether_sessions_notify()",
    ),
    (
        "tether_sessions_truncate",
        "CREATE TRIGGER tether_sessions_truncate AFTER TRUNCATE ON tether_sessions \
         FOR EACH STATEMENT EXECUTE FUNCTION tether_sessions_notify()",
    ),
];

/// How often the listening connection is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

impl PostgresStore {
    /// This store with a near cache: reads of a session this instance read before are
    /// answered from memory, with no statement, until the database announces (through
    /// a trigger, on `LISTEN`) that any writer changed it. Needs
    /// [`PostgresStore::migrate`] and a Tokio runtime; when it starts listening it
    /// installs the trigger ([`PostgresStore::install_notify_trigger`]) if no near
    /// cache did before.
    ///
    /// What it guarantees and what it costs is in the stores guide
    /// (`docs/guide/stores.md`, "Near cache"): a write made on another instance is
    /// seen here once its notification arrived, the cache is bypassed whenever the
    /// channel is down, and a record is never served past its deadlines. Once a near
    /// cache started on a database, every write to it, by any instance, cached or not,
    /// pays for one `pg_notify` in its transaction (which serialises commits).
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

    /// Installs the trigger that announces every change of a session row to near
    /// caches, unless it is there. The near cache calls it when it starts listening;
    /// call it yourself, as the tables' owner, when the instances connect as a role that
    /// may not create triggers. Safe when several instances run it at once (a
    /// transaction-scoped advisory lock); writers in flight finish first (the trigger's
    /// lock waits for them), so every change committed after it returns is announced.
    ///
    /// [`PostgresStore::migrate`] does not install it: a database where no near cache
    /// runs pays for no `pg_notify`. To remove it once no instance runs a near cache:
    /// `DROP TRIGGER tether_sessions_notify ON tether_sessions; DROP TRIGGER
    /// tether_sessions_truncate ON tether_sessions`.
    ///
    /// ```no_run
    /// # async fn demo() -> tether_core::Result<()> {
    /// let store = tether_postgres::PostgresStore::connect("postgres://owner:secret@127.0.0.1/app")?;
    /// store.migrate().await?;
    /// store.install_notify_trigger().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the database fails or refuses (a role that may not
    /// create triggers on `tether_sessions`, a database not migrated).
    pub async fn install_notify_trigger(&self) -> Result<()> {
        self.runner
            .run("installing the near cache's notify trigger", async || {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tether_sessions_notify'))")
                    .execute(&mut *tx)
                    .await?;
                for (name, create) in TRIGGERS {
                    let there: Option<i32> = sqlx::query_scalar(
                        "SELECT 1 FROM pg_trigger WHERE tgname = $1 \
                         AND tgrelid = to_regclass('tether_sessions')",
                    )
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if there.is_none() {
                        sqlx::query(create).execute(&mut *tx).await?;
                    }
                }
                tx.commit().await
            })
            .await
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
        store.install_notify_trigger().await?;
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
