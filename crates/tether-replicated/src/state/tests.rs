//! The merge's rules: order independence, tombstones, snapshots, the horizon.

use super::*;
use serde_json::json;

fn stamp(ms: i64, node: u64) -> Stamp {
    Stamp { ms, n: 0, node }
}

fn meta(user: Option<Option<String>>) -> Meta {
    Meta {
        version: 1,
        created: 1_000,
        last_seen: 1_000,
        idle_deadline: i64::MAX / 4,
        absolute_deadline: None,
        user,
        lifetime: None,
    }
}

fn upsert(
    id: Id,
    ms: i64,
    node: u64,
    clear: bool,
    kv: &[(&str, Option<Value>)],
    user: Option<Option<String>>,
) -> Event {
    Event {
        stamp: stamp(ms, node),
        op: Op::Upsert {
            id,
            meta: meta(user),
            clear,
            updates: kv
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        },
    }
}

fn permutations(events: &[Event]) -> Vec<Vec<Event>> {
    if events.len() <= 1 {
        return vec![events.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..events.len() {
        let mut rest = events.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first.clone());
            out.push(tail);
        }
    }
    out
}

#[test]
fn any_order_of_events_gives_the_same_state() {
    let id = Id::generate().unwrap();
    let events = vec![
        upsert(
            id,
            10,
            1,
            true,
            &[("a", Some(json!(1))), ("b", Some(json!(1)))],
            Some(Some("u".into())),
        ),
        upsert(id, 20, 2, false, &[("a", Some(json!(2)))], None),
        upsert(
            id,
            20,
            3,
            false,
            &[("a", Some(json!(3))), ("c", Some(json!(3)))],
            None,
        ),
        upsert(id, 30, 1, true, &[("d", Some(json!(4)))], None),
        upsert(id, 25, 2, false, &[("b", None)], Some(Some("v".into()))),
        upsert(id, 40, 3, false, &[("e", Some(json!(5)))], None),
    ];
    let mut outcomes = Vec::new();
    for order in permutations(&events) {
        let mut state = State::default();
        for e in &order {
            state.apply(e);
        }
        let Some(Slot::Live(entry)) = state.slots.get(&id) else {
            panic!("session lost");
        };
        outcomes.push((entry.record.data.clone(), entry.record.user.clone()));
    }
    let first = &outcomes[0];
    assert!(outcomes.iter().all(|o| o == first), "orders disagree");
    // The clear at 30 removed everything older; "e" came later.
    assert_eq!(first.0, *json!({"d": 4, "e": 5}).as_object().unwrap());
    assert_eq!(first.1.as_deref(), Some("v"));
}

#[test]
fn a_tombstone_is_never_undone_by_a_late_message() {
    let id = Id::generate().unwrap();
    let mut state = State::default();
    state.apply(&upsert(id, 10, 1, true, &[("a", Some(json!(1)))], None));
    state.apply(&Event {
        stamp: stamp(20, 2),
        op: Op::Delete { id },
    });
    state.apply(&upsert(id, 30, 1, false, &[("a", Some(json!(2)))], None));
    assert!(state.get(&id, OffsetDateTime::now_utc()).is_none());
    assert_eq!(state.live_count(), 0);
}

#[test]
fn a_snapshot_cannot_bring_back_a_session_whose_tombstone_was_dropped() {
    let id = Id::generate().unwrap();
    let mut peer = State::default();
    peer.apply(&upsert(id, 10, 1, true, &[("a", Some(json!(1)))], None));
    let snapshot = peer.snapshot();
    // Here the session ended, and its tombstone went over the cap.
    let mut here = State::default();
    here.apply(&upsert(id, 10, 1, true, &[("a", Some(json!(1)))], None));
    here.apply(&Event {
        stamp: stamp(20, 2),
        op: Op::Delete { id },
    });
    assert_eq!(here.bound_tombstones(0), 1);
    for (id, slot) in snapshot {
        here.merge(id, slot);
    }
    assert!(here.get(&id, OffsetDateTime::now_utc()).is_none());
    assert_eq!(here.live_count(), 0);
}

#[test]
fn snapshot_merges_converge_both_ways() {
    let id = Id::generate().unwrap();
    let (mut a, mut b) = (State::default(), State::default());
    a.apply(&upsert(
        id,
        10,
        1,
        true,
        &[("x", Some(json!(1)))],
        Some(Some("u".into())),
    ));
    b.apply(&upsert(
        id,
        10,
        1,
        true,
        &[("x", Some(json!(1)))],
        Some(Some("u".into())),
    ));
    a.apply(&upsert(id, 20, 1, false, &[("y", Some(json!("a")))], None));
    b.apply(&upsert(
        id,
        21,
        2,
        false,
        &[("y", Some(json!("b"))), ("x", None)],
        None,
    ));
    let (sa, sb) = (a.snapshot(), b.snapshot());
    for (id, slot) in sb {
        a.merge(id, slot);
    }
    for (id, slot) in sa {
        b.merge(id, slot);
    }
    assert_eq!(a.snapshot(), b.snapshot());
    let now = OffsetDateTime::now_utc();
    assert_eq!(
        a.get(&id, now).unwrap().data,
        *json!({"y": "b"}).as_object().unwrap()
    );
    assert_eq!(a.user_sessions("u", now).len(), 1);
}
