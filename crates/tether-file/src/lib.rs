//! A session store in a shared directory: one file per session, safe on NFS, safe
//! across crashes, no server to run. tether's embedded default.
//!
//! ```no_run
//! use tether::SessionLayer;
//! use tether_file::FileStore;
//!
//! # fn main() -> Result<(), tether_core::Error> {
//! // Every instance mounts the same directory.
//! let store = FileStore::open("/srv/shared/sessions")?;
//! let _sweeper = store.spawn_sweeper(std::time::Duration::from_secs(60));
//! let layer = SessionLayer::new(store);
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! ```text
//! ROOT/sessions/ab/ab12…ef.json      the record (hex of the id's 16 bytes)
//! ROOT/sessions/ab/ab12…ef.lock      held during one read-merge-write
//! ROOT/sessions/ab/ab12…ef.reqlock   held by a request in lock mode
//! ROOT/users/5e/5e88…(sha-256)/ab12…ef   one empty marker per session of a user
//! ```
//!
//! # What it relies on, and what it avoids
//!
//! It relies on exclusive create (`O_CREAT|O_EXCL`) and on `rename` replacing a file
//! atomically within one directory, both of which local file systems and NFSv3 and
//! later guarantee, and on `link` for the rare restore of a wrongly broken lock. It
//! avoids `flock`/`fcntl` locks (advisory and unreliable over NFS), appends to shared
//! files, and reading a file that is being written: every write goes to a temporary
//! file in the same directory, is fsynced, and renamed into place, so a reader sees the
//! old record or the new one and a crash leaves one of the two.
//!
//! A read-merge-write of a session happens under its lock file, so concurrent saves of
//! different keys from any number of processes all persist. A lock whose holder died
//! (its expiry, written in the file, has passed) is broken by the next writer. Clocks
//! of the instances sharing a directory should agree to well within the lock TTL
//! (default 10 s), as NTP keeps them.

mod fs;
mod sweep;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tether_core::{
    Changes, Created, Error, Id, LockOptions, LockToken, LockWait, Record, Result, Saved,
    SessionInfo, SessionStore, Touch, async_trait,
};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use crate::fs::{FsError, FsResult, HeldLock, Layout, LockKind};
pub use crate::sweep::{SweepReport, Sweeper};

/// Sessions as files in a directory that every instance shares.
///
/// Cloning is cheap and clones share the same settings and concurrency bound.
#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    layout: Layout,
    durable: bool,
    write_lock_ttl: Duration,
    write_lock_wait: Duration,
    permits: Arc<Semaphore>,
}

impl FileStore {
    /// Opens (creating if needed) a store rooted at `root`.
    ///
    /// Fails when the directory cannot be created or written, so a misconfigured path
    /// is found at start-up and not on the first request.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("tether-doc-{}", std::process::id()));
    /// let store = tether_file::FileStore::open(&dir)?;
    /// assert!(dir.join("sessions").is_dir());
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), tether_core::Error>(())
    /// ```
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let layout = Layout { root: root.into() };
        for dir in [layout.sessions(), layout.users()] {
            std::fs::create_dir_all(&dir).map_err(|e| {
                Error::unavailable(format!("creating session directory {}", dir.display()), e)
            })?;
        }
        let probe = layout.root.join(format!(".probe.{}", std::process::id()));
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| {
                Error::unavailable(
                    format!(
                        "session directory {} is not writable",
                        layout.root.display()
                    ),
                    e,
                )
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                layout,
                durable: true,
                write_lock_ttl: Duration::from_secs(10),
                write_lock_wait: Duration::from_secs(10),
                permits: Arc::new(Semaphore::new(32)),
            }),
        })
    }

    fn configure(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    /// Whether writes are fsynced before they are renamed into place (default `true`).
    /// Turning it off trades crash safety for speed: after a power cut a record may be
    /// empty; a process crash is still safe.
    #[must_use]
    pub fn with_durable(self, durable: bool) -> Self {
        self.configure(|i| i.durable = durable)
    }

    /// How long a dead writer's lock blocks its session (default 10 s).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("tether-doc-ttl-{}", std::process::id()));
    /// let store = tether_file::FileStore::open(&dir)?.with_stale_lock_after(std::time::Duration::from_secs(2));
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), tether_core::Error>(())
    /// ```
    #[must_use]
    pub fn with_stale_lock_after(self, ttl: Duration) -> Self {
        self.configure(|i| i.write_lock_ttl = ttl)
    }

    /// At most this many file-system operations run at once (default 32), each on
    /// tokio's blocking pool, so the async workers never wait on a disk or an NFS server.
    #[must_use]
    pub fn with_max_concurrency(self, operations: usize) -> Self {
        self.configure(|i| i.permits = Arc::new(Semaphore::new(operations.max(1))))
    }

    /// The shared directory.
    pub fn root(&self) -> &Path {
        &self.inner.layout.root
    }

    /// Runs `op` on the blocking pool, within the concurrency bound.
    async fn run<T: Send + 'static>(
        &self,
        what: &'static str,
        op: impl FnOnce(&Inner) -> FsResult<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|e| Error::unavailable(what, e))?;
        let inner = self.inner.clone();
        let result = tokio::task::spawn_blocking(move || op(&inner))
            .await
            .map_err(|e| Error::unavailable(what, e))?;
        result.map_err(|e| match e {
            FsError::Io { context, source } => {
                Error::unavailable(format!("{what}: {context}"), source)
            }
            FsError::Corrupt(why) => Error::Corrupt(why),
            FsError::LockTimeout(waited) => Error::unavailable(
                format!("{what}: the session's write lock stayed busy for {waited:?}"),
                io::Error::from(io::ErrorKind::TimedOut),
            ),
        })
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

impl Inner {
    fn write_lock(&self, id: &Id) -> FsResult<HeldLock> {
        fs::lock_blocking(
            &self.layout.lock(id, LockKind::Write),
            self.write_lock_ttl,
            self.write_lock_wait,
        )
    }

    fn release(lock: &HeldLock) {
        if let Err(e) = fs::unlock(&lock.path, &lock.token) {
            tracing::warn!(error = ?e, "could not release a session write lock; it expires by itself");
        }
    }

    /// Runs `f` under the session's write lock.
    fn locked<T>(&self, id: &Id, f: impl FnOnce() -> FsResult<T>) -> FsResult<T> {
        let lock = self.write_lock(id)?;
        let result = f();
        Self::release(&lock);
        result
    }

    fn live(&self, id: &Id) -> FsResult<Option<Record>> {
        Ok(fs::read_record(&self.layout.record(id))?.filter(|r| !r.is_expired(now())))
    }

    fn write(&self, id: &Id, record: &Record) -> FsResult<()> {
        fs::write_record(&self.layout.record(id), record, self.durable)
    }

    fn add_marker(&self, user: &str, id: &Id) -> FsResult<()> {
        let path = self.layout.marker(user, id);
        match fs::create_new_in(&path) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(FsError::io(format!("indexing user in {}", path.display()))(
                e,
            )),
        }
    }

    fn remove_marker(&self, user: &str, id: &Id) -> FsResult<()> {
        let path = self.layout.marker(user, id);
        fs::remove_if_exists(&path)
            .map(|_| ())
            .map_err(FsError::io(format!(
                "unindexing user in {}",
                path.display()
            )))
    }

    /// Keeps the user markers in step with a record whose user changed.
    fn reindex(&self, id: &Id, before: Option<&str>, after: Option<&str>) -> FsResult<()> {
        if before == after {
            return Ok(());
        }
        if let Some(after) = after {
            self.add_marker(after, id)?;
        }
        if let Some(before) = before {
            self.remove_marker(before, id)?;
        }
        Ok(())
    }

    /// Every session listed under `user` that is live and really bound to `user`;
    /// markers of ended sessions are removed as they are met.
    fn sessions_of(&self, user: &str) -> FsResult<Vec<(Id, Record)>> {
        let dir = self.layout.user_dir(user);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(FsError::io(format!("listing {}", dir.display()))(e)),
        };
        let mut sessions = Vec::new();
        for entry in entries {
            let entry = entry.map_err(FsError::io(format!("listing {}", dir.display())))?;
            let Some(id) = entry.file_name().to_str().and_then(fs::id_from_hex) else {
                continue;
            };
            match self.live(&id)? {
                Some(record) if record.user.as_deref() == Some(user) => sessions.push((id, record)),
                _ => {
                    let _ = fs::remove_if_exists(&entry.path());
                }
            }
        }
        sessions.sort_by_key(|(_, r)| r.created);
        Ok(sessions)
    }

    fn enforce_cap(&self, user: &str, keep: &Id, cap: u32) -> FsResult<()> {
        let sessions = self
            .sessions_of(user)?
            .into_iter()
            .map(|(id, r)| (id, r.created));
        for id in tether_core::sessions_beyond_cap(sessions, keep, cap) {
            self.locked(&id, || self.remove_session(&id))?;
        }
        Ok(())
    }

    /// Removes a session's record and marker (caller holds its write lock).
    fn remove_session(&self, id: &Id) -> FsResult<bool> {
        let path = self.layout.record(id);
        let record = fs::read_record(&path).unwrap_or(None);
        let existed = fs::remove_if_exists(&path)
            .map_err(FsError::io(format!("deleting {}", path.display())))?;
        if let Some(user) = record.as_ref().and_then(|r| r.user.as_deref()) {
            self.remove_marker(user, id)?;
        }
        Ok(existed)
    }
}

#[async_trait]
impl SessionStore for FileStore {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let id = *id;
        // Lock-free: a rename makes a new record visible whole.
        self.run("loading a session", move |inner| inner.live(&id))
            .await
    }

    async fn create(&self, id: &Id, record: &Record) -> Result<Created> {
        let (id, record) = (*id, record.clone());
        self.run("creating a session", move |inner| {
            inner.locked(&id, || {
                if inner.live(&id)?.is_some() {
                    return Ok(Created::IdTaken);
                }
                inner.write(&id, &record)?;
                if let Some(user) = &record.user {
                    inner.add_marker(user, &id)?;
                }
                Ok(Created::Yes)
            })
        })
        .await
    }

    async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved> {
        let (id, changes) = (*id, changes.clone());
        self.run("saving a session", move |inner| {
            let saved = inner.locked(&id, || {
                let Some(mut record) = inner.live(&id)? else {
                    return Ok(None);
                };
                let before = record.user.clone();
                record.apply(&changes);
                inner.write(&id, &record)?;
                inner.reindex(&id, before.as_deref(), record.user.as_deref())?;
                Ok(Some(record))
            })?;
            let Some(record) = saved else {
                return Ok(Saved::Gone);
            };
            if let (Some(user), Some(cap)) = (&record.user, changes.user_cap) {
                inner.enforce_cap(user, &id, cap)?;
            }
            Ok(Saved::Version(record.version))
        })
        .await
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        let (id, touch) = (*id, *touch);
        self.run("refreshing a session", move |inner| {
            inner.locked(&id, || {
                let Some(mut record) = inner.live(&id)? else {
                    return Ok(false);
                };
                record.touch(&touch);
                inner.write(&id, &record)?;
                Ok(true)
            })
        })
        .await
    }

    async fn delete(&self, id: &Id) -> Result<bool> {
        let id = *id;
        self.run("deleting a session", move |inner| {
            inner.locked(&id, || inner.remove_session(&id))
        })
        .await
    }

    async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
        let (old, new, changes) = (*old, *new, changes.clone());
        self.run("rotating a session id", move |inner| {
            let moved = inner.locked(&old, || {
                inner.locked(&new, || {
                    let Some(mut record) = inner.live(&old)? else {
                        return Ok(None);
                    };
                    if fs::read_record(&inner.layout.record(&new))?.is_some() {
                        return Err(FsError::Corrupt("session id collision".into()));
                    }
                    let before = record.user.clone();
                    record.apply(&changes);
                    // The old id stops working first: a crash now logs the user out,
                    // never leaves the pre-rotation id valid.
                    let old_path = inner.layout.record(&old);
                    let aside = old_path.with_extension(format!("{}.trash", fs::id_hex(&new)));
                    std::fs::rename(&old_path, &aside)
                        .map_err(FsError::io(format!("retiring {}", old_path.display())))?;
                    inner.write(&new, &record)?;
                    let _ = fs::remove_if_exists(&aside);
                    if let Some(user) = record.user.as_deref() {
                        inner.add_marker(user, &new)?;
                    }
                    if let Some(user) = before.as_deref() {
                        inner.remove_marker(user, &old)?;
                    }
                    Ok(Some(record))
                })
            })?;
            let Some(record) = moved else {
                return Ok(Saved::Gone);
            };
            if let (Some(user), Some(cap)) = (&record.user, changes.user_cap) {
                inner.enforce_cap(user, &new, cap)?;
            }
            Ok(Saved::Version(record.version))
        })
        .await
    }

    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>> {
        let user = user.to_owned();
        self.run("listing a user's sessions", move |inner| {
            Ok(inner
                .sessions_of(&user)?
                .into_iter()
                .map(|(id, record)| record.info(id))
                .collect())
        })
        .await
    }

    async fn delete_user_sessions(&self, user: &str) -> Result<u64> {
        let user = user.to_owned();
        self.run("deleting a user's sessions", move |inner| {
            let mut ended = 0;
            for (id, _) in inner.sessions_of(&user)? {
                if inner.locked(&id, || inner.remove_session(&id))? {
                    ended += 1;
                }
            }
            Ok(ended)
        })
        .await
    }

    async fn lock(&self, id: &Id, options: &LockOptions) -> Result<LockToken> {
        let path = self.inner.layout.lock(id, LockKind::Request);
        let mut wait = LockWait::new(options.wait);
        loop {
            let (path, ttl) = (path.clone(), options.ttl);
            let attempt = self
                .run("taking a session lock", move |_| fs::try_lock(&path, ttl))
                .await?;
            if let fs::Attempt::Held(lock) = attempt {
                return Ok(LockToken(lock.token));
            }
            // Waiting happens here, not on a blocking thread: a waiter holds no permit
            // the lock's holder might need.
            tokio::time::sleep(wait.next_pause()?).await;
        }
    }

    async fn unlock(&self, id: &Id, token: &LockToken) -> Result<()> {
        let path = self.inner.layout.lock(id, LockKind::Request);
        let token = token.0.clone();
        self.run("releasing a session lock", move |_| {
            fs::unlock(&path, &token)
        })
        .await
    }
}
