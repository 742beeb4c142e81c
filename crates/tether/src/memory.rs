//! `MemoryStore`: sessions in this process's memory.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tether_core::{
    Capabilities, Changes, Created, Error, Id, LockOptions, LockToken, Record, Result, Saved,
    SessionInfo, SessionLimits, SessionStore, Touch, async_trait, unix_ms,
};
use time::OffsetDateTime;
use tokio::sync::Notify;

/// Sessions kept in this process's memory.
///
/// Fast and dependency-free, and lost when the process stops: on several instances it
/// works only behind sticky routing (`ip-hash` or `cookie-hash`), and each instance
/// keeps only its own users. It supports every part of the contract: user index, caps
/// and lock mode.
///
/// Bounded by default: at most 100,000 sessions, anonymous ones (no user bound) at
/// most half, the oldest anonymous ending to make room ([`SessionLimits`]), so a
/// flood of cookie-less requests can neither exhaust memory nor lock out logins.
/// Logged-in sessions are bounded by the layer's per-user cap
/// ([`SessionLayer::with_max_sessions_per_user`](crate::SessionLayer::with_max_sessions_per_user)):
/// set it, so that one account logging in again and again ends its own oldest
/// sessions instead of filling the store.
///
/// ```
/// use tether::{MemoryStore, SessionLayer};
///
/// let layer = SessionLayer::new(MemoryStore::new().with_max_sessions(10_000))
///     .with_max_sessions_per_user(10);
/// let app: axum::Router = axum::Router::new().layer(layer);
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    unlocked: Notify,
    limits: SessionLimits,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            unlocked: Notify::new(),
            limits: SessionLimits::new(100_000),
        }
    }
}

/// Maps keyed by ids hash with foldhash (randomly seeded, several times cheaper than
/// std's SipHash; every request hashes an id at least once). Ids are made by the
/// server, so an attacker cannot choose keys that go in; a presented id is only looked
/// up. User names can be chosen by users, so the user index keeps SipHash.
type Hasher = foldhash::fast::RandomState;

#[derive(Debug, Default)]
struct State {
    /// Shared with the requests that loaded them: a read copies no session data.
    records: HashMap<Id, Arc<Record>, Hasher>,
    users: HashMap<String, HashSet<Id, Hasher>>,
    /// Anonymous sessions by creation (ms), the oldest first to make room.
    anonymous: BTreeSet<(i64, Id)>,
    locks: HashMap<Id, (LockToken, Instant), Hasher>,
    /// When each record falls due (its expiry, Unix ms), soonest first. A record gets
    /// an entry when it is created, and a new one when its entry falls due while it is
    /// still live (its deadline moved on); entries of records removed meanwhile are
    /// dropped when they fall due. So there is about one entry per record, and expiry
    /// needs no scan and no background task.
    due: BinaryHeap<Reverse<(i64, Id)>>,
    writes: usize,
}

/// Entries that fall due handled by each write, at most: expiry keeps pace with
/// creation (one entry per write at most) and no write ever stalls on a backlog.
const EXPIRE_PER_WRITE: usize = 8;

/// Every this many writes, abandoned lock entries are dropped.
const LOCK_SWEEP_EVERY: usize = 4096;

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `max` sessions (default 100,000), anonymous ones at most half.
    ///
    /// ```
    /// let store = tether::MemoryStore::new().with_max_sessions(1_000);
    /// ```
    #[must_use]
    pub fn with_max_sessions(mut self, max: usize) -> Self {
        self.limits = SessionLimits::new(max);
        self
    }

    /// The bound and its anonymous share.
    #[must_use]
    pub fn with_limits(mut self, limits: SessionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The number of records held, including expired ones not yet swept.
    ///
    /// ```
    /// assert_eq!(tether::MemoryStore::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.state().records.len()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every expired record now; returns how many.
    ///
    /// ```
    /// assert_eq!(tether::MemoryStore::new().sweep_expired(), 0);
    /// ```
    pub fn sweep_expired(&self) -> usize {
        self.state().sweep(OffsetDateTime::now_utc())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change: every
        // mutation below is a single map operation on data computed beforehand.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live record at `id`, shared.
    fn read(&self, id: &Id) -> Option<Arc<Record>> {
        let now = OffsetDateTime::now_utc();
        self.state().live(id, now).map(|r| Arc::clone(r))
    }

    /// Merges `changes` onto the live record at `id`.
    fn merge(&self, id: &Id, changes: &Changes) -> Saved {
        let now = OffsetDateTime::now_utc();
        let mut state = self.state();
        let Some(current) = state.live(id, now) else {
            return Saved::Gone;
        };
        if changes.user.is_none() && changes.user_cap.is_none() {
            // Same user, same creation: the indexes stay as they are, and the record's
            // entry in `due` is renewed when it falls due.
            // Copied only if a request still holds the record it read.
            let record = Arc::make_mut(current);
            record.apply(changes);
            let saved = Saved::of(record);
            state.expire_due(now);
            return saved;
        }
        let previous_user = current.user.clone();
        let mut record = Record::clone(current);
        record.apply(changes);
        let (saved, record) = (Saved::of(&record), Arc::new(record));
        state.put(now, *id, record, previous_user.as_deref(), changes.user_cap);
        saved
    }
}

/// The first whole millisecond at which `record` has certainly expired. Rounding its
/// expiry down instead could find the record still live when its entry falls due,
/// and re-queue it for that same millisecond again and again.
fn due_ms(record: &Record) -> i64 {
    unix_ms::to_ms(record.expires_at()).saturating_add(1)
}

impl State {
    fn live(&mut self, id: &Id, now: OffsetDateTime) -> Option<&mut Arc<Record>> {
        if self.records.get(id)?.is_expired(now) {
            self.remove(id);
            return None;
        }
        self.records.get_mut(id)
    }

    fn remove(&mut self, id: &Id) -> Option<Arc<Record>> {
        let record = self.records.remove(id)?;
        match &record.user {
            Some(user) => self.unindex(user, id),
            None => {
                self.anonymous
                    .remove(&(unix_ms::to_ms(record.created), *id));
            }
        }
        Some(record)
    }

    /// Ends the oldest anonymous sessions until one more session fits `limits`.
    fn make_room(&mut self, limits: &SessionLimits, anonymous: bool) -> Result<()> {
        let evict = limits.to_evict(self.records.len(), self.anonymous.len(), anonymous)?;
        for _ in 0..evict {
            if let Some(&(_, oldest)) = self.anonymous.first() {
                self.remove(&oldest);
            }
        }
        Ok(())
    }

    fn unindex(&mut self, user: &str, id: &Id) {
        if let Some(ids) = self.users.get_mut(user) {
            ids.remove(id);
            if ids.is_empty() {
                self.users.remove(user);
            }
        }
    }

    /// Writes `record` under `id` at `now`, keeping the user index in step, then
    /// applies the cap and expires what has fallen due.
    fn put(
        &mut self,
        now: OffsetDateTime,
        id: Id,
        record: Arc<Record>,
        previous_user: Option<&str>,
        cap: Option<u32>,
    ) {
        if let Some(old) = previous_user
            && record.user.as_deref() != Some(old)
        {
            self.unindex(old, &id);
        }
        let anonymous_key = (unix_ms::to_ms(record.created), id);
        let due = due_ms(&record);
        // The user's name is copied only for a user new to the index, or for the cap.
        if let Some(user) = record.user.as_deref() {
            if let Some(ids) = self.users.get_mut(user) {
                ids.insert(id);
            } else {
                let mut ids = HashSet::default();
                ids.insert(id);
                self.users.insert(user.to_owned(), ids);
            }
        }
        let capped = cap.and_then(|cap| record.user.clone().map(|user| (user, cap)));
        let bound = record.user.is_some();
        let old = self.records.insert(id, record);
        if !bound {
            self.anonymous.insert(anonymous_key);
        } else if old.as_ref().is_some_and(|o| o.user.is_none()) {
            self.anonymous.remove(&anonymous_key);
        }
        if old.is_none() {
            self.due.push(Reverse((due, id)));
        }
        if let Some((user, cap)) = capped {
            self.enforce_cap(&user, &id, cap);
        }
        self.expire_due(now);
        // Entries of records removed before they fell due (deleted, evicted) stay until
        // then; a flood of short-lived sessions must not make the heap outgrow them.
        if self.due.len() > 2 * self.records.len() + 1024 {
            let records = &self.records;
            self.due.retain(|Reverse((_, id))| records.contains_key(id));
        }
        self.writes += 1;
        if self.writes.is_multiple_of(LOCK_SWEEP_EVERY) {
            let instant = Instant::now();
            self.locks.retain(|_, (_, until)| *until > instant);
        }
    }

    /// Removes the records whose entries fall due by `now` and are expired, re-queues
    /// the ones still live; at most [`EXPIRE_PER_WRITE`] entries.
    fn expire_due(&mut self, now: OffsetDateTime) {
        let now_ms = unix_ms::to_ms(now);
        for _ in 0..EXPIRE_PER_WRITE {
            let Some(&Reverse((due, id))) = self.due.peek() else {
                return;
            };
            if due > now_ms {
                return;
            }
            self.due.pop();
            let Some(record) = self.records.get(&id) else {
                continue;
            };
            if record.is_expired(now) {
                self.remove(&id);
            } else {
                let due = due_ms(record);
                self.due.push(Reverse((due, id)));
            }
        }
    }

    fn enforce_cap(&mut self, user: &str, keep: &Id, cap: u32) {
        let sessions = self
            .users
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.records.get(id).map(|r| (*id, r.created)));
        for id in tether_core::sessions_beyond_cap(sessions, keep, cap) {
            self.remove(&id);
        }
    }

    fn sweep(&mut self, now: OffsetDateTime) -> usize {
        let expired: Vec<Id> = self
            .records
            .iter()
            .filter(|(_, r)| r.is_expired(now))
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            self.remove(id);
        }
        let instant = Instant::now();
        self.locks.retain(|_, (_, until)| *until > instant);
        expired.len()
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        // Nothing leaves the process: ids need no hashing here.
        Capabilities::ALL.in_process()
    }

    async fn sweep_once(&self) -> Result<u64> {
        Ok(u64::try_from(self.sweep_expired()).unwrap_or(u64::MAX))
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let now = OffsetDateTime::now_utc();
        Ok(self.state().live(id, now).map(|r| Record::clone(r)))
    }

    async fn load_shared(&self, id: &Id) -> Result<Option<Arc<Record>>> {
        Ok(self.read(id))
    }

    fn load_ready(&self, id: &Id) -> Option<Result<Option<Arc<Record>>>> {
        Some(Ok(self.read(id)))
    }

    fn reads_at_once(&self) -> bool {
        true
    }

    async fn create(&self, id: &Id, record: &Record) -> Result<Created> {
        self.create_capped(id, record, None).await
    }

    async fn create_capped(&self, id: &Id, record: &Record, cap: Option<u32>) -> Result<Created> {
        let now = OffsetDateTime::now_utc();
        let mut state = self.state();
        if state.live(id, now).is_some() {
            return Ok(Created::IdTaken);
        }
        state.make_room(&self.limits, record.user.is_none())?;
        state.put(now, *id, Arc::new(record.clone()), None, cap);
        Ok(Created::Yes)
    }

    async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved> {
        Ok(self.merge(id, changes))
    }

    /// The same merge: the stored record is the newest, so `base` has nothing to add
    /// (and the call is not a second boxed future around `save`'s).
    async fn save_from(&self, id: &Id, _base: &Record, changes: &Changes) -> Result<Saved> {
        Ok(self.merge(id, changes))
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        let now = OffsetDateTime::now_utc();
        let mut state = self.state();
        let Some(record) = state.live(id, now) else {
            return Ok(false);
        };
        Arc::make_mut(record).touch(touch);
        Ok(true)
    }

    async fn delete(&self, id: &Id) -> Result<bool> {
        Ok(self.state().remove(id).is_some())
    }

    async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
        let now = OffsetDateTime::now_utc();
        let mut state = self.state();
        if state.live(new, now).is_some() {
            return Err(Error::IdCollision);
        }
        let Some(mut record) = state.remove(old).filter(|r| !r.is_expired(now)) else {
            return Ok(Saved::Gone);
        };
        Arc::make_mut(&mut record).apply(changes);
        let saved = Saved::of(&record);
        state.put(now, *new, record, None, changes.user_cap);
        Ok(saved)
    }

    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>> {
        let now = OffsetDateTime::now_utc();
        let state = self.state();
        let mut sessions: Vec<SessionInfo> = state
            .users
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| {
                state
                    .records
                    .get(id)
                    .filter(|r| !r.is_expired(now))
                    .map(|r| r.info(*id))
            })
            .collect();
        sessions.sort_by_key(|s| s.created);
        Ok(sessions)
    }

    async fn delete_user_sessions(&self, user: &str) -> Result<u64> {
        let now = OffsetDateTime::now_utc();
        let mut state = self.state();
        let ids: Vec<Id> = state
            .users
            .get(user)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        let mut ended = 0;
        for id in ids {
            if let Some(record) = state.remove(&id)
                && !record.is_expired(now)
            {
                ended += 1;
            }
        }
        Ok(ended)
    }

    async fn lock(&self, id: &Id, options: &LockOptions) -> Result<LockToken> {
        let token = LockToken::generate()?;
        let give_up = Instant::now() + options.wait;
        loop {
            // Registered before the check so a release between check and wait is not missed.
            let notified = self.unlocked.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let holder_until = {
                let mut state = self.state();
                let instant = Instant::now();
                match state.locks.get(id) {
                    Some((_, until)) if *until > instant => Some(*until),
                    _ => {
                        state
                            .locks
                            .insert(*id, (token.clone(), instant + options.ttl));
                        None
                    }
                }
            };
            let Some(holder_until) = holder_until else {
                return Ok(token);
            };
            let now = Instant::now();
            if now >= give_up {
                return Err(Error::LockTimeout(options.wait));
            }
            let wake = give_up.min(holder_until);
            let _ = tokio::time::timeout_at(wake.into(), notified).await;
        }
    }

    async fn unlock(&self, id: &Id, token: &LockToken) -> Result<()> {
        let mut state = self.state();
        if state.locks.get(id).is_some_and(|(held, _)| held == token) {
            state.locks.remove(id);
            drop(state);
            self.unlocked.notify_waiters();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
