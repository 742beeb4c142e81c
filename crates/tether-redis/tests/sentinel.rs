//! Redis behind Sentinel on loopback: a master and a replica that want a password, and
//! three sentinels. The
//! store finds the master through the sentinels and keeps the contract; when the
//! master is killed under traffic, requests fail (errors, never "no session") until a
//! sentinel promotes the replica, then succeed again without a restart, and every
//! session the replica had received survives. Acknowledged writes the replica had not
//! received yet are Redis's asynchronous-replication window: counted and reported.
//! A near cache on the master tracks it, is emptied by the failover and tracks the
//! promoted replica.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tether_core::{Expiry, Id, Record, SessionStore};
use tether_redis::RedisStore;
use tether_testkit::harness::{Proc, free_port, wait_until};

fn program(var: &str, name: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests through scripts/test, which installs {name}")
    })
}

/// The master's and the replica's password.
const PASSWORD: &str = "sentinel-test-password";

/// redis-cli to a data node (with the password).
fn cli(port: u16, args: &[&str]) -> String {
    cli_as(port, true, args)
}

fn cli_as(port: u16, auth: bool, args: &[&str]) -> String {
    let mut command = Command::new(program("TETHER_REDIS_CLI", "redis-tools"));
    if auth {
        command.env("REDISCLI_AUTH", PASSWORD);
    }
    let out = command
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn redis(dir: &Path, port: u16, extra: &[&str]) -> Proc {
    let node = dir.join(port.to_string());
    std::fs::create_dir_all(&node).unwrap();
    let child = Command::new(program("TETHER_REDIS_SERVER", "redis-server"))
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--requirepass", PASSWORD, "--masterauth", PASSWORD])
        .arg("--dir")
        .arg(&node)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start redis-server");
    wait_until("redis up", Duration::from_secs(10), || {
        cli(port, &["PING"]).contains("PONG")
    });
    Proc(child)
}

fn sentinel(dir: &Path, port: u16, master: u16) -> Proc {
    let conf = dir.join(format!("sentinel-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor sessions 127.0.0.1 {master} 2\n\
             sentinel auth-pass sessions {PASSWORD}\n\
             sentinel down-after-milliseconds sessions 1000\n\
             sentinel failover-timeout sessions 10000\n\
             sentinel parallel-syncs sessions 1\n",
            dir.display()
        ),
    )
    .unwrap();
    let child = Command::new(program("TETHER_REDIS_SERVER", "redis-server"))
        .arg(&conf)
        .arg("--sentinel")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start redis-server --sentinel");
    wait_until("sentinel up", Duration::from_secs(10), || {
        cli_as(port, false, &["PING"]).contains("PONG")
    });
    Proc(child)
}

fn record(n: u64) -> Record {
    let mut record = Record::new(time::OffsetDateTime::now_utc(), &Expiry::default());
    record.data.insert("n".into(), serde_json::json!(n));
    record
}

/// A master, its replica (in sync), and three sentinels watching them.
struct Topology {
    master: Proc,
    master_port: u16,
    /// The replica and the sentinels, running until the topology is dropped.
    _running: (Proc, Vec<Proc>),
    urls: Vec<String>,
}

impl Topology {
    fn start(dir: &Path) -> Self {
        let (master_port, replica_port) = (free_port(), free_port());
        let master = redis(dir, master_port, &[]);
        let replica = redis(
            dir,
            replica_port,
            &["--replicaof", "127.0.0.1", &master_port.to_string()],
        );
        wait_until("replica in sync", Duration::from_secs(20), || {
            cli(master_port, &["INFO", "replication"]).contains("connected_slaves:1")
        });
        let sentinel_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let sentinels: Vec<Proc> = sentinel_ports
            .iter()
            .map(|p| sentinel(dir, *p, master_port))
            .collect();
        let urls: Vec<String> = sentinel_ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect();
        Self {
            master,
            master_port,
            _running: (replica, sentinels),
            urls,
        }
    }
}

/// After the failover: the near cache was emptied, tracks the promoted replica, and
/// writes by another instance reach it again.
async fn near_cache_follows_the_failover(
    near: &tether_core::CachedStore<RedisStore>,
    store: &RedisStore,
    flushes: u64,
) {
    // The near cache lost its master: emptied, then tracking the promoted replica.
    assert!(
        near.cache().stats().flushes > flushes,
        "{:?}",
        near.cache().stats()
    );
    tether_testkit::near_cache::until_live(near).await;
    // Its data connection learns of the failover on its first call, as any does.
    let deadline = Instant::now() + Duration::from_secs(20);
    while near.load(&Id::generate().unwrap()).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the cached store never reached the new master"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tether_testkit::near_cache::other_writers_reach(near, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_master_found_through_sentinels_and_again_after_a_failover() {
    let dir = std::env::temp_dir().join(format!("tether-redis-sentinel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut topology = Topology::start(&dir);
    let (master_port, urls) = (topology.master_port, topology.urls.clone());
    // Without the master's password: an error, never "no session".
    let refused = RedisStore::connect_sentinel(urls.clone(), "sessions").unwrap();
    assert!(refused.load(&Id::generate().unwrap()).await.is_err());
    let master_url = format!("redis://:{PASSWORD}@master/0");
    let store =
        RedisStore::connect_sentinel_with(urls.clone(), "sessions", Some(&master_url)).unwrap();
    tether_testkit::Suite::new(store.clone()).run().await;
    // A near cache on the master the sentinels name (with its password): writes by
    // another instance reach it.
    let near = RedisStore::connect_sentinel_with(urls.clone(), "sessions", Some(&master_url))
        .unwrap()
        .with_near_cache(tether_core::NearCacheConfig::default())
        .unwrap();
    tether_testkit::near_cache::other_writers_reach(&near, &store).await;
    let flushes = near.cache().stats().flushes;

    // Sessions the replica has received (WAIT for it) before anything fails.
    let mut safe = Vec::new();
    for n in 0..50 {
        let id = Id::generate().unwrap();
        store.create(&id, &record(n)).await.unwrap();
        safe.push(id);
    }
    assert!(
        cli(master_port, &["WAIT", "1", "5000"]).trim() == "1",
        "the replica did not acknowledge"
    );

    // Traffic while the master dies.
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let traffic = {
        let (store, stop, failed) = (store.clone(), stop.clone(), failed.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut n = 1000;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let id = Id::generate().unwrap();
                if store.create(&id, &record(n)).await.is_ok() {
                    acknowledged.push(id);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    topology.master.0.kill().unwrap();
    topology.master.0.wait().unwrap();
    let killed = Instant::now();

    // Requests recover once a sentinel has promoted the replica.
    let deadline = killed + Duration::from_mins(1);
    let mut recovered = false;
    while Instant::now() < deadline {
        let id = Id::generate().unwrap();
        if store.create(&id, &record(7)).await.is_ok()
            && store.load(&id).await.is_ok_and(|r| r.is_some())
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "no request succeeded within 60 s of the master's death"
    );
    let took = killed.elapsed();
    stop.store(true, Ordering::SeqCst);
    let acknowledged = traffic.await.unwrap();

    for id in &safe {
        assert!(
            store.load(id).await.unwrap().is_some(),
            "a session the replica had received was lost in the failover"
        );
    }
    near_cache_follows_the_failover(&near, &store, flushes).await;
    let mut lost = 0;
    for id in &acknowledged {
        if store.load(id).await.unwrap().is_none() {
            lost += 1;
        }
    }
    eprintln!(
        "sentinel failover: recovered {took:.1?} after the kill; {} requests failed meanwhile; \
         {lost} of {} acknowledged writes under traffic lost (Redis's asynchronous-replication window)",
        failed.load(Ordering::SeqCst),
        acknowledged.len()
    );
    assert!(
        failed.load(Ordering::SeqCst) > 0,
        "the master's death went unnoticed: the test did not exercise a failover"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
