//! tether's migrations and an app's own `sqlx::migrate!` on one database: each keeps
//! its own history, so both succeed in either order, and again.

use tether_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tether_and_the_app_migrate_one_database_in_either_order() {
    let dir = tether_testkit::harness::private_dir("sqlite-migrations");
    for (tag, app_first) in [("app_first", true), ("tether_first", false)] {
        let url = format!("sqlite://{}", dir.join(format!("{tag}.db")).display());
        // tether's connect makes the file (0600); the app shares it through its pool.
        let store = SqliteStore::connect(&url).unwrap();
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
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
    std::fs::remove_dir_all(&dir).unwrap();
}
