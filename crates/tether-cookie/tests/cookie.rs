//! The cookie store: the applicable conformance cases, tampering, key rotation,
//! revocation, size limits, and the layer on top.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use serde_json::json;
use tether::{ClientStore, Expiry, Record, Session, SessionError, SessionLayer};
use tether_cookie::{CookieStore, KeyRing};
use tether_testkit::http::send;
use time::OffsetDateTime;

fn ring() -> KeyRing {
    KeyRing::parse(&KeyRing::generate_key().unwrap()).unwrap()
}

fn typical_record() -> Record {
    // Millisecond precision, as the cookie keeps times.
    tether_testkit::typical_record(tether::core::unix_ms::from_ms(
        tether::core::unix_ms::now_ms(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_applicable_conformance_cases_pass() {
    let store = CookieStore::new(ring()).with_compression(true);
    tether_testkit::Suite::new(tether_testkit::ClientJar::new(store))
        .run()
        .await;
}

#[test]
fn sizes_of_an_empty_and_a_typical_session() {
    let store = CookieStore::new(ring());
    let now = OffsetDateTime::now_utc();
    let empty = store
        .seal(&Record::new(now, &Expiry::default()), "tether", now)
        .unwrap();
    let record = typical_record();
    let typical = store.seal(&record, "tether", now).unwrap();
    eprintln!(
        "cookie value bytes: empty session {}, typical session {}",
        empty.len(),
        typical.len()
    );
    assert!(empty.len() < 200, "empty session is {} bytes", empty.len());
    assert!(
        typical.len() < 400,
        "typical session is {} bytes",
        typical.len()
    );
    assert_eq!(
        store.open(&typical, "tether", now),
        Some(record),
        "the record did not round-trip"
    );
}

/// One way to damage a valid cookie value.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    Truncate(usize),
    SwapHalves(usize),
    Append(Vec<u8>),
    ReplaceText(usize, char),
}

fn mutate(value: &str, m: &Mutation) -> String {
    let mut bytes = URL_SAFE_NO_PAD.decode(value).unwrap();
    match m {
        Mutation::FlipBit(i, bit) => {
            let i = i % bytes.len();
            bytes[i] ^= 1 << (bit % 8);
        }
        Mutation::Truncate(n) => bytes.truncate(n % bytes.len()),
        Mutation::SwapHalves(at) => {
            let at = 1 + at % (bytes.len() - 1);
            bytes.rotate_left(at);
        }
        Mutation::Append(extra) => bytes.extend_from_slice(extra),
        Mutation::ReplaceText(i, c) => {
            let mut text: Vec<char> = value.chars().collect();
            let i = i % text.len();
            text[i] = *c;
            return text.into_iter().collect();
        }
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::SwapHalves),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
        (any::<usize>(), any::<char>()).prop_map(|(i, c)| Mutation::ReplaceText(i, c)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, .. ProptestConfig::default() })]

    #[test]
    fn no_mutation_of_a_valid_cookie_is_accepted(
        m in mutation(),
        counter in any::<u64>(),
        compress in any::<bool>(),
    ) {
        let store = CookieStore::new(ring()).with_compression(compress);
        let now = OffsetDateTime::now_utc();
        let mut record = typical_record();
        record.data.insert("counter".into(), json!(counter));
        let value = store.seal(&record, "tether", now).unwrap();
        let damaged = mutate(&value, &m);
        prop_assume!(damaged != value);
        prop_assert_eq!(store.open(&damaged, "tether", now), None, "accepted {:?}", m);
    }

    #[test]
    fn random_text_is_never_a_session(text in "\\PC{0,300}", noise in proptest::collection::vec(any::<u8>(), 0..10_000)) {
        let store = CookieStore::new(ring());
        let now = OffsetDateTime::now_utc();
        prop_assert_eq!(store.open(&text, "tether", now), None);
        prop_assert_eq!(store.open(&URL_SAFE_NO_PAD.encode(&noise), "tether", now), None);
    }
}

#[test]
fn wrong_key_expired_and_oversized_cookies_are_refused() {
    let now = OffsetDateTime::now_utc();
    let store = CookieStore::new(ring());
    let other = CookieStore::new(ring());
    let value = other.seal(&typical_record(), "tether", now).unwrap();
    assert_eq!(
        store.open(&value, "tether", now),
        None,
        "a cookie sealed with another key"
    );

    let short = Record::new(now, &Expiry::new(Duration::from_mins(1)));
    let value = store.seal(&short, "tether", now).unwrap();
    assert!(store.open(&value, "tether", now).is_some());
    let later = now + time::Duration::seconds(61);
    assert_eq!(
        store.open(&value, "tether", later),
        None,
        "an expired cookie replayed later"
    );

    let absolute = Record::new(
        now,
        &Expiry::new(Duration::from_hours(1)).with_absolute(Duration::from_secs(10)),
    );
    let value = store.seal(&absolute, "tether", now).unwrap();
    assert_eq!(
        store.open(&value, "tether", now + time::Duration::seconds(11)),
        None
    );

    assert_eq!(store.open(&"A".repeat(10 * 1024), "tether", now), None);
}

#[test]
fn key_rotation() {
    let now = OffsetDateTime::now_utc();
    let old_key = KeyRing::generate_key().unwrap();
    let new_key = KeyRing::generate_key().unwrap();
    let old = CookieStore::new(KeyRing::parse(&old_key).unwrap());
    let sealed_with_old = old.seal(&typical_record(), "tether", now).unwrap();

    // The new key goes first; the old one still decrypts.
    let rotating = CookieStore::new(KeyRing::parse(&format!("{new_key}\n{old_key}")).unwrap());
    assert!(
        rotating.open(&sealed_with_old, "tether", now).is_some(),
        "old cookies must still read"
    );
    let sealed_with_new = rotating.seal(&typical_record(), "tether", now).unwrap();
    assert!(
        old.open(&sealed_with_new, "tether", now).is_none(),
        "new cookies are sealed with the new key"
    );

    // Once the old key is dropped, its cookies read as no session.
    let rotated = CookieStore::new(KeyRing::parse(&new_key).unwrap());
    assert_eq!(rotated.open(&sealed_with_old, "tether", now), None);
    assert!(rotated.open(&sealed_with_new, "tether", now).is_some());
}

#[test]
fn revocation_refuses_cookies_issued_before_not_before() {
    let issued = OffsetDateTime::now_utc();
    let cutoff = issued + time::Duration::seconds(5);
    let store = CookieStore::new(ring())
        .with_not_before(move |user| (user == "alice.smith").then_some(cutoff));
    let value = store.seal(&typical_record(), "tether", issued).unwrap();
    assert_eq!(
        store.open(&value, "tether", issued + time::Duration::seconds(6)),
        None
    );
    let fresh = store
        .seal(
            &typical_record(),
            "tether",
            cutoff + time::Duration::seconds(1),
        )
        .unwrap();
    assert!(
        store
            .open(&fresh, "tether", cutoff + time::Duration::seconds(2))
            .is_some()
    );
}

#[test]
fn key_rings_reject_bad_keys() {
    assert!(KeyRing::parse("").is_err());
    assert!(KeyRing::parse("too-short").is_err());
    assert!(KeyRing::parse(&"A".repeat(44)).is_err());
    assert!(KeyRing::from_file("/nonexistent/keys").is_err());
    let dir = std::env::temp_dir().join(format!("tether-keys-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    tether_core::private_file::create(
        &dir,
        format!("# keys\n{}\n", KeyRing::generate_key().unwrap()).as_bytes(),
    )
    .unwrap();
    assert_eq!(KeyRing::from_file(&dir).unwrap().len(), 1);
    std::fs::remove_file(&dir).unwrap();
}

/// A key file other users can read is a key they can forge sessions with: refused,
/// with the fix in the message.
#[test]
fn key_files_others_can_read_are_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::temp_dir().join(format!("tether-open-keys-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    // Made private, then opened to others on purpose: the mistake under test.
    let text = format!("{}\n", KeyRing::generate_key().unwrap());
    tether_core::private_file::create(&path, text.as_bytes()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = KeyRing::from_file(&path).unwrap_err().to_string();
    assert!(error.contains("chmod 600"), "{error}");
    assert!(error.contains(&path.display().to_string()), "{error}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(KeyRing::from_file(&path).unwrap().len(), 1);
    std::fs::remove_file(&path).unwrap();
}

// ---- through the layer -------------------------------------------------------------

async fn stuff(session: Session) -> Result<&'static str, SessionError> {
    let noise: String = (0..200)
        .map(|_| tether::Id::generate().unwrap().to_string())
        .collect();
    session.insert("noise", noise).await?;
    Ok("stuffed")
}

async fn sessions(session: Session) -> Result<String, SessionError> {
    Ok(session.user_sessions().await?.len().to_string())
}

/// Lists the user's sessions, and handles a store that keeps none.
async fn sessions_or_note(session: Session) -> Result<String, SessionError> {
    match session.user_sessions().await {
        Ok(list) => Ok(list.len().to_string()),
        Err(SessionError::Store(e)) if matches!(*e, tether::Error::Unsupported { .. }) => {
            Ok("not kept here".into())
        }
        Err(e) => Err(e),
    }
}

/// Reads the session, then logs out: what a "sign out" page that greets the user does.
async fn read_then_logout(session: Session) -> Result<String, SessionError> {
    let user = session.user().await?.unwrap_or_default();
    session.logout().await?;
    Ok(format!("bye {user}"))
}

fn app(store: CookieStore) -> Router {
    tether_testkit::app::routes()
        .route("/read-then-logout", post(read_then_logout))
        .route("/sessions-or-note", get(sessions_or_note))
        .route("/stuff", post(stuff))
        .route("/sessions", get(sessions))
        .layer(SessionLayer::client_side(store))
}

#[tokio::test]
async fn a_handler_cannot_tell_it_runs_on_the_cookie_store() {
    let app = app(CookieStore::new(ring()));
    let reply = send(&app, "POST", "/incr", None).await;
    assert_eq!(reply.body, "1");
    let mut cookie = reply.cookie();
    for expected in 2..=4 {
        let reply = send(&app, "POST", "/incr", Some(&cookie)).await;
        assert_eq!(reply.body, expected.to_string());
        cookie = reply.cookie();
    }
    let reply = send(&app, "POST", "/login", Some(&cookie)).await;
    let logged_in = reply.cookie();
    assert_eq!(
        send(&app, "GET", "/me", Some(&logged_in)).await.body,
        "alice"
    );
    assert_eq!(
        send(&app, "POST", "/incr", Some(&logged_in)).await.body,
        "5"
    );
    // A read-only request sets no cookie.
    assert_eq!(
        send(&app, "GET", "/me", Some(&logged_in)).await.set_cookie,
        None
    );
    let reply = send(&app, "POST", "/logout", Some(&logged_in)).await;
    assert!(reply.set_cookie.unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn what_needs_server_state_is_refused_clearly() {
    let app = app(CookieStore::new(ring()));
    let cookie = send(&app, "POST", "/login", None).await.cookie();
    let reply = send(&app, "GET", "/sessions", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        reply.body.contains("could not be saved") || reply.body.contains("500"),
        "{}",
        reply.body
    );
}

#[test]
fn another_layer_or_app_with_the_same_keys_cannot_open_the_cookie() {
    let keys = ring();
    let now = OffsetDateTime::now_utc();
    let shop = CookieStore::new(keys.clone()).with_context("shop");
    let value = shop.seal(&typical_record(), "tether", now).unwrap();
    assert!(shop.open(&value, "tether", now).is_some());
    assert_eq!(
        shop.open(&value, "admin_session", now),
        None,
        "another layer's cookie"
    );
    let admin = CookieStore::new(keys.clone()).with_context("admin");
    assert_eq!(
        admin.open(&value, "tether", now),
        None,
        "another app's cookie"
    );
    assert_eq!(
        CookieStore::new(keys).open(&value, "tether", now),
        None,
        "no context"
    );
}

#[tokio::test]
async fn a_refusal_the_handler_handled_leaves_its_response_alone() {
    // The profile page of the demo: it lists the user's sessions where the store
    // keeps them, and says so where it does not. The layer must not turn that page
    // into a 500.
    let app = app(CookieStore::new(ring()));
    let cookie = send(&app, "POST", "/login", None).await.cookie();
    let reply = send(&app, "GET", "/sessions-or-note", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, "not kept here");
}

#[tokio::test]
async fn a_session_too_large_for_a_cookie_is_a_413_not_a_truncated_cookie() {
    let app = app(CookieStore::new(ring()));
    let cookie = send(&app, "POST", "/incr", None).await.cookie();
    let reply = send(&app, "POST", "/stuff", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.set_cookie, None, "no truncated cookie");
    // The old cookie still holds the old session.
    assert_eq!(send(&app, "POST", "/incr", Some(&cookie)).await.body, "2");
}

#[tokio::test]
async fn thousands_of_damaged_cookies_never_cause_a_500() {
    let store = CookieStore::new(ring());
    let app = app(store.clone());
    let now = OffsetDateTime::now_utc();
    let value = store.seal(&typical_record(), "tether", now).unwrap();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = mutation();
    for _ in 0..2000 {
        let m = strategy.new_tree(&mut runner).unwrap().current();
        let damaged = mutate(&value, &m);
        if damaged == value
            || damaged
                .bytes()
                .any(|b| !(0x21..0x7f).contains(&b) || b == b';')
        {
            continue;
        }
        let reply = send(&app, "GET", "/me", Some(&format!("tether={damaged}"))).await;
        assert_eq!(reply.status, StatusCode::OK, "{m:?}");
        assert_eq!(reply.body, "nobody", "{m:?} was accepted");
    }
}

#[tokio::test]
async fn a_logout_after_reading_the_session_clears_the_cookie() {
    let app = app(CookieStore::new(ring()));
    let cookie = send(&app, "POST", "/login", None).await.cookie();
    let reply = send(&app, "POST", "/read-then-logout", Some(&cookie)).await;
    assert_eq!(reply.body, "bye alice");
    let removal = reply.set_cookie.expect("the logout clears the cookie");
    assert!(removal.contains("Max-Age=0"), "{removal}");
}

/// A value opened once is remembered (`with_open_cache`), but a remembered value is
/// still held to expiry and revocation on every open, and opens only under the cookie
/// name it was sealed for.
#[test]
fn a_remembered_value_is_checked_again_on_every_open() {
    use std::sync::{Arc, Mutex};
    let now = OffsetDateTime::now_utc();
    let cutoff: Arc<Mutex<Option<OffsetDateTime>>> = Arc::default();
    let revoked = cutoff.clone();
    for capacity in [tether_cookie::DEFAULT_OPEN_CACHE, 0] {
        *cutoff.lock().unwrap() = None;
        let store = CookieStore::new(ring())
            .with_open_cache(capacity)
            .with_not_before({
                let revoked = revoked.clone();
                move |user| {
                    (user == "alice.smith")
                        .then(|| *revoked.lock().unwrap())
                        .flatten()
                }
            });
        let short = {
            let mut r = typical_record();
            r.idle_deadline = r.last_seen + time::Duration::seconds(60);
            r
        };
        let value = store.seal(&short, "tether", now).unwrap();
        assert!(store.open(&value, "tether", now).is_some(), "{capacity}");
        assert!(store.open(&value, "tether", now).is_some(), "{capacity}");
        assert_eq!(
            store.open(&value, "other", now),
            None,
            "opened under another cookie name (cache {capacity})"
        );
        // The user's sessions are revoked after the value was opened.
        *cutoff.lock().unwrap() = Some(now + time::Duration::seconds(1));
        assert_eq!(
            store.open(&value, "tether", now + time::Duration::seconds(2)),
            None,
            "a remembered value outlived a revocation (cache {capacity})"
        );
        *cutoff.lock().unwrap() = None;
        assert_eq!(
            store.open(&value, "tether", now + time::Duration::seconds(61)),
            None,
            "a remembered value outlived its expiry (cache {capacity})"
        );
        // A value the store never produced is not made valid by the cache.
        let mut forged = value.clone();
        forged.pop();
        forged.push(if value.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(store.open(&forged, "tether", now), None);
    }
}

/// Stores cloned from one and given different contexts share no remembered values: a
/// value one context sealed never opens under the other from memory.
#[test]
fn clones_with_another_context_do_not_share_opened_values() {
    let now = OffsetDateTime::now_utc();
    let base = CookieStore::new(ring());
    let shop = base.clone().with_context("shop");
    let admin = base.clone().with_context("admin");
    let value = shop.seal(&typical_record(), "tether", now).unwrap();
    assert!(shop.open(&value, "tether", now).is_some());
    assert_eq!(admin.open(&value, "tether", now), None);
    assert_eq!(base.open(&value, "tether", now), None);
    let short = base.clone().with_max_len(value.len() - 1);
    assert_eq!(short.open(&value, "tether", now), None);
}
