//! The blocking work under the store's operations: locks, records, user markers.

use std::io;

use tether_core::{Id, Record};

use crate::fs::{self, Attempt, FsError, FsResult, HeldLock, Key, LockKind};
use crate::{Inner, now};

impl Inner {
    /// Every write lock of `keys`, or `None` (none held) when one is busy.
    pub(crate) fn try_write_locks(&self, keys: &[Key]) -> FsResult<Option<Vec<HeldLock>>> {
        let mut held = Vec::with_capacity(keys.len());
        for key in keys {
            let path = self.layout.lock(key, LockKind::Write);
            match fs::try_lock(&self.layout, &path, self.write_lock_ttl) {
                Ok(Attempt::Held(lock)) => held.push(lock),
                Ok(Attempt::Busy) => {
                    held.iter().for_each(Self::release);
                    return Ok(None);
                }
                Err(e) => {
                    held.iter().for_each(Self::release);
                    return Err(e);
                }
            }
        }
        Ok(Some(held))
    }

    pub(crate) fn release(lock: &HeldLock) {
        if let Err(e) = fs::unlock(&lock.path, &lock.token) {
            tracing::warn!(error = ?e, "could not release a session write lock; it expires by itself");
        }
    }

    pub(crate) fn live(&self, key: &Key) -> FsResult<Option<Record>> {
        Ok(fs::read_record(&self.layout.record(key))?.filter(|r| !r.is_expired(now())))
    }

    pub(crate) fn write(&self, key: &Key, record: &Record) -> FsResult<()> {
        self.layout
            .write_record(&self.layout.record(key), record, self.durable)
    }

    pub(crate) fn add_marker(&self, user: &str, key: &Key, id: &Id) -> FsResult<()> {
        let path = self.layout.marker(user, key);
        if path.exists() {
            return Ok(());
        }
        self.layout
            .write_atomic(&path, id.to_string().as_bytes(), false)
    }

    pub(crate) fn remove_marker(&self, user: &str, key: &Key) -> FsResult<()> {
        let path = self.layout.marker(user, key);
        fs::remove_if_exists(&path)
            .map(|_| ())
            .map_err(FsError::io(format!(
                "unindexing user in {}",
                path.display()
            )))
    }

    /// Keeps the user markers in step with a record whose user changed.
    pub(crate) fn reindex(
        &self,
        key: &Key,
        id: &Id,
        before: Option<&str>,
        after: Option<&str>,
    ) -> FsResult<()> {
        if before == after {
            return Ok(());
        }
        if let Some(after) = after {
            self.add_marker(after, key, id)?;
        }
        if let Some(before) = before {
            self.remove_marker(before, key)?;
        }
        Ok(())
    }

    /// Every session listed under `user` that is live and really bound to `user`;
    /// markers of ended sessions are removed as they are met.
    pub(crate) fn sessions_of(&self, user: &str) -> FsResult<Vec<(Id, Record)>> {
        let dir = self.layout.user_dir(user);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(FsError::io(format!("listing {}", dir.display()))(e)),
        };
        let mut sessions = Vec::new();
        for entry in entries {
            let entry = entry.map_err(FsError::io(format!("listing {}", dir.display())))?;
            // Another writer's marker still being written: not ours to judge.
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with('.'))
            {
                continue;
            }
            let id = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|text| Id::parse(text.trim()));
            let live = match id {
                Some(id) if entry.file_name().to_str() == Some(Key::of(&id).as_str()) => {
                    self.live(&Key::of(&id))?.map(|r| (id, r))
                }
                _ => None,
            };
            match live {
                Some((id, record)) if record.user.as_deref() == Some(user) => {
                    sessions.push((id, record));
                }
                _ => {
                    let _ = fs::remove_if_exists(&entry.path());
                }
            }
        }
        sessions.sort_by_key(|(_, r)| r.created);
        Ok(sessions)
    }

    /// Removes a session's record and marker (caller holds its write lock).
    pub(crate) fn remove_session(&self, key: &Key) -> FsResult<bool> {
        let path = self.layout.record(key);
        let record = fs::read_record(&path).unwrap_or(None);
        let existed = fs::remove_if_exists(&path)
            .map_err(FsError::io(format!("deleting {}", path.display())))?;
        if existed && self.durable {
            // A logout must survive a crash as surely as a login.
            fs::sync_dir(&self.layout.shard(key))
                .map_err(FsError::io(format!("syncing {}", path.display())))?;
        }
        if let Some(user) = record.as_ref().and_then(|r| r.user.as_deref()) {
            self.remove_marker(user, key)?;
        }
        Ok(existed)
    }
}
