//! MariaDB stops and starts again while requests run: 503s with a clear body during
//! the outage; afterwards requests succeed without an app restart and no session
//! saved before is lost. The cleanup task lives through the outage and deletes
//! expired rows after it.

use std::time::{Duration, Instant};

use sqlx::Connection as _;
use tether::SessionLayer;
use tether_core::{Expiry, Id, Record, SessionStore};
use tether_mysql::MySqlStore;
use tether_testkit::http::{expect_outage, expect_recovery, sessions_with_counters};
use tether_testkit::services::MariaDb;

async fn row_exists(url: &str, id: &Id) -> bool {
    let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tether_sessions WHERE id = ?")
        .bind(id.as_bytes().as_slice())
        .fetch_one(&mut conn)
        .await
        .unwrap();
    n > 0
}

async fn expired_row(store: &MySqlStore) -> Id {
    let id = Id::generate().unwrap();
    let record = Record::new(
        time::OffsetDateTime::now_utc(),
        &Expiry::new(Duration::from_millis(1)),
    );
    store.create(&id, &record).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_database_restart_and_cleanup_keeps_running() {
    let dir = std::env::temp_dir().join(format!("tether-mysql-fault-{}", std::process::id()));
    let mut db = MariaDb::install(&dir).expect("mariadbd starts");
    let url = db.url();
    let store = MySqlStore::connect(&url)
        .unwrap()
        .with_timeout(Duration::from_millis(800));
    store.migrate().await.unwrap();
    let cleanup = store.spawn_cleanup(Duration::from_millis(200));
    let app = tether_testkit::app::routes().layer(SessionLayer::new(store.clone()));

    let users = sessions_with_counters(&app, 20, 3).await;
    let before_outage = expired_row(&store).await;

    db.stop().expect("mariadbd stops");
    expect_outage(&app, &users).await;
    // Let the cleanup task fail a few times.
    tokio::time::sleep(Duration::from_secs(1)).await;
    db.start_again().expect("mariadbd starts again");
    expect_recovery(&app, &users, 3, Duration::from_secs(30)).await;

    // The cleanup task is still alive: it deletes rows that expired before the outage
    // and after it.
    let after_outage = expired_row(&store).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while row_exists(&url, &before_outage).await || row_exists(&url, &after_outage).await {
        assert!(
            Instant::now() < deadline,
            "the cleanup task did not delete expired rows after the outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(cleanup);
}
