//! The near cache when its channel fails, on a Redis of the test's own (appendonly, so
//! a restart keeps the sessions): a killed tracking connection and a Redis restart
//! each flush the cache and send reads to Redis until tracking is on again, while
//! traffic runs. A write made while this instance was not tracking is never hidden by
//! a cached copy: after the last write, the cached instance reads it.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tether_core::{CachedStore, Changes, Expiry, Id, NearCacheConfig, Record, SessionStore};
use tether_redis::RedisStore;
use tether_testkit::harness::{Proc, free_port, private_dir, wait_until};

fn program(var: &str, name: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests through scripts/test, which installs {name}")
    })
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new(program("TETHER_REDIS_CLI", "redis-tools"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn redis(dir: &std::path::Path, port: u16) -> Proc {
    let child = Command::new(program("TETHER_REDIS_SERVER", "redis-server"))
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start redis-server");
    wait_until("redis up", Duration::from_secs(10), || {
        cli(port, &["PING"]).contains("PONG")
    });
    Proc(child)
}

fn set(n: u64) -> Changes {
    let now = time::OffsetDateTime::now_utc();
    let mut changes = Changes::new(now, now + time::Duration::hours(1));
    changes.updates.insert("n".into(), Some(n.into()));
    changes
}

async fn n_of(store: &impl SessionStore, id: &Id) -> tether_core::Result<Option<u64>> {
    Ok(store
        .load(id)
        .await?
        .map(|r| r.data["n"].as_u64().unwrap_or(0)))
}

/// Reads `id` through `store` until it stops; counts the reads that found it gone
/// (never right: nothing deletes it).
fn traffic(
    store: Arc<CachedStore<RedisStore>>,
    id: Id,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut gone = 0;
        while !stop.load(Ordering::SeqCst) {
            if let Ok(None) = n_of(&*store, &id).await {
                gone += 1;
            }
            tokio::task::yield_now().await;
        }
        gone
    })
}

/// After the writer's last write, the cached instance reads it within 5 s.
async fn converges(store: &CachedStore<RedisStore>, id: &Id, want: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = n_of(store, id).await;
        if matches!(got, Ok(Some(n)) if n == want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cached instance still reads {got:?}, not {want}: a write made while it was not tracking stayed hidden"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_tracking_connection_or_a_restart_flushes_and_bypasses_under_traffic() {
    let dir = private_dir("near-cache-faults");
    let port = free_port();
    let mut server = redis(&dir, port);
    let url = format!("redis://127.0.0.1:{port}");
    let a = Arc::new(
        RedisStore::connect(&url)
            .unwrap()
            .with_near_cache(NearCacheConfig::default())
            .unwrap(),
    );
    let b = RedisStore::connect(&url).unwrap();
    until("tracking on", || a.cache().is_live()).await;
    let id = Id::generate().unwrap();
    let record = Record::new(time::OffsetDateTime::now_utc(), &Expiry::default());
    b.create(&id, &record).await.unwrap();
    b.save(&id, &set(0)).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| traffic(a.clone(), id, stop.clone()))
        .collect();
    let n = AtomicU64::new(0);
    let write = async || {
        let next = n.fetch_add(1, Ordering::SeqCst) + 1;
        b.save(&id, &set(next)).await.map(|_| next)
    };

    // Killed tracking connections: each time, the next write lands while this
    // instance is not tracking.
    for round in 0..5 {
        until("the cache filled", || a.cache().stats().entries > 0).await;
        let flushes = a.cache().stats().flushes;
        let tracking: Vec<String> = cli(port, &["CLIENT", "LIST"])
            .lines()
            .filter(|line| {
                line.split_whitespace().any(|f| {
                    f.strip_prefix("flags=")
                        .is_some_and(|flags| flags.contains('t'))
                })
            })
            .filter_map(|line| {
                line.split_whitespace()
                    .next()?
                    .strip_prefix("id=")
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(tracking.len(), 1, "round {round}: one tracking connection");
        assert!(cli(port, &["CLIENT", "KILL", "ID", &tracking[0]]).contains('1'));
        let last = write().await.unwrap();
        until("the cache flushed", || a.cache().stats().flushes > flushes).await;
        converges(&a, &id, last).await;
        until("tracking back on", || a.cache().is_live()).await;
        converges(&a, &id, last).await;
    }

    // A restart: Redis is down (reads fail, never "no session"), then back with the
    // same data; the first write after it may come before tracking is back.
    let flushes = a.cache().stats().flushes;
    let _ = cli(port, &["SHUTDOWN"]);
    let _ = server.0.wait();
    until("the cache flushed", || a.cache().stats().flushes > flushes).await;
    assert!(!a.cache().is_live());
    assert!(
        n_of(&*a, &id).await.is_err(),
        "a read while Redis is down is an error"
    );
    server = redis(&dir, port);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let last = loop {
        match write().await {
            Ok(last) => break last,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "Redis never came back: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    converges(&a, &id, last).await;
    until("tracking back on", || a.cache().is_live()).await;
    converges(&a, &id, last).await;
    let last = write().await.unwrap();
    converges(&a, &id, last).await;

    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        assert_eq!(reader.await.unwrap(), 0, "a read found the session gone");
    }
    let stats = a.cache().stats();
    assert!(stats.hits > 0 && stats.bypassed > 0, "{stats:?}");
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}
