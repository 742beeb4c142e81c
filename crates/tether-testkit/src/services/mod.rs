//! Private Redis, MariaDB and Postgres servers on loopback, for tests and the lab that stop and
//! restart a store while requests run. Each keeps its data in a directory of its own,
//! so a restart keeps every committed session.
//!
//! The programs come from `TETHER_REDIS_SERVER`, `TETHER_MARIADBD`,
//! `TETHER_MARIADB_INSTALL_DB`, `TETHER_MARIADB` and `TETHER_POSTGRES_BIN` (a directory;
//! set by `scripts/test`), or else from `PATH` (Postgres: Debian's
//! `/usr/lib/postgresql/VERSION/bin`, the newest).

mod mariadb;
mod monitor;
mod postgres;
mod redis;
mod tls;

use std::io;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub use mariadb::MariaDb;
pub use monitor::RedisMonitor;
pub use postgres::Postgres;
pub use redis::RedisServer;
pub use tls::TestCa;

/// The URL of the shared Redis that `scripts/test` (or `scripts/services.sh`) started:
/// `TETHER_TEST_REDIS_URL`. Panics when it is not set, naming what starts it: a test
/// that needs the server fails without it, it never skips.
///
/// ```standalone_crate
/// # // SAFETY: a standalone doc test runs alone in its own process.
/// # unsafe { std::env::set_var("TETHER_TEST_REDIS_URL", "redis://127.0.0.1:6379") };
/// assert_eq!(tether_testkit::services::redis_url(), "redis://127.0.0.1:6379");
/// ```
pub fn redis_url() -> String {
    shared_url("TETHER_TEST_REDIS_URL", "redis-server")
}

/// The URL of the shared MariaDB (`TETHER_TEST_MYSQL_URL`), as [`redis_url`].
pub fn mysql_url() -> String {
    shared_url("TETHER_TEST_MYSQL_URL", "mariadbd")
}

/// The URL of the shared PostgreSQL (`TETHER_TEST_POSTGRES_URL`), as [`redis_url`].
pub fn postgres_url() -> String {
    shared_url("TETHER_TEST_POSTGRES_URL", "postgres")
}

fn shared_url(var: &str, program: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the tests through scripts/test, or source \
             scripts/services.sh and call start_services first; either starts {program}"
        )
    })
}

/// The user this process runs as (`id -un`: `$USER` can name another one, such as
/// the user a root shell was opened from), which MariaDB runs as.
pub(crate) fn current_user() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into())
}

/// The program named by environment variable `var`, or `fallback` from `PATH`.
#[must_use]
pub fn program(var: &str, fallback: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| fallback.to_owned())
}

pub(crate) fn failed(what: &str, detail: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {detail}"))
}

/// `log`, opened for appending (created if missing).
pub(crate) fn log_file(log: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| failed(&format!("cannot open {}", log.display()), e))
}

/// Creates `dir` and its parents, naming it in the error.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| failed(&format!("cannot create {}", dir.display()), e))
}

/// The last lines of `log`, to end an error with.
pub(crate) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return format!("; it wrote nothing to {}", log.display());
    }
    format!(
        "; the end of {}:\n{}",
        log.display(),
        lines[lines.len().saturating_sub(20)..].join("\n")
    )
}

/// A server process: stopped cleanly on request, killed when dropped.
#[derive(Debug, Default)]
pub(crate) struct Process(Option<Child>);

impl Process {
    /// Starts `command` with its output appended to `log`.
    pub(crate) fn spawn(command: &mut Command, what: &str, log: &Path) -> io::Result<Self> {
        let out = log_file(log)?;
        let child = command
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| failed(&format!("cannot run {what}"), e))?;
        Ok(Self(Some(child)))
    }

    /// Polls `up` every 50 ms until it holds. Fails as soon as the process exits, or
    /// after `limit`, with the end of its `log` in the error.
    pub(crate) fn wait_up(
        &mut self,
        what: &str,
        limit: Duration,
        log: &Path,
        mut up: impl FnMut() -> bool,
    ) -> io::Result<()> {
        let start = Instant::now();
        while !up() {
            let problem = match self.0.as_mut().map(Child::try_wait).transpose()? {
                Some(Some(status)) => format!("exited ({status}) before it was up"),
                _ if start.elapsed() > limit => format!("not up within {limit:?}"),
                _ => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            return Err(failed(what, format!("{problem}{}", log_tail(log))));
        }
        Ok(())
    }

    /// Sends SIGTERM (a clean shutdown) and waits for the process to end.
    pub(crate) fn stop(&mut self) -> io::Result<()> {
        self.stop_with("TERM")
    }

    /// Sends `signal` (a name: `TERM`, `INT`) and waits for the process to end.
    pub(crate) fn stop_with(&mut self, signal: &str) -> io::Result<()> {
        let Some(mut child) = self.0.take() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()?;
        if !status.success() {
            return Err(failed("kill", status));
        }
        child.wait().map(drop)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
