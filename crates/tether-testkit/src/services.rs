//! Private Redis and MariaDB servers on loopback, for tests and the lab that stop and
//! restart a store while requests run. Each keeps its data in a directory of its own,
//! so a restart keeps every committed session.
//!
//! The programs come from `TETHER_REDIS_SERVER`, `TETHER_MARIADBD`,
//! `TETHER_MARIADB_INSTALL_DB` and `TETHER_MARIADB` (set by `scripts/test`), or else
//! from `PATH`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user this process runs as (`id -un`: `$USER` can name another one, such as
/// the user a root shell was opened from), which MariaDB runs as.
fn current_user() -> String {
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

fn failed(what: &str, detail: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {detail}"))
}

/// `log`, opened for appending (created if missing).
fn log_file(log: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| failed(&format!("cannot open {}", log.display()), e))
}

/// Creates `dir` and its parents, naming it in the error.
fn create_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| failed(&format!("cannot create {}", dir.display()), e))
}

/// The last lines of `log`, to end an error with.
fn log_tail(log: &Path) -> String {
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
struct Process(Option<Child>);

impl Process {
    /// Starts `command` with its output appended to `log`.
    fn spawn(command: &mut Command, what: &str, log: &Path) -> io::Result<Self> {
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
    fn wait_up(
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
    fn stop(&mut self) -> io::Result<()> {
        let Some(mut child) = self.0.take() else {
            return Ok(());
        };
        let status = Command::new("kill").arg(child.id().to_string()).status()?;
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

/// A redis-server with an append-only file (fsync on every write), on 127.0.0.1; its
/// directory (files and log) is removed when it is dropped.
///
/// ```no_run
/// let dir = std::env::temp_dir().join("tether-doc-redis");
/// let mut redis = tether_testkit::services::RedisServer::start(&dir)?;
/// let url = redis.url();
/// redis.restart()?; // every session written before is still there
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct RedisServer {
    process: Process,
    port: u16,
    dir: PathBuf,
    durable: bool,
}

impl RedisServer {
    /// Starts one on a free port, with its files and its log (`redis.log`) in `dir`
    /// (created if missing).
    ///
    /// # Errors
    /// When redis-server cannot be run, or exits or does not listen within 10 s (the
    /// error ends with its log's last lines).
    pub fn start(dir: &Path) -> io::Result<Self> {
        Self::start_with(dir, true)
    }

    /// Starts one that keeps its data in memory only (`durable` false): faster, for a
    /// test run's shared server, which is never restarted.
    ///
    /// # Errors
    /// As [`RedisServer::start`].
    pub fn start_with(dir: &Path, durable: bool) -> io::Result<Self> {
        create_dir(dir)?;
        let port = crate::harness::free_port();
        let mut redis = Self {
            process: Process::default(),
            port,
            dir: dir.to_owned(),
            durable,
        };
        redis.start_again()?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts it again on the same port and files after [`RedisServer::stop`].
    ///
    /// # Errors
    /// As [`RedisServer::start`].
    pub fn start_again(&mut self) -> io::Result<()> {
        let log = self.dir.join("redis.log");
        let mut command = Command::new(program("TETHER_REDIS_SERVER", "redis-server"));
        command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", ""])
            .args(if self.durable {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                ["--appendonly", "no", "--appendfsync", "no"]
            })
            .arg("--dir")
            .arg(&self.dir);
        self.process = Process::spawn(&mut command, "redis-server", &log)?;
        let port = self.port;
        self.process
            .wait_up("redis-server", Duration::from_secs(10), &log, || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            })
    }

    /// Stops it with SIGTERM: Redis flushes its append-only file and exits.
    ///
    /// # Errors
    /// When the signal cannot be sent.
    pub fn stop(&mut self) -> io::Result<()> {
        self.process.stop()
    }

    /// [`RedisServer::stop`] then [`RedisServer::start_again`].
    ///
    /// # Errors
    /// As those two.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop()?;
        self.start_again()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // The server goes (killed) first, then its files.
        drop(std::mem::take(&mut self.process));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private MariaDB on 127.0.0.1 with database `tether`, user `tether`, password
/// `tether`; its data directory is removed when it is dropped.
///
/// ```no_run
/// let dir = std::env::temp_dir().join("tether-doc-mariadb");
/// let mut db = tether_testkit::services::MariaDb::install(&dir)?;
/// let url = db.url();
/// db.restart()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct MariaDb {
    process: Process,
    dir: PathBuf,
    port: u16,
    extra: Vec<String>,
}

impl MariaDb {
    /// Creates a data directory in `dir`, starts the server on a free port and creates
    /// the database and user.
    ///
    /// # Errors
    /// When a MariaDB program cannot be run or fails, or the server does not start
    /// within 60 s.
    pub fn install(dir: &Path) -> io::Result<Self> {
        Self::install_with(dir, &[])
    }

    /// The same, with more `mariadbd` options (a test run's shared server takes more
    /// connections and flushes its log once a second).
    ///
    /// # Errors
    /// As [`MariaDb::install`].
    pub fn install_with(dir: &Path, extra: &[&str]) -> io::Result<Self> {
        create_dir(&dir.join("data"))?;
        let user = current_user();
        let log = dir.join("install.log");
        let status = Command::new(program("TETHER_MARIADB_INSTALL_DB", "mariadb-install-db"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--user={user}"))
            .args(["--auth-root-authentication-method=socket", "--skip-test-db"])
            .stdout(Stdio::from(log_file(&log)?))
            .stderr(Stdio::from(log_file(&log)?))
            .status()
            .map_err(|e| failed("cannot run mariadb-install-db", e))?;
        if !status.success() {
            return Err(failed(
                "mariadb-install-db",
                format!("{status}{}", log_tail(&log)),
            ));
        }
        let mut db = Self {
            process: Process::default(),
            dir: dir.to_owned(),
            port: crate::harness::free_port(),
            extra: extra.iter().map(|&e| e.to_owned()).collect(),
        };
        db.start_again()?;
        let sql = "CREATE DATABASE tether; CREATE USER 'tether'@'127.0.0.1' IDENTIFIED BY 'tether'; \
                   GRANT ALL PRIVILEGES ON *.* TO 'tether'@'127.0.0.1';";
        let status = Command::new(program("TETHER_MARIADB", "mariadb"))
            .arg("--no-defaults")
            .arg("-S")
            .arg(db.dir.join("sock"))
            .args(["-e", sql])
            .status()
            .map_err(|e| failed("cannot run the mariadb client", e))?;
        if !status.success() {
            return Err(failed("creating the tether user", status));
        }
        Ok(db)
    }

    /// `mysql://tether:tether@127.0.0.1:PORT/tether`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("mysql://tether:tether@127.0.0.1:{}/tether", self.port)
    }

    /// Starts it again on the same port and data after [`MariaDb::stop`].
    ///
    /// # Errors
    /// As [`MariaDb::install`].
    pub fn start_again(&mut self) -> io::Result<()> {
        let user = current_user();
        let log = self.dir.join("mariadbd.log");
        let mut command = Command::new(program("TETHER_MARIADBD", "mariadbd"));
        command
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
            .args(&self.extra);
        self.process = Process::spawn(&mut command, "mariadbd", &log)?;
        let (sock, port) = (self.dir.join("sock"), self.port);
        self.process
            .wait_up("mariadbd", Duration::from_secs(60), &log, || {
                std::os::unix::net::UnixStream::connect(&sock).is_ok()
                    && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            })
    }

    /// Stops it with SIGTERM: a clean shutdown that keeps every committed row.
    ///
    /// # Errors
    /// When the signal cannot be sent.
    pub fn stop(&mut self) -> io::Result<()> {
        self.process.stop()
    }

    /// [`MariaDb::stop`] then [`MariaDb::start_again`].
    ///
    /// # Errors
    /// As those two.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop()?;
        self.start_again()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // The server goes (killed) first, then its data.
        drop(std::mem::take(&mut self.process));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
