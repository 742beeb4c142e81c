//! tether's migrations and an app's own `sqlx::migrate!` on one database: each keeps
//! its own history, so both succeed in either order, and again.

use sqlx::Connection as _;
use tether_mysql::MySqlStore;

use tether_testkit::services::mysql_url;

/// A fresh database on the test server, its URL.
async fn fresh_database(tag: &str) -> String {
    let url = mysql_url();
    let name = format!("tether_migrations_{tag}_{}", std::process::id());
    let mut admin = sqlx::MySqlConnection::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tether_and_the_app_migrate_one_database_in_either_order() {
    for (tag, app_first) in [("app_first", true), ("tether_first", false)] {
        let url = fresh_database(tag).await;
        let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
        let store = MySqlStore::from_pool(pool.clone());
        let app = async || {
            sqlx::migrate!("tests/app_migrations")
                .run(&pool)
                .await
                .map_err(|e| e.to_string())
        };
        let tether = async || store.migrate().await.map_err(|e| e.to_string());
        if app_first {
            tether_testkit::check_migrations_coexist(app, tether).await;
        } else {
            tether_testkit::check_migrations_coexist(tether, app).await;
        }
        pool.close().await;
    }
}
