//! MariaDB stops and starts again while requests run: 503s with a clear body during
//! the outage; afterwards requests succeed without an app restart and no session
//! saved before is lost. The cleanup task lives through the outage and deletes
//! expired rows after it (`tether_testkit::outage`).

use std::time::Duration;

use sqlx::Connection as _;
use tether_core::Id;
use tether_mysql::MySqlStore;
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
    tether_testkit::outage::restart_keeps_sessions(store, &mut db, cleanup, async |id| {
        row_exists(&url, id).await
    })
    .await;
}
