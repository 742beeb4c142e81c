//! A private MariaDB.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Process, create_dir, current_user, failed, log_file, log_tail, program};

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
            .wait_up("mariadbd", Duration::from_mins(1), &log, || {
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
