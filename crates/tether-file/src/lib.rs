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
//! # Layout (format 2)
//!
//! ```text
//! ROOT/v2/sessions/ab/ab12…ef.json      the record; the name is a SHA-256 of the id
//! ROOT/v2/sessions/ab/ab12…ef.lock      held during one read-merge-write
//! ROOT/v2/sessions/ab/ab12…ef.reqlock   held by a request in lock mode
//! ROOT/v2/users/5e/5e88…(sha-256)/ab12…ef   one marker per session of a user
//! ```
//!
//! # Who can read it
//!
//! Directories are created 0700 and files 0600 ([`FileStore::open_shared_group`] for
//! 0770/0660 when instances run as different users of one group), and an existing
//! root must belong to the store's user. No file name holds an id: a name is the
//! first 128 bits of a SHA-256 of the id, which cannot be turned back into one, so a
//! directory listing or a path in an error message shows no usable session. Records
//! hold no id; a user's markers hold their sessions' ids, readable only by the store's
//! user.
//!
//! # What it relies on, and what it avoids
//!
//! It relies on exclusive create (`O_CREAT|O_EXCL`) and on `rename` replacing a file
//! atomically within one directory, both of which local file systems and NFSv3 and
//! later guarantee. It avoids `flock`/`fcntl` locks (advisory and unreliable over
//! NFS), appends to shared files, and reading a file that is being written: every
//! write goes to a temporary file in the same directory, is fsynced, and renamed into
//! place (and the directory fsynced), so a reader sees the old record or the new one
//! and a crash leaves one of the two.
//!
//! A read-merge-write of a session happens under its lock file, so concurrent saves of
//! different keys from any number of processes all persist. A writer that finds the
//! lock taken waits without holding a blocking thread or a concurrency permit. A lock
//! whose holder died (its expiry, written in the file, has passed) is removed by the
//! next writer, one breaker at a time, and only ever taken by exclusive create, so two
//! writers never hold it together. Clocks of the instances sharing a directory should
//! agree to well within the lock TTL (default 10 s), as NTP keeps them.

mod fs;
mod inner;
mod store;
mod sweep;

use std::io;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tether_core::{Created, Error, Id, LockWait, Record, Result, SessionStore};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use crate::fs::{FsError, FsResult, Key, Layout};
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
    /// Opens (creating if needed, 0700) a store rooted at `root`.
    ///
    /// Fails when the directory cannot be created or written, or belongs to another
    /// user, so a misconfigured path is found at start-up and not on the first request.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("tether-doc-{}", std::process::id()));
    /// let store = tether_file::FileStore::open(&dir)?;
    /// assert!(dir.join("v2/sessions").is_dir());
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), tether_core::Error>(())
    /// ```
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        Self::open_with(root.into(), false)
    }

    /// Opens a store that the store's group shares: directories 0770 (setgid, so what
    /// is created in them keeps the group) and files 0660, for instances that run as
    /// different users of one group. Everyone in the group can read every session.
    /// The root must belong to the group of the user opening it.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("tether-doc-group-{}", std::process::id()));
    /// let store = tether_file::FileStore::open_shared_group(&dir)?;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), tether_core::Error>(())
    /// ```
    pub fn open_shared_group(root: impl Into<PathBuf>) -> Result<Self> {
        Self::open_with(root.into(), true)
    }

    fn open_with(root: PathBuf, shared_group: bool) -> Result<Self> {
        let layout = Layout { root, shared_group };
        let store = Self {
            inner: Arc::new(Inner {
                layout,
                durable: true,
                write_lock_ttl: Duration::from_secs(10),
                write_lock_wait: Duration::from_secs(10),
                permits: Arc::new(Semaphore::new(32)),
            }),
        };
        store.prepare()?;
        Ok(store)
    }

    /// Creates the directories with the store's mode, checks the root is ours, and
    /// that it can be written.
    fn prepare(&self) -> Result<()> {
        let layout = &self.inner.layout;
        for dir in [&layout.root, &layout.sessions(), &layout.users()] {
            layout.create_dir(dir).map_err(|e| {
                Error::unavailable(format!("creating session directory {}", dir.display()), e)
            })?;
        }
        let probe = layout.root.join(format!(".probe.{}", std::process::id()));
        let mine = layout
            .create_new(&probe)
            .and_then(|f| f.metadata())
            .map(|m| (m.uid(), m.gid()));
        let _ = std::fs::remove_file(&probe);
        let mine = mine.map_err(|e| {
            Error::unavailable(
                format!(
                    "session directory {} is not writable",
                    layout.root.display()
                ),
                e,
            )
        })?;
        for dir in [
            &layout.root,
            &layout.base(),
            &layout.sessions(),
            &layout.users(),
        ] {
            let meta = std::fs::metadata(dir).map_err(|e| {
                Error::unavailable(format!("reading session directory {}", dir.display()), e)
            })?;
            let (uid, gid) = mine;
            if layout.shared_group && meta.gid() != gid {
                return Err(Error::config(format!(
                    "session directory {} belongs to another group: a shared store needs a directory of the instances' common group",
                    dir.display()
                )));
            }
            if !layout.shared_group && meta.uid() != uid {
                return Err(Error::config(format!(
                    "session directory {} belongs to another user: sessions are credentials, give the store a directory of its own",
                    dir.display()
                )));
            }
            // Whatever mode it had (a umask, an older release), it gets exactly the
            // store's; a directory of another user of the group cannot be changed and
            // keeps the mode its owner gave it.
            let mode = meta.permissions().mode() & 0o7777;
            if mode != layout.dir_mode() && meta.uid() == uid {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(layout.dir_mode()))
                    .map_err(|e| Error::unavailable(format!("restricting {}", dir.display()), e))?;
            }
        }
        Ok(())
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
        })
    }

    /// Runs `op` under the write locks of `keys`. Each attempt takes every lock or
    /// none; between attempts the waiter sleeps here, holding no blocking thread and no
    /// permit, so writers queued on one session never slow another user's request.
    async fn locked<T, F>(&self, what: &'static str, keys: Vec<Key>, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> FsResult<T> + Send + 'static,
    {
        let limit = self.inner.write_lock_wait;
        let outcome = LockWait::with_state(limit, op, |op| {
            let keys = keys.clone();
            self.run(what, move |inner| {
                let Some(locks) = inner.try_write_locks(&keys)? else {
                    // Busy: the operation comes back for the next attempt.
                    return Ok(Err(op));
                };
                let result = op(inner);
                for lock in &locks {
                    Inner::release(lock);
                }
                result.map(Ok)
            })
        })
        .await;
        outcome.map_err(|e| match e {
            Error::LockTimeout(_) => Error::unavailable(
                format!("{what}: the session's write lock stayed busy for {limit:?}"),
                io::Error::from(io::ErrorKind::TimedOut),
            ),
            other => other,
        })
    }

    /// Writes a new record unless one lives under the id.
    async fn create_record(&self, id: &Id, record: &Record) -> Result<Created> {
        let (id, record, key) = (*id, record.clone(), Key::of(id));
        self.locked("creating a session", vec![key.clone()], move |inner| {
            if inner.live(&key)?.is_some() {
                return Ok(Created::IdTaken);
            }
            inner.write(&key, &record)?;
            if let Some(user) = &record.user {
                inner.add_marker(user, &key, &id)?;
            }
            Ok(Created::Yes)
        })
        .await
    }

    /// Ends the user's oldest sessions beyond `cap`, keeping `keep`.
    async fn enforce_cap(&self, user: &str, keep: &Id, cap: u32) -> Result<()> {
        let owned = user.to_owned();
        let sessions = self
            .run("listing a user's sessions", move |inner| {
                inner.sessions_of(&owned)
            })
            .await?;
        let sessions = sessions.into_iter().map(|(id, r)| (id, r.created));
        for id in tether_core::sessions_beyond_cap(sessions, keep, cap) {
            self.delete(&id).await?;
        }
        Ok(())
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}
