//! `tether-services ENV_FILE`: the test run's shared services, started by the same
//! code the fault tests and the lab use (`tether_testkit::services`).
//!
//! It starts a Redis, a MariaDB and a PostgreSQL on free loopback ports, each with its files in a
//! fresh temporary directory, writes `ENV_FILE` (`export NAME=VALUE` lines for
//! `TETHER_TEST_REDIS_URL`, `TETHER_TEST_MYSQL_URL` and `TETHER_TEST_POSTGRES_URL`) once all
//! three answer, and runs
//! until SIGTERM or SIGINT, then stops them and removes their files. A service that
//! cannot start ends it with exit code 1 and the reason (the end of its log) on
//! stderr, after stopping what did start.

use std::path::{Path, PathBuf};

use tether_testkit::services::{MariaDb, Postgres, RedisServer};
use tokio::signal::unix::{Signal, SignalKind, signal};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Watched before anything starts: a SIGTERM during start-up still ends in a clean
    // stop (it is seen once all are up, or when one fails).
    let term = signal(SignalKind::terminate());
    let outcome = match (std::env::args().nth(1).map(PathBuf::from), term) {
        (Some(env_file), Ok(mut term)) => run(&env_file, &mut term).await,
        (None, _) => Err("usage: tether-services ENV_FILE".to_owned()),
        (_, Err(e)) => Err(format!("cannot watch SIGTERM: {e}")),
    };
    if let Err(message) = outcome {
        eprintln!("tether-services: {message}");
        std::process::exit(1);
    }
}

/// Starts the three, announces them, waits for the signal; what started is stopped and
/// removed on every way out (the servers stop when dropped).
async fn run(env_file: &Path, term: &mut Signal) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("tether-services-{}", std::process::id()));
    let outcome = serve(&dir, env_file, term).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn serve(dir: &Path, env_file: &Path, term: &mut Signal) -> Result<(), String> {
    let redis = RedisServer::start_with(&dir.join("redis"), false)
        .map_err(|e| format!("redis-server: {e}"))?;
    let mariadb = MariaDb::install_with(
        &dir.join("mariadb"),
        &[
            "--innodb-flush-log-at-trx-commit=2",
            "--max-connections=500",
            "--innodb-buffer-pool-size=64M",
        ],
    )
    .map_err(|e| format!("mariadb: {e}"))?;
    let postgres = Postgres::install_with(
        &dir.join("postgres"),
        &[
            "max_connections=300",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "shared_buffers=64MB",
            // Lets tests count the statements a request costs.
            "shared_preload_libraries=pg_stat_statements",
        ],
    )
    .map_err(|e| format!("postgres: {e}"))?;
    let env = format!(
        "export TETHER_TEST_REDIS_URL={}\nexport TETHER_TEST_MYSQL_URL={}\nexport TETHER_TEST_POSTGRES_URL={}\n",
        redis.url(),
        mariadb.url(),
        postgres.url()
    );
    let partial = env_file.with_extension("partial");
    std::fs::write(&partial, env)
        .and_then(|()| std::fs::rename(&partial, env_file))
        .map_err(|e| format!("writing {}: {e}", env_file.display()))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(postgres);
    drop(mariadb);
    drop(redis);
    Ok(())
}
