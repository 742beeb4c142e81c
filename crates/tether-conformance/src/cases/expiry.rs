//! Contract 6 (idle and absolute expiry, refreshes, the expiry a write reports).

use super::*;

pub(super) async fn idle_expiry_enforced_on_load(store: DynStore, _: Option<DynStore>) -> Res {
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

pub(super) async fn absolute_expiry_enforced_on_load(store: DynStore, _: Option<DynStore>) -> Res {
    let expiry = Expiry::new(Duration::from_hours(1)).with_absolute(Duration::from_millis(600));
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
pub(super) async fn writes_report_the_real_expiry(store: DynStore, _: Option<DynStore>) -> Res {
    let expiry = Expiry::new(Duration::from_hours(1)).with_absolute(Duration::from_mins(10));
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

pub(super) async fn touch_extends_idle_deadline(store: DynStore, _: Option<DynStore>) -> Res {
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

pub(super) async fn touch_of_unknown_id_is_false(store: DynStore, _: Option<DynStore>) -> Res {
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
