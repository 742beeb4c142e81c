//! The memory store: one process, no server. Sessions are lost when it stops, and
//! several instances need sticky routing.
//!
//! ```sh
//! cargo run -p tether-examples --example memory
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/visit   # 1, 2, 3…
//! ```

use axum::{Router, routing::post};
use tether::{MemoryStore, Session, SessionError, SessionLayer};

async fn visit(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(format!("{visits}\n"))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let store = MemoryStore::new().with_max_sessions(100_000);
    // Secure by default; plain-http localhost needs the insecure cookie.
    let layer = SessionLayer::new(store).with_insecure_cookie();
    let app = Router::new().route("/visit", post(visit)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await
}
