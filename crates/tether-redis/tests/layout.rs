//! Sessions written by the first key layout (a hash per session at `PREFIX s:{ID}`)
//! stay readable after the upgrade to the packed layout (one MessagePack string at
//! `PREFIX p:{ID}`), and move to it on their first write.

use std::time::Duration;

use tether_core::{Changes, Id, Saved, SessionStore as _, Touch, unix_ms};
use tether_redis::RedisStore;
use time::OffsetDateTime;

fn redis_url() -> String {
    std::env::var("TETHER_TEST_REDIS_URL").expect(
        "TETHER_TEST_REDIS_URL is not set: run the tests through scripts/test, which starts redis-server",
    )
}

/// Writes a session the way the first layout did: its fields in a hash.
async fn legacy_session(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    id: &Id,
    user: Option<&str>,
) {
    let now = unix_ms::now_ms();
    let key = format!("{prefix}s:{{{id}}}");
    let mut cmd = redis::cmd("HSET");
    cmd.arg(&key)
        .arg("v")
        .arg(4)
        .arg("c")
        .arg(now - 60_000)
        .arg("s")
        .arg(now - 60_000)
        .arg("i")
        .arg(now + 3_600_000)
        .arg("a")
        .arg(now + 86_400_000)
        .arg("d:cart")
        .arg(r#"["apple","pear"]"#)
        .arg("d:n")
        .arg("7");
    if let Some(user) = user {
        cmd.arg("u").arg(user);
    }
    cmd.query_async::<()>(conn).await.unwrap();
    redis::cmd("PEXPIREAT")
        .arg(&key)
        .arg(now + 3_600_000)
        .query_async::<()>(conn)
        .await
        .unwrap();
}

async fn exists(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<i64>(conn)
        .await
        .unwrap()
        == 1
}

#[tokio::test]
async fn a_session_of_the_first_layout_is_read_and_moved_by_its_first_write() {
    let url = redis_url();
    let prefix = "layout:";
    let store = RedisStore::connect(&url).unwrap().with_prefix(prefix);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let id = Id::generate().unwrap();
    legacy_session(&mut conn, prefix, &id, Some("alice")).await;

    let record = store
        .load(&id)
        .await
        .unwrap()
        .expect("the old session loads");
    assert_eq!(record.version, 4);
    assert_eq!(record.user.as_deref(), Some("alice"));
    assert_eq!(record.data["n"], serde_json::json!(7));
    assert_eq!(record.data["cart"], serde_json::json!(["apple", "pear"]));

    let now = OffsetDateTime::now_utc();
    let mut changes = Changes::new(now, now + Duration::from_secs(3600));
    changes.set("n", serde_json::json!(8));
    let saved = store.save(&id, &changes).await.unwrap();
    assert!(
        matches!(saved, Saved::Version { version: 5, .. }),
        "{saved:?}"
    );
    assert!(exists(&mut conn, &format!("{prefix}p:{{{id}}}")).await);
    assert!(
        !exists(&mut conn, &format!("{prefix}s:{{{id}}}")).await,
        "the hash is gone once the session moved"
    );
    let record = store
        .load(&id)
        .await
        .unwrap()
        .expect("the moved session loads");
    assert_eq!(record.data["n"], serde_json::json!(8));
    assert_eq!(record.data["cart"], serde_json::json!(["apple", "pear"]));
    assert_eq!(record.user.as_deref(), Some("alice"));
    assert_eq!(record.version, 5);
}

#[tokio::test]
async fn a_session_of_the_first_layout_can_be_refreshed_rotated_and_deleted() {
    let url = redis_url();
    let prefix = "layout-ops:";
    let store = RedisStore::connect(&url).unwrap().with_prefix(prefix);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();

    let touched = Id::generate().unwrap();
    legacy_session(&mut conn, prefix, &touched, None).await;
    let now = OffsetDateTime::now_utc();
    let touch = Touch {
        last_seen: now,
        idle_deadline: now + Duration::from_secs(7200),
    };
    assert!(store.touch(&touched, &touch).await.unwrap());
    let record = store.load(&touched).await.unwrap().unwrap();
    assert_eq!(
        unix_ms::to_ms(record.idle_deadline),
        unix_ms::to_ms(touch.idle_deadline)
    );
    assert_eq!(record.data["n"], serde_json::json!(7));

    let rotated = Id::generate().unwrap();
    legacy_session(&mut conn, prefix, &rotated, None).await;
    let new = Id::generate().unwrap();
    let changes = Changes::new(now, now + Duration::from_secs(3600));
    let saved = store.cycle_id(&rotated, &new, &changes).await.unwrap();
    assert!(matches!(saved, Saved::Version { .. }), "{saved:?}");
    assert!(store.load(&rotated).await.unwrap().is_none());
    assert_eq!(
        store.load(&new).await.unwrap().unwrap().data["n"],
        serde_json::json!(7)
    );

    let deleted = Id::generate().unwrap();
    legacy_session(&mut conn, prefix, &deleted, None).await;
    assert!(store.delete(&deleted).await.unwrap());
    assert!(store.load(&deleted).await.unwrap().is_none());
    assert!(!exists(&mut conn, &format!("{prefix}s:{{{deleted}}}")).await);
    // A save never brings it back.
    let mut changes = Changes::new(now, now + Duration::from_secs(3600));
    changes.set("n", serde_json::json!(1));
    assert!(matches!(
        store.save(&deleted, &changes).await.unwrap(),
        Saved::Gone
    ));
}

/// A new bound session and its user's index go out in one pipeline; when Redis has
/// not loaded the index script (a restart, `SCRIPT FLUSH`), the session is still
/// indexed.
#[tokio::test]
async fn a_session_created_after_a_script_flush_is_still_indexed() {
    let url = redis_url();
    let store = RedisStore::connect(&url)
        .unwrap()
        .with_prefix("layout-flush:");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let user = format!("flush-{}", Id::generate().unwrap());
    let now = OffsetDateTime::now_utc();
    for _ in 0..2 {
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        let mut record = tether_core::Record::new(now, &tether_core::Expiry::default());
        record.user = Some(user.clone());
        let id = Id::generate().unwrap();
        assert_eq!(
            store.create(&id, &record).await.unwrap(),
            tether_core::Created::Yes
        );
    }
    assert_eq!(store.user_sessions(&user).await.unwrap().len(), 2);
}
