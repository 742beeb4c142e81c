//! The Redis store: one command per load and one per save, standalone or Cluster.
//!
//! ```sh
//! redis-server --port 6379 &
//! cargo run -p tether-examples --example redis -- redis://127.0.0.1:6379
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/visit
//! ```

use axum::{Router, routing::post};
use tether::redis::RedisStore;
use tether::{Session, SessionError, SessionLayer};

async fn visit(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(format!("{visits}\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    // Connects on first use: a Redis that is down answers 503 until it is up.
    let store = RedisStore::connect(&url)?.with_prefix("example:");
    let layer = SessionLayer::new(store).with_insecure_cookie();
    let app = Router::new().route("/visit", post(visit)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
