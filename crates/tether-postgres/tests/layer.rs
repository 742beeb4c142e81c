//! Through the layer against a real PostgreSQL: one SQL statement per read request and
//! one per write request, counted by the server (`pg_stat_statements`, which the test
//! run's server preloads).

use sqlx::Connection as _;
use tether::SessionLayer;
use tether_postgres::PostgresStore;
use tether_testkit::http::calls_per_request;

use tether_testkit::services::postgres_url;

/// Statements on tether's tables that the server has run, as `pg_stat_statements`
/// counts them (this query is left out).
async fn statements(conn: &mut sqlx::PgConnection) -> u64 {
    let calls: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(calls), 0)::bigint FROM pg_stat_statements \
         WHERE query LIKE '%tether\\_%' AND query NOT LIKE '%pg_stat_statements%'",
    )
    .fetch_one(conn)
    .await
    .unwrap();
    u64::try_from(calls).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_statement_per_read_and_per_write_request() {
    let url = postgres_url();
    let store = PostgresStore::connect(&url).unwrap();
    store.migrate().await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&mut conn)
        .await
        .expect("pg_stat_statements is preloaded by the test run's server");
    let app = tether_testkit::app::routes().layer(SessionLayer::new(store));
    let stats = std::sync::Arc::new(tokio::sync::Mutex::new(conn));
    let rounds = 20;
    let (reads, writes) = calls_per_request(&app, rounds, || {
        let stats = stats.clone();
        Box::pin(async move { statements(&mut *stats.lock().await).await })
    })
    .await;
    eprintln!("sql statements: {reads} for {rounds} reads, {writes} for {rounds} writes");
    assert_eq!(reads, rounds, "statements for {rounds} read requests");
    assert_eq!(writes, rounds, "statements for {rounds} write requests");
}
