//! Redis stops and starts again (with persistence) while requests run: 503s with a
//! clear body during the outage, never a 500 or a fresh session over real data; after
//! the restart, requests succeed without restarting the app and every session saved
//! before the outage is still there.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use tether::{Session, SessionError, SessionLayer};
use tether_redis::RedisStore;
use tether_testkit::http::{expect_outage, expect_recovery, sessions_with_counters};

fn redis_server() -> String {
    std::env::var("TETHER_REDIS_SERVER").expect(
        "TETHER_REDIS_SERVER is not set: run the tests through scripts/test, which installs redis-server",
    )
}

struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start(port: u16, dir: &PathBuf) -> Self {
        let child = Command::new(redis_server())
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start redis-server");
        let redis = Self {
            child,
            port,
            dir: dir.clone(),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {port}");
    }

    fn stop(mut self) -> (u16, PathBuf) {
        // SIGTERM: Redis flushes its append-only file and exits.
        Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        self.child.wait().unwrap();
        (self.port, self.dir.clone())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn incr(session: Session) -> Result<String, SessionError> {
    let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_redis_restart_and_the_app_recovers_by_itself() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir =
        std::env::temp_dir().join(format!("tether-redis-fault-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let redis = Redis::start(port, &dir);

    let store = RedisStore::connect(&format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let app = Router::new()
        .route("/incr", post(incr))
        .layer(SessionLayer::new(store));

    // 20 sessions, each with a counter at 3.
    let users = sessions_with_counters(&app, 20, 3).await;
    let (port, dir) = redis.stop();
    expect_outage(&app, &users).await;
    let _redis = Redis::start(port, &dir);
    // The connection comes back by itself.
    expect_recovery(&app, &users, 3, Duration::from_secs(5)).await;
    std::fs::remove_dir_all(&dir).ok();
}
