//! The app's routes tested in-process with `tether::testing` (no socket, no login
//! route): a seeded session, read by a handler, and the session read back after a
//! request, on the memory, file and cookie stores.

use serde_json::{Map, json};
use tether::SessionLayer;
use tether::testing::TestClient;

fn layers(dir: &std::path::Path) -> Vec<(&'static str, SessionLayer)> {
    let keys =
        tether::cookie::KeyRing::parse(&tether::cookie::KeyRing::generate_key().unwrap()).unwrap();
    vec![
        ("memory", SessionLayer::new(tether::MemoryStore::new())),
        (
            "file",
            SessionLayer::new(tether::file::FileStore::open(dir).unwrap()),
        ),
        (
            "cookie",
            SessionLayer::client_side(tether::cookie::CookieStore::new(keys)),
        ),
    ]
}

#[tokio::test]
async fn the_count_is_read_from_a_seeded_session_and_written_back() {
    let dir = std::env::temp_dir().join(format!("tether-ws-in-process-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (store, layer) in layers(&dir) {
        let client = TestClient::new(tether_websocket_example::app(layer.clone()), &layer);
        let mut values = Map::new();
        values.insert("messages".into(), json!(41));
        client.seed(Some("alice"), values).await.unwrap();
        assert_eq!(client.get("/count").await.text(), "41", "{store}");
        assert_eq!(client.user().await.unwrap().as_deref(), Some("alice"));

        // A fresh browser: /hello starts a session the client then reads back.
        client.clear_cookie();
        assert_eq!(client.post("/hello").await.status, 200);
        assert_eq!(
            client.session_value::<u64>("messages").await.unwrap(),
            Some(0),
            "{store}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
