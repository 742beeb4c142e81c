//! `ReplicatedStore`'s [`SessionStore`] impl: every operation applied to this
//! instance's state, then queued for the peers.

use tether_core::{
    Capabilities, Changes, Created, Error, Id, Record, Result, Saved, SessionInfo, SessionStore,
    Touch, async_trait, unix_ms,
};
use time::OffsetDateTime;

use crate::state::{Meta, Op};
use crate::{ReplicatedStore, lock};

#[async_trait]
impl SessionStore for ReplicatedStore {
    fn name(&self) -> &'static str {
        "replicated"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL.with_locking(false)
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        self.read(id)
    }

    fn load_ready(&self, id: &Id) -> Option<Result<Option<std::sync::Arc<Record>>>> {
        Some(self.read(id).map(|record| record.map(std::sync::Arc::new)))
    }

    fn reads_at_once(&self) -> bool {
        true
    }

    async fn create(&self, id: &Id, record: &Record) -> Result<Created> {
        self.create_capped(id, record, None).await
    }

    async fn create_capped(&self, id: &Id, record: &Record, cap: Option<u32>) -> Result<Created> {
        if cap.is_some() && record.user.is_some() {
            // The cap ends the user's other sessions: all of them must be known here.
            self.ensure_ready("creating a session with a per-user cap")?;
        }
        self.ensure_joined("creating a session")?;
        self.check_size(record)?;
        let marks = {
            let mut state = lock(&self.inner.state);
            if state.known(id) {
                return Ok(Created::IdTaken);
            }
            self.make_room(&mut state, record.user.is_none())?;
            self.upsert_whole(&mut state, Vec::new(), *id, record);
            if let (Some(user), Some(cap)) = (&record.user, cap) {
                self.enforce_cap(&mut state, user, id, cap);
            }
            self.marks()
        };
        self.settle(marks).await;
        Ok(Created::Yes)
    }

    async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved> {
        self.ensure_ready("saving a session")?;
        let (saved, marks) = {
            let mut state = lock(&self.inner.state);
            let Some(current) = state.get(id, OffsetDateTime::now_utc()) else {
                return Ok(Saved::Gone);
            };
            let mut after = current.clone();
            after.apply(changes);
            self.check_size(&after)?;
            let op = Op::Upsert {
                id: *id,
                meta: Meta::of(&after, changes.user.clone()),
                clear: changes.clear,
                updates: changes.updates.clone(),
            };
            self.publish(&mut state, vec![op]);
            if let (Some(user), Some(cap)) = (&after.user, changes.user_cap) {
                self.enforce_cap(&mut state, user, id, cap);
            }
            // A login or logout must be seen by the next request wherever it lands; a
            // data change may trail by the replication lag.
            (
                Saved::of(&after),
                (changes.user.is_some() || changes.clear).then(|| self.marks()),
            )
        };
        if let Some(marks) = marks {
            self.settle(marks).await;
        }
        Ok(saved)
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        self.ensure_ready("touching a session")?;
        let mut state = lock(&self.inner.state);
        let Some(record) = state.get(id, OffsetDateTime::now_utc()) else {
            return Ok(false);
        };
        // A session with a lifetime of its own is refreshed by it.
        let deadline = record
            .lifetime
            .map_or(touch.idle_deadline, |l| l.idle_deadline(touch.last_seen));
        let op = Op::Touch {
            id: *id,
            last_seen: unix_ms::to_ms(touch.last_seen),
            idle_deadline: unix_ms::to_ms(deadline),
        };
        self.publish(&mut state, vec![op]);
        Ok(true)
    }

    async fn delete(&self, id: &Id) -> Result<bool> {
        self.ensure_ready("deleting a session")?;
        let marks = {
            let mut state = lock(&self.inner.state);
            if state.get(id, OffsetDateTime::now_utc()).is_none() {
                return Ok(false);
            }
            self.publish(&mut state, vec![Op::Delete { id: *id }]);
            self.marks()
        };
        self.settle(marks).await;
        Ok(true)
    }

    async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
        self.ensure_ready("rotating a session id")?;
        let (saved, marks) = {
            let mut state = lock(&self.inner.state);
            let Some(current) = state.get(old, OffsetDateTime::now_utc()) else {
                return Ok(Saved::Gone);
            };
            if state.known(new) {
                return Err(Error::IdCollision);
            }
            let mut moved = current.clone();
            moved.apply(changes);
            self.check_size(&moved)?;
            self.upsert_whole(&mut state, vec![Op::Delete { id: *old }], *new, &moved);
            if let (Some(user), Some(cap)) = (&moved.user, changes.user_cap) {
                self.enforce_cap(&mut state, user, new, cap);
            }
            (Saved::of(&moved), self.marks())
        };
        self.settle(marks).await;
        Ok(saved)
    }

    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>> {
        self.ensure_ready("listing a user's sessions")?;
        Ok(lock(&self.inner.state).user_sessions(user, OffsetDateTime::now_utc()))
    }

    async fn delete_user_sessions(&self, user: &str) -> Result<u64> {
        self.ensure_ready("ending a user's sessions")?;
        let (ended, marks) = {
            let mut state = lock(&self.inner.state);
            let ids: Vec<Id> = state
                .user_sessions(user, OffsetDateTime::now_utc())
                .into_iter()
                .map(|s| s.id)
                .collect();
            let ended = ids.len() as u64;
            self.publish(
                &mut state,
                ids.into_iter().map(|id| Op::Delete { id }).collect(),
            );
            (ended, self.marks())
        };
        self.settle(marks).await;
        Ok(ended)
    }
}

impl ReplicatedStore {
    /// The live record at `id`, from this instance's state: never waits.
    fn read(&self, id: &Id) -> Result<Option<Record>> {
        self.ensure_ready("loading a session")?;
        Ok(lock(&self.inner.state)
            .get(id, OffsetDateTime::now_utc())
            .cloned())
    }
}
