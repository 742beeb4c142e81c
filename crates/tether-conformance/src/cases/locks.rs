//! Contract 4, lock mode: serialised read-modify-write, bounded waits, owner-only release, dead holders' locks expire.

use super::*;
pub(super) async fn lock_serialises_concurrent_increments(
    store: DynStore,
    _: Option<DynStore>,
) -> Res {
    if !store.capabilities().locking {
        refuses_locks(&store).await?;
        return Ok(Some("store has no lock mode (refusal checked)"));
    }
    let id = create(&store, &record_with(&[("n", json!(0))], None)).await?;
    let options = LockOptions {
        wait: Duration::from_mins(1),
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

pub(super) async fn lock_wait_times_out_with_clear_error(
    store: DynStore,
    _: Option<DynStore>,
) -> Res {
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

pub(super) async fn lock_released_only_by_its_owner(store: DynStore, _: Option<DynStore>) -> Res {
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

pub(super) async fn lock_of_dead_holder_expires(store: DynStore, _: Option<DynStore>) -> Res {
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
