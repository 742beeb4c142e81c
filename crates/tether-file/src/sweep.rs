//! Removing what expired or was left behind, in a task that outlives errors.

use std::io;
use std::path::Path;
use std::time::Duration;

use tether_core::{Id, Result};

use crate::fs::{self, FsResult, Key};
use crate::{FileStore, Inner};

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepReport {
    /// Expired session records.
    pub expired: usize,
    /// Locks of holders that died.
    pub stale_locks: usize,
    /// Temporary files of writers that died mid-write.
    pub leftovers: usize,
    /// User markers whose session is gone.
    pub markers: usize,
    /// Entries that could not be handled (logged; retried next sweep).
    pub errors: usize,
}

/// The background sweep; stops when dropped.
pub type Sweeper = tether_core::Background;

impl FileStore {
    /// Sweeps once: expired records, locks of dead holders, temporary files older than
    /// the lock TTL, and markers of ended sessions. Problems with single entries are
    /// logged and counted, never fatal.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("tether-doc-sweep-{}", std::process::id()));
    /// let store = tether_file::FileStore::open(&dir)?;
    /// let report = store.sweep().await?;
    /// assert_eq!(report.expired, 0);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), tether_core::Error>(()) }).unwrap();
    /// ```
    pub async fn sweep(&self) -> Result<SweepReport> {
        self.run("sweeping the session directory", |inner| Ok(inner.sweep()))
            .await
    }

    /// Sweeps every `every` in a background task until the returned [`Sweeper`] is
    /// dropped. A failed sweep is logged and the next one runs on schedule.
    pub fn spawn_sweeper(&self, every: Duration) -> Sweeper {
        let store = self.clone();
        Sweeper::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match store.sweep().await {
                    Ok(report) if report != SweepReport::default() => {
                        tracing::info!(?report, "swept the session directory");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "session sweep failed; retrying next time");
                    }
                }
            }
        })
    }
}

fn dir_entries(dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.map(|e| e.path())).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

impl Inner {
    // File names here are the store's own, written in lower case.
    #[allow(clippy::case_sensitive_file_extension_comparisons)]
    pub(crate) fn sweep(&self) -> SweepReport {
        let mut report = SweepReport::default();
        let mut note = |what: &str, path: &Path, result: FsResult<bool>| match result {
            Ok(_) => {}
            Err(e) => {
                report.errors += 1;
                tracing::warn!(path = %path.display(), error = ?e, "sweep could not handle {what}");
            }
        };
        let mut expired = 0;
        let mut stale_locks = 0;
        let mut leftovers = 0;
        let shards = dir_entries(&self.layout.sessions()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "sweep could not list the sessions directory");
            Vec::new()
        });
        for shard in shards {
            let Ok(entries) = dir_entries(&shard) else {
                note("a shard", &shard, Ok(false));
                continue;
            };
            for path in entries {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                if name.starts_with('.') || name.ends_with(".break") || name.ends_with(".trash") {
                    if fs::older_than(&path, self.write_lock_ttl) {
                        let result = fs::remove_if_exists(&path)
                            .map_err(fs::FsError::io("removing a leftover"));
                        if matches!(result, Ok(true)) {
                            leftovers += 1;
                        }
                        note("a leftover", &path, result);
                    }
                } else if name.ends_with(".lock") || name.ends_with(".reqlock") {
                    if let Some(observed) = fs::stale_content(&path, self.write_lock_ttl) {
                        let result =
                            fs::break_stale(&self.layout, &path, &observed, self.write_lock_ttl)
                                .map(|()| true)
                                .map_err(fs::FsError::io("breaking a stale lock"));
                        if result.is_ok() {
                            stale_locks += 1;
                        }
                        note("a stale lock", &path, result);
                    }
                } else if let Some(key) = name.strip_suffix(".json").and_then(Key::parse) {
                    let result = self.sweep_record(&key);
                    if matches!(result, Ok(true)) {
                        expired += 1;
                    }
                    note("a record", &path, result);
                }
            }
        }
        report.markers = self.sweep_markers(&mut report.errors);
        report.expired = expired;
        report.stale_locks = stale_locks;
        report.leftovers = leftovers;
        report
    }

    /// Removes the record if it is expired, re-checking under its lock; a busy lock
    /// leaves it to the next sweep.
    fn sweep_record(&self, key: &Key) -> FsResult<bool> {
        let now = time::OffsetDateTime::now_utc();
        let path = self.layout.record(key);
        if !fs::read_record(&path)?.is_some_and(|r| r.is_expired(now)) {
            return Ok(false);
        }
        let Some(locks) = self.try_write_locks(std::slice::from_ref(key))? else {
            return Ok(false);
        };
        let result = if fs::read_record(&path)?.is_some_and(|r| r.is_expired(now)) {
            self.remove_session(key)
        } else {
            Ok(false)
        };
        locks.iter().for_each(Self::release);
        result
    }

    fn sweep_markers(&self, errors: &mut usize) -> usize {
        let mut removed = 0;
        for bucket in dir_entries(&self.layout.users()).unwrap_or_default() {
            for user_dir in dir_entries(&bucket).unwrap_or_default() {
                for marker in dir_entries(&user_dir).unwrap_or_default() {
                    // A marker being written (a temporary name) is left to finish, or
                    // to grow old: then it is a dead writer's leftover.
                    let temporary = marker
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'));
                    if temporary && !fs::older_than(&marker, self.write_lock_ttl) {
                        continue;
                    }
                    let id = std::fs::read_to_string(&marker)
                        .ok()
                        .and_then(|text| Id::parse(text.trim()));
                    let alive = id.is_some_and(|id| self.layout.record(&Key::of(&id)).exists());
                    if !alive {
                        match fs::remove_if_exists(&marker) {
                            Ok(true) => removed += 1,
                            Ok(false) => {}
                            Err(_) => *errors += 1,
                        }
                    }
                }
                // Fails harmlessly while the directory still has markers.
                let _ = std::fs::remove_dir(&user_dir);
            }
        }
        removed
    }
}
