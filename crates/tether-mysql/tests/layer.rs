//! Through the layer against real MariaDB: one SQL statement per read request and one
//! per write request, counted by the server.

use axum::Router;
use axum::routing::{get, post};
use sqlx::Row as _;
use tether::{Session, SessionError, SessionLayer};
use tether_mysql::MySqlStore;
use tether_testkit::http::send;

fn mysql_url() -> String {
    std::env::var("TETHER_TEST_MYSQL_URL").expect(
        "TETHER_TEST_MYSQL_URL is not set: run the tests through scripts/test, which starts mariadbd",
    )
}

/// The server's count of statements clients sent.
async fn questions(conn: &mut sqlx::MySqlConnection) -> u64 {
    let row = sqlx::query("SHOW GLOBAL STATUS LIKE 'Questions'")
        .fetch_one(conn)
        .await
        .unwrap();
    row.get::<String, _>(1).parse().unwrap()
}

async fn read(session: Session) -> Result<String, SessionError> {
    Ok(session.get::<u64>("n").await?.unwrap_or(0).to_string())
}

async fn write(session: Session) -> Result<&'static str, SessionError> {
    session.insert("last", "written").await?;
    Ok("ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_statement_per_read_and_per_write_request() {
    use sqlx::Connection as _;
    let url = mysql_url();
    let store = MySqlStore::connect(&url).unwrap();
    store.migrate().await.unwrap();
    let app = Router::new()
        .route("/read", get(read))
        .route("/write", post(write))
        .layer(SessionLayer::new(store));
    let mut stats = sqlx::MySqlConnection::connect(&url).await.unwrap();

    let cookie = send(&app, "POST", "/write", None).await.cookie();
    // Warm up the pooled connection's prepared statements.
    for _ in 0..3 {
        send(&app, "GET", "/read", Some(&cookie)).await;
        send(&app, "POST", "/write", Some(&cookie)).await;
    }
    // What measuring costs by itself (the SHOW STATUS statements).
    let a = questions(&mut stats).await;
    let b = questions(&mut stats).await;
    let overhead = b - a;

    let rounds = 20;
    let before = questions(&mut stats).await;
    for _ in 0..rounds {
        assert!(
            send(&app, "GET", "/read", Some(&cookie))
                .await
                .status
                .is_success()
        );
    }
    let reads = questions(&mut stats).await - before - overhead;
    let before = questions(&mut stats).await;
    for _ in 0..rounds {
        assert!(
            send(&app, "POST", "/write", Some(&cookie))
                .await
                .status
                .is_success()
        );
    }
    let writes = questions(&mut stats).await - before - overhead;
    eprintln!("sql statements: {reads} for {rounds} reads, {writes} for {rounds} writes");
    assert_eq!(reads, rounds, "statements for {rounds} read requests");
    assert_eq!(writes, rounds, "statements for {rounds} write requests");
}
