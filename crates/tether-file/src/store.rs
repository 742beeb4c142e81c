//! `FileStore`'s [`SessionStore`] impl: each operation under the session's write lock
//! (`locked`), on a blocking thread (`run`).

use tether_core::{
    Changes, Created, Id, LockOptions, LockToken, LockWait, Record, Result, Saved, SessionInfo,
    SessionStore, Touch, async_trait,
};

use crate::FileStore;
use crate::fs::{self, Attempt, FsError, Key, LockKind};

#[async_trait]
impl SessionStore for FileStore {
    fn name(&self) -> &'static str {
        "file"
    }

    /// One [`FileStore::sweep`]; the count is the expired records it removed.
    async fn sweep_once(&self) -> Result<u64> {
        let report = self.sweep().await?;
        Ok(u64::try_from(report.expired).unwrap_or(u64::MAX))
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let key = Key::of(id);
        // Lock-free: a rename makes a new record visible whole.
        self.run("loading a session", move |inner| inner.live(&key))
            .await
    }

    async fn create(&self, id: &Id, record: &Record) -> Result<Created> {
        self.create_capped(id, record, None).await
    }

    async fn create_capped(&self, id: &Id, record: &Record, cap: Option<u32>) -> Result<Created> {
        let created = self.create_record(id, record).await?;
        if let (Created::Yes, Some(user), Some(cap)) = (created, &record.user, cap) {
            self.enforce_cap(user, id, cap).await?;
        }
        Ok(created)
    }

    async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved> {
        let (owned_id, owned, key) = (*id, changes.clone(), Key::of(id));
        let saved = self
            .locked("saving a session", vec![key.clone()], move |inner| {
                let Some(mut record) = inner.live(&key)? else {
                    return Ok(None);
                };
                let before = record.user.clone();
                record.apply(&owned);
                inner.write(&key, &record)?;
                inner.reindex(&key, &owned_id, before.as_deref(), record.user.as_deref())?;
                Ok(Some(record))
            })
            .await?;
        let Some(record) = saved else {
            return Ok(Saved::Gone);
        };
        if let (Some(user), Some(cap)) = (&record.user, changes.user_cap) {
            self.enforce_cap(user, id, cap).await?;
        }
        Ok(Saved::of(&record))
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        let (key, touch) = (Key::of(id), *touch);
        self.locked("refreshing a session", vec![key.clone()], move |inner| {
            let Some(mut record) = inner.live(&key)? else {
                return Ok(false);
            };
            record.touch(&touch);
            inner.write(&key, &record)?;
            Ok(true)
        })
        .await
    }

    async fn delete(&self, id: &Id) -> Result<bool> {
        let key = Key::of(id);
        self.locked("deleting a session", vec![key.clone()], move |inner| {
            inner.remove_session(&key)
        })
        .await
    }

    async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
        let (new_id, owned) = (*new, changes.clone());
        let (old_key, new_key) = (Key::of(old), Key::of(new));
        let keys = vec![old_key.clone(), new_key.clone()];
        let moved = self
            .locked("rotating a session id", keys, move |inner| {
                let Some(mut record) = inner.live(&old_key)? else {
                    return Ok(None);
                };
                if fs::read_record(&inner.layout.record(&new_key))?.is_some() {
                    return Err(FsError::Corrupt("session id collision".into()));
                }
                let before = record.user.clone();
                record.apply(&owned);
                // The old id stops working first: a crash now logs the user out,
                // never leaves the pre-rotation id valid.
                let old_path = inner.layout.record(&old_key);
                let aside = old_path.with_extension(format!("{}.trash", new_key.as_str()));
                std::fs::rename(&old_path, &aside)
                    .map_err(FsError::io(format!("retiring {}", old_path.display())))?;
                if inner.durable {
                    fs::sync_dir(&inner.layout.shard(&old_key))
                        .map_err(FsError::io(format!("syncing {}", old_path.display())))?;
                }
                inner.write(&new_key, &record)?;
                let _ = fs::remove_if_exists(&aside);
                if let Some(user) = record.user.as_deref() {
                    inner.add_marker(user, &new_key, &new_id)?;
                }
                if let Some(user) = before.as_deref() {
                    inner.remove_marker(user, &old_key)?;
                }
                Ok(Some(record))
            })
            .await?;
        let Some(record) = moved else {
            return Ok(Saved::Gone);
        };
        if let (Some(user), Some(cap)) = (&record.user, changes.user_cap) {
            self.enforce_cap(user, new, cap).await?;
        }
        Ok(Saved::of(&record))
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
        let owned = user.to_owned();
        let sessions = self
            .run("listing a user's sessions", move |inner| {
                inner.sessions_of(&owned)
            })
            .await?;
        let mut ended = 0;
        for (id, _) in sessions {
            if self.delete(&id).await? {
                ended += 1;
            }
        }
        Ok(ended)
    }

    async fn lock(&self, id: &Id, options: &LockOptions) -> Result<LockToken> {
        let path = self.inner.layout.lock(&Key::of(id), LockKind::Request);
        // Waiting happens here, not on a blocking thread: a waiter holds no permit the
        // lock's holder might need.
        LockWait::until(options.wait, || {
            let (path, ttl) = (path.clone(), options.ttl);
            async move {
                let attempt = self
                    .run("taking a session lock", move |inner| {
                        fs::try_lock(&inner.layout, &path, ttl)
                    })
                    .await?;
                Ok(match attempt {
                    Attempt::Held(lock) => Some(LockToken(lock.token)),
                    Attempt::Busy => None,
                })
            }
        })
        .await
    }

    async fn unlock(&self, id: &Id, token: &LockToken) -> Result<()> {
        let path = self.inner.layout.lock(&Key::of(id), LockKind::Request);
        let token = token.0.clone();
        self.run("releasing a session lock", move |_| {
            fs::unlock(&path, &token)
        })
        .await
    }
}
