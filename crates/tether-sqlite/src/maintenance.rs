//! Keeping the tables: embedded migrations, and the cleanup of expired rows.

use std::time::Duration;

use sqlx::Connection as _;
use tether_core::{Error, Result, unix_ms};

use crate::sql::{CLEANUP_LOCKS_SQL, CLEANUP_SESSIONS_SQL};
use crate::{Cleanup, SqliteStore};

impl SqliteStore {
    /// Creates or upgrades the tables (embedded, versioned migrations). Idempotent,
    /// and safe when several processes run it at once: it runs inside one
    /// `BEGIN IMMEDIATE` transaction, which holds the database's write lock, so a
    /// second process waits (up to the busy timeout) and then finds them applied.
    ///
    /// While a new file is first switched to WAL mode, a process that opens it at the
    /// same moment can be refused at once ("database is locked", without waiting):
    /// such a refusal is retried for up to ten seconds.
    pub async fn migrate(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.migrate_once().await {
                Err(e) if is_busy(&e) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                outcome => return outcome,
            }
        }
    }

    async fn migrate_once(&self) -> Result<()> {
        let context = || format!("migrating session tables at {}", self.runner.target());
        let mut conn = self
            .writer
            .acquire()
            .await
            .map_err(|e| Error::unavailable(context(), e))?;
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| Error::unavailable(context(), e))?;
        // sqlx's SQLite migrator takes no lock of its own; inside this transaction its
        // own transactions become savepoints. (`run_direct` is `run` on a connection;
        // `run` on a transaction makes a future the compiler cannot prove `Send`.)
        sqlx::migrate!("./migrations")
            .run_direct(None, &mut *tx, false)
            .await
            .map_err(|e| Error::unavailable(context(), e))?;
        tx.commit()
            .await
            .map_err(|e| Error::unavailable(context(), e))
    }

    /// Deletes expired sessions and locks in batches of 1000; returns how many sessions.
    pub async fn cleanup_once(&self) -> Result<u64> {
        let sessions = || async {
            let done = self
                .runner
                .run("deleting expired sessions", async || {
                    sqlx::query(CLEANUP_SESSIONS_SQL)
                        .bind(unix_ms::now_ms())
                        .execute(&self.writer)
                        .await
                })
                .await?;
            Ok(done.rows_affected())
        };
        let locks = async {
            self.runner
                .run("deleting expired locks", async || {
                    sqlx::query(CLEANUP_LOCKS_SQL)
                        .bind(unix_ms::now_ms())
                        .execute(&self.writer)
                        .await
                })
                .await
                .map(drop)
        };
        tether_sql::flow::cleanup(sessions, locks).await
    }

    /// Runs [`SqliteStore::cleanup_once`] every `every` until the returned handle is
    /// dropped. When the database fails, the task logs it, waits longer each time (up
    /// to ten times `every`) and tries again; it never stops by itself.
    pub fn spawn_cleanup(&self, every: Duration) -> Cleanup {
        let store = self.clone();
        Cleanup::every(every, move || {
            let store = store.clone();
            async move { store.cleanup_once().await }
        })
    }
}

/// SQLite's `SQLITE_BUSY` (5), in any of its extended forms.
fn is_busy(e: &Error) -> bool {
    tether_sql::database_error(e)
        .and_then(sqlx::error::DatabaseError::code)
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == 5)
}
