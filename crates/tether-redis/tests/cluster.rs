//! Against a real Redis Cluster of 3 masters with a replica each, on loopback: the
//! conformance suite passes, and after a master is killed and its replica takes over,
//! sessions written before are readable and new logins work. The same cluster over
//! TLS (`rediss://`, a CA made at run time) passes the suite too. The same with a
//! near cache: tracking on every master, writes in every slot range reach the cache,
//! and after the failover the cache is flushed and tracks the new master.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tether_core::{Changes, Expiry, Id, Record, Saved, SessionStore};
use tether_redis::{RedisStore, RedisTls};
use tether_testkit::harness::{free_port, wait_until};
use tether_testkit::services::TestCa;

fn program(var: &str, name: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests through scripts/test, which installs {name}")
    })
}

struct Node {
    port: u16,
    child: Child,
}

struct Cluster {
    nodes: Vec<Node>,
    dir: PathBuf,
    /// The CA of a cluster that speaks only TLS.
    ca: Option<TestCa>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// redis-cli, speaking TLS to a TLS cluster.
fn redis_cli(ca: Option<&TestCa>) -> Command {
    let mut command = Command::new(program("TETHER_REDIS_CLI", "redis-tools"));
    if let Some(ca) = ca {
        command.arg("--tls").arg("--cacert").arg(ca.ca_cert());
    }
    command
}

impl Cluster {
    fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = redis_cli(self.ca.as_ref())
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn start_node(dir: &Path, port: u16, ca: Option<&TestCa>) -> Node {
    let node_dir = dir.join(port.to_string());
    std::fs::create_dir_all(&node_dir).unwrap();
    let mut command = Command::new(program("TETHER_REDIS_SERVER", "redis-server"));
    command.args(["--bind", "127.0.0.1"]);
    match ca {
        None => command.args(["--port", &port.to_string()]),
        Some(ca) => command.args(ca.redis_server_args(port)).args([
            "--tls-cluster",
            "yes",
            "--tls-replication",
            "yes",
        ]),
    };
    let child = command
        .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
        .args([
            "--cluster-config-file",
            "nodes.conf",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&node_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start redis-server");
    Node { port, child }
}

/// A free port whose cluster bus port (10,000 above it, which Redis opens too) is in
/// range and free as well: the kernel hands out ports up to 60999, and a node on a
/// port above 55535 refuses to start.
fn cluster_port() -> u16 {
    for _ in 0..1000 {
        let port = free_port();
        if port <= 55_535 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port with a free cluster bus port in 1000 tries");
}

fn start_cluster(tls: bool) -> Cluster {
    let dir = std::env::temp_dir().join(format!(
        "tether-redis-cluster-{}-{}",
        std::process::id(),
        if tls { "tls" } else { "plain" }
    ));
    let ca = tls.then(|| TestCa::create(&dir.join("ca")).unwrap());
    let nodes: Vec<Node> = (0..6)
        .map(|_| start_node(&dir, cluster_port(), ca.as_ref()))
        .collect();
    let cluster = Cluster { nodes, dir, ca };
    for node in &cluster.nodes {
        wait_until("redis node start", Duration::from_secs(10), || {
            cluster.cli(node.port, &["PING"]).contains("PONG")
        });
    }
    let addrs: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let status = redis_cli(cluster.ca.as_ref())
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "redis-cli --cluster create failed");
    for node in &cluster.nodes {
        wait_until("cluster state ok", Duration::from_secs(20), || {
            cluster
                .cli(node.port, &["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
        });
    }
    cluster
}

fn urls(cluster: &Cluster) -> Vec<String> {
    let scheme = if cluster.ca.is_some() {
        "rediss"
    } else {
        "redis"
    };
    cluster
        .nodes
        .iter()
        .map(|n| format!("{scheme}://127.0.0.1:{}", n.port))
        .collect()
}

/// Waits until every replica has received everything its master acknowledged, so a
/// failover cannot lose the writes the test relies on.
fn wait_for_replication(cluster: &Cluster) {
    for node in &cluster.nodes {
        let info = cluster.cli(node.port, &["INFO", "replication"]);
        if !info.contains("role:master") {
            continue;
        }
        wait_until("replication catch-up", Duration::from_secs(20), || {
            let info = cluster.cli(node.port, &["INFO", "replication"]);
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.trim().strip_prefix(name))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            let master = field("master_repl_offset:");
            let replica = info
                .lines()
                .find(|l| l.starts_with("slave0:"))
                .and_then(|l| l.split(',').find_map(|kv| kv.strip_prefix("offset=")))
                .and_then(|v| v.parse::<u64>().ok());
            master.is_some() && master == replica
        });
    }
}

/// A cached store on the cluster, once tracking is on at every master.
async fn cached(store: RedisStore) -> tether_core::CachedStore<RedisStore> {
    let cached = store
        .with_near_cache(tether_core::NearCacheConfig::default())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cached.cache().is_live() {
        assert!(Instant::now() < deadline, "tracking never came on");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cached
}

/// Writes `n` into each session through `writer`, then waits (at most 10 s) until
/// `cached` reads it for every one.
async fn every_write_reaches(
    writer: &RedisStore,
    cached: &tether_core::CachedStore<RedisStore>,
    ids: &[Id],
    n: u64,
) {
    for id in ids {
        let _ = cached.load(id).await.unwrap();
        let now = time::OffsetDateTime::now_utc();
        let mut changes = Changes::new(now, now + time::Duration::hours(1));
        changes.updates.insert("n".into(), Some(n.into()));
        assert!(matches!(
            writer.save(id, &changes).await.unwrap(),
            Saved::Version { .. }
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for id in ids {
        loop {
            let record = cached.load(id).await.unwrap().unwrap();
            if record.data.get("n") == Some(&serde_json::json!(n)) {
                break;
            }
            assert!(Instant::now() < deadline, "a write never reached the cache");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn new_record(user: &str) -> Record {
    let mut record = Record::new(time::OffsetDateTime::now_utc(), &Expiry::default());
    record.user = Some(user.to_owned());
    record
        .data
        .insert("cart".into(), serde_json::json!([1, 2, 3]));
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_passes_the_suite_and_survives_a_master_failover() {
    let mut cluster = start_cluster(false);
    let store = RedisStore::connect_cluster(urls(&cluster)).unwrap();
    tether_testkit::Suite::new(store.clone())
        .with_unavailable(RedisStore::connect_cluster(["redis://127.0.0.1:1"]).unwrap())
        .run()
        .await;
    let near = cached(RedisStore::connect_cluster(urls(&cluster)).unwrap()).await;
    tether_testkit::Suite::new(cached(RedisStore::connect_cluster(urls(&cluster)).unwrap()).await)
        .run()
        .await;

    // Sessions spread over every slot range.
    let mut ids = Vec::new();
    for i in 0..60 {
        let id = Id::generate().unwrap();
        store
            .create(&id, &new_record(&format!("user{i}")))
            .await
            .unwrap();
        ids.push(id);
    }
    every_write_reaches(&store, &near, &ids, 1).await;
    wait_for_replication(&cluster);
    let flushes = near.cache().stats().flushes;

    // Kill a master outright and wait for its replica to be promoted.
    let victim = cluster
        .nodes
        .iter()
        .position(|n| {
            cluster
                .cli(n.port, &["INFO", "replication"])
                .contains("role:master")
        })
        .unwrap();
    let victim_port = cluster.nodes[victim].port;
    cluster.nodes[victim].child.kill().unwrap();
    cluster.nodes[victim].child.wait().unwrap();
    let survivor = cluster
        .nodes
        .iter()
        .find(|n| n.port != victim_port)
        .unwrap()
        .port;
    wait_until("failover", Duration::from_secs(30), || {
        cluster
            .cli(survivor, &["CLUSTER", "INFO"])
            .contains("cluster_state:ok")
            && cluster
                .cli(survivor, &["CLUSTER", "NODES"])
                .contains("fail")
    });

    // The client follows the new topology; allow it a few attempts.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut missing = ids.len();
    while Instant::now() < deadline {
        missing = 0;
        for id in &ids {
            match store.load(id).await {
                Ok(Some(record)) => assert_eq!(record.data["cart"], serde_json::json!([1, 2, 3])),
                _ => missing += 1,
            }
        }
        if missing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(missing, 0, "sessions unreadable after the failover");

    // The cache lost a master: flushed, then tracking the promoted replica.
    assert!(
        near.cache().stats().flushes > flushes,
        "{:?}",
        near.cache().stats()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !near.cache().is_live() {
        assert!(Instant::now() < deadline, "tracking never came back on");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    every_write_reaches(&store, &near, &ids, 2).await;

    // New logins work: create, bind, rotate.
    for i in 0..20 {
        let id = Id::generate().unwrap();
        store
            .create(&id, &new_record(&format!("after{i}")))
            .await
            .unwrap();
        let now = time::OffsetDateTime::now_utc();
        let changes = Changes::new(now, now + time::Duration::hours(1));
        let new_id = Id::generate().unwrap();
        let moved = store.cycle_id(&id, &new_id, &changes).await.unwrap();
        assert!(matches!(moved, Saved::Version { .. }));
        assert!(store.load(&new_id).await.unwrap().is_some());
        assert_eq!(
            store
                .user_sessions(&format!("after{i}"))
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_over_tls_passes_the_suite() {
    let cluster = start_cluster(true);
    let ca = cluster.ca.as_ref().expect("a TLS cluster");
    let tls = RedisTls::with_root_ca(std::fs::read(ca.ca_cert()).unwrap());
    let store = RedisStore::connect_cluster_tls(urls(&cluster), &tls).unwrap();
    tether_testkit::Suite::new(store.clone()).run().await;
    let near = cached(RedisStore::connect_cluster_tls(urls(&cluster), &tls).unwrap()).await;
    let ids: Vec<Id> = (0..20).map(|_| Id::generate().unwrap()).collect();
    for id in &ids {
        store.create(id, &new_record("tls")).await.unwrap();
    }
    every_write_reaches(&store, &near, &ids, 1).await;
}
