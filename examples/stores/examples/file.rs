//! The shared-directory store, tether's default: every instance mounts the same
//! directory (NFS or local). No server to run.
//!
//! ```sh
//! cargo run -p tether-examples --example file -- /tmp/tether-example-sessions
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/visit
//! ```

use std::time::Duration;

use axum::{Router, routing::post};
use tether::file::FileStore;
use tether::{Session, SessionError, SessionLayer};

async fn visit(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(format!("{visits}\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("give the session directory: cargo run --example file -- DIR")?;
    let store = FileStore::open(dir)?; // 0700, checked now, not on the first request
    let _sweeper = store.spawn_sweeper(Duration::from_mins(1)); // stops when dropped
    let layer = SessionLayer::new(store).with_insecure_cookie();
    let app = Router::new().route("/visit", post(visit)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
