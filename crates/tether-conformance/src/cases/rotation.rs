//! Contract 5 (id rotation).

use super::*;

pub(super) async fn cycle_id_moves_data_and_kills_old_id(
    store: DynStore,
    _: Option<DynStore>,
) -> Res {
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

pub(super) async fn cycle_id_of_unknown_id_is_gone(store: DynStore, _: Option<DynStore>) -> Res {
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
