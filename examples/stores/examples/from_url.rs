//! Any store, named by one environment variable: what a deployed app does, so the
//! same binary runs on Redis in production and on the memory store in a test.
//!
//! ```sh
//! SESSION_STORE=memory: cargo run -p tether-examples --example from_url
//! SESSION_STORE=redis://127.0.0.1:6379 cargo run -p tether-examples --example from_url
//! SESSION_STORE=file:///tmp/sessions cargo run -p tether-examples --example from_url
//! SESSION_STORE='cookie:?key_file=cookie.keys' cargo run -p tether-examples --example from_url
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/visit
//! ```

use axum::{Router, routing::post};
use tether::{Session, SessionError, StoreConfig};

async fn visit(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(format!("{visits}\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Connects, migrates an SQL store's tables and starts its cleanup; a mistake in
    // the URL names the part (or the cargo feature) at fault, never the password.
    let store = StoreConfig::from_env("SESSION_STORE")?.open().await?;
    println!("sessions in the {} store", store.kind());
    let layer = store.layer().with_insecure_cookie();
    let app = Router::new().route("/visit", post(visit)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
