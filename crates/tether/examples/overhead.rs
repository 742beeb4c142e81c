//! The layer's overhead against a bare axum handler, for `scripts/measure-overhead`.
//!
//! Serves on one current-thread runtime: a bare app on `BASE`, and on `BASE + 1` the
//! same handler behind the layer with the memory store (`/untouched`), plus `/read`
//! and `/write` that use the session.
//!
//! ```sh
//! cargo run --release -p tether --example overhead -- 18081
//! ```

use axum::Router;
use axum::routing::get;
use tether::{MemoryStore, Session, SessionError, SessionLayer};

async fn read(session: Session) -> Result<String, SessionError> {
    Ok(session.get::<u64>("n").await?.unwrap_or(0).to_string())
}

async fn write(session: Session) -> Result<String, SessionError> {
    let n = session.get::<u64>("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

fn main() -> std::io::Result<()> {
    let first_port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18081);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let bare = Router::new().route("/", get(|| async { "0" }));
        let layered = Router::new()
            .route("/untouched", get(|| async { "0" }))
            .route("/read", get(read))
            .route("/write", get(write))
            .layer(SessionLayer::new(MemoryStore::new()).with_insecure_cookie());
        let bare_listener = tokio::net::TcpListener::bind(("127.0.0.1", first_port)).await?;
        let layered_listener = tokio::net::TcpListener::bind(("127.0.0.1", first_port + 1)).await?;
        tokio::spawn(async move { axum::serve(bare_listener, bare).await });
        axum::serve(layered_listener, layered).await
    })
}
