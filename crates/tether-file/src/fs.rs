//! The blocking file-system primitives: paths, atomic writes, lock files.
//!
//! Everything here runs on a blocking thread. It relies on two guarantees that local
//! file systems and NFSv3+ both give: exclusive create (`O_CREAT|O_EXCL`) and atomic
//! `rename` within a directory. It never uses `flock`/`fcntl` locks (unreliable over
//! NFS) or appends to shared files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::Digest as _;
use tether_core::{Id, LockWait, Record, unix_ms};

/// Why a blocking operation failed.
#[derive(Debug)]
pub(crate) enum FsError {
    Io { context: String, source: io::Error },
    Corrupt(String),
    LockTimeout(Duration),
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

/// The root's layout. Every path is built from an [`Id`] (as hex) or a SHA-256 of a
/// user name: no input reaches a path.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) root: PathBuf,
}

/// Hex, not base64, in file names: base64 ids differing only in case would collide on
/// case-insensitive file systems.
pub(crate) fn id_hex(id: &Id) -> String {
    hex::encode(id.as_bytes())
}

pub(crate) fn id_from_hex(name: &str) -> Option<Id> {
    let mut bytes = [0u8; tether_core::ID_BYTES];
    hex::decode_to_slice(name, &mut bytes).ok()?;
    Some(Id::from_bytes(bytes))
}

impl Layout {
    pub(crate) fn sessions(&self) -> PathBuf {
        self.root.join("sessions")
    }

    pub(crate) fn users(&self) -> PathBuf {
        self.root.join("users")
    }

    pub(crate) fn shard(&self, id: &Id) -> PathBuf {
        let hex = id_hex(id);
        self.sessions().join(&hex[..2])
    }

    pub(crate) fn record(&self, id: &Id) -> PathBuf {
        self.shard(id).join(format!("{}.json", id_hex(id)))
    }

    pub(crate) fn lock(&self, id: &Id, kind: LockKind) -> PathBuf {
        self.shard(id)
            .join(format!("{}.{}", id_hex(id), kind.suffix()))
    }

    pub(crate) fn user_dir(&self, user: &str) -> PathBuf {
        let digest = hex::encode(sha2::Sha256::digest(user.as_bytes()));
        self.users().join(&digest[..2]).join(digest)
    }

    pub(crate) fn marker(&self, user: &str, id: &Id) -> PathBuf {
        self.user_dir(user).join(id_hex(id))
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
        |id| id_hex(&id),
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

/// Writes `bytes` to `path` so that a reader sees the old content or the new, never a
/// mix, and a crash leaves one of the two: a temporary file in the same directory,
/// fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> FsResult<()> {
    let dir = path.parent().expect("record paths have a parent");
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("record");
    let tmp = dir.join(format!(".{name}.{}.tmp", random_suffix()));
    let context = || format!("writing {}", path.display());
    let write = || -> io::Result<()> {
        let mut file = create_new_in(&tmp)?;
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

pub(crate) fn write_record(path: &Path, record: &Record, durable: bool) -> FsResult<()> {
    let bytes = serde_json::to_vec(record)
        .map_err(|e| FsError::Corrupt(format!("encoding a record: {e}")))?;
    write_atomic(path, &bytes, durable)
}

/// Creates a file that must not exist, making its directory when missing.
pub(crate) fn create_new_in(path: &Path) -> io::Result<File> {
    let open = || OpenOptions::new().write(true).create_new(true).open(path);
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            open()
        }
        other => other,
    }
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    // Makes a rename durable on Linux; where directories cannot be opened for sync the
    // rename is still atomic, just not yet durable.
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

/// One attempt: exclusive create of the lock file, or breaking it when its holder died.
///
/// A lock file holds `TOKEN EXPIRY_MS`. A lock past its expiry (or, if its content was
/// never written, one whose file is older than `ttl`) belongs to a dead holder.
pub(crate) fn try_lock(path: &Path, ttl: Duration) -> FsResult<Attempt> {
    let token = random_suffix();
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let context = || format!("taking lock {}", path.display());
    match create_new_in(path) {
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
                break_stale(path, &observed).map_err(FsError::io(context()))?;
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
        None => fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > ttl),
    };
    stale.then_some(content)
}

/// Removes a dead holder's lock without ever removing a live one: the lock is renamed
/// away (atomic, so only one breaker gets it), and if what was renamed is not the dead
/// lock that was judged (someone re-took it meanwhile), it is linked back.
pub(crate) fn break_stale(path: &Path, observed: &str) -> io::Result<()> {
    let aside = path.with_extension(format!("stale.{}", random_suffix()));
    match fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    let taken = fs::read_to_string(&aside).unwrap_or_default();
    if taken == observed {
        tracing::info!(lock = %path.display(), "broke the lock of a dead holder");
    } else {
        match fs::hard_link(&aside, path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                tracing::warn!(lock = %path.display(), "a lock was re-taken while a dead holder's lock was broken");
            }
            Err(e) => return Err(e),
        }
    }
    remove_if_exists(&aside).map(|_| ())
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

/// Waits (on this blocking thread) for the write lock: held only for the milliseconds
/// of one read-merge-write.
pub(crate) fn lock_blocking(path: &Path, ttl: Duration, wait: Duration) -> FsResult<HeldLock> {
    let mut pacing = LockWait::new(wait);
    loop {
        if let Attempt::Held(lock) = try_lock(path, ttl)? {
            return Ok(lock);
        }
        let pause = pacing
            .next_pause()
            .map_err(|_| FsError::LockTimeout(wait))?;
        std::thread::sleep(pause);
    }
}
