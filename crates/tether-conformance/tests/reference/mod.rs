//! The reference store the defect tests run the suite on: a small in-memory store
//! whose defects are switched on one at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tether_core::{
    Capabilities, Changes, Created, Error, Expiry, Id, LockOptions, LockToken, LockWait, Record,
    Result, Saved, SessionInfo, SessionStore, Touch, async_trait, sessions_beyond_cap,
};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Defect {
    None,
    AdoptsUnknownIds,
    CreateOverwrites,
    Resurrects,
    LosesConcurrentKeys,
    DeepMergesValues,
    NoVersionBump,
    MangledHostileKeys,
    TruncatesLargeRecords,
    IgnoresLocks,
    UnlocksForAnyToken,
    LocksNeverExpire,
    CycleKeepsOldId,
    CycleAdoptsUnknownIds,
    NoIdleExpiry,
    NoAbsoluteExpiry,
    TouchDoesNothing,
    TouchAlwaysTrue,
    ListsDeletedSessions,
    IgnoresRebinding,
    DeleteAllMissesSome,
    IgnoresCap,
    UserNamePrefixMatch,
    FakesMissingUserIndex,
    FakesMissingLocks,
    SwallowsErrors,
    DeleteAlwaysTrue,
    DropsUserOnCreate,
    ReplacesDataWithChanges,
    ReportsUncappedExpiry,
    IgnoresCapOnCreate,
    IgnoresOwnLifetime,
    MisreportsCookieKind,
    /// `save_from` writes the record it was given with the changes applied, whatever
    /// happened to the stored one since.
    BlindSaveFrom,
    /// As `BlindSaveFrom`, for a record of more than 1 KiB only (a store that takes
    /// another path for large records, with a defect there).
    BlindSaveFromWhenLarge,
    /// `load_ready` answers from the map without looking at the deadlines.
    ReadyIgnoresExpiry,
}

#[derive(Debug)]
pub(crate) struct Reference {
    defect: Defect,
    down: bool,
    records: Mutex<HashMap<Id, Record>>,
    locks: Mutex<HashMap<Id, (LockToken, Instant)>>,
}

impl Reference {
    /// What a write reports: the record's expiry, or (defect) the requested one.
    fn saved(&self, record: &Record, changes: &Changes) -> Saved {
        if self.is(Defect::ReportsUncappedExpiry) {
            return Saved::Version {
                version: record.version,
                expires_at: changes.idle_deadline,
                browser_session: None,
            };
        }
        match Saved::of(record) {
            Saved::Version {
                version,
                expires_at,
                ..
            } if self.is(Defect::MisreportsCookieKind) => Saved::Version {
                version,
                expires_at,
                browser_session: None,
            },
            saved => saved,
        }
    }

    pub(crate) fn new(defect: Defect) -> Self {
        Self {
            defect,
            down: false,
            records: Mutex::default(),
            locks: Mutex::default(),
        }
    }

    pub(crate) fn unavailable(defect: Defect) -> Self {
        Self {
            down: true,
            ..Self::new(defect)
        }
    }

    /// The record at `id` as both reads answer it, with the store's defects (and,
    /// `ignore_expiry`, none of the deadlines).
    fn read(&self, id: &Id, ignore_expiry: bool) -> Result<Option<Record>> {
        self.check_up()?;
        let now = OffsetDateTime::now_utc();
        let mut records = self.records.lock().unwrap();
        match records.get(id) {
            Some(r) if ignore_expiry || !self.expired(r, now) => Ok(Some(r.clone())),
            None if self.is(Defect::AdoptsUnknownIds) => {
                // Adopted for good, so both reads answer the same session.
                let adopted = Record::new(now, &Expiry::default());
                records.insert(*id, adopted.clone());
                Ok(Some(adopted))
            }
            _ => Ok(None),
        }
    }

    fn check_up(&self) -> Result<()> {
        if self.down && !self.is(Defect::SwallowsErrors) {
            return Err(Error::Unavailable {
                context: "reference store is down".into(),
                source: None,
            });
        }
        Ok(())
    }

    fn is(&self, d: Defect) -> bool {
        self.defect == d
    }

    fn expired(&self, r: &Record, now: OffsetDateTime) -> bool {
        if self.is(Defect::NoIdleExpiry) {
            return r.absolute_deadline.is_some_and(|a| now >= a);
        }
        if self.is(Defect::NoAbsoluteExpiry) {
            return now >= r.idle_deadline;
        }
        r.is_expired(now)
    }

    fn apply(&self, r: &mut Record, c: &Changes) {
        let before = r.clone();
        r.apply(c);
        if self.is(Defect::IgnoresOwnLifetime) {
            // The request's idle deadline, as if the session had no lifetime of its own.
            r.idle_deadline = r
                .absolute_deadline
                .map_or(c.idle_deadline, |a| a.min(c.idle_deadline));
        }
        if self.is(Defect::DeepMergesValues) {
            for (k, v) in &c.updates {
                if let (
                    Some(serde_json::Value::Object(old)),
                    Some(serde_json::Value::Object(new)),
                ) = (before.data.get(k), v)
                {
                    let mut merged = old.clone();
                    merged.extend(new.clone());
                    r.data.insert(k.clone(), merged.into());
                }
            }
        }
        if self.is(Defect::ReplacesDataWithChanges) {
            r.data = c
                .updates
                .iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                .collect();
        }
        if self.is(Defect::NoVersionBump) {
            r.version = before.version;
        }
        if self.is(Defect::IgnoresRebinding) && before.user.is_some() {
            r.user.clone_from(&before.user);
        }
        if self.is(Defect::MangledHostileKeys) {
            r.data = r
                .data
                .iter()
                .map(|(k, v)| (k.replace('.', "_"), v.clone()))
                .collect();
        }
        if self.is(Defect::NoAbsoluteExpiry) {
            r.idle_deadline = c.idle_deadline;
        }
    }

    fn matches_user(&self, r: &Record, user: &str) -> bool {
        match &r.user {
            Some(u) if self.is(Defect::UserNamePrefixMatch) => u.starts_with(user),
            Some(u) => u == user,
            None => false,
        }
    }

    fn enforce_cap(records: &mut HashMap<Id, Record>, keep: &Id, user: &str, cap: u32) {
        let sessions: Vec<(Id, OffsetDateTime)> = records
            .iter()
            .filter(|(_, r)| r.user.as_deref() == Some(user))
            .map(|(id, r)| (*id, r.created))
            .collect();
        for id in sessions_beyond_cap(sessions, keep, cap) {
            records.remove(&id);
        }
    }
}

#[async_trait]
impl SessionStore for Reference {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
            .with_user_index(!self.is(Defect::FakesMissingUserIndex))
            .with_locking(!self.is(Defect::FakesMissingLocks))
    }

    fn load_ready(&self, id: &Id) -> Option<Result<Option<Arc<Record>>>> {
        if self.down && !self.is(Defect::SwallowsErrors) {
            return None;
        }
        let ignore_expiry = self.is(Defect::ReadyIgnoresExpiry);
        Some(self.read(id, ignore_expiry).map(|r| r.map(Arc::new)))
    }

    fn reads_at_once(&self) -> bool {
        true
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        self.read(id, false)
    }

    async fn create(&self, id: &Id, record: &Record) -> Result<Created> {
        self.check_up()?;
        let mut records = self.records.lock().unwrap();
        if records.contains_key(id) && !self.is(Defect::CreateOverwrites) {
            return Ok(Created::IdTaken);
        }
        let mut record = record.clone();
        if self.is(Defect::DropsUserOnCreate) {
            record.user = None;
        }
        if self.is(Defect::TruncatesLargeRecords) && record.data.len() > 100 {
            record.data = record.data.into_iter().take(100).collect();
        }
        records.insert(*id, record);
        Ok(Created::Yes)
    }

    async fn save_from(&self, id: &Id, base: &Record, changes: &Changes) -> Result<Saved> {
        let large = || serde_json::to_vec(&base.data).map_or(0, |v| v.len()) > 1024;
        if self.is(Defect::BlindSaveFrom) || (self.is(Defect::BlindSaveFromWhenLarge) && large()) {
            self.check_up()?;
            let mut record = base.clone();
            self.apply(&mut record, changes);
            let saved = self.saved(&record, changes);
            self.records.lock().unwrap().insert(*id, record);
            return Ok(saved);
        }
        self.save(id, changes).await
    }

    async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved> {
        self.check_up()?;
        let now = OffsetDateTime::now_utc();
        if self.is(Defect::LosesConcurrentKeys) {
            // Read, modify, write back the whole record: the classic lost update.
            let snapshot = self.records.lock().unwrap().get(id).cloned();
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            let Some(mut r) = snapshot else {
                return Ok(Saved::Gone);
            };
            self.apply(&mut r, changes);
            let saved = self.saved(&r, changes);
            self.records.lock().unwrap().insert(*id, r);
            return Ok(saved);
        }
        let mut records = self.records.lock().unwrap();
        match records.get_mut(id) {
            Some(r) if !self.expired(r, now) => {
                self.apply(r, changes);
                let saved = self.saved(r, changes);
                if let (Some(user), Some(cap)) = (r.user.clone(), changes.user_cap)
                    && !self.is(Defect::IgnoresCap)
                {
                    Self::enforce_cap(&mut records, id, &user, cap);
                }
                Ok(saved)
            }
            _ if self.is(Defect::Resurrects) || self.is(Defect::AdoptsUnknownIds) => {
                let mut r = Record::new(now, &Expiry::default());
                self.apply(&mut r, changes);
                let saved = self.saved(&r, changes);
                records.insert(*id, r);
                Ok(saved)
            }
            _ => Ok(Saved::Gone),
        }
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        self.check_up()?;
        let now = OffsetDateTime::now_utc();
        let mut records = self.records.lock().unwrap();
        match records.get_mut(id) {
            Some(r) if !self.expired(r, now) => {
                if !self.is(Defect::TouchDoesNothing) {
                    r.last_seen = touch.last_seen;
                    let wanted = match r.lifetime {
                        Some(l) if !self.is(Defect::IgnoresOwnLifetime) => {
                            l.idle_deadline(touch.last_seen)
                        }
                        _ => touch.idle_deadline,
                    };
                    r.idle_deadline = if self.is(Defect::NoAbsoluteExpiry) {
                        wanted
                    } else {
                        r.absolute_deadline.map_or(wanted, |a| a.min(wanted))
                    };
                }
                Ok(true)
            }
            _ => Ok(self.is(Defect::TouchAlwaysTrue)),
        }
    }

    async fn create_capped(&self, id: &Id, record: &Record, cap: Option<u32>) -> Result<Created> {
        let created = self.create(id, record).await?;
        if let (Created::Yes, Some(user), Some(cap)) = (created, &record.user, cap)
            && !self.is(Defect::IgnoresCapOnCreate)
        {
            let mut records = self.records.lock().unwrap();
            Self::enforce_cap(&mut records, id, user, cap);
        }
        Ok(created)
    }

    async fn delete(&self, id: &Id) -> Result<bool> {
        self.check_up()?;
        let removed = self.records.lock().unwrap().remove(id).is_some();
        Ok(removed || self.is(Defect::DeleteAlwaysTrue))
    }

    async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
        self.check_up()?;
        let now = OffsetDateTime::now_utc();
        let mut records = self.records.lock().unwrap();
        let current = if self.is(Defect::CycleKeepsOldId) {
            records.get(old).cloned()
        } else {
            records.remove(old)
        };
        let current = current.or_else(|| {
            self.is(Defect::CycleAdoptsUnknownIds)
                .then(|| Record::new(now, &Expiry::default()))
        });
        match current {
            Some(mut r) if !self.expired(&r, now) => {
                self.apply(&mut r, changes);
                let saved = self.saved(&r, changes);
                records.insert(*new, r);
                Ok(saved)
            }
            _ => Ok(Saved::Gone),
        }
    }

    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>> {
        if self.is(Defect::FakesMissingUserIndex) {
            return Ok(Vec::new());
        }
        self.check_up()?;
        let now = OffsetDateTime::now_utc();
        let records = self.records.lock().unwrap();
        let mut list: Vec<SessionInfo> = records
            .iter()
            .filter(|(_, r)| self.matches_user(r, user))
            .filter(|(_, r)| self.is(Defect::ListsDeletedSessions) || !self.expired(r, now))
            .map(|(id, r)| r.info(*id))
            .collect();
        list.sort_by_key(|s| s.created);
        Ok(list)
    }

    async fn delete_user_sessions(&self, user: &str) -> Result<u64> {
        if self.is(Defect::FakesMissingUserIndex) {
            return Ok(0);
        }
        self.check_up()?;
        let mut records = self.records.lock().unwrap();
        let mut ids: Vec<Id> = records
            .iter()
            .filter(|(_, r)| self.matches_user(r, user))
            .map(|(id, _)| *id)
            .collect();
        if self.is(Defect::DeleteAllMissesSome) {
            ids.truncate(1);
        }
        for id in &ids {
            records.remove(id);
        }
        Ok(ids.len() as u64)
    }

    async fn lock(&self, id: &Id, options: &LockOptions) -> Result<LockToken> {
        if self.is(Defect::FakesMissingLocks) {
            return LockToken::generate();
        }
        self.check_up()?;
        let token = LockToken::generate()?;
        if self.is(Defect::IgnoresLocks) {
            return Ok(token);
        }
        let mut wait = LockWait::new(options.wait);
        loop {
            {
                let mut locks = self.locks.lock().unwrap();
                let now = Instant::now();
                let free = match locks.get(id) {
                    None => true,
                    Some((_, until)) => *until <= now && !self.is(Defect::LocksNeverExpire),
                };
                if free {
                    locks.insert(*id, (token.clone(), now + options.ttl));
                    return Ok(token);
                }
            }
            tokio::time::sleep(wait.next_pause()?).await;
        }
    }

    async fn unlock(&self, id: &Id, token: &LockToken) -> Result<()> {
        if self.is(Defect::FakesMissingLocks) {
            return Ok(());
        }
        let mut locks = self.locks.lock().unwrap();
        if self.is(Defect::UnlocksForAnyToken) || locks.get(id).is_some_and(|(t, _)| t == token) {
            locks.remove(id);
        }
        Ok(())
    }
}
