//! The SQLite store keeps the whole session contract on a real database file, in
//! memory, and with several stores (as several processes would) on one file.

use std::path::PathBuf;
use std::time::Duration;

use tether_core::{Changes, Expiry, Id, Record, Saved, SessionStore};
use tether_sqlite::SqliteStore;

/// A fresh database file in a directory of its own, removed when dropped.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tether-sqlite-{name}-{}-{}",
            std::process::id(),
            Id::generate().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.join("sessions.db").display())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_store_passes_the_conformance_suite() {
    let db = TempDb::new("suite");
    let store = SqliteStore::connect(&db.url()).unwrap();
    store.migrate().await.unwrap();
    // A file in a directory that does not exist cannot be opened: unavailable.
    let dead = SqliteStore::connect("sqlite:///nonexistent-tether-dir/x/sessions.db").unwrap();
    tether_testkit::Suite::new(store)
        .with_unavailable(dead)
        .run()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_in_memory_store_passes_the_conformance_suite() {
    let store = SqliteStore::in_memory().await.unwrap();
    let dead = SqliteStore::connect("sqlite:///nonexistent-tether-dir/x/sessions.db").unwrap();
    tether_testkit::Suite::new(store)
        .with_unavailable(dead)
        .run()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_are_idempotent_and_safe_to_run_concurrently() {
    let db = TempDb::new("migrate");
    let url = db.url();
    tether_testkit::harness::migrate_concurrently(4, || {
        let url = url.clone();
        async move { SqliteStore::connect(&url)?.migrate().await }
    })
    .await;
}

/// Three stores on one file, each with its own connections as three processes would
/// have: 300 concurrent writers to one session's disjoint keys, and 300 creates. No
/// "database is locked", nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_stores_on_one_file_never_see_database_is_locked() {
    let db = TempDb::new("shared");
    let stores: Vec<SqliteStore> = (0..3)
        .map(|_| {
            SqliteStore::connect(&db.url())
                .unwrap()
                .with_timeout(Duration::from_secs(30))
        })
        .collect();
    stores[0].migrate().await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let expiry = Expiry::new(Duration::from_mins(10));
    let id = Id::generate().unwrap();
    stores[0]
        .create(&id, &Record::new(now, &expiry))
        .await
        .unwrap();
    let idle = expiry.idle_deadline(now, None);
    let writers: Vec<_> = (0..300)
        .map(|i| {
            let store = stores[i % 3].clone();
            tokio::spawn(async move {
                let mut changes = Changes::new(now, idle);
                changes.set(format!("k{i}"), serde_json::json!(i));
                let saved = store.save(&id, &changes).await?;
                assert!(matches!(saved, Saved::Version { .. }));
                store
                    .create(&Id::generate().unwrap(), &Record::new(now, &expiry))
                    .await
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().expect("no write fails");
    }
    let record = stores[1].load(&id).await.unwrap().unwrap();
    assert_eq!(record.data.len(), 300);
    assert_eq!(record.version, 301);
}
