//! The statements the shared flows (`tether_sql::flow`) are built from, in Postgres's
//! SQL (`sql.rs`).

use sqlx::Postgres;
use tether_core::{Changes, Id, Record, Result, Saved, async_trait, unix_ms};
use tether_sql::codec::{Split, user_hash};
use tether_sql::escape::{escape, postgres_data};
use tether_sql::flow::Writes;
use tether_sql::rows;

use crate::PostgresStore;
use crate::sql::{CREATE_SQL, CYCLE_SQL, REPLACE_SQL, SAVE_SQL};

#[async_trait]
impl Writes for PostgresStore {
    async fn insert(&self, id: &Id, record: &Record) -> Result<()> {
        let data = postgres_data(&record.data)?;
        let hash = record.user.as_deref().map(user_hash);
        let name = record.user.as_deref().map(escape);
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
                    .bind(name.as_deref())
                    .bind(record.lifetime.map(|l| l.to_ms()))
                    .execute(&self.pool)
                    .await
            })
            .await
            .map(drop)
    }

    async fn replace(&self, id: &Id, base: &Record, record: &Record) -> Result<bool> {
        let data = postgres_data(&record.data)?;
        let hash = record.user.as_deref().map(user_hash);
        let name = record.user.as_deref().map(escape);
        let version = rows::signed_version(record)?;
        let read_version = i64::try_from(base.version).unwrap_or(i64::MAX);
        let result = self
            .runner
            .run("saving a session", async || {
                sqlx::query(REPLACE_SQL)
                    .bind(&data)
                    .bind(version)
                    .bind(unix_ms::to_ms(record.last_seen))
                    .bind(unix_ms::to_ms(record.idle_deadline))
                    .bind(&hash)
                    .bind(name.as_deref())
                    .bind(id.as_bytes().as_slice())
                    .bind(read_version)
                    .bind(unix_ms::now_ms())
                    .execute(&self.pool)
                    .await
            })
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// `SET id = $11` only when rotating.
    async fn merge(&self, id: &Id, new_id: Option<&Id>, changes: &Changes) -> Result<Saved> {
        let (user_set, hash, name) = match &changes.user {
            None => (false, None, None),
            Some(Some(u)) => (true, Some(user_hash(u)), Some(escape(u))),
            Some(None) => (true, None, None),
        };
        let split = Split::of(changes);
        let set = postgres_data(&split.set)?;
        let removed: Vec<String> = split
            .removed
            .iter()
            .map(|k| escape(k).into_owned())
            .collect();
        let (what, sql) = match new_id {
            Some(_) => ("rotating a session id", CYCLE_SQL),
            None => ("saving a session", SAVE_SQL),
        };
        let row = self
            .runner
            .run(what, async || {
                let query = sqlx::query::<Postgres>(sql)
                    .bind(changes.clear)
                    .bind(&set)
                    .bind(&removed)
                    .bind(unix_ms::to_ms(changes.idle_deadline))
                    .bind(user_set)
                    .bind(&hash)
                    .bind(name.as_deref())
                    .bind(unix_ms::to_ms(changes.last_seen))
                    .bind(id.as_bytes().as_slice())
                    .bind(unix_ms::now_ms());
                let query = match new_id {
                    Some(new_id) => query.bind(new_id.as_bytes().as_slice()),
                    None => query,
                };
                query.fetch_optional(&self.pool).await
            })
            .await?;
        row.as_ref().map_or(Ok(Saved::Gone), rows::saved)
    }
}

tether_sql::numbered_statements!(PostgresStore {
    reader: pool,
    writer: pool,
    sql: crate::sql,
    text: crate::TEXT,
    name: tether_sql::escape::escape,
});
