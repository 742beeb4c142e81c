//! MariaDB stops and starts again while requests run: 503s with a clear body during
//! the outage; afterwards requests succeed without an app restart and no session
//! saved before is lost. The cleanup task lives through the outage and deletes
//! expired rows after it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use sqlx::Connection as _;
use tether::{Session, SessionError, SessionLayer};
use tether_core::{Expiry, Id, Record, SessionStore};
use tether_mysql::MySqlStore;
use tether_testkit::http::{expect_outage, expect_recovery, sessions_with_counters};

fn program(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the tests through scripts/test, which installs mariadb-server"
        )
    })
}

/// A private MariaDB, so stopping it disturbs no other test.
struct MariaDb {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

impl MariaDb {
    fn install(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        let status = Command::new(program("TETHER_MARIADB_INSTALL_DB"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--user={user}"))
            .args(["--auth-root-authentication-method=socket", "--skip-test-db"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "mariadb-install-db failed");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut db = Self {
            child: None,
            dir: dir.to_owned(),
            port,
        };
        db.start();
        let sql = "CREATE DATABASE tether; CREATE USER 'tether'@'127.0.0.1' IDENTIFIED BY 'tether'; \
                   GRANT ALL PRIVILEGES ON *.* TO 'tether'@'127.0.0.1';";
        let status = Command::new(program("TETHER_MARIADB"))
            .arg("--no-defaults")
            .arg("-S")
            .arg(db.dir.join("sock"))
            .args(["-e", sql])
            .status()
            .unwrap();
        assert!(status.success(), "could not create the test user");
        db
    }

    fn start(&mut self) {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        let child = Command::new(program("TETHER_MARIADBD"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!("--socket={}", self.dir.join("sock").display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--pid-file={}", self.dir.join("pid").display()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=32M",
            ])
            .arg(format!("--user={user}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(self.dir.join("sock")).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "mariadbd did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: a clean shutdown that keeps every committed row.
            Command::new("kill")
                .arg(child.id().to_string())
                .status()
                .unwrap();
            child.wait().unwrap();
        }
    }

    fn url(&self) -> String {
        format!("mysql://tether:tether@127.0.0.1:{}/tether", self.port)
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn incr(session: Session) -> Result<String, SessionError> {
    let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

async fn row_exists(url: &str, id: &Id) -> bool {
    let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tether_sessions WHERE id = ?")
        .bind(id.as_bytes().as_slice())
        .fetch_one(&mut conn)
        .await
        .unwrap();
    n > 0
}

async fn expired_row(store: &MySqlStore) -> Id {
    let id = Id::generate().unwrap();
    let record = Record::new(
        time::OffsetDateTime::now_utc(),
        &Expiry::new(Duration::from_millis(1)),
    );
    store.create(&id, &record).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_database_restart_and_cleanup_keeps_running() {
    let dir = std::env::temp_dir().join(format!("tether-mysql-fault-{}", std::process::id()));
    let mut db = MariaDb::install(&dir);
    let url = db.url();
    let store = MySqlStore::connect(&url)
        .unwrap()
        .with_timeout(Duration::from_millis(800));
    store.migrate().await.unwrap();
    let cleanup = store.spawn_cleanup(Duration::from_millis(200));
    let app = Router::new()
        .route("/incr", post(incr))
        .layer(SessionLayer::new(store.clone()));

    let users = sessions_with_counters(&app, 20, 3).await;
    let before_outage = expired_row(&store).await;

    db.stop();
    expect_outage(&app, &users).await;
    // Let the cleanup task fail a few times.
    tokio::time::sleep(Duration::from_secs(1)).await;
    db.start();
    expect_recovery(&app, &users, 3, Duration::from_secs(30)).await;

    // The cleanup task is still alive: it deletes rows that expired before the outage
    // and after it.
    let after_outage = expired_row(&store).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while row_exists(&url, &before_outage).await || row_exists(&url, &after_outage).await {
        assert!(
            Instant::now() < deadline,
            "the cleanup task did not delete expired rows after the outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(cleanup);
}
