//! The database file and its `-wal` and `-shm` companions hold every session (and the
//! log holds recent writes in full): only this process's user may reach them.

use std::path::{Path, PathBuf};

use tether_core::private_file::{self, PrivateFileError};
use tether_core::{Error, Result};

/// The files SQLite keeps beside a database in WAL mode.
fn companions(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [db.to_owned(), with("-wal"), with("-shm")]
}

/// What [`prepare`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prepared {
    /// The file exists, private.
    Ready,
    /// Its directory does not exist (yet): SQLite creates the file on first use, and
    /// [`restrict`] makes it private then.
    Deferred,
}

/// Creates the database file `0600` when it is missing (SQLite gives its `-wal` and
/// `-shm` files the database's mode), then [`check`]s it.
pub(crate) fn prepare(db: &Path) -> Result<Prepared> {
    match private_file::create_new(db) {
        Ok(_) => {}
        Err(PrivateFileError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(PrivateFileError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(Prepared::Deferred);
        }
        Err(e) => {
            return Err(Error::config(format!(
                "cannot create the SQLite database: {e}"
            )));
        }
    }
    check(db).map(|()| Prepared::Ready)
}

/// Makes the files SQLite created (with the process's umask) private: for a database
/// whose directory appeared after the store was made.
#[cfg(unix)]
pub(crate) fn restrict(db: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    for file in companions(db) {
        if std::fs::metadata(&file).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
            let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
        }
    }
}

#[cfg(not(unix))]
pub(crate) fn restrict(_db: &Path) {}

/// Refuses a database (or its `-wal`, `-shm`) that another user owns or can reach.
pub(crate) fn check(db: &Path) -> Result<()> {
    for file in companions(db) {
        match private_file::check(&file) {
            Ok(()) => {}
            Err(PrivateFileError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::config(format!("SQLite session database {e}"))),
        }
    }
    Ok(())
}
