//! `tether-services ENV_FILE`: the test run's shared services, started by the same
//! code the fault tests and the lab use (`tether_testkit::services`).
//!
//! It starts a Redis and a MariaDB on free loopback ports, each with its files in a
//! fresh temporary directory, writes `ENV_FILE` (`export NAME=VALUE` lines for
//! `TETHER_TEST_REDIS_URL` and `TETHER_TEST_MYSQL_URL`) once both answer, and runs
//! until SIGTERM or SIGINT, then stops both and removes their files. A service that
//! cannot start ends it with exit code 1 and the reason (the end of its log) on stderr.

use std::path::PathBuf;

use tether_testkit::services::{MariaDb, RedisServer};

fn fail(message: &str) -> ! {
    eprintln!("tether-services: {message}");
    std::process::exit(1);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(env_file) = std::env::args().nth(1).map(PathBuf::from) else {
        fail("usage: tether-services ENV_FILE");
    };
    let dir = std::env::temp_dir().join(format!("tether-services-{}", std::process::id()));
    let redis = RedisServer::start_with(&dir.join("redis"), false)
        .unwrap_or_else(|e| fail(&format!("redis-server: {e}")));
    let mariadb = MariaDb::install_with(
        &dir.join("mariadb"),
        &[
            "--innodb-flush-log-at-trx-commit=2",
            "--max-connections=500",
            "--innodb-buffer-pool-size=64M",
        ],
    )
    .unwrap_or_else(|e| fail(&format!("mariadb: {e}")));
    let env = format!(
        "export TETHER_TEST_REDIS_URL={}\nexport TETHER_TEST_MYSQL_URL={}\n",
        redis.url(),
        mariadb.url()
    );
    let partial = env_file.with_extension("partial");
    std::fs::write(&partial, env)
        .and_then(|()| std::fs::rename(&partial, &env_file))
        .unwrap_or_else(|e| fail(&format!("writing {}: {e}", env_file.display())));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .unwrap_or_else(|e| fail(&format!("cannot watch SIGTERM: {e}")));
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(mariadb);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
