//! Contract 8 (failure: errors surface as errors).

use super::*;

pub(super) async fn store_errors_surface_as_errors(
    _: DynStore,
    unavailable: Option<DynStore>,
) -> Res {
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
    // A read answered at once is not "no session" either while the backend is out.
    let ready = store.load_ready(&id);
    ensure!(
        matches!(&ready, None | Some(Err(_))),
        "load_ready on an unavailable backend answered {ready:?}, not an error"
    );
    PASS
}
