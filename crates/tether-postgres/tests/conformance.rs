//! The Postgres store keeps the whole session contract against a real PostgreSQL.

use tether_postgres::PostgresStore;

// The PostgreSQL that `scripts/test` started; a missing one is a failure, not a skip.
use tether_testkit::services::postgres_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_passes_the_conformance_suite() {
    let store = PostgresStore::connect(&postgres_url()).unwrap();
    store.migrate().await.unwrap();
    let dead = PostgresStore::connect("postgres://tether:tether@127.0.0.1:1/tether").unwrap();
    tether_testkit::Suite::new(store)
        .with_unavailable(dead)
        .run()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_store_works_on_the_apps_own_pool() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_lazy(&postgres_url())
        .unwrap();
    let store = PostgresStore::from_pool(pool);
    store.migrate().await.unwrap();
    tether_testkit::Suite::new(store).run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_are_idempotent_and_safe_to_run_concurrently() {
    let url = postgres_url();
    tether_testkit::harness::migrate_concurrently(4, || {
        let url = url.clone();
        async move { PostgresStore::connect(&url)?.migrate().await }
    })
    .await;
}
