//! The logic of `create`, lock mode and the per-user cap, shared by every SQL store;
//! each store passes in its own statements.

use std::time::Duration;

use tether_core::{
    Changes, Created, Error, Id, LockWait, Record, Result, Saved, SessionInfo, async_trait,
};

use crate::is_unique_violation;

/// The statements of one engine that the flows below are built from. Each store
/// implements it with its own SQL; [`create`], [`save`] and [`cycle_id`] hold the
/// logic they share.
#[async_trait]
pub trait Statements: Send + Sync {
    /// Inserts a new row for `id`; fails with a unique violation when the id is taken.
    async fn insert(&self, id: &Id, record: &Record) -> Result<()>;
    /// Deletes the row of `id` only if it has expired; whether it did.
    async fn clear_expired(&self, id: &Id) -> Result<bool>;
    /// The merge of a save (`new_id` none) or of a rotation to `new_id`: one statement
    /// that applies `changes` only to a live row and reports the new version and
    /// expiry, or [`Saved::Gone`].
    async fn merge(&self, id: &Id, new_id: Option<&Id>, changes: &Changes) -> Result<Saved>;
    /// The live sessions of `user`.
    async fn list(&self, user: &str) -> Result<Vec<SessionInfo>>;
    /// Deletes the row of `id`; whether there was one.
    async fn delete(&self, id: &Id) -> Result<bool>;
}

/// `create`, with the per-user cap when `cap` is set: insert, never
/// check-then-insert. When the id is taken by a live session the answer is
/// [`Created::IdTaken`]; when by an expired one (not yet cleaned up), it is deleted
/// only if it is still expired and the insert is tried once more.
pub async fn create(
    store: &impl Statements,
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
pub async fn save(store: &impl Statements, id: &Id, changes: &Changes) -> Result<Saved> {
    let saved = store.merge(id, None, changes).await?;
    after_bind(store, id, changes, saved).await
}

/// `cycle_id`: the merge that also sets the new id (a taken id is
/// [`Error::IdCollision`]), then the cap when it binds a user.
pub async fn cycle_id(
    store: &impl Statements,
    old: &Id,
    new: &Id,
    changes: &Changes,
) -> Result<Saved> {
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

/// Lock mode: `attempt` inserts the lock row if absent (`true` when this caller now
/// holds it); tried again with [`LockWait`]'s pauses until `wait` runs out
/// ([`Error::LockTimeout`]). An error that `busy` accepts (a deadlock on the lock
/// row, say) counts as "held by another".
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// let held = tether_sql::flow::lock(Duration::from_millis(20), || async { Ok(false) }, |_| false).await;
/// assert!(matches!(held, Err(tether_core::Error::LockTimeout(_))));
/// # }
/// ```
pub async fn lock<A, F>(wait: Duration, mut attempt: A, busy: impl Fn(&Error) -> bool) -> Result<()>
where
    A: FnMut() -> F,
    F: Future<Output = Result<bool>>,
{
    let mut wait = LockWait::new(wait);
    loop {
        match attempt().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) if busy(&e) => {}
            Err(e) => return Err(e),
        }
        tokio::time::sleep(wait.next_pause()?).await;
    }
}

/// Expired rows deleted per statement of a cleanup.
pub const CLEANUP_BATCH: u64 = 1000;

/// One cleanup: `batch` deletes up to [`CLEANUP_BATCH`] expired sessions (how many
/// it did) until a batch comes back short, then `locks` deletes expired locks.
/// Returns how many sessions went. Short statements, so a cleanup never holds a large
/// table lock or a long transaction.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let left = std::cell::Cell::new(2500u64);
/// let deleted = tether_sql::flow::cleanup(
///     || async { let n = left.get().min(1000); left.set(left.get() - n); Ok(n) },
///     async { Ok(()) },
/// ).await;
/// assert_eq!(deleted.unwrap(), 2500);
/// # }
/// ```
pub async fn cleanup<B, F>(mut batch: B, locks: impl Future<Output = Result<()>>) -> Result<u64>
where
    B: FnMut() -> F,
    F: Future<Output = Result<u64>>,
{
    let mut deleted = 0;
    loop {
        let n = batch().await?;
        deleted += n;
        if n < CLEANUP_BATCH {
            break;
        }
    }
    locks.await?;
    Ok(deleted)
}
