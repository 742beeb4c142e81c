//! Ids at rest are not credentials: after a login through the layer on one instance,
//! neither its state nor its peer's (filled by the replication messages), as their
//! snapshots hand them out, contains an id the browser was given.

use std::time::Duration;

use hmac::{Hmac, Mac as _};
use serde_json::Value;
use tether::SessionLayer;
use tether_replicated::ReplicatedStore;
use tether_testkit::at_rest::{assert_absent, presented_ids};

const SECRET: &[u8] = b"at-rest test secret, 16+ bytes";

fn sign(parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Every page of the snapshot the node at `base` (its `/_tether` URL) serves.
async fn snapshot(http: &reqwest::Client, base: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let ts = (time::OffsetDateTime::now_utc().unix_timestamp() * 1000).to_string();
        let nonce = "00112233445566778899aabbccddeeff";
        let reply = http
            .get(format!("{base}/snapshot?after={after}"))
            .header("x-tether-timestamp", &ts)
            .header("x-tether-nonce", nonce)
            .header(
                "x-tether-signature",
                sign(&[
                    b"snapshot",
                    ts.as_bytes(),
                    nonce.as_bytes(),
                    after.as_bytes(),
                ]),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        let page = reply.bytes().await.unwrap();
        let next = serde_json::from_slice::<Value>(&page).unwrap()["next"].clone();
        out.extend_from_slice(&page);
        match next.as_str() {
            Some(next) => next.clone_into(&mut after),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_instance_nor_its_peer_holds_a_presented_id() {
    let la = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url_a = format!("http://{}/_tether", la.local_addr().unwrap());
    let url_b = format!("http://{}/_tether", lb.local_addr().unwrap());
    let a = ReplicatedStore::builder(SECRET)
        .peers([url_b.clone()])
        .start()
        .unwrap();
    let b = ReplicatedStore::builder(SECRET)
        .peers([url_a.clone()])
        .start()
        .unwrap();
    for (listener, store) in [(la, &a), (lb, &b)] {
        let app = axum::Router::new().nest("/_tether", store.router());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }
    a.catch_up().await;
    b.catch_up().await;
    let ids = presented_ids(SessionLayer::new(a.clone())).await;

    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let on_b = loop {
        let state = snapshot(&http, &url_b).await;
        if String::from_utf8_lossy(&state).contains("alice") {
            break state;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the login never reached the peer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_absent("the peer's replicated state", &on_b, &ids);
    assert_absent(
        "the instance's snapshot",
        &snapshot(&http, &url_a).await,
        &ids,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_session_values_are_ciphertext_in_a_snapshot() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/_tether", listener.local_addr().unwrap());
    let store = ReplicatedStore::builder(SECRET).start().unwrap();
    let app = axum::Router::new().nest("/_tether", store.router());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    store.catch_up().await;
    let http = reqwest::Client::new();
    tether_testkit::at_rest::check_sealed_data(std::sync::Arc::new(store), async || {
        snapshot(&http, &url).await
    })
    .await;
}
