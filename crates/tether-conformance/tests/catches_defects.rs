//! The suite is only worth something if every case can fail. A small reference store
//! with switchable defects shows each defect caught by the case written for it, and
//! the same store without defects passing everything.

mod reference;

use tether_conformance::{CASES, Outcome, Suite};

use reference::{Defect, Reference};

fn suite(defect: Defect) -> Suite {
    Suite::new(Reference::new(defect)).with_unavailable(Reference::unavailable(defect))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reference_store_without_defects_passes_every_case() {
    let report = suite(Defect::None).report().await;
    for (name, outcome) in &report {
        assert_eq!(*outcome, Outcome::Pass, "{name}");
    }
    assert_eq!(report.len(), CASES.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_defect_is_caught_by_its_case() {
    use Defect::*;
    let expectations: &[(Defect, &str)] = &[
        (AdoptsUnknownIds, "unknown_id_loads_none"),
        (AdoptsUnknownIds, "save_to_unknown_id_is_gone"),
        (CreateOverwrites, "create_never_overwrites"),
        (Resurrects, "save_after_delete_does_not_resurrect"),
        (Resurrects, "save_to_unknown_id_is_gone"),
        (
            LosesConcurrentKeys,
            "concurrent_saves_of_different_keys_all_persist",
        ),
        (
            DeepMergesValues,
            "concurrent_saves_of_one_key_leave_one_written_value",
        ),
        (NoVersionBump, "version_moves_forward"),
        (MangledHostileKeys, "hostile_keys_and_values_round_trip"),
        (TruncatesLargeRecords, "large_record_round_trips"),
        (IgnoresLocks, "lock_serialises_concurrent_increments"),
        (IgnoresLocks, "lock_wait_times_out_with_clear_error"),
        (UnlocksForAnyToken, "lock_released_only_by_its_owner"),
        (LocksNeverExpire, "lock_of_dead_holder_expires"),
        (CycleKeepsOldId, "cycle_id_moves_data_and_kills_old_id"),
        (CycleAdoptsUnknownIds, "cycle_id_of_unknown_id_is_gone"),
        (NoIdleExpiry, "idle_expiry_enforced_on_load"),
        (NoAbsoluteExpiry, "absolute_expiry_enforced_on_load"),
        (TouchDoesNothing, "touch_extends_idle_deadline"),
        (TouchAlwaysTrue, "touch_of_unknown_id_is_false"),
        (ListsDeletedSessions, "user_index_lists_live_sessions"),
        (IgnoresRebinding, "user_index_follows_binding_changes"),
        (DeleteAllMissesSome, "user_delete_all_ends_every_session"),
        (IgnoresCap, "user_cap_ends_oldest_sessions"),
        (UserNamePrefixMatch, "hostile_user_names_stay_apart"),
        (FakesMissingUserIndex, "user_index_lists_live_sessions"),
        (FakesMissingUserIndex, "user_delete_all_ends_every_session"),
        (FakesMissingLocks, "lock_serialises_concurrent_increments"),
        (SwallowsErrors, "store_errors_surface_as_errors"),
        (DeleteAlwaysTrue, "delete_reports_existence"),
        (DropsUserOnCreate, "create_and_load_round_trip"),
        (ReplacesDataWithChanges, "save_merges_only_changed_keys"),
        (ReportsUncappedExpiry, "writes_report_the_real_expiry"),
        (
            IgnoresCapOnCreate,
            "create_with_a_cap_ends_the_oldest_sessions",
        ),
        (
            IgnoresOwnLifetime,
            "own_lifetime_kept_and_used_by_every_write",
        ),
        (
            IgnoresOwnLifetime,
            "own_browser_session_lifetime_reported_and_shorter",
        ),
        (
            MisreportsCookieKind,
            "own_browser_session_lifetime_reported_and_shorter",
        ),
        (
            BlindSaveFrom,
            "save_from_a_stale_read_merges_and_never_resurrects",
        ),
        (
            BlindSaveFromWhenLarge,
            "save_from_a_stale_read_merges_and_never_resurrects",
        ),
        (ReadyIgnoresExpiry, "idle_expiry_enforced_on_load"),
        (ReadyIgnoresExpiry, "absolute_expiry_enforced_on_load"),
    ];
    let mut missed = Vec::new();
    for (defect, case) in expectations {
        let outcome = suite(*defect).run_case(case).await;
        if !matches!(outcome, Outcome::Fail(_)) {
            missed.push(format!("{defect:?} not caught by {case}: {outcome:?}"));
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));

    // Every store-facing case is shown able to fail. The id case checks
    // `tether_core::Id` itself, whose strictness tether-core's unit tests prove.
    let covered: std::collections::HashSet<&str> = expectations.iter().map(|(_, c)| *c).collect();
    let uncovered: Vec<&str> = CASES
        .iter()
        .map(|c| c.name)
        .filter(|n| !covered.contains(n) && *n != "id_shape_and_strictness")
        .collect();
    assert!(
        uncovered.is_empty(),
        "cases without a defect that proves they can fail: {uncovered:?}"
    );
}

#[tokio::test]
async fn a_store_without_a_backend_reports_the_error_case_as_not_applicable() {
    let outcome = Suite::new(Reference::new(Defect::None))
        .run_case("store_errors_surface_as_errors")
        .await;
    assert!(matches!(outcome, Outcome::NotApplicable(_)));
}
