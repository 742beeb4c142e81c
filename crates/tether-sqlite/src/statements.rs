//! The statements the shared flows (`tether_sql::flow`) are built from, in SQLite's
//! SQL (`sql.rs`).

use sqlx::Sqlite;
use tether_core::{
    Changes, Id, LockToken, Record, Result, Saved, SessionInfo, Touch, async_trait, unix_ms,
};
use tether_sql::codec::{patch, user_hash, wrap};
use tether_sql::flow::Statements;
use tether_sql::rows;

use crate::SqliteStore;
use crate::sql::{
    CLEANUP_LOCKS_SQL, CLEANUP_SESSIONS_SQL, CLEAR_EXPIRED_ID_SQL, CREATE_SQL, CYCLE_SQL,
    DELETE_SQL, DELETE_USER_SQL, LIST_SQL, LOAD_SQL, SAVE_SQL, TAKE_LOCK_SQL, TOUCH_SQL,
    UNLOCK_SQL,
};

#[async_trait]
impl Statements for SqliteStore {
    async fn insert(&self, id: &Id, record: &Record) -> Result<()> {
        let data = wrap(&record.data);
        let hash = record.user.as_deref().map(user_hash);
        let version = rows::signed_version(record)?;
        self.runner
            .run("creating a session", async || {
                sqlx::query(CREATE_SQL)
                    .bind(id.as_bytes().as_slice())
                    .bind(&data)
                    .bind(version)
                    .bind(unix_ms::to_ms(record.created))
                    .bind(unix_ms::to_ms(record.last_seen))
                    .bind(unix_ms::to_ms(record.idle_deadline))
                    .bind(record.absolute_deadline.map(unix_ms::to_ms))
                    .bind(&hash)
                    .bind(&record.user)
                    .execute(&self.writer)
                    .await
            })
            .await
            .map(drop)
    }

    async fn clear_expired(&self, id: &Id) -> Result<bool> {
        let cleared = self
            .runner
            .run("replacing an expired session", async || {
                sqlx::query(CLEAR_EXPIRED_ID_SQL)
                    .bind(id.as_bytes().as_slice())
                    .bind(unix_ms::now_ms())
                    .execute(&self.writer)
                    .await
            })
            .await?;
        Ok(cleared.rows_affected() > 0)
    }

    /// `SET id = ?10` only when rotating.
    async fn merge(&self, id: &Id, new_id: Option<&Id>, changes: &Changes) -> Result<Saved> {
        let (user_set, hash, name) = match &changes.user {
            None => (false, None, None),
            Some(Some(u)) => (true, Some(user_hash(u)), Some(u.as_str())),
            Some(None) => (true, None, None),
        };
        let patch = patch(changes);
        let (what, sql) = match new_id {
            Some(_) => ("rotating a session id", CYCLE_SQL),
            None => ("saving a session", SAVE_SQL),
        };
        let row = self
            .runner
            .run(what, async || {
                let query = sqlx::query::<Sqlite>(sql)
                    .bind(changes.clear)
                    .bind(&patch)
                    .bind(unix_ms::to_ms(changes.idle_deadline))
                    .bind(user_set)
                    .bind(&hash)
                    .bind(name)
                    .bind(unix_ms::to_ms(changes.last_seen))
                    .bind(id.as_bytes().as_slice())
                    .bind(unix_ms::now_ms());
                let query = match new_id {
                    Some(new_id) => query.bind(new_id.as_bytes().as_slice()),
                    None => query,
                };
                query.fetch_optional(&self.writer).await
            })
            .await?;
        row.as_ref().map_or(Ok(Saved::Gone), rows::saved)
    }

    async fn list(&self, user: &str) -> Result<Vec<SessionInfo>> {
        let hash = user_hash(user);
        let rows = self
            .runner
            .run("listing a user's sessions", async || {
                sqlx::query(LIST_SQL)
                    .bind(&hash)
                    .bind(unix_ms::now_ms())
                    .fetch_all(&self.writer)
                    .await
            })
            .await?;
        rows::sessions_of(user, &rows, rows::WRAPPED)
    }

    async fn delete(&self, id: &Id) -> Result<bool> {
        let result = self
            .runner
            .run("deleting a session", async || {
                sqlx::query(DELETE_SQL)
                    .bind(id.as_bytes().as_slice())
                    .execute(&self.writer)
                    .await
            })
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let row = self
            .runner
            .run("loading a session", async || {
                sqlx::query(LOAD_SQL)
                    .bind(id.as_bytes().as_slice())
                    .bind(unix_ms::now_ms())
                    .fetch_optional(&self.readers)
                    .await
            })
            .await?;
        row.map(|row| rows::record(&row, rows::WRAPPED)).transpose()
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        let result = self
            .runner
            .run("refreshing a session", async || {
                sqlx::query(TOUCH_SQL)
                    .bind(unix_ms::to_ms(touch.last_seen))
                    .bind(unix_ms::to_ms(touch.idle_deadline))
                    .bind(id.as_bytes().as_slice())
                    .bind(unix_ms::now_ms())
                    .execute(&self.writer)
                    .await
            })
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_user(&self, user: &str) -> Result<u64> {
        let hash = user_hash(user);
        let result = self
            .runner
            .run("deleting a user's sessions", async || {
                sqlx::query(DELETE_USER_SQL)
                    .bind(&hash)
                    .bind(user)
                    .bind(unix_ms::now_ms())
                    .execute(&self.writer)
                    .await
            })
            .await?;
        Ok(result.rows_affected())
    }

    async fn take_lock(
        &self,
        id: &Id,
        token: &LockToken,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<bool> {
        let result = self
            .runner
            .run("taking a session lock", async || {
                sqlx::query(TAKE_LOCK_SQL)
                    .bind(id.as_bytes().as_slice())
                    .bind(&token.0)
                    .bind(expires_ms)
                    .bind(now_ms)
                    .execute(&self.writer)
                    .await
            })
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn unlock(&self, id: &Id, token: &LockToken) -> Result<()> {
        self.runner
            .run("releasing a session lock", async || {
                sqlx::query(UNLOCK_SQL)
                    .bind(id.as_bytes().as_slice())
                    .bind(&token.0)
                    .execute(&self.writer)
                    .await
            })
            .await
            .map(drop)
    }

    async fn delete_expired(&self, now_ms: i64) -> Result<u64> {
        let result = self
            .runner
            .run("deleting expired sessions", async || {
                sqlx::query(CLEANUP_SESSIONS_SQL)
                    .bind(now_ms)
                    .execute(&self.writer)
                    .await
            })
            .await?;
        Ok(result.rows_affected())
    }

    async fn delete_expired_locks(&self, now_ms: i64) -> Result<()> {
        self.runner
            .run("deleting expired locks", async || {
                sqlx::query(CLEANUP_LOCKS_SQL)
                    .bind(now_ms)
                    .execute(&self.writer)
                    .await
            })
            .await
            .map(drop)
    }
}
