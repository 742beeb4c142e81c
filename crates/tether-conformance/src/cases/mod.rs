//! The cases, one module per area of the contract. Each returns `Err(why)` when the
//! store breaks it.

// Every case module works with the same few helpers below, and the catalogue lists
// every case of every module: glob imports say exactly that.
#![allow(clippy::wildcard_imports)]

use std::collections::HashSet;
use std::time::Duration;

use futures_util::FutureExt as _;
use serde_json::{Value, json};
use tether_core::{
    Changes, Created, Error, Expiry, ID_LEN, Id, LockOptions, LockToken, Record, Saved, Touch,
    unix_ms,
};
use time::OffsetDateTime;

use crate::{Case, DynStore, Outcome};

type CaseResult = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

macro_rules! case {
    ($name:ident, $contract:expr) => {
        Case {
            name: stringify!($name),
            contract: $contract,
            run: |store, unavailable| {
                async move { into_outcome($name(store, unavailable).await) }.boxed()
            },
        }
    };
}

mod expiry;
mod failure;
mod ids;
mod lifetime;
mod locks;
mod rotation;
mod saves;
mod users;

use expiry::*;
use failure::*;
use ids::*;
use lifetime::*;
use locks::*;
use rotation::*;
use saves::*;
use users::*;

/// Every case, in contract order.
pub static CASES: &[Case] = &[
    case!(id_shape_and_strictness, 1),
    case!(unknown_id_loads_none, 1),
    case!(save_to_unknown_id_is_gone, 1),
    case!(create_and_load_round_trip, 1),
    case!(create_never_overwrites, 1),
    case!(hostile_keys_and_values_round_trip, 9),
    case!(large_record_round_trips, 9),
    case!(save_after_delete_does_not_resurrect, 3),
    case!(delete_reports_existence, 3),
    case!(save_merges_only_changed_keys, 4),
    case!(version_moves_forward, 4),
    case!(concurrent_saves_of_different_keys_all_persist, 4),
    case!(concurrent_saves_of_one_key_leave_one_written_value, 4),
    case!(save_from_a_stale_read_merges_and_never_resurrects, 4),
    case!(lock_serialises_concurrent_increments, 4),
    case!(lock_wait_times_out_with_clear_error, 4),
    case!(lock_released_only_by_its_owner, 4),
    case!(lock_of_dead_holder_expires, 4),
    case!(cycle_id_moves_data_and_kills_old_id, 5),
    case!(cycle_id_of_unknown_id_is_gone, 5),
    case!(idle_expiry_enforced_on_load, 6),
    case!(absolute_expiry_enforced_on_load, 6),
    case!(touch_extends_idle_deadline, 6),
    case!(touch_of_unknown_id_is_false, 6),
    case!(writes_report_the_real_expiry, 6),
    case!(own_lifetime_kept_and_used_by_every_write, 6),
    case!(own_browser_session_lifetime_reported_and_shorter, 6),
    case!(user_index_lists_live_sessions, 7),
    case!(user_index_follows_binding_changes, 7),
    case!(user_delete_all_ends_every_session, 7),
    case!(user_cap_ends_oldest_sessions, 7),
    case!(create_with_a_cap_ends_the_oldest_sessions, 7),
    case!(hostile_user_names_stay_apart, 9),
    case!(store_errors_surface_as_errors, 8),
];

fn into_outcome(result: Result<Option<&'static str>, String>) -> Outcome {
    match result {
        Ok(None) => Outcome::Pass,
        Ok(Some(why)) => Outcome::NotApplicable(why),
        Err(why) => Outcome::Fail(why),
    }
}

// ---- helpers shared by the cases ---------------------------------------------------

/// Now, at the millisecond precision every store keeps.
fn now() -> OffsetDateTime {
    unix_ms::from_ms(unix_ms::to_ms(OffsetDateTime::now_utc()))
}

fn fresh_id() -> Id {
    Id::generate().expect("OS randomness")
}

fn fresh_user(tag: &str) -> String {
    format!("{tag}-{}", fresh_id())
}

fn long_expiry() -> Expiry {
    Expiry::new(Duration::from_hours(1)).with_absolute(Duration::from_hours(2))
}

fn record_with(data: &[(&str, Value)], user: Option<&str>) -> Record {
    let mut record = Record::new(now(), &long_expiry());
    for (k, v) in data {
        record.data.insert((*k).to_owned(), v.clone());
    }
    record.user = user.map(str::to_owned);
    record
}

fn changes() -> Changes {
    let t = now();
    Changes::new(t, t + time::Duration::hours(1))
}

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what} failed: {e}")
}

async fn create(store: &DynStore, record: &Record) -> Result<Id, String> {
    let id = fresh_id();
    match store.create(&id, record).await.map_err(err("create"))? {
        Created::Yes => Ok(id),
        Created::IdTaken => Err("create of a fresh random id reported IdTaken".into()),
    }
}

/// The record at `id`; where the store answers it at once too
/// ([`SessionStore::load_ready`](tether_core::SessionStore::load_ready)), the two agree.
async fn load(store: &DynStore, id: &Id) -> Result<Option<Record>, String> {
    let asked = OffsetDateTime::now_utc();
    let ready = store.load_ready(id);
    ensure!(
        ready.is_none() || store.reads_at_once(),
        "load_ready answered though reads_at_once says the store never does"
    );
    let loaded = store.load(id).await.map_err(err("load"))?;
    if let Some(ready) = ready {
        let ready = ready.map_err(err("load_ready"))?;
        // Asked first, it may hold a record live when asked that expired before
        // `load` read; never one already expired when asked.
        let expired_since = loaded.is_none()
            && ready
                .as_ref()
                .is_some_and(|r| !r.is_expired(asked) && r.is_expired(OffsetDateTime::now_utc()));
        ensure!(
            ready.as_deref() == loaded.as_ref() || expired_since,
            "load_ready answered {} where load read {}",
            summary(ready.as_deref()),
            summary(loaded.as_ref())
        );
    }
    Ok(loaded)
}

/// A record in a few words, for a message.
fn summary(record: Option<&Record>) -> String {
    record.map_or_else(
        || "no session".to_owned(),
        |r| {
            format!(
                "a session at version {} with {} keys",
                r.version,
                r.data.len()
            )
        },
    )
}

async fn load_some(store: &DynStore, id: &Id) -> Result<Record, String> {
    load(store, id)
        .await?
        .ok_or_else(|| "a live session loaded as None".to_owned())
}

async fn save(store: &DynStore, id: &Id, changes: &Changes) -> Result<Saved, String> {
    store.save(id, changes).await.map_err(err("save"))
}

fn is_unsupported<T>(result: &tether_core::Result<T>) -> bool {
    matches!(result, Err(Error::Unsupported { .. }))
}

/// For a store without a user index: every user operation must refuse clearly.
async fn refuses_user_index(store: &DynStore) -> CaseResult {
    let user = fresh_user("nouser");
    ensure!(
        is_unsupported(&store.user_sessions(&user).await),
        "store declares no user index but user_sessions did not return Error::Unsupported"
    );
    ensure!(
        is_unsupported(&store.delete_user_sessions(&user).await),
        "store declares no user index but delete_user_sessions did not return Error::Unsupported"
    );
    Ok(())
}

/// For a store without locks: lock must refuse clearly.
async fn refuses_locks(store: &DynStore) -> CaseResult {
    let id = fresh_id();
    ensure!(
        is_unsupported(&store.lock(&id, &LockOptions::default()).await),
        "store declares no locking but lock did not return Error::Unsupported"
    );
    Ok(())
}

type Res = Result<Option<&'static str>, String>;
const PASS: Res = Ok(None);
