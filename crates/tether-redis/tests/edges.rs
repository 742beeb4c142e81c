//! The Redis store's edges: the per-user index is cleaned at logout and rotation and
//! expires with its sessions; an id rotation of a session with thousands of keys
//! keeps every key, and never destroys the session when it cannot finish.

use redis::AsyncCommands as _;
use tether::SessionLayer;
use tether_core::{Changes, Expiry, Id, Record, Saved, SessionStore};
use tether_redis::RedisStore;
use tether_testkit::http::send;

use tether_testkit::services::redis_url;

fn prefix() -> String {
    format!("edges{}:", Id::generate().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_and_logouts_leave_no_index_entries_behind() {
    let prefix = prefix();
    let store = RedisStore::connect(&redis_url())
        .unwrap()
        .with_prefix(&prefix);
    let app = tether_testkit::app::routes().layer(SessionLayer::new(store).with_insecure_cookie());
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let index = format!("{prefix}u:{{{}}}", hex_of("alice"));
    for _ in 0..200 {
        let cookie = send(&app, "POST", "/login", None).await.cookie();
        assert_eq!(send(&app, "GET", "/me", Some(&cookie)).await.body, "alice");
        send(&app, "POST", "/logout", Some(&cookie)).await;
    }
    let entries: u64 = conn.zcard(&index).await.unwrap();
    assert_eq!(entries, 0, "logouts left index entries");

    // A live login: the index expires with the session's absolute deadline.
    let cookie = send(&app, "POST", "/login", None).await.cookie();
    let ttl: i64 = conn.pttl(&index).await.unwrap();
    assert!(ttl > 0, "the index has no expiry ({ttl})");
    send(&app, "POST", "/logout", Some(&cookie)).await;
}

fn hex_of(s: &str) -> String {
    hex::encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_session_of_thousands_of_keys_keeps_them_all() {
    let store = RedisStore::connect(&redis_url())
        .unwrap()
        .with_prefix(prefix());
    let now = time::OffsetDateTime::now_utc();
    let mut record = Record::new(now, &Expiry::default());
    for i in 0..4_100 {
        record.data.insert(format!("k{i}"), serde_json::json!(i));
    }
    let old = Id::generate().unwrap();
    store.create(&old, &record).await.unwrap();
    let new = Id::generate().unwrap();
    let mut changes = Changes::new(now, record.idle_deadline);
    changes.user = Some(Some("ada".into()));
    let saved = store.cycle_id(&old, &new, &changes).await.unwrap();
    assert!(matches!(saved, Saved::Version { .. }), "{saved:?}");
    assert!(
        store.load(&old).await.unwrap().is_none(),
        "the old id still works"
    );
    let moved = store
        .load(&new)
        .await
        .unwrap()
        .expect("the rotated session");
    assert_eq!(moved.data.len(), 4_100);
    assert_eq!(moved.user.as_deref(), Some("ada"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_that_cannot_finish_leaves_the_old_session_whole() {
    let store = RedisStore::connect(&redis_url())
        .unwrap()
        .with_prefix(prefix());
    let now = time::OffsetDateTime::now_utc();
    let mut record = Record::new(now, &Expiry::default());
    record
        .data
        .insert("cart".into(), serde_json::json!([1, 2, 3]));
    let old = Id::generate().unwrap();
    store.create(&old, &record).await.unwrap();
    // The new id is taken: the rotation fails after reading the old record.
    let taken = Id::generate().unwrap();
    store.create(&taken, &record).await.unwrap();
    let changes = Changes::new(now, record.idle_deadline);
    assert!(store.cycle_id(&old, &taken, &changes).await.is_err());
    let still = store
        .load(&old)
        .await
        .unwrap()
        .expect("the old session was destroyed");
    assert_eq!(still.data["cart"], serde_json::json!([1, 2, 3]));
}
