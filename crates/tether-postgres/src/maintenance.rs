//! Keeping the tables: embedded migrations, and the cleanup of expired rows.

use std::time::Duration;

use tether_core::{Error, Result, unix_ms};

use crate::sql::{CLEANUP_LOCKS_SQL, CLEANUP_SESSIONS_SQL};
use crate::{Cleanup, PostgresStore};

impl PostgresStore {
    /// Creates or upgrades the tables (embedded, versioned migrations). Idempotent,
    /// and safe when several instances run it at once: sqlx's migrator holds a
    /// Postgres advisory lock (`pg_advisory_lock`) while it checks and applies them.
    pub async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations")
            .run(&self.pool)
            .await
            .map_err(|e| {
                Error::unavailable(
                    format!("migrating session tables at {}", self.runner.target()),
                    e,
                )
            })
    }

    /// Deletes expired sessions and locks in batches of 1000; returns how many sessions.
    pub async fn cleanup_once(&self) -> Result<u64> {
        let sessions = || async {
            let done = self
                .runner
                .run("deleting expired sessions", async || {
                    sqlx::query(CLEANUP_SESSIONS_SQL)
                        .bind(unix_ms::now_ms())
                        .execute(&self.pool)
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
                        .execute(&self.pool)
                        .await
                })
                .await
                .map(drop)
        };
        tether_sql::flow::cleanup(sessions, locks).await
    }

    /// Runs [`PostgresStore::cleanup_once`] every `every` until the returned handle is
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
