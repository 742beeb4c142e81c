//! A private PostgreSQL.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Process, create_dir, failed, log_file, log_tail};

/// A private PostgreSQL on 127.0.0.1 with database `tether`, owned by the superuser
/// `tether` (password `tether`, checked with SCRAM over TCP); its data directory is
/// removed when it is dropped.
///
/// Postgres refuses to run as root: when this process is root, the server and
/// `initdb` run as `TETHER_POSTGRES_USER` (default `postgres`, the user Debian's
/// package creates), through `setpriv`.
///
/// ```no_run
/// let dir = std::env::temp_dir().join("tether-doc-postgres");
/// let mut db = tether_testkit::services::Postgres::install(&dir)?;
/// let url = db.url();
/// db.restart()?; // every committed session is still there
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Postgres {
    process: Process,
    dir: PathBuf,
    port: u16,
    extra: Vec<String>,
}

/// The directory of the Postgres programs: `TETHER_POSTGRES_BIN`, else the newest
/// `/usr/lib/postgresql/VERSION/bin` (Debian keeps them off `PATH`), else none (`PATH`).
fn bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("TETHER_POSTGRES_BIN") {
        return Some(PathBuf::from(dir));
    }
    let versions = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    versions
        .filter_map(|e| {
            let e = e.ok()?;
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

/// `program` from [`bin_dir`], run as the Postgres user when this process is root.
fn command(program: &str) -> Command {
    let path = bin_dir().map_or_else(|| PathBuf::from(program), |dir| dir.join(program));
    if is_root() {
        let user = std::env::var("TETHER_POSTGRES_USER").unwrap_or_else(|_| "postgres".into());
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={user}"))
            .arg(format!("--regid={user}"))
            .arg("--init-groups")
            .arg(path);
        command
    } else {
        Command::new(path)
    }
}

fn is_root() -> bool {
    super::current_user() == "root"
}

/// Runs `command` to the end with its output appended to `log`.
fn run(mut command: Command, what: &str, log: &Path) -> io::Result<()> {
    let status = command
        .stdout(Stdio::from(log_file(log)?))
        .stderr(Stdio::from(log_file(log)?))
        .status()
        .map_err(|e| failed(&format!("cannot run {what}"), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(failed(what, format!("{status}{}", log_tail(log))))
    }
}

/// Whether the server says it takes sessions: its socket answers while it still
/// replays the write-ahead log ("the database system is starting up"), and the eighth
/// line of `postmaster.pid` turns `ready` only after that (what `pg_ctl -w` waits for).
fn ready(pid_file: &Path) -> bool {
    std::fs::read_to_string(pid_file)
        .is_ok_and(|text| text.lines().nth(7).is_some_and(|s| s.trim() == "ready"))
}

impl Postgres {
    /// Creates a data directory in `dir` (`initdb`), starts the server on a free port
    /// and creates the database.
    ///
    /// # Errors
    /// When a Postgres program cannot be run or fails, or the server does not start
    /// within 60 s (the error ends with its log's last lines).
    pub fn install(dir: &Path) -> io::Result<Self> {
        Self::install_with(dir, &[])
    }

    /// The same, with more server settings (`-c name=value` pairs; a test run's
    /// shared server takes more connections and skips `fsync`).
    ///
    /// # Errors
    /// As [`Postgres::install`].
    pub fn install_with(dir: &Path, settings: &[&str]) -> io::Result<Self> {
        create_dir(dir)?;
        let password = dir.join("password");
        std::fs::write(&password, "tether\n")?;
        if is_root() {
            let user = std::env::var("TETHER_POSTGRES_USER").unwrap_or_else(|_| "postgres".into());
            run(
                {
                    let mut chown = Command::new("chown");
                    chown.arg("-R").arg(&user).arg(dir);
                    chown
                },
                "chown",
                &dir.join("install.log"),
            )?;
        }
        let mut initdb = command("initdb");
        initdb
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "tether", "-E", "UTF8", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", password.display()));
        run(initdb, "initdb", &dir.join("install.log"))?;
        let mut db = Self {
            process: Process::default(),
            dir: dir.to_owned(),
            port: crate::harness::free_port(),
            extra: settings.iter().map(|&s| s.to_owned()).collect(),
        };
        db.start_again()?;
        let mut createdb = command("createdb");
        createdb.arg("-h").arg(&db.dir).args([
            "-p",
            &db.port.to_string(),
            "-U",
            "tether",
            "tether",
        ]);
        run(createdb, "createdb", &dir.join("install.log"))?;
        Ok(db)
    }

    /// `postgres://tether:tether@127.0.0.1:PORT/tether`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://tether:tether@127.0.0.1:{}/tether", self.port)
    }

    /// Starts it again on the same port and data after [`Postgres::stop`].
    ///
    /// # Errors
    /// As [`Postgres::install`].
    pub fn start_again(&mut self) -> io::Result<()> {
        let log = self.dir.join("postgres.log");
        let mut server = command("postgres");
        server
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()));
        for setting in &self.extra {
            server.args(["-c", setting]);
        }
        self.process = Process::spawn(&mut server, "postgres", &log)?;
        let (socket, port) = (self.dir.join(format!(".s.PGSQL.{}", self.port)), self.port);
        let pid_file = self.dir.join("data").join("postmaster.pid");
        self.process
            .wait_up("postgres", Duration::from_mins(1), &log, || {
                ready(&pid_file)
                    && socket.exists()
                    && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            })
    }

    /// Stops it with SIGINT (Postgres's "fast" shutdown: open connections are closed,
    /// every committed row is kept).
    ///
    /// # Errors
    /// When the signal cannot be sent.
    pub fn stop(&mut self) -> io::Result<()> {
        self.process.stop_with("INT")
    }

    /// Stops it with SIGQUIT (Postgres's "immediate" shutdown, as a crash: the next
    /// start replays the write-ahead log before it takes queries).
    ///
    /// # Errors
    /// When the signal cannot be sent.
    pub fn crash(&mut self) -> io::Result<()> {
        self.process.stop_with("QUIT")
    }

    /// [`Postgres::stop`] then [`Postgres::start_again`].
    ///
    /// # Errors
    /// As those two.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop()?;
        self.start_again()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The server goes first (a fast shutdown, so it leaves no shared memory behind;
        // killed if that fails), then its data.
        let _ = self.process.stop_with("INT");
        drop(std::mem::take(&mut self.process));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
