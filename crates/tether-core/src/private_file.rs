//! Files that hold secrets or session data: read only when no one else can, written
//! only where nothing was before.
//!
//! Key files (the cookie store's key ring, the JWT store's signing keys) and session
//! databases are credentials: whoever reads one can log in as every user. So a file is
//! refused when its group or others have any access, or when another user owns it, with
//! an error that names the file and the `chmod` that fixes it (as PostgreSQL does for
//! its TLS key). New files are created `0600`, exclusively: never through a symlink or
//! over a file someone else created first.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[cfg(unix)]
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};

/// Why a private file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivateFileError {
    /// The file could not be read, created or inspected.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file's group or other users have access to it.
    #[error(
        "{path} is open to other users (mode {mode:04o}); it holds secrets or session data: run `chmod 600 {path}`"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file belongs to another user (not root), who could change or read it at will.
    #[error(
        "{path} belongs to another user (uid {owner}); it holds secrets or session data: give this process a file of its own (`chown`)"
    )]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
}

impl PrivateFileError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Checks that no one but the file's owner can reach the file at `path`, and that the
/// owner is this process's user or root (a secret mounted by the system). Symlinks are
/// followed: a mounted secret is often one. A missing file is an I/O error
/// ([`std::io::ErrorKind::NotFound`]).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::os::unix::fs::PermissionsExt as _;
/// let dir = std::env::temp_dir().join(format!("tether-doc-private-{}", std::process::id()));
/// # use std::os::unix::fs::DirBuilderExt as _;
/// std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?; // private
/// let path = dir.join("keys");
/// tether_core::private_file::create(&path, b"secret\n")?;
/// tether_core::private_file::check(&path)?;
/// std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
/// let refused = tether_core::private_file::check(&path).unwrap_err();
/// assert!(refused.to_string().contains("chmod 600"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
pub fn check(path: &Path) -> Result<(), PrivateFileError> {
    let meta = std::fs::metadata(path).map_err(|e| PrivateFileError::io(path, e))?;
    check_metadata(path, &meta)
}

fn check_metadata(path: &Path, meta: &std::fs::Metadata) -> Result<(), PrivateFileError> {
    #[cfg(unix)]
    {
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(PrivateFileError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me && meta.uid() != 0 {
            return Err(PrivateFileError::Owner {
                path: path.to_owned(),
                owner: meta.uid(),
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (path, meta);
    Ok(())
}

/// Reads a private file as text, checked as [`check`] says on the file it opened (no
/// window between the check and the read).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("tether-doc-read-{}", std::process::id()));
/// # use std::os::unix::fs::DirBuilderExt as _;
/// std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?; // private
/// let path = dir.join("keys");
/// tether_core::private_file::create(&path, b"k1\n")?;
/// assert_eq!(tether_core::private_file::read_to_string(&path)?, "k1\n");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
pub fn read_to_string(path: &Path) -> Result<String, PrivateFileError> {
    use std::io::Read as _;
    let mut file = File::open(path).map_err(|e| PrivateFileError::io(path, e))?;
    let meta = file.metadata().map_err(|e| PrivateFileError::io(path, e))?;
    check_metadata(path, &meta)?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| PrivateFileError::io(path, e))?;
    Ok(text)
}

/// Creates a new file at `path` with mode `0600` and writes `contents`. Fails when
/// anything already exists there, a symlink included: nothing is ever written
/// through a name someone else prepared.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("tether-doc-create-{}", std::process::id()));
/// # use std::os::unix::fs::DirBuilderExt as _;
/// std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?; // private
/// let path = dir.join("keys");
/// tether_core::private_file::create(&path, b"k1\n")?;
/// assert!(tether_core::private_file::create(&path, b"k2\n").is_err(), "never overwritten");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
pub fn create(path: &Path, contents: &[u8]) -> Result<(), PrivateFileError> {
    let mut file = create_new(path)?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| PrivateFileError::io(path, e))
}

/// Opens a new, empty file at `path` with mode `0600` for writing; fails when anything
/// already exists there (a symlink included).
pub fn create_new(path: &Path) -> Result<File, PrivateFileError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options
        .open(path)
        .map_err(|e| PrivateFileError::io(path, e))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tether-private-{tag}-{}-{}",
            std::process::id(),
            crate::Id::generate().unwrap()
        ));
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&dir)
            .unwrap();
        dir
    }

    #[test]
    fn created_files_are_private_and_never_replace_anything() {
        let dir = dir("create");
        let path = dir.join("keys");
        create(&path, b"one").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(create(&path, b"two").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"one");

        // A symlink planted where the file goes is never followed.
        let target = dir.join("operator-file");
        std::fs::write(&target, b"the operator's").unwrap();
        let link = dir.join("planted");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create(&link, b"key").is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"the operator's");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn files_others_can_reach_are_refused_with_the_fix() {
        let dir = dir("check");
        let path = dir.join("keys");
        create(&path, b"k").unwrap();
        assert!(read_to_string(&path).is_ok());
        for mode in [0o644, 0o640, 0o604, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = read_to_string(&path).unwrap_err().to_string();
            assert!(
                error.contains("chmod 600") && error.contains(&path.display().to_string()),
                "{error}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(
            read_to_string(&path).is_ok(),
            "read-only for the owner is fine"
        );
        assert!(matches!(
            check(&dir.join("missing")),
            Err(PrivateFileError::Io { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
