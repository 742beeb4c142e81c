//! The statements the shared flows (`tether_sql::flow`) are built from, in SQLite's
//! SQL (`sql.rs`).

use sqlx::Sqlite;
use tether_core::{Changes, Id, Record, Result, Saved, async_trait, unix_ms};
use tether_sql::codec::{patch, user_hash, wrap};
use tether_sql::flow::Writes;
use tether_sql::rows;

use crate::SqliteStore;
use crate::sql::{CREATE_SQL, CYCLE_SQL, REPLACE_SQL, SAVE_SQL, expiry_bucket};

#[async_trait]
impl Writes for SqliteStore {
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
                    .bind(record.lifetime.map(|l| l.to_ms()))
                    .execute(&self.conn)
                    .await
            })
            .await
            .map(drop)
    }

    async fn replace(&self, id: &Id, base: &Record, record: &Record) -> Result<bool> {
        let data = wrap(&record.data);
        let hash = record.user.as_deref().map(user_hash);
        let version = rows::signed_version(record)?;
        let read_version = i64::try_from(base.version).unwrap_or(i64::MAX);
        let deadline = unix_ms::to_ms(record.idle_deadline);
        let user_changed = base.user != record.user;
        let bucket_changed =
            expiry_bucket(unix_ms::to_ms(base.idle_deadline)) != expiry_bucket(deadline);
        let sql = REPLACE_SQL[usize::from(user_changed) | usize::from(bucket_changed) << 1];
        let result = self
            .runner
            .run("saving a session", async || {
                sqlx::query(sql)
                    .bind(&data)
                    .bind(version)
                    .bind(unix_ms::to_ms(record.last_seen))
                    .bind(deadline)
                    .bind(&hash)
                    .bind(&record.user)
                    .bind(id.as_bytes().as_slice())
                    .bind(read_version)
                    .bind(unix_ms::now_ms())
                    .execute(&self.conn)
                    .await
            })
            .await?;
        Ok(result.rows_affected() == 1)
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
                query.fetch_optional(&self.conn).await
            })
            .await?;
        row.as_ref().map_or(Ok(Saved::Gone), rows::saved)
    }
}

tether_sql::numbered_statements!(SqliteStore {
    reader: conn,
    writer: conn,
    sql: crate::sql,
    text: tether_sql::rows::WRAPPED,
    name: std::convert::identity,
});
