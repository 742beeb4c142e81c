//! Keeping the tables: embedded migrations, and the cleanup of expired rows.

use std::time::Duration;

use tether_core::{Error, Result, unix_ms};

use crate::sql::{
    CLEANUP_LOCKS_SQL, CLEANUP_SESSIONS_SQL, MIGRATION_LOCK_SQL, MIGRATION_UNLOCK_SQL,
};
use crate::{Cleanup, MySqlStore};

impl MySqlStore {
    /// Creates or upgrades the tables (embedded, versioned migrations). Idempotent,
    /// and safe when several instances run it at once: sqlx serialises migrations with
    /// a database lock.
    pub async fn migrate(&self) -> Result<()> {
        let context = || format!("migrating session tables at {}", self.runner.target());
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| Error::unavailable(context(), e))?;
        // sqlx's own migration lock still lets two first runs insert the same version
        // (seen on MariaDB 10.11), so every instance first takes this named lock, held
        // on its own connection while the migrator runs on another.
        let locked: Option<i64> = sqlx::query_scalar(MIGRATION_LOCK_SQL)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| Error::unavailable(context(), e))?;
        if locked != Some(1) {
            return Err(Error::unavailable(
                context(),
                std::io::Error::other("another instance held the migration lock for 60 s"),
            ));
        }
        let result = sqlx::migrate!("./migrations").run(&self.pool).await;
        let released = sqlx::query(MIGRATION_UNLOCK_SQL).execute(&mut *conn).await;
        result.map_err(|e| Error::unavailable(context(), e))?;
        released.map_err(|e| Error::unavailable(context(), e))?;
        Ok(())
    }

    /// Deletes expired sessions and locks in batches of 1000; returns how many sessions.
    pub async fn cleanup_once(&self) -> Result<u64> {
        let sessions = || async {
            let now = unix_ms::now_ms();
            let done = self
                .runner
                .run("deleting expired sessions", async || {
                    sqlx::query(CLEANUP_SESSIONS_SQL)
                        .bind(now)
                        .execute(&self.pool)
                        .await
                })
                .await?;
            Ok(done.rows_affected())
        };
        let locks = async {
            let now = unix_ms::now_ms();
            self.runner
                .run("deleting expired locks", async || {
                    sqlx::query(CLEANUP_LOCKS_SQL)
                        .bind(now)
                        .execute(&self.pool)
                        .await
                })
                .await
                .map(drop)
        };
        tether_sql::flow::cleanup(sessions, locks).await
    }

    /// Runs [`MySqlStore::cleanup_once`] every `every` until the returned handle is
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
