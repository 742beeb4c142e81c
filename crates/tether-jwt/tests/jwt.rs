//! The JWT store: the applicable conformance cases, tampering, algorithm confusion,
//! key rotation, revocation, verification by an independent implementation with only
//! the published public key, and the layer on top.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde_json::{Value, json};
use tether::{ClientStore, Expiry, Record, Session, SessionError, SessionLayer};
use tether_jwt::{JwtKeys, JwtStore};
use tether_testkit::http::send;
use time::OffsetDateTime;

fn keys(kid: &str) -> JwtKeys {
    JwtKeys::parse(&JwtKeys::generate_ed25519(kid).unwrap()).unwrap()
}

fn typical() -> Record {
    // Millisecond precision, as the token keeps times.
    tether_testkit::typical_record(tether::core::unix_ms::from_ms(
        tether::core::unix_ms::now_ms(),
    ))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// The parts of a compact JWS, decoded.
fn parts(token: &str) -> (Value, Value, Vec<u8>) {
    let mut it = token.split('.');
    let mut next = || URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    let header = serde_json::from_slice(&next()).unwrap();
    let claims = serde_json::from_slice(&next()).unwrap();
    (header, claims, next())
}

fn b64json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_applicable_conformance_cases_pass() {
    // The suite's hostile-values case saves 15 KB: more than a cookie holds, as much
    // as a header transport may carry.
    let store = JwtStore::new(keys("k1")).with_max_len(32 * 1024);
    tether_testkit::Suite::new(tether_testkit::ClientJar::new(store))
        .run()
        .await;
}

#[test]
fn the_claims_say_what_verifiers_need() {
    let store = JwtStore::new(keys("k1")).with_issuer("https://shop.example");
    let record = typical();
    let id = tether::Id::generate().unwrap();
    let token = store.seal_with_id(&id, &record, "tether", now()).unwrap();
    let (header, claims, _) = parts(&token);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], "k1");
    assert_eq!(claims["sub"], "alice.smith");
    assert_eq!(claims["sid"], id.to_string());
    assert_ne!(claims["jti"], claims["sid"], "jti is the token's own id");
    assert_eq!(claims["iss"], "https://shop.example");
    assert_eq!(claims["exp"], record.expires_at().unix_timestamp());
    assert_eq!(claims["nbf"], claims["iat"]);
    assert_eq!(claims["ses"]["d"]["theme"], "dark");
    let (opened_id, opened) = store.open_with_id(&token, "tether", now()).unwrap();
    assert_eq!(opened_id, Some(id));
    assert_eq!(opened, record, "the record did not round-trip");
    eprintln!("token bytes: typical session {}", token.len());
}

#[test]
fn an_independent_verifier_with_only_the_jwks_accepts_the_token() {
    use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
    let store = JwtStore::new(keys("2026-12"));
    let jwks = store.keys().jwks();
    let token = store.seal(&typical(), "tether", now()).unwrap();

    // What a gateway does: find the key by kid in the published set, check the
    // algorithm, verify the Ed25519 signature over "header.payload", read the claims.
    let (header, claims, signature) = parts(&token);
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's kid is in the JWKS");
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert_eq!(header["alg"], jwk["alg"]);
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = VerifyingKey::from_bytes(&x).unwrap();
    let signed = token.rsplit_once('.').unwrap().0;
    let signature = Signature::from_slice(&signature).unwrap();
    key.verify(signed.as_bytes(), &signature)
        .expect("the signature verifies with the public key alone");
    assert_eq!(claims["sub"], "alice.smith");
    assert!(claims["exp"].as_i64().unwrap() > now().unix_timestamp());

    // And a token changed after signing does not.
    let forged_claims = json!({"sub": "mallory", "exp": i64::MAX});
    let forged = format!(
        "{}.{}",
        signed.split('.').next().unwrap(),
        b64json(&forged_claims)
    );
    assert!(key.verify(forged.as_bytes(), &signature).is_err());
}

#[test]
fn none_foreign_keys_and_algorithm_confusion_are_refused() {
    let ring = keys("k1");
    let store = JwtStore::new(ring.clone());
    let token = store.seal(&typical(), "tether", now()).unwrap();
    let (header, claims, _) = parts(&token);
    let signed_part = |h: &Value| format!("{}.{}", b64json(h), b64json(&claims));

    // alg none, with and without a signature.
    let mut none = header.clone();
    none["alg"] = json!("none");
    for forged in [format!("{}.", signed_part(&none)), signed_part(&none)] {
        assert_eq!(
            store.open(&forged, "tether", now()),
            None,
            "alg none opened"
        );
    }

    // HS256 with the Ed25519 public key as the secret (the classic confusion).
    let jwks = ring.jwks();
    let public = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let mut hs = header.clone();
    hs["alg"] = json!("HS256");
    let body = signed_part(&hs);
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public),
        body.as_bytes(),
    );
    let confused = format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    assert_eq!(
        store.open(&confused, "tether", now()),
        None,
        "HS256 with the public key opened"
    );

    // Signed by another key under the same kid; an unknown kid; no kid.
    let other = JwtStore::new(keys("k1"))
        .seal(&typical(), "tether", now())
        .unwrap();
    assert_eq!(
        store.open(&other, "tether", now()),
        None,
        "a foreign key's token opened"
    );
    let stranger = JwtStore::new(keys("k9"))
        .seal(&typical(), "tether", now())
        .unwrap();
    assert_eq!(store.open(&stranger, "tether", now()), None);
    let mut no_kid = header.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    let (_, _, signature) = parts(&token);
    let unnamed = format!(
        "{}.{}",
        signed_part(&no_kid),
        URL_SAFE_NO_PAD.encode(signature)
    );
    assert_eq!(store.open(&unnamed, "tether", now()), None);
}

#[test]
fn expired_early_misdirected_and_oversized_tokens_are_refused() {
    let store = JwtStore::new(keys("k1")).with_audience("shop");
    let record = Record::new(now(), &Expiry::new(std::time::Duration::from_secs(10)));
    let token = store.seal(&record, "tether", now()).unwrap();
    assert!(store.open(&token, "tether", now()).is_some());
    assert_eq!(
        store.open(&token, "tether", now() + time::Duration::seconds(11)),
        None
    );
    // An instance whose clock is a little behind still opens it; one far behind, not.
    assert!(
        store
            .open(&token, "tether", now() - time::Duration::seconds(5))
            .is_some()
    );
    assert_eq!(
        store.open(&token, "tether", now() - time::Duration::seconds(120)),
        None,
        "before nbf"
    );
    assert_eq!(store.open(&token, "admin-cookie", now()), None);
    let no_audience = JwtStore::new(store.keys().clone());
    assert_eq!(no_audience.open(&token, "tether", now()), None);

    let mut big = typical();
    big.data.insert("blob".into(), json!("x".repeat(5000)));
    let err = store.seal(&big, "tether", now()).unwrap_err();
    assert!(matches!(err, tether::Error::TooLarge { .. }), "{err:?}");
    assert_eq!(store.open(&"a.b.c".repeat(2000), "tether", now()), None);
}

#[test]
fn a_remembered_token_skips_only_its_signature_check() {
    // Signed here, so remembered: every later open is a hit.
    let store = JwtStore::new(keys("k1"));
    let record = Record::new(now(), &Expiry::new(std::time::Duration::from_secs(10)));
    let mut bound = record.clone();
    bound.user = Some("alice.smith".into());
    let token = store.seal(&bound, "tether", now()).unwrap();
    assert!(store.open(&token, "tether", now()).is_some());
    assert_eq!(
        store.open(&token, "admin-cookie", now()),
        None,
        "the cookie name"
    );
    let later = now() + time::Duration::seconds(11);
    assert_eq!(store.open(&token, "tether", later), None, "expiry");
    // A clone shares the memory; its revocation still applies to a remembered token.
    let cutoff = now() + time::Duration::seconds(1);
    let revoking = store
        .clone()
        .with_not_before(move |user| (user == "alice.smith").then_some(cutoff));
    assert_eq!(revoking.open(&token, "tether", now()), None, "revocation");
    // A tampered token is a different value: verified, and refused.
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(store.open(&forged, "tether", now()), None);
    // Without the memory, the same answers.
    let plain = JwtStore::new(store.keys().clone()).with_verified_cache(0);
    assert!(plain.open(&token, "tether", now()).is_some());
    assert_eq!(plain.open(&token, "tether", later), None);
}

#[test]
fn rotation_signs_with_the_new_key_and_verifies_the_old_until_it_goes() {
    let old_line = JwtKeys::generate_ed25519("old").unwrap();
    let new_line = JwtKeys::generate_ed25519("new").unwrap();
    let before = JwtStore::new(JwtKeys::parse(&old_line).unwrap());
    let old_token = before.seal(&typical(), "tether", now()).unwrap();

    let rotated = JwtStore::new(JwtKeys::parse(&format!("{new_line}\n{old_line}")).unwrap());
    assert!(rotated.open(&old_token, "tether", now()).is_some());
    let new_token = rotated.seal(&typical(), "tether", now()).unwrap();
    assert_eq!(parts(&new_token).0["kid"], "new");
    assert_eq!(rotated.keys().jwks()["keys"].as_array().unwrap().len(), 2);

    // The old key kept as public only still verifies; dropped, it does not.
    let x = rotated.keys().jwks()["keys"][1]["x"]
        .as_str()
        .unwrap()
        .to_owned();
    let public_only =
        JwtStore::new(JwtKeys::parse(&format!("{new_line}\nold ed25519-public {x}")).unwrap());
    assert!(public_only.open(&old_token, "tether", now()).is_some());
    let dropped = JwtStore::new(JwtKeys::parse(&new_line).unwrap());
    assert_eq!(dropped.open(&old_token, "tether", now()), None);
}

#[test]
fn hs256_keys_work_and_stay_out_of_the_jwks() {
    let store = JwtStore::new(JwtKeys::parse(&JwtKeys::generate_hs256("shared").unwrap()).unwrap());
    let token = store.seal(&typical(), "tether", now()).unwrap();
    assert_eq!(parts(&token).0["alg"], "HS256");
    assert!(store.open(&token, "tether", now()).is_some());
    assert_eq!(store.keys().jwks()["keys"], json!([]));
}

#[test]
fn revocation_refuses_tokens_issued_before_not_before() {
    let cutoff = now();
    let store = JwtStore::new(keys("k1"))
        .with_not_before(move |user| (user == "alice.smith").then_some(cutoff));
    let earlier = store
        .seal(&typical(), "tether", cutoff - time::Duration::seconds(1))
        .unwrap();
    assert_eq!(store.open(&earlier, "tether", now()), None);
    let later = store
        .seal(
            &typical(),
            "tether",
            cutoff + time::Duration::milliseconds(5),
        )
        .unwrap();
    assert!(
        store
            .open(&later, "tether", cutoff + time::Duration::seconds(1))
            .is_some()
    );
}

#[test]
fn key_files_are_checked() {
    for bad in [
        "",
        "# only a comment",
        "k1 ed25519",
        "k1 ed25519 not-base64!",
        "k1 ed25519 AAAA",
        "k1 rsa AAAA",
        "k1 hs256 c2hvcnQ",
    ] {
        assert!(JwtKeys::parse(bad).is_err(), "{bad:?} was accepted");
    }
    let line = JwtKeys::generate_ed25519("same").unwrap();
    assert!(
        JwtKeys::parse(&format!("{line}\n{line}")).is_err(),
        "a duplicate kid"
    );
    let x = JwtStore::new(JwtKeys::parse(&line).unwrap()).keys().jwks()["keys"][0]["x"]
        .as_str()
        .unwrap()
        .to_owned();
    let err = JwtKeys::parse(&format!("pub ed25519-public {x}")).unwrap_err();
    assert!(err.to_string().contains("sign"), "{err}");
}

/// One way to damage a token.
#[derive(Debug, Clone)]
enum Mutation {
    ReplaceChar(usize, char),
    Truncate(usize),
    DropPart(usize),
    SwapParts(usize, usize),
    Append(String),
}

fn mutate(token: &str, m: &Mutation) -> String {
    let chars: Vec<char> = token.chars().collect();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    match m {
        Mutation::ReplaceChar(i, c) => {
            let mut chars = chars;
            let i = i % chars.len();
            chars[i] = *c;
            chars.into_iter().collect()
        }
        Mutation::Truncate(n) => chars[..n % chars.len()].iter().collect(),
        Mutation::DropPart(i) => {
            parts.remove(i % parts.len());
            parts.join(".")
        }
        Mutation::SwapParts(a, b) => {
            parts.swap(a % 3, b % 3);
            parts.join(".")
        }
        Mutation::Append(extra) => format!("{token}{extra}"),
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<char>()).prop_map(|(i, c)| Mutation::ReplaceChar(i, c)),
        any::<usize>().prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::DropPart),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapParts(a, b)),
        "[A-Za-z0-9_.=-]{1,40}".prop_map(Mutation::Append),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn no_mutation_of_a_valid_token_is_accepted(m in mutation(), counter in any::<u64>()) {
        let store = JwtStore::new(keys("k1"));
        let mut record = typical();
        record.data.insert("counter".into(), json!(counter));
        let token = store.seal(&record, "tether", now()).unwrap();
        let damaged = mutate(&token, &m);
        // Base64 has several spellings of the last character of a part; a change
        // that decodes to the same bytes is not a change.
        let same = damaged.split('.').map(|p| URL_SAFE_NO_PAD.decode(p).ok()).collect::<Vec<_>>()
            == token.split('.').map(|p| URL_SAFE_NO_PAD.decode(p).ok()).collect::<Vec<_>>();
        prop_assume!(damaged != token && !same);
        prop_assert_eq!(store.open(&damaged, "tether", now()), None, "accepted {:?}", m);
    }

    #[test]
    fn arbitrary_text_is_never_a_session(text in "\\PC{0,400}", a in "[A-Za-z0-9_-]{0,80}", b in "[A-Za-z0-9_-]{0,200}", c in "[A-Za-z0-9_-]{0,90}") {
        let store = JwtStore::new(keys("k1"));
        prop_assert_eq!(store.open(&text, "tether", now()), None);
        prop_assert_eq!(store.open(&format!("{a}.{b}.{c}"), "tether", now()), None);
    }
}

// ---- through the layer -------------------------------------------------------------

async fn stuff(session: Session) -> Result<&'static str, SessionError> {
    session.insert("blob", "x".repeat(5000)).await?;
    Ok("stuffed")
}

async fn id(session: Session) -> String {
    session.id().map(|id| id.to_string()).unwrap_or_default()
}

async fn rotate(session: Session) -> Result<String, SessionError> {
    session.cycle_id().await?;
    Ok(session.id().map(|id| id.to_string()).unwrap_or_default())
}

fn app(store: JwtStore) -> Router {
    tether_testkit::app::routes()
        .route("/id", get(id))
        .route("/rotate", post(rotate))
        .route("/stuff", post(stuff))
        .layer(SessionLayer::client_side(store))
}

fn token_of(cookie: &str) -> &str {
    cookie.split_once('=').unwrap().1
}

#[tokio::test]
async fn through_the_layer_the_sid_is_the_session_id_and_rotates_at_login() {
    let store = JwtStore::new(keys("k1"));
    let app = app(store.clone());
    let reply = send(&app, "POST", "/incr", None).await;
    assert_eq!(reply.body, "1");
    let cookie = reply.cookie();
    let first = parts(token_of(&cookie)).1;
    let sid = first["sid"].as_str().unwrap().to_owned();
    assert_eq!(send(&app, "GET", "/id", Some(&cookie)).await.body, sid);
    let reply = send(&app, "POST", "/incr", Some(&cookie)).await;
    assert_eq!(reply.body, "2");
    let cookie = reply.cookie();
    let second = parts(token_of(&cookie)).1;
    assert_eq!(second["sid"], sid, "a save kept the session id");
    assert_ne!(second["jti"], first["jti"], "each token has its own jti");

    let reply = send(&app, "POST", "/login", Some(&cookie)).await;
    let logged_in = reply.cookie();
    let claims = parts(token_of(&logged_in)).1;
    assert_eq!(claims["sub"], "alice");
    assert_ne!(claims["sid"], sid, "login rotated the session id");
    assert_eq!(
        send(&app, "GET", "/me", Some(&logged_in)).await.body,
        "alice"
    );

    let reply = send(&app, "POST", "/rotate", Some(&logged_in)).await;
    let rotated = reply.cookie();
    assert_eq!(parts(token_of(&rotated)).1["sid"], reply.body);

    let reply = send(&app, "POST", "/stuff", Some(&rotated)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let unsigned = format!(
        "__Host-tether={}.{}.",
        b64json(&json!({"alg": "none", "kid": "k1"})),
        b64json(
            &json!({"sub": "alice", "sid": sid, "jti": sid, "exp": i64::MAX, "nbf": 0, "iat": 0})
        )
    );
    assert_eq!(
        send(&app, "GET", "/me", Some(&unsigned)).await.body,
        "nobody"
    );
}

#[tokio::test]
async fn a_session_lifetime_of_its_own_is_in_the_token() {
    tether_testkit::lifetime::check_client_store(SessionLayer::client_side(JwtStore::new(keys(
        "k1",
    ))))
    .await;
}
