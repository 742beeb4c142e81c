//! The replicated state and its merge rules, with no I/O.
//!
//! Each key of a session remembers the stamp of its last write (set or removal); a
//! write wins over another of the same key when its stamp is later. A `clear` removes
//! every key written before it. A deleted session becomes a tombstone that no later
//! message brings back. Applying the same events in any order, or merging snapshots,
//! gives every node the same state.

// A user change mirrors `tether_core::Changes::user`: `None` keeps the binding,
// `Some(None)` unbinds, `Some(Some(u))` binds.
#![allow(clippy::option_option)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tether_core::{Id, Record, SessionInfo, unix_ms};
use time::OffsetDateTime;

use crate::clock::Stamp;

/// One live session with the stamps its merge needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) record: Record,
    /// The stamp of the last write of each key, removals included.
    keys: BTreeMap<String, Stamp>,
    /// Keys written before this stamp are gone.
    cleared: Stamp,
    /// The stamp of the last change of the user binding.
    user_at: Stamp,
}

/// A session's slot: live, or a tombstone recording when it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Slot {
    Live(Entry),
    Dead(Stamp),
}

/// A session's metadata as the writer saw it after its change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) version: u64,
    pub(crate) created: i64,
    pub(crate) last_seen: i64,
    pub(crate) idle_deadline: i64,
    pub(crate) absolute_deadline: Option<i64>,
    /// `Some` when this change (re)bound the user.
    pub(crate) user: Option<Option<String>>,
    /// The session's own lifetime (`Lifetime::to_ms`), fixed when it was created.
    #[serde(default)]
    pub(crate) lifetime: Option<i64>,
}

/// One change, as applied locally and sent to peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Op {
    Upsert {
        id: Id,
        meta: Meta,
        clear: bool,
        updates: BTreeMap<String, Option<Value>>,
    },
    Touch {
        id: Id,
        last_seen: i64,
        idle_deadline: i64,
    },
    Delete {
        id: Id,
    },
}

/// A change and its place in the total order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Event {
    pub(crate) stamp: Stamp,
    pub(crate) op: Op,
}

impl Meta {
    pub(crate) fn of(record: &Record, user: Option<Option<String>>) -> Self {
        Self {
            version: record.version,
            created: unix_ms::to_ms(record.created),
            last_seen: unix_ms::to_ms(record.last_seen),
            idle_deadline: unix_ms::to_ms(record.idle_deadline),
            absolute_deadline: record.absolute_deadline.map(unix_ms::to_ms),
            user,
            lifetime: record.lifetime.map(|l| l.to_ms()),
        }
    }
}

/// Every session this node knows, live or ended.
///
/// Besides the slots it keeps two orders: anonymous sessions (no user bound) by
/// creation, so the oldest can make room for a login; tombstones by stamp, so the
/// oldest can go first when there are too many.
#[derive(Debug, Default)]
pub(crate) struct State {
    slots: BTreeMap<Id, Slot>,
    users: HashMap<String, BTreeSet<Id>>,
    live: usize,
    anonymous: BTreeSet<(i64, Id)>,
    tombstones: BTreeSet<(Stamp, Id)>,
    /// Events stamped at or before this are refused: a tombstone that old may have
    /// been dropped (over the cap), so such an event could bring a session back.
    horizon: Stamp,
}

impl State {
    /// The live, unexpired record under `id`.
    pub(crate) fn get(&self, id: &Id, now: OffsetDateTime) -> Option<&Record> {
        match self.slots.get(id) {
            Some(Slot::Live(e)) if !e.record.is_expired(now) => Some(&e.record),
            _ => None,
        }
    }

    /// Whether `id` was ever used here (live, expired or ended).
    pub(crate) fn known(&self, id: &Id) -> bool {
        self.slots.contains_key(id)
    }

    /// Live sessions, expired ones not yet swept included.
    pub(crate) fn live_count(&self) -> usize {
        self.live
    }

    pub(crate) fn tombstones(&self) -> usize {
        self.slots.len() - self.live
    }

    /// Live sessions bound to no user.
    pub(crate) fn anonymous_count(&self) -> usize {
        self.anonymous.len()
    }

    /// The oldest anonymous session, the first to make room.
    pub(crate) fn oldest_anonymous(&self) -> Option<Id> {
        self.anonymous.first().map(|(_, id)| *id)
    }

    /// Events at or before this stamp are refused.
    pub(crate) fn horizon(&self) -> Stamp {
        self.horizon
    }

    /// Drops the oldest tombstones beyond `max`, moving the horizon past them.
    pub(crate) fn bound_tombstones(&mut self, max: usize) -> usize {
        let mut dropped = 0;
        while self.tombstones.len() > max {
            let Some((stamp, id)) = self.tombstones.pop_first() else {
                break;
            };
            self.slots.remove(&id);
            self.horizon = self.horizon.max(stamp);
            dropped += 1;
        }
        dropped
    }

    pub(crate) fn user_sessions(&self, user: &str, now: OffsetDateTime) -> Vec<SessionInfo> {
        let mut list: Vec<SessionInfo> = self
            .users
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.get(id, now).map(|r| r.info(*id)))
            .collect();
        list.sort_by_key(|s| s.created);
        list
    }

    /// Keeps the user index and the anonymous order in step with a binding change of a
    /// live session (`before`/`after`: `None` = not live).
    fn index(&mut self, id: Id, before: Binding<'_>, after: Binding<'_>) {
        if let Some((created, user)) = before {
            match user {
                Some(user) => {
                    if let Some(ids) = self.users.get_mut(user) {
                        ids.remove(&id);
                        if ids.is_empty() {
                            self.users.remove(user);
                        }
                    }
                }
                None => {
                    self.anonymous.remove(&(created, id));
                }
            }
        }
        if let Some((created, user)) = after {
            match user {
                Some(user) => {
                    self.users.entry(user.to_owned()).or_default().insert(id);
                }
                None => {
                    self.anonymous.insert((created, id));
                }
            }
        }
    }

    fn set_dead(&mut self, id: Id, stamp: Stamp) {
        if let Some(Slot::Dead(old)) = self.slots.insert(id, Slot::Dead(stamp)) {
            self.tombstones.remove(&(old, id));
        }
        self.tombstones.insert((stamp, id));
    }

    fn kill(&mut self, id: Id, stamp: Stamp) {
        match self.slots.get(&id) {
            Some(Slot::Dead(old)) if *old >= stamp => {}
            Some(Slot::Live(e)) => {
                let (created, user) = binding(&e.record);
                self.index(id, Some((created, user.as_deref())), None);
                self.set_dead(id, stamp);
                self.live -= 1;
            }
            Some(Slot::Dead(_)) | None => self.set_dead(id, stamp),
        }
    }

    /// Applies one event, local or remote.
    pub(crate) fn apply(&mut self, event: &Event) {
        let stamp = event.stamp;
        match &event.op {
            Op::Delete { id } => self.kill(*id, stamp),
            Op::Touch {
                id,
                last_seen,
                idle_deadline,
            } => {
                if let Some(Slot::Live(e)) = self.slots.get_mut(id) {
                    extend(&mut e.record, *last_seen, *idle_deadline);
                }
            }
            Op::Upsert {
                id,
                meta,
                clear,
                updates,
            } => {
                if matches!(self.slots.get(id), Some(Slot::Dead(_))) {
                    return;
                }
                let before = if let Some(Slot::Live(e)) = self.slots.get(id) {
                    Some(binding(&e.record))
                } else {
                    // Unknown here: it may be a session whose tombstone was dropped.
                    if stamp <= self.horizon {
                        return;
                    }
                    self.slots.insert(*id, Slot::Live(Entry::from_meta(meta)));
                    self.live += 1;
                    None
                };
                let Some(Slot::Live(entry)) = self.slots.get_mut(id) else {
                    return;
                };
                if *clear {
                    entry.clear_before(stamp);
                }
                for (key, value) in updates {
                    entry.write(key, value.as_ref(), stamp);
                }
                if let Some(user) = &meta.user
                    && stamp > entry.user_at
                {
                    entry.record.user.clone_from(user);
                    entry.user_at = stamp;
                }
                entry.absorb(meta);
                let after = binding(&entry.record);
                self.index(
                    *id,
                    before.as_ref().map(|(c, u)| (*c, u.as_deref())),
                    Some((after.0, after.1.as_deref())),
                );
            }
        }
    }

    /// Every slot.
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> Vec<(Id, Slot)> {
        self.slots.iter().map(|(id, s)| (*id, s.clone())).collect()
    }

    /// The slots after `after` (all from the start when `None`), in id order, until
    /// their encoded size reaches `budget` bytes (at least one slot); with the id to
    /// continue after, if any is left.
    pub(crate) fn snapshot_page(
        &self,
        after: Option<Id>,
        budget: usize,
    ) -> (Vec<(Id, Slot)>, Option<Id>) {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page = Vec::new();
        let mut size = 0;
        for (id, slot) in self.slots.range((start, Bound::Unbounded)) {
            if size >= budget
                && let Some(&(last, _)) = page.last()
            {
                return (page, Some(last));
            }
            size += serde_json::to_vec(slot).map_or(0, |v| v.len()) + 32;
            page.push((*id, slot.clone()));
        }
        (page, None)
    }

    /// Merges a peer's slot: the result is the same whichever side merges.
    pub(crate) fn merge(&mut self, id: Id, remote: Slot) {
        match remote {
            Slot::Dead(stamp) => self.kill(id, stamp),
            Slot::Live(remote) => match self.slots.get_mut(&id) {
                Some(Slot::Dead(_)) => {}
                // Unknown here, and written no later than a dropped tombstone: it may be
                // a session that ended, so it is not brought back.
                None if remote.newest() <= self.horizon => {}
                None => {
                    let (created, user) = binding(&remote.record);
                    self.slots.insert(id, Slot::Live(remote));
                    self.live += 1;
                    self.index(id, None, Some((created, user.as_deref())));
                }
                Some(Slot::Live(local)) => {
                    let before = binding(&local.record);
                    local.merge(&remote);
                    let after = binding(&local.record);
                    self.index(
                        id,
                        Some((before.0, before.1.as_deref())),
                        Some((after.0, after.1.as_deref())),
                    );
                }
            },
        }
    }

    /// Drops expired sessions, and tombstones older than `tombstone_ms` whose stamp is
    /// before `acked_ms` (every peer has them, so none can send the session back).
    pub(crate) fn sweep(&mut self, now: OffsetDateTime, tombstone_ms: i64, acked_ms: i64) -> usize {
        let now_ms = unix_ms::to_ms(now);
        let expired: Vec<(Id, i64, Option<String>)> = self
            .slots
            .iter()
            .filter_map(|(id, slot)| match slot {
                Slot::Live(e) if e.record.is_expired(now) => {
                    let (created, user) = binding(&e.record);
                    Some((*id, created, user))
                }
                _ => None,
            })
            .collect();
        for (id, created, user) in &expired {
            self.slots.remove(id);
            self.live -= 1;
            self.index(*id, Some((*created, user.as_deref())), None);
        }
        let mut dropped = 0;
        while let Some(&(stamp, id)) = self.tombstones.first() {
            if now_ms - stamp.ms <= tombstone_ms || stamp.ms >= acked_ms {
                break;
            }
            self.tombstones.pop_first();
            self.slots.remove(&id);
            dropped += 1;
        }
        expired.len() + dropped
    }
}

/// A live session's place in the indexes: its creation (ms) and user.
type Binding<'a> = Option<(i64, Option<&'a str>)>;

fn binding(record: &Record) -> (i64, Option<String>) {
    (unix_ms::to_ms(record.created), record.user.clone())
}

fn extend(record: &mut Record, last_seen: i64, idle_deadline: i64) {
    record.last_seen = record.last_seen.max(unix_ms::from_ms(last_seen));
    let deadline = record.idle_deadline.max(unix_ms::from_ms(idle_deadline));
    record.idle_deadline = record
        .absolute_deadline
        .map_or(deadline, |a| a.min(deadline));
}

impl Entry {
    fn from_meta(meta: &Meta) -> Self {
        let created = unix_ms::from_ms(meta.created);
        Self {
            record: Record {
                data: serde_json::Map::new(),
                version: 0,
                created,
                last_seen: created,
                idle_deadline: unix_ms::from_ms(meta.idle_deadline),
                absolute_deadline: meta.absolute_deadline.map(unix_ms::from_ms),
                user: None,
                lifetime: meta.lifetime.and_then(tether_core::Lifetime::from_ms),
            },
            keys: BTreeMap::new(),
            cleared: Stamp::ZERO,
            user_at: Stamp::ZERO,
        }
    }

    /// The stamp of the entry's latest write of any kind.
    fn newest(&self) -> Stamp {
        self.keys
            .values()
            .copied()
            .chain([self.cleared, self.user_at])
            .max()
            .unwrap_or(Stamp::ZERO)
    }

    fn clear_before(&mut self, stamp: Stamp) {
        if stamp <= self.cleared {
            return;
        }
        self.cleared = stamp;
        let gone: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, at)| **at < stamp)
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.keys.remove(&key);
            self.record.data.remove(&key);
        }
    }

    fn write(&mut self, key: &str, value: Option<&Value>, stamp: Stamp) {
        if stamp < self.cleared || self.keys.get(key).is_some_and(|at| *at >= stamp) {
            return;
        }
        match value {
            Some(v) => {
                self.record.data.insert(key.to_owned(), v.clone());
            }
            None => {
                self.record.data.remove(key);
            }
        }
        self.keys.insert(key.to_owned(), stamp);
    }

    fn absorb(&mut self, meta: &Meta) {
        let r = &mut self.record;
        r.version = r.version.max(meta.version);
        r.created = r.created.min(unix_ms::from_ms(meta.created));
        if r.absolute_deadline.is_none() {
            r.absolute_deadline = meta.absolute_deadline.map(unix_ms::from_ms);
        }
        if r.lifetime.is_none() {
            r.lifetime = meta.lifetime.and_then(tether_core::Lifetime::from_ms);
        }
        extend(r, meta.last_seen, meta.idle_deadline);
    }

    fn merge(&mut self, remote: &Entry) {
        self.clear_before(remote.cleared);
        for (key, at) in &remote.keys {
            self.write(key, remote.record.data.get(key), *at);
        }
        if remote.user_at > self.user_at {
            self.record.user.clone_from(&remote.record.user);
            self.user_at = remote.user_at;
        }
        let meta = Meta::of(&remote.record, None);
        self.absorb(&meta);
    }
}

#[cfg(test)]
mod tests;
