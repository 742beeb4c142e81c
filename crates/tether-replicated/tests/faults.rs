//! Replication under the faults and abuse an instance meets: sessions large enough to
//! overflow a batch, a snapshot larger than one request, a peer with another secret,
//! and a flood of anonymous sessions. Real HTTP between in-process stores.

use std::time::Duration;

use serde_json::json;
use tether_core::{Changes, Error, Expiry, Id, Record, SessionStore};
use tether_replicated::{CatchUp, ReplicatedStore};
use time::OffsetDateTime;

const SECRET: &[u8] = b"fault test secret, 16+ bytes";

/// Binds `n` loopback listeners (so every store can know its peers first).
async fn listeners(n: usize) -> Vec<(tokio::net::TcpListener, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/_tether", l.local_addr().unwrap());
        out.push((l, url));
    }
    out
}

fn serve(listener: tokio::net::TcpListener, store: &ReplicatedStore) {
    let app = axum::Router::new().nest("/_tether", store.router());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

fn record(now: OffsetDateTime) -> Record {
    Record::new(now, &Expiry::default())
}

async fn wait_for(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !ok().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_sessions_never_wedge_replication_and_logouts_still_arrive() {
    let mut ls = listeners(2).await;
    let (lb, url_b) = ls.pop().unwrap();
    let (la, url_a) = ls.pop().unwrap();
    let a = ReplicatedStore::builder(SECRET)
        .peers([url_b])
        .start()
        .unwrap();
    let b = ReplicatedStore::builder(SECRET)
        .peers([url_a.clone()])
        .start()
        .unwrap();
    serve(la, &a);
    serve(lb, &b);
    assert_eq!(a.catch_up().await, CatchUp::NoPeerUp);
    assert_eq!(b.catch_up().await, CatchUp::FromPeer(url_a));
    let now = OffsetDateTime::now_utc();

    // Twelve sessions of 200 KB each, queued together: 2.4 MB, more than a peer takes
    // in one request. They go in several batches.
    let big = "x".repeat(200 * 1024);
    let mut ids = Vec::new();
    for i in 0..12 {
        let id = Id::generate().unwrap();
        let mut r = record(now);
        r.data.insert("blob".into(), json!(format!("{i}{big}")));
        a.create(&id, &r).await.unwrap();
        ids.push(id);
    }
    // A logout afterwards still reaches the peer.
    let leaving = ids[0];
    assert!(a.delete(&leaving).await.unwrap());
    wait_for("the logout on the peer", async || {
        b.load(&leaving).await.unwrap().is_none() && b.load(&ids[11]).await.unwrap().is_some()
    })
    .await;
    assert_eq!(b.stats().sessions, 11);

    // One session larger than the limit is refused to the request that tried it.
    let mut huge = record(now);
    huge.data
        .insert("blob".into(), json!("y".repeat(1024 * 1024)));
    let err = a.create(&Id::generate().unwrap(), &huge).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    let mut changes = Changes::new(now, now + time::Duration::hours(1));
    changes.set("blob", json!("z".repeat(1024 * 1024)));
    let err = a.save(&ids[1], &changes).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert_eq!(a.stats().peers[0].state, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_larger_than_one_request_is_pulled_in_pages() {
    let mut ls = listeners(1).await;
    let (la, url_a) = ls.pop().unwrap();
    // B is not started yet: its port refuses connections.
    let closed = listeners(1).await.pop().unwrap().1;
    let a = ReplicatedStore::builder(SECRET)
        .peers([closed])
        .settle_timeout(Duration::ZERO)
        .start()
        .unwrap();
    serve(la, &a);
    assert_eq!(a.catch_up().await, CatchUp::NoPeerUp);
    let now = OffsetDateTime::now_utc();
    // 12,000 sessions of about 300 bytes: several MB of snapshot.
    for i in 0..12_000 {
        let mut r = record(now);
        r.data.insert("cart".into(), json!(format!("{i:0>200}")));
        a.create(&Id::generate().unwrap(), &r).await.unwrap();
    }
    let b = ReplicatedStore::builder(SECRET)
        .peers([url_a.clone()])
        .start()
        .unwrap();
    assert_eq!(b.catch_up().await, CatchUp::FromPeer(url_a));
    assert!(b.is_ready());
    assert_eq!(b.stats().sessions, 12_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_refuses_keeps_the_instance_not_ready() {
    let (la, url_a) = listeners(1).await.pop().unwrap();
    // A runs with another secret: it answers, with 401.
    let a = ReplicatedStore::builder(b"another secret of 16+ bytes")
        .start()
        .unwrap();
    serve(la, &a);
    let b = ReplicatedStore::builder(SECRET)
        .peers([url_a])
        .start()
        .unwrap();
    let CatchUp::Failed(reasons) = b.catch_up().await else {
        panic!("a refusing peer was taken for no peer");
    };
    assert!(reasons[0].contains("401"), "{reasons:?}");
    assert!(!b.is_ready());
    assert!(b.stats().catch_up_error.is_some_and(|e| e.contains("401")));
    // Its users get 503 (try again), never "no session".
    let err = b.load(&Id::generate().unwrap()).await.unwrap_err();
    assert!(err.is_transient());
    // Once it has something to send, B's sender shows the refusal instead of
    // retrying it blindly. (A new session needs no history: B creates it.)
    b.create(&Id::generate().unwrap(), &record(OffsetDateTime::now_utc()))
        .await
        .unwrap();
    wait_for("the refusal in the stats", async || {
        b.stats().peers[0].state == "refused"
    })
    .await;
    assert!(
        b.stats().peers[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("401"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_sessions_cannot_starve_logins() {
    let store = ReplicatedStore::builder(SECRET)
        .max_sessions(10)
        .start()
        .unwrap();
    let now = OffsetDateTime::now_utc();
    for _ in 0..100 {
        store
            .create(&Id::generate().unwrap(), &record(now))
            .await
            .unwrap();
    }
    assert_eq!(
        store.stats().anonymous,
        5,
        "anonymous sessions use at most half"
    );
    let mut user = record(now);
    user.user = Some("ada".into());
    for _ in 0..10 {
        store.create(&Id::generate().unwrap(), &user).await.unwrap();
    }
    let stats = store.stats();
    assert_eq!((stats.sessions, stats.anonymous), (10, 0));
}
