//! The logic of `create`, lock mode and the per-user cap, shared by every SQL store;
//! each store passes in its own statements.

use tether_core::{
    Changes, Created, Error, Id, LockOptions, LockToken, LockWait, Record, Result, Saved,
    SessionInfo, Touch, async_trait, unix_ms,
};

use crate::is_unique_violation;

/// The statements of one engine that the flows below are built from, but for the
/// two that write a session's data ([`Writes`]). Each store implements it with its
/// own SQL (Postgres and SQLite through
/// [`numbered_statements!`](crate::numbered_statements)).
#[async_trait]
pub trait Statements: Send + Sync {
    /// Deletes the row of `id` only if it has expired; whether it did.
    async fn clear_expired(&self, id: &Id) -> Result<bool>;
    /// The live sessions of `user`.
    async fn list(&self, user: &str) -> Result<Vec<SessionInfo>>;
    /// Deletes the row of `id`; whether there was one.
    async fn delete(&self, id: &Id) -> Result<bool>;
    /// The live session of `id`, if any.
    async fn load(&self, id: &Id) -> Result<Option<Record>>;
    /// Refreshes the live session of `id`; whether there was one.
    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool>;
    /// Deletes the live sessions of `user`; how many.
    async fn delete_user(&self, user: &str) -> Result<u64>;
    /// Takes the lock of `id` for `token` until `expires_ms` when it is free or its
    /// holder's time ran out at `now_ms`; whether it did. Contention that the engine
    /// reports as an error (a deadlock on the lock row) is `false`.
    async fn take_lock(
        &self,
        id: &Id,
        token: &LockToken,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<bool>;
    /// Releases the lock of `id` if `token` holds it.
    async fn unlock(&self, id: &Id, token: &LockToken) -> Result<()>;
    /// Deletes up to [`CLEANUP_BATCH`] sessions expired at `now_ms`; how many.
    async fn delete_expired(&self, now_ms: i64) -> Result<u64>;
    /// Deletes the locks expired at `now_ms`.
    async fn delete_expired_locks(&self, now_ms: i64) -> Result<()>;
}

/// The two statements that write a session's data, where each engine merges in its
/// own way; [`create`], [`save`] and [`cycle_id`] hold the logic around them.
#[async_trait]
pub trait Writes: Statements {
    /// Inserts a new row for `id`; fails with a unique violation when the id is taken.
    async fn insert(&self, id: &Id, record: &Record) -> Result<()>;
    /// The merge of a save (`new_id` none) or of a rotation to `new_id`: one statement
    /// that applies `changes` only to a live row and reports the new version and
    /// expiry, or [`Saved::Gone`].
    async fn merge(&self, id: &Id, new_id: Option<&Id>, changes: &Changes) -> Result<Saved>;
    /// The conditional write of [`save_from`]: one plain `UPDATE` setting the row to
    /// `record` (data, version, last seen, idle deadline, user) where the row is live
    /// and its version is still the one of `base`, the record read; `true` when it
    /// wrote. `base` also tells which columns change.
    async fn replace(&self, id: &Id, base: &Record, record: &Record) -> Result<bool>;
}

/// `create`, with the per-user cap when `cap` is set: insert, never
/// check-then-insert. When the id is taken by a live session the answer is
/// [`Created::IdTaken`]; when by an expired one (not yet cleaned up), it is deleted
/// only if it is still expired and the insert is tried once more.
pub async fn create(
    store: &impl Writes,
    id: &Id,
    record: &Record,
    cap: Option<u32>,
) -> Result<Created> {
    for attempt in 0..2 {
        match store.insert(id, record).await {
            Ok(()) => {
                if let (Some(user), Some(cap)) = (&record.user, cap) {
                    hold_to_cap(store, user, id, cap).await?;
                }
                return Ok(Created::Yes);
            }
            Err(e) if is_unique_violation(&e) && attempt == 0 => {
                if !store.clear_expired(id).await? {
                    return Ok(Created::IdTaken);
                }
            }
            Err(e) if is_unique_violation(&e) => return Ok(Created::IdTaken),
            Err(e) => return Err(e),
        }
    }
    Ok(Created::IdTaken)
}

/// `save`: the merge, then the cap when the save binds a user.
pub async fn save(store: &impl Writes, id: &Id, changes: &Changes) -> Result<Saved> {
    let saved = store.merge(id, None, changes).await?;
    after_bind(store, id, changes, saved).await
}

/// `save_from`: when the request read the session (`base`), the record it read with
/// the changes applied, written only if its version is still the one read: a plain
/// `UPDATE` with no merge for the engine to run. When the version moved (a concurrent
/// save) or the session is gone, the merge decides, as [`save`] does.
pub async fn save_from(
    store: &impl Writes,
    id: &Id,
    base: &Record,
    changes: &Changes,
) -> Result<Saved> {
    let mut record = base.clone();
    record.apply(changes);
    if base.is_expired(time::OffsetDateTime::now_utc()) || !store.replace(id, base, &record).await?
    {
        return save(store, id, changes).await;
    }
    after_bind(store, id, changes, Saved::of(&record)).await
}

/// `cycle_id`: the merge that also sets the new id (a taken id is
/// [`Error::IdCollision`]), then the cap when it binds a user.
pub async fn cycle_id(store: &impl Writes, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
    let saved = match store.merge(old, Some(new), changes).await {
        Ok(saved) => saved,
        Err(e) if is_unique_violation(&e) => return Err(Error::IdCollision),
        Err(e) => return Err(e),
    };
    after_bind(store, new, changes, saved).await
}

async fn after_bind(
    store: &impl Statements,
    id: &Id,
    changes: &Changes,
    saved: Saved,
) -> Result<Saved> {
    if let (Saved::Version { .. }, Some(Some(user)), Some(cap)) =
        (saved, &changes.user, changes.user_cap)
    {
        hold_to_cap(store, user, id, cap).await?;
    }
    Ok(saved)
}

/// The per-user cap: deletes `user`'s oldest sessions beyond `cap`, never `keep`.
async fn hold_to_cap(store: &impl Statements, user: &str, keep: &Id, cap: u32) -> Result<()> {
    let sessions = store
        .list(user)
        .await?
        .into_iter()
        .map(|s| (s.id, s.created));
    for id in tether_core::sessions_beyond_cap(sessions, keep, cap) {
        store.delete(&id).await?;
    }
    Ok(())
}

/// Lock mode: [`Statements::take_lock`], tried again with [`LockWait`]'s pauses until
/// `options.wait` runs out ([`Error::LockTimeout`]).
pub async fn lock(store: &impl Statements, id: &Id, options: &LockOptions) -> Result<LockToken> {
    let token = LockToken::generate()?;
    let ttl_ms = i64::try_from(options.ttl.as_millis()).unwrap_or(i64::MAX);
    LockWait::until(options.wait, || async {
        let now = unix_ms::now_ms();
        let held = store
            .take_lock(id, &token, now.saturating_add(ttl_ms), now)
            .await?;
        Ok(held.then(|| token.clone()))
    })
    .await
}

/// Expired rows deleted per statement of a cleanup.
pub const CLEANUP_BATCH: u64 = 1000;

/// One cleanup: batches of [`Statements::delete_expired`] until one comes back short,
/// then [`Statements::delete_expired_locks`]. Returns how many sessions went. Short
/// statements, so a cleanup never holds a large table lock or a long transaction.
pub async fn cleanup(store: &impl Statements) -> Result<u64> {
    let mut deleted = 0;
    loop {
        let n = store.delete_expired(unix_ms::now_ms()).await?;
        deleted += n;
        if n < CLEANUP_BATCH {
            break;
        }
    }
    store.delete_expired_locks(unix_ms::now_ms()).await?;
    Ok(deleted)
}
