//! A private redis-server.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{Process, create_dir, program};

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
    tls: Option<super::TestCa>,
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
            tls: None,
        };
        redis.start_again()?;
        Ok(redis)
    }

    /// Starts one that speaks only TLS, with the server certificate of `ca` (clients
    /// are not asked for one). [`RedisServer::url`] is then `rediss://127.0.0.1:PORT`.
    ///
    /// # Errors
    /// As [`RedisServer::start`].
    pub fn start_tls(dir: &Path, ca: &super::TestCa) -> io::Result<Self> {
        create_dir(dir)?;
        let mut redis = Self {
            process: Process::default(),
            port: crate::harness::free_port(),
            dir: dir.to_owned(),
            durable: false,
            tls: Some(ca.clone()),
        };
        redis.start_again()?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:PORT` (`rediss://` for a TLS server).
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
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
        command.args(["--bind", "127.0.0.1"]);
        match &self.tls {
            None => command.args(["--port", &self.port.to_string()]),
            Some(ca) => command.args(ca.redis_server_args(self.port)),
        };
        command
            .args(["--save", ""])
            .args(if self.durable {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                ["--appendonly", "no", "--appendfsync", "no"]
            })
            .arg("--dir")
            .arg(&self.dir);
        // Redis answers `-LOADING` while it reads its append-only file, and logs that
        // it is ready once done; the log is kept across restarts, so count the lines.
        let readies = ready_lines(&log);
        self.process = Process::spawn(&mut command, "redis-server", &log)?;
        let port = self.port;
        self.process
            .wait_up("redis-server", Duration::from_secs(10), &log, || {
                ready_lines(&log) > readies
                    && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
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

/// How many times the log says the server was ready to take commands.
fn ready_lines(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |text| {
        text.matches("Ready to accept connections").count()
    })
}
