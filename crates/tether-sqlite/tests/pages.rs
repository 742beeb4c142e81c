//! What a save costs the database file: a save after a read that changes neither the
//! session's user nor its expiry bucket rewrites the session's row and no index entry,
//! one page in the write-ahead log. (SQLite rewrites an index entry whenever the
//! statement assigns one of its columns, even to the value it had.)

use std::time::Duration;

use serde_json::json;
use sqlx::{Connection as _, Row as _};
use tether_core::{Changes, Expiry, Id, Record, SessionStore as _, unix_ms};
use tether_sqlite::SqliteStore;
use time::OffsetDateTime;

/// The cleanup's expiry bucket, as the schema defines it.
const BUCKET_MS: i64 = 65_536;

/// Empties the write-ahead log, runs `write`, and returns how many pages it logged.
async fn pages_written(url: &str, write: impl AsyncFnOnce()) -> i64 {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let log = async |conn: &mut sqlx::SqliteConnection, sql: &'static str| -> i64 {
        let row = sqlx::query(sql).fetch_one(conn).await.unwrap();
        assert_eq!(row.get::<i64, _>(0), 0, "the checkpoint was blocked");
        row.get(1)
    };
    assert_eq!(log(&mut conn, "PRAGMA wal_checkpoint(TRUNCATE)").await, 0);
    write().await;
    log(&mut conn, "PRAGMA wal_checkpoint(PASSIVE)").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_that_moves_no_indexed_column_writes_one_page() {
    let dir = tether_testkit::harness::private_dir("sqlite-pages");
    let url = format!("sqlite://{}", dir.join("s.db").display());
    let store = SqliteStore::connect(&url).unwrap();
    store.migrate().await.unwrap();

    // A bound user (indexed) and a deadline early in its expiry bucket, which the save
    // moves by a second: neither indexed value changes.
    let now = OffsetDateTime::now_utc();
    let mut record = Record::new(now, &Expiry::new(Duration::from_hours(1)));
    let deadline = unix_ms::to_ms(record.idle_deadline);
    record.idle_deadline = unix_ms::from_ms(deadline - deadline % BUCKET_MS + 1_000);
    record.user = Some("alice".into());
    let id = Id::generate().unwrap();
    store.create(&id, &record).await.unwrap();
    let base = store.load(&id).await.unwrap().unwrap();

    let mut changes = Changes::new(now, base.idle_deadline + time::Duration::seconds(1));
    changes.set("n", json!(2));
    let pages = pages_written(&url, async || {
        store.save_from(&id, &base, &changes).await.unwrap();
    })
    .await;
    assert_eq!(pages, 1, "the save rewrote index pages too");

    // The indexed values still move when they change: another user, another bucket.
    let base = store.load(&id).await.unwrap().unwrap();
    assert_eq!(base.data["n"], json!(2));
    let mut changes = Changes::new(now, base.idle_deadline + time::Duration::hours(2));
    changes.user = Some(Some("bob".into()));
    let pages = pages_written(&url, async || {
        store.save_from(&id, &base, &changes).await.unwrap();
    })
    .await;
    assert!(pages > 1, "the save left the indexes as they were");
    assert_eq!(store.user_sessions("alice").await.unwrap().len(), 0);
    assert_eq!(store.user_sessions("bob").await.unwrap().len(), 1);

    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}
