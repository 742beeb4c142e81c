//! The session token in a header instead of a cookie, through a real axum app: the
//! same stores and guarantees, no cookie set.

use axum::http::HeaderName;
use tether::{MemoryStore, SessionLayer, Transport};
use tether_testkit::http::{Reply, send_with};

fn token(reply: &Reply, header: &str) -> String {
    reply
        .headers
        .get(header)
        .unwrap_or_else(|| panic!("no {header} in {reply:?}"))
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn bearer_tokens_carry_the_session_and_no_cookie_is_set() {
    let app = tether_testkit::app::routes()
        .layer(SessionLayer::new(MemoryStore::new()).with_transport(Transport::bearer()));
    let first = send_with(&app, "POST", "/incr", &[]).await;
    assert_eq!(first.body, "1");
    assert!(first.set_cookie.is_none(), "{first:?}");
    assert_eq!(first.cache_control.as_deref(), Some("no-store"));
    assert_eq!(first.headers["vary"], "authorization");
    let tok = token(&first, "x-session-token");
    let auth = format!("Bearer {tok}");

    let second = send_with(&app, "POST", "/incr", &[("authorization", &auth)]).await;
    assert_eq!(second.body, "2");
    // A cookie named like the session's is not a session under header transport.
    let cookie = format!("__Host-tether={tok}");
    assert_eq!(
        send_with(&app, "GET", "/read", &[("cookie", &cookie)])
            .await
            .body,
        "0"
    );

    // Login rotates the token; the old one is then a stranger (and, within the
    // rotation grace, one that changes nothing).
    let login = send_with(&app, "POST", "/login", &[("authorization", &auth)]).await;
    let new = token(&login, "x-session-token");
    assert_ne!(new, tok);
    let bearer = format!("Bearer {new}");
    assert_eq!(
        send_with(&app, "GET", "/me", &[("authorization", &bearer)])
            .await
            .body,
        "alice"
    );
    assert_eq!(
        send_with(&app, "GET", "/me", &[("authorization", &auth)])
            .await
            .body,
        "nobody"
    );

    // Logout answers an empty token.
    let out = send_with(&app, "POST", "/logout", &[("authorization", &bearer)]).await;
    assert_eq!(token(&out, "x-session-token"), "");
    assert_eq!(
        send_with(&app, "GET", "/me", &[("authorization", &bearer)])
            .await
            .body,
        "nobody"
    );
    // Not a bearer token: no session.
    let basic = format!("Basic {new}");
    assert_eq!(
        send_with(&app, "GET", "/me", &[("authorization", &basic)])
            .await
            .body,
        "nobody"
    );
}

#[tokio::test]
async fn a_named_header_carries_the_token_both_ways() {
    let name = HeaderName::from_static("x-session");
    let app = tether_testkit::app::routes()
        .layer(SessionLayer::new(MemoryStore::new()).with_transport(Transport::header(name)));
    let first = send_with(&app, "POST", "/incr", &[]).await;
    assert!(first.set_cookie.is_none(), "{first:?}");
    assert_eq!(first.headers["vary"], "x-session");
    let tok = token(&first, "x-session");
    assert_eq!(
        send_with(&app, "POST", "/incr", &[("x-session", &tok)])
            .await
            .body,
        "2"
    );
    // A read that needs no refresh answers no token: the client keeps its own.
    let read = send_with(&app, "GET", "/read", &[("x-session", &tok)]).await;
    assert_eq!(read.body, "2");
    assert!(read.headers.get("x-session").is_none(), "{read:?}");
    // Garbage in the header is no session, and costs nothing.
    assert_eq!(
        send_with(&app, "GET", "/read", &[("x-session", "not an id")])
            .await
            .body,
        "0"
    );
}
