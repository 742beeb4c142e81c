//! A save against a real PostgreSQL updates its row in place: the server counts HOT
//! updates (`pg_stat_user_tables`). Its own test binary, so that no other test's
//! writes land in the counts.

use sqlx::Connection as _;
use tether::SessionLayer;
use tether_postgres::PostgresStore;
use tether_testkit::http::send;

use tether_testkit::services::postgres_url;

/// Updates of `tether_sessions` the server has counted: all, and HOT ones (in place,
/// no new index entries).
async fn updates(conn: &mut sqlx::PgConnection) -> (i64, i64) {
    sqlx::query_as(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
         WHERE relname = 'tether_sessions' AND schemaname = current_schema()",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_updates_its_row_in_place() {
    let url = postgres_url();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let store = PostgresStore::from_pool(pool.clone());
    store.migrate().await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let (before, hot_before) = updates(&mut conn).await;
    let app = tether_testkit::app::routes().layer(SessionLayer::new(store));
    let cookie = send(&app, "POST", "/write", None).await.cookie();
    let saves = 200;
    for _ in 0..saves {
        assert!(
            send(&app, "POST", "/write", Some(&cookie))
                .await
                .status
                .is_success()
        );
    }
    // A backend that ends reports its counts at once.
    drop(app);
    pool.close().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (after, hot_after) = loop {
        let (after, hot) = updates(&mut conn).await;
        if after - before >= saves {
            break (after, hot);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server counted {} of {saves} updates within 30 s",
            after - before
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let (all, hot) = (after - before, hot_after - hot_before);
    eprintln!("{hot} of {all} updates were HOT");
    // Each save moves the idle deadline; only the coarse expiry bucket is indexed, and
    // it changes at most once in 65 s, so nearly every save is a HOT update.
    assert!(
        hot * 10 >= all * 9,
        "{hot} of {all} updates were HOT: saves write index entries"
    );
}
