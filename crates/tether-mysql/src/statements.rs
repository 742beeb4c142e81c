//! The statements the shared flows (`tether_sql::flow`) are built from, in MySQL's
//! SQL (`sql.rs`).

use sqlx::MySql;
use tether_core::{Changes, Id, Record, Result, Saved, SessionInfo, async_trait, unix_ms};
use tether_sql::codec::{patch, user_hash, wrap};
use tether_sql::flow::Statements;
use tether_sql::rows;

use crate::codec::reported;
use crate::sql::{CLEAR_EXPIRED_ID_SQL, CREATE_SQL, CYCLE_SQL, DELETE_SQL, LIST_SQL, SAVE_SQL};
use crate::{MySqlStore, live};

#[async_trait]
impl Statements for MySqlStore {
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
                    .execute(&self.pool)
                    .await
            })
            .await
            .map(drop)
    }

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

    /// `SET id = ?` only when rotating.
    async fn merge(&self, id: &Id, new_id: Option<&Id>, changes: &Changes) -> Result<Saved> {
        let deadline = unix_ms::to_ms(changes.idle_deadline);
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
                    .bind(deadline)
                    .bind(deadline)
                    .bind(user_set)
                    .bind(&user_hash_value)
                    .bind(user_set)
                    .bind(user_name)
                    .bind(unix_ms::to_ms(changes.last_seen))
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
}
