//! Contract 7 (users: the index, log out everywhere, the per-user cap, hostile user names).

use super::*;

pub(super) async fn listed(store: &DynStore, user: &str) -> Result<Vec<Id>, String> {
    Ok(store
        .user_sessions(user)
        .await
        .map_err(err("user_sessions"))?
        .into_iter()
        .map(|s| s.id)
        .collect())
}

pub(super) async fn user_index_lists_live_sessions(store: DynStore, _: Option<DynStore>) -> Res {
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

pub(super) async fn user_index_follows_binding_changes(
    store: DynStore,
    _: Option<DynStore>,
) -> Res {
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

pub(super) async fn user_delete_all_ends_every_session(
    store: DynStore,
    _: Option<DynStore>,
) -> Res {
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

pub(super) async fn user_cap_ends_oldest_sessions(store: DynStore, _: Option<DynStore>) -> Res {
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

pub(super) async fn hostile_user_names_stay_apart(store: DynStore, _: Option<DynStore>) -> Res {
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

/// A login that starts a new session applies the per-user cap as it creates it.
pub(super) async fn create_with_a_cap_ends_the_oldest_sessions(
    store: DynStore,
    _: Option<DynStore>,
) -> Res {
    if !store.capabilities().user_index {
        return refuses_user_index(&store).await.map(|()| None);
    }
    let user = fresh_user("capped");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create(&store, &record_with(&[], Some(&user))).await?);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let newest = fresh_id();
    let created = store
        .create_capped(&newest, &record_with(&[], Some(&user)), Some(2))
        .await
        .map_err(err("create_capped"))?;
    ensure!(
        created == Created::Yes,
        "create_capped of a fresh id reported {created:?}"
    );
    let listed = listed(&store, &user).await?;
    ensure!(
        listed == vec![ids[2], newest],
        "after a capped create of 2, the user's sessions are {listed:?}, not the newest two"
    );
    PASS
}
