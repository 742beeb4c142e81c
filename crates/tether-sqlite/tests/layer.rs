//! Through the layer on a real database file: one SQL statement per read request and
//! one per write request, counted from sqlx's own record of every statement it runs
//! (its `sqlx::query` tracing events, from whichever thread runs them).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tether::SessionLayer;
use tether_sqlite::SqliteStore;
use tether_testkit::http::calls_per_request;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Counts sqlx's statement events; records nothing else.
struct Statements(Arc<AtomicU64>);

impl Subscriber for Statements {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("sqlx::query")
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if event.metadata().target().starts_with("sqlx::query") {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_statement_per_read_and_per_write_request() {
    let count = Arc::new(AtomicU64::new(0));
    tracing::subscriber::set_global_default(Statements(count.clone())).unwrap();
    let dir = std::env::temp_dir().join(format!("tether-sqlite-layer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::connect(&format!("sqlite://{}", dir.join("s.db").display())).unwrap();
    store.migrate().await.unwrap();
    let app = tether_testkit::app::routes().layer(SessionLayer::new(store));
    let rounds = 20;
    let (reads, writes) = calls_per_request(&app, rounds, || {
        let count = count.clone();
        Box::pin(async move { count.load(Ordering::SeqCst) })
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("sql statements: {reads} for {rounds} reads, {writes} for {rounds} writes");
    assert_eq!(reads, rounds, "statements for {rounds} read requests");
    assert_eq!(writes, rounds, "statements for {rounds} write requests");
}
