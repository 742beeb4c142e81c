//! Ids at rest are not credentials: after a login through the layer, neither the
//! database file nor its write-ahead log contains an id the browser was given.

use tether::SessionLayer;
use tether_sqlite::SqliteStore;
use tether_testkit::at_rest::{assert_absent, presented_ids, read_tree};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_and_its_log_never_hold_a_presented_id() {
    let dir = tether_testkit::harness::private_dir("sqlite-at-rest");
    let store = SqliteStore::connect(&format!("sqlite://{}", dir.join("s.db").display())).unwrap();
    store.migrate().await.unwrap();
    let ids = presented_ids(SessionLayer::new(store.clone())).await;
    // Read while the connection is open: the log still holds the recent writes.
    let written = read_tree(&dir);
    assert!(
        dir.join("s.db-wal").exists(),
        "no write-ahead log to look in"
    );
    assert_absent("the SQLite database and its WAL", &written, &ids);
    let key = ids[1].at_rest();
    assert!(
        written.windows(16).any(|w| w == key.as_bytes()),
        "the logged-in session's key at rest is not in what was read: the check saw nothing"
    );
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_session_values_are_ciphertext_in_the_database_and_its_log() {
    let dir = tether_testkit::harness::private_dir("sqlite-sealed");
    let store = SqliteStore::connect(&format!("sqlite://{}", dir.join("s.db").display())).unwrap();
    store.migrate().await.unwrap();
    let watched = dir.clone();
    tether_testkit::at_rest::check_sealed_data(std::sync::Arc::new(store), async || {
        read_tree(&watched)
    })
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
}
