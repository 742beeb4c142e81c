//! The SQLite store: one database file that the processes of one machine share, one
//! statement per load and one per save, embedded migrations, a cleanup task.
//!
//! ```sh
//! cargo run -p tether-examples --example sqlite -- sqlite://sessions.db
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/visit
//! ```

use std::time::Duration;

use axum::{Router, routing::post};
use tether::sqlite::SqliteStore;
use tether::{Session, SessionError, SessionLayer};

async fn visit(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(format!("{visits}\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).ok_or(
        "give the database: cargo run --example sqlite -- sqlite://PATH (created when missing)",
    )?;
    let store = SqliteStore::connect(&url)?;
    store.migrate().await?; // idempotent, safe from several processes at once
    let _cleanup = store.spawn_cleanup(Duration::from_mins(1)); // stops when dropped
    let layer = SessionLayer::new(store).with_insecure_cookie();
    let app = Router::new().route("/visit", post(visit)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
