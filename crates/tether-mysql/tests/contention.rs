//! Lock mode under heavy contention: InnoDB picks deadlock victims
//! among the waiters' and the holder's single-row statements; the store retries them,
//! so no request sees the server's deadlock as an outage.

use std::time::Duration;

use serde_json::json;
use tether_core::{Changes, Expiry, Id, LockOptions, Record, SessionStore as _};
use tether_mysql::MySqlStore;
use time::OffsetDateTime;

use tether_testkit::services::mysql_url;

/// One session's worth of locked increments: `count` of them race for the lock.
async fn increments(store: MySqlStore, count: u64) -> Vec<String> {
    let expiry = Expiry::new(Duration::from_mins(10));
    let mut record = Record::new(OffsetDateTime::now_utc(), &expiry);
    record.data.insert("n".into(), json!(0));
    let id = Id::generate().unwrap();
    store.create(&id, &record).await.unwrap();
    let options = LockOptions {
        wait: Duration::from_mins(2),
        ttl: Duration::from_mins(1),
    };
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let token = store.lock(&id, &options).await?;
                let n = store
                    .load(&id)
                    .await?
                    .and_then(|r| r.data.get("n").and_then(serde_json::Value::as_u64))
                    .unwrap_or(0);
                let now = OffsetDateTime::now_utc();
                let mut changes = Changes::new(now, expiry.idle_deadline(now, None));
                changes.set("n", json!(n + 1));
                store.save(&id, &changes).await?;
                store.unlock(&id, &token).await
            })
        })
        .collect();
    let mut failures = Vec::new();
    for task in tasks {
        if let Err(e) = task.await.unwrap() {
            failures.push(e.to_string());
        }
    }
    if failures.is_empty() {
        let n = store.load(&id).await.unwrap().unwrap().data["n"].clone();
        assert_eq!(n, json!(count), "locked increments were lost");
    }
    failures
}

/// Eight sessions at once, fifty requests racing on each: the lock rows share the
/// index's gaps, as a busy app's do.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn locked_increments_racing_on_eight_sessions_all_succeed() {
    let store = MySqlStore::connect(&mysql_url()).unwrap();
    store.migrate().await.unwrap();
    let sessions: Vec<_> = (0..8)
        .map(|_| tokio::spawn(increments(store.clone(), 50)))
        .collect();
    let mut failures = Vec::new();
    for session in sessions {
        failures.extend(session.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} of 400 locked increments failed, first: {:?}",
        failures.len(),
        failures.first()
    );
}
