//! tower-sessions' request/response behaviours through `SessionManagerLayer` over the
//! adapter, on every server-side tether store, for tower-sessions 0.14 and 0.15.

use std::sync::Arc;

#[macro_use]
mod common;

mod v0_14 {
    behaviours!(tower_sessions_014);
}

mod v0_15 {
    behaviours!(tower_sessions_015);
}

fn env(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests through scripts/test, which starts {what}")
    })
}

async fn both<S: tether::SessionStore>(store: S) {
    let store = Arc::new(store);
    v0_14::run(store.clone()).await;
    v0_15::run(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store() {
    both(tether::MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store() {
    let dir = std::env::temp_dir().join(format!("tether-ts-file-{}", std::process::id()));
    both(tether::file::FileStore::open(&dir).unwrap()).await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store() {
    let url = env("TETHER_TEST_REDIS_URL", "redis-server");
    both(tether::redis::RedisStore::connect(&url).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_store() {
    let url = env("TETHER_TEST_MYSQL_URL", "mariadbd");
    let store = tether::mysql::MySqlStore::connect(&url).unwrap();
    store.migrate().await.unwrap();
    both(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store() {
    let url = env("TETHER_TEST_POSTGRES_URL", "postgres");
    let store = tether::postgres::PostgresStore::connect(&url).unwrap();
    store.migrate().await.unwrap();
    both(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store() {
    both(tether::sqlite::SqliteStore::in_memory().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_store() {
    let store = tether::replicated::ReplicatedStore::builder(b"tower-sessions secret 123")
        .start()
        .unwrap();
    both(store).await;
}
