//! Through the layer against real MariaDB: one SQL statement per read request and one
//! per write request, counted by the server.

use sqlx::Row as _;
use tether::SessionLayer;
use tether_mysql::MySqlStore;
use tether_testkit::http::calls_per_request;

use tether_testkit::services::mysql_url;

/// The server's count of executed prepared statements: every statement the store
/// sends binds the session id, so each one is a prepared execution. (`Questions`
/// would also count the `SET` that sqlx sends when it opens a connection, and sqlx
/// opens one whenever a request arrives before the previous connection's return to
/// the pool, which happens in a spawned task, has finished.) sqlx prepares this
/// status query too, so it counts itself; `calls_per_request` measures that and
/// takes it off.
async fn statements(conn: &mut sqlx::MySqlConnection) -> u64 {
    let row = sqlx::query("SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'")
        .fetch_one(conn)
        .await
        .unwrap();
    row.get::<String, _>(1).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_statement_per_read_and_per_write_request() {
    use sqlx::Connection as _;
    let url = mysql_url();
    let store = MySqlStore::connect(&url).unwrap();
    store.migrate().await.unwrap();
    let app = tether_testkit::app::routes().layer(SessionLayer::new(store));
    let stats = std::sync::Arc::new(tokio::sync::Mutex::new(
        sqlx::MySqlConnection::connect(&url).await.unwrap(),
    ));
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
