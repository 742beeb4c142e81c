//! Redis stops and starts again (with persistence) while requests run: 503s with a
//! clear body during the outage, never a 500 or a fresh session over real data; after
//! the restart, requests succeed without restarting the app and every session saved
//! before the outage is still there.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use tether::{Session, SessionError, SessionLayer};
use tether_redis::RedisStore;
use tether_testkit::http::{Reply, send};

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

async fn post_incr(app: &Router, cookie: Option<&str>) -> Reply {
    send(app, "POST", "/incr", cookie).await
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

    // 20 users, each with a counter at 3.
    let mut users = Vec::new();
    for _ in 0..20 {
        let cookie = post_incr(&app, None).await.cookie();
        for _ in 0..2 {
            assert_eq!(post_incr(&app, Some(&cookie)).await.status, StatusCode::OK);
        }
        users.push(cookie);
    }

    let (port, dir) = redis.stop();
    for cookie in &users {
        let reply = post_incr(&app, Some(cookie)).await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.body
        );
        assert!(
            reply.body.contains("session store is unavailable"),
            "{}",
            reply.body
        );
        assert_eq!(
            reply.set_cookie, None,
            "no fresh session may replace a real one"
        );
    }
    let reply = post_incr(&app, None).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);

    let _redis = Redis::start(port, &dir);
    // The connection comes back by itself; allow it a few attempts.
    let mut recovered = false;
    for _ in 0..50 {
        if post_incr(&app, Some(&users[0])).await.status == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "requests never succeeded again after Redis came back"
    );
    for (i, cookie) in users.iter().enumerate().skip(1) {
        let reply = post_incr(&app, Some(cookie)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.body, "4",
            "user {i} lost the session saved before the outage"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
