//! Moving live sessions from a tower-sessions store to a tether store: ids kept, so a
//! browser's cookie from before the switch finds its session after it.

use std::collections::HashMap;

use axum::Router;
use axum::routing::get;
use serde_json::json;
use tether::SessionStore as _;
use tether_testkit::http::send;
use tether_tower_sessions::{Imported, TowerSessions, v0_14};
use time::{Duration, OffsetDateTime};
use tower_sessions_014::session::{Id, Record};
use tower_sessions_014::{MemoryStore, Session, SessionManagerLayer, SessionStore as _};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_sessions_keep_their_ids_data_users_and_expiry() {
    let url = tether_testkit::services::redis_url();
    let old = MemoryStore::default();
    let expires = OffsetDateTime::now_utc() + Duration::hours(2);
    let user = format!("carol-{}", tether::Id::generate().unwrap());
    let mut ids = Vec::new();
    for n in 0..3 {
        let mut data = HashMap::new();
        data.insert("n".to_owned(), json!(n));
        if n == 0 {
            data.insert(
                "axum-login.data".to_owned(),
                json!({"user_id": user, "auth_hash": [9]}),
            );
        }
        let mut record = Record {
            id: Id::default(),
            data,
            expiry_date: expires,
        };
        old.create(&mut record).await.unwrap();
        ids.push(record.id);
    }
    let unknown = Id::default();

    let tether = TowerSessions::new(tether::redis::RedisStore::connect(&url).unwrap());
    let listed = ids.iter().copied().chain([unknown]);
    let report = v0_14::import(&old, &tether, listed).await.unwrap();
    let expected = Imported {
        copied: 3,
        missing: 1,
        already: 0,
    };
    assert_eq!(report, expected);
    let again = v0_14::import(&old, &tether, ids.iter().copied())
        .await
        .unwrap();
    assert_eq!(again.already, 3, "a second run copies nothing: {again:?}");

    // The record under the same id text, its deadline kept, its user bound.
    let id = tether::Id::parse(&ids[0].to_string()).unwrap();
    let key = tether.store().capabilities().key(&id);
    let record = tether.store().load(&key).await.unwrap().expect("imported");
    assert_eq!(record.data["n"], json!(0));
    assert_eq!(
        record.idle_deadline.unix_timestamp(),
        expires.unix_timestamp()
    );
    let listed = tether.store().user_sessions(&user).await.unwrap();
    assert_eq!(listed.len(), 1);

    // A browser's cookie from before the switch, served by the app after it.
    let app = Router::new()
        .route(
            "/n",
            get(|s: Session| async move { format!("{:?}", s.get::<u64>("n").await.unwrap()) }),
        )
        .layer(SessionManagerLayer::new(tether));
    for (n, id) in ids.iter().enumerate() {
        let reply = send(&app, "GET", "/n", Some(&format!("id={id}"))).await;
        assert_eq!(reply.body, format!("Some({n})"));
    }
}
