//! The MySQL store keeps the whole session contract against a real MariaDB.

use tether_mysql::MySqlStore;

// The MariaDB that `scripts/test` started; a missing one is a failure, not a skip.
use tether_testkit::services::mysql_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_store_passes_the_conformance_suite() {
    let store = MySqlStore::connect(&mysql_url()).unwrap();
    store.migrate().await.unwrap();
    let dead = MySqlStore::connect("mysql://tether:tether@127.0.0.1:1/tether").unwrap();
    tether_testkit::Suite::new(store)
        .with_unavailable(dead)
        .run()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_store_works_on_the_apps_own_pool() {
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(8)
        .connect_lazy(&mysql_url())
        .unwrap();
    let store = MySqlStore::from_pool(pool);
    store.migrate().await.unwrap();
    tether_testkit::Suite::new(store).run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_are_idempotent_and_safe_to_run_concurrently() {
    let url = mysql_url();
    tether_testkit::harness::migrate_concurrently(4, || {
        let url = url.clone();
        async move { MySqlStore::connect(&url)?.migrate().await }
    })
    .await;
}
