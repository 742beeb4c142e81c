//! The cases. Each returns `Err(why)` when the store breaks the contract.

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
    case!(user_index_lists_live_sessions, 7),
    case!(user_index_follows_binding_changes, 7),
    case!(user_delete_all_ends_every_session, 7),
    case!(user_cap_ends_oldest_sessions, 7),
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

// ---- helpers -------------------------------------------------------------------------

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
    Expiry::new(Duration::from_secs(3600)).with_absolute(Duration::from_secs(7200))
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

async fn load(store: &DynStore, id: &Id) -> Result<Option<Record>, String> {
    store.load(id).await.map_err(err("load"))
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

// ---- 1. ids ----------------------------------------------------------------------------

async fn id_shape_and_strictness(_: DynStore, _: Option<DynStore>) -> Res {
    let mut seen = HashSet::new();
    for _ in 0..1000 {
        let id = fresh_id();
        let text = id.to_string();
        ensure!(
            text.len() == ID_LEN,
            "id {text:?} is not {ID_LEN} characters"
        );
        ensure!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "id {text:?} is not URL-safe"
        );
        ensure!(Id::parse(&text) == Some(id), "id does not parse back");
        ensure!(seen.insert(text), "generated a duplicate id");
    }
    let good = fresh_id().to_string();
    for bad in [
        String::new(),
        good[..ID_LEN - 1].to_owned(),
        format!("{good}x"),
        format!("{}=", &good[..ID_LEN - 1]),
        "../../../../../etc/passwd".to_owned(),
        format!("/{}", &good[1..]),
        format!("{}\0", &good[..ID_LEN - 1]),
        format!("{}%", &good[..ID_LEN - 1]),
        "x".repeat(5000),
    ] {
        ensure!(Id::parse(&bad).is_none(), "{bad:?} parsed as an id");
    }
    PASS
}

async fn unknown_id_loads_none(store: DynStore, _: Option<DynStore>) -> Res {
    ensure!(
        load(&store, &fresh_id()).await?.is_none(),
        "an unknown id loaded as a session (ids must never be adopted)"
    );
    PASS
}

async fn save_to_unknown_id_is_gone(store: DynStore, _: Option<DynStore>) -> Res {
    let id = fresh_id();
    let mut c = changes();
    c.set("planted", json!(true));
    ensure!(
        save(&store, &id, &c).await? == Saved::Gone,
        "a save to an unknown id did not report Gone"
    );
    ensure!(
        load(&store, &id).await?.is_none(),
        "a save to an unknown id created a session under the attacker's id"
    );
    ensure!(
        !store
            .touch(
                &id,
                &Touch {
                    last_seen: now(),
                    idle_deadline: now() + time::Duration::hours(1)
                }
            )
            .await
            .map_err(err("touch"))?,
        "touch of an unknown id reported true"
    );
    ensure!(
        load(&store, &id).await?.is_none(),
        "touch of an unknown id created a session"
    );
    PASS
}

async fn create_and_load_round_trip(store: DynStore, _: Option<DynStore>) -> Res {
    let record = record_with(
        &[
            ("n", json!(42)),
            (
                "nested",
                json!({"a": [1, 2.5, "three", null, true], "b": {}}),
            ),
            ("null", Value::Null),
        ],
        Some("round-trip-user"),
    );
    let id = create(&store, &record).await?;
    let loaded = load_some(&store, &id).await?;
    ensure!(
        loaded.data == record.data,
        "data changed: {:?}",
        loaded.data
    );
    ensure!(
        loaded.user == record.user,
        "user changed: {:?}",
        loaded.user
    );
    ensure!(loaded.created == record.created, "created changed");
    ensure!(
        loaded.absolute_deadline == record.absolute_deadline,
        "absolute deadline changed"
    );
    ensure!(loaded.version == record.version, "version changed");
    PASS
}

async fn create_never_overwrites(store: DynStore, _: Option<DynStore>) -> Res {
    let id = create(&store, &record_with(&[("owner", json!("first"))], None)).await?;
    let second = record_with(&[("owner", json!("second"))], None);
    let outcome = store.create(&id, &second).await.map_err(err("create"))?;
    ensure!(
        outcome == Created::IdTaken,
        "create over an existing id reported {outcome:?}"
    );
    let loaded = load_some(&store, &id).await?;
    ensure!(
        loaded.data.get("owner") == Some(&json!("first")),
        "create overwrote an existing session"
    );
    PASS
}

async fn hostile_keys_and_values_round_trip(store: DynStore, _: Option<DynStore>) -> Res {
    let hostile = [
        "'; DROP TABLE sessions; --",
        "\" OR \"1\"=\"1",
        "back\\slash\\\\",
        "nul\0byte",
        "$.path[0].inject",
        "a.b",
        "*",
        "../../etc/passwd",
        "ünïcødé ✓ 🦀",
        "\u{202e}rtl",
        "{\"json\": true}",
        "",
    ];
    let id = create(&store, &record_with(&[], None)).await?;
    let mut c = changes();
    for (i, text) in hostile.iter().enumerate() {
        c.set(*text, json!(text));
        c.set(format!("v{i}"), json!({ "text": text }));
    }
    c.set("big", json!("x".repeat(10 * 1024)));
    ensure!(
        matches!(save(&store, &id, &c).await?, Saved::Version { .. }),
        "save of hostile keys reported Gone"
    );
    let loaded = load_some(&store, &id).await?;
    for (i, text) in hostile.iter().enumerate() {
        ensure!(
            loaded.data.get(*text) == Some(&json!(text)),
            "key {text:?} did not round-trip: {:?}",
            loaded.data.get(*text)
        );
        ensure!(
            loaded.data.get(&format!("v{i}")) == Some(&json!({ "text": text })),
            "value {text:?} did not round-trip"
        );
    }
    ensure!(
        loaded.data.get("big") == Some(&json!("x".repeat(10 * 1024))),
        "10 KB value did not round-trip"
    );
    ensure!(
        loaded.data.len() == hostile.len() * 2 + 1,
        "unexpected keys appeared: {:?}",
        loaded.data.keys().collect::<Vec<_>>()
    );
    // Removing a hostile key removes that key alone.
    let mut c = changes();
    c.remove("a.b");
    c.remove("$.path[0].inject");
    save(&store, &id, &c).await?;
    let loaded = load_some(&store, &id).await?;
    ensure!(
        !loaded.data.contains_key("a.b") && !loaded.data.contains_key("$.path[0].inject"),
        "hostile keys were not removed"
    );
    ensure!(
        loaded.data.len() == hostile.len() * 2 - 1,
        "removing hostile keys removed others"
    );
    PASS
}

async fn large_record_round_trips(store: DynStore, _: Option<DynStore>) -> Res {
    let Some(limit) = store.capabilities().size_limit else {
        let mut record = record_with(&[], None);
        for i in 0..200 {
            record
                .data
                .insert(format!("key{i}"), json!(format!("{i:0>1000}")));
        }
        let id = create(&store, &record).await?;
        ensure!(
            load_some(&store, &id).await?.data == record.data,
            "a 200 KB record did not round-trip"
        );
        return PASS;
    };
    // A store with a limit: what fits round-trips, what does not is refused, never
    // truncated.
    let mut fits = record_with(&[], None);
    fits.data
        .insert("note".into(), json!("x".repeat(limit / 8)));
    let id = create(&store, &fits).await?;
    ensure!(
        load_some(&store, &id).await?.data == fits.data,
        "a record within the size limit did not round-trip"
    );
    let mut too_big = record_with(&[], None);
    // Random text, so compression cannot bring it under the limit.
    let noise: String = (0..limit / 8).map(|_| fresh_id().to_string()).collect();
    too_big.data.insert("noise".into(), json!(noise));
    let id = fresh_id();
    let outcome = store.create(&id, &too_big).await;
    ensure!(
        matches!(outcome, Err(Error::TooLarge { .. })),
        "a record over the {limit}-byte limit gave {outcome:?}, not Error::TooLarge"
    );
    ensure!(
        load(&store, &id).await?.is_none(),
        "a refused record was stored anyway"
    );
    PASS
}

// ---- 3. atomic saves ---------------------------------------------------------------

async fn save_after_delete_does_not_resurrect(store: DynStore, _: Option<DynStore>) -> Res {
    let id = create(&store, &record_with(&[("user", json!("alice"))], None)).await?;
    ensure!(
        store.delete(&id).await.map_err(err("delete"))?,
        "delete of a live session reported false"
    );
    let mut c = changes();
    c.set("cart", json!([1, 2, 3]));
    ensure!(
        save(&store, &id, &c).await? == Saved::Gone,
        "a save after delete did not report Gone"
    );
    ensure!(
        load(&store, &id).await?.is_none(),
        "a save after delete brought the session back (logout undone)"
    );
    PASS
}

async fn delete_reports_existence(store: DynStore, _: Option<DynStore>) -> Res {
    let id = create(&store, &record_with(&[], None)).await?;
    ensure!(
        store.delete(&id).await.map_err(err("delete"))?,
        "first delete reported false"
    );
    ensure!(
        !store.delete(&id).await.map_err(err("delete"))?,
        "second delete reported true"
    );
    ensure!(
        !store.delete(&fresh_id()).await.map_err(err("delete"))?,
        "delete of an unknown id reported true"
    );
    PASS
}

// ---- 4. no lost updates ---------------------------------------------------------------

async fn save_merges_only_changed_keys(store: DynStore, _: Option<DynStore>) -> Res {
    let id = create(
        &store,
        &record_with(&[("a", json!(1)), ("b", json!(1)), ("c", json!(1))], None),
    )
    .await?;
    let mut first = changes();
    first.set("a", json!(2));
    let mut second = changes();
    second.set("d", json!(4));
    second.remove("c");
    save(&store, &id, &first).await?;
    save(&store, &id, &second).await?;
    let data = load_some(&store, &id).await?.data;
    ensure!(
        data == *json!({"a": 2, "b": 1, "d": 4}).as_object().expect("object"),
        "merging changes gave {data:?}"
    );
    let mut clear = changes();
    clear.clear();
    clear.set("fresh", json!(true));
    save(&store, &id, &clear).await?;
    let data = load_some(&store, &id).await?.data;
    ensure!(
        data == *json!({"fresh": true}).as_object().expect("object"),
        "clear then set gave {data:?}"
    );
    // Thousands of keys in one save (a few in a store with a size limit), then a
    // clear that sets one of them again: the clear must not remove what the same save
    // sets.
    let n = if store.capabilities().size_limit.is_some() {
        20
    } else {
        3000
    };
    let mut many = changes();
    for i in 0..n {
        many.set(format!("k{i}"), json!(i));
    }
    save(&store, &id, &many).await?;
    let data = load_some(&store, &id).await?.data;
    ensure!(
        data.len() == n + 1 && data.get(&format!("k{}", n - 1)) == Some(&json!(n - 1)),
        "a save of {n} keys left {} keys",
        data.len()
    );
    let mut again = changes();
    again.clear();
    again.set("k7", json!("kept"));
    save(&store, &id, &again).await?;
    let data = load_some(&store, &id).await?.data;
    ensure!(
        data == *json!({"k7": "kept"}).as_object().expect("object"),
        "clear then set of an existing key gave {} keys",
        data.len()
    );
    PASS
}

async fn version_moves_forward(store: DynStore, _: Option<DynStore>) -> Res {
    let id = create(&store, &record_with(&[], None)).await?;
    let mut last = load_some(&store, &id).await?.version;
    for i in 0..5 {
        let mut c = changes();
        c.set("i", json!(i));
        let Saved::Version { version: v, .. } = save(&store, &id, &c).await? else {
            return Err("save of a live session reported Gone".into());
        };
        ensure!(v > last, "version went from {last} to {v}");
        let loaded = load_some(&store, &id).await?.version;
        ensure!(
            loaded == v,
            "save reported version {v} but load shows {loaded}"
        );
        last = v;
    }
    PASS
}

async fn concurrent_saves_of_different_keys_all_persist(
    store: DynStore,
    _: Option<DynStore>,
) -> Res {
    let id = create(&store, &record_with(&[], None)).await?;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut c = changes();
                c.set(format!("key{i}"), json!(i));
                store.save(&id, &c).await
            })
        })
        .collect();
    for task in tasks {
        let saved = task
            .await
            .map_err(err("task"))?
            .map_err(err("concurrent save"))?;
        ensure!(
            matches!(saved, Saved::Version { .. }),
            "a concurrent save reported Gone"
        );
    }
    let data = load_some(&store, &id).await?.data;
    let missing: Vec<_> = (0..100)
        .filter(|i| data.get(&format!("key{i}")) != Some(&json!(i)))
        .collect();
    ensure!(
        missing.is_empty(),
        "{} of 100 concurrently saved keys were lost: {missing:?}",
        missing.len()
    );
    PASS
}

async fn concurrent_saves_of_one_key_leave_one_written_value(
    store: DynStore,
    _: Option<DynStore>,
) -> Res {
    let id = create(
        &store,
        &record_with(&[("k", json!({"writer": "none"}))], None),
    )
    .await?;
    let base = load_some(&store, &id).await?.version;
    let written = |i: usize| json!({ "writer": i, format!("field{i}"): "x".repeat(i) });
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let store = store.clone();
            let value = written(i);
            tokio::spawn(async move {
                let mut c = changes();
                c.set("k", value);
                store.save(&id, &c).await
            })
        })
        .collect();
    for task in tasks {
        task.await
            .map_err(err("task"))?
            .map_err(err("concurrent save"))?;
    }
    let record = load_some(&store, &id).await?;
    let value = record.data.get("k").cloned().unwrap_or(Value::Null);
    ensure!(
        (0..100).any(|i| value == written(i)),
        "the key ended as {value}, which no writer wrote"
    );
    ensure!(
        record.version == base + 100,
        "100 saves moved the version from {base} to {}",
        record.version
    );
    PASS
}

async fn lock_serialises_concurrent_increments(store: DynStore, _: Option<DynStore>) -> Res {
    if !store.capabilities().locking {
        refuses_locks(&store).await?;
        return Ok(Some("store has no lock mode (refusal checked)"));
    }
    let id = create(&store, &record_with(&[("n", json!(0))], None)).await?;
    let options = LockOptions {
        wait: Duration::from_secs(60),
        ttl: Duration::from_secs(30),
    };
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let token = store.lock(&id, &options).await?;
                let record = store
                    .load(&id)
                    .await?
                    .ok_or(Error::Corrupt("gone".into()))?;
                let n = record.data.get("n").and_then(Value::as_u64).unwrap_or(0);
                // Long enough that, without a working lock, every task reads before any
                // writes, whatever order the runtime runs them in.
                tokio::time::sleep(Duration::from_millis(1)).await;
                let mut c = changes();
                c.set("n", json!(n + 1));
                store.save(&id, &c).await?;
                store.unlock(&id, &token).await
            })
        })
        .collect();
    for task in tasks {
        task.await
            .map_err(err("task"))?
            .map_err(err("locked increment"))?;
    }
    let n = load_some(&store, &id).await?.data.get("n").cloned();
    ensure!(
        n == Some(json!(100)),
        "100 locked increments ended at {n:?}"
    );
    PASS
}

async fn lock_wait_times_out_with_clear_error(store: DynStore, _: Option<DynStore>) -> Res {
    if !store.capabilities().locking {
        refuses_locks(&store).await?;
        return Ok(Some("store has no lock mode (refusal checked)"));
    }
    let id = fresh_id();
    let holder = store
        .lock(&id, &LockOptions::default())
        .await
        .map_err(err("lock"))?;
    let waiter = store
        .lock(
            &id,
            &LockOptions {
                wait: Duration::from_millis(200),
                ttl: Duration::from_secs(30),
            },
        )
        .await;
    ensure!(
        matches!(waiter, Err(Error::LockTimeout(_))),
        "a second lock on a held session gave {waiter:?}, not LockTimeout"
    );
    store.unlock(&id, &holder).await.map_err(err("unlock"))?;
    PASS
}

async fn lock_released_only_by_its_owner(store: DynStore, _: Option<DynStore>) -> Res {
    if !store.capabilities().locking {
        refuses_locks(&store).await?;
        return Ok(Some("store has no lock mode (refusal checked)"));
    }
    let id = fresh_id();
    let short = LockOptions {
        wait: Duration::from_millis(200),
        ttl: Duration::from_secs(30),
    };
    let owner = store.lock(&id, &short).await.map_err(err("lock"))?;
    let forged = LockToken::generate().map_err(err("token"))?;
    store.unlock(&id, &forged).await.map_err(err("unlock"))?;
    ensure!(
        matches!(store.lock(&id, &short).await, Err(Error::LockTimeout(_))),
        "a forged token released someone else's lock"
    );
    store.unlock(&id, &owner).await.map_err(err("unlock"))?;
    let again = store
        .lock(&id, &short)
        .await
        .map_err(|e| format!("after its owner released it, the lock could not be taken: {e}"))?;
    store.unlock(&id, &again).await.map_err(err("unlock"))?;
    PASS
}

async fn lock_of_dead_holder_expires(store: DynStore, _: Option<DynStore>) -> Res {
    if !store.capabilities().locking {
        refuses_locks(&store).await?;
        return Ok(Some("store has no lock mode (refusal checked)"));
    }
    let id = fresh_id();
    // The holder "dies": it never unlocks.
    store
        .lock(
            &id,
            &LockOptions {
                wait: Duration::from_secs(1),
                ttl: Duration::from_millis(300),
            },
        )
        .await
        .map_err(err("lock"))?;
    let next = store
        .lock(
            &id,
            &LockOptions {
                wait: Duration::from_secs(10),
                ttl: Duration::from_secs(30),
            },
        )
        .await
        .map_err(|e| format!("the lock of a dead holder never expired: {e}"))?;
    store.unlock(&id, &next).await.map_err(err("unlock"))?;
    PASS
}

// ---- 5. id rotation ---------------------------------------------------------------

async fn cycle_id_moves_data_and_kills_old_id(store: DynStore, _: Option<DynStore>) -> Res {
    let user = fresh_user("cycle");
    let indexed = store.capabilities().user_index;
    let old = create(
        &store,
        &record_with(&[("cart", json!([1]))], indexed.then_some(user.as_str())),
    )
    .await?;
    let new = fresh_id();
    let mut c = changes();
    c.set("logged_in", json!(true));
    let outcome = store
        .cycle_id(&old, &new, &c)
        .await
        .map_err(err("cycle_id"))?;
    ensure!(
        matches!(outcome, Saved::Version { .. }),
        "cycle_id of a live session reported {outcome:?}"
    );
    ensure!(
        load(&store, &old).await?.is_none(),
        "the old id still loads after cycle_id"
    );
    let moved = load_some(&store, &new).await?;
    ensure!(
        moved.data.get("cart") == Some(&json!([1]))
            && moved.data.get("logged_in") == Some(&json!(true)),
        "cycle_id did not carry the data and the changes: {:?}",
        moved.data
    );
    let mut late = changes();
    late.set("late", json!(1));
    ensure!(
        save(&store, &old, &late).await? == Saved::Gone,
        "a save to the old id after cycle_id did not report Gone"
    );
    ensure!(
        load(&store, &old).await?.is_none(),
        "a save to the old id brought it back"
    );
    if indexed {
        let ids: Vec<Id> = store
            .user_sessions(&user)
            .await
            .map_err(err("user_sessions"))?
            .into_iter()
            .map(|s| s.id)
            .collect();
        ensure!(
            ids == vec![new],
            "after cycle_id the user index lists {} sessions, expected the new id only",
            ids.len()
        );
    }
    PASS
}

async fn cycle_id_of_unknown_id_is_gone(store: DynStore, _: Option<DynStore>) -> Res {
    let new = fresh_id();
    let outcome = store
        .cycle_id(&fresh_id(), &new, &changes())
        .await
        .map_err(err("cycle_id"))?;
    ensure!(
        outcome == Saved::Gone,
        "cycle_id of an unknown id reported {outcome:?}"
    );
    ensure!(
        load(&store, &new).await?.is_none(),
        "cycle_id of an unknown id created a session"
    );
    PASS
}

// ---- 6. expiry -------------------------------------------------------------------------

async fn idle_expiry_enforced_on_load(store: DynStore, _: Option<DynStore>) -> Res {
    let record = Record::new(now(), &Expiry::new(Duration::from_millis(400)));
    let id = create(&store, &record).await?;
    ensure!(
        load(&store, &id).await?.is_some(),
        "a fresh session did not load"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    ensure!(
        load(&store, &id).await?.is_none(),
        "a session past its idle deadline still loads"
    );
    let mut c = changes();
    c.set("revive", json!(true));
    ensure!(
        save(&store, &id, &c).await? == Saved::Gone,
        "a save to an idle-expired session did not report Gone"
    );
    ensure!(
        load(&store, &id).await?.is_none(),
        "a save revived an idle-expired session"
    );
    PASS
}

async fn absolute_expiry_enforced_on_load(store: DynStore, _: Option<DynStore>) -> Res {
    let expiry = Expiry::new(Duration::from_secs(3600)).with_absolute(Duration::from_millis(600));
    let record = Record::new(now(), &expiry);
    let id = create(&store, &record).await?;
    // Activity keeps extending the idle deadline; the absolute one still ends it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let touch = Touch {
        last_seen: now(),
        idle_deadline: now() + time::Duration::hours(1),
    };
    store.touch(&id, &touch).await.map_err(err("touch"))?;
    let mut c = changes();
    c.set("active", json!(true));
    save(&store, &id, &c).await?;
    let loaded = load_some(&store, &id).await?;
    ensure!(
        loaded.expires_at() <= record.absolute_deadline.expect("absolute"),
        "refreshing moved the expiry past the absolute deadline"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    ensure!(
        load(&store, &id).await?.is_none(),
        "a session past its absolute deadline still loads"
    );
    PASS
}

/// A write that did not read first still learns when the session ends: the store
/// reports the record's expiry, capped by its absolute deadline (the layer's cookie
/// `Max-Age` comes from it).
async fn writes_report_the_real_expiry(store: DynStore, _: Option<DynStore>) -> Res {
    let expiry = Expiry::new(Duration::from_secs(3600)).with_absolute(Duration::from_secs(600));
    let record = Record::new(now(), &expiry);
    let absolute = record.absolute_deadline.expect("absolute");
    let reported = |saved: Saved, what: &str| -> Result<(), String> {
        let Saved::Version { expires_at, .. } = saved else {
            return Err(format!("{what} of a live session reported Gone"));
        };
        ensure!(
            expires_at <= absolute && expires_at > absolute - time::Duration::seconds(1),
            "{what} reported expiry {expires_at}, the session ends at {absolute}"
        );
        Ok(())
    };
    let id = create(&store, &record).await?;
    let mut c = changes();
    c.set("k", json!(1));
    reported(save(&store, &id, &c).await?, "a save")?;
    let new = fresh_id();
    let moved = store
        .cycle_id(&id, &new, &changes())
        .await
        .map_err(err("cycle_id"))?;
    reported(moved, "an id rotation")?;
    PASS
}

async fn touch_extends_idle_deadline(store: DynStore, _: Option<DynStore>) -> Res {
    let record = Record::new(now(), &Expiry::new(Duration::from_millis(600)));
    let id = create(&store, &record).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let touch = Touch {
        last_seen: now(),
        idle_deadline: now() + time::Duration::seconds(30),
    };
    ensure!(
        store.touch(&id, &touch).await.map_err(err("touch"))?,
        "touch of a live session reported false"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let loaded = load(&store, &id)
        .await?
        .ok_or("a touched session expired at its old idle deadline")?;
    ensure!(
        loaded.last_seen >= touch.last_seen,
        "touch did not record last_seen"
    );
    ensure!(loaded.data == record.data, "touch changed the data");
    PASS
}

async fn touch_of_unknown_id_is_false(store: DynStore, _: Option<DynStore>) -> Res {
    let touch = Touch {
        last_seen: now(),
        idle_deadline: now() + time::Duration::hours(1),
    };
    ensure!(
        !store
            .touch(&fresh_id(), &touch)
            .await
            .map_err(err("touch"))?,
        "touch of an unknown id reported true"
    );
    PASS
}

// ---- 7. users ------------------------------------------------------------------------

async fn listed(store: &DynStore, user: &str) -> Result<Vec<Id>, String> {
    Ok(store
        .user_sessions(user)
        .await
        .map_err(err("user_sessions"))?
        .into_iter()
        .map(|s| s.id)
        .collect())
}

async fn user_index_lists_live_sessions(store: DynStore, _: Option<DynStore>) -> Res {
    if !store.capabilities().user_index {
        refuses_user_index(&store).await?;
        return Ok(Some("store has no user index (refusal checked)"));
    }
    let user = fresh_user("list");
    let other = fresh_user("other");
    let mut ids = Vec::new();
    for i in 0..3_i64 {
        let mut record = record_with(&[], Some(&user));
        record.created = now() + time::Duration::milliseconds(i);
        ids.push(create(&store, &record).await?);
    }
    create(&store, &record_with(&[], Some(&other))).await?;
    let short = Record {
        user: Some(user.clone()),
        ..Record::new(now(), &Expiry::new(Duration::from_millis(300)))
    };
    create(&store, &short).await?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got = listed(&store, &user).await?;
    ensure!(
        got == ids,
        "user_sessions listed {} ids, expected the 3 live ones oldest first",
        got.len()
    );
    store.delete(&ids[1]).await.map_err(err("delete"))?;
    let got = listed(&store, &user).await?;
    ensure!(
        got == vec![ids[0], ids[2]],
        "after a delete user_sessions listed {} ids",
        got.len()
    );
    PASS
}

async fn user_index_follows_binding_changes(store: DynStore, _: Option<DynStore>) -> Res {
    if !store.capabilities().user_index {
        refuses_user_index(&store).await?;
        return Ok(Some("store has no user index (refusal checked)"));
    }
    let alice = fresh_user("alice");
    let bob = fresh_user("bob");
    let id = create(&store, &record_with(&[], None)).await?;
    let mut bind = changes();
    bind.user = Some(Some(alice.clone()));
    save(&store, &id, &bind).await?;
    ensure!(
        listed(&store, &alice).await? == vec![id],
        "binding a user by save did not index the session"
    );
    let mut rebind = changes();
    rebind.user = Some(Some(bob.clone()));
    save(&store, &id, &rebind).await?;
    ensure!(
        listed(&store, &alice).await?.is_empty(),
        "rebinding to another user left the session under the first"
    );
    ensure!(
        listed(&store, &bob).await? == vec![id],
        "rebinding did not index the session under the new user"
    );
    let mut unbind = changes();
    unbind.user = Some(None);
    save(&store, &id, &unbind).await?;
    ensure!(
        listed(&store, &bob).await?.is_empty(),
        "unbinding left the session indexed"
    );
    ensure!(
        load_some(&store, &id).await?.user.is_none(),
        "unbinding did not clear the record's user"
    );
    PASS
}

async fn user_delete_all_ends_every_session(store: DynStore, _: Option<DynStore>) -> Res {
    if !store.capabilities().user_index {
        refuses_user_index(&store).await?;
        return Ok(Some("store has no user index (refusal checked)"));
    }
    let user = fresh_user("everywhere");
    let other = fresh_user("bystander");
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(create(&store, &record_with(&[], Some(&user))).await?);
    }
    let bystander = create(&store, &record_with(&[], Some(&other))).await?;
    let ended = store
        .delete_user_sessions(&user)
        .await
        .map_err(err("delete_user_sessions"))?;
    ensure!(
        ended == 5,
        "delete_user_sessions reported {ended}, expected 5"
    );
    for id in &ids {
        ensure!(
            load(&store, id).await?.is_none(),
            "a session survived log-out-everywhere"
        );
        let mut c = changes();
        c.set("after", json!(true));
        ensure!(
            save(&store, id, &c).await? == Saved::Gone,
            "a save after log-out-everywhere did not report Gone"
        );
    }
    ensure!(
        listed(&store, &user).await?.is_empty(),
        "the user index still lists ended sessions"
    );
    ensure!(
        load(&store, &bystander).await?.is_some(),
        "log-out-everywhere ended another user's session"
    );
    PASS
}

async fn user_cap_ends_oldest_sessions(store: DynStore, _: Option<DynStore>) -> Res {
    if !store.capabilities().user_index {
        refuses_user_index(&store).await?;
        return Ok(Some("store has no user index (refusal checked)"));
    }
    let user = fresh_user("capped");
    let mut ids = Vec::new();
    for i in 0..4_i64 {
        let mut record = record_with(&[], Some(&user));
        record.created = now() + time::Duration::milliseconds(i);
        ids.push(create(&store, &record).await?);
    }
    let mut newest = record_with(&[], None);
    newest.created = now() + time::Duration::milliseconds(10);
    let newest = create(&store, &newest).await?;
    let mut bind = changes();
    bind.user = Some(Some(user.clone()));
    bind.user_cap = Some(3);
    save(&store, &newest, &bind).await?;
    let got = listed(&store, &user).await?;
    ensure!(
        got == vec![ids[2], ids[3], newest],
        "with a cap of 3 the user has {} sessions listed; expected the 2 newest others and the new one",
        got.len()
    );
    for old in &ids[..2] {
        ensure!(
            load(&store, old).await?.is_none(),
            "a session beyond the cap still loads"
        );
    }
    PASS
}

async fn hostile_user_names_stay_apart(store: DynStore, _: Option<DynStore>) -> Res {
    if !store.capabilities().user_index {
        refuses_user_index(&store).await?;
        return Ok(Some("store has no user index (refusal checked)"));
    }
    let tag = fresh_id().to_string();
    let names = [
        format!("{tag}'; DELETE FROM sessions; --"),
        format!("{tag}../../.."),
        format!("{tag}/"),
        format!("{tag}\0nul"),
        format!("{tag}*"),
        format!("{tag}{{tag}}"),
        format!("{tag}{}", "u".repeat(1000)),
        format!("{tag}ü"),
    ];
    let mut ids = Vec::new();
    for name in &names {
        ids.push(create(&store, &record_with(&[], Some(name))).await?);
    }
    for (name, id) in names.iter().zip(&ids) {
        ensure!(
            listed(&store, name).await? == vec![*id],
            "user {name:?} does not list exactly its own session"
        );
    }
    ensure!(
        store
            .delete_user_sessions(&names[0])
            .await
            .map_err(err("delete_user_sessions"))?
            == 1,
        "deleting a hostile user's sessions touched other users"
    );
    for id in &ids[1..] {
        ensure!(
            load(&store, id).await?.is_some(),
            "a hostile user name ended another user's session"
        );
    }
    ensure!(
        listed(&store, &tag).await?.is_empty(),
        "a prefix of user names matched their sessions"
    );
    PASS
}

// ---- 8. failure -------------------------------------------------------------------------

async fn store_errors_surface_as_errors(_: DynStore, unavailable: Option<DynStore>) -> Res {
    let Some(store) = unavailable else {
        return Ok(Some(
            "no unavailable store given (a store with no backend cannot fail)",
        ));
    };
    let id = fresh_id();
    let record = record_with(&[], None);
    let c = changes();
    let touch = Touch {
        last_seen: now(),
        idle_deadline: now() + time::Duration::hours(1),
    };
    let failures: [(&str, bool); 6] = [
        ("load", store.load(&id).await.is_err()),
        ("create", store.create(&id, &record).await.is_err()),
        ("save", store.save(&id, &c).await.is_err()),
        ("touch", store.touch(&id, &touch).await.is_err()),
        ("delete", store.delete(&id).await.is_err()),
        (
            "cycle_id",
            store.cycle_id(&id, &fresh_id(), &c).await.is_err(),
        ),
    ];
    for (operation, failed) in failures {
        ensure!(
            failed,
            "{operation} on an unavailable backend did not return an error"
        );
    }
    let load = store.load(&id).await;
    ensure!(
        matches!(&load, Err(e) if e.is_transient()),
        "a backend outage should be a transient error (503), got {load:?}"
    );
    PASS
}
