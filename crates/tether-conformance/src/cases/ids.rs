//! Contract 1 (ids: shape, unknown ids never adopted, create never overwrites) and 9 (hostile and large input round-trips).

use super::*;

pub(super) async fn id_shape_and_strictness(_: DynStore, _: Option<DynStore>) -> Res {
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

pub(super) async fn unknown_id_loads_none(store: DynStore, _: Option<DynStore>) -> Res {
    ensure!(
        load(&store, &fresh_id()).await?.is_none(),
        "an unknown id loaded as a session (ids must never be adopted)"
    );
    PASS
}

pub(super) async fn save_to_unknown_id_is_gone(store: DynStore, _: Option<DynStore>) -> Res {
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

pub(super) async fn create_and_load_round_trip(store: DynStore, _: Option<DynStore>) -> Res {
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

pub(super) async fn create_never_overwrites(store: DynStore, _: Option<DynStore>) -> Res {
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

pub(super) async fn hostile_keys_and_values_round_trip(
    store: DynStore,
    _: Option<DynStore>,
) -> Res {
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
    // Numbers a store that parses JSON may rewrite (1e16 printed as an integer, a
    // float's digits rounded, -0.0 made 0): values come back as they went in.
    let numbers = json!([
        1e16,
        1.234_567_890_123_456_7e16,
        0.1,
        -0.0,
        1.5e300,
        5e-324,
        u64::MAX,
        i64::MIN
    ]);
    c.set("numbers", numbers.clone());
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
        loaded.data.get("numbers") == Some(&numbers),
        "numbers did not round-trip: {:?}",
        loaded.data.get("numbers")
    );
    ensure!(
        loaded.data.len() == hostile.len() * 2 + 2,
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
        loaded.data.len() == hostile.len() * 2,
        "removing hostile keys removed others"
    );
    PASS
}

pub(super) async fn large_record_round_trips(store: DynStore, _: Option<DynStore>) -> Res {
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
