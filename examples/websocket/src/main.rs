//! `cargo run -p tether-websocket-example`: the WebSocket counter on the file store,
//! at http://127.0.0.1:3000 (plain http: the cookie is sent without `Secure`).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join("tether-websocket-example");
    let store = tether::file::FileStore::open(&dir)?;
    let app =
        tether_websocket_example::app(tether::SessionLayer::new(store).with_insecure_cookie());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("POST http://127.0.0.1:3000/hello, then open ws://127.0.0.1:3000/ws with its cookie");
    axum::serve(listener, app).await?;
    Ok(())
}
