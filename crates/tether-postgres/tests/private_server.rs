//! The tests' private server (`tether_testkit::services::Postgres`) takes queries as
//! soon as a start returns, even when the start first replays a long write-ahead log:
//! its socket answers before it accepts sessions ("the database system is starting
//! up"), so a test that queried at once used to fail now and then.

use sqlx::Connection as _;
use tether_testkit::services::Postgres;

#[tokio::test]
async fn a_start_returns_once_the_server_takes_queries() {
    // Not a private directory: the server runs as its own user and must reach it.
    let dir = std::env::temp_dir().join(format!(
        "tether-postgres-private-server-{}",
        std::process::id()
    ));
    // No checkpoint before the crash: the restart replays all the rows below.
    let settings = ["max_wal_size=4GB", "checkpoint_timeout=1h"];
    let mut db = Postgres::install_with(&dir, &settings).expect("postgres starts");
    let url = db.url();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TABLE filler AS SELECT n, repeat('x', 200) AS pad \
         FROM generate_series(1, 400000) AS n",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);

    db.crash().expect("postgres stops");
    db.start_again().expect("postgres starts again");
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .expect("the server takes a session as soon as start_again returns");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM filler")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 400_000);
    drop(conn);
    drop(db);
    let _ = std::fs::remove_dir_all(dir);
}
