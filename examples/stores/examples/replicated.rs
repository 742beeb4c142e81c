//! The replicated store: every instance keeps every session and pushes changes to
//! its peers. Start two, each naming the other.
//!
//! ```sh
//! export TETHER_REPLICATION_SECRET=$(head -c 24 /dev/urandom | base64)
//! cargo run -p tether-examples --example replicated -- 127.0.0.1:3001 http://127.0.0.1:3002/_tether &
//! cargo run -p tether-examples --example replicated -- 127.0.0.1:3002 http://127.0.0.1:3001/_tether &
//! curl -c jar -b jar -X POST http://127.0.0.1:3001/visit   # 1
//! curl -c jar -b jar -X POST http://127.0.0.1:3002/visit   # 2, on the other instance
//! ```

use axum::{Router, routing::post};
use tether::replicated::ReplicatedStore;
use tether::{Session, SessionError, SessionLayer};

async fn visit(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(format!("{visits}\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args
        .next()
        .ok_or("give the address to listen on, then the peers")?;
    let secret = std::env::var("TETHER_REPLICATION_SECRET")?; // 16 bytes or more
    let store = ReplicatedStore::builder(secret).peers(args).start()?;
    // Bind first, then catch up: a peer started at the same time then finds this one
    // catching up (and counts it as not up) instead of waiting for it.
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let app = Router::new()
        .route("/visit", post(visit))
        .layer(SessionLayer::new(store.clone()).with_insecure_cookie())
        // What peers call; every route needs the secret. Never proxy it publicly.
        .nest("/_tether", store.router());
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });
    store.catch_up_until_ready().await;
    serving.await??;
    Ok(())
}
