//! The statements the shared flows (`tether_sql::flow`) are built from, in MySQL's
//! SQL (`sql.rs`).

use sqlx::MySql;
use tether_core::{
    Changes, Error, Id, LockToken, Record, Result, Saved, SessionInfo, Touch, async_trait, unix_ms,
};
use tether_sql::codec::{patch, user_hash, wrap};
use tether_sql::flow::{Statements, Writes};
use tether_sql::{database_error, rows};

use crate::codec::reported;
use crate::sql::{
    CLEANUP_LOCKS_SQL, CLEANUP_SESSIONS_SQL, CLEAR_EXPIRED_ID_SQL, CLEAR_EXPIRED_LOCK_SQL,
    CREATE_SQL, CYCLE_SQL, DELETE_SQL, DELETE_USER_SQL, LIST_SQL, LOAD_SQL, REPLACE_SQL, SAVE_SQL,
    TAKE_LOCK_SQL, TOUCH_SQL, UNLOCK_SQL,
};
use crate::{MySqlStore, live};

#[async_trait]
impl Writes for MySqlStore {
    async fn insert(&self, id: &Id, record: &Record) -> Result<()> {
        let data = wrap(&record.data);
        let hash = record.user.as_deref().map(user_hash);
        self.runner
            .run("creating a session", async || {
                sqlx::query(CREATE_SQL)
                    .bind(id.as_bytes().as_slice())
                    .bind(&data)
                    .bind(record.version)
                    .bind(unix_ms::to_ms(record.created))
                    .bind(unix_ms::to_ms(record.last_seen))
                    .bind(unix_ms::to_ms(record.idle_deadline))
                    .bind(record.absolute_deadline.map(unix_ms::to_ms))
                    .bind(&hash)
                    .bind(&record.user)
                    .bind(record.lifetime.map(|l| l.to_ms()))
                    .execute(&self.pool)
                    .await
            })
            .await
            .map(drop)
    }

    async fn replace(&self, id: &Id, base: &Record, record: &Record) -> Result<bool> {
        let data = wrap(&record.data);
        let hash = record.user.as_deref().map(user_hash);
        let result = self
            .runner
            .run("saving a session", async || {
                let query = sqlx::query(REPLACE_SQL)
                    .bind(&data)
                    .bind(record.version)
                    .bind(unix_ms::to_ms(record.last_seen))
                    .bind(unix_ms::to_ms(record.idle_deadline))
                    .bind(&hash)
                    .bind(&record.user)
                    .bind(id.as_bytes().as_slice())
                    .bind(base.version);
                live(query).execute(&self.pool).await
            })
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// `SET id = ?` only when rotating.
    async fn merge(&self, id: &Id, new_id: Option<&Id>, changes: &Changes) -> Result<Saved> {
        let deadline = unix_ms::to_ms(changes.idle_deadline);
        let last_seen = unix_ms::to_ms(changes.last_seen);
        let (user_set, user_hash_value, user_name) = match &changes.user {
            None => (false, None, None),
            Some(Some(u)) => (true, Some(user_hash(u)), Some(u.as_str())),
            Some(None) => (true, None, None),
        };
        let patch = patch(changes);
        let (what, sql) = match new_id {
            Some(_) => ("rotating a session id", CYCLE_SQL),
            None => ("saving a session", SAVE_SQL),
        };
        let result = self
            .runner
            .run(what, async || {
                let mut query = sqlx::query::<MySql>(sql);
                if let Some(new_id) = new_id {
                    query = query.bind(new_id.as_bytes().as_slice());
                }
                let query = query
                    .bind(changes.clear)
                    .bind(&patch)
                    .bind(last_seen)
                    .bind(deadline)
                    .bind(last_seen)
                    .bind(deadline)
                    .bind(user_set)
                    .bind(&user_hash_value)
                    .bind(user_set)
                    .bind(user_name)
                    .bind(last_seen)
                    .bind(id.as_bytes().as_slice());
                live(query).execute(&self.pool).await
            })
            .await?;
        Ok(if result.rows_affected() == 0 {
            Saved::Gone
        } else {
            reported(result.last_insert_id())
        })
    }
}

#[async_trait]
impl Statements for MySqlStore {
    async fn clear_expired(&self, id: &Id) -> Result<bool> {
        let cleared = self
            .runner
            .run("replacing an expired session", async || {
                live(sqlx::query(CLEAR_EXPIRED_ID_SQL).bind(id.as_bytes().as_slice()))
                    .execute(&self.pool)
                    .await
            })
            .await?;
        Ok(cleared.rows_affected() > 0)
    }

    async fn list(&self, user: &str) -> Result<Vec<SessionInfo>> {
        let hash = user_hash(user);
        let rows = self
            .runner
            .run("listing a user's sessions", async || {
                live(sqlx::query(LIST_SQL).bind(&hash))
                    .fetch_all(&self.pool)
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
                    .execute(&self.pool)
                    .await
            })
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let row = self
            .runner
            .run("loading a session", async || {
                live(sqlx::query(LOAD_SQL).bind(id.as_bytes().as_slice()))
                    .fetch_optional(&self.pool)
                    .await
            })
            .await?;
        row.map(|row| rows::record(&row, rows::WRAPPED)).transpose()
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        let deadline = unix_ms::to_ms(touch.idle_deadline);
        let result = self
            .runner
            .run("refreshing a session", async || {
                let last_seen = unix_ms::to_ms(touch.last_seen);
                let query = sqlx::query(TOUCH_SQL)
                    .bind(last_seen)
                    .bind(last_seen)
                    .bind(deadline)
                    .bind(last_seen)
                    .bind(deadline)
                    .bind(id.as_bytes().as_slice());
                live(query).execute(&self.pool).await
            })
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_user(&self, user: &str) -> Result<u64> {
        let hash = user_hash(user);
        let result = self
            .runner
            .run("deleting a user's sessions", async || {
                live(sqlx::query(DELETE_USER_SQL).bind(&hash).bind(user))
                    .execute(&self.pool)
                    .await
            })
            .await?;
        Ok(result.rows_affected())
    }

    /// Two statements: clear an expired lock, then `INSERT IGNORE`. Contending
    /// lockers can deadlock on the lock row: that is "held by another".
    async fn take_lock(
        &self,
        id: &Id,
        token: &LockToken,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<bool> {
        let attempt = async {
            self.runner
                .run("clearing an expired session lock", async || {
                    sqlx::query(CLEAR_EXPIRED_LOCK_SQL)
                        .bind(id.as_bytes().as_slice())
                        .bind(now_ms)
                        .execute(&self.pool)
                        .await
                })
                .await?;
            self.runner
                .run("taking a session lock", async || {
                    sqlx::query(TAKE_LOCK_SQL)
                        .bind(id.as_bytes().as_slice())
                        .bind(&token.0)
                        .bind(expires_ms)
                        .execute(&self.pool)
                        .await
                })
                .await
        };
        match attempt.await {
            Ok(result) => Ok(result.rows_affected() == 1),
            Err(e) if is_contention(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn unlock(&self, id: &Id, token: &LockToken) -> Result<()> {
        self.runner
            .run("releasing a session lock", async || {
                sqlx::query(UNLOCK_SQL)
                    .bind(id.as_bytes().as_slice())
                    .bind(&token.0)
                    .execute(&self.pool)
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
                    .bind(now_ms)
                    .execute(&self.pool)
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
                    .execute(&self.pool)
                    .await
            })
            .await
            .map(drop)
    }
}

/// InnoDB's deadlock (1213) and lock-wait timeout (1205): the contended row was busy.
fn is_contention(e: &Error) -> bool {
    database_error(e)
        .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .is_some_and(|d| matches!(d.number(), 1205 | 1213))
}
