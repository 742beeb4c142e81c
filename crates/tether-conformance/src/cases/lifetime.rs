//! Contract 6, for a session with a lifetime of its own (`Session::set_expiry`): the
//! store keeps it, refreshes the session by it whoever writes, reports its cookie kind,
//! and keeps it through an id rotation.

use super::*;

/// A week idle, a month absolute: longer than any request's idle deadline below.
fn remembered() -> Expiry {
    Expiry::new(Duration::from_hours(168)).with_absolute(Duration::from_hours(720))
}

/// Within a minute of `want`: the store computes the deadline from the request's
/// time, which the case does not control to the millisecond.
fn near(got: OffsetDateTime, want: OffsetDateTime) -> bool {
    (got - want).abs() < time::Duration::minutes(1)
}

/// A save of a live session: the expiry and cookie kind it reported.
async fn save_reporting(
    store: &DynStore,
    id: &Id,
    changes: &Changes,
) -> Result<(OffsetDateTime, Option<bool>), String> {
    match save(store, id, changes).await? {
        Saved::Version {
            expires_at,
            browser_session,
            ..
        } => Ok((expires_at, browser_session)),
        Saved::Gone => Err("a save of a live session reported Gone".into()),
    }
}

pub(super) async fn own_lifetime_kept_and_used_by_every_write(
    store: DynStore,
    _: Option<DynStore>,
) -> Res {
    let expiry = remembered();
    let mut record = Record::with_lifetime(now(), &expiry);
    record.data.insert("k".into(), json!(1));
    let id = create(&store, &record).await?;
    let loaded = load_some(&store, &id).await?;
    ensure!(
        loaded.lifetime == Some(expiry.lifetime()),
        "the session's own lifetime did not round-trip: {:?}",
        loaded.lifetime
    );
    ensure!(
        loaded.absolute_deadline == record.absolute_deadline,
        "the absolute deadline of a session with its own lifetime changed on create"
    );

    // A write that did not read the session brings the layer's idle deadline (an
    // hour): the store refreshes by the session's own week instead.
    let mut c = changes();
    c.set("k", json!(2));
    let week = now() + time::Duration::days(7);
    let (expires_at, browser_session) = save_reporting(&store, &id, &c).await?;
    ensure!(
        near(expires_at, week),
        "a save reported {expires_at}, not the session's own idle deadline (~{week})"
    );
    ensure!(
        browser_session == Some(false),
        "a save of a session with a persistent lifetime of its own reported browser_session {browser_session:?}"
    );
    let saved = load_some(&store, &id).await?;
    ensure!(
        near(saved.idle_deadline, week),
        "after a save the idle deadline is {}, not the session's own (~{week})",
        saved.idle_deadline
    );

    // A refresh: the same.
    let t = now();
    let touch = Touch {
        last_seen: t,
        idle_deadline: t + time::Duration::minutes(5),
    };
    ensure!(
        store.touch(&id, &touch).await.map_err(err("touch"))?,
        "touch of a live session reported false"
    );
    let touched = load_some(&store, &id).await?;
    ensure!(
        near(touched.idle_deadline, week),
        "after a touch the idle deadline is {}, not the session's own (~{week})",
        touched.idle_deadline
    );

    // A rotation keeps it.
    let new = fresh_id();
    let mut c = changes();
    c.user = Some(Some(fresh_user("lifetime")));
    let rotated = store
        .cycle_id(&id, &new, &c)
        .await
        .map_err(err("cycle_id"))?;
    ensure!(
        matches!(
            rotated,
            Saved::Version {
                browser_session: Some(false),
                ..
            }
        ),
        "cycle_id of a session with its own lifetime reported {rotated:?}"
    );
    let moved = load_some(&store, &new).await?;
    ensure!(
        moved.lifetime == Some(expiry.lifetime()) && near(moved.idle_deadline, week),
        "after cycle_id the session lost its own lifetime: {:?}, idle deadline {}",
        moved.lifetime,
        moved.idle_deadline
    );
    PASS
}

pub(super) async fn own_browser_session_lifetime_reported_and_shorter(
    store: DynStore,
    _: Option<DynStore>,
) -> Res {
    // Ten minutes idle, browser-session cookie: shorter than the hour a request brings.
    let expiry = Expiry::new(Duration::from_mins(10)).browser_session();
    let id = create(&store, &Record::with_lifetime(now(), &expiry)).await?;
    let mut c = changes();
    c.set("k", json!("v"));
    let ten = now() + time::Duration::minutes(10);
    let (expires_at, browser_session) = save_reporting(&store, &id, &c).await?;
    ensure!(
        near(expires_at, ten),
        "a save reported {expires_at}: a request's longer idle deadline outran the session's own 10 minutes"
    );
    ensure!(
        browser_session == Some(true),
        "a save of a browser-session lifetime reported browser_session {browser_session:?}"
    );
    let plain = create(&store, &record_with(&[], None)).await?;
    match save(&store, &plain, &c).await? {
        Saved::Version {
            browser_session: None,
            ..
        } => PASS,
        other => Err(format!(
            "a save of a session on the layer's lifetime reported {other:?}, not browser_session None"
        )),
    }
}
