//! The blocking file-system primitives: paths, atomic writes, lock files.
//!
//! Everything here runs on a blocking thread. It relies on two guarantees that local
//! file systems and NFSv3+ both give: exclusive create (`O_CREAT|O_EXCL`) and atomic
//! `rename` within a directory. It never uses `flock`/`fcntl` locks (unreliable over
//! NFS) or appends to shared files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::Digest as _;
use tether_core::{Id, Record, unix_ms};

/// Why a blocking operation failed.
#[derive(Debug)]
pub(crate) enum FsError {
    Io { context: String, source: io::Error },
    Corrupt(String),
}

impl FsError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io {
            context: context.into(),
            source,
        }
    }
}

pub(crate) type FsResult<T> = Result<T, FsError>;

/// A session's name on disk: the first 128 bits of SHA-256 over the id, in hex. It
/// cannot be turned back into the id, so a directory listing (another user, an NFS
/// client, a backup) shows no usable session; and hex stays apart on
/// case-insensitive file systems.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key(String);

impl Key {
    pub(crate) fn of(id: &Id) -> Self {
        let mut hash = sha2::Sha256::new();
        hash.update(b"tether-file/v2\0");
        hash.update(id.as_bytes());
        Self(hex::encode(&hash.finalize()[..16]))
    }

    /// A key read back from a file name; `None` for anything else.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        (name.len() == 32 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(name.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The root's layout (format 2). Every path is built from a [`Key`] or a SHA-256 of
/// a user name: no input reaches a path, and no path holds an id.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) root: PathBuf,
    /// Directories 0770 and files 0660 instead of 0700 and 0600.
    pub(crate) shared_group: bool,
}

impl Layout {
    pub(crate) fn base(&self) -> PathBuf {
        self.root.join("v2")
    }

    pub(crate) fn sessions(&self) -> PathBuf {
        self.base().join("sessions")
    }

    pub(crate) fn users(&self) -> PathBuf {
        self.base().join("users")
    }

    pub(crate) fn shard(&self, key: &Key) -> PathBuf {
        self.sessions().join(&key.0[..2])
    }

    pub(crate) fn record(&self, key: &Key) -> PathBuf {
        self.shard(key).join(format!("{}.json", key.0))
    }

    pub(crate) fn lock(&self, key: &Key, kind: LockKind) -> PathBuf {
        self.shard(key).join(format!("{}.{}", key.0, kind.suffix()))
    }

    pub(crate) fn user_dir(&self, user: &str) -> PathBuf {
        let digest = hex::encode(sha2::Sha256::digest(user.as_bytes()));
        self.users().join(&digest[..2]).join(digest)
    }

    /// One marker per session of a user, named by the session's key; it holds the id
    /// (readable only by the store's own user) so the user's sessions can be listed.
    pub(crate) fn marker(&self, user: &str, key: &Key) -> PathBuf {
        self.user_dir(user).join(&key.0)
    }

    /// 0700; shared by a group, 0770 with setgid (new entries keep the group).
    pub(crate) fn dir_mode(&self) -> u32 {
        if self.shared_group { 0o2770 } else { 0o700 }
    }

    pub(crate) fn file_mode(&self) -> u32 {
        if self.shared_group { 0o660 } else { 0o600 }
    }

    /// Creates `dir` and its parents with the store's directory mode. A shared store
    /// sets the mode again after creating: the umask would take the group's bits.
    pub(crate) fn create_dir(&self, dir: &Path) -> io::Result<()> {
        let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.is_dir()).collect();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(self.dir_mode())
            .create(dir)?;
        if self.shared_group {
            for created in missing {
                match fs::set_permissions(created, fs::Permissions::from_mode(self.dir_mode())) {
                    // Another instance of the group made it first, with its own mode.
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
                    other => other?,
                }
            }
        }
        Ok(())
    }

    /// Creates a file that must not exist, with the store's file mode, making its
    /// directory when missing.
    pub(crate) fn create_new(&self, path: &Path) -> io::Result<File> {
        let open = || {
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(self.file_mode())
                .open(path)?;
            if self.shared_group {
                file.set_permissions(fs::Permissions::from_mode(self.file_mode()))?;
            }
            Ok::<File, io::Error>(file)
        };
        match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    self.create_dir(dir)?;
                }
                open()
            }
            other => other,
        }
    }

    /// Writes `bytes` to `path` so that a reader sees the old content or the new,
    /// never a mix, and a crash leaves one of the two: a temporary file in the same
    /// directory, fsync, rename, fsync of the directory.
    pub(crate) fn write_atomic(&self, path: &Path, bytes: &[u8], durable: bool) -> FsResult<()> {
        let dir = path.parent().expect("record paths have a parent");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("record");
        let tmp = dir.join(format!(".{name}.{}.tmp", random_suffix()));
        let context = || format!("writing {}", path.display());
        let write = || -> io::Result<()> {
            let mut file = self.create_new(&tmp)?;
            file.write_all(bytes)?;
            if durable {
                file.sync_all()?;
            }
            fs::rename(&tmp, path)?;
            if durable {
                sync_dir(dir)?;
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            FsError::io(context())(e)
        })
    }

    pub(crate) fn write_record(&self, path: &Path, record: &Record, durable: bool) -> FsResult<()> {
        let bytes = serde_json::to_vec(record)
            .map_err(|e| FsError::Corrupt(format!("encoding a record: {e}")))?;
        self.write_atomic(path, &bytes, durable)
    }
}

/// The two locks a session can have: one held for the few milliseconds of a
/// read-merge-write, one held by a request in lock mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockKind {
    Write,
    Request,
}

impl LockKind {
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Self::Write => "lock",
            Self::Request => "reqlock",
        }
    }
}

fn random_suffix() -> String {
    Id::generate().map_or_else(
        |_| format!("{:?}", std::time::Instant::now()),
        |id| hex::encode(id.as_bytes()),
    )
}

/// Reads a record; `None` when the file does not exist.
pub(crate) fn read_record(path: &Path) -> FsResult<Option<Record>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| FsError::Corrupt(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError::io(format!("reading {}", path.display()))(e)),
    }
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    // Makes a rename or a removal durable on Linux; where directories cannot be opened
    // for sync it is still atomic, just not yet durable.
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Ok(()),
        other => other,
    }
}

/// Removes a file; `true` when it existed.
pub(crate) fn remove_if_exists(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// A held lock file.
#[derive(Debug)]
pub(crate) struct HeldLock {
    pub(crate) path: PathBuf,
    pub(crate) token: String,
}

/// The outcome of one attempt at a lock.
pub(crate) enum Attempt {
    Held(HeldLock),
    Busy,
}

/// One attempt: exclusive create of the lock file; when it exists and its holder is
/// dead, the stale lock is removed (see [`break_stale`]) and the next attempt may
/// take it. Only exclusive create ever grants a lock.
///
/// A lock file holds `TOKEN EXPIRY_MS`. A lock past its expiry (or, if its content was
/// never written, one whose file is older than `ttl`) belongs to a dead holder.
pub(crate) fn try_lock(layout: &Layout, path: &Path, ttl: Duration) -> FsResult<Attempt> {
    let token = random_suffix();
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let context = || format!("taking lock {}", path.display());
    match layout.create_new(path) {
        Ok(mut file) => {
            let line = format!("{token} {}\n", unix_ms::now_ms().saturating_add(ttl_ms));
            if let Err(e) = file.write_all(line.as_bytes()) {
                let _ = fs::remove_file(path);
                return Err(FsError::io(context())(e));
            }
            Ok(Attempt::Held(HeldLock {
                path: path.to_owned(),
                token,
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if let Some(observed) = stale_content(path, ttl) {
                break_stale(layout, path, &observed, ttl).map_err(FsError::io(context()))?;
            }
            Ok(Attempt::Busy)
        }
        Err(e) => Err(FsError::io(context())(e)),
    }
}

/// The content of the lock at `path` if its holder is dead.
pub(crate) fn stale_content(path: &Path, ttl: Duration) -> Option<String> {
    let content = fs::read_to_string(path).ok()?;
    let expiry = content
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<i64>().ok());
    let stale = match expiry {
        Some(expiry) => unix_ms::now_ms() >= expiry,
        // Created but never written: judge by age.
        None => older_than(path, ttl),
    };
    stale.then_some(content)
}

pub(crate) fn older_than(path: &Path, age: Duration) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|a| a > age)
}

/// Removes a dead holder's lock, never a live one, and never in a way that could
/// leave two holders: breakers take turns through the lock's `.break` file (exclusive
/// create), and the one whose turn it is removes the lock only if it still holds the
/// dead content it judged. Breaking grants nothing: the lock is then taken by
/// exclusive create like any other. A `.break` file older than `ttl` belongs to a
/// breaker that died mid-break and is removed.
pub(crate) fn break_stale(
    layout: &Layout,
    path: &Path,
    observed: &str,
    ttl: Duration,
) -> io::Result<()> {
    let turn = path.with_extension(format!(
        "{}.break",
        path.extension().and_then(|e| e.to_str()).unwrap_or("lock")
    ));
    match layout.create_new(&turn) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if older_than(&turn, ttl) {
                remove_if_exists(&turn)?;
            }
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    let still_dead = fs::read_to_string(path).is_ok_and(|now| now == observed);
    let result = if still_dead {
        tracing::info!(lock = %path.display(), "broke the lock of a dead holder");
        remove_if_exists(path).map(|_| ())
    } else {
        Ok(())
    };
    remove_if_exists(&turn)?;
    result
}

/// Releases a lock if `token` still holds it.
pub(crate) fn unlock(path: &Path, token: &str) -> FsResult<()> {
    match fs::read_to_string(path) {
        Ok(content) if content.split_whitespace().next() == Some(token) => {
            remove_if_exists(path).map_err(FsError::io(format!("releasing {}", path.display())))?;
        }
        Ok(_) => {
            tracing::warn!(lock = %path.display(), "lock expired before its holder released it");
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(FsError::io(format!("releasing {}", path.display()))(e)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Many threads take one lock; some die holding it (their lock goes stale and is
    /// broken by the others, often by several at once). While one holds the lock, it
    /// owns a `holder` file made by exclusive create: a second live holder would fail
    /// to make it.
    #[test]
    fn breaking_a_stale_lock_never_gives_two_holders() {
        let root = std::env::temp_dir().join(format!("tether-lock-race-{}", random_suffix()));
        let layout = Arc::new(Layout {
            root: root.clone(),
            shared_group: false,
        });
        layout.create_dir(&root).unwrap();
        let lock = root.join("session.lock");
        let holder = root.join("holder");
        let ttl = Duration::from_millis(200);
        let held = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (layout, lock, holder, held) =
                    (layout.clone(), lock.clone(), holder.clone(), held.clone());
                std::thread::spawn(move || {
                    for i in 0..15 {
                        let taken = loop {
                            if let Attempt::Held(h) = try_lock(&layout, &lock, ttl).unwrap() {
                                break h;
                            }
                            std::thread::sleep(Duration::from_micros(200));
                        };
                        layout
                            .create_new(&holder)
                            .expect("two live holders of one lock");
                        held.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(300));
                        fs::remove_file(&holder).unwrap();
                        // Every fifth turn of each thread it "dies": its lock stays.
                        if (i + t) % 5 != 0 {
                            unlock(&taken.path, &taken.token).unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a thread saw two holders");
        }
        assert_eq!(held.load(Ordering::SeqCst), 8 * 15);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn keys_are_fixed_length_hex_and_hide_the_id() {
        let id = Id::generate().unwrap();
        let key = Key::of(&id);
        assert_eq!(Key::parse(key.as_str()), Some(key.clone()));
        assert!(!key.as_str().contains(&hex::encode(id.as_bytes())[..8]));
        assert_eq!(Key::parse("../../etc/passwd"), None);
        assert_eq!(Key::parse(&"A".repeat(32)), None);
    }
}
