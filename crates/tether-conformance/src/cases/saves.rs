//! Contract 3 (atomic saves: no resurrection, delete reports existence) and 4 (no lost updates: per-key merges, versions, concurrent saves).

use super::*;

pub(super) async fn save_after_delete_does_not_resurrect(
    store: DynStore,
    _: Option<DynStore>,
) -> Res {
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

pub(super) async fn delete_reports_existence(store: DynStore, _: Option<DynStore>) -> Res {
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

pub(super) async fn save_merges_only_changed_keys(store: DynStore, _: Option<DynStore>) -> Res {
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

pub(super) async fn version_moves_forward(store: DynStore, _: Option<DynStore>) -> Res {
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

pub(super) async fn concurrent_saves_of_different_keys_all_persist(
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

pub(super) async fn concurrent_saves_of_one_key_leave_one_written_value(
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

/// `save_from` (a save by a request that read the session) behaves as `save` whatever
/// happened since the read: applied on an unchanged record, merged when another save
/// moved it (its key kept), and never writing a deleted session back; for a small
/// record and for one of a few KiB (a store may take another path for those).
pub(super) async fn save_from_a_stale_read_merges_and_never_resurrects(
    store: DynStore,
    _: Option<DynStore>,
) -> Res {
    let large = store
        .capabilities()
        .size_limit
        .map_or(4096, |limit| limit / 8);
    for padding in [0, large] {
        save_from_merges_and_never_resurrects(&store, padding)
            .await
            .map_err(|e| format!("{e} (a record padded with {padding} bytes)"))?;
    }
    PASS
}

/// The scenario of [`save_from_a_stale_read_merges_and_never_resurrects`], on a record
/// carrying a string of `padding` bytes.
async fn save_from_merges_and_never_resurrects(store: &DynStore, padding: usize) -> Res {
    let pad = json!("p".repeat(padding));
    let id = create(
        store,
        &record_with(&[("a", json!(1)), ("b", json!(1)), ("pad", pad)], None),
    )
    .await?;
    let base = load_some(store, &id).await?;
    let mut mine = changes();
    mine.set("a", json!(2));
    let saved = store
        .save_from(&id, &base, &mine)
        .await
        .map_err(err("save_from"))?;
    ensure!(
        matches!(saved, Saved::Version { version, .. } if version > base.version),
        "save_from on an unchanged record reported {saved:?}"
    );
    let data = load_some(store, &id).await?.data;
    ensure!(
        data.get("a") == Some(&json!(2)) && data.get("b") == Some(&json!(1)),
        "save_from on an unchanged record left {:?}",
        keys_but_pad(&data)
    );

    // Another request saves `b` after this one read: its write must survive.
    let stale = load_some(store, &id).await?;
    let mut theirs = changes();
    theirs.set("b", json!(9));
    save(store, &id, &theirs).await?;
    let mut mine = changes();
    mine.set("c", json!(3));
    store
        .save_from(&id, &stale, &mine)
        .await
        .map_err(err("save_from"))?;
    let data = load_some(store, &id).await?.data;
    ensure!(
        data.get("b") == Some(&json!(9)) && data.get("c") == Some(&json!(3)),
        "save_from from a stale read lost a concurrent save: {:?}",
        keys_but_pad(&data)
    );

    // A logout after the read: the save reports Gone and brings nothing back.
    let read = load_some(store, &id).await?;
    store.delete(&id).await.map_err(err("delete"))?;
    let saved = store
        .save_from(&id, &read, &mine)
        .await
        .map_err(err("save_from"))?;
    ensure!(
        saved == Saved::Gone,
        "save_from after a delete reported {saved:?}"
    );
    ensure!(
        load(store, &id).await?.is_none(),
        "save_from after a delete brought the session back"
    );
    PASS
}

/// A record's data without its padding, for a failure's message.
fn keys_but_pad(data: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    data.iter().filter(|(k, _)| *k != "pad").collect()
}
