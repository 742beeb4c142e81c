//! Two instances on one file store: messages on a socket to one are counted in the
//! session, and a page load on the other sees the count.

use futures_util::{SinkExt as _, StreamExt as _};
use tether::SessionLayer;
use tether::file::FileStore;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};

async fn instance(dir: &std::path::Path) -> String {
    let layer = SessionLayer::new(FileStore::open(dir).unwrap()).with_insecure_cookie();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = tether_websocket_example::app(layer);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_keeps_writing_its_session_after_the_upgrade() {
    let dir = std::env::temp_dir().join(format!("tether-ws-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (a, b) = (instance(&dir).await, instance(&dir).await);
    let http = reqwest::Client::new();
    let hello = http.post(format!("http://{a}/hello")).send().await.unwrap();
    let cookie = hello.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let mut request = format!("ws://{a}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    for expected in 1..=3 {
        socket.send(Message::text("hi")).await.unwrap();
        let reply = socket.next().await.unwrap().unwrap();
        assert_eq!(reply.to_text().unwrap(), expected.to_string());
    }
    socket.close(None).await.unwrap();

    let count = http
        .get(format!("http://{b}/count"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(count, "3", "the other instance sees what the socket wrote");
    std::fs::remove_dir_all(&dir).unwrap();
}
